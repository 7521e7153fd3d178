// Per-tensor absmean ternary quantization + (2N-2):2N pruning (include/slidesparse/ternary.hpp,
// docs/FORMAT.md section 3). Designed inputs whose scale is a power of two (so every quotient w/s
// is exact and the expected codes are worked out by hand in the comments), then random tensors
// against the float64 reference (src/reference), which shares no code with the core.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core_test_util.hpp"
#include "reference/reference.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quant.hpp"
#include "slidesparse/ternary.hpp"

namespace slidesparse {
namespace {

struct CoreRun {
  TernaryResult res;
  std::vector<int> q;
};

CoreRun run_core(Pattern p, DType t, const std::vector<double>& w, int64_t n, int64_t k, int threads = 1) {
  const std::vector<uint8_t> bytes = test::encode(t, w);
  std::vector<int8_t> q(size_t(n * k), int8_t(0x5A));  // poison: every code must be written
  CoreRun r;
  r.res = quantize_ternary(p, t, bytes.data(), n, k, q.data(), "layer", threads);
  r.q.assign(q.begin(), q.end());
  return r;
}

TEST(TernaryNames, PrecisionNameRoundTrips) {
  EXPECT_STREQ(precision_name(Precision::kTernary), "ternary");
  EXPECT_EQ(precision_from_name("ternary"), Precision::kTernary);
  EXPECT_FALSE(precision_from_name("Ternary").has_value());
  EXPECT_FALSE(precision_from_name("1.58").has_value());
}

// s = 2: half-way quotients round to the even 0, 1.5 rounds to 2 and is clamped to 1, and the
// quotients one ulp either side of 1/2 go to 1 and 0.
TEST(Ternary, HalfwayTiesRoundToEvenZero) {
  const double up = 1.0 + std::ldexp(1.0, -23);    // w/2 = 1/2 + 2^-24 (an f32): code 1
  const double down = 1.0 - std::ldexp(1.0, -24);  // w/2 = 1/2 - 2^-25 (an f32): code 0
  // Row 0 sums to 11 (the 2^-24 deviations cancel), row 1 to 21: 32 / 16 elements = 2.
  const std::vector<double> w = {1, -1, 3, -3, up, -down, down, 0,  //
                                 8, 8, 5, 0, 0, 0, 0, 0};
  const CoreRun r = run_core(Pattern::from_n(16), DType::kF32, w, 2, 8);  // 30:32: no group over budget
  EXPECT_EQ(r.res.scale, 2.0f);
  const std::vector<int> want = {0, 0, 1, -1, 1, 0, 0, 0,  //
                                 1, 1, 1, 0, 0, 0, 0, 0};
  EXPECT_EQ(r.q, want);
  EXPECT_EQ(r.res.nonzeros, 6);
  EXPECT_EQ(r.res.pruned, 0);
}

// The same ties in bf16 and f16 (values exact in both): w = +-1 with s = 2 is a tie, 3 gives 1.5.
TEST(Ternary, HalfwayTiesInSixteenBitTypes) {
  const std::vector<double> w = {1, -1, 3, -3, 0, -2, 4, 2};  // sum 16, 8 elements: s = 2
  for (DType t : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_token(t));
    const CoreRun r = run_core(Pattern::from_n(16), t, w, 1, 8);
    EXPECT_EQ(r.res.scale, 2.0f);
    // quotients .5 -.5 1.5 -1.5 0 -1 2 1
    EXPECT_EQ(r.q, (std::vector<int>{0, 0, 1, -1, 0, -1, 1, 1}));
  }
}

// 6:8 with s = 2 (sum 48 over 24 elements; the pruned values count in the mean):
//   row 0: six codes (+-4, +-3.75, +-1.25 all > 1), the two 1s are ties -> 0: at budget, untouched;
//   row 1: eight nonzero codes, five of them |w| = 1.5 at columns 1, 2, 4, 5, 7: the two of
//          highest index (7, 5) are dropped;
//   row 2: 0.5 -> 0 (not a code), seven nonzero codes: the smallest |w| among them, 1.25 at
//          column 4, is dropped (0.5 is smaller but already zero).
TEST(Ternary, GroupsAtAndOverBudgetWithTiesInMagnitude) {
  const std::vector<double> w = {4,   -3.75, 1.25, -1.25, 1.25, -1.25, 1,   1,     //
                                 3,   -1.5,  1.5,  2,     -1.5, 1.5,   4,   1.5,   //
                                 0.5, 3,     -1.5, 4,     1.25, -2,    2,   2.5};
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_token(t));
    const CoreRun r = run_core(Pattern::from_n(4), t, w, 3, 8);
    EXPECT_EQ(r.res.scale, 2.0f);
    const std::vector<int> want = {1, -1, 1, -1, 1, -1, 0, 0,  //
                                   1, -1, 1, 1, -1, 0, 1, 0,   //
                                   0, 1, -1, 1, 0, -1, 1, 1};
    EXPECT_EQ(r.q, want);
    EXPECT_EQ(r.res.nonzeros, 6 + 8 + 7);
    EXPECT_EQ(r.res.pruned, 3);
  }
}

