// Tier 1: SlideLinear (include/slidesparse/slide_linear.hpp), the whole layer: quant_lift -> GEMM
// (cuSPARSELt 2:4 on K', or the cuBLASLt dense fallback on K) -> scale_epilogue.
//
// Oracle B (exact integer data, i8 / e4m3): every weight channel j is q_w * 2^e_j with integers
// q_w and one entry of magnitude Q (127 for i8, 448 for e4m3) on an odd column, so the channel's
// amax is Q * 2^e_j, its scale 2^e_j and its quantization exact; every token row i is
// q_x * 2^e_i with one entry of magnitude Q on an even column (bf16 holds 127 * 2^e and 448 * 2^e
// exactly), so the per-token scale is 2^e_i and quantization is exact too. The big entries of X
// and W never meet, which bounds every sum (i8: < 2^17, e4m3: < 2^13, exact even in the FP8
// tensor cores' reduced accumulator). Then
//   Y[i, j] == bf16( acc[i, j] * 2^(e_i + e_j) + bias[j] )   with acc the int64 reference over
// the weight pruned by the core (magnitude), the value inside exact in f32 (asserted), so one
// rounding. bf16 layers: small-integer X and W, Y == bf16(bf16(acc) + bias) as the GEMM rounds
// once and the epilogue adds the bias in f32.
// Oracle C: the sparse path and the dense fallback (same pruned, quantized operands) give the same
// bytes on that data. Oracle D: gaussian data against a float64 reference of X . W_pruned^T:
// the sparse path's relative error is at most 2x the dense path's (same precision, same operands)
// and below a per-precision ceiling. Y is poisoned with 0xFF (NaN in bf16: never a result here)
// before every run; every element of Y[m, n] is checked, and a guard after it must stay poison.
// Shapes: m in {1, 15, 16, 33, 1000}, k in {100, 1000, 1001} (not multiples of 2N), n in {64, 1000}.
// Without a CUDA device (or without cuSPARSELt) the tests skip with the reason.
// SLIDESPARSE_GPU_TEST_QUICK=1 runs a reduced shape set (for compute-sanitizer).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <limits>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend.hpp"
#include "gpu/gpu_layer_util.hpp"
#include "gpu/gpu_test_util.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/slide_linear.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

using gputest::quick;

constexpr uint8_t kPoison = gputest::kLayerPoison;
constexpr uint16_t kPoison16 = gputest::kLayerPoison16;

// SLIDESPARSE_TEST_LINEAR_BACKEND=sm90 runs every test below on the sm90 backend (our CUTLASS
// kernels with the fused epilogue; scripts/gpu_sm90.sh does), "library" on cuSPARSELt/cuBLASLt;
// unset: the default (kAuto, which is the library path whenever search is off).
LinearBackend test_backend() {
  const char* b = std::getenv("SLIDESPARSE_TEST_LINEAR_BACKEND");
  if (b == nullptr || *b == 0) return LinearBackend::kAuto;
  return std::string(b) == "sm90" ? LinearBackend::kSm90 : LinearBackend::kLibrary;
}

constexpr int64_t kGuardElems = gputest::kLayerGuardElems;

using gputest::DeviceBuffer;
using gputest::TestStream;

struct Shape {
  int64_t m, n, k;
  std::string str() const {
    return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
  }
};

std::vector<int64_t> test_ms() { return quick() ? std::vector<int64_t>{1, 33} : std::vector<int64_t>{1, 15, 16, 33, 1000}; }
std::vector<std::pair<int64_t, int64_t>> test_nks() {  // (n, k)
  if (quick()) return {{64, 100}, {1000, 1001}};
  return {{64, 100}, {64, 1000}, {64, 1001}, {1000, 100}, {1000, 1000}, {1000, 1001}};
}

const char* name(LinearPrecision p) { return linear_precision_name(p); }

