// Tier 1: weight preparation on the GPU (src/kernels/weight_prep.cuh, the nm_mask kernel as the
// prune step) and the SlideLinear entries built on it (from_dense_device, update_weight_device,
// update_weight_codes_device).
//
// Oracles: every kernel against the CPU core, byte for byte (codes, scale bits, slid bytes, padding):
//   prune     nm_mask(keep 2N-2, group 2N) applied to nonzeros == prune_inplace(magnitude);
//   quantize  quantize_weight == prune_inplace + quantize_rows_i8 / quantize_rows_e4m3 / f32_to_bf16;
//   slide     slide_weight_device == slide_weight;
//   scan      the smallest flat index of each problem kind, computed on the host.
// Layers: from_dense_device / update_weight_device / update_weight_codes_device give forward outputs
// bitwise equal to from_dense / from_quantized layers of the same weights (search off: both layers
// run the library's default algorithm), on the sparse and the dense path, for i8 / e4m3 / bf16 and
// 6:8, 2:4, 4:6 (and dense_only). Outputs are poisoned before every run.
// Data has the edges: k not a multiple of 2N, n not a multiple of 32, ties of |w|, -0.0, all-zero
// rows, groups already within the budget, rows at 2^-110 (f32), i8 rounding ties, E4M3 saturation.
// SLIDESPARSE_GPU_TEST_QUICK=1 runs a reduced set (for compute-sanitizer).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "gpu/gpu_test_util.hpp"
#include "kernels/nm_mask.cuh"
#include "kernels/weight_prep.cuh"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quant.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/slide_linear.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

using gputest::quick;

constexpr uint8_t kPoison = 0xAB;

using gputest::DeviceBuffer;
using gputest::TestStream;

template <class T>
void upload(DeviceBuffer& d, const std::vector<T>& h) {
  d.reset(h.size() * sizeof(T));
  ASSERT_TRUE(d.get() != nullptr || h.empty());
  if (!h.empty()) SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
}

template <class T>
std::vector<T> download(const void* d, size_t count) {
  std::vector<T> h(count);
  if (count > 0 && cudaMemcpy(h.data(), d, count * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess) h.clear();
  return h;
}

uint32_t f32_bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}

// f32 values as the bytes of dtype (f32 / bf16 / f16); values must be representable.
std::vector<uint8_t> encode(const std::vector<float>& w, DType dtype) {
  std::vector<uint8_t> out(w.size() * dtype_size(dtype));
  for (size_t i = 0; i < w.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(&out[4 * i], &w[i], 4);
    } else {
      const uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]);
      std::memcpy(&out[2 * i], &h, 2);
    }
  }
  return out;
}

float round_to(float v, DType dtype) {
  if (dtype == DType::kBF16) return bf16_to_f32(f32_to_bf16(v));
  if (dtype == DType::kF16) return f16_to_f32(f32_to_f16(v));
  return v;
}

// W[n, k] with the edges listed at the top, representable in `dtype`. Row kinds cycle by r % 8.
std::vector<float> make_weight(int64_t n, int64_t k, DType dtype, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-3, 3), expo(-6, 6), coin(0, 3);
  std::vector<float> w(size_t(n * k), 0.0f);
  for (int64_t r = 0; r < n; ++r) {
    float* row = &w[size_t(r * k)];
    const int kind = int(r % 8);
    const int e = expo(rng);
    for (int64_t c = 0; c < k; ++c) {
      float v = 0.0f;
      switch (kind) {
        case 0: v = std::ldexp(gauss(rng), e); break;                         // plain
        case 1: v = (c % 3 == 0) ? -0.0f : 0.0f; break;                        // all zero, with -0.0
        case 2: v = std::ldexp(float(small(rng)), e); break;                   // many ties, zeros
        case 3: v = coin(rng) == 0 ? std::ldexp(gauss(rng), e) : (coin(rng) == 0 ? -0.0f : 0.0f); break;  // sparse
        case 4: v = std::ldexp(gauss(rng), dtype == DType::kF32 ? -110 : -20); break;  // tiny rows
        case 5: v = float(int(c % 255) - 127) + 0.5f; break;                   // i8 rounding ties (amax set below)
        case 6: v = std::ldexp(gauss(rng), 3) * 100.0f; break;                 // large
        default: v = (c % 2 ? 1.0f : -1.0f) * std::ldexp(1.0f, e); break;     // all equal magnitudes
      }
      row[c] = round_to(v, dtype);
    }
    if (kind == 5 && k > 1) row[k / 2] = 127.0f;  // amax 127: inv = 1, so the +0.5 values are exact ties
  }
  return w;
}

// The core's pruned weight (f32 values).
std::vector<float> core_pruned(const std::vector<float>& w, int64_t n, int64_t k, int pattern_n) {
  std::vector<float> p = w;
  if (pattern_n > 0) prune_inplace(Pattern::from_n(pattern_n), PruneMethod::kMagnitude, DType::kF32, p.data(), n, k, nullptr);
  return p;
}

std::string where(int64_t i, int64_t ld) { return "[" + std::to_string(i / ld) + ", " + std::to_string(i % ld) + "]"; }

// ---- prune: the nm_mask kernel applied to nonzeros is the core's magnitude pruning ----------------

