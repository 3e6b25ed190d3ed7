// Element types of arrays in a checkpoint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cairn {

/// The element type of an array. Values are stable: they are stored in checkpoints and used by the C API.
enum class DType : std::uint8_t {
  Int8 = 0,
  Int16 = 1,
  Int32 = 2,
  Int64 = 3,
  UInt8 = 4,
  UInt16 = 5,
  UInt32 = 6,
  UInt64 = 7,
  Float32 = 8,
  Float64 = 9,
  Bool = 10,      ///< One byte, 0 or 1; h5py reads it as numpy bool.
  Float16 = 11,   ///< IEEE 754 binary16; h5py reads it as numpy float16.
  BFloat16 = 12,  ///< bfloat16: binary32's sign and exponent with a 7-bit mantissa.
};

/// Storage type for IEEE half-precision elements (the bits, unconverted).
struct float16_t {
  std::uint16_t bits;
};
/// Storage type for bfloat16 elements (the bits, unconverted).
struct bfloat16_t {
  std::uint16_t bits;
};

/// True when `dtype` is one of the enumerators above (values may come from C or from a file).
bool dtype_is_valid(DType dtype) noexcept;
/// Bytes per element. Throws UsageError for an invalid dtype.
std::size_t dtype_size(DType dtype);
/// Lower-case name ("float64", "bfloat16"); "invalid" for an invalid dtype.
std::string_view dtype_name(DType dtype) noexcept;
/// True when every value of `from` is represented exactly in `to` (e.g. int32 to int64, float32 to float64).
bool dtype_converts_losslessly(DType from, DType to) noexcept;

/// The DType of a C++ element type: dtype_of<double>() == DType::Float64.
template <class T>
constexpr DType dtype_of() noexcept;

#define CAIRN_DTYPE_OF(T, D)               \
  template <>                              \
  constexpr DType dtype_of<T>() noexcept { \
    return DType::D;                       \
  }
CAIRN_DTYPE_OF(std::int8_t, Int8)
CAIRN_DTYPE_OF(std::int16_t, Int16)
CAIRN_DTYPE_OF(std::int32_t, Int32)
CAIRN_DTYPE_OF(std::int64_t, Int64)
CAIRN_DTYPE_OF(std::uint8_t, UInt8)
CAIRN_DTYPE_OF(std::uint16_t, UInt16)
CAIRN_DTYPE_OF(std::uint32_t, UInt32)
CAIRN_DTYPE_OF(std::uint64_t, UInt64)
CAIRN_DTYPE_OF(float, Float32)
CAIRN_DTYPE_OF(double, Float64)
CAIRN_DTYPE_OF(bool, Bool)
CAIRN_DTYPE_OF(float16_t, Float16)
CAIRN_DTYPE_OF(bfloat16_t, BFloat16)
#undef CAIRN_DTYPE_OF

}  // namespace cairn
