// Writer of the posix layout: every rank writes its buffers into its own raw file with pwrite, at
// aligned offsets; rank 0 writes the metadata and the piece index of every rank at the end.
#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "comm/agree.hpp"
#include "core/byte_codec.hpp"
#include "core/checksum.hpp"
#include "core/compression.hpp"
#include "core/log.hpp"
#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "storage/common/incremental.hpp"
#include "storage/common/publish.hpp"
#include "storage/posix/posix_storage.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

namespace cairn {

namespace detail::posix {
std::string rank_data_file_name(int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "rank_%06d.dat", rank);
  return name;
}
}  // namespace detail::posix

namespace {

namespace px = detail::posix;

constexpr std::size_t bounce_bytes = std::size_t{4} << 20;
constexpr std::size_t max_io_bytes = std::size_t{1} << 30;  // Linux caps one call near 2 GiB

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment) {
  const std::uint64_t rem = value % alignment;
  return rem == 0 ? value : value + (alignment - rem);
}

void warn_direct_io_once(const std::string& path, int err) {
  static std::once_flag told;
  std::call_once(told, [&] {
    detail::log(detail::LogLevel::Warn, "O_DIRECT is refused for '" + path + "' (" + detail::errno_text(err) +
                                            "); posix checkpoints are written through the page cache instead");
  });
}

// Writes all of `bytes` at `offset`, looping on short writes and EINTR. Returns 0 or an errno.
int pwrite_all(int fd, const std::byte* data, std::size_t bytes, std::uint64_t offset) {
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd, data, std::min(bytes, max_io_bytes), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // no progress: treat as a device error rather than spin
    data += n;
    bytes -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

// Owns a posix_memalign'd block.
struct AlignedBuffer {
  void* data = nullptr;
  std::size_t size = 0;
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data); }
  void allocate(std::size_t bytes, std::size_t alignment) {
    if (size >= bytes) return;
    std::free(data);
    data = nullptr;
    size = 0;
    if (::posix_memalign(&data, alignment, bytes) != 0) throw StorageError("out of memory for an O_DIRECT buffer");
    size = bytes;
  }
};

class PosixWriter final : public StorageWriter, public detail::IncrementalWriter, public detail::EarlyWriteback {
 public:
  explicit PosixWriter(PosixOptions options) : m_options(options) {}

  // Chunks an incremental save leaves out are simply not handed to set_local_items and write.
  bool same_layout(const std::string& directory) const override {
    struct stat st {};
    return ::stat((directory + "/" + px::metadata_file_name).c_str(), &st) == 0;
  }
  ~PosixWriter() override { close_file(); }
  PosixWriter(const PosixWriter&) = delete;
  PosixWriter& operator=(const PosixWriter&) = delete;

  void set_local_items(const std::vector<WriteItem>& items) override { m_items = items; }

  void open(const std::string& directory, const std::vector<EntryInfo>& entries, ProcessGroup& group) override {
    close_file();
    m_group = &group;
    m_rank = group.rank();
    m_directory = directory;
    m_path = directory + "/" + px::rank_data_file_name(m_rank);
    m_element_sizes.clear();
    m_compression.clear();
    m_pieces.clear();
    m_end = 0;
    m_size = 0;
    m_reserved = 0;
    m_direct = false;
    detail::agree_on(group, "creating posix rank file '" + m_path + "'", [&] {
      const std::size_t a = m_options.alignment;
      if (a < 512 || (a & (a - 1)) != 0)
        throw UsageError("PosixOptions::alignment " + std::to_string(a) + " is not a power of two of at least 512");
      for (const EntryInfo& e : entries) m_element_sizes.push_back(dtype_size(e.dtype));
      for (const EntryInfo& e : entries)
        m_compression.push_back({e.kind == EntryKind::Array ? e.compression : Compression::None, e.compression_level});
      create_file();
      // Reserve what the planned items need, so that a full disk fails here, before data moves.
      std::uint64_t need = 0;
      for (const WriteItem& item : m_items) need = align_up(need + item_bytes(item), a);
      m_items.clear();  // a later save that does not call set_local_items must not reuse them
      ensure_reserved(need);
    });
  }

  void write(const std::vector<WriteBuffer>& buffers) override {
    detail::agree_on(*m_group, "writing posix rank file '" + m_path + "'", [&] {
      if (m_fd < 0) throw InternalError("write to posix rank file '" + m_path + "' before open");
      std::uint64_t need = m_end;
      for (const WriteBuffer& b : buffers) need = align_up(need + item_bytes(*b.item), m_options.alignment);
      ensure_reserved(need);
      for (const WriteBuffer& b : buffers) write_one(b);
    });
  }