TEST(WeightPrep, NmMaskOnNonzerosIsCoreMagnitudePruning) {
  SLIDESPARSE_REQUIRE_GPU();
  const std::vector<std::pair<int64_t, int64_t>> shapes =
      quick() ? std::vector<std::pair<int64_t, int64_t>>{{37, 101}}
              : std::vector<std::pair<int64_t, int64_t>>{{37, 101}, {64, 1001}, {200, 333}};
  uint64_t seed = 11;
  for (int pn : {2, 3, 4, 5, 8, 16})
    for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16})
      for (auto [n, k] : shapes) {
        SCOPED_TRACE(Pattern::from_n(pn).str() + " " + dtype_token(dtype) + " n=" + std::to_string(n) +
                     " k=" + std::to_string(k));
        const std::vector<float> w = make_weight(n, k, dtype, seed++);
        const std::vector<float> want = core_pruned(w, n, k, pn);
        DeviceBuffer wd, mask(size_t(n * k));
        upload(wd, encode(w, dtype));
        SLIDESPARSE_CUDA_ASSERT(cudaMemset(mask.get(), kPoison, size_t(n * k)));
        NmMaskParams mp;
        mp.w = wd.get();
        mp.dtype = dtype;
        mp.rows = n;
        mp.k = k;
        mp.ldw = k;
        mp.keep = 2 * pn - 2;
        mp.group = 2 * pn;
        mp.mask = mask.as<uint8_t>();
        mp.ldm = k;
        SLIDESPARSE_CUDA_ASSERT(nm_mask(mp, nullptr));
        SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
        const std::vector<uint8_t> m = download<uint8_t>(mask.get(), size_t(n * k));
        ASSERT_EQ(m.size(), size_t(n * k));
        int64_t bad = 0, nonzeros = 0, dropped = 0;
        std::string first;
        for (int64_t i = 0; i < n * k; ++i) {
          if (m[size_t(i)] > 1 && bad++ == 0) first = "mask byte " + std::to_string(m[size_t(i)]) + " at " + where(i, k);
          if ((f32_bits(w[size_t(i)]) & 0x7fffffffu) == 0) continue;  // zeros: the rule never touches them
          ++nonzeros;
          const bool core_keeps = f32_bits(want[size_t(i)]) == f32_bits(w[size_t(i)]);
          dropped += !core_keeps;
          if ((m[size_t(i)] != 0) != core_keeps && bad++ == 0)
            first = "W" + where(i, k) + " = " + std::to_string(w[size_t(i)]) + ": mask " + std::to_string(m[size_t(i)]) +
                    ", core " + (core_keeps ? "keeps" : "drops");
        }
        EXPECT_EQ(bad, 0) << first;
        EXPECT_GT(dropped, 0) << "the data must make the core drop something";
        EXPECT_GT(nonzeros, dropped);
      }
}

// ---- quantize ---------------------------------------------------------------------------------------

struct QuantCase {
  DType in, out;
  int pattern_n;  // 0: no mask
  int64_t n, k, ldq;
};

void check_quantize(const QuantCase& c, uint64_t seed) {
  SCOPED_TRACE(std::string(dtype_token(c.in)) + " -> " + dtype_token(c.out) + " pattern " +
               (c.pattern_n ? Pattern::from_n(c.pattern_n).str() : std::string("none")) + " n=" + std::to_string(c.n) +
               " k=" + std::to_string(c.k) + " ldq=" + std::to_string(c.ldq) + " seed=" + std::to_string(seed));
  const int64_t n = c.n, k = c.k;
  const std::vector<float> w = make_weight(n, k, c.in, seed);
  const std::vector<float> pruned = core_pruned(w, n, k, c.pattern_n);
  const size_t es = dtype_size(c.out);
  std::vector<uint8_t> want(size_t(n * k) * es);
  std::vector<float> want_scale(size_t(n), 1.0f);
  if (c.out == DType::kI8) {
    quantize_rows_i8(DType::kF32, pruned.data(), n, k, reinterpret_cast<int8_t*>(want.data()), want_scale.data());
  } else if (c.out == DType::kE4M3) {
    quantize_rows_e4m3(DType::kF32, pruned.data(), n, k, want.data(), want_scale.data());
  } else {
    for (size_t i = 0; i < pruned.size(); ++i) {
      const uint16_t b = f32_to_bf16(pruned[i]);
      std::memcpy(&want[2 * i], &b, 2);
    }
  }

  DeviceBuffer wd, mask, q(size_t(n * c.ldq) * es), scale(size_t(n) * 4), status(kStatusWords * 8);
  upload(wd, encode(w, c.in));
  SLIDESPARSE_CUDA_ASSERT(cudaMemset(q.get(), kPoison, q.bytes()));
  SLIDESPARSE_CUDA_ASSERT(cudaMemset(scale.get(), kPoison, scale.bytes()));
  SLIDESPARSE_CUDA_ASSERT(weight_prep_status_reset(status.as<uint64_t>(), nullptr));
  if (c.pattern_n > 0) {
    mask.reset(size_t(n * k));
    NmMaskParams mp;
    mp.w = wd.get();
    mp.dtype = c.in;
    mp.rows = n;
    mp.k = k;
    mp.ldw = k;
    mp.keep = 2 * c.pattern_n - 2;
    mp.group = 2 * c.pattern_n;
    mp.mask = mask.as<uint8_t>();
    mp.ldm = k;
    SLIDESPARSE_CUDA_ASSERT(nm_mask(mp, nullptr));
  }
  QuantizeWeightParams p;
  p.w = wd.get();
  p.in_dtype = c.in;
  p.n = n;
  p.k = k;
  p.ldw = k;
  p.keep = c.pattern_n > 0 ? mask.as<uint8_t>() : nullptr;
  p.ldm = k;
  p.q = q.get();
  p.out_dtype = c.out;
  p.ldq = c.ldq;
  p.scale = c.out == DType::kBF16 ? nullptr : scale.as<float>();
  p.status = status.as<uint64_t>();
  ASSERT_EQ(quantize_weight_check(p), nullptr) << quantize_weight_check(p);
  SLIDESPARSE_CUDA_ASSERT(quantize_weight(p, nullptr));
  SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
  const auto got = download<uint8_t>(q.get(), q.bytes());
  const auto got_scale = download<float>(scale.get(), size_t(n));
  const auto st = download<uint64_t>(status.get(), kStatusWords);
  ASSERT_EQ(got.size(), q.bytes());
  EXPECT_EQ(st[kStatusNonFinite], kStatusNone);
  int64_t bad = 0;
  std::ostringstream first;
  for (int64_t r = 0; r < n; ++r) {
    if (c.out != DType::kBF16 && f32_bits(got_scale[size_t(r)]) != f32_bits(want_scale[size_t(r)]) && bad++ < 3)
      first << "\n  scale[" << r << "] = " << got_scale[size_t(r)] << ", core " << want_scale[size_t(r)];
    for (int64_t col = 0; col < c.ldq; ++col)
      for (size_t b = 0; b < es; ++b) {
        const uint8_t g = got[size_t(r * c.ldq + col) * es + b];
        const uint8_t x = col < k ? want[size_t(r * k + col) * es + b] : uint8_t(0);
        if (g != x && bad++ < 3)
          first << "\n  q[" << r << ", " << col << "] byte " << b << " = 0x" << std::hex << int(g) << ", want 0x"
                << int(x) << std::dec << (col >= k ? " (padding)" : "") << " (w = " << (col < k ? w[size_t(r * k + col)] : 0.0f)
                << ")";
      }
  }
  EXPECT_EQ(bad, 0) << first.str();
}