// 2:4 on k = 11 (groups [0,4), [4,8) and the partial [8,11)), s = 11 / 11 = 1:
//   group 0: four equal 1s -> codes 1 1 1 1, two dropped: the lower indices 0, 1 stay;
//   group 2 (3 columns, budget 2): 3, -2, 2 -> the tie between |-2| and |2| keeps column 9.
TEST(Ternary, PartialLastGroupAndEqualMagnitudes) {
  const std::vector<double> w = {1, 1, 1, 1, 0, 0, 0, 0, 3, -2, 2};
  const CoreRun r = run_core(Pattern::from_n(2), DType::kF32, w, 1, 11);
  EXPECT_EQ(r.res.scale, 1.0f);
  EXPECT_EQ(r.q, (std::vector<int>{1, 1, 0, 0, 0, 0, 0, 0, 1, -1, 0}));
  EXPECT_EQ(r.res.pruned, 3);
}

TEST(Ternary, AllZeroTensorHasScaleOneAndZeroCodes) {
  const std::vector<double> w = {0, -0.0, 0, 0, -0.0, 0, 0, 0, 0, 0};
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    const CoreRun r = run_core(Pattern::from_n(4), t, w, 2, 5);
    EXPECT_EQ(r.res.scale, 1.0f);
    EXPECT_EQ(r.q, std::vector<int>(10, 0));
    EXPECT_EQ(r.res.nonzeros, 0);
  }
}

// A tensor so tiny that its mean rounds to 0 in f32: the scale is floored at 2^-100 (as the INT8
// quantizer's amax), w / s stays finite, and every code is 0.
TEST(Ternary, DenormalTinyTensorUsesTheFloorScale) {
  const std::vector<double> w = {std::ldexp(1.0, -149), 0, 0, 0};  // mean 2^-151 -> f32 0
  const CoreRun r = run_core(Pattern::from_n(2), DType::kF32, w, 1, 4);
  EXPECT_EQ(r.res.scale, std::ldexp(1.0f, -100));
  EXPECT_EQ(r.q, std::vector<int>(4, 0));
}

// The scale is the mean over the UNMASKED weight: a tensor whose pruned values are large enough to
// move the mean gives a different scale than its pruned copy would.
TEST(Ternary, ScaleComesFromTheUnprunedWeight) {
  // 2:4, one row: |w| = 8, 8, 8, 8 -> s = 8, all codes 1, two dropped (ties: columns 2, 3).
  const CoreRun r = run_core(Pattern::from_n(2), DType::kF32, {8, 8, -8, 8}, 1, 4);
  EXPECT_EQ(r.res.scale, 8.0f);
  EXPECT_EQ(r.q, (std::vector<int>{1, 1, 0, 0}));
  EXPECT_EQ(ternary_scale(DType::kF32, test::encode(DType::kF32, {8, 8, 0, 0}).data(), 1, 4), 4.0f);
}

// Summation in double in row-major order: 2^24 + 1 + 1 ... is exact in double (an f32 running sum
// would stall at 2^24 and give 2^21), so the mean of [2^24, 1 x 7] is (2^24 + 7) / 8 =
// 2^21 + 0.875, rounded once to f32 (spacing 0.25 there): 2^21 + 1.
TEST(Ternary, SumsInDouble) {
  std::vector<double> w = {std::ldexp(1.0, 24), 1, 1, 1, 1, 1, 1, 1};
  const float s = ternary_scale(DType::kF32, test::encode(DType::kF32, w).data(), 1, 8);
  EXPECT_EQ(s, 2097153.0f);
}