// f(begin, end) over [0, n) on all cores.
template <class F>
void parallel_rows(int64_t n, F&& f) {
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(std::thread::hardware_concurrency(), n));
  std::vector<std::thread> pool;
  for (int64_t i = 0; i < t; ++i) pool.emplace_back(f, n * i / t, n * (i + 1) / t);
  for (auto& th : pool) th.join();
}

// ---- exact integer data -------------------------------------------------------------------------

// One layer's exact case: W (float, as given to from_dense), X for m_max rows (bf16 bits), and the
// expected Y bits for every row.
struct IntCase {
  LinearPrecision precision;
  Pattern pattern = Pattern::from_n(4);
  bool dense_only = false;
  int64_t m_max = 0, n = 0, k = 0;
  bool with_bias = false;
  uint64_t seed = 0;
  std::vector<float> w, bias;
  std::vector<uint16_t> x;     // [m_max, k] bf16
  std::vector<uint16_t> want;  // [m_max, n] bf16
  std::string str() const {
    std::ostringstream s;
    s << name(precision) << " " << (dense_only ? std::string("dense-only") : pattern.str()) << " n=" << n
      << " k=" << k << (with_bias ? " bias" : "") << " seed=" << seed;
    return s.str();
  }
};

::testing::AssertionResult make_int_case(IntCase& c) {
  std::mt19937_64 rng(c.seed);
  const bool scaled = c.precision != LinearPrecision::kBF16;
  const int big = c.precision == LinearPrecision::kI8 ? 127 : 448;
  const int small = c.precision == LinearPrecision::kI8 ? 8 : c.precision == LinearPrecision::kE4M3 ? 2 : 4;
  std::uniform_int_distribution<int> val(-small, small), wexp(-2, 2), xexp(-1, 2), bval(-64, 64);
  const int64_t m = c.m_max, n = c.n, k = c.k;
  auto sign = [&] { return (rng() & 1) ? -1 : 1; };

  std::vector<int> ew(size_t(n), 0), ex(size_t(m), 0);
  c.w.assign(size_t(n * k), 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    if (scaled) ew[size_t(j)] = wexp(rng);
    for (int64_t q = 0; q < k; ++q) c.w[size_t(j * k + q)] = std::ldexp(float(val(rng)), ew[size_t(j)]);
    if (scaled) {  // the channel's amax, on an odd column (k >= 2)
      const int64_t col = 2 * ((j * 7) % (k / 2)) + 1;
      c.w[size_t(j * k + col)] = std::ldexp(float(sign() * big), ew[size_t(j)]);
    }
  }
  std::vector<int32_t> qx(size_t(m * k));
  c.x.resize(size_t(m * k));
  for (int64_t i = 0; i < m; ++i) {
    if (scaled) ex[size_t(i)] = xexp(rng);
    for (int64_t q = 0; q < k; ++q) qx[size_t(i * k + q)] = val(rng);
    if (scaled) qx[size_t(i * k + 2 * ((i * 3) % (k / 2)))] = sign() * big;  // the token's amax, even column
    for (int64_t q = 0; q < k; ++q) {
      const float v = std::ldexp(float(qx[size_t(i * k + q)]), ex[size_t(i)]);
      c.x[size_t(i * k + q)] = f32_to_bf16(v);
      if (bf16_to_f32(c.x[size_t(i * k + q)]) != v)
        return ::testing::AssertionFailure() << "test data: X value " << v << " is not a bf16";
    }
  }
  c.bias.clear();
  if (c.with_bias) {
    c.bias.resize(size_t(n));
    for (auto& b : c.bias) b = std::ldexp(float(bval(rng)), -3);
  }

  // The weight the layer multiplies by: pruned by the core (as from_dense does), as integers.
  std::vector<float> wp = c.w;
  if (!c.dense_only) prune_inplace(c.pattern, PruneMethod::kMagnitude, DType::kF32, wp.data(), n, k, nullptr);
  std::vector<int32_t> qw(size_t(n * k));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t q = 0; q < k; ++q) qw[size_t(j * k + q)] = int32_t(std::ldexp(wp[size_t(j * k + q)], -ew[size_t(j)]));

  c.want.assign(size_t(m * n), 0);
  std::mutex problem_mu;
  std::string problem;
  parallel_rows(m, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const int32_t* xr = &qx[size_t(i * k)];
      for (int64_t j = 0; j < n; ++j) {
        const int32_t* wr = &qw[size_t(j * k)];
        int64_t acc = 0;
        for (int64_t q = 0; q < k; ++q) acc += int64_t(xr[q]) * wr[q];
        uint16_t out;
        if (scaled) {
          const double exact = std::ldexp(double(acc), ex[size_t(i)] + ew[size_t(j)]) +
                               (c.with_bias ? double(c.bias[size_t(j)]) : 0.0);
          if (double(float(exact)) != exact || std::fabs(double(acc)) >= 16777216.0) {
            std::lock_guard<std::mutex> lock(problem_mu);
            problem = "test data: Y value " + std::to_string(exact) + " is not exact in f32";
            continue;
          }
          out = f32_to_bf16(float(exact));
        } else {
          out = f32_to_bf16(float(acc));  // the GEMM's one rounding (acc < 2^24)
          if (c.with_bias) out = f32_to_bf16(bf16_to_f32(out) + c.bias[size_t(j)]);
          // The sm90 backend adds the bias to the f32 accumulator inside the GEMM: one rounding.
          if (c.with_bias && test_backend() == LinearBackend::kSm90) out = f32_to_bf16(float(acc) + c.bias[size_t(j)]);
        }
        c.want[size_t(i * n + j)] = out;
      }
    }
  });
  if (!problem.empty()) return ::testing::AssertionFailure() << problem;
  return ::testing::AssertionSuccess();
}