TEST(WeightPrep, QuantizeWeightEqualsCore) {
  SLIDESPARSE_REQUIRE_GPU();
  uint64_t seed = 500;
  const std::vector<std::pair<int64_t, int64_t>> shapes =
      quick() ? std::vector<std::pair<int64_t, int64_t>>{{40, 77}}
              : std::vector<std::pair<int64_t, int64_t>>{{40, 77}, {33, 1001}, {257, 3000}};
  for (DType in : {DType::kF32, DType::kBF16, DType::kF16})
    for (DType out : {DType::kI8, DType::kE4M3, DType::kBF16})
      for (int pn : {0, 4, 2, 3})
        for (auto [n, k] : shapes) {
          const int64_t ldq = (k + 15) / 16 * 16 + (pn == 3 ? 16 : 0);  // padding columns, sometimes more
          check_quantize({in, out, pn, n, k, ldq}, seed++);
          if (HasFatalFailure()) return;
        }
}

TEST(WeightPrep, QuantizeWeightFlagsNonFiniteRows) {
  SLIDESPARSE_REQUIRE_GPU();
  const int64_t n = 5, k = 40;
  for (DType in : {DType::kF32, DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_token(in));
    std::vector<float> w(size_t(n * k), 0.5f);
    w[size_t(3 * k + 17)] = std::numeric_limits<float>::infinity();
    w[size_t(3 * k + 30)] = std::numeric_limits<float>::quiet_NaN();
    w[size_t(4 * k + 2)] = -std::numeric_limits<float>::infinity();
    DeviceBuffer wd, q(size_t(n * k)), scale(size_t(n) * 4), status(kStatusWords * 8);
    upload(wd, encode(w, in));
    SLIDESPARSE_CUDA_ASSERT(weight_prep_status_reset(status.as<uint64_t>(), nullptr));
    QuantizeWeightParams p;
    p.w = wd.get();
    p.in_dtype = in;
    p.n = n;
    p.k = k;
    p.ldw = k;
    p.q = q.get();
    p.out_dtype = DType::kI8;
    p.ldq = k;
    p.scale = scale.as<float>();
    p.status = status.as<uint64_t>();
    SLIDESPARSE_CUDA_ASSERT(quantize_weight(p, nullptr));
    SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
    const auto st = download<uint64_t>(status.get(), kStatusWords);
    const auto sc = download<float>(scale.get(), size_t(n));
    const auto codes = download<int8_t>(q.get(), size_t(n * k));
    EXPECT_EQ(st[kStatusNonFinite], uint64_t(3 * k + 17)) << "the smallest flat index of a non-finite value";
    EXPECT_TRUE(std::isnan(sc[3]) && std::isnan(sc[4])) << "rows with a non-finite value get scale NaN";
    EXPECT_EQ(sc[0], 0.5f / 127.0f);
    EXPECT_TRUE(std::all_of(codes.begin() + 3 * k, codes.end(), [](int8_t v) { return v == 0; }));
  }
}

// ---- slide ------------------------------------------------------------------------------------------

// Codes [n, k] of dtype with every group within the budget (some exactly at it, some empty), -0
// codes counted as zero, random values otherwise.
std::vector<uint8_t> make_codes(int64_t n, int64_t k, DType dtype, Pattern p, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t es = dtype_size(dtype);
  std::vector<uint8_t> q(size_t(n * k) * es, 0);
  const int64_t groups = num_groups(p, k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * p.group(), len = std::min<int64_t>(p.group(), k - c0);
      int want = int(rng() % uint64_t(p.keep() + 1));
      if (r % 5 == 0) want = p.keep();  // at the budget
      std::vector<int> off(static_cast<size_t>(len));
      for (int i = 0; i < int(len); ++i) off[size_t(i)] = i;
      std::shuffle(off.begin(), off.end(), rng);
      for (int i = 0; i < int(len); ++i) {
        uint8_t* e = &q[size_t(r * k + c0 + off[size_t(i)]) * es];
        if (i < want) {  // a nonzero
          do {
            for (size_t b = 0; b < es; ++b) e[b] = uint8_t(rng());
          } while (element_is_zero(dtype, e) || (dtype == DType::kE4M3 && (e[0] & 0x7f) == 0x7f));
        } else if (rng() % 3 == 0 && dtype != DType::kI8) {  // a negative zero
          if (es == 1) e[0] = 0x80;
          else e[1] = 0x80;
        }
      }
    }
  return q;
}

