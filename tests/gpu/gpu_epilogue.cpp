// Tier 1: the scale epilogue (src/kernels/epilogue.cuh) bit for bit against a CPU twin.
//
// The CPU twin (gpu_epilogue_twin.hpp, shared with gpu_ternary.cpp) performs the contract's
// operations in its order, one IEEE f32 operation at a time (this file is compiled with
// -ffp-contract=off: no FMA), then the core's round-to-nearest-even f32_to_bf16 / f32_to_f16.
// Random accumulators (i32 beyond 2^24 included, f32 over a wide exponent range, finite 16-bit
// patterns) and random, non-power-of-two scales and biases, so every rounding step is exercised;
// overflow to inf is included, NaN never arises (no NaN input, no zero scale). Y is poisoned with
// 0xFF bytes (NaN in bf16 and f16: never a result) before every run; every element of Y[m, n] must
// equal the twin, and every byte around it (the gap up to ldy, rows past m, a trailing guard) must
// still be poison. Layouts cover the 16-byte path, odd n (scalar tails), Y rows of alternating
// alignment, and misaligned acc / Y base pointers.
// Without a CUDA device every test calls GTEST_SKIP() with the reason.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gpu/gpu_epilogue_twin.hpp"
#include "gpu/gpu_test_util.hpp"
#include "kernels/epilogue.cuh"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

using gputest::quick;

constexpr uint8_t kPoison = 0xFF;      // 0xFFFF: NaN in bf16 and f16
constexpr size_t kGuardBytes = 4096;   // checked after Y's last row

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) {
    if (bytes > 0) status_ = cudaMalloc(&ptr_, bytes);
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  uint8_t* get() const { return static_cast<uint8_t*>(ptr_); }
  cudaError_t status() const { return status_; }

 private:
  void* ptr_ = nullptr;
  cudaError_t status_ = cudaSuccess;
};

struct Case {
  DType acc_dtype, y_dtype;
  int64_t m, n, ld_acc, ldy;
  int64_t acc_offset = 0, y_offset = 0;  // elements past a 256-byte-aligned base
  bool scales = true, bias = false;
  uint64_t seed = 1;
  std::string str() const {
    std::ostringstream s;
    s << dtype_token(acc_dtype) << "->" << dtype_token(y_dtype) << " m=" << m << " n=" << n
      << " ld_acc=" << ld_acc << " ldy=" << ldy << " acc_offset=" << acc_offset << " y_offset=" << y_offset
      << (scales ? " scales" : " no-scales") << (bias ? " bias" : "") << " seed=" << seed;
    return s.str();
  }
};

// The CPU twin (tests/gpu/gpu_epilogue_twin.hpp): the contract's operations, in its order, in f32.
using gputest::epilogue_twin;

void fill_acc(DType t, std::vector<uint8_t>& acc, std::mt19937_64& rng) {
  const size_t es = dtype_size(t);
  std::uniform_int_distribution<int> pick(0, 9), exp(-30, 30);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (size_t i = 0; i < acc.size() / es; ++i) {
    uint8_t* p = &acc[i * es];
    switch (t) {
      case DType::kI32: {
        // Mostly moderate values, some beyond 2^24 (rounded by the conversion), the extremes.
        const int kind = pick(rng);
        int32_t v = kind < 6 ? int32_t(rng() % 200001) - 100000
                    : kind < 9 ? int32_t(uint32_t(rng()))
                               : (rng() & 1 ? INT32_MAX : INT32_MIN);
        std::memcpy(p, &v, 4);
        break;
      }
      case DType::kF32: {
        const float v = std::ldexp(unit(rng), exp(rng));
        std::memcpy(p, &v, 4);
        break;
      }
      default: {  // finite 16-bit patterns of either format
        uint16_t v;
        do {
          v = uint16_t(rng());
        } while (!std::isfinite(t == DType::kBF16 ? bf16_to_f32(v) : f16_to_f32(v)));
        std::memcpy(p, &v, 2);
        break;
      }
    }
  }
}

// Scales spread over a few binades, never zero; some large enough that f16 outputs overflow.
std::vector<float> random_floats(size_t count, int lo_exp, int hi_exp, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> e(lo_exp, hi_exp);
  std::vector<float> v(count);
  for (auto& x : v) x = std::ldexp(mant(rng), e(rng)) * (rng() & 1 ? -1.0f : 1.0f);
  return v;
}

