#include "slidesparse/types.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "common/check.hpp"

namespace slidesparse {
namespace {

struct DTypeInfo {
  DType type;
  size_t size;
  const char* token;
  const char* st_name;
  bool is_float;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, 1, "bool", "BOOL", false}, {DType::kU8, 1, "u8", "U8", false},
    {DType::kI8, 1, "i8", "I8", false},       {DType::kE5M2, 1, "e5m2", "F8_E5M2", true},
    {DType::kE4M3, 1, "e4m3", "F8_E4M3", true}, {DType::kI16, 2, "i16", "I16", false},
    {DType::kU16, 2, "u16", "U16", false},    {DType::kF16, 2, "f16", "F16", true},
    {DType::kBF16, 2, "bf16", "BF16", true},  {DType::kI32, 4, "i32", "I32", false},
    {DType::kU32, 4, "u32", "U32", false},    {DType::kF32, 4, "f32", "F32", true},
    {DType::kI64, 8, "i64", "I64", false},    {DType::kU64, 8, "u64", "U64", false},
    {DType::kF64, 8, "f64", "F64", true},
};

const DTypeInfo& info(DType t) noexcept { return kDTypes[static_cast<size_t>(t)]; }

uint32_t f32_bits(float v) noexcept {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}
float bits_f32(uint32_t b) noexcept {
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}

}  // namespace

size_t dtype_size(DType t) noexcept { return info(t).size; }
const char* dtype_token(DType t) noexcept { return info(t).token; }
const char* dtype_safetensors_name(DType t) noexcept { return info(t).st_name; }
bool dtype_is_float(DType t) noexcept { return info(t).is_float; }

std::optional<DType> dtype_from_safetensors_name(std::string_view s) noexcept {
  for (const auto& d : kDTypes)
    if (s == d.st_name) return d.type;
  return std::nullopt;
}
std::optional<DType> dtype_from_token(std::string_view s) noexcept {
  for (const auto& d : kDTypes)
    if (s == d.token) return d.type;
  return std::nullopt;
}

float bf16_to_f32(uint16_t bits) noexcept { return bits_f32(uint32_t(bits) << 16); }

uint16_t f32_to_bf16(float v) noexcept {
  uint32_t x = f32_bits(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x0040u);  // quiet NaN
  // Round to nearest even on the 16 dropped bits; a carry correctly bumps the exponent.
  x += 0x7fffu + ((x >> 16) & 1u);
  return uint16_t(x >> 16);
}

float f16_to_f32(uint16_t h) noexcept {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    // Subnormal (or zero): mant * 2^-24, exact in f32.
    float v = std::ldexp(float(mant), -24);
    return sign ? -v : v;
  }
  return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t f32_to_f16(float v) noexcept {
  uint32_t x = f32_bits(v);
  uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return uint16_t(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (x >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (x < 0x38800000u) {
    // Below the smallest normal 2^-14: scale to units of 2^-24 (exact) and round half to even.
    // A result of 0x400 is the smallest normal, whose encoding is that same integer.
    return uint16_t(sign | uint32_t(std::nearbyint(bits_f32(x) * 16777216.0f)));
  }
  x -= 112u << 23;  // rebias exponent 127 -> 15
  x = (x + 0x0fffu + ((x >> 13) & 1u)) >> 13;
  return uint16_t(sign | x);
}

float e4m3_to_f32(uint8_t b) noexcept {
  const bool neg = b & 0x80u;
  const int exp = (b >> 3) & 0xf, mant = b & 0x7;
  if (exp == 0xf && mant == 0x7) return std::numeric_limits<float>::quiet_NaN();
  float v = exp == 0 ? std::ldexp(float(mant), -9) : std::ldexp(float(8 + mant), exp - 10);
  return neg ? -v : v;
}

uint8_t f32_to_e4m3(float v) noexcept {
  if (std::isnan(v)) return 0x7f;
  const uint8_t sign = std::signbit(v) ? 0x80 : 0x00;
  const float a = std::fabs(v);
  if (a >= kE4M3Max) return uint8_t(sign | 0x7e);  // saturate (also +-inf)
  if (a < 0.015625f) {
    // Subnormal range (below 2^-6): units of 2^-9, round half to even; 8 -> smallest normal 0x08.
    return uint8_t(sign | uint32_t(std::nearbyint(a * 512.0f)));
  }
  int e;
  const float frac = std::frexp(a, &e);  // a = frac * 2^e, frac in [0.5, 1)
  // Mantissa in eighths of [1,2): (2*frac - 1) * 8 is exact in f32; round half to even.
  uint32_t m = uint32_t(std::nearbyint((2.0f * frac - 1.0f) * 8.0f));
  int exp_field = (e - 1) + 7;
  if (m == 8) {
    m = 0;
    ++exp_field;
  }
  if (exp_field > 15 || (exp_field == 15 && m == 7)) return uint8_t(sign | 0x7e);
  return uint8_t(sign | uint32_t(exp_field << 3) | m);
}

bool element_is_zero(DType t, const void* element) noexcept {
  const auto* p = static_cast<const uint8_t*>(element);
  switch (t) {
    case DType::kE4M3:
    case DType::kE5M2: return (p[0] & 0x7fu) == 0;
    case DType::kF16:
    case DType::kBF16: {
      uint16_t b;
      std::memcpy(&b, p, 2);
      return (b & 0x7fffu) == 0;
    }
    case DType::kF32: {
      uint32_t b;
      std::memcpy(&b, p, 4);
      return (b & 0x7fffffffu) == 0;
    }
    case DType::kF64: {
      uint64_t b;
      std::memcpy(&b, p, 8);
      return (b & 0x7fffffffffffffffull) == 0;
    }
    default:
      for (size_t i = 0; i < dtype_size(t); ++i)
        if (p[i]) return false;
      return true;
  }
}

float element_to_f32(DType t, const void* element) {
  const auto* p = static_cast<const uint8_t*>(element);
  auto load = [p](auto tag) {
    decltype(tag) v;
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  switch (t) {
    case DType::kU8: return float(p[0]);
    case DType::kI8: return float(int8_t(p[0]));
    case DType::kE4M3: return e4m3_to_f32(p[0]);
    case DType::kE5M2: return f16_to_f32(uint16_t(p[0] << 8));  // e5m2 is the top byte of an f16
    case DType::kI16: return float(load(int16_t{}));
    case DType::kU16: return float(load(uint16_t{}));
    case DType::kF16: return f16_to_f32(load(uint16_t{}));
    case DType::kBF16: return bf16_to_f32(load(uint16_t{}));
    case DType::kI32: return float(load(int32_t{}));
    case DType::kU32: return float(load(uint32_t{}));
    case DType::kF32: return load(float{});
    case DType::kI64: return float(load(int64_t{}));
    case DType::kU64: return float(load(uint64_t{}));
    case DType::kF64: return float(load(double{}));
    case DType::kBool: break;
  }
  SLIDESPARSE_FAIL(Status::kUnsupported, "cannot read a {} element as a number", dtype_token(t));
}

}  // namespace slidesparse
