// Tier 1: the keep:group mask kernel (src/kernels/nm_mask.cu) against the CPU definition
// (nm_mask in src/core, itself tested against the sort-based reference in core_nm_mask).
//
// Oracle: the CPU mask and masked weight, compared byte for byte. Data: tie-heavy small integers
// (many equal |w|, zeros of both signs, +-inf), random floats, for f32/bf16/f16, keep:group in
// {2:4, 6:8, 4:6, 8:10, 14:16, 1:4, 30:32, 0:3, 3:3}, odd k, row strides > k. Outputs are poisoned
// (0xA5) before the launch, with a poisoned guard after them that must survive. Also: in place,
// NaN reporting (the first flat index, groups with NaN keep nothing), rejected parameters, and a
// row stride past 2^31 elements (64-bit indexing). Without a CUDA device every test skips loudly.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gpu/gpu_test_util.hpp"
#include "kernels/nm_mask.cuh"
#include "slidesparse/error.hpp"
#include "slidesparse/nm_mask.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

constexpr uint8_t kPoison = 0xA5;
constexpr size_t kGuard = 64;

struct KeepGroup {
  int keep, group;
};
const KeepGroup kCases[] = {{2, 4}, {6, 8}, {4, 6}, {8, 10}, {14, 16}, {1, 4}, {30, 32}, {0, 3}, {3, 3}};