// Poisons Y (and a guard after it), runs forward(m rows), downloads Y[m, n] and the guard.
using gputest::LayerRun;
using gputest::run_layer;

::testing::AssertionResult same_bits(const std::vector<uint16_t>& got, const uint16_t* want, int64_t m, int64_t n,
                                     const std::string& what) {
  return gputest::same_bf16_bits(got.data(), want, m, n, what, kPoison16);
}

SlideLinearOptions options_for(const IntCase& c) {
  SlideLinearOptions o;
  o.backend = test_backend();
  o.backend = test_backend();
  o.pattern = c.pattern;
  o.precision = c.precision;
  o.dense_below_m = 0;  // sparse unless forced
  o.search = false;
  o.dense_only = c.dense_only;
  return o;
}

// Exact oracle over every m for one layer, on the sparse path (kAuto with dense_below_m = 0) and
// the forced dense fallback; both must equal the reference and each other.
void exact_layer(IntCase& c) {
  SCOPED_TRACE(c.str());
  ASSERT_TRUE(make_int_case(c));
  SlideLinear layer =
      SlideLinear::from_dense(c.w.data(), c.n, c.k, options_for(c), c.with_bias ? c.bias.data() : nullptr);
  TestStream stream;
  DeviceBuffer x(c.x.size() * 2);
  const size_t y_cap = size_t(c.m_max * c.n + kGuardElems);
  DeviceBuffer y(y_cap * 2);
  ASSERT_EQ(x.status(), cudaSuccess);
  ASSERT_EQ(y.status(), cudaSuccess);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(x.get(), c.x.data(), c.x.size() * 2, cudaMemcpyHostToDevice));
  for (int64_t m : test_ms()) {
    if (m > c.m_max) continue;
    SCOPED_TRACE("m=" + std::to_string(m));
    LayerRun auto_run, dense_run;
    ASSERT_TRUE(run_layer(layer, x.get(), m, y.get(), y_cap, LinearPath::kAuto, stream.get(), auto_run));
    EXPECT_TRUE(auto_run.guard_ok) << "forward wrote past Y[m, n]";
    EXPECT_TRUE(same_bits(auto_run.y, c.want.data(), m, c.n, c.dense_only ? "dense-only" : "sparse path"));
    // The library GEMM called directly (no recorded graph, SlideLinearOptions::bind_gemm_graphs):
    // the same bits.
    layer.set_bind_gemm_graphs(false, stream.get());
    LayerRun direct_run;
    ASSERT_TRUE(run_layer(layer, x.get(), m, y.get(), y_cap, LinearPath::kAuto, stream.get(), direct_run));
    layer.set_bind_gemm_graphs(true, stream.get());
    EXPECT_TRUE(same_bits(direct_run.y, c.want.data(), m, c.n, "GEMM called without the recorded graph"));
    if (c.dense_only) continue;
    ASSERT_TRUE(run_layer(layer, x.get(), m, y.get(), y_cap, LinearPath::kDense, stream.get(), dense_run));
    EXPECT_TRUE(dense_run.guard_ok) << "dense forward wrote past Y[m, n]";
    EXPECT_TRUE(same_bits(dense_run.y, auto_run.y.data(), m, c.n, "dense fallback vs sparse path"));
  }
}

