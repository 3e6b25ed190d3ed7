#include "core/checksum.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <limits>

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

namespace {
constexpr std::uint64_t min_block_bytes = std::uint64_t{4} << 20;
constexpr std::uint64_t max_blocks = 16;
}  // namespace

std::int64_t checksum_block_rows(const Extents& shape, std::size_t element_size) noexcept {
  if (shape.empty() || shape[0] < 2 || element_size == 0) return 0;
  std::uint64_t row_bytes = element_size;
  for (std::size_t d = 1; d < shape.size(); ++d) row_bytes *= static_cast<std::uint64_t>(shape[d]);
  if (row_bytes == 0) return 0;
  const auto rows = static_cast<std::uint64_t>(shape[0]);
  if (rows > std::numeric_limits<std::uint64_t>::max() / row_bytes) return 0;  // not a real chunk
  const std::uint64_t chunk_bytes = rows * row_bytes;
  if (chunk_bytes < 2 * min_block_bytes) return 0;
  const std::uint64_t block_bytes = std::max(min_block_bytes, (chunk_bytes + max_blocks - 1) / max_blocks);
  const std::uint64_t block_rows = (block_bytes + row_bytes - 1) / row_bytes;
  return block_rows >= rows ? 0 : static_cast<std::int64_t>(block_rows);
}

std::uint64_t checksum_block_bytes(const Extents& shape, std::int64_t block_rows, std::size_t element_size) noexcept {
  if (block_rows <= 0) return 0;
  std::uint64_t bytes = static_cast<std::uint64_t>(block_rows) * element_size;
  for (std::size_t d = 1; d < shape.size(); ++d) bytes *= static_cast<std::uint64_t>(shape[d]);
  return bytes;
}

std::size_t checksum_block_count(std::int64_t rows, std::int64_t block_rows) noexcept {
  if (block_rows <= 0 || rows <= 0) return 0;
  return static_cast<std::size_t>(rows / block_rows + (rows % block_rows != 0 ? 1 : 0));
}

std::uint64_t checksum_of_blocks(const std::vector<std::uint64_t>& blocks) noexcept {
  Checksummer sum;
  for (std::uint64_t b : blocks) {
    unsigned char word[8];
    for (int i = 0; i < 8; ++i) word[i] = static_cast<unsigned char>(b >> (8 * i));
    sum.update(word, sizeof word);
  }
  return sum.digest();
}

void ChunkHasher::update(const void* data, std::size_t bytes) noexcept {
  if (m_block_bytes == 0) {
    m_sum.update(data, bytes);
    return;
  }
  const auto* p = static_cast<const unsigned char*>(data);
  while (bytes > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes, m_block_bytes - m_in_block));
    m_sum.update(p, n);
    m_in_block += n;
    p += n;
    bytes -= n;
    if (m_in_block == m_block_bytes) {
      m_blocks.push_back(m_sum.digest());
      m_sum.reset();
      m_in_block = 0;
    }
  }
}

std::vector<std::uint64_t> ChunkHasher::block_checksums() const {
  std::vector<std::uint64_t> blocks = m_blocks;
  if (m_block_bytes != 0 && m_in_block != 0) blocks.push_back(m_sum.digest());
  return blocks;
}

std::uint64_t ChunkHasher::digest() const {
  return m_block_bytes == 0 ? m_sum.digest() : checksum_of_blocks(block_checksums());
}

std::string checksum_hex(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%016" PRIx64, value);
  return text;
}

}  // namespace cairn::detail
