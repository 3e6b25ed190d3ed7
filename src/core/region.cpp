#include "core/region.hpp"

#include <algorithm>
#include <utility>

namespace cairn::detail {

namespace {

// Below this many boxes the sweep runs along the first dimension without measuring the others:
// its cost is bounded by the square of this.
constexpr std::size_t measure_above = 32;

struct SweepScratch {
  std::vector<std::size_t> order;
  std::vector<std::size_t> active;
  std::vector<std::pair<std::int64_t, int>> events;
};

// Reused across calls: planning checks one small set of boxes per entry, 100,000s of times.
SweepScratch& sweep_scratch() {
  thread_local SweepScratch scratch;
  return scratch;
}

bool boxes_overlap(const BoxRef& a, const BoxRef& b, std::size_t ndim) {
  for (std::size_t d = 0; d < ndim; ++d)
    if (std::max(a.offset[d], b.offset[d]) >= std::min(a.offset[d] + a.shape[d], b.offset[d] + b.shape[d]))
      return false;
  return true;
}

// The most boxes whose spans along `dim` share a point: the largest active set of a sweep along it.
std::size_t span_depth(const std::vector<BoxRef>& boxes, std::size_t dim,
                       std::vector<std::pair<std::int64_t, int>>& events) {
  events.clear();
  for (const BoxRef& b : boxes) {
    events.emplace_back(b.offset[dim], 1);
    events.emplace_back(b.offset[dim] + b.shape[dim], -1);
  }
  std::sort(events.begin(), events.end());  // at one coordinate, ends (-1) before starts
  std::size_t depth = 0, deepest = 0;
  for (const auto& [coordinate, change] : events) {
    (void)coordinate;
    depth = change > 0 ? depth + 1 : depth - 1;
    deepest = std::max(deepest, depth);
  }
  return deepest;
}

}  // namespace

bool find_overlap(const std::vector<BoxRef>& boxes, std::size_t ndim, std::size_t& first, std::size_t& second) {
  const std::size_t n = boxes.size();
  if (n < 2) return false;
  if (ndim == 0) {  // 0-d: every box is the single element
    first = 0;
    second = 1;
    return true;
  }
  SweepScratch& s = sweep_scratch();
  // A sweep compares each box with the boxes whose spans along the sweep dimension reach it: pick
  // the dimension where that set is smallest (for a decomposition along dimension 1, sweeping
  // along dimension 0 would compare every pair).
  std::size_t dim = 0;
  if (n > measure_above && ndim > 1) {
    std::size_t best = span_depth(boxes, 0, s.events);
    for (std::size_t d = 1; d < ndim && best > 1; ++d) {
      const std::size_t depth = span_depth(boxes, d, s.events);
      if (depth < best) {
        best = depth;
        dim = d;
      }
    }
  }
  s.order.resize(n);
  for (std::size_t i = 0; i < n; ++i) s.order[i] = i;
  auto by_start = [&](std::size_t a, std::size_t b) { return boxes[a].offset[dim] < boxes[b].offset[dim]; };
  if (!std::is_sorted(s.order.begin(), s.order.end(), by_start)) std::sort(s.order.begin(), s.order.end(), by_start);
  s.active.clear();  // boxes whose span along `dim` reaches the sweep line
  for (std::size_t idx : s.order) {
    const BoxRef& r = boxes[idx];
    std::size_t keep = 0;
    for (std::size_t i = 0; i < s.active.size(); ++i) {
      const std::size_t a = s.active[i];
      const BoxRef& q = boxes[a];
      if (q.offset[dim] + q.shape[dim] <= r.offset[dim]) continue;  // ended before this one starts
      if (boxes_overlap(q, r, ndim)) {
        first = std::min(a, idx);
        second = std::max(a, idx);
        return true;
      }
      s.active[keep++] = a;
    }
    s.active.resize(keep);
    s.active.push_back(idx);
  }
  return false;
}

bool find_overlap(const std::vector<Region>& regions, std::size_t& first, std::size_t& second) {
  if (regions.size() < 2) return false;
  std::vector<BoxRef> boxes;
  boxes.reserve(regions.size());
  for (const Region& r : regions) boxes.push_back(BoxRef{r.offset.data(), r.shape.data()});
  return find_overlap(boxes, regions.front().shape.size(), first, second);
}

std::vector<Region> row_major_slices(const Region& region, std::size_t element_size, std::size_t max_bytes) {
  const std::size_t n = region.shape.size();
  if (n == 0) return {region};  // a single element
  if (volume(region.shape) == 0) return {};
  // trailing[k]: bytes of one index of dimension k - 1, i.e. of the block of dimensions k..n-1.
  std::vector<std::int64_t> trailing(n + 1, static_cast<std::int64_t>(element_size));
  for (std::size_t k = n; k-- > 0;) trailing[k] = trailing[k + 1] * region.shape[k];
  // Slices are runs along dimension d of whole blocks of the dimensions after it, with every
  // dimension before d fixed to one index; d is the first dimension whose block fits.
  std::size_t d = n - 1;
  for (std::size_t k = 0; k < n; ++k)
    if (trailing[k + 1] <= static_cast<std::int64_t>(max_bytes)) {
      d = k;
      break;
    }
  const std::int64_t run = std::max<std::int64_t>(1, static_cast<std::int64_t>(max_bytes) / trailing[d + 1]);
  std::vector<Region> slices;
  std::vector<std::int64_t> index(d, 0);  // odometer over the dimensions before d
  while (true) {
    for (std::int64_t start = 0; start < region.shape[d]; start += run) {
      Region slice = region;
      for (std::size_t k = 0; k < d; ++k) {
        slice.offset[k] = region.offset[k] + index[k];
        slice.shape[k] = 1;
      }
      slice.offset[d] = region.offset[d] + start;
      slice.shape[d] = std::min(run, region.shape[d] - start);
      slices.push_back(std::move(slice));
    }
    std::size_t k = d;
    while (k > 0 && ++index[k - 1] == region.shape[k - 1]) index[--k] = 0;
    if (k == 0) return slices;
  }
}

}  // namespace cairn::detail
