// Copies between a chunk in caller memory (any layout or strides) and a row-major buffer.
#pragma once

#include <cairn/state.hpp>

#include <cstddef>
#include <cstdint>

namespace cairn::detail {

/// Element strides of `chunk` (its own `strides`, or those of its contiguous layout).
Extents chunk_strides(const Chunk& chunk);

/// Row-major element strides of `shape`.
Extents row_major_strides(const Extents& shape);

/// True when `chunk` is contiguous and row-major, so any slab of its first dimension is a plain
/// byte range.
bool is_row_major_contiguous(const Chunk& chunk);

/// Elements from the first to the last element of `chunk` in memory, gaps included: what a copy of
/// the whole chunk as one byte range moves (its volume when contiguous; 0 when empty).
std::int64_t chunk_span_elements(const Chunk& chunk);

/// Copies an n-d block of `shape` elements of `element_size` bytes from `src` with element strides
/// `src_strides` to `dst` with `dst_strides`. Contiguous inner dimensions are merged into memcpy.
void strided_copy(const void* src, const Extents& src_strides, void* dst, const Extents& dst_strides,
                  const Extents& shape, std::size_t element_size);

/// Address of the element of `chunk` at global index `global_index`.
void* chunk_element(const Chunk& chunk, const Extents& strides, const Extents& global_index, std::size_t element_size);

}  // namespace cairn::detail