  void finish(const Metadata& metadata) override {
    detail::ByteWriter mine;
    mine.u64(m_pieces.size());
    for (const px::Piece& p : m_pieces) {
      mine.i32(p.entry);
      detail::encode_region(mine, p.region);
      mine.u64(p.offset);
      mine.u64(p.length);
    }
    const std::vector<std::vector<std::byte>> tables = m_group->gather(mine.bytes(), 0);
    // Data first: metadata.cairn names only bytes that are already durable.
    detail::agree_on(*m_group, "syncing posix rank file '" + m_path + "'", [&] {
      if (m_fd < 0) throw InternalError("finish of posix rank file '" + m_path + "' before open");
      if (::ftruncate(m_fd, static_cast<off_t>(m_size)) != 0) fail("cannot set the size of", errno);
      if (::fsync(m_fd) != 0) fail("cannot sync", errno);
      const int fd = m_fd;
      m_fd = -1;
      if (::close(fd) != 0) fail("cannot close", errno);
    });
    const std::string meta_path = m_directory + "/" + px::metadata_file_name;
    detail::agree_on(*m_group, "writing posix metadata '" + meta_path + "'", [&] {
      if (m_rank != 0) return;
      write_metadata(meta_path, metadata, tables);
    });
  }

  void abort() noexcept override { close_file(); }

 private:
  std::uint64_t item_bytes(const WriteItem& item) const {
    if (item.entry < 0 || static_cast<std::size_t>(item.entry) >= m_element_sizes.size())
      throw InternalError("a write buffer of '" + m_path + "' names entry " + std::to_string(item.entry));
    return static_cast<std::uint64_t>(detail::volume(item.region.shape)) *
           m_element_sizes[static_cast<std::size_t>(item.entry)];
  }

  [[noreturn]] void fail(const std::string& what, int err) const {
    throw StorageError(what + " posix rank file '" + m_path + "' of rank " + std::to_string(m_rank) + ": " +
                       detail::errno_text(err));
  }

  void create_file() {
    // TRUNC: a stale file of an earlier save that never published may sit in the partial directory.
    const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    if (m_options.direct_io) {
      m_fd = ::open(m_path.c_str(), flags | O_DIRECT, 0644);
      if (m_fd >= 0) {
        m_direct = true;
        return;
      }
      if (errno != EINVAL) fail("cannot create", errno);
      warn_direct_io_once(m_path, errno);
    }
    m_fd = ::open(m_path.c_str(), flags, 0644);
    if (m_fd < 0) fail("cannot create", errno);
  }

  void ensure_reserved(std::uint64_t bytes) {
    if (bytes <= m_reserved) return;
    if (bytes > static_cast<std::uint64_t>(std::numeric_limits<long long>::max()))
      throw StorageError("posix rank file '" + m_path + "' would exceed the largest file size");
    detail::reserve_space(m_path, static_cast<long long>(bytes));
    m_reserved = bytes;
  }

  void write_one(const WriteBuffer& b) {
    const WriteItem& item = *b.item;
    const std::uint64_t length = item_bytes(item);
    if (length == 0) return;  // nothing to locate: a read never intersects an empty region
    const std::uint64_t offset = m_end;
    const auto* data = static_cast<const std::byte*>(b.data);
    auto write_at = [&](const std::byte* bytes, std::uint64_t n, std::uint64_t at) {
      int err = 0;
      if (m_direct) err = write_direct(bytes, n, at);
      if (!m_direct) err = pwrite_all(m_fd, bytes, static_cast<std::size_t>(n), at);
      if (err != 0) fail("cannot write " + std::to_string(n) + " bytes at offset " + std::to_string(at) + " of", err);
    };
    std::uint64_t stored = length;
    const Compression method = m_compression[static_cast<std::size_t>(item.entry)].method;
    if (method == Compression::None) {
      write_at(data, length, offset);
    } else {
      // The piece as one compressed stream, written as it comes out in blocks: a whole number of
      // alignments each, so that every block but the last starts and ends aligned (O_DIRECT).
      stored = 0;
      const std::size_t block = std::max(bounce_bytes, m_options.alignment);
      detail::compress_stream(method, m_compression[static_cast<std::size_t>(item.entry)].level, data,
                              static_cast<std::size_t>(length), block, [&](const std::byte* out, std::size_t n) {
                                write_at(out, n, offset + stored);
                                stored += n;
                              });
    }
    // The disk starts on the piece while the save goes on; finish() fsyncs.
    if (!m_direct && early_writeback())
      detail::start_writeback(m_fd, static_cast<long long>(offset), static_cast<long long>(stored));
    // The piece table records the stored (compressed) length; the reader knows the logical one.
    m_pieces.push_back(px::Piece{item.entry, m_rank, item.region, offset, stored});
    m_size = offset + stored;
    m_end = align_up(m_size, m_options.alignment);
  }

