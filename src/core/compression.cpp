#include "core/compression.hpp"

#include <cairn/error.hpp>

#include <zlib.h>
#if CAIRN_HAVE_ZSTD
#include <zstd.h>
#endif

#include <algorithm>
#include <memory>
#include <vector>

namespace cairn::detail {

namespace {

// zlib counts in uInt: feed it at most this much at a time.
constexpr std::size_t zlib_slice = std::size_t{1} << 30;

[[noreturn]] [[maybe_unused]] void not_built(Compression method) {
  throw UnsupportedError(std::string("this Cairn was built without ") + compression_name(method) +
                         " compression (install libzstd-dev and rebuild, or use Compression::Deflate)");
}

void deflate_stream(int level, const void* data, std::size_t bytes, std::size_t block, const ByteSink& sink) {
  z_stream z{};
  if (deflateInit(&z, level) != Z_OK) throw InternalError("zlib: deflateInit failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> end(&z, deflateEnd);
  std::vector<Bytef> out(block);
  std::size_t filled = 0;
  const auto* in = static_cast<const Bytef*>(data);
  std::size_t left = bytes;
  while (true) {
    const std::size_t take = std::min(left, zlib_slice);
    z.next_in = const_cast<Bytef*>(in);  // zlib does not write through it
    z.avail_in = static_cast<uInt>(take);
    in += take;
    left -= take;
    const int flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    while (true) {
      z.next_out = out.data() + filled;
      z.avail_out = static_cast<uInt>(block - filled);
      const int rc = deflate(&z, flush);
      if (rc == Z_STREAM_ERROR) throw InternalError("zlib: deflate failed");
      filled = block - z.avail_out;
      if (filled == block) {
        sink(reinterpret_cast<const std::byte*>(out.data()), block);
        filled = 0;
        continue;
      }
      if (flush == Z_FINISH ? rc == Z_STREAM_END : z.avail_in == 0) break;
    }
    if (flush == Z_FINISH) break;
  }
  if (filled > 0) sink(reinterpret_cast<const std::byte*>(out.data()), filled);
}

void inflate_exactly(const void* src, std::size_t src_bytes, void* dst, std::size_t dst_bytes,
                     const std::string& what) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) throw InternalError("zlib: inflateInit failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> end(&z, inflateEnd);
  const auto* in = static_cast<const Bytef*>(src);
  auto* out = static_cast<Bytef*>(dst);
  std::size_t in_left = src_bytes, out_left = dst_bytes;
  while (true) {
    if (z.avail_in == 0 && in_left > 0) {
      const std::size_t take = std::min(in_left, zlib_slice);
      z.next_in = const_cast<Bytef*>(in);
      z.avail_in = static_cast<uInt>(take);
      in += take;
      in_left -= take;
    }
    if (z.avail_out == 0 && out_left > 0) {
      const std::size_t take = std::min(out_left, zlib_slice);
      z.next_out = out;
      z.avail_out = static_cast<uInt>(take);
      out += take;
      out_left -= take;
    }
    const int rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) break;
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && z.avail_out == 0 && out_left == 0)
      throw CorruptCheckpointError(what + ": the deflate stream holds more than the expected " +
                                   std::to_string(dst_bytes) + " bytes");
    throw CorruptCheckpointError(what + ": damaged deflate stream (zlib: " + (z.msg ? z.msg : "truncated") + ")");
  }
  if (out_left + z.avail_out != 0)
    throw CorruptCheckpointError(what + ": the deflate stream holds " +
                                 std::to_string(dst_bytes - out_left - z.avail_out) + " bytes, not " +
                                 std::to_string(dst_bytes));
  if (in_left + z.avail_in != 0) throw CorruptCheckpointError(what + ": trailing bytes after the deflate stream");
}

#if CAIRN_HAVE_ZSTD
void zstd_stream(int level, const void* data, std::size_t bytes, std::size_t block, const ByteSink& sink) {
  std::unique_ptr<ZSTD_CCtx, std::size_t (*)(ZSTD_CCtx*)> ctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  if (!ctx) throw InternalError("zstd: cannot create a compression context");
  if (ZSTD_isError(ZSTD_CCtx_setParameter(ctx.get(), ZSTD_c_compressionLevel, level)) ||
      ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(ctx.get(), bytes)))
    throw InternalError("zstd: cannot set the compression level " + std::to_string(level));
  std::vector<std::byte> out(block);
  ZSTD_inBuffer input{data, bytes, 0};
  ZSTD_outBuffer output{out.data(), block, 0};
  while (true) {
    const std::size_t remaining = ZSTD_compressStream2(ctx.get(), &output, &input, ZSTD_e_end);
    if (ZSTD_isError(remaining)) throw InternalError(std::string("zstd: ") + ZSTD_getErrorName(remaining));
    if (output.pos == block) {
      sink(out.data(), block);
      output.pos = 0;
    }
    if (remaining == 0) break;
  }
  if (output.pos > 0) sink(out.data(), output.pos);
}
#endif

}  // namespace

