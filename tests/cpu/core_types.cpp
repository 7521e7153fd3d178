// dtype tables and the scalar conversions (bf16, f16, e4m3) against brute-force table encoders
// and ldexp decoders from the reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "reference/reference.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

uint32_t bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}
float from_bits(uint32_t b) {
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}
// Same value including the sign of zero, or both NaN.
bool same(float a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return double(a) == b && std::signbit(a) == std::signbit(b);
}

TEST(DType, Tables) {
  struct Row {
    DType t;
    size_t size;
    const char* token;
    const char* st;
    bool is_float;
  };
  const Row rows[] = {
      {DType::kBool, 1, "bool", "BOOL", false}, {DType::kU8, 1, "u8", "U8", false},
      {DType::kI8, 1, "i8", "I8", false},       {DType::kE5M2, 1, "e5m2", "F8_E5M2", true},
      {DType::kE4M3, 1, "e4m3", "F8_E4M3", true}, {DType::kI16, 2, "i16", "I16", false},
      {DType::kU16, 2, "u16", "U16", false},    {DType::kF16, 2, "f16", "F16", true},
      {DType::kBF16, 2, "bf16", "BF16", true},  {DType::kI32, 4, "i32", "I32", false},
      {DType::kU32, 4, "u32", "U32", false},    {DType::kF32, 4, "f32", "F32", true},
      {DType::kI64, 8, "i64", "I64", false},    {DType::kU64, 8, "u64", "U64", false},
      {DType::kF64, 8, "f64", "F64", true},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.token);
    EXPECT_EQ(dtype_size(r.t), r.size);
    EXPECT_STREQ(dtype_token(r.t), r.token);
    EXPECT_STREQ(dtype_safetensors_name(r.t), r.st);
    EXPECT_EQ(dtype_is_float(r.t), r.is_float);
    EXPECT_EQ(dtype_from_token(r.token), r.t);
    EXPECT_EQ(dtype_from_safetensors_name(r.st), r.t);
  }
  EXPECT_FALSE(dtype_from_token("F32").has_value());
  EXPECT_FALSE(dtype_from_safetensors_name("f32").has_value());
  EXPECT_FALSE(dtype_from_token("").has_value());
}

TEST(DType, ElementIsZero) {
  const uint8_t z8[8] = {};
  for (DType t : {DType::kBool, DType::kU8, DType::kI8, DType::kE5M2, DType::kE4M3, DType::kI16,
                  DType::kU16, DType::kF16, DType::kBF16, DType::kI32, DType::kU32, DType::kF32,
                  DType::kI64, DType::kU64, DType::kF64}) {
    SCOPED_TRACE(dtype_token(t));
    const size_t n = dtype_size(t);
    EXPECT_TRUE(element_is_zero(t, z8));
    // The lone sign bit (top bit of the last little-endian byte) is -0.0 for floats only.
    uint8_t sign[8] = {};
    sign[n - 1] = 0x80;
    EXPECT_EQ(element_is_zero(t, sign), dtype_is_float(t));
    for (size_t b = 0; b < n; ++b) {
      uint8_t one[8] = {};
      one[b] = 1;
      EXPECT_FALSE(element_is_zero(t, one)) << "byte " << b;
    }
  }
}

TEST(DType, ElementToF32) {
  const int8_t i8 = -7;
  EXPECT_EQ(element_to_f32(DType::kI8, &i8), -7.0f);
  const uint8_t e4m3 = 0xC4;  // -(1 + 4/8) * 2^(8-7) = -3
  EXPECT_EQ(element_to_f32(DType::kE4M3, &e4m3), -3.0f);
  const uint8_t e5m2 = 0x3C;  // 1.0
  EXPECT_EQ(element_to_f32(DType::kE5M2, &e5m2), 1.0f);
  const uint16_t bf = 0xC0A0;  // -5
  EXPECT_EQ(element_to_f32(DType::kBF16, &bf), -5.0f);
  const uint16_t h = 0x3E00;  // 1.5
  EXPECT_EQ(element_to_f32(DType::kF16, &h), 1.5f);
  const double d = 0.25;
  EXPECT_EQ(element_to_f32(DType::kF64, &d), 0.25f);
  const int64_t i64 = -123456;
  EXPECT_EQ(element_to_f32(DType::kI64, &i64), -123456.0f);
  const uint8_t b = 1;
  try {
    element_to_f32(DType::kBool, &b);
    ADD_FAILURE() << "bool accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("bool"), std::string::npos) << e.what();
  }
}

