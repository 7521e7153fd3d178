// slidesparse: element types. Tokens follow one vocabulary (f32 f16 bf16 e4m3 i8 i32 ...);
// safetensors names (F32, BF16, F8_E4M3 ...) are converted at the IO boundary only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace slidesparse {

// Every dtype the safetensors format defines, so that untouched tensors can be copied
// byte for byte. Only a subset can be pruned/quantized (see is_float / the converter).
enum class DType : uint8_t {
  kBool, kU8, kI8, kE5M2, kE4M3, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kI64, kU64, kF64,
};

size_t dtype_size(DType t) noexcept;                 // bytes per element
const char* dtype_token(DType t) noexcept;           // "f32", "bf16", "e4m3", "i8", ...
const char* dtype_safetensors_name(DType t) noexcept;  // "F32", "BF16", "F8_E4M3", "I8", ...
std::optional<DType> dtype_from_safetensors_name(std::string_view s) noexcept;
std::optional<DType> dtype_from_token(std::string_view s) noexcept;
bool dtype_is_float(DType t) noexcept;  // f64 f32 f16 bf16 e4m3 e5m2

// Scalar conversions (all exact where the target can represent the value; rounding is
// round-to-nearest-even; the 8-bit float encoders saturate to the largest finite value).
float bf16_to_f32(uint16_t bits) noexcept;
uint16_t f32_to_bf16(float v) noexcept;
float f16_to_f32(uint16_t bits) noexcept;
uint16_t f32_to_f16(float v) noexcept;
float e4m3_to_f32(uint8_t bits) noexcept;   // 0x7F / 0xFF are NaN (OCP E4M3 "fn": no inf)
uint8_t f32_to_e4m3(float v) noexcept;      // saturating: |v| > 448 -> +-448; NaN -> 0x7F

inline constexpr float kE4M3Max = 448.0f;
inline constexpr float kI8Max = 127.0f;

// "Is this stored element zero?" per dtype: -0.0 counts as zero for float types.
bool element_is_zero(DType t, const void* element) noexcept;

// Read one element of a floating/integer dtype as float (f64 narrowed). Throws kUnsupported for bool.
float element_to_f32(DType t, const void* element);

}  // namespace slidesparse