TEST(WeightPrep, SlideWeightDeviceEqualsCore) {
  SLIDESPARSE_REQUIRE_GPU();
  uint64_t seed = 900;
  const std::vector<std::pair<int64_t, int64_t>> shapes =
      quick() ? std::vector<std::pair<int64_t, int64_t>>{{33, 101}}
              : std::vector<std::pair<int64_t, int64_t>>{{33, 101}, {5, 31}, {64, 1001}, {100, 4096}};
  for (int pn = kMinN; pn <= kMaxN; ++pn)
    for (DType dtype : {DType::kI8, DType::kE4M3, DType::kBF16, DType::kF16})
      for (auto [n, k] : shapes) {
        const Pattern p = Pattern::from_n(pn);
        SCOPED_TRACE(p.str() + " " + dtype_token(dtype) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
        const size_t es = dtype_size(dtype);
        const std::vector<uint8_t> q = make_codes(n, k, dtype, p, seed++);
        const int64_t ks = slide_k(p, k);
        std::vector<uint8_t> want(size_t(n * ks) * es);
        slide_weight(p, dtype, q.data(), n, k, want.data(), ks);
        // Strided input (ldq = k + 3) and output (ldws = ks + 32): only [n, ks] may be written.
        const int64_t ldq = k + 3, ldws = ks + 32;
        std::vector<uint8_t> qs(size_t(n * ldq) * es, 0x77);
        for (int64_t r = 0; r < n; ++r) std::memcpy(&qs[size_t(r * ldq) * es], &q[size_t(r * k) * es], size_t(k) * es);
        DeviceBuffer qd, ws(size_t(n * ldws) * es), status(kStatusWords * 8);
        upload(qd, qs);
        SLIDESPARSE_CUDA_ASSERT(cudaMemset(ws.get(), kPoison, ws.bytes()));
        SLIDESPARSE_CUDA_ASSERT(weight_prep_status_reset(status.as<uint64_t>(), nullptr));
        SlideWeightParams sp;
        sp.q = qd.get();
        sp.dtype = dtype;
        sp.n = n;
        sp.k = k;
        sp.ldq = ldq;
        sp.ws = ws.get();
        sp.k_slide = ks;
        sp.ldws = ldws;
        sp.pattern_n = pn;
        sp.status = status.as<uint64_t>();
        ASSERT_EQ(slide_weight_device_check(sp), nullptr);
        SLIDESPARSE_CUDA_ASSERT(slide_weight_device(sp, nullptr));
        SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
        const auto got = download<uint8_t>(ws.get(), ws.bytes());
        const auto st = download<uint64_t>(status.get(), kStatusWords);
        EXPECT_EQ(st[kStatusDenseGroup], kStatusNone);
        int64_t bad = 0;
        std::ostringstream first;
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = 0; c < ldws; ++c)
            for (size_t b = 0; b < es; ++b) {
              const uint8_t g = got[size_t(r * ldws + c) * es + b];
              const uint8_t x = c < ks ? want[size_t(r * ks + c) * es + b] : kPoison;
              if (g != x && bad++ < 3)
                first << "\n  W'[" << r << ", " << c << "] byte " << b << " = 0x" << std::hex << int(g) << ", want 0x"
                      << int(x) << std::dec << (c >= ks ? " (past k_slide: must stay untouched)" : "");
            }
        EXPECT_EQ(bad, 0) << first.str();
        if (HasFailure()) return;
      }
}

TEST(WeightPrep, SlideReportsTheFirstDenseGroupAndZeroesIt) {
  SLIDESPARSE_REQUIRE_GPU();
  const Pattern p = Pattern::from_n(4);
  const int64_t n = 9, k = 50, ks = slide_k(p, k), groups = num_groups(p, k);
  std::vector<uint8_t> q = make_codes(n, k, DType::kI8, p, 7);
  // Row 6, group 2 and row 3, group 5 (columns 40..47) get 7 nonzeros: the smaller flat index wins.
  for (int64_t c = 0; c < 7; ++c) q[size_t(6 * k + 16 + c)] = 5;
  for (int64_t c = 0; c < 7; ++c) q[size_t(3 * k + 40 + c)] = 9;
  DeviceBuffer qd, ws(size_t(n * ks)), status(kStatusWords * 8);
  upload(qd, q);
  SLIDESPARSE_CUDA_ASSERT(weight_prep_status_reset(status.as<uint64_t>(), nullptr));
  SlideWeightParams sp;
  sp.q = qd.get();
  sp.dtype = DType::kI8;
  sp.n = n;
  sp.k = k;
  sp.ldq = k;
  sp.ws = ws.get();
  sp.k_slide = ks;
  sp.ldws = ks;
  sp.pattern_n = 4;
  sp.status = status.as<uint64_t>();
  SLIDESPARSE_CUDA_ASSERT(slide_weight_device(sp, nullptr));
  SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
  const auto st = download<uint64_t>(status.get(), kStatusWords);
  EXPECT_EQ(st[kStatusDenseGroup], uint64_t(3 * groups + 5));
  const auto got = download<uint8_t>(ws.get(), ws.bytes());
  for (int64_t c = 5 * p.slide_group(); c < 6 * p.slide_group(); ++c) EXPECT_EQ(got[size_t(3 * ks + c)], 0) << c;
}

// ---- scan ---------------------------------------------------------------------------------------------