struct DevBuf {
  void* p = nullptr;
  explicit DevBuf(size_t bytes) {
    if (cudaMalloc(&p, bytes) != cudaSuccess) p = nullptr;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
};

// Element bytes of value v in dtype t.
void put(DType t, uint8_t* dst, float v) {
  if (t == DType::kF32) {
    std::memcpy(dst, &v, 4);
  } else {
    const uint16_t h = t == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
    std::memcpy(dst, &h, 2);
  }
}

// rows x ld elements; kind 0: integers in [-3, 3] with -0.0 and an occasional +-inf (ties
// everywhere), kind 1: gaussian floats.
std::vector<uint8_t> make_w(DType t, int64_t rows, int64_t ld, uint64_t seed, int kind) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(-3, 3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  const size_t B = dtype_size(t);
  std::vector<uint8_t> w(size_t(rows * ld) * B);
  for (int64_t i = 0; i < rows * ld; ++i) {
    float v;
    if (kind == 0) {
      const int q = d(rng);
      v = q == 0 && (rng() & 1) ? -0.0f : float(q);
      if (rng() % 61 == 0) v = (rng() & 1) ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
    } else {
      v = g(rng);
    }
    put(t, &w[size_t(i) * B], v);
  }
  return w;
}

struct GpuResult {
  std::vector<uint8_t> mask, w_out;  // with guards
  unsigned long long first_nan = 0;
};

// Runs the kernel with both outputs (or one) into poisoned buffers of rows*k (+ guard).
GpuResult run_gpu(DType t, const std::vector<uint8_t>& w, int64_t rows, int64_t k, int64_t ld, int keep,
                  int group, bool want_mask, bool want_wout) {
  const size_t B = dtype_size(t);
  GpuResult r;
  DevBuf dw(std::max<size_t>(w.size(), 1));
  DevBuf dm(size_t(rows * k) + kGuard);
  DevBuf dout(size_t(rows * k) * B + kGuard);
  DevBuf dnan(8);
  EXPECT_TRUE(dw.p && dm.p && dout.p && dnan.p);
  EXPECT_EQ(cudaMemcpy(dw.p, w.data(), w.size(), cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemset(dm.p, kPoison, size_t(rows * k) + kGuard), cudaSuccess);
  EXPECT_EQ(cudaMemset(dout.p, kPoison, size_t(rows * k) * B + kGuard), cudaSuccess);
  EXPECT_EQ(cudaMemset(dnan.p, 0, 8), cudaSuccess);
  NmMaskParams p;
  p.w = dw.p;
  p.dtype = t;
  p.rows = rows;
  p.k = k;
  p.ldw = ld;
  p.keep = keep;
  p.group = group;
  p.mask = want_mask ? static_cast<uint8_t*>(dm.p) : nullptr;
  p.ldm = k;
  p.w_out = want_wout ? dout.p : nullptr;
  p.ldo = k;
  p.first_nan = static_cast<unsigned long long*>(dnan.p);
  EXPECT_EQ(nm_mask_check(p), nullptr);
  EXPECT_EQ(nm_mask(p, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  r.mask.resize(size_t(rows * k) + kGuard);
  r.w_out.resize(size_t(rows * k) * B + kGuard);
  EXPECT_EQ(cudaMemcpy(r.mask.data(), dm.p, r.mask.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(r.w_out.data(), dout.p, r.w_out.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(&r.first_nan, dnan.p, 8, cudaMemcpyDeviceToHost), cudaSuccess);
  return r;
}

void expect_guard(const std::vector<uint8_t>& buf, size_t used, const char* what) {
  for (size_t i = used; i < buf.size(); ++i) ASSERT_EQ(buf[i], kPoison) << what << " written past its end at " << i;
}

TEST(GpuNmMask, MatchesCpuBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16})
    for (const KeepGroup c : kCases)
      for (int kind : {0, 1})
        for (int64_t k : {int64_t(1), int64_t(5), int64_t(37), int64_t(129), int64_t(1027)})
          for (int64_t rows : {int64_t(1), int64_t(3), int64_t(130)}) {
            const int64_t ld = k + (rows % 2 ? 0 : 5);
            const uint64_t seed = uint64_t(k) * 1000003u + uint64_t(rows) * 131u + uint64_t(c.group) * 17u +
                                  uint64_t(c.keep) + uint64_t(kind) * 7u + uint64_t(t);
            SCOPED_TRACE(std::string(dtype_token(t)) + " " + std::to_string(c.keep) + ":" +
                         std::to_string(c.group) + " rows=" + std::to_string(rows) + " k=" + std::to_string(k) +
                         " ld=" + std::to_string(ld) + " kind=" + std::to_string(kind) +
                         " seed=" + std::to_string(seed));
            const std::vector<uint8_t> w = make_w(t, rows, ld, seed, kind);
            const size_t B = dtype_size(t);
            std::vector<uint8_t> want_mask(size_t(rows * k)), want_out(size_t(rows * k) * B);
            nm_mask(t, w.data(), rows, k, ld, c.keep, c.group, want_mask.data(), want_out.data());
            const GpuResult g = run_gpu(t, w, rows, k, ld, c.keep, c.group, true, true);
            ASSERT_EQ(std::memcmp(g.mask.data(), want_mask.data(), want_mask.size()), 0);
            ASSERT_EQ(std::memcmp(g.w_out.data(), want_out.data(), want_out.size()), 0);
            expect_guard(g.mask, want_mask.size(), "mask");
            expect_guard(g.w_out, want_out.size(), "w_out");
            EXPECT_EQ(g.first_nan, ~0ull);
          }
}

TEST(GpuNmMask, OneOutputOnlyAndInPlace) {
  SLIDESPARSE_REQUIRE_GPU();
  const DType t = DType::kBF16;
  const int64_t rows = 9, k = 70;
  const std::vector<uint8_t> w = make_w(t, rows, k, 99, 0);
  std::vector<uint8_t> want_mask(size_t(rows * k)), want_out(size_t(rows * k) * 2);
  nm_mask(t, w.data(), rows, k, k, 6, 8, want_mask.data(), want_out.data());
  // Mask only: w_out untouched (still poison).
  GpuResult g = run_gpu(t, w, rows, k, k, 6, 8, true, false);
  ASSERT_EQ(std::memcmp(g.mask.data(), want_mask.data(), want_mask.size()), 0);
  for (uint8_t b : g.w_out) ASSERT_EQ(b, kPoison);
  // Masked weight only.
  g = run_gpu(t, w, rows, k, k, 6, 8, false, true);
  ASSERT_EQ(std::memcmp(g.w_out.data(), want_out.data(), want_out.size()), 0);
  for (uint8_t b : g.mask) ASSERT_EQ(b, kPoison);
  // In place.
  DevBuf dw(w.size());
  ASSERT_NE(dw.p, nullptr);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(dw.p, w.data(), w.size(), cudaMemcpyHostToDevice));
  NmMaskParams p;
  p.w = dw.p;
  p.dtype = t;
  p.rows = rows;
  p.k = p.ldw = p.ldo = k;
  p.keep = 6;
  p.group = 8;
  p.w_out = dw.p;
  SLIDESPARSE_CUDA_ASSERT(nm_mask(p, nullptr));
  std::vector<uint8_t> back(w.size());
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(back.data(), dw.p, back.size(), cudaMemcpyDeviceToHost));
  EXPECT_EQ(back, want_out);
}

TEST(GpuNmMask, NanReportsFirstIndexAndKeepsNothingInItsGroup) {
  SLIDESPARSE_REQUIRE_GPU();
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int64_t rows = 4, k = 21, ld = 24;
    std::vector<uint8_t> w = make_w(t, rows, ld, 7, 1);
    const size_t B = dtype_size(t);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    put(t, &w[size_t(2 * ld + 9) * B], nan);   // row 2, column 9 -> flat 2*21+9 = 51, group 2 (cols 8..11)
    put(t, &w[size_t(3 * ld + 0) * B], -nan);  // later in flat order
    put(t, &w[size_t(0 * ld + 22) * B], nan);  // in the stride padding: never read
    const GpuResult g = run_gpu(t, w, rows, k, ld, 2, 4, true, true);
    EXPECT_EQ(g.first_nan, 51ull) << dtype_token(t);
    for (int64_t c = 8; c < 12; ++c) EXPECT_EQ(g.mask[size_t(2 * k + c)], 0) << dtype_token(t) << " col " << c;
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(g.mask[size_t(3 * k + c)], 0) << dtype_token(t) << " col " << c;
    // Every other group matches the CPU on the NaN-free rows.
    std::vector<uint8_t> want(size_t(2 * k));
    nm_mask(t, w.data(), 2, k, ld, 2, 4, want.data());
    EXPECT_EQ(std::memcmp(g.mask.data(), want.data(), want.size()), 0) << dtype_token(t);
    // The CPU refuses the same matrix.
    std::vector<uint8_t> cpu(size_t(rows * k));
    EXPECT_THROW(nm_mask(t, w.data(), rows, k, ld, 2, 4, cpu.data()), Error);
  }
}

TEST(GpuNmMask, RejectsBadParameters) {
  SLIDESPARSE_REQUIRE_GPU();
  uint8_t dummy_mask[8];
  float w[8] = {};
  NmMaskParams ok;
  ok.w = w;
  ok.dtype = DType::kF32;
  ok.rows = 1;
  ok.k = ok.ldw = ok.ldm = 8;
  ok.keep = 2;
  ok.group = 4;
  ok.mask = dummy_mask;
  EXPECT_EQ(nm_mask_check(ok), nullptr);
  auto bad = [&](auto edit, const char* needle) {
    NmMaskParams p = ok;
    edit(p);
    const char* why = nm_mask_check(p);
    ASSERT_NE(why, nullptr) << needle;
    EXPECT_NE(std::string(why).find(needle), std::string::npos) << why;
    EXPECT_EQ(nm_mask(p, nullptr), cudaErrorInvalidValue);
  };
  bad([](NmMaskParams& p) { p.group = 33; }, "group");
  bad([](NmMaskParams& p) { p.group = 0; }, "group");
  bad([](NmMaskParams& p) { p.keep = 5; }, "keep");
  bad([](NmMaskParams& p) { p.keep = -1; }, "keep");
  bad([](NmMaskParams& p) { p.dtype = DType::kI8; }, "dtype");
  bad([](NmMaskParams& p) { p.ldw = 7; }, "ldw");
  bad([](NmMaskParams& p) { p.ldm = 7; }, "ldm");
  bad([](NmMaskParams& p) { p.mask = nullptr; }, "no output");
  bad([](NmMaskParams& p) { p.w = nullptr; }, "w is null");
  bad([](NmMaskParams& p) { p.w_out = const_cast<void*>(p.w); p.ldo = 8; p.ldw = 9; }, "in place");
}

// Row offsets past 2^31 elements: rows = 3 with a row stride of 2^30 + 3 bf16 elements (6 GiB).
TEST(GpuNmMask, SixtyFourBitIndexing) {
  SLIDESPARSE_REQUIRE_GPU();
  const int64_t rows = 3, k = 45, ld = (int64_t(1) << 30) + 3;
  const size_t bytes = size_t(rows * ld) * 2;
  size_t free_b = 0, total_b = 0;
  SLIDESPARSE_CUDA_ASSERT(cudaMemGetInfo(&free_b, &total_b));
  if (free_b < bytes + (size_t(1) << 30)) GTEST_SKIP() << "needs " << bytes << " bytes of device memory, " << free_b << " free";
  DevBuf dw(bytes);
  ASSERT_NE(dw.p, nullptr);
  const std::vector<uint8_t> rowsdata = make_w(DType::kBF16, rows, k, 3, 0);
  for (int64_t r = 0; r < rows; ++r)
    SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(static_cast<uint8_t*>(dw.p) + size_t(r * ld) * 2, &rowsdata[size_t(r * k) * 2],
                                       size_t(k) * 2, cudaMemcpyHostToDevice));
  DevBuf dm(size_t(rows * k));
  ASSERT_NE(dm.p, nullptr);
  SLIDESPARSE_CUDA_ASSERT(launch_nm_mask(dw.p, DType::kBF16, rows, k, ld, 6, 8, static_cast<uint8_t*>(dm.p), nullptr));
  std::vector<uint8_t> got(size_t(rows * k)), want(size_t(rows * k));
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(got.data(), dm.p, got.size(), cudaMemcpyDeviceToHost));
  nm_mask(DType::kBF16, rowsdata.data(), rows, k, k, 6, 8, want.data());
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace slidesparse
