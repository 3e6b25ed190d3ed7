// Lossless compression of array bytes (zlib's deflate, and Zstandard where the build has libzstd):
// what the posix backend applies to each piece and Cairn's own HDF5 zstd filter calls.
#pragma once

#include <cairn/state.hpp>

#include <cstddef>
#include <functional>
#include <string>

namespace cairn::detail {

/// "none", "deflate" or "zstd".
const char* compression_name(Compression method) noexcept;

/// Whether this build can compress and decompress with `method` (Zstd needs libzstd).
bool compression_built(Compression method) noexcept;

/// The levels `method` accepts besides 0 (its default): deflate 1-9, zstd 1-22.
int compression_max_level(Compression method) noexcept;

/// The level `method` runs at for `level` (0: deflate 6, zstd 3).
int effective_level(Compression method, int level) noexcept;

/// What is wrong with compressing by `method` at `level` ("" when nothing): an unknown method or a
/// level outside its range.
std::string compression_problem(Compression method, int level);

/// Receives compressed output in blocks, in order.
using ByteSink = std::function<void(const std::byte* data, std::size_t bytes)>;

/// Compresses `bytes` at `data` into one stream (a zlib stream, or one zstd frame), handing it to
/// `sink` in blocks of `block` bytes (the last one shorter), so that memory stays bounded.
/// Throws UnsupportedError when the build lacks `method`, InternalError when the library fails.
void compress_stream(Compression method, int level, const void* data, std::size_t bytes, std::size_t block,
                     const ByteSink& sink);

/// Decompresses the stream of `src_bytes` at `src` into exactly `dst_bytes` at `dst`. Throws
/// CorruptCheckpointError naming `what` when the stream is damaged or does not hold exactly
/// `dst_bytes`, UnsupportedError when the build lacks `method`.
void decompress_exactly(Compression method, const void* src, std::size_t src_bytes, void* dst, std::size_t dst_bytes,
                        const std::string& what);

/// One-shot Zstandard, for HDF5's filter interface: the compressed size (0 on failure), at most
/// `capacity` bytes. zstd_bound: the most a frame of `bytes` can take. Only with libzstd.
std::size_t zstd_bound(std::size_t bytes) noexcept;
std::size_t zstd_compress(const void* src, std::size_t bytes, void* dst, std::size_t capacity, int level) noexcept;
/// The content size a frame records (0 when unknown or damaged), and one-shot decompression
/// (0 on failure).
std::size_t zstd_content_size(const void* src, std::size_t bytes) noexcept;
std::size_t zstd_decompress(const void* src, std::size_t bytes, void* dst, std::size_t capacity) noexcept;

}  // namespace cairn::detail