class SlideLinearExact : public ::testing::TestWithParam<LinearPrecision> {};

TEST_P(SlideLinearExact, EqualsIntegerReferenceOnBothPaths) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  uint64_t seed = 100 + uint64_t(GetParam()) * 1000;
  for (int pattern_n : {4, 3, 2})  // 6:8, 4:6, 2:4
    for (auto [n, k] : test_nks()) {
      IntCase c;
      c.precision = GetParam();
      c.pattern = Pattern::from_n(pattern_n);
      c.m_max = test_ms().back();
      c.n = n;
      c.k = k;
      c.with_bias = (seed % 2) == 1;
      c.seed = seed++;
      exact_layer(c);
      if (HasFatalFailure()) return;
    }
}

INSTANTIATE_TEST_SUITE_P(Precisions, SlideLinearExact,
                         ::testing::Values(LinearPrecision::kI8, LinearPrecision::kE4M3, LinearPrecision::kBF16),
                         [](const auto& p) { return std::string(name(p.param)); });

TEST(SlideLinear, DenseOnlyLayerEqualsIntegerReference) {
  SLIDESPARSE_REQUIRE_GPU();
  for (LinearPrecision p : {LinearPrecision::kI8, LinearPrecision::kE4M3, LinearPrecision::kBF16}) {
    IntCase c;
    c.precision = p;
    c.dense_only = true;
    c.m_max = 33;
    c.n = 1000;
    c.k = 1001;
    c.with_bias = true;
    c.seed = 7 + uint64_t(p);
    exact_layer(c);
    if (HasFatalFailure()) return;
  }
}

// m past kMaxBucketRows runs in chunks; every chunk lands in its rows of Y.
TEST(SlideLinear, ChunksCallsBeyondTheLargestBucket) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  if (quick()) GTEST_SKIP() << "SLIDESPARSE_GPU_TEST_QUICK: the 70000-row call is left out";
  IntCase c;
  c.precision = LinearPrecision::kI8;
  c.pattern = Pattern::from_n(4);
  c.m_max = SlideLinear::kMaxBucketRows + 4464;
  c.n = 64;
  c.k = 100;
  c.with_bias = true;
  c.seed = 4242;
  ASSERT_TRUE(make_int_case(c));
  SlideLinear layer = SlideLinear::from_dense(c.w.data(), c.n, c.k, options_for(c), c.bias.data());
  TestStream stream;
  DeviceBuffer x(c.x.size() * 2);
  const size_t y_cap = size_t(c.m_max * c.n + kGuardElems);
  DeviceBuffer y(y_cap * 2);
  ASSERT_EQ(x.status(), cudaSuccess);
  ASSERT_EQ(y.status(), cudaSuccess);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(x.get(), c.x.data(), c.x.size() * 2, cudaMemcpyHostToDevice));
  LayerRun r;
  ASSERT_TRUE(run_layer(layer, x.get(), c.m_max, y.get(), y_cap, LinearPath::kAuto, stream.get(), r));
  EXPECT_TRUE(r.guard_ok);
  EXPECT_TRUE(same_bits(r.y, c.want.data(), c.m_max, c.n, "chunked forward"));
}

