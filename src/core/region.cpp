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
