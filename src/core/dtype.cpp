#include <cairn/dtype.hpp>
#include <cairn/error.hpp>

#include <string>

namespace cairn {

bool dtype_is_valid(DType dtype) noexcept {
  return static_cast<unsigned>(dtype) <= static_cast<unsigned>(DType::BFloat16);
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Int8:
    case DType::UInt8:
    case DType::Bool: return 1;
    case DType::Int16:
    case DType::UInt16:
    case DType::Float16:
    case DType::BFloat16: return 2;
    case DType::Int32:
    case DType::UInt32:
    case DType::Float32: return 4;
    case DType::Int64:
    case DType::UInt64:
    case DType::Float64: return 8;
  }
  throw UsageError("unknown dtype value " + std::to_string(static_cast<unsigned>(dtype)));
}

std::string_view dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::Int8: return "int8";
    case DType::Int16: return "int16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::UInt16: return "uint16";
    case DType::UInt32: return "uint32";
    case DType::UInt64: return "uint64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Bool: return "bool";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
  }
  return "invalid";
}

namespace {
enum class Family { Signed, Unsigned, Float, Bool };
Family family(DType d) {
  switch (d) {
    case DType::Int8:
    case DType::Int16:
    case DType::Int32:
    case DType::Int64: return Family::Signed;
    case DType::UInt8:
    case DType::UInt16:
    case DType::UInt32:
    case DType::UInt64: return Family::Unsigned;
    case DType::Bool: return Family::Bool;
    default: return Family::Float;
  }
}
// Bits of mantissa (with the implicit one) and of exponent range, for float widening checks.
int mantissa_bits(DType d) {
  switch (d) {
    case DType::Float16: return 11;
    case DType::BFloat16: return 8;
    case DType::Float32: return 24;
    default: return 53;
  }
}
int exponent_bits(DType d) {
  switch (d) {
    case DType::Float16: return 5;
    case DType::BFloat16:
    case DType::Float32: return 8;
    default: return 11;
  }
}
}  // namespace

bool dtype_converts_losslessly(DType from, DType to) noexcept {
  if (!dtype_is_valid(from) || !dtype_is_valid(to)) return false;
  if (from == to) return true;
  const Family f = family(from);
  const Family t = family(to);
  const std::size_t fs = dtype_size(from);
  const std::size_t ts = dtype_size(to);
  switch (f) {
    case Family::Bool: return false;
    case Family::Signed:
      if (t == Family::Signed) return ts > fs;
      if (t == Family::Float) return static_cast<int>(fs * 8) <= mantissa_bits(to);
      return false;
    case Family::Unsigned:
      if (t == Family::Unsigned || t == Family::Signed) return ts > fs;
      if (t == Family::Float) return static_cast<int>(fs * 8) < mantissa_bits(to);
      return false;
    case Family::Float:
      return t == Family::Float && mantissa_bits(to) >= mantissa_bits(from) && exponent_bits(to) >= exponent_bits(from);
  }
  return false;
}

}  // namespace cairn
