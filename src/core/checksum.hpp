// xxh3-64 of a chunk's row-major bytes: the checksum stored per chunk.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cairn::detail {

std::uint64_t checksum(const void* data, std::size_t bytes) noexcept;

/// Streaming form, for bytes that arrive in pieces (a strided copy).
class Checksummer {
 public:
  Checksummer();
  ~Checksummer();
  Checksummer(const Checksummer&) = delete;
  Checksummer& operator=(const Checksummer&) = delete;
  void update(const void* data, std::size_t bytes) noexcept;
  std::uint64_t digest() const noexcept;

 private:
  void* m_state;
};

}  // namespace cairn::detail
