// Little-endian binary encoding for plans and metadata, with bounds-checked decoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cairn::detail {

class ByteWriter {
 public:
  void u8(std::uint8_t v) { m_out.push_back(static_cast<std::byte>(v)); }
  void u32(std::uint32_t v) { raw(&v, sizeof v); }
  void u64(std::uint64_t v) { raw(&v, sizeof v); }
  void i32(std::int32_t v) { raw(&v, sizeof v); }
  void i64(std::int64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void str(const std::string& s);
  void i64s(const std::vector<std::int64_t>& v);
  void raw(const void* data, std::size_t bytes);
  std::vector<std::byte>& bytes() noexcept { return m_out; }

 private:
  std::vector<std::byte> m_out;
};

/// Decodes what ByteWriter wrote. Any overrun or absurd length throws CorruptCheckpointError
/// with `what` (the object being decoded) in the message.
class ByteReader {
 public:
  ByteReader(const std::byte* data, std::size_t size, std::string what)
      : m_data(data), m_size(size), m_what(std::move(what)) {}
  std::uint8_t u8();
  std::uint32_t u32();
  std::uint64_t u64();
  std::int32_t i32();
  std::int64_t i64();
  double f64();
  std::string str();
  std::vector<std::int64_t> i64s();
  /// A count of items, each at least `min_item_bytes` long, checked against the bytes left.
  std::size_t count(std::size_t min_item_bytes);
  void raw(void* out, std::size_t bytes);
  std::size_t remaining() const noexcept { return m_size - m_pos; }
  [[noreturn]] void fail(const std::string& why) const;

 private:
  template <class T>
  T value() {
    T v;
    raw(&v, sizeof v);
    return v;
  }

  const std::byte* m_data;
  std::size_t m_size;
  std::size_t m_pos = 0;
  std::string m_what;
};

}  // namespace cairn::detail
