// xxh3-64 of a chunk's row-major bytes: the checksum stored per chunk.
#pragma once

#include <cstddef>
#include <cstdint>
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

}  // namespace cairn::detail