TEST(WeightPrep, ScanWeightReportsTheSmallestIndexOfEachProblem) {
  SLIDESPARSE_REQUIRE_GPU();
  const int64_t n = 6, k = 45;
  struct Case {
    DType dtype;
    std::function<void(std::vector<uint8_t>&)> spoil;
    uint64_t nonfinite, group;
  };
  const Pattern p = Pattern::from_n(4);
  const int64_t groups = num_groups(p, k);
  auto put16 = [](std::vector<uint8_t>& q, int64_t i, uint16_t v) { std::memcpy(&q[size_t(2 * i)], &v, 2); };
  auto put32 = [](std::vector<uint8_t>& q, int64_t i, float v) { std::memcpy(&q[size_t(4 * i)], &v, 4); };
  const std::vector<Case> cases = {
      {DType::kBF16, [&](auto& q) { put16(q, 2 * k + 9, 0x7f80); put16(q, 4 * k + 1, 0xffc1); }, uint64_t(2 * k + 9), kStatusNone},
      {DType::kF16, [&](auto& q) { put16(q, 5 * k + 44, 0xfc00); }, uint64_t(5 * k + 44), kStatusNone},
      {DType::kF32, [&](auto& q) { put32(q, 1 * k + 3, std::nanf("")); }, uint64_t(k + 3), kStatusNone},
      {DType::kE4M3, [&](auto& q) { q[size_t(4 * k + 40)] = 0xff; q[size_t(4 * k + 41)] = 0x7f; }, uint64_t(4 * k + 40), kStatusNone},
      {DType::kI8, [&](auto& q) { for (int c = 0; c < 8; ++c) q[size_t(1 * k + 8 + c)] = 1; }, kStatusNone, uint64_t(1 * groups + 1)},
      // A partial last group (columns 40..44, 5 elements) may hold 5 nonzeros of 6 allowed: fine.
      {DType::kI8, [&](auto& q) { for (int c = 40; c < 45; ++c) q[size_t(2 * k + c)] = 1; }, kStatusNone, kStatusNone},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(dtype_token(c.dtype));
    std::vector<uint8_t> q = dtype_size(c.dtype) == 1 ? make_codes(n, k, c.dtype, p, 3)
                                                       : encode(core_pruned(make_weight(n, k, c.dtype, 3), n, k, 4), c.dtype);
    c.spoil(q);
    std::vector<float> scales(size_t(n), 0.25f);
    scales[4] = 0.0f;
    scales[2] = -1.0f;
    DeviceBuffer qd, sd, status(kStatusWords * 8);
    upload(qd, q);
    upload(sd, scales);
    SLIDESPARSE_CUDA_ASSERT(weight_prep_status_reset(status.as<uint64_t>(), nullptr));
    WeightScanParams sp;
    sp.w = qd.get();
    sp.dtype = c.dtype;
    sp.n = n;
    sp.k = k;
    sp.ldw = k;
    sp.pattern_n = 4;
    sp.scale = sd.as<float>();
    sp.status = status.as<uint64_t>();
    SLIDESPARSE_CUDA_ASSERT(scan_weight(sp, nullptr));
    SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
    const auto st = download<uint64_t>(status.get(), kStatusWords);
    EXPECT_EQ(st[kStatusNonFinite], c.nonfinite);
    EXPECT_EQ(st[kStatusDenseGroup], c.group);
    EXPECT_EQ(st[kStatusBadScale], 2u);
  }
}

// ---- layers -------------------------------------------------------------------------------------------

struct LayerCase {
  LinearPrecision precision;
  int pattern_n;  // 0: dense_only
  int64_t n, k;
  std::string str() const {
    return std::string(linear_precision_name(precision)) + " " +
           (pattern_n ? Pattern::from_n(pattern_n).str() : std::string("dense-only")) + " n=" + std::to_string(n) +
           " k=" + std::to_string(k);
  }
};

SlideLinearOptions options_for(const LayerCase& c, LinearBackend backend = LinearBackend::kLibrary) {
  SlideLinearOptions o;
  o.precision = c.precision;
  o.dense_only = c.pattern_n == 0;
  if (c.pattern_n) o.pattern = Pattern::from_n(c.pattern_n);
  o.dense_below_m = 0;  // sparse unless forced
  o.search = false;     // both layers of a comparison run the library's default algorithm
  o.backend = backend;
  return o;
}

std::vector<LayerCase> layer_cases() {
  std::vector<LayerCase> v;
  const std::vector<std::pair<int64_t, int64_t>> shapes =
      quick() ? std::vector<std::pair<int64_t, int64_t>>{{72, 101}}
              : std::vector<std::pair<int64_t, int64_t>>{{72, 101}, {200, 1001}};
  for (LinearPrecision p : {LinearPrecision::kI8, LinearPrecision::kE4M3, LinearPrecision::kBF16})
    for (int pn : {4, 2, 3, 0})
      for (auto [n, k] : shapes) v.push_back({p, pn, n, k});
  return v;
}

std::vector<int64_t> test_ms() { return quick() ? std::vector<int64_t>{1, 33} : std::vector<int64_t>{1, 33, 200}; }

// The activation for every comparison: bf16 gaussian [max m, k].
struct Activations {
  DeviceBuffer x, y;
  int64_t rows = 0, k = 0, n = 0;
  Activations(int64_t rows_, int64_t k_, int64_t n_, uint64_t seed) : rows(rows_), k(k_), n(n_) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<uint16_t> h(size_t(rows * k));
    for (auto& v : h) v = f32_to_bf16(g(rng));
    x.reset(h.size() * 2);
    y.reset(size_t(rows * n) * 2);
    cudaMemcpy(x.get(), h.data(), h.size() * 2, cudaMemcpyHostToDevice);
  }
};

// forward(m rows) on `path` into poisoned Y; the bytes of Y[m, n].
std::vector<uint16_t> run(SlideLinear& l, Activations& a, int64_t m, LinearPath path, cudaStream_t s) {
  cudaMemsetAsync(a.y.get(), 0xFF, size_t(m * a.n) * 2, s);
  l.forward(a.x.get(), m, a.y.get(), s, path);
  if (cudaStreamSynchronize(s) != cudaSuccess) return {};
  return download<uint16_t>(a.y.get(), size_t(m * a.n));
}