// ---- gaussian data: tolerance against float64, relative to the dense path ---------------------

// Relative error ceilings (Frobenius norm over Y) for a correct layer on N(0,1) activations and
// weights: quantization of both operands dominates (i8: ~1%, e4m3: ~4%), bf16 rounds the
// operands and Y once (~0.5%). A layout or indexing bug gives errors near 1.
double error_ceiling(LinearPrecision p) {
  switch (p) {
    case LinearPrecision::kI8: return 0.03;
    case LinearPrecision::kE4M3: return 0.1;
    case LinearPrecision::kBF16: return 0.02;
  }
  return 0;
}

TEST(SlideLinear, GaussianErrorAtMostTwiceTheDensePath) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  const Shape s{quick() ? 33 : 256, 1000, 1000};
  std::mt19937_64 rng(99);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> w(size_t(s.n * s.k)), bias(size_t(s.n));
  std::vector<uint16_t> x(size_t(s.m * s.k));
  for (auto& v : w) v = 0.05f * g(rng);
  for (auto& v : bias) v = 0.1f * g(rng);
  for (auto& v : x) v = f32_to_bf16(g(rng));
  TestStream stream;
  DeviceBuffer xd(x.size() * 2);
  const size_t y_cap = size_t(s.m * s.n + kGuardElems);
  DeviceBuffer yd(y_cap * 2);
  ASSERT_EQ(xd.status(), cudaSuccess);
  ASSERT_EQ(yd.status(), cudaSuccess);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(xd.get(), x.data(), x.size() * 2, cudaMemcpyHostToDevice));

  for (int pattern_n : {4, 3, 2}) {
    const Pattern pat = Pattern::from_n(pattern_n);
    std::vector<float> wp = w;
    prune_inplace(pat, PruneMethod::kMagnitude, DType::kF32, wp.data(), s.n, s.k, nullptr);
    std::vector<double> ref(size_t(s.m * s.n));
    parallel_rows(s.m, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i)
        for (int64_t j = 0; j < s.n; ++j) {
          double acc = bias[size_t(j)];
          for (int64_t q = 0; q < s.k; ++q)
            acc += double(bf16_to_f32(x[size_t(i * s.k + q)])) * double(wp[size_t(j * s.k + q)]);
          ref[size_t(i * s.n + j)] = acc;
        }
    });
    for (LinearPrecision p : {LinearPrecision::kI8, LinearPrecision::kE4M3, LinearPrecision::kBF16}) {
      SCOPED_TRACE(std::string(name(p)) + " " + pat.str() + " " + s.str());
      SlideLinearOptions o;
      o.backend = test_backend();
      o.pattern = pat;
      o.precision = p;
      o.dense_below_m = 0;
      o.search = false;
      SlideLinear layer = SlideLinear::from_dense(w.data(), s.n, s.k, o, bias.data());
      double err[2] = {0, 0};
      for (int path = 0; path < 2; ++path) {
        LayerRun r;
        ASSERT_TRUE(run_layer(layer, xd.get(), s.m, yd.get(), y_cap, path ? LinearPath::kDense : LinearPath::kSparse,
                              stream.get(), r));
        EXPECT_TRUE(r.guard_ok);
        double num = 0, den = 0;
        int64_t non_finite = 0;
        for (size_t e = 0; e < ref.size(); ++e) {
          const double got = bf16_to_f32(r.y[e]);
          if (!std::isfinite(got)) ++non_finite;
          num += (got - ref[e]) * (got - ref[e]);
          den += ref[e] * ref[e];
        }
        ASSERT_EQ(non_finite, 0) << (path ? "dense" : "sparse") << " path left non-finite outputs";
        err[path] = std::sqrt(num / den);
      }
      const std::string key = std::string(name(p)) + "_" + std::to_string(pat.keep()) + "of" +
                              std::to_string(pat.group());
      RecordProperty(key + "_rel_err_sparse", std::to_string(err[0]));
      RecordProperty(key + "_rel_err_dense", std::to_string(err[1]));
      EXPECT_LE(err[0], 2.0 * err[1]) << "sparse relative error " << err[0] << " vs dense " << err[1];
      EXPECT_LE(err[1], error_ceiling(p)) << "dense relative error " << err[1];
      EXPECT_LE(err[0], error_ceiling(p)) << "sparse relative error " << err[0];
    }
  }
}

