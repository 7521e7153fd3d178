// Tier 1: the sm90 backend (src/backends/sm90: our CUTLASS Hopper GEMMs with the fused scale
// epilogue) and its compressor.
//
// Compressor: the CPU model (compressed_layout.cpp) against hand-worked layouts, then the GPU
// compressor (CUTLASS's, after our 2:4 check) against the CPU model byte for byte, on weights with
// groups of 0, 1 and 2 nonzeros and -0.0 codes.
// GEMMs, every compiled kernel of each precision (sparse and dense), on exact integer data (X and W
// small integers, W pruned 2:4 by the core, or 6:8 then slid with X lifted, as in
// gpu_backends.cpp):
//   Oracle B (exact): run() gives D = bf16_rn(acc) with acc the int64 reference (exact in every
//     accumulator: i32, or f32 with all sums < 2^24), padding rows/columns exactly 0; run_fused with
//     power-of-two scales and integer biases gives bf16_rn(f32(ref) * s_x * s_w + bias), which the
//     f32 arithmetic computes exactly up to the one final rounding.
//   Oracle C (differential): with arbitrary positive scales and biases, run_fused equals
//     cuSPARSELt's (sparse) or cuBLASLt's (dense) raw GEMM followed by scale_epilogue, byte for
//     byte (same accumulators, same f32 operations in the same order, no FMA contraction), and
//     writes nothing outside Y[0:m, 0:n].
// Without an sm_90 device every GPU test skips with the reason; without CUTLASS in the build too.
// SLIDESPARSE_GPU_TEST_QUICK=1 runs a reduced shape set (for compute-sanitizer).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "gpu/gpu_test_util.hpp"
#include "kernels/epilogue.cuh"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/slide_linear.hpp"
#include "slidesparse/types.hpp"

#if SLIDESPARSE_HAVE_SM90
#include "backends/sm90/sm90_kernels.hpp"
#endif