  // O_DIRECT wants aligned memory, offsets and lengths: copy through an aligned bounce buffer and
  // pad the tail (finish truncates the file to its real size). Returns 0 or an errno; where the
  // file system refuses the aligned write (EINVAL) it switches this file to the page cache.
  int write_direct(const std::byte* data, std::uint64_t length, std::uint64_t offset) {
    const std::size_t a = m_options.alignment;
    const std::size_t block = std::max(bounce_bytes, a);
    m_bounce.allocate(block, std::max<std::size_t>(a, 4096));
    auto* bounce = static_cast<std::byte*>(m_bounce.data);
    std::uint64_t done = 0;
    while (done < length) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block, length - done));
      std::memcpy(bounce, data + done, n);
      const std::size_t padded = static_cast<std::size_t>(align_up(n, a));
      std::memset(bounce + n, 0, padded - n);
      const int err = pwrite_all(m_fd, bounce, padded, offset + done);
      if (err == EINVAL && done == 0) {
        const int flags = ::fcntl(m_fd, F_GETFL);
        if (flags < 0 || ::fcntl(m_fd, F_SETFL, flags & ~O_DIRECT) != 0) return EINVAL;
        warn_direct_io_once(m_path, err);
        m_direct = false;
        return 0;  // the caller writes this buffer through the page cache
      }
      if (err != 0) return err;
      done += n;
    }
    return 0;
  }

  void write_metadata(const std::string& path, const Metadata& metadata,
                      const std::vector<std::vector<std::byte>>& tables) const {
    detail::ByteWriter out;
    out.raw(px::layout_magic, sizeof px::layout_magic);
    out.u32(px::layout_version);
    out.u32(static_cast<std::uint32_t>(tables.size()));
    out.u64(m_options.alignment);
    const std::vector<std::byte> blob = detail::encode_metadata(metadata);
    out.u64(blob.size());
    out.raw(blob.data(), blob.size());
    // Re-encode each rank's table with its rank: one flat list.
    std::vector<px::Piece> pieces;
    for (std::size_t r = 0; r < tables.size(); ++r) {
      detail::ByteReader in(tables[r].data(), tables[r].size(), "the piece table of rank " + std::to_string(r));
      const std::size_t n = in.count(32);
      for (std::size_t i = 0; i < n; ++i) {
        px::Piece p;
        p.entry = in.i32();
        p.rank = static_cast<std::int32_t>(r);
        p.region = detail::decode_region(in);
        p.offset = in.u64();
        p.length = in.u64();
        pieces.push_back(std::move(p));
      }
    }
    out.u64(pieces.size());
    for (const px::Piece& p : pieces) {
      out.i32(p.entry);
      out.i32(p.rank);
      detail::encode_region(out, p.region);
      out.u64(p.offset);
      out.u64(p.length);
    }
    out.u64(detail::checksum(out.bytes().data(), out.bytes().size()));

    const std::string temp = path + ".tmp";
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw StorageError("cannot create '" + temp + "' on rank 0: " + detail::errno_text(errno));
    int err = pwrite_all(fd, out.bytes().data(), out.bytes().size(), 0);
    if (err == 0 && ::fsync(fd) != 0) err = errno;
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err == 0 && ::rename(temp.c_str(), path.c_str()) != 0) err = errno;
    if (err != 0) {
      ::unlink(temp.c_str());
      throw StorageError("cannot write '" + path + "' on rank 0: " + detail::errno_text(err));
    }
  }

  void close_file() noexcept {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
  }

  PosixOptions m_options;
  std::vector<WriteItem> m_items;
  ProcessGroup* m_group = nullptr;
  int m_rank = 0;
  std::string m_directory;
  std::string m_path;
  std::vector<std::size_t> m_element_sizes;  // by entry
  struct EntryCompression {
    Compression method = Compression::None;
    int level = 0;
  };
  std::vector<EntryCompression> m_compression;  // by entry
  int m_fd = -1;
  bool m_direct = false;
  std::uint64_t m_end = 0;       // where the next piece starts (aligned)
  std::uint64_t m_size = 0;      // the file's real size: the end of the last piece
  std::uint64_t m_reserved = 0;  // bytes reserved so far
  std::vector<px::Piece> m_pieces;
  AlignedBuffer m_bounce;
};

}  // namespace

std::unique_ptr<StorageWriter> make_posix_writer(const PosixOptions& options) {
  return std::make_unique<PosixWriter>(options);
}

}  // namespace cairn