const char* compression_name(Compression method) noexcept {
  switch (method) {
    case Compression::None: return "none";
    case Compression::Deflate: return "deflate";
    case Compression::Zstd: return "zstd";
  }
  return "unknown";
}

bool compression_built(Compression method) noexcept {
  switch (method) {
    case Compression::None:
    case Compression::Deflate: return true;
    case Compression::Zstd: return CAIRN_HAVE_ZSTD != 0;
  }
  return false;
}

int compression_max_level(Compression method) noexcept {
  switch (method) {
    case Compression::None: return 0;
    case Compression::Deflate: return 9;
    case Compression::Zstd: return 22;
  }
  return 0;
}

int effective_level(Compression method, int level) noexcept {
  if (level != 0) return level;
  return method == Compression::Deflate ? 6 : method == Compression::Zstd ? 3 : 0;
}

std::string compression_problem(Compression method, int level) {
  if (method != Compression::None && method != Compression::Deflate && method != Compression::Zstd)
    return "unknown compression method " + std::to_string(static_cast<unsigned>(method));
  if (method == Compression::None) {
    if (level != 0) return "a compression level (" + std::to_string(level) + ") without a compression method";
    return {};
  }
  const int max = compression_max_level(method);
  if (level < 0 || level > max)
    return std::string(compression_name(method)) + " compression level " + std::to_string(level) + " is outside 1-" +
           std::to_string(max) + " (0: the default)";
  return {};
}

void compress_stream(Compression method, int level, const void* data, std::size_t bytes, std::size_t block,
                     const ByteSink& sink) {
  if (block == 0) throw InternalError("compress_stream: a block of 0 bytes");
  const int effective = effective_level(method, level);
  switch (method) {
    case Compression::Deflate: deflate_stream(effective, data, bytes, block, sink); return;
    case Compression::Zstd:
#if CAIRN_HAVE_ZSTD
      zstd_stream(effective, data, bytes, block, sink);
      return;
#else
      not_built(method);
#endif
    case Compression::None: break;
  }
  throw InternalError(std::string("compress_stream: method ") + compression_name(method));
}

void decompress_exactly(Compression method, const void* src, std::size_t src_bytes, void* dst, std::size_t dst_bytes,
                        const std::string& what) {
  switch (method) {
    case Compression::Deflate: inflate_exactly(src, src_bytes, dst, dst_bytes, what); return;
    case Compression::Zstd: {
#if CAIRN_HAVE_ZSTD
      const std::size_t n = ZSTD_decompress(dst, dst_bytes, src, src_bytes);
      if (ZSTD_isError(n)) throw CorruptCheckpointError(what + ": damaged zstd frame (" + ZSTD_getErrorName(n) + ")");
      if (n != dst_bytes)
        throw CorruptCheckpointError(what + ": the zstd frame holds " + std::to_string(n) + " bytes, not " +
                                     std::to_string(dst_bytes));
      return;
#else
      not_built(method);
#endif
    }
    case Compression::None: break;
  }
  throw InternalError(std::string("decompress_exactly: method ") + compression_name(method));
}

#if CAIRN_HAVE_ZSTD
std::size_t zstd_bound(std::size_t bytes) noexcept {
  return ZSTD_compressBound(bytes);
}
std::size_t zstd_compress(const void* src, std::size_t bytes, void* dst, std::size_t capacity, int level) noexcept {
  const std::size_t n = ZSTD_compress(dst, capacity, src, bytes, effective_level(Compression::Zstd, level));
  return ZSTD_isError(n) ? 0 : n;
}
std::size_t zstd_content_size(const void* src, std::size_t bytes) noexcept {
  const unsigned long long n = ZSTD_getFrameContentSize(src, bytes);
  return n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN ? 0 : static_cast<std::size_t>(n);
}
std::size_t zstd_decompress(const void* src, std::size_t bytes, void* dst, std::size_t capacity) noexcept {
  const std::size_t n = ZSTD_decompress(dst, capacity, src, bytes);
  return ZSTD_isError(n) ? 0 : n;
}
#else
std::size_t zstd_bound(std::size_t) noexcept {
  return 0;
}
std::size_t zstd_compress(const void*, std::size_t, void*, std::size_t, int) noexcept {
  return 0;
}
std::size_t zstd_content_size(const void*, std::size_t) noexcept {
  return 0;
}
std::size_t zstd_decompress(const void*, std::size_t, void*, std::size_t) noexcept {
  return 0;
}
#endif

}  // namespace cairn::detail
