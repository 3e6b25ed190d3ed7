#include "core/checksum.hpp"

#include <xxhash.h>

#include <cinttypes>
#include <cstdio>

namespace cairn::detail {

std::uint64_t checksum(const void* data, std::size_t bytes) noexcept {
  return XXH3_64bits(data, bytes);
}

Checksummer::Checksummer() : m_state(XXH3_createState()) {
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(m_state));
}
Checksummer::~Checksummer() {
  XXH3_freeState(static_cast<XXH3_state_t*>(m_state));
}
void Checksummer::reset() noexcept {
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(m_state));
}

void Checksummer::update(const void* data, std::size_t bytes) noexcept {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(m_state), data, bytes);
}
std::uint64_t Checksummer::digest() const noexcept {
  return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(m_state));
}

std::string checksum_hex(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%016" PRIx64, value);
  return text;
}

}  // namespace cairn::detail