// Both layers give the same bytes for every test m on every path the layer has.
::testing::AssertionResult same_outputs(SlideLinear& got, SlideLinear& want, Activations& a, cudaStream_t s,
                                        const std::string& what) {
  std::vector<LinearPath> paths = {LinearPath::kDense};
  if (!got.options().dense_only) paths.push_back(LinearPath::kSparse);
  for (LinearPath path : paths)
    for (int64_t m : test_ms()) {
      const auto g = run(got, a, m, path, s), w = run(want, a, m, path, s);
      if (g.empty() || g.size() != w.size())
        return ::testing::AssertionFailure() << what << ": forward failed (m=" << m << ")";
      int64_t bad = 0, nan = 0;
      size_t first = 0;
      for (size_t i = 0; i < g.size(); ++i) {
        nan += (w[i] & 0x7fff) > 0x7f80;
        if (g[i] != w[i] && bad++ == 0) first = i;
      }
      if (nan > 0) return ::testing::AssertionFailure() << what << ": the reference layer produced NaN";
      if (bad > 0)
        return ::testing::AssertionFailure()
               << what << ": " << bad << " of " << g.size() << " outputs differ on the "
               << (path == LinearPath::kDense ? "dense" : "sparse") << " path at m=" << m << "; first Y" << where(int64_t(first), a.n)
               << " = " << bf16_to_f32(g[first]) << ", want " << bf16_to_f32(w[first]);
    }
  return ::testing::AssertionSuccess();
}

// A weight for the layer tests: gaussian rows with varied scales, zeros and ties (make_weight),
// representable in `dtype`.
std::vector<float> layer_weight(const LayerCase& c, DType dtype, uint64_t seed) { return make_weight(c.n, c.k, dtype, seed); }

TEST(WeightPrepLayer, FromDenseDeviceEqualsFromDense) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  TestStream s;
  uint64_t seed = 2000;
  for (const LayerCase& c : layer_cases())
    for (DType dtype : {DType::kBF16, DType::kF32}) {
      SCOPED_TRACE(c.str() + " from " + dtype_token(dtype));
      const std::vector<float> w = layer_weight(c, dtype, seed++);
      std::vector<float> bias(size_t(c.n));
      for (int64_t j = 0; j < c.n; ++j) bias[size_t(j)] = float(j % 7) * 0.125f - 0.375f;
      SlideLinear host = SlideLinear::from_dense(w.data(), c.n, c.k, options_for(c), bias.data());
      DeviceBuffer wd;
      upload(wd, encode(w, dtype));
      SlideLinear dev = SlideLinear::from_dense_device(wd.get(), dtype, c.n, c.k, options_for(c), bias.data(), s.get());
      EXPECT_EQ(dev.k_sparse(), host.k_sparse());
      Activations a(test_ms().back(), c.k, c.n, seed);
      EXPECT_TRUE(same_outputs(dev, host, a, s.get(), "from_dense_device vs from_dense"));
      if (HasFailure()) return;
    }
}

// A warmed layer (buckets of both paths exist) updated to W2 == a fresh layer of W2.
TEST(WeightPrepLayer, UpdateWeightDeviceEqualsAFreshLayer) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  TestStream s;
  uint64_t seed = 3000;
  for (const LayerCase& c : layer_cases())
    for (bool check : {true, false}) {
      const DType dtype = check ? DType::kBF16 : DType::kF16;
      SCOPED_TRACE(c.str() + (check ? " check" : " deferred") + " from " + dtype_token(dtype));
      const std::vector<float> w1 = layer_weight(c, dtype, seed++), w2 = layer_weight(c, dtype, seed++);
      SlideLinear layer = SlideLinear::from_dense(w1.data(), c.n, c.k, options_for(c));
      layer.warmup(test_ms().back(), s.get(), LinearPath::kDense);
      if (c.pattern_n) layer.warmup(test_ms().back(), s.get(), LinearPath::kSparse);
      DeviceBuffer wd;
      upload(wd, encode(w2, dtype));
      layer.update_weight_device(wd.get(), dtype, s.get(), check);
      if (!check) layer.check_weight_updates(s.get());
      SlideLinear fresh = SlideLinear::from_dense(w2.data(), c.n, c.k, options_for(c));
      Activations a(test_ms().back(), c.k, c.n, seed);
      EXPECT_TRUE(same_outputs(layer, fresh, a, s.get(), "updated vs fresh layer"));
      if (HasFailure()) return;
    }
}

// Codes + scales made by the core (prune + quantize on the host) == from_quantized of the same.
TEST(WeightPrepLayer, UpdateWeightCodesDeviceEqualsFromQuantized) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  TestStream s;
  uint64_t seed = 4000;
  for (const LayerCase& c : layer_cases()) {
    SCOPED_TRACE(c.str());
    const std::vector<float> w1 = layer_weight(c, DType::kF32, seed++), w2 = layer_weight(c, DType::kF32, seed++);
    const std::vector<float> p2 = core_pruned(w2, c.n, c.k, c.pattern_n);
    SlideLinear layer = SlideLinear::from_dense(w1.data(), c.n, c.k, options_for(c));
    layer.warmup(test_ms().back(), s.get(), LinearPath::kDense);
    if (c.pattern_n) layer.warmup(test_ms().back(), s.get(), LinearPath::kSparse);
    std::vector<uint8_t> codes;
    std::vector<float> scales(size_t(c.n));
    std::unique_ptr<SlideLinear> fresh;
    if (c.precision == LinearPrecision::kBF16) {
      codes = encode(p2, DType::kBF16);
      std::vector<float> rounded(p2.size());
      for (size_t i = 0; i < p2.size(); ++i) rounded[i] = round_to(p2[i], DType::kBF16);
      fresh = std::make_unique<SlideLinear>(SlideLinear::from_dense(rounded.data(), c.n, c.k, options_for(c)));
    } else {
      codes.resize(p2.size());
      if (c.precision == LinearPrecision::kI8)
        quantize_rows_i8(DType::kF32, p2.data(), c.n, c.k, reinterpret_cast<int8_t*>(codes.data()), scales.data());
      else
        quantize_rows_e4m3(DType::kF32, p2.data(), c.n, c.k, codes.data(), scales.data());
      fresh = std::make_unique<SlideLinear>(
          SlideLinear::from_quantized(codes.data(), scales.data(), c.n, c.k, options_for(c)));
    }
    DeviceBuffer cd, sd;
    upload(cd, codes);
    upload(sd, scales);
    const bool bf16 = c.precision == LinearPrecision::kBF16;
    layer.update_weight_codes_device(cd.get(), bf16 ? nullptr : sd.as<float>(), s.get());
    Activations a(test_ms().back(), c.k, c.n, seed);
    EXPECT_TRUE(same_outputs(layer, *fresh, a, s.get(), "codes update vs fresh layer"));
    if (HasFailure()) return;
  }
}