// ---- CUDA graphs, warmup, crossover, rejections ----------------------------------------------

TEST(SlideLinear, GraphCaptureReplaysForward) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  IntCase c;
  c.precision = LinearPrecision::kI8;
  c.pattern = Pattern::from_n(4);
  c.m_max = 66;
  c.n = 1000;
  c.k = 1000;
  c.with_bias = true;
  c.seed = 31337;
  ASSERT_TRUE(make_int_case(c));
  SlideLinear layer = SlideLinear::from_dense(c.w.data(), c.n, c.k, options_for(c), c.bias.data());
  TestStream stream;
  const int64_t m = 33;
  DeviceBuffer x(c.x.size() * 2);
  const size_t y_cap = size_t(c.m_max * c.n + kGuardElems);
  DeviceBuffer y(y_cap * 2);
  ASSERT_EQ(x.status(), cudaSuccess);
  ASSERT_EQ(y.status(), cudaSuccess);
  // Rows [0, m) and [m, 2m) of the case: two inputs for the same captured pointer.
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(x.get(), c.x.data(), size_t(m * c.k) * 2, cudaMemcpyHostToDevice));

  layer.warmup(64, stream.get());
  SLIDESPARSE_CUDA_ASSERT(cudaMemsetAsync(y.get(), kPoison, y_cap * 2, stream.get()));
  cudaGraph_t graph = nullptr;
  SLIDESPARSE_CUDA_ASSERT(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
  try {
    layer.forward(x.get(), m, y.get(), stream.get());
  } catch (const std::exception& e) {
    cudaStreamEndCapture(stream.get(), &graph);
    if (graph) cudaGraphDestroy(graph);
    FAIL() << "forward under capture threw: " << e.what();
  }
  SLIDESPARSE_CUDA_ASSERT(cudaStreamEndCapture(stream.get(), &graph));
  cudaGraphExec_t exec = nullptr;
  SLIDESPARSE_CUDA_ASSERT(cudaGraphInstantiate(&exec, graph, 0));
  SLIDESPARSE_CUDA_ASSERT(cudaStreamSynchronize(stream.get()));
  std::vector<uint16_t> probe(size_t(c.n));
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(probe.data(), y.get(), probe.size() * 2, cudaMemcpyDeviceToHost));
  EXPECT_TRUE(std::all_of(probe.begin(), probe.end(), [](uint16_t v) { return v == kPoison16; }))
      << "capturing must not execute the forward";

  for (int replay = 0; replay < 2; ++replay) {
    SCOPED_TRACE("replay " + std::to_string(replay));
    const uint16_t* rows = c.x.data() + size_t(replay * m * c.k);
    SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(x.get(), rows, size_t(m * c.k) * 2, cudaMemcpyHostToDevice));
    SLIDESPARSE_CUDA_ASSERT(cudaMemsetAsync(y.get(), kPoison, y_cap * 2, stream.get()));
    SLIDESPARSE_CUDA_ASSERT(cudaGraphLaunch(exec, stream.get()));
    SLIDESPARSE_CUDA_ASSERT(cudaStreamSynchronize(stream.get()));
    std::vector<uint16_t> got(size_t(m * c.n) + size_t(kGuardElems));
    SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(got.data(), y.get(), got.size() * 2, cudaMemcpyDeviceToHost));
    EXPECT_TRUE(std::all_of(got.begin() + m * c.n, got.end(), [](uint16_t v) { return v == kPoison16; }));
    got.resize(size_t(m * c.n));
    EXPECT_TRUE(same_bits(got, c.want.data() + size_t(replay * m * c.n), m, c.n, "graph replay"));
    // The eager forward on the same input gives the same bytes.
    LayerRun eager;
    ASSERT_TRUE(run_layer(layer, x.get(), m, y.get(), y_cap, LinearPath::kAuto, stream.get(), eager));
    EXPECT_TRUE(same_bits(got, eager.y.data(), m, c.n, "graph replay vs eager forward"));
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST(SlideLinear, UnwarmedBucketUnderCaptureIsRejected) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  std::vector<float> w(size_t(64 * 64), 1.0f);
  SlideLinearOptions o;
  o.backend = test_backend();
  o.dense_below_m = 0;
  o.search = false;
  SlideLinear layer = SlideLinear::from_dense(w.data(), 64, 64, o);
  TestStream stream;
  DeviceBuffer x(size_t(16 * 64) * 2), y(size_t(16 * 64) * 2);
  SLIDESPARSE_CUDA_ASSERT(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
  const cudaError_t before = cudaMemsetAsync(y.get(), 0, 64, stream.get());  // a node before the refusal
  Status status = Status::kOk;
  std::string message;
  try {
    layer.forward(x.get(), 16, y.get(), stream.get());
  } catch (const Error& e) {
    status = e.status();
    message = e.what();
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream.get(), &graph);
  if (graph) cudaGraphDestroy(graph);
  EXPECT_EQ(before, cudaSuccess);
  EXPECT_EQ(end, cudaSuccess) << "the refusal must leave the capture intact";
  EXPECT_EQ(status, Status::kInvalidArgument);
  EXPECT_NE(message.find("warmup"), std::string::npos) << message;
}

