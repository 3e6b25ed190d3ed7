#include "core/strided_copy.hpp"

#include <cstring>
#include <vector>

namespace cairn::detail {

Extents row_major_strides(const Extents& shape) {
  Extents strides(shape.size(), 1);
  for (std::size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

Extents chunk_strides(const Chunk& chunk) {
  if (!chunk.strides.empty()) return chunk.strides;
  if (chunk.layout == Layout::RowMajor) return row_major_strides(chunk.shape);
  Extents strides(chunk.shape.size(), 1);
  for (std::size_t d = 1; d < chunk.shape.size(); ++d) strides[d] = strides[d - 1] * chunk.shape[d - 1];
  return strides;
}

bool is_row_major_contiguous(const Chunk& chunk) {
  if (chunk.strides.empty()) return chunk.layout == Layout::RowMajor || chunk.shape.size() <= 1;
  return chunk.strides == row_major_strides(chunk.shape);
}

std::int64_t chunk_span_elements(const Chunk& chunk) {
  const Extents strides = chunk_strides(chunk);
  std::int64_t last = 0;
  for (std::size_t d = 0; d < chunk.shape.size(); ++d) {
    if (chunk.shape[d] == 0) return 0;
    last += (chunk.shape[d] - 1) * strides[d];
  }
  return last + 1;
}

namespace {

template <class Word>
void gather(const std::byte* src, std::int64_t ss, std::byte* dst, std::int64_t ds, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    Word w;
    std::memcpy(&w, src + i * ss * static_cast<std::int64_t>(sizeof(Word)), sizeof(Word));
    std::memcpy(dst + i * ds * static_cast<std::int64_t>(sizeof(Word)), &w, sizeof(Word));
  }
}

void copy_line(const std::byte* src, std::int64_t ss, std::byte* dst, std::int64_t ds, std::int64_t n,
               std::size_t esize) {
  if (ss == 1 && ds == 1) {
    std::memcpy(dst, src, static_cast<std::size_t>(n) * esize);
    return;
  }
  switch (esize) {
    case 1: gather<std::uint8_t>(src, ss, dst, ds, n); return;
    case 2: gather<std::uint16_t>(src, ss, dst, ds, n); return;
    case 4: gather<std::uint32_t>(src, ss, dst, ds, n); return;
    case 8: gather<std::uint64_t>(src, ss, dst, ds, n); return;
    default:
      for (std::int64_t i = 0; i < n; ++i)
        std::memcpy(dst + static_cast<std::size_t>(i * ds) * esize, src + static_cast<std::size_t>(i * ss) * esize,
                    esize);
  }
}

void copy_nd(const std::byte* src, const std::int64_t* ss, std::byte* dst, const std::int64_t* ds,
             const std::int64_t* shape, std::size_t ndim, std::size_t esize) {
  if (ndim == 1) {
    copy_line(src, ss[0], dst, ds[0], shape[0], esize);
    return;
  }
  const auto src_step = static_cast<std::ptrdiff_t>(ss[0] * static_cast<std::int64_t>(esize));
  const auto dst_step = static_cast<std::ptrdiff_t>(ds[0] * static_cast<std::int64_t>(esize));
  for (std::int64_t i = 0; i < shape[0]; ++i)
    copy_nd(src + i * src_step, ss + 1, dst + i * dst_step, ds + 1, shape + 1, ndim - 1, esize);
}

}  // namespace

void strided_copy(const void* src, const Extents& src_strides, void* dst, const Extents& dst_strides,
                  const Extents& shape, std::size_t element_size) {
  // Drop unit dimensions, then merge a dimension into the next when both sides are contiguous
  // across it, so the common cases become one memcpy.
  std::vector<std::int64_t> n, ss, ds;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;
    n.push_back(shape[d]);
    ss.push_back(src_strides[d]);
    ds.push_back(dst_strides[d]);
  }
  if (n.empty()) {
    std::memcpy(dst, src, element_size);
    return;
  }
  std::size_t k = n.size() - 1;
  while (k > 0 && ss[k - 1] == ss[k] * n[k] && ds[k - 1] == ds[k] * n[k]) {
    n[k - 1] *= n[k];
    ss[k - 1] = ss[k];
    ds[k - 1] = ds[k];
    n.pop_back();
    ss.pop_back();
    ds.pop_back();
    --k;
  }
  copy_nd(static_cast<const std::byte*>(src), ss.data(), static_cast<std::byte*>(dst), ds.data(), n.data(), n.size(),
          element_size);
}

void* chunk_element(const Chunk& chunk, const Extents& strides, const Extents& global_index, std::size_t element_size) {
  std::int64_t linear = 0;
  for (std::size_t d = 0; d < strides.size(); ++d) linear += (global_index[d] - chunk.offset[d]) * strides[d];
  return static_cast<std::byte*>(chunk.data) + linear * static_cast<std::int64_t>(element_size);
}

}  // namespace cairn::detail