TEST(Ternary, NonFiniteWeightsAreInvalidData) {
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
    std::vector<float> w(24, 1.0f);
    w[size_t(1 * 8 + 5)] = float(bad);
    std::vector<int8_t> q(24);
    try {
      quantize_ternary(Pattern::from_n(4), DType::kF32, w.data(), 3, 8, q.data(), "model.q_proj");
      ADD_FAILURE() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::kInvalidData);
      EXPECT_NE(e.message().find("model.q_proj"), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("row 1, column 5"), std::string::npos) << e.message();
    }
  }
}

TEST(Ternary, BadArgumentsAreRejected) {
  std::vector<int8_t> q(8), w8(8, 1);
  std::vector<float> w(8, 1.0f);
  auto status_of = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return e.status();
    }
    return Status::kOk;
  };
  const Pattern p = Pattern::from_n(2);
  EXPECT_EQ(status_of([&] { quantize_ternary(p, DType::kI8, w8.data(), 2, 4, q.data()); }), Status::kUnsupported);
  EXPECT_EQ(status_of([&] { quantize_ternary(p, DType::kE4M3, w8.data(), 2, 4, q.data()); }), Status::kUnsupported);
  EXPECT_EQ(status_of([&] { quantize_ternary(p, DType::kF32, w.data(), 0, 4, q.data()); }), Status::kInvalidArgument);
  EXPECT_EQ(status_of([&] { quantize_ternary(p, DType::kF32, w.data(), 2, 0, q.data()); }), Status::kInvalidArgument);
  EXPECT_EQ(status_of([&] { quantize_ternary(p, DType::kF32, nullptr, 2, 4, q.data()); }), Status::kInvalidArgument);
  EXPECT_EQ(status_of([&] { quantize_ternary(p, DType::kF32, w.data(), 2, 4, nullptr); }), Status::kInvalidArgument);
  EXPECT_EQ(status_of([&] { ternary_scale(DType::kF32, w.data(), -1, 4); }), Status::kInvalidArgument);
}

// Random tensors (gaussian, and small integers full of ties in |w| and of exact half-way
// quotients) against the reference, for every pattern family member tested and odd k; the result
// must not depend on the thread count, hold only {-1, 0, 1} and satisfy the pattern.
TEST(Ternary, MatchesReferenceOnRandomTensors) {
  std::mt19937_64 rng(20261121);
  std::normal_distribution<float> g(0.0f, 0.02f);
  std::uniform_int_distribution<int> small(-4, 4);
  int64_t compared = 0;
  for (int pn : {2, 3, 4, 5, 16}) {
    const Pattern p = Pattern::from_n(pn);
    for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {17, 100}, {64, 1001}}) {
      for (int kind = 0; kind < 2; ++kind) {
        for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
          SCOPED_TRACE(testing::Message() << p.str() << " n=" << n << " k=" << k << " kind=" << kind << " "
                                          << dtype_token(t));
          std::vector<double> w(size_t(n * k));
          for (auto& v : w) {
            const float x = kind == 0 ? g(rng) : float(small(rng));
            // Round to the dtype first: the reference sees exactly the stored value.
            v = t == DType::kF32 ? double(x) : t == DType::kBF16 ? double(bf16_to_f32(f32_to_bf16(x)))
                                                                 : double(f16_to_f32(f32_to_f16(x)));
          }
          const CoreRun one = run_core(p, t, w, n, k, 1), four = run_core(p, t, w, n, k, 4);
          const reference::TernaryTensor ref = reference::ternary(pn, w, n, k);
          ASSERT_EQ(one.res.scale, ref.scale);
          ASSERT_EQ(one.q, ref.q);
          ASSERT_EQ(four.q, one.q);
          ASSERT_EQ(four.res.scale, one.res.scale);
          int64_t nz = 0;
          for (int c : one.q) {
            ASSERT_TRUE(c >= -1 && c <= 1) << c;
            nz += c != 0;
          }
          EXPECT_EQ(nz, one.res.nonzeros - one.res.pruned);
          std::vector<int8_t> codes(one.q.begin(), one.q.end());
          EXPECT_TRUE(check_pattern(p, DType::kI8, codes.data(), n, k).ok());
          compared += n * k;
        }
      }
    }
  }
  RecordProperty("elements_compared", std::to_string(compared));
}

}  // namespace
}  // namespace slidesparse