// ---- E4M3 ------------------------------------------------------------------------------------

TEST(E4M3, DecodeMatchesFormulaAndRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    SCOPED_TRACE(testing::Message() << "code 0x" << std::hex << c);
    const float v = e4m3_to_f32(uint8_t(c));
    ASSERT_TRUE(same(v, reference::e4m3_decode(uint8_t(c))));
    if ((c & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(v));
      EXPECT_EQ(f32_to_e4m3(v), 0x7f);
      continue;
    }
    EXPECT_EQ(f32_to_e4m3(v), c);  // includes 0x80 <- -0.0f
    EXPECT_EQ(reference::e4m3_encode(v), c);
  }
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(f32_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(f32_to_e4m3(0.0f), 0x00);
  EXPECT_EQ(f32_to_e4m3(std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(f32_to_e4m3(-std::numeric_limits<float>::quiet_NaN()), 0x7f);
}

void expect_e4m3_matches(float v) {
  const uint8_t got = f32_to_e4m3(v), want = reference::e4m3_encode(double(v));
  ASSERT_EQ(got, want) << "v = " << v << " (bits 0x" << std::hex << bits(v) << ")";
}

TEST(E4M3, MidpointsTiesToEvenAndNeighbours) {
  // Adjacent finite codes of each sign; the midpoint of two e4m3 values is exact in f32.
  int ties = 0;
  for (int sign : {0, 0x80}) {
    for (int c = 0; c < 0x7e; ++c) {
      const float lo = e4m3_to_f32(uint8_t(sign | c)), hi = e4m3_to_f32(uint8_t(sign | (c + 1)));
      const float mid = (lo + hi) / 2;
      ASSERT_EQ(double(mid), (double(lo) + double(hi)) / 2);
      const int even = (c % 2 == 0) ? c : c + 1;
      EXPECT_EQ(f32_to_e4m3(mid), sign | even) << "midpoint " << mid;
      expect_e4m3_matches(mid);
      const float toward_lo = std::nextafter(mid, lo), toward_hi = std::nextafter(mid, hi);
      EXPECT_EQ(f32_to_e4m3(toward_lo), sign | c) << toward_lo;
      EXPECT_EQ(f32_to_e4m3(toward_hi), sign | (c + 1)) << toward_hi;
      expect_e4m3_matches(toward_lo);
      expect_e4m3_matches(toward_hi);
      ++ties;
    }
  }
  EXPECT_EQ(ties, 2 * 126);
}

TEST(E4M3, SaturationInfSubnormals) {
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {448.0f, 449.0f, 464.0f, 479.99f, 480.0f, 500.0f, 1e4f, 1e30f,
                  std::numeric_limits<float>::max(), inf}) {
    EXPECT_EQ(f32_to_e4m3(v), 0x7e) << v;
    EXPECT_EQ(f32_to_e4m3(-v), 0xfe) << -v;
    expect_e4m3_matches(v);
    expect_e4m3_matches(-v);
  }
  EXPECT_EQ(f32_to_e4m3(std::nextafter(448.0f, 0.0f)), 0x7e);
  EXPECT_EQ(f32_to_e4m3(432.0f), 0x7e);  // midpoint of 416 (0x7d) and 448 (0x7e): even code
  EXPECT_EQ(f32_to_e4m3(400.0f), 0x7c);  // midpoint of 384 (0x7c) and 416 (0x7d)
  // Subnormals of e4m3 (k * 2^-9) and f32 subnormals / tiny values that round to zero.
  for (int k = 0; k <= 8; ++k) expect_e4m3_matches(std::ldexp(float(k), -9));
  for (float v : {std::ldexp(1.0f, -10), std::nextafter(std::ldexp(1.0f, -10), 1.0f),
                  std::ldexp(3.0f, -11), std::ldexp(1.0f, -11), 1e-30f, 1e-40f,
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min()}) {
    expect_e4m3_matches(v);
    expect_e4m3_matches(-v);
  }
  EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half of the smallest subnormal: tie -> 0
  EXPECT_EQ(f32_to_e4m3(std::ldexp(3.0f, -10)), 0x02);  // 1.5 units: tie -> 2
  EXPECT_EQ(f32_to_e4m3(-1e-40f), 0x80);
}

TEST(E4M3, RandomFloatsMatchBruteForce) {
  const uint32_t seed = 20240601;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> log2_mag(-14.0f, 10.0f);
  std::uniform_int_distribution<uint32_t> any(0, 0xffffffffu);
  for (int i = 0; i < 1000000; ++i) {
    float v;
    if (i % 4 == 3) {
      v = from_bits(any(rng));  // any bit pattern, NaN included
      if (std::isnan(v)) {
        ASSERT_EQ(f32_to_e4m3(v), 0x7f);
        continue;
      }
    } else {
      v = std::exp2(log2_mag(rng));
      if (i % 2) v = -v;
    }
    expect_e4m3_matches(v);
  }
}

// ---- bf16 / f16 ------------------------------------------------------------------------------

TEST(Bf16, ExhaustiveDecodeEncode) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const float v = bf16_to_f32(uint16_t(c));
    ASSERT_TRUE(same(v, reference::bf16_decode(uint16_t(c)))) << std::hex << c;
    if (std::isnan(v)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(v)))) << std::hex << c;
      continue;
    }
    ASSERT_EQ(f32_to_bf16(v), c) << std::hex << c;
  }
}