// Captured once (check = false), the update + forward graph follows whatever the weight buffer holds.
TEST(WeightPrepLayer, UpdateAndForwardReplayFromACapturedGraph) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  TestStream s;
  uint64_t seed = 5000;
  for (LinearPrecision p : {LinearPrecision::kI8, LinearPrecision::kE4M3, LinearPrecision::kBF16}) {
    const LayerCase c{p, 4, 200, 1001};
    SCOPED_TRACE(c.str());
    const int64_t m = 33;
    const std::vector<float> w1 = layer_weight(c, DType::kBF16, seed++);
    SlideLinear layer = SlideLinear::from_dense(w1.data(), c.n, c.k, options_for(c));
    layer.warmup(m, s.get());
    Activations a(m, c.k, c.n, seed);
    DeviceBuffer wd(size_t(c.n * c.k) * 2);
    // One eager update first: kernels load lazily on first launch.
    SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(wd.get(), encode(w1, DType::kBF16).data(), wd.bytes(), cudaMemcpyHostToDevice));
    layer.update_weight_device(wd.get(), DType::kBF16, s.get(), false);
    SLIDESPARSE_CUDA_ASSERT(cudaStreamSynchronize(s.get()));

    cudaGraph_t graph = nullptr;
    SLIDESPARSE_CUDA_ASSERT(cudaStreamBeginCapture(s.get(), cudaStreamCaptureModeThreadLocal));
    std::string threw;
    try {
      layer.update_weight_device(wd.get(), DType::kBF16, s.get(), false);
      layer.forward(a.x.get(), m, a.y.get(), s.get());
    } catch (const std::exception& e) {
      threw = e.what();
    }
    const cudaError_t end = cudaStreamEndCapture(s.get(), &graph);
    ASSERT_TRUE(threw.empty()) << "under capture: " << threw;
    ASSERT_EQ(end, cudaSuccess) << cudaGetErrorString(end);
    cudaGraphExec_t exec = nullptr;
    SLIDESPARSE_CUDA_ASSERT(cudaGraphInstantiate(&exec, graph, 0));
    for (int step = 0; step < 2; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const std::vector<float> w = layer_weight(c, DType::kBF16, seed++);
      SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(wd.get(), encode(w, DType::kBF16).data(), wd.bytes(), cudaMemcpyHostToDevice));
      SLIDESPARSE_CUDA_ASSERT(cudaMemsetAsync(a.y.get(), 0xFF, size_t(m * c.n) * 2, s.get()));
      SLIDESPARSE_CUDA_ASSERT(cudaGraphLaunch(exec, s.get()));
      SLIDESPARSE_CUDA_ASSERT(cudaStreamSynchronize(s.get()));
      const auto got = download<uint16_t>(a.y.get(), size_t(m * c.n));
      SlideLinear fresh = SlideLinear::from_dense(w.data(), c.n, c.k, options_for(c));
      const auto want = run(fresh, a, m, LinearPath::kSparse, s.get());
      ASSERT_EQ(got.size(), want.size());
      EXPECT_TRUE(got == want) << "graph replay of update + forward differs from a fresh layer of the new weight";
    }
    layer.check_weight_updates(s.get());
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
}

TEST(WeightPrepLayer, UpdateAllocatesNoDeviceMemory) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  TestStream s;
  const LayerCase c{LinearPrecision::kE4M3, 4, 1000, 2000};
  const std::vector<float> w = layer_weight(c, DType::kBF16, 77);
  SlideLinear layer = SlideLinear::from_dense(w.data(), c.n, c.k, options_for(c));
  layer.warmup(64, s.get(), LinearPath::kDense);
  layer.warmup(64, s.get(), LinearPath::kSparse);
  DeviceBuffer wd;
  upload(wd, encode(w, DType::kBF16));
  layer.update_weight_device(wd.get(), DType::kBF16, s.get(), false);  // kernels load lazily
  SLIDESPARSE_CUDA_ASSERT(cudaStreamSynchronize(s.get()));
  size_t free0 = 0, free1 = 0, total = 0;
  SLIDESPARSE_CUDA_ASSERT(cudaMemGetInfo(&free0, &total));
  for (int i = 0; i < 5; ++i) layer.update_weight_device(wd.get(), DType::kBF16, s.get(), i % 2 == 0);
  SLIDESPARSE_CUDA_ASSERT(cudaStreamSynchronize(s.get()));
  SLIDESPARSE_CUDA_ASSERT(cudaMemGetInfo(&free1, &total));
  EXPECT_EQ(free0, free1) << "device memory changed across five updates";
}

