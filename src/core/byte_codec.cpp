#include "core/byte_codec.hpp"

#include <cairn/error.hpp>

#include <cstring>

namespace cairn::detail {

void ByteWriter::raw(const void* data, std::size_t bytes) {
  const auto* p = static_cast<const std::byte*>(data);
  m_out.insert(m_out.end(), p, p + bytes);
}

void ByteWriter::str(const std::string& s) {
  u64(s.size());
  raw(s.data(), s.size());
}

void ByteWriter::i64s(const std::vector<std::int64_t>& v) {
  u64(v.size());
  raw(v.data(), v.size() * sizeof(std::int64_t));
}

void ByteReader::fail(const std::string& why) const {
  throw CorruptCheckpointError(m_what + ": " + why + " at byte " + std::to_string(m_pos) + " of " +
                               std::to_string(m_size));
}

void ByteReader::raw(void* out, std::size_t bytes) {
  if (bytes > remaining()) fail("unexpected end of data");
  if (bytes) std::memcpy(out, m_data + m_pos, bytes);
  m_pos += bytes;
}

std::uint8_t ByteReader::u8() {
  return value<std::uint8_t>();
}
std::uint32_t ByteReader::u32() {
  return value<std::uint32_t>();
}
std::uint64_t ByteReader::u64() {
  return value<std::uint64_t>();
}
std::int32_t ByteReader::i32() {
  return value<std::int32_t>();
}
std::int64_t ByteReader::i64() {
  return value<std::int64_t>();
}
double ByteReader::f64() {
  return value<double>();
}

std::size_t ByteReader::count(std::size_t min_item_bytes) {
  const std::uint64_t n = u64();
  if (min_item_bytes > 0 && n > remaining() / min_item_bytes) fail("count " + std::to_string(n) + " exceeds the data");
  return static_cast<std::size_t>(n);
}

std::string ByteReader::str() {
  const std::size_t n = count(1);
  std::string s(n, '\0');
  raw(s.data(), n);
  return s;
}

std::vector<std::int64_t> ByteReader::i64s() {
  const std::size_t n = count(sizeof(std::int64_t));
  std::vector<std::int64_t> v(n);
  raw(v.data(), n * sizeof(std::int64_t));
  return v;
}

}  // namespace cairn::detail