// dense_below_m = -1: the crossover is measured at build; whatever it picks, every m is exact.
TEST(SlideLinear, MeasuredCrossoverPicksAPathThatIsExact) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  if (quick()) GTEST_SKIP() << "SLIDESPARSE_GPU_TEST_QUICK: the crossover probes (up to 16384 rows) are left out";
  IntCase c;
  c.precision = LinearPrecision::kI8;
  c.pattern = Pattern::from_n(4);
  c.m_max = 5000;
  c.n = 1000;
  c.k = 1000;
  c.seed = 5;
  ASSERT_TRUE(make_int_case(c));
  SlideLinearOptions o = options_for(c);
  o.dense_below_m = -1;
  o.search = true;
  SlideLinear layer = SlideLinear::from_dense(c.w.data(), c.n, c.k, o);
  const auto& probes = layer.crossover_probes();
  ASSERT_EQ(probes.size(), std::size(kCrossoverProbeMs));
  for (size_t i = 0; i < probes.size(); ++i) {
    const auto& p = probes[i];
    EXPECT_EQ(p.m, kCrossoverProbeMs[i]);
    EXPECT_GT(p.sparse_us, 0.0) << "m=" << p.m;
    EXPECT_GT(p.dense_us, 0.0) << "m=" << p.m;
    EXPECT_GT(p.dense_over_sparse, 0.0) << "m=" << p.m;
  }
  const int64_t cross = layer.dense_below_m();
  EXPECT_EQ(cross, crossover_from_probes(probes));
  EXPECT_TRUE(cross == 0 || cross == std::numeric_limits<int64_t>::max() ||
              std::any_of(probes.begin(), probes.end(), [&](const auto& p) { return p.m == cross; }))
      << cross;
  std::cout << "[          ] " << layer.describe() << "\n";
  TestStream stream;
  DeviceBuffer x(c.x.size() * 2);
  const size_t y_cap = size_t(c.m_max * c.n + kGuardElems);
  DeviceBuffer y(y_cap * 2);
  ASSERT_EQ(x.status(), cudaSuccess);
  ASSERT_EQ(y.status(), cudaSuccess);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(x.get(), c.x.data(), c.x.size() * 2, cudaMemcpyHostToDevice));
  for (int64_t m : {int64_t(1), int64_t(100), int64_t(1000), int64_t(5000)}) {
    SCOPED_TRACE("m=" + std::to_string(m) + (layer.takes_dense_path(m) ? " (dense)" : " (sparse)"));
    LayerRun r;
    ASSERT_TRUE(run_layer(layer, x.get(), m, y.get(), y_cap, LinearPath::kAuto, stream.get(), r));
    EXPECT_TRUE(r.guard_ok);
    EXPECT_TRUE(same_bits(r.y, c.want.data(), m, c.n, "auto path"));
  }
}