namespace slidesparse {
namespace {

using gputest::quick;

std::string sm90_unavailable() {
  const std::string why = gputest::gpu_unavailable();
  if (!why.empty()) return "no CUDA device: " + why;
  if (!sm90_compiled()) return "this build has no sm90 backend (run scripts/fetch_cutlass.sh and reconfigure)";
  int dev = 0, major = 0, minor = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  if (major * 10 + minor != 90) return "the sm90 kernels need an sm_90 GPU, this one is sm_" + std::to_string(major * 10 + minor);
  return {};
}

#define SLIDESPARSE_REQUIRE_SM90()                          \
  do {                                                      \
    const std::string why_ = sm90_unavailable();            \
    if (!why_.empty()) GTEST_SKIP() << why_;                \
  } while (0)

class Buf {
 public:
  explicit Buf(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0 && cudaMalloc(&p_, bytes_) != cudaSuccess) throw std::runtime_error("cudaMalloc");
  }
  ~Buf() {
    if (p_) cudaFree(p_);
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  void* get() const { return p_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  void up(const void* h, size_t n) const {
    const cudaError_t e = cudaMemcpy(p_, h, n, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) throw std::runtime_error(std::string("upload: ") + cudaGetErrorString(e));
  }
  std::vector<uint8_t> down(size_t n) const {
    std::vector<uint8_t> h(n);
    if (cudaMemcpy(h.data(), p_, n, cudaMemcpyDeviceToHost) != cudaSuccess) throw std::runtime_error("download");
    return h;
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

void encode(GemmPrecision p, float v, uint8_t* out) {
  switch (p) {
    case GemmPrecision::kI8: *out = uint8_t(int8_t(v)); return;
    case GemmPrecision::kE4M3: *out = f32_to_e4m3(v); return;
    default: {
      const uint16_t b = f32_to_bf16(v);
      std::memcpy(out, &b, 2);
    }
  }
}

// ---- the compressor ------------------------------------------------------------------------------

#if SLIDESPARSE_HAVE_SM90

TEST(Sm90Compressor, CpuModelLayoutByHand) {
  // 8-bit: atoms of 64 rows x 128 k, 16 bytes per row of an atom, two groups per byte.
  sm90::CompressedLayout l = sm90::compressed_layout(GemmPrecision::kE4M3, 100, 160);
  EXPECT_EQ(l.value_bytes, 100u * 80u);
  EXPECT_EQ(l.meta_rows, 128);
  EXPECT_EQ(l.meta_k, 256);
  EXPECT_EQ(l.meta_bytes, 128u * 256u / 8u);
  auto pos = [](GemmPrecision p, int64_t n, int64_t r, int64_t g) {
    const sm90::MetaPos m = sm90::meta_position(p, n, 0, r, g);
    return std::pair<size_t, bool>{m.byte, m.high};
  };
  using P = std::pair<size_t, bool>;
  EXPECT_EQ(pos(GemmPrecision::kI8, 100, 0, 0), P(0, false));
  EXPECT_EQ(pos(GemmPrecision::kI8, 100, 0, 1), P(0, true));
  EXPECT_EQ(pos(GemmPrecision::kI8, 100, 0, 2), P(1, false));
  EXPECT_EQ(pos(GemmPrecision::kI8, 100, 1, 0), P(16, false));
  EXPECT_EQ(pos(GemmPrecision::kI8, 100, 63, 31), P(63 * 16 + 15, true));
  EXPECT_EQ(pos(GemmPrecision::kI8, 100, 64, 0), P(1024, false));    // next atom along rows
  EXPECT_EQ(pos(GemmPrecision::kI8, 100, 0, 32), P(128 * 16, false));  // next atom along k: n64 * 128 / 8
  // 16-bit: atoms of 64 rows x 64 k with the interleaved order of the header comment.
  l = sm90::compressed_layout(GemmPrecision::kBF16, 64, 64);
  EXPECT_EQ(l.value_bytes, 64u * 32u * 2u);
  EXPECT_EQ(l.meta_bytes, 64u * 64u / 8u);
  EXPECT_EQ(pos(GemmPrecision::kBF16, 64, 0, 1), P(0, true));    // k = 4
  EXPECT_EQ(pos(GemmPrecision::kBF16, 64, 0, 2), P(1, false));   // k = 8
  EXPECT_EQ(pos(GemmPrecision::kBF16, 64, 8, 0), P(2, false));   // r1 = 1: +16 elements
  EXPECT_EQ(pos(GemmPrecision::kBF16, 64, 0, 8), P(4, false));   // k = 32 (k2 = 1): +32
  EXPECT_EQ(pos(GemmPrecision::kBF16, 64, 1, 0), P(8, false));   // r0 = 1: +64
  EXPECT_EQ(pos(GemmPrecision::kBF16, 64, 0, 4), P(64, false));  // k = 16 (k1 = 1): +512
  EXPECT_EQ(pos(GemmPrecision::kBF16, 64, 16, 0), P(128, false));  // r2 = 1: +1024
}

TEST(Sm90Compressor, CpuModelGroupCases) {
  // One i8 row of 8 groups (k = 32): none, one at 3, one at 1, two, one at 0, one at 2, two, two.
  const int8_t row[32] = {0, 0, 0, 0,  0, 0, 0, 5,  0, 7, 0, 0,  1, 0, 2, 0,
                          -3, 0, 0, 0, 0, 0, 9, 0,  0, 4, 0, 6,  8, 0, 0, -1};
  std::vector<uint8_t> values(16), meta(sm90::compressed_layout(GemmPrecision::kI8, 1, 32).meta_bytes);
  sm90::compress_cpu(GemmPrecision::kI8, row, 1, 32, values.data(), meta.data());
  const int8_t want_v[16] = {0, 0, 0, 5, 7, 0, 1, 2, -3, 0, 9, 0, 4, 6, 8, -1};
  EXPECT_EQ(std::memcmp(values.data(), want_v, 16), 0);
  // nibble = i0 | i1 << 2: (0,0) (0,3) (1,3) (0,2) (0,3) (2,3) (1,3) (0,3)
  const uint8_t nib[8] = {0x0, 0xC, 0xD, 0x8, 0xC, 0xE, 0xD, 0xC};
  for (int g = 0; g < 8; ++g) {
    const uint8_t b = meta[size_t(g / 2)];
    EXPECT_EQ((g % 2) ? (b >> 4) : (b & 0xF), nib[g]) << "group " << g;
  }
  for (size_t i = 4; i < meta.size(); ++i) ASSERT_EQ(meta[i], 0) << "padding byte " << i;
  // e4m3: -0.0 (0x80) is zero and never stored; +-1.0 are 0x38 / 0xB8.
  const uint8_t e[4] = {0x80, 0x38, 0x00, 0x80};
  std::vector<uint8_t> v2(2), m2(sm90::compressed_layout(GemmPrecision::kE4M3, 1, 4).meta_bytes);
  sm90::compress_cpu(GemmPrecision::kE4M3, e, 1, 4, v2.data(), m2.data());
  EXPECT_EQ(v2[0], 0x38);
  EXPECT_EQ(v2[1], 0x00);
  EXPECT_EQ(m2[0], 0xD);
}

// Random 2:4 weights with every group kind and -0.0 codes (floating-point precisions).
std::vector<uint8_t> random_24(GemmPrecision p, int64_t n, int64_t k, uint64_t seed) {
  const size_t es = p == GemmPrecision::kBF16 ? 2 : 1;
  std::vector<uint8_t> w(size_t(n * k) * es, 0);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> kind(0, 5), pos(0, 3), val(1, 7), sign(0, 1);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < k / 4; ++g) {
      const int kd = kind(rng);
      const int cnt = kd == 0 ? 0 : kd == 1 ? 1 : 2;
      int a = pos(rng), b = pos(rng);
      while (b == a) b = pos(rng);
      for (int i = 0; i < 4; ++i) {
        uint8_t* e = &w[size_t(r * k + 4 * g + i) * es];
        const bool keep = (cnt >= 1 && i == a) || (cnt == 2 && i == b);
        if (keep) {
          encode(p, float(sign(rng) ? -val(rng) : val(rng)), e);
        } else if (p != GemmPrecision::kI8 && sign(rng)) {
          encode(p, -0.0f, e);  // a negative zero: must count as zero
        }
      }
    }
  return w;
}

TEST(Sm90Compressor, GpuEqualsCpuModelByteForByte) {
  SLIDESPARSE_REQUIRE_SM90();
  uint64_t seed = 500;
  std::vector<std::pair<int64_t, int64_t>> shapes{{32, 32}, {96, 128}, {100, 160}, {1000, 4096}, {64, 5376}};
  if (quick()) shapes = {{32, 32}, {100, 160}};
  for (GemmPrecision p : {GemmPrecision::kE4M3, GemmPrecision::kI8, GemmPrecision::kBF16}) {
    for (const auto& [n, k] : shapes) {
      SCOPED_TRACE(std::string(gemm_precision_name(p)) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
      const std::vector<uint8_t> w = random_24(p, n, k, ++seed);
      const sm90::CompressedLayout l = sm90::compressed_layout(p, n, k);
      std::vector<uint8_t> cv(l.value_bytes), cm(l.meta_bytes);
      sm90::compress_cpu(p, w.data(), n, k, cv.data(), cm.data());
      Buf wd(w.size()), vd(l.value_bytes), md(l.meta_bytes), bad(8);
      wd.up(w.data(), w.size());
      SLIDESPARSE_CUDA_ASSERT(cudaMemset(vd.get(), 0xA5, l.value_bytes));
      SLIDESPARSE_CUDA_ASSERT(cudaMemset(md.get(), 0xA5, l.meta_bytes));
      int64_t first_bad = 0;
      SLIDESPARSE_CUDA_ASSERT(sm90::compress_gpu(p, wd.get(), n, k, vd.get(), md.get(), bad.as<int64_t>(), &first_bad,
                                                 nullptr));
      ASSERT_EQ(first_bad, -1);
      const auto gv = vd.down(l.value_bytes), gm = md.down(l.meta_bytes);
      size_t dv = 0, dm = 0;
      for (size_t i = 0; i < gv.size(); ++i) dv += gv[i] != cv[i];
      for (size_t i = 0; i < gm.size(); ++i) dm += gm[i] != cm[i];
      EXPECT_EQ(dv, 0u) << "value bytes differ";
      EXPECT_EQ(dm, 0u) << "metadata bytes differ";
      if (dm) {
        for (size_t i = 0, shown = 0; i < gm.size() && shown < 5; ++i)
          if (gm[i] != cm[i]) {
            ADD_FAILURE() << "meta[" << i << "] gpu 0x" << std::hex << int(gm[i]) << " cpu 0x" << int(cm[i]);
            ++shown;
          }
      }
    }
  }
}

TEST(Sm90Compressor, RejectsNon24NamingTheGroup) {
  SLIDESPARSE_REQUIRE_SM90();
  std::vector<uint8_t> w = random_24(GemmPrecision::kI8, 64, 128, 9);
  // Row 5, group 7 gets a third nonzero; row 9 group 2 a fourth (the first one is reported).
  for (int i = 0; i < 4; ++i) w[size_t(5 * 128 + 28 + i)] = uint8_t(i + 1);
  for (int i = 0; i < 3; ++i) w[size_t(9 * 128 + 8 + i)] = uint8_t(i + 1);
  const sm90::CompressedLayout l = sm90::compressed_layout(GemmPrecision::kI8, 64, 128);
  Buf wd(w.size()), vd(l.value_bytes), md(l.meta_bytes), bad(8);
  wd.up(w.data(), w.size());
  int64_t first_bad = 0;
  SLIDESPARSE_CUDA_ASSERT(sm90::compress_gpu(GemmPrecision::kI8, wd.get(), 64, 128, vd.get(), md.get(),
                                             bad.as<int64_t>(), &first_bad, nullptr));
  EXPECT_EQ(first_bad, 5 * 128 + 28);
}

#endif  // SLIDESPARSE_HAVE_SM90

// ---- GEMMs: exact integer data -------------------------------------------------------------------

struct Case {
  GemmPrecision precision;
  int64_t m, n, k, k_gemm;
  int pattern_n;
  std::vector<uint8_t> x, w;  // [m, k_gemm], [n, k_gemm] in the input dtype
  std::vector<int64_t> ref;   // [m, n]
  std::string str() const {
    std::ostringstream s;
    s << gemm_precision_name(precision) << " m=" << m << " n=" << n << " k=" << k << " k_gemm=" << k_gemm
      << " pattern " << Pattern::from_n(pattern_n).str();
    return s.str();
  }
};

int value_range(GemmPrecision p) { return p == GemmPrecision::kI8 ? 16 : p == GemmPrecision::kE4M3 ? 2 : 4; }

// pattern_n = 2: native 2:4 on k; 4: 6:8 slid to k' with X lifted; 0: dense (no pruning).
Case make_case(GemmPrecision p, int64_t m, int64_t n, int64_t k, int pattern_n, uint64_t seed) {
  Case c{p, m, n, k, k, pattern_n, {}, {}, {}};
  const int q = value_range(p);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> any(-q, q), mag(1, q), coin(0, 1);
  std::vector<float> xf(size_t(m * k)), wf(size_t(n * k));
  for (auto& v : xf) v = float(any(rng));
  for (auto& v : wf) v = float(coin(rng) ? mag(rng) : -mag(rng));
  if (pattern_n > 0) prune_inplace(Pattern::from_n(pattern_n), PruneMethod::kMagnitude, DType::kF32, wf.data(), n, k, nullptr);
  c.ref.assign(size_t(m * n), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (int64_t t = 0; t < k; ++t) acc += int64_t(xf[size_t(i * k + t)]) * int64_t(wf[size_t(j * k + t)]);
      c.ref[size_t(i * n + j)] = acc;
    }
  const DType dt = gemm_input_dtype(p);
  const size_t es = dtype_size(dt);
  std::vector<uint8_t> xb(xf.size() * es), wb(wf.size() * es);
  for (size_t i = 0; i < xf.size(); ++i) encode(p, xf[i], &xb[i * es]);
  for (size_t i = 0; i < wf.size(); ++i) encode(p, wf[i], &wb[i * es]);
  if (pattern_n > 2) {
    const Pattern pat = Pattern::from_n(pattern_n);
    c.k_gemm = slide_k(pat, k);
    c.w.assign(size_t(n * c.k_gemm) * es, 0);
    c.x.assign(size_t(m * c.k_gemm) * es, 0);
    slide_weight(pat, dt, wb.data(), n, k, c.w.data(), c.k_gemm);
    lift_activations(pat, dt, xb.data(), m, k, c.x.data(), c.k_gemm);
  } else {
    c.w = std::move(wb);
    c.x = std::move(xb);
  }
  return c;
}

uint16_t bf16_of(float v) { return f32_to_bf16(v); }

// Runs `plan` (prepared from c.w) with X uploaded into a zero-padded [m_rows, k] buffer.
struct Bound {
  std::unique_ptr<GemmPlan> plan;
  std::unique_ptr<Buf> x, w;
};

Bound bind(std::unique_ptr<GemmPlan> plan, const Case& c) {
  Bound b;
  const GemmLayout& l = plan->layout();
  b.x = std::make_unique<Buf>(l.x_bytes());
  b.w = std::make_unique<Buf>(c.w.size());
  if (cudaMemset(b.x->get(), 0, l.x_bytes()) != cudaSuccess) throw std::runtime_error("memset");
  b.x->up(c.x.data(), c.x.size());
  b.w->up(c.w.data(), c.w.size());
  plan->prepare_weight(b.w->get(), nullptr);
  b.plan = std::move(plan);
  return b;
}

constexpr uint8_t kPoison = 0x7F;  // bf16 0x7F7F: 3.4e38, never a result here

// Oracle B on run(): D = bf16(acc) over [m_rows, n_cols], zero padding.
::testing::AssertionResult check_run(const Case& c, GemmPlan& plan, const Buf& x) {
  const GemmLayout& l = plan.layout();
  Buf d(size_t(l.m_rows * l.n_cols) * 2);
  cudaMemset(d.get(), kPoison, size_t(l.m_rows * l.n_cols) * 2);
  plan.run(x.get(), d.get(), nullptr, nullptr);
  if (cudaDeviceSynchronize() != cudaSuccess) return ::testing::AssertionFailure() << "run failed";
  const auto h = d.down(size_t(l.m_rows * l.n_cols) * 2);
  int64_t bad = 0;
  std::ostringstream first;
  for (int64_t i = 0; i < l.m_rows; ++i)
    for (int64_t j = 0; j < l.n_cols; ++j) {
      uint16_t got;
      std::memcpy(&got, &h[size_t(i * l.n_cols + j) * 2], 2);
      const bool in = i < c.m && j < c.n;
      const uint16_t want = in ? bf16_of(float(c.ref[size_t(i * c.n + j)])) : uint16_t(0);
      if (got != want && bad++ < 4)
        first << "\n  D[" << i << "," << j << "]" << (in ? "" : " (padding)") << " = " << bf16_to_f32(got) << ", want "
              << bf16_to_f32(want);
    }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " elements differ: " << plan.describe() << first.str();
}

// Scales / biases: powers of two and small integers (exact), or arbitrary values (differential).
struct Epi {
  std::vector<float> s_x, s_w, bias;
};
Epi make_epi(const Case& c, bool exact, bool with_bias, uint64_t seed) {
  Epi e;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> ex(-6, 3), ib(-20, 20);
  std::uniform_real_distribution<float> u(0.001f, 0.05f), ub(-3.0f, 3.0f);
  e.s_x.resize(size_t(c.m));
  e.s_w.resize(size_t(c.n));
  for (auto& v : e.s_x) v = exact ? std::ldexp(1.0f, ex(rng)) : u(rng);
  for (auto& v : e.s_w) v = exact ? std::ldexp(1.0f, ex(rng)) : u(rng);
  if (with_bias) {
    e.bias.resize(size_t(c.n));
    for (auto& v : e.bias) v = exact ? float(ib(rng)) : ub(rng);
  }
  return e;
}

constexpr int64_t kLdyPad = 24;  // run_fused gets ldy = n + 24 and 3 extra rows: never written

// run_fused into a poisoned [m + 3, ldy] buffer; returns it.
std::vector<uint8_t> fused(GemmPlan& plan, const Case& c, const Buf& x, const Epi& e, int64_t ldy) {
  Buf sx(e.s_x.size() * 4), sw(e.s_w.size() * 4), bias(std::max<size_t>(e.bias.size(), 1) * 4);
  sx.up(e.s_x.data(), e.s_x.size() * 4);
  sw.up(e.s_w.data(), e.s_w.size() * 4);
  if (!e.bias.empty()) bias.up(e.bias.data(), e.bias.size() * 4);
  const size_t bytes = size_t((c.m + 3) * ldy) * 2;
  Buf y(bytes);
  cudaMemset(y.get(), kPoison, bytes);
  GemmPlan::FusedOutput o;
  o.s_x = sx.as<float>();
  o.s_w = sw.as<float>();
  o.bias = e.bias.empty() ? nullptr : bias.as<float>();
  o.y = y.get();
  o.ldy = ldy;
  o.m = c.m;
  plan.run_fused(x.get(), o, nullptr);
  if (cudaDeviceSynchronize() != cudaSuccess) throw std::runtime_error("run_fused failed");
  return y.down(bytes);
}

::testing::AssertionResult untouched_outside(const std::vector<uint8_t>& y, const Case& c, int64_t ldy) {
  for (int64_t i = 0; i < c.m + 3; ++i)
    for (int64_t j = 0; j < ldy; ++j) {
      if (i < c.m && j < c.n) continue;
      const size_t o = size_t(i * ldy + j) * 2;
      if (y[o] != kPoison || y[o + 1] != kPoison)
        return ::testing::AssertionFailure() << "Y[" << i << "," << j << "] outside [m, n] was written";
    }
  return ::testing::AssertionSuccess();
}

// Oracle B on run_fused (exact scales).
::testing::AssertionResult check_fused_exact(const Case& c, GemmPlan& plan, const Buf& x, bool with_bias, uint64_t seed) {
  const Epi e = make_epi(c, true, with_bias, seed);
  const int64_t ldy = (c.n + 7) / 8 * 8 + kLdyPad;
  const auto y = fused(plan, c, x, e, ldy);
  int64_t bad = 0;
  std::ostringstream first;
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) {
      uint16_t got;
      std::memcpy(&got, &y[size_t(i * ldy + j) * 2], 2);
      float v = float(c.ref[size_t(i * c.n + j)]) * e.s_x[size_t(i)] * e.s_w[size_t(j)];  // exact
      if (with_bias) v += e.bias[size_t(j)];  // one f32 rounding
      const uint16_t want = bf16_of(v);
      if (got != want && bad++ < 4)
        first << "\n  Y[" << i << "," << j << "] = " << bf16_to_f32(got) << ", want " << bf16_to_f32(want);
    }
  if (bad) return ::testing::AssertionFailure() << bad << " elements differ: " << plan.describe() << first.str();
  return untouched_outside(y, c, ldy);
}

std::vector<Case> exact_cases(GemmPrecision p, bool sparse, uint64_t& seed) {
  struct S { int64_t m, n, k; };
  std::vector<S> shapes{{1, 32, 64}, {15, 64, 96}, {33, 1000, 4096}, {1000, 96, 256}, {200, 3584, 512}};
  if (quick()) shapes = {{1, 32, 64}, {33, 200, 256}};
  std::vector<Case> out;
  for (const S& s : shapes) {
    if (sparse) {
      out.push_back(make_case(p, s.m, s.n, s.k, 2, ++seed));
      out.push_back(make_case(p, s.m, s.n, s.k, 4, ++seed));
    } else {
      out.push_back(make_case(p, s.m, s.n, s.k, 2, ++seed));  // pruned, run dense
    }
  }
  return out;
}

void exact_suite(GemmPrecision p, bool sparse) {
  const std::vector<std::string> names = sm90_kernels_for(p, sparse);
  if (names.empty()) GTEST_SKIP() << "no sm90 " << (sparse ? "sparse " : "dense ") << gemm_precision_name(p) << " kernel compiled";
  uint64_t seed = 7000 + uint64_t(p) * 1000 + (sparse ? 100 : 0);
  const std::vector<Case> cases = exact_cases(p, sparse, seed);
  PlanOptions o;
  o.search = false;
  for (const std::string& name : names) {
    for (const Case& c : cases) {
      SCOPED_TRACE(name + " " + c.str());
      try {
        Bound b = bind(make_sm90_plan({c.m, c.n, c.k_gemm, p, sparse}, o, name), c);
        EXPECT_TRUE(check_run(c, *b.plan, *b.x));
        EXPECT_TRUE(check_fused_exact(c, *b.plan, *b.x, true, ++seed));
        EXPECT_TRUE(check_fused_exact(c, *b.plan, *b.x, false, ++seed));
      } catch (const Error& e) {
        ADD_FAILURE() << "Error(" << status_name(e.status()) << ") " << e.what();
      }
    }
  }
}

TEST(Sm90Gemm, ExactSparseE4M3) { SLIDESPARSE_REQUIRE_SM90(); exact_suite(GemmPrecision::kE4M3, true); }
TEST(Sm90Gemm, ExactSparseI8) { SLIDESPARSE_REQUIRE_SM90(); exact_suite(GemmPrecision::kI8, true); }
TEST(Sm90Gemm, ExactSparseBF16) { SLIDESPARSE_REQUIRE_SM90(); exact_suite(GemmPrecision::kBF16, true); }
TEST(Sm90Gemm, ExactDenseE4M3) { SLIDESPARSE_REQUIRE_SM90(); exact_suite(GemmPrecision::kE4M3, false); }
TEST(Sm90Gemm, ExactDenseI8) { SLIDESPARSE_REQUIRE_SM90(); exact_suite(GemmPrecision::kI8, false); }
TEST(Sm90Gemm, ExactDenseBF16) { SLIDESPARSE_REQUIRE_SM90(); exact_suite(GemmPrecision::kBF16, false); }

// ---- Oracle C: fused == library GEMM + scale_epilogue, byte for byte -----------------------------

void differential(GemmPrecision p, bool sparse) {
  const std::vector<std::string> names = sm90_kernels_for(p, sparse);
  if (names.empty()) GTEST_SKIP() << "no sm90 kernel compiled for this case";
  if (sparse && !cusparselt_compiled()) GTEST_SKIP() << "no cuSPARSELt in this build: nothing to compare with";
  uint64_t seed = 9100 + uint64_t(p) * 10 + sparse;
  struct S { int64_t m, n, k; int pat; };
  std::vector<S> shapes{{77, 3584, 1024, 4}, {300, 200, 4096, 2}};
  if (quick()) shapes = {{40, 96, 256, 4}};
  PlanOptions o;
  o.search = false;
  for (const S& s : shapes) {
    const Case c = make_case(p, s.m, s.n, s.k, sparse ? s.pat : 2, ++seed);
    // bf16: the library's D is already rounded to bf16, so a bias would round twice there: none.
    const bool with_bias = p != GemmPrecision::kBF16;
    const Epi e = make_epi(c, false, with_bias, ++seed);
    const int64_t ldy = (c.n + 7) / 8 * 8 + kLdyPad;
    // Library GEMM (raw accumulators or bf16 D) + scale_epilogue.
    Bound lib = bind(sparse ? make_cusparselt_plan({c.m, c.n, c.k_gemm, p, true}, o)
                            : make_cublaslt_plan({c.m, c.n, c.k_gemm, p, false}, o),
                     c);
    const GemmLayout& l = lib.plan->layout();
    Buf d(l.d_bytes()), sx(e.s_x.size() * 4), sw(e.s_w.size() * 4), bias(std::max<size_t>(e.bias.size(), 1) * 4);
    sx.up(e.s_x.data(), e.s_x.size() * 4);
    sw.up(e.s_w.data(), e.s_w.size() * 4);
    if (with_bias) bias.up(e.bias.data(), e.bias.size() * 4);
    const size_t ybytes = size_t((c.m + 3) * ldy) * 2;
    Buf y(ybytes);
    SLIDESPARSE_CUDA_ASSERT(cudaMemset(y.get(), kPoison, ybytes));
    lib.plan->run(lib.x->get(), d.get(), nullptr, nullptr);
    EpilogueParams ep;
    ep.acc = d.get();
    ep.acc_dtype = l.d_dtype;
    ep.ld_acc = l.n_cols;
    ep.s_x = p == GemmPrecision::kBF16 ? nullptr : sx.as<float>();
    ep.s_w = p == GemmPrecision::kBF16 ? nullptr : sw.as<float>();
    ep.bias = with_bias ? bias.as<float>() : nullptr;
    ep.y = y.get();
    ep.y_dtype = DType::kBF16;
    ep.ldy = ldy;
    ep.m = c.m;
    ep.n = c.n;
    SLIDESPARSE_CUDA_ASSERT(scale_epilogue(ep, nullptr));
    SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
    const auto want = y.down(ybytes);
    Epi e2 = e;
    if (p == GemmPrecision::kBF16) {  // bf16 layers have no scales
      std::fill(e2.s_x.begin(), e2.s_x.end(), 1.0f);
      std::fill(e2.s_w.begin(), e2.s_w.end(), 1.0f);
    }
    for (const std::string& name : names) {
      SCOPED_TRACE(name + " " + c.str());
      Bound b = bind(make_sm90_plan({c.m, c.n, c.k_gemm, p, sparse}, o, name), c);
      const auto got = fused(*b.plan, c, *b.x, e2, ldy);
      int64_t bad = 0;
      for (size_t i = 0; i < got.size(); i += 2) bad += std::memcmp(&got[i], &want[i], 2) != 0;
      EXPECT_EQ(bad, 0) << b.plan->describe() << " vs " << lib.plan->describe() << " + scale_epilogue";
    }
  }
}

TEST(Sm90Gemm, FusedEqualsCusparseltPlusEpilogueE4M3) { SLIDESPARSE_REQUIRE_SM90(); differential(GemmPrecision::kE4M3, true); }
TEST(Sm90Gemm, FusedEqualsCusparseltPlusEpilogueI8) { SLIDESPARSE_REQUIRE_SM90(); differential(GemmPrecision::kI8, true); }
TEST(Sm90Gemm, FusedEqualsCusparseltPlusEpilogueBF16) { SLIDESPARSE_REQUIRE_SM90(); differential(GemmPrecision::kBF16, true); }
TEST(Sm90Gemm, FusedEqualsCublasltPlusEpilogueE4M3) { SLIDESPARSE_REQUIRE_SM90(); differential(GemmPrecision::kE4M3, false); }
TEST(Sm90Gemm, FusedEqualsCublasltPlusEpilogueI8) { SLIDESPARSE_REQUIRE_SM90(); differential(GemmPrecision::kI8, false); }

// ---- search, capture, rejections -----------------------------------------------------------------

TEST(Sm90Gemm, SearchedPlanIsExactAndCapturable) {
  SLIDESPARSE_REQUIRE_SM90();
  if (sm90_kernels_for(GemmPrecision::kE4M3, true).empty()) GTEST_SKIP() << "no sparse e4m3 kernel compiled";
  const Case c = make_case(GemmPrecision::kE4M3, 300, 512, 1024, 4, 31);
  PlanOptions o;
  o.search = true;
  o.search_iters = 3;
  Bound b = bind(make_sm90_plan({c.m, c.n, c.k_gemm, GemmPrecision::kE4M3, true}, o), c);
  std::cout << "  " << b.plan->describe() << "\n";
  EXPECT_TRUE(check_run(c, *b.plan, *b.x));
  // Captured run_fused, replayed twice.
  const Epi e = make_epi(c, true, true, 5);
  const int64_t ldy = 512;
  Buf sx(e.s_x.size() * 4), sw(e.s_w.size() * 4), bias(e.bias.size() * 4), y(size_t(c.m * ldy) * 2);
  sx.up(e.s_x.data(), e.s_x.size() * 4);
  sw.up(e.s_w.data(), e.s_w.size() * 4);
  bias.up(e.bias.data(), e.bias.size() * 4);
  cudaStream_t s = nullptr;
  SLIDESPARSE_CUDA_ASSERT(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  GemmPlan::FusedOutput out{sx.as<float>(), sw.as<float>(), bias.as<float>(), y.get(), ldy, c.m};
  SLIDESPARSE_CUDA_ASSERT(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  b.plan->run_fused(b.x->get(), out, s);
  cudaGraph_t g = nullptr;
  SLIDESPARSE_CUDA_ASSERT(cudaStreamEndCapture(s, &g));
  cudaGraphExec_t ge = nullptr;
  SLIDESPARSE_CUDA_ASSERT(cudaGraphInstantiate(&ge, g, 0));
  for (int rep = 0; rep < 2; ++rep) {
    SLIDESPARSE_CUDA_ASSERT(cudaMemsetAsync(y.get(), kPoison, size_t(c.m * ldy) * 2, s));
    SLIDESPARSE_CUDA_ASSERT(cudaGraphLaunch(ge, s));
    SLIDESPARSE_CUDA_ASSERT(cudaStreamSynchronize(s));
    const auto h = y.down(size_t(c.m * ldy) * 2);
    int64_t bad = 0;
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        uint16_t got;
        std::memcpy(&got, &h[size_t(i * ldy + j) * 2], 2);
        const float v = float(c.ref[size_t(i * c.n + j)]) * e.s_x[size_t(i)] * e.s_w[size_t(j)] + e.bias[size_t(j)];
        bad += got != bf16_of(v);
      }
    EXPECT_EQ(bad, 0) << "replay " << rep;
  }
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
}

TEST(Sm90Gemm, RejectionsSayWhy) {
  SLIDESPARSE_REQUIRE_SM90();
  // A CUDA error left by an earlier test would make the uploads below fail: report it by name.
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  auto expect_error = [](Status want, const std::string& needle, auto&& fn) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected " << status_name(want) << " mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), want) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  PlanOptions o;
  o.search = false;
  expect_error(Status::kUnsupported, "f16", [&] { make_sm90_plan({64, 64, 64, GemmPrecision::kF16, true}, o); });
  if (sm90_kernels_for(GemmPrecision::kE4M3, true).empty()) {
    // A build without e4m3 sparse kernels (SLIDESPARSE_SM90_ONLY) says so before anything else.
    expect_error(Status::kUnsupported, "no sparse e4m3 kernel is compiled",
                 [&] { make_sm90_plan({64, 64, 64, GemmPrecision::kE4M3, true}, o); });
  } else {
    expect_error(Status::kInvalidArgument, "multiple of 32",
                 [&] { make_sm90_plan({64, 64, 48, GemmPrecision::kE4M3, true}, o); });
    expect_error(Status::kInvalidArgument, "not a compiled",
                 [&] { make_sm90_plan({64, 64, 64, GemmPrecision::kE4M3, true}, o, "no_such_kernel"); });
  }
  if (sm90_kernels_for(GemmPrecision::kI8, true).empty()) return;
  // A 6:8 weight that is not slid is not 2:4.
  const Case c = make_case(GemmPrecision::kI8, 16, 64, 128, 4, 3);
  Case raw = c;
  {
    std::mt19937_64 rng(1);
    raw.w.assign(size_t(64 * 128), 0);
    for (int64_t j = 0; j < 64; ++j)
      for (int t = 0; t < 3; ++t) raw.w[size_t(j * 128 + 40 + t)] = 1;  // 3 nonzeros in group 10
  }
  auto plan = make_sm90_plan({16, 64, 128, GemmPrecision::kI8, true}, o);
  Buf w(raw.w.size()), x(plan->layout().x_bytes()), d(plan->layout().d_bytes());
  w.up(raw.w.data(), raw.w.size());
  expect_error(Status::kInvalidArgument, "prepare_weight", [&] { plan->run(x.get(), d.get(), nullptr, nullptr); });
  expect_error(Status::kInvalidData, "not 2:4", [&] { plan->prepare_weight(w.get(), nullptr); });
  expect_error(Status::kInvalidData, "W[0, 40]", [&] { plan->prepare_weight(w.get(), nullptr); });
  expect_error(Status::kInvalidArgument, "prepare_weight", [&] { plan->run(x.get(), d.get(), nullptr, nullptr); });
  Bound b = bind(make_sm90_plan({16, 64, c.k_gemm, GemmPrecision::kI8, true}, o), c);
  GemmPlan::FusedOutput out;
  out.y = d.get();
  out.m = 16;
  out.ldy = 60;
  expect_error(Status::kInvalidArgument, "ldy", [&] { b.plan->run_fused(b.x->get(), out, nullptr); });
  out.ldy = 64;
  out.m = 17;
  expect_error(Status::kInvalidArgument, "m = 17", [&] { b.plan->run_fused(b.x->get(), out, nullptr); });
}

// ---- SlideLinear on the sm90 backend: the same layer as on the libraries ----------------------
//
// Gaussian weights (6:8) and activations, both paths. i8: every accumulator is an exact integer on
// both engines and the epilogue arithmetic is the same, so Y is byte-identical. e4m3 / bf16: the
// f32 accumulation order differs between the engines; Y must agree within 1% (relative norm)
// and 2^-6 * max|Y| elementwise.
TEST(Sm90SlideLinear, MatchesTheLibraryBackend) {
  SLIDESPARSE_REQUIRE_SM90();
  if (!cusparselt_compiled()) GTEST_SKIP() << "no cuSPARSELt in this build: nothing to compare with";
  const int64_t n = 520, k = 1000, m = quick() ? 40 : 300;
  std::mt19937_64 rng(77);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(n * k)), bias(static_cast<size_t>(n));
  for (auto& v : w) v = 0.02f * g(rng);
  for (auto& v : bias) v = 0.1f * g(rng);
  std::vector<uint16_t> xh(size_t(m * k));
  for (auto& v : xh) v = f32_to_bf16(g(rng));
  Buf x(xh.size() * 2), y1(size_t(m * n) * 2), y2(size_t(m * n) * 2);
  x.up(xh.data(), xh.size() * 2);
  for (LinearPrecision lp : {LinearPrecision::kI8, LinearPrecision::kE4M3, LinearPrecision::kBF16}) {
    const GemmPrecision gp = lp == LinearPrecision::kI8 ? GemmPrecision::kI8
                             : lp == LinearPrecision::kE4M3 ? GemmPrecision::kE4M3
                                                            : GemmPrecision::kBF16;
    if (sm90_kernels_for(gp, true).empty()) continue;
    SlideLinearOptions o;
    o.precision = lp;
    o.search = false;
    o.dense_below_m = 0;
    o.backend = LinearBackend::kLibrary;
    SlideLinear lib = SlideLinear::from_dense(w.data(), n, k, o, bias.data());
    o.backend = LinearBackend::kSm90;
    SlideLinear own = SlideLinear::from_dense(w.data(), n, k, o, bias.data());
    for (LinearPath path : {LinearPath::kSparse, LinearPath::kDense}) {
      SCOPED_TRACE(std::string(linear_precision_name(lp)) + (path == LinearPath::kSparse ? " sparse" : " dense"));
      SLIDESPARSE_CUDA_ASSERT(cudaMemset(y1.get(), 0xFF, size_t(m * n) * 2));
      SLIDESPARSE_CUDA_ASSERT(cudaMemset(y2.get(), 0xFF, size_t(m * n) * 2));
      lib.forward(x.get(), m, y1.get(), nullptr, path);
      own.forward(x.get(), m, y2.get(), nullptr, path);
      SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
      const auto a = y1.down(size_t(m * n) * 2), b = y2.down(size_t(m * n) * 2);
      EXPECT_NE(own.describe().find("sm90"), std::string::npos) << own.describe();
      if (lp == LinearPrecision::kI8) {
        EXPECT_TRUE(a == b) << "i8 layer on sm90 differs from the library layer\n" << own.describe();
        continue;
      }
      double num = 0, den = 0, amax = 0, dmax = 0;
      for (size_t i = 0; i < a.size(); i += 2) {
        uint16_t ua, ub;
        std::memcpy(&ua, &a[i], 2);
        std::memcpy(&ub, &b[i], 2);
        const double va = bf16_to_f32(ua), vb = bf16_to_f32(ub);
        ASSERT_TRUE(std::isfinite(va) && std::isfinite(vb)) << "element " << i / 2;
        num += (va - vb) * (va - vb);
        den += va * va;
        amax = std::max(amax, std::fabs(va));
        dmax = std::max(dmax, std::fabs(va - vb));
      }
      EXPECT_LE(std::sqrt(num / den), 1e-2);
      EXPECT_LE(dmax, amax * std::ldexp(1.0, -6));
    }
  }
}

}  // namespace
}  // namespace slidesparse