void expect_error(const std::function<void()>& f, Status status, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected " << status_name(status) << " mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

TEST(WeightPrepLayer, BadInputIsRejectedAndLeavesTheLayerAsItWas) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  TestStream s;
  const LayerCase c{LinearPrecision::kI8, 4, 72, 101};
  const std::vector<float> w = layer_weight(c, DType::kF32, 9);
  SlideLinear layer = SlideLinear::from_dense(w.data(), c.n, c.k, options_for(c));
  SlideLinear same = SlideLinear::from_dense(w.data(), c.n, c.k, options_for(c));
  Activations a(test_ms().back(), c.k, c.n, 10);
  DeviceBuffer wd, codes, scales;
  upload(wd, encode(w, DType::kF32));

  // Arguments.
  expect_error([&] { layer.update_weight_device(wd.get(), DType::kI8, s.get()); }, Status::kInvalidArgument,
               "supported: f32, bf16, f16");
  expect_error([&] { layer.update_weight_device(nullptr, DType::kBF16, s.get()); }, Status::kInvalidArgument, "null");
  expect_error([&] { SlideLinear::from_dense_device(wd.get(), DType::kE4M3, c.n, c.k, options_for(c)); },
               Status::kInvalidArgument, "supported: f32, bf16, f16");
  expect_error([&] { SlideLinear::from_dense_device(wd.get(), DType::kF32, 0, c.k, options_for(c)); },
               Status::kInvalidArgument, "n >= 1");
  expect_error([&] { layer.update_weight_codes_device(wd.get(), nullptr, s.get()); }, Status::kInvalidArgument,
               "per-channel scales");

  // A non-finite dense weight: from_dense_device and update both name it.
  std::vector<float> inf = w;
  inf[size_t(5 * c.k + 17)] = -std::numeric_limits<float>::infinity();
  DeviceBuffer bad_w;
  upload(bad_w, encode(inf, DType::kF32));
  expect_error([&] { SlideLinear::from_dense_device(bad_w.get(), DType::kF32, c.n, c.k, options_for(c)); },
               Status::kInvalidData, "W[5, 17]");
  expect_error([&] { layer.update_weight_device(bad_w.get(), DType::kF32, s.get()); }, Status::kInvalidData, "W[5, 17]");

  // Codes that break 6:8 (row 3, group 5 = columns 40..47 with seven nonzeros), a bad scale.
  std::vector<float> p = core_pruned(w, c.n, c.k, 4);
  std::vector<int8_t> q(p.size());
  std::vector<float> sc(size_t(c.n));
  quantize_rows_i8(DType::kF32, p.data(), c.n, c.k, q.data(), sc.data());
  std::vector<int8_t> dense_q = q;
  for (int64_t col = 40; col < 47; ++col) dense_q[size_t(3 * c.k + col)] = 3;
  upload(codes, dense_q);
  upload(scales, sc);
  expect_error([&] { layer.update_weight_codes_device(codes.get(), scales.as<float>(), s.get()); },
               Status::kInvalidData, "row 3, group 5 (columns 40..47)");
  std::vector<float> bad_sc = sc;
  bad_sc[7] = 0.0f;
  DeviceBuffer bad_scales;
  upload(bad_scales, bad_sc);
  DeviceBuffer good_codes;
  upload(good_codes, q);
  expect_error([&] { layer.update_weight_codes_device(good_codes.get(), bad_scales.as<float>(), s.get()); },
               Status::kInvalidData, "w_scale[7]");
  EXPECT_TRUE(same_outputs(layer, same, a, s.get(), "after refused updates"));

  // Deferred: no error at the call, the next check names it; then a good update clears it.
  layer.update_weight_codes_device(codes.get(), scales.as<float>(), s.get(), false);
  expect_error([&] { layer.check_weight_updates(s.get()); }, Status::kInvalidData, "row 3, group 5");
  layer.check_weight_updates(s.get());  // cleared
  layer.update_weight_device(wd.get(), DType::kF32, s.get(), false);
  layer.check_weight_updates(s.get());
  EXPECT_TRUE(same_outputs(layer, same, a, s.get(), "after a good deferred update"));

  // check = true under capture is refused, and the capture survives the refusal.
  SLIDESPARSE_CUDA_ASSERT(cudaStreamBeginCapture(s.get(), cudaStreamCaptureModeThreadLocal));
  Status st = Status::kOk;
  std::string msg;
  try {
    layer.update_weight_device(wd.get(), DType::kF32, s.get(), true);
  } catch (const Error& e) {
    st = e.status();
    msg = e.what();
  }
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(s.get(), &graph), cudaSuccess);
  if (graph) cudaGraphDestroy(graph);
  EXPECT_EQ(st, Status::kInvalidArgument);
  EXPECT_NE(msg.find("check = false"), std::string::npos) << msg;

  // A bf16 layer takes no scales.
  const LayerCase b{LinearPrecision::kBF16, 4, 72, 101};
  SlideLinear bl = SlideLinear::from_dense(w.data(), b.n, b.k, options_for(b));
  expect_error([&] { bl.update_weight_codes_device(wd.get(), scales.as<float>(), s.get()); }, Status::kInvalidArgument,
               "without scales");
}

// The sm90 backend's plans take updates through CUTLASS's compressor.
TEST(WeightPrepLayer, Sm90PlansTakeUpdates) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  if (!sm90_available() || sm90_kernels_for(GemmPrecision::kI8, true).empty())
    GTEST_SKIP() << "no sm90 i8 sparse kernel in this build or not an sm_90 GPU";
  TestStream s;
  const LayerCase c{LinearPrecision::kI8, 4, 200, 1001};
  const std::vector<float> w1 = layer_weight(c, DType::kBF16, 61), w2 = layer_weight(c, DType::kBF16, 62);
  SlideLinear layer = SlideLinear::from_dense(w1.data(), c.n, c.k, options_for(c, LinearBackend::kSm90));
  layer.warmup(test_ms().back(), s.get(), LinearPath::kSparse);
  layer.warmup(test_ms().back(), s.get(), LinearPath::kDense);
  DeviceBuffer wd;
  upload(wd, encode(w2, DType::kBF16));
  layer.update_weight_device(wd.get(), DType::kBF16, s.get(), true);
  SlideLinear fresh = SlideLinear::from_dense(w2.data(), c.n, c.k, options_for(c, LinearBackend::kSm90));
  Activations a(test_ms().back(), c.k, c.n, 63);
  EXPECT_TRUE(same_outputs(layer, fresh, a, s.get(), "sm90: updated vs fresh layer"));
}

}  // namespace
}  // namespace slidesparse