void run_case(const Case& c) {
  SCOPED_TRACE(c.str());
  std::mt19937_64 rng(c.seed);
  const size_t aes = dtype_size(c.acc_dtype);
  std::vector<uint8_t> acc(size_t(c.m * c.ld_acc) * aes);
  fill_acc(c.acc_dtype, acc, rng);
  // Per-token scales by accumulator kind: i32 sums are large (scales like amax/127 of small
  // activations), f32 ones spread widely, 16-bit outputs already carry their magnitude.
  const int lo = c.acc_dtype == DType::kI32 ? -20 : c.acc_dtype == DType::kF32 ? -6 : -2;
  const int hi = c.acc_dtype == DType::kI32 ? -8 : c.acc_dtype == DType::kF32 ? 6 : 2;
  std::vector<float> sx = random_floats(size_t(c.m), lo, hi, rng);
  std::vector<float> sw = random_floats(size_t(c.n), -10, 2, rng);
  std::vector<float> bias = random_floats(size_t(c.n), -8, 8, rng);

  const size_t acc_bytes = acc.size() + size_t(c.acc_offset) * aes;
  const size_t y_bytes = size_t(c.m * c.ldy + c.y_offset) * 2 + kGuardBytes;
  DeviceBuffer d_acc(acc_bytes + 256), d_y(y_bytes + 256), d_sx(sx.size() * 4 + 16), d_sw(sw.size() * 4 + 16),
      d_b(bias.size() * 4 + 16);
  for (const auto* b : {&d_acc, &d_y, &d_sx, &d_sw, &d_b}) ASSERT_EQ(b->status(), cudaSuccess);
  uint8_t* acc_dev = d_acc.get() + size_t(c.acc_offset) * aes;
  uint8_t* y_base = d_y.get();
  uint8_t* y_dev = y_base + size_t(c.y_offset) * 2;
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(acc_dev, acc.data(), acc.size(), cudaMemcpyHostToDevice));
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(d_sx.get(), sx.data(), sx.size() * 4, cudaMemcpyHostToDevice));
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(d_sw.get(), sw.data(), sw.size() * 4, cudaMemcpyHostToDevice));
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(d_b.get(), bias.data(), bias.size() * 4, cudaMemcpyHostToDevice));
  SLIDESPARSE_CUDA_ASSERT(cudaMemset(y_base, kPoison, y_bytes));

  EpilogueParams p;
  p.acc = acc_dev;
  p.acc_dtype = c.acc_dtype;
  p.ld_acc = c.ld_acc;
  p.s_x = c.scales ? reinterpret_cast<const float*>(d_sx.get()) : nullptr;
  p.s_w = c.scales ? reinterpret_cast<const float*>(d_sw.get()) : nullptr;
  p.bias = c.bias ? reinterpret_cast<const float*>(d_b.get()) : nullptr;
  p.y = y_dev;
  p.y_dtype = c.y_dtype;
  p.ldy = c.ldy;
  p.m = c.m;
  p.n = c.n;
  ASSERT_EQ(epilogue_check(p), nullptr) << epilogue_check(p);
  SLIDESPARSE_CUDA_ASSERT(scale_epilogue(p, nullptr));
  SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
  std::vector<uint8_t> y(y_bytes);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(y.data(), y_base, y_bytes, cudaMemcpyDeviceToHost));

  int64_t bad = 0;
  std::ostringstream first;
  const size_t y0 = size_t(c.y_offset) * 2;
  for (size_t byte = 0; byte < y_bytes; byte += 2) {
    uint16_t got;
    std::memcpy(&got, &y[byte], 2);
    const bool in_y = byte >= y0 && byte < y0 + size_t(c.m * c.ldy) * 2;
    const int64_t e = in_y ? int64_t((byte - y0) / 2) : -1;
    const int64_t i = e >= 0 ? e / c.ldy : -1, j = e >= 0 ? e % c.ldy : -1;
    uint16_t want;
    if (in_y && j < c.n) {
      want = epilogue_twin(c.acc_dtype, &acc[size_t(i * c.ld_acc + j) * aes], c.scales ? &sx[size_t(i)] : nullptr,
                  c.scales ? &sw[size_t(j)] : nullptr, c.bias ? &bias[size_t(j)] : nullptr, c.y_dtype);
    } else {
      want = uint16_t(0x101u * kPoison);  // must be untouched
    }
    if (got != want) {
      if (bad < 5)
        first << "\n  " << (in_y && j < c.n ? "Y[" + std::to_string(i) + "," + std::to_string(j) + "]"
                                            : "byte " + std::to_string(byte) + " outside Y[m, n]")
              << " = 0x" << std::hex << got << ", want 0x" << want << std::dec;
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << bad << " mismatching 16-bit words" << first.str();
}

TEST(GpuEpilogue, MatchesCpuTwinBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  struct Layout {
    int64_t m, n, ld_acc, ldy, acc_offset, y_offset;
  };
  std::vector<Layout> layouts{
      {1, 1, 32, 1, 0, 0},          // one element
      {16, 64, 64, 64, 0, 0},       // everything 16-byte aligned
      {15, 100, 128, 100, 0, 0},    // odd n: tails; Y rows of 200 bytes alternate alignment
      {33, 1000, 1024, 1000, 0, 0},  // GEMM-like: ld_acc = n_cols
      {7, 37, 40, 41, 0, 1},        // misaligned Y base, odd ldy
      {5, 64, 64, 72, 1, 0},        // misaligned acc base: scalar path throughout
      {9, 24, 24, 24, 0, 4},        // Y base 8 bytes off: scalar on every row
  };
  if (!quick()) {
    layouts.push_back({2000, 4104, 4128, 4104, 0, 0});  // several rows per thread
    layouts.push_back({4099, 17, 32, 17, 0, 0});
  }
  uint64_t seed = 1;
  for (DType acc : {DType::kI32, DType::kF32, DType::kBF16, DType::kF16})
    for (DType out : {DType::kBF16, DType::kF16})
      for (const Layout& l : layouts)
        for (int variant = 0; variant < 3; ++variant) {
          Case c{acc, out, l.m, l.n, l.ld_acc, l.ldy, l.acc_offset, l.y_offset};
          c.scales = variant != 2;
          c.bias = variant != 0;
          c.seed = seed++;
          run_case(c);
          if (HasFatalFailure()) return;
        }
}

TEST(GpuEpilogue, EmptyShapesLaunchNothing) {
  SLIDESPARSE_REQUIRE_GPU();
  EpilogueParams p;
  p.acc_dtype = DType::kI32;
  p.m = 0;
  p.n = 5;
  EXPECT_EQ(epilogue_check(p), nullptr);
  EXPECT_EQ(scale_epilogue(p, nullptr), cudaSuccess);
  p.m = 5;
  p.n = 0;
  EXPECT_EQ(scale_epilogue(p, nullptr), cudaSuccess);
  SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
}

TEST(GpuEpilogue, RejectsInvalidParams) {
  // Pure host checks: no device needed.
  alignas(16) static int32_t acc[64];
  alignas(16) static uint16_t y[64];
  auto valid = [] {
    EpilogueParams p;
    p.acc = acc;
    p.acc_dtype = DType::kI32;
    p.ld_acc = 8;
    p.y = y;
    p.y_dtype = DType::kBF16;
    p.ldy = 8;
    p.m = 4;
    p.n = 8;
    return p;
  };
  ASSERT_EQ(epilogue_check(valid()), nullptr);
  struct Bad {
    const char* fragment;
    EpilogueParams p;
  };
  std::vector<Bad> bad;
  {
    auto p = valid();
    p.acc_dtype = DType::kI8;
    bad.push_back({"acc_dtype", p});
  }
  {
    auto p = valid();
    p.y_dtype = DType::kF32;
    bad.push_back({"y_dtype", p});
  }
  {
    auto p = valid();
    p.ld_acc = 7;
    bad.push_back({"ld_acc", p});
  }
  {
    auto p = valid();
    p.ldy = 7;
    bad.push_back({"ldy", p});
  }
  {
    auto p = valid();
    p.y = nullptr;
    bad.push_back({"null", p});
  }
  {
    auto p = valid();
    p.m = -1;
    bad.push_back({"non-negative", p});
  }
  {
    auto p = valid();
    p.acc = reinterpret_cast<const uint8_t*>(acc) + 2;
    bad.push_back({"aligned", p});
  }
  {
    auto p = valid();
    p.s_w = reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(acc) + 1);
    bad.push_back({"4-byte", p});
  }
  for (const Bad& b : bad) {
    const char* why = epilogue_check(b.p);
    ASSERT_NE(why, nullptr) << "expected a rejection mentioning '" << b.fragment << "'";
    EXPECT_NE(std::string(why).find(b.fragment), std::string::npos) << why;
    EXPECT_EQ(scale_epilogue(b.p, nullptr), cudaErrorInvalidValue) << why;
  }
}

}  // namespace
}  // namespace slidesparse