TEST(F16, ExhaustiveDecodeEncode) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const float v = f16_to_f32(uint16_t(c));
    ASSERT_TRUE(same(v, reference::f16_decode(uint16_t(c)))) << std::hex << c;
    if (std::isnan(v)) {
      ASSERT_TRUE(std::isnan(f16_to_f32(f32_to_f16(v)))) << std::hex << c;
      continue;
    }
    ASSERT_EQ(f32_to_f16(v), c) << std::hex << c;
  }
}

// Midpoints between adjacent codes (exact in f32) must go to the even code; one f32 ulp away they
// must go to the nearer code. Every adjacent pair of finite codes, both signs, plus the overflow
// boundary (max + ulp/2 rounds to inf, its even neighbour).
template <class Dec, class Enc, class RefEnc>
void check_midpoints(uint32_t max_finite, uint32_t inf_code, Dec dec, Enc enc, RefEnc ref_enc) {
  for (uint32_t sign : {0u, 0x8000u}) {
    for (uint32_t c = 0; c <= max_finite; ++c) {
      const uint32_t next = c == max_finite ? inf_code : c + 1;
      const float lo = dec(uint16_t(sign | c));
      // For the last pair the upper neighbour is the would-be next value max + ulp (= 2^(emax+1),
      // which overflows f32 for bf16, hence double).
      const double hi = c == max_finite ? 2.0 * lo - double(dec(uint16_t(sign | (c - 1))))
                                        : double(dec(uint16_t(sign | next)));
      const double mid_exact = (double(lo) + hi) / 2;
      const float mid = float(mid_exact);
      ASSERT_EQ(double(mid), mid_exact) << std::hex << c;
      const float up = sign ? -std::numeric_limits<float>::infinity()
                            : std::numeric_limits<float>::infinity();
      const uint32_t even = (c % 2 == 0) ? c : next;
      ASSERT_EQ(enc(mid), sign | even) << "midpoint above code 0x" << std::hex << c;
      ASSERT_EQ(enc(std::nextafter(mid, lo)), sign | c) << std::hex << c;
      ASSERT_EQ(enc(std::nextafter(mid, up)), sign | next) << std::hex << c;
      ASSERT_EQ(ref_enc(double(mid)), sign | even) << std::hex << c;
      ASSERT_EQ(ref_enc(double(std::nextafter(mid, lo))), sign | c) << std::hex << c;
    }
  }
}

TEST(Bf16, MidpointsRoundToNearestEven) {
  check_midpoints(0x7f7f, 0x7f80, bf16_to_f32, f32_to_bf16, reference::bf16_encode);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
}

TEST(F16, MidpointsRoundToNearestEven) {
  check_midpoints(0x7bff, 0x7c00, f16_to_f32, f32_to_f16, reference::f16_encode);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal: tie -> 0
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::denorm_min()), 0x8000);
}

TEST(Bf16F16, RandomFloatsMatchBruteForce) {
  const uint32_t seed = 77;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> any(0, 0xffffffffu);
  std::uniform_real_distribution<float> log2_mag(-26.0f, 17.0f);
  for (int i = 0; i < 300000; ++i) {
    float v = i % 2 ? from_bits(any(rng)) : std::exp2(log2_mag(rng)) * (i % 4 ? 1.0f : -1.0f);
    if (std::isnan(v)) continue;
    ASSERT_EQ(f32_to_bf16(v), reference::bf16_encode(v)) << v << " bits 0x" << std::hex << bits(v);
    ASSERT_EQ(f32_to_f16(v), reference::f16_encode(v)) << v << " bits 0x" << std::hex << bits(v);
  }
}

}  // namespace
}  // namespace slidesparse