TEST(SlideLinear, WarmupCreatesEveryBucketItNeeds) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  std::vector<float> w(size_t(64 * 128));
  std::mt19937_64 rng(3);
  for (auto& v : w) v = float(int(rng() % 9) - 4);
  SlideLinearOptions o;
  o.backend = test_backend();
  o.dense_below_m = 40;  // m < 40 dense: buckets 16, 32 (and 64 for m = 33..39) dense; 64.. sparse
  o.search = false;
  SlideLinear layer = SlideLinear::from_dense(w.data(), 64, 128, o);
  EXPECT_TRUE(layer.takes_dense_path(39));
  EXPECT_FALSE(layer.takes_dense_path(40));
  TestStream stream;
  layer.warmup(200, stream.get());
  const std::string d = layer.describe();
  for (const char* line : {"dense bucket 16 rows", "dense bucket 32 rows", "dense bucket 64 rows",
                           "sparse bucket 64 rows", "sparse bucket 128 rows", "sparse bucket 256 rows"})
    EXPECT_NE(d.find(line), std::string::npos) << "missing '" << line << "' in\n" << d;
  EXPECT_EQ(d.find("sparse bucket 32 rows"), std::string::npos) << d;
  EXPECT_EQ(d.find("bucket 512 rows"), std::string::npos) << d;
  EXPECT_EQ(SlideLinear::bucket_rows(1), 16);
  EXPECT_EQ(SlideLinear::bucket_rows(17), 32);
  EXPECT_EQ(SlideLinear::bucket_rows(1025), 2048);
  EXPECT_EQ(SlideLinear::bucket_rows(1 << 20), SlideLinear::kMaxBucketRows);
}

template <class F>
void expect_error(F&& f, Status status, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected " << status_name(status) << " mentioning '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(SlideLinear, RejectsBadArguments) {
  SLIDESPARSE_REQUIRE_GPU();
  std::vector<float> w(size_t(64 * 64), 1.0f);
  SlideLinearOptions dense;
  dense.backend = test_backend();
  dense.dense_only = true;
  dense.search = false;
  expect_error([&] { SlideLinear::from_dense(w.data(), 0, 64, dense); }, Status::kInvalidArgument, "n >= 1");
  expect_error([&] { SlideLinear::from_dense(nullptr, 64, 64, dense); }, Status::kInvalidArgument, "null");
  SlideLinearOptions bad = dense;
  bad.dense_below_m = -2;
  expect_error([&] { SlideLinear::from_dense(w.data(), 64, 64, bad); }, Status::kInvalidArgument, "dense_below_m");
  std::vector<float> inf = w;
  inf[70] = std::numeric_limits<float>::infinity();
  expect_error([&] { SlideLinear::from_dense(inf.data(), 64, 64, dense); }, Status::kInvalidData, "W[1, 6]");
  SlideLinear layer = SlideLinear::from_dense(w.data(), 64, 64, dense);
  DeviceBuffer x(size_t(16 * 64) * 2), y(size_t(16 * 64) * 2);
  expect_error([&] { layer.forward(x.get(), -1, y.get(), nullptr); }, Status::kInvalidArgument, "negative");
  expect_error([&] { layer.forward(nullptr, 4, y.get(), nullptr); }, Status::kInvalidArgument, "null");
  expect_error([&] { layer.forward(x.get(), 4, y.get(), nullptr, LinearPath::kSparse); }, Status::kInvalidArgument,
               "dense_only");
  layer.forward(x.get(), 0, nullptr, nullptr);  // m == 0: nothing to do, nothing checked
  SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
}

}  // namespace
}  // namespace slidesparse
