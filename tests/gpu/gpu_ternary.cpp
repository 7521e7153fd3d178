// Tier 1: ternary layers (include/slidesparse/ternary.hpp, `prune --precision ternary`: I8 codes in
// {-1, 0, 1} and one per-tensor scale) on the INT8 path of SlideLinear::from_quantized, unchanged.
//
// Per case: gaussian W[n, k] -> quantize_ternary (CPU core: absmean scale from the unpruned W,
// codes pruned to the pattern), the scale repeated for every row as P.weight_scale holds it;
// gaussian bf16 X. Checked bit for bit, every element of Y[m, n]:
//   sparse path (quant_lift with lifting -> cuSPARSELt 2:4 on k' -> scale epilogue)
//     == CPU oracle: the core's per-token INT8 quantization of X (quant_lift matches it bit for
//        bit, gpu_quant_lift.cpp), int64 sums of activation codes x ternary codes, then the
//        epilogue formula ((f32(acc) * s_x) * s) + bias -> bf16 (gpu_epilogue_twin.hpp);
//     == the same layer forced on the dense path (the masked ternary codes over K on cuBLASLt
//        INT8, the same epilogue).
// Every sum is an exact integer (|acc| <= 127 k < 2^24, so f32(acc) is exact), hence "identical".
// Y is poisoned before every run and a guard after it must stay poison.
// Patterns 2:4, 4:6, 6:8, 8:10; m in {1, 33, 256}; k in {101, 1001} (no multiple of 2N), n in
// {37, 1000} (no multiple of 32). SLIDESPARSE_GPU_TEST_QUICK=1 (compute-sanitizer) keeps m <= 33
// and the smaller shapes. Without a CUDA device or cuSPARSELt the tests skip with the reason.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "gpu/gpu_epilogue_twin.hpp"
#include "gpu/gpu_layer_util.hpp"
#include "gpu/gpu_test_util.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quant.hpp"
#include "slidesparse/slide_linear.hpp"
#include "slidesparse/ternary.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

using gputest::quick;

constexpr uint16_t kPoison16 = gputest::kLayerPoison16;
constexpr int64_t kGuardElems = gputest::kLayerGuardElems;

using gputest::DeviceBuffer;
using gputest::TestStream;

struct Shape {
  int64_t n, k;
};

struct TernaryCase {
  Pattern pattern = Pattern::from_n(4);
  Shape shape{};
  bool with_bias = false;
  uint64_t seed = 0;
  std::string str() const {
    std::ostringstream s;
    s << pattern.str() << " n=" << shape.n << " k=" << shape.k << (with_bias ? " bias" : "") << " seed=" << seed;
    return s.str();
  }
};

using gputest::LayerRun;
using gputest::run_layer;

::testing::AssertionResult same_bits(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want, int64_t m,
                                     int64_t n, const std::string& what) {
  return gputest::same_bf16_bits(got.data(), want.data(), m, n, what, kPoison16);
}

std::vector<int64_t> test_ms() { return quick() ? std::vector<int64_t>{1, 33} : std::vector<int64_t>{1, 33, 256}; }
std::vector<Shape> test_shapes() {
  if (quick()) return {{37, 101}, {100, 1001}};
  return {{37, 101}, {37, 1001}, {1000, 101}, {1000, 1001}};
}

