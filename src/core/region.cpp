#include "core/region.hpp"

#include <numeric>

namespace cairn::detail {

bool find_overlap(const std::vector<Region>& regions, std::size_t& first, std::size_t& second) {
  if (regions.size() < 2) return false;
  if (regions.front().shape.empty()) {  // 0-d: every region is the single element
    first = 0;
    second = 1;
    return true;
  }
  std::vector<std::size_t> order(regions.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return regions[a].offset[0] < regions[b].offset[0]; });
  std::vector<std::size_t> active;  // regions whose first-dimension span reaches the sweep line
  for (std::size_t idx : order) {
    const Region& r = regions[idx];
    std::size_t keep = 0;
    for (std::size_t a : active) {
      const Region& q = regions[a];
      if (q.offset[0] + q.shape[0] <= r.offset[0]) continue;  // ended before this one starts
      if (overlaps(q, r)) {
        first = std::min(a, idx);
        second = std::max(a, idx);
        return true;
      }
      active[keep++] = a;
    }
    active.resize(keep);
    active.push_back(idx);
  }
  return false;
}

}  // namespace cairn::detail
