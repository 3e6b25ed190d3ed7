// xxh3-64 of a chunk's row-major bytes: the checksum stored per chunk. A large chunk is also
// checksummed in blocks of whole rows, so that a load needing part of it (another decomposition)
// reads and checks only the blocks it needs; its chunk checksum is then the xxh3-64 of its blocks'.
#pragma once

#include <cairn/state.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace cairn::detail {

std::uint64_t checksum(const void* data, std::size_t bytes) noexcept;

/// Streaming form, for bytes that arrive in pieces (a strided copy).
class Checksummer {
 public:
  Checksummer();
  ~Checksummer();
  Checksummer(const Checksummer&) = delete;
  Checksummer& operator=(const Checksummer&) = delete;
  Checksummer(Checksummer&& other) noexcept : m_state(other.m_state) { other.m_state = nullptr; }
  Checksummer& operator=(Checksummer&& other) noexcept {
    std::swap(m_state, other.m_state);
    return *this;
  }
  /// Starts over, as if newly constructed.
  void reset() noexcept;
  void update(const void* data, std::size_t bytes) noexcept;
  std::uint64_t digest() const noexcept;

 private:
  void* m_state;
};

/// Rows of the first dimension per checksum block of a chunk of `shape` (row-major, elements of
/// `element_size` bytes); 0 when the chunk is checksummed whole: it is small (under two blocks of
/// 4 MiB) or has fewer than two rows. Blocks are at least 4 MiB (large reads stay large) and at
/// most 16 per chunk (a chunk record grows by at most 145 bytes: marker, rows, count, 16 sums).
std::int64_t checksum_block_rows(const Extents& shape, std::size_t element_size) noexcept;

/// Bytes of a block of `block_rows` rows of a chunk of `shape` (0 when `block_rows` is 0): what
/// ChunkHasher takes.
std::uint64_t checksum_block_bytes(const Extents& shape, std::int64_t block_rows, std::size_t element_size) noexcept;

/// Number of blocks of `block_rows` rows in a chunk of `rows` rows (0 when `block_rows` is 0).
std::size_t checksum_block_count(std::int64_t rows, std::int64_t block_rows) noexcept;

/// The chunk checksum of a chunk checksummed in blocks: xxh3-64 of the blocks' checksums, in
/// order, as little-endian 64-bit words.
std::uint64_t checksum_of_blocks(const std::vector<std::uint64_t>& blocks) noexcept;

/// A chunk's checksum from its row-major bytes, fed in pieces of any size, in order. With
/// `block_bytes` > 0 it also checksums each block of that many bytes (the last may be shorter)
/// and the chunk checksum is checksum_of_blocks() of them.
class ChunkHasher {
 public:
  explicit ChunkHasher(std::uint64_t block_bytes = 0) : m_block_bytes(block_bytes) {}
  void update(const void* data, std::size_t bytes) noexcept;
  /// The chunk checksum of the bytes fed so far.
  std::uint64_t digest() const;
  /// The checksums of the blocks so far (the last one possibly partial); empty without blocks.
  std::vector<std::uint64_t> block_checksums() const;

 private:
  std::uint64_t m_block_bytes;
  std::uint64_t m_in_block = 0;         // bytes fed into the current block
  Checksummer m_sum;                    // the whole chunk, or the current block
  std::vector<std::uint64_t> m_blocks;  // finished blocks
};

/// "0x0123456789abcdef": a checksum as error messages show it.
std::string checksum_hex(std::uint64_t value);

/// Feeds a state's structure to xxh3 through a small buffer (one call per few KiB, not per field):
/// the fingerprints of validation and of the plan cache.
class StructureHash {
 public:
  void bytes(const void* data, std::size_t n) {
    if (m_used + n > sizeof m_buffer) {
      flush();
      if (n > sizeof m_buffer) {
        m_sum.update(data, n);
        return;
      }
    }
    std::memcpy(m_buffer + m_used, data, n);
    m_used += n;
  }
  void u64(std::uint64_t v) {
    if (m_used + sizeof v > sizeof m_buffer) flush();
    std::memcpy(m_buffer + m_used, &v, sizeof v);  // fixed size: no call
    m_used += sizeof v;
  }
  void extents(const Extents& e) {
    u64(e.size());
    for (std::int64_t x : e) u64(static_cast<std::uint64_t>(x));
  }
  void text(const std::string& s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  std::uint64_t digest() {
    flush();
    return m_sum.digest();
  }

 private:
  void flush() {
    if (m_used != 0) m_sum.update(m_buffer, m_used);
    m_used = 0;
  }
  Checksummer m_sum;
  unsigned char m_buffer[4096];
  std::size_t m_used = 0;
};

}  // namespace cairn::detail