void ternary_layer(const TernaryCase& c) {
  SCOPED_TRACE(c.str());
  const int64_t n = c.shape.n, k = c.shape.k, m_max = test_ms().back();
  std::mt19937_64 rng(c.seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> w(size_t(n * k)), bias;
  for (auto& v : w) v = 0.02f * g(rng);
  if (c.with_bias) {
    bias.resize(size_t(n));
    for (auto& v : bias) v = 0.1f * g(rng);
  }
  std::vector<uint16_t> x(size_t(m_max * k));
  for (auto& v : x) v = f32_to_bf16(g(rng));

  // The weight as `prune --precision ternary` stores it.
  std::vector<int8_t> q(size_t(n * k));
  const TernaryResult tr = quantize_ternary(c.pattern, DType::kF32, w.data(), n, k, q.data(), "w");
  ASSERT_GT(tr.pruned, 0) << "the case must exercise the pattern";
  ASSERT_TRUE(check_pattern(c.pattern, DType::kI8, q.data(), n, k).ok());
  const std::vector<float> scale(size_t(n), tr.scale);

  // CPU oracle over every row of X.
  std::vector<int8_t> xq(x.size());
  std::vector<float> sx(static_cast<size_t>(m_max));
  quantize_rows_i8(DType::kBF16, x.data(), m_max, k, xq.data(), sx.data());
  std::vector<uint16_t> want(size_t(m_max * n));
  for (int64_t i = 0; i < m_max; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (int64_t col = 0; col < k; ++col) acc += int64_t(xq[size_t(i * k + col)]) * q[size_t(j * k + col)];
      ASSERT_LT(std::llabs(acc), int64_t(1) << 24);
      const int32_t acc32 = int32_t(acc);
      want[size_t(i * n + j)] =
          gputest::epilogue_twin(DType::kI32, reinterpret_cast<const uint8_t*>(&acc32), &sx[size_t(i)],
                                 &scale[size_t(j)], c.with_bias ? &bias[size_t(j)] : nullptr, DType::kBF16);
    }

  SlideLinearOptions o;
  o.pattern = c.pattern;
  o.precision = LinearPrecision::kI8;
  o.dense_below_m = 0;  // sparse unless forced
  o.search = false;
  SlideLinear layer = SlideLinear::from_quantized(q.data(), scale.data(), n, k, o, c.with_bias ? bias.data() : nullptr);
  ASSERT_GT(layer.k_sparse(), 0);

  TestStream stream;
  DeviceBuffer xd(x.size() * 2);
  const size_t y_cap = size_t(m_max * n + kGuardElems);
  DeviceBuffer yd(y_cap * 2);
  ASSERT_EQ(xd.status(), cudaSuccess);
  ASSERT_EQ(yd.status(), cudaSuccess);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(xd.get(), x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  for (int64_t m : test_ms()) {
    SCOPED_TRACE("m=" + std::to_string(m));
    LayerRun sparse, dense;
    ASSERT_TRUE(run_layer(layer, xd.get(), m, yd.get(), y_cap, LinearPath::kSparse, stream.get(), sparse));
    EXPECT_TRUE(sparse.guard_ok) << "sparse forward wrote past Y[m, n]";
    EXPECT_TRUE(same_bits(sparse.y, want, m, n, "sparse path vs CPU integer oracle"));
    ASSERT_TRUE(run_layer(layer, xd.get(), m, yd.get(), y_cap, LinearPath::kDense, stream.get(), dense));
    EXPECT_TRUE(dense.guard_ok) << "dense forward wrote past Y[m, n]";
    EXPECT_TRUE(same_bits(dense.y, sparse.y, m, n, "dense path (masked ternary codes over K) vs sparse path"));
  }
}

class TernaryLayer : public ::testing::TestWithParam<int> {};

TEST_P(TernaryLayer, SparsePathEqualsDensePathAndIntegerOracle) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  uint64_t seed = 7000 + uint64_t(GetParam()) * 100;
  for (const Shape& s : test_shapes()) {
    TernaryCase c;
    c.pattern = Pattern::from_n(GetParam());
    c.shape = s;
    c.with_bias = seed % 2 == 1;
    c.seed = seed++;
    ternary_layer(c);
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Patterns, TernaryLayer, ::testing::Values(2, 3, 4, 5),
                         [](const auto& p) {
                           const Pattern pat = Pattern::from_n(p.param);
                           return std::to_string(pat.keep()) + "of" + std::to_string(pat.group());
                         });

}  // namespace
}  // namespace slidesparse
