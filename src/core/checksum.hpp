// xxh3-64 of a chunk's row-major bytes: the checksum stored per chunk.
#pragma once

#include <cairn/state.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

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
