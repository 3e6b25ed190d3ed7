// Box arithmetic in a global index space.
#pragma once

#include <cairn/planner.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace cairn::detail {

/// Number of elements in a shape (1 for a 0-d shape).
inline std::int64_t volume(const Extents& shape) {
  std::int64_t n = 1;
  for (std::int64_t e : shape) n *= e;
  return n;
}

/// True when `inner` lies inside `outer` (same rank assumed).
/// Adds the number of elements of `shape` (non-negative extents) to `total`; false, leaving
/// `total` alone, when that does not fit in 64 bits (which only hostile checkpoint files reach).
inline bool add_volume(std::int64_t& total, const Extents& shape) {
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  for (std::int64_t e : shape)
    if (e == 0) return true;
  std::int64_t n = 1;
  for (std::int64_t e : shape) {
    if (n > max / e) return false;
    n *= e;
  }
  if (total > max - n) return false;
  total += n;
  return true;
}

inline bool contains(const Region& outer, const Region& inner) {
  for (std::size_t d = 0; d < outer.shape.size(); ++d) {
    if (inner.offset[d] < outer.offset[d]) return false;
    if (inner.offset[d] + inner.shape[d] > outer.offset[d] + outer.shape[d]) return false;
  }
  return true;
}

/// True when `inner` lies inside `outer` as one contiguous run of outer's row-major layout: equal
/// in every dimension but the first (a slab of outer's rows), or equal to outer.
inline bool row_slab_of(const Region& inner, const Region& outer) {
  if (inner.shape.size() != outer.shape.size() || inner.shape.empty()) return inner == outer;
  if (inner.offset[0] < outer.offset[0] || inner.offset[0] + inner.shape[0] > outer.offset[0] + outer.shape[0])
    return false;
  for (std::size_t d = 1; d < inner.shape.size(); ++d)
    if (inner.offset[d] != outer.offset[d] || inner.shape[d] != outer.shape[d]) return false;
  return true;
}

/// Element index of `point` (inside `region`) in the row-major layout of `region`.
inline std::int64_t row_major_index(const Region& region, const Extents& point) {
  std::int64_t index = 0;
  for (std::size_t d = 0; d < region.shape.size(); ++d) index = index * region.shape[d] + (point[d] - region.offset[d]);
  return index;
}

/// The intersection of two regions; false when it is empty.
inline bool intersect(const Region& a, const Region& b, Region& out) {
  const std::size_t n = a.shape.size();
  out.offset.assign(n, 0);
  out.shape.assign(n, 0);
  for (std::size_t d = 0; d < n; ++d) {
    const std::int64_t lo = std::max(a.offset[d], b.offset[d]);
    const std::int64_t hi = std::min(a.offset[d] + a.shape[d], b.offset[d] + b.shape[d]);
    if (hi <= lo) return false;
    out.offset[d] = lo;
    out.shape[d] = hi - lo;
  }
  return true;
}

inline bool overlaps(const Region& a, const Region& b) {
  for (std::size_t d = 0; d < a.shape.size(); ++d) {
    if (std::max(a.offset[d], b.offset[d]) >= std::min(a.offset[d] + a.shape[d], b.offset[d] + b.shape[d]))
      return false;
  }
  return true;
}

/// "[0:4, 2:6]" for messages.
inline std::string to_string(const Region& r) {
  std::string s = "[";
  for (std::size_t d = 0; d < r.shape.size(); ++d) {
    if (d) s += ", ";
    s += std::to_string(r.offset[d]) + ":" + std::to_string(r.offset[d] + r.shape[d]);
  }
  return s + "]";
}

inline std::string to_string(const Extents& e) {
  std::string s = "(";
  for (std::size_t d = 0; d < e.size(); ++d) {
    if (d) s += ", ";
    s += std::to_string(e[d]);
  }
  return s + ")";
}

}  // namespace cairn::detail

namespace cairn::detail {

/// Finds two overlapping regions among `regions` (same rank each), sweeping along the dimension
/// in which their spans overlap least, so that disjoint decompositions cost O(n log n) plus, for
/// boxes that share spans in every dimension (a 3-D block grid), n times the smallest such
/// sharing. Returns false when none overlap; otherwise `first` < `second` index an overlapping pair.
bool find_overlap(const std::vector<Region>& regions, std::size_t& first, std::size_t& second);

/// A box seen through pointers to its `ndim` offsets and extents (a Chunk's, a WriteItem's), so
/// that callers need not copy them into Regions.
struct BoxRef {
  const std::int64_t* offset = nullptr;
  const std::int64_t* shape = nullptr;
};

/// find_overlap over boxes of `ndim` dimensions each.
bool find_overlap(const std::vector<BoxRef>& boxes, std::size_t ndim, std::size_t& first, std::size_t& second);

/// The saved chunks of one entry, sorted by where they start in the first dimension, so that the
/// chunks a requested region touches are found by a binary search rather than a scan of every
/// chunk (a load plans in O((requests + chunks) log chunks), not requests x chunks).
class RegionIndex {
 public:
  /// `region` must outlive the index; `id` is handed back by for_each_intersecting.
  void add(const Region* region, std::size_t id) {
    m_items.push_back(Item{region->offset.empty() ? 0 : region->offset[0], region, id});
    if (region->shape.empty())
      m_whole_scan = true;
    else
      m_max_rows = std::max(m_max_rows, region->shape[0]);
  }
  /// Call once after the last add().
  void build() {
    std::sort(m_items.begin(), m_items.end(), [](const Item& a, const Item& b) { return a.first < b.first; });
  }
  /// Calls visit(id, intersection) for every added region that intersects `box`, in order of
  /// their first-dimension offset.
  template <class Visit>
  void for_each_intersecting(const Region& box, Visit&& visit) const {
    Region part;
    auto at = m_items.begin();
    if (!m_whole_scan && !box.offset.empty()) {
      // A region of at most m_max_rows rows that reaches box's first row starts after this.
      const std::int64_t earliest = box.offset[0] - m_max_rows + 1;
      at = std::lower_bound(m_items.begin(), m_items.end(), earliest,
                            [](const Item& item, std::int64_t value) { return item.first < value; });
    }
    for (; at != m_items.end(); ++at) {
      if (!m_whole_scan && !box.offset.empty() && at->first >= box.offset[0] + box.shape[0]) break;
      if (intersect(*at->region, box, part)) visit(at->id, part);
    }
  }

 private:
  struct Item {
    std::int64_t first;  // offset in the first dimension
    const Region* region;
    std::size_t id;
  };
  std::vector<Item> m_items;
  std::int64_t m_max_rows = 0;
  bool m_whole_scan = false;  // 0-d regions: no first dimension to search by
};

/// Row-major slices of `region` (elements of `element_size` bytes), each at most `max_bytes`
/// where a single element allows, in order: slice k + 1 starts where slice k ends, so their bytes
/// in turn are the region's row-major bytes.
std::vector<Region> row_major_slices(const Region& region, std::size_t element_size, std::size_t max_bytes);

}  // namespace cairn::detail
