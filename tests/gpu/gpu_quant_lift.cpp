// Tier 1: the fused quantize + lift kernel (src/kernels/quant_lift.cu) against the CPU core.
//
// Oracle: quantize_rows_i8 / quantize_rows_e4m3 on the original rows, then lift_activations, must
// equal the GPU output byte for byte, and the scales bit for bit. Every output buffer is poisoned
// (0xA5) before the launch; every byte of q[0:m_pad, 0:k_out] and scale[0:m_pad] is compared, and
// the bytes between k_out and ldq and past the end must still hold the poison. Without a CUDA
// device every GPU test calls GTEST_SKIP() with the reason (ctest reports "Skipped").
#include <cuda_fp8.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gpu/gpu_test_util.hpp"
#include "kernels/quant_lift.cuh"
#include "slidesparse/pattern.hpp"
#include "slidesparse/quant.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

constexpr uint8_t kPoison = 0xA5;
constexpr size_t kGuardBytes = 64;  // poisoned tail after every output buffer

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) status_ = cudaMalloc(&ptr_, bytes_);
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  uint8_t* get() const { return static_cast<uint8_t*>(ptr_); }
  size_t bytes() const { return bytes_; }
  cudaError_t status() const { return status_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  cudaError_t status_ = cudaSuccess;
};

uint16_t to_half_bits(DType t, float v) { return t == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v); }

// A value outside the row that would poison amax if the kernel ever read it: NaN.
uint16_t nan_bits(DType t) { return t == DType::kBF16 ? uint16_t(0x7fc1) : uint16_t(0x7e01); }

// X[m, ldx]: row kinds rotate with the seed, so that small m still meet every kind across shapes.
//   gaussian at three magnitudes, all zeros (+0 and -0), tiny (amax below the 2^-100 clamp for
//   bf16; f16 subnormals), exact INT8 ties (amax 127 so inv = 1, values n + 0.5), E4M3 midpoints
//   (amax 448 so inv = 1), wide range. Columns k..ldx-1 hold NaN.
std::vector<uint16_t> make_x(DType t, int64_t m, int64_t k, int64_t ldx, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> coin(0, 1);
  const bool bf16 = t == DType::kBF16;
  std::vector<float> mids;  // midpoints between adjacent finite E4M3 codes below 448
  for (int c = 0; c < 0x7e; ++c) mids.push_back(0.5f * (e4m3_to_f32(uint8_t(c)) + e4m3_to_f32(uint8_t(c + 1))));
  std::vector<uint16_t> x(size_t(std::max<int64_t>(m * ldx, 1)), nan_bits(t));
  for (int64_t r = 0; r < m; ++r) {
    uint16_t* row = &x[size_t(r * ldx)];
    const int kind = int((uint64_t(r) + seed) % 9);
    const int64_t pivot = k > 0 ? int64_t(rng() % uint64_t(k)) : 0;
    for (int64_t j = 0; j < k; ++j) {
      const float sign = coin(rng) ? 1.0f : -1.0f;
      float v = 0.0f;
      switch (kind) {
        case 0: v = gauss(rng); break;
        case 1: v = 0.01f * gauss(rng); break;
        case 2: v = 50.0f * gauss(rng); break;
        case 3: v = sign * 0.0f; break;
        case 4:
          v = bf16 ? 1e-38f * gauss(rng) : sign * std::ldexp(float(rng() % 6), -24);
          break;
        case 5:
          v = bf16 ? 1e-31f * gauss(rng) : 1e-3f * gauss(rng);  // amax near the 2^-100 clamp
          break;
        case 6:
          v = j == pivot ? sign * 127.0f : float(int(rng() % 254) - 127) + 0.5f;
          break;
        case 7: v = j == pivot ? sign * 448.0f : sign * mids[rng() % mids.size()]; break;
        default: v = (bf16 ? 1e30f : 3000.0f) * gauss(rng); break;
      }
      row[j] = to_half_bits(t, v);
    }
  }
  return x;
}

struct Layout {
  bool packed;  // false: ldx, ldq, k_out padded, 16-byte aligned rows; true: everything tight/odd
  std::string name() const { return packed ? "packed" : "aligned"; }
};

struct Case {
  DType in, out;
  int n;  // pattern N; 0 = dense
  int64_t m, k;
  Layout layout;
  int64_t ldx, k_out, ldq, m_pad;
  std::string str() const {
    std::ostringstream s;
    s << dtype_token(in) << "->" << dtype_token(out) << " pattern "
      << (n == 0 ? std::string("dense") : Pattern::from_n(n).str()) << " m=" << m << " k=" << k
      << " ldx=" << ldx << " k_out=" << k_out << " ldq=" << ldq << " m_pad=" << m_pad << " ("
      << layout.name() << ")";
    return s.str();
  }
};

Case make_case(DType in, DType out, int n, int64_t m, int64_t k, Layout layout) {
  Case c{in, out, n, m, k, layout, 0, 0, 0, 0};
  const int64_t need = quant_lift_min_k_out(n, k);
  if (layout.packed) {
    c.ldx = k;
    c.k_out = need;
    c.ldq = need + 3;
    c.m_pad = m + 5;
  } else {
    c.ldx = (k + 7) / 8 * 8 + 8;
    c.k_out = n == 0 ? (k + 31) / 32 * 32 : slide_k(Pattern::from_n(n), k);
    c.ldq = c.k_out;
    c.m_pad = (m + 15) / 16 * 16;
  }
  return c;
}

// Expected q bytes over the whole [m_pad, ldq] buffer plus guard, and the scale array plus guard.
struct Expected {
  std::vector<uint8_t> q;
  std::vector<uint8_t> scale;  // bytes, so that NaN scales compare bitwise too
};

Expected reference(const Case& c, const std::vector<uint16_t>& x) {
  const bool quant = c.out != c.in;
  const size_t ob = dtype_size(c.out);
  std::vector<uint16_t> xc(size_t(std::max<int64_t>(c.m * c.k, 1)));
  for (int64_t r = 0; r < c.m; ++r)
    std::memcpy(&xc[size_t(r * c.k)], &x[size_t(r * c.ldx)], size_t(c.k) * 2);
  std::vector<uint8_t> qd(size_t(std::max<int64_t>(c.m * c.k, 1)) * ob);
  std::vector<float> sd(size_t(c.m), 1.0f);
  if (!quant) {
    std::memcpy(qd.data(), xc.data(), size_t(c.m * c.k) * 2);
  } else if (c.out == DType::kI8) {
    quantize_rows_i8(c.in, xc.data(), c.m, c.k, reinterpret_cast<int8_t*>(qd.data()), sd.data());
  } else {
    quantize_rows_e4m3(c.in, xc.data(), c.m, c.k, qd.data(), sd.data());
  }
  std::vector<uint8_t> ql(size_t(std::max<int64_t>(c.m * c.k_out, 1)) * ob, 0);
  if (c.n == 0) {
    for (int64_t r = 0; r < c.m; ++r)
      std::memcpy(&ql[size_t(r * c.k_out) * ob], &qd[size_t(r * c.k) * ob], size_t(c.k) * ob);
  } else {
    lift_activations(Pattern::from_n(c.n), c.out, qd.data(), c.m, c.k, ql.data(), c.k_out);
  }
  Expected e;
  e.q.assign(size_t(c.m_pad * c.ldq) * ob + kGuardBytes, kPoison);
  for (int64_t r = 0; r < c.m_pad; ++r) {
    uint8_t* dst = &e.q[size_t(r * c.ldq) * ob];
    if (r < c.m)
      std::memcpy(dst, &ql[size_t(r * c.k_out) * ob], size_t(c.k_out) * ob);
    else
      std::memset(dst, 0, size_t(c.k_out) * ob);
  }
  e.scale.assign(size_t(c.m_pad + 4) * 4, kPoison);
  for (int64_t r = 0; r < c.m_pad; ++r) {
    const float s = r < c.m ? sd[size_t(r)] : 1.0f;
    std::memcpy(&e.scale[size_t(r) * 4], &s, 4);
  }
  return e;
}

// Describes the first few differing bytes of a [rows, row_bytes] buffer (plus tail).
::testing::AssertionResult same_bytes(const char* what, const std::vector<uint8_t>& want,
                                      const std::vector<uint8_t>& got, int64_t row_bytes) {
  if (want.size() != got.size())
    return ::testing::AssertionFailure() << what << ": size " << got.size() << " != " << want.size();
  int64_t bad = 0;
  std::ostringstream s;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == got[i]) continue;
    if (bad < 8) {
      s << "\n  " << what << " byte " << i << " (row " << int64_t(i) / row_bytes << ", byte "
        << int64_t(i) % row_bytes << "): want 0x" << std::hex << int(want[i]) << " got 0x"
        << int(got[i]) << std::dec;
    }
    ++bad;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " differing bytes in " << what << s.str();
}

// Runs one case on the GPU (poisoned buffers) and compares with the CPU reference.
void run_case(const Case& c, const std::vector<uint16_t>& x) {
  SCOPED_TRACE(c.str());
  const size_t ob = dtype_size(c.out);
  // Packed layout: x starts 2 bytes and q 1 (8-bit) or 2 (16-bit) bytes past a 256-byte boundary,
  // so even row 0 is misaligned and both the scalar load and the scalar store paths run.
  const size_t x_off = c.layout.packed ? 2 : 0, q_off = c.layout.packed ? ob : 0;
  DeviceBuffer dx(x.size() * 2 + x_off);
  const size_t q_bytes = size_t(c.m_pad * c.ldq) * ob + kGuardBytes;
  DeviceBuffer dq(q_bytes + q_off);
  DeviceBuffer ds(size_t(c.m_pad + 4) * 4);
  ASSERT_EQ(dx.status(), cudaSuccess);
  ASSERT_EQ(dq.status(), cudaSuccess);
  ASSERT_EQ(ds.status(), cudaSuccess);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(dx.get() + x_off, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  SLIDESPARSE_CUDA_ASSERT(cudaMemset(dq.get(), kPoison, dq.bytes()));
  SLIDESPARSE_CUDA_ASSERT(cudaMemset(ds.get(), kPoison, ds.bytes()));

  QuantLiftParams p;
  p.x = dx.get() + x_off;
  p.in_dtype = c.in;
  p.m = c.m;
  p.k = c.k;
  p.ldx = c.ldx;
  p.q = dq.get() + q_off;
  p.out_dtype = c.out;
  p.m_pad = c.m_pad;
  p.k_out = c.k_out;
  p.ldq = c.ldq;
  p.scale = reinterpret_cast<float*>(ds.get());
  p.pattern_n = c.n;
  ASSERT_EQ(quant_lift_check(p), nullptr) << quant_lift_check(p);
  SLIDESPARSE_CUDA_ASSERT(quant_lift(p, nullptr));
  SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());

  std::vector<uint8_t> q(q_bytes), s(ds.bytes());
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(q.data(), dq.get() + q_off, q_bytes, cudaMemcpyDeviceToHost));
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(s.data(), ds.get(), s.size(), cudaMemcpyDeviceToHost));
  const Expected e = reference(c, x);
  EXPECT_TRUE(same_bytes("q", e.q, q, c.ldq * int64_t(ob)));
  EXPECT_TRUE(same_bytes("scale", e.scale, s, 4));  // lift only: 1 in every row
}

std::vector<int64_t> test_ms() {
  if (std::getenv("SLIDESPARSE_GPU_TEST_QUICK")) return {1, 17, 33};
  return {1, 2, 15, 16, 17, 33, 1000};
}
std::vector<int64_t> test_ks() {
  if (std::getenv("SLIDESPARSE_GPU_TEST_QUICK")) return {1, 7, 13, 100, 4097};
  return {1, 7, 8, 10, 13, 100, 3584, 4097};
}
const int kPatterns[] = {0, 2, 3, 4, 5, 8};  // dense, 2:4, 4:6, 6:8, 8:10, 14:16

struct DTypes {
  DType in, out;
};
void PrintTo(const DTypes& d, std::ostream* os) {
  *os << dtype_token(d.in) << " -> " << dtype_token(d.out);
}
std::string dtypes_name(const ::testing::TestParamInfo<DTypes>& info) {
  return std::string(dtype_token(info.param.in)) + "_to_" + dtype_token(info.param.out);
}

class QuantLift : public ::testing::TestWithParam<DTypes> {};

TEST_P(QuantLift, MatchesCpuCoreBitForBit) {
  SLIDESPARSE_REQUIRE_GPU();
  const DTypes d = GetParam();
  for (const int64_t m : test_ms())
    for (const int64_t k : test_ks())
      for (const bool packed : {false, true}) {
        const Layout layout{packed};
        const uint64_t seed = uint64_t(m) * 1000003u + uint64_t(k) * 7919u + (packed ? 1u : 0u) +
                              (d.in == DType::kF16 ? 17u : 0u);
        SCOPED_TRACE("seed " + std::to_string(seed));
        const int64_t ldx = make_case(d.in, d.out, 0, m, k, layout).ldx;
        const std::vector<uint16_t> x = make_x(d.in, m, k, ldx, seed);
        for (const int n : kPatterns) {
          run_case(make_case(d.in, d.out, n, m, k, layout), x);
          if (HasFailure()) return;  // the first failing case says enough
        }
      }
}

// Rows longer than the shared-memory budget (64 KiB of bf16/f16: 32768 elements) re-read the row
// from global memory in pass 2.
TEST_P(QuantLift, LongRowsMatchCpuCore) {
  SLIDESPARSE_REQUIRE_GPU();
  const DTypes d = GetParam();
  for (const int64_t m : {int64_t(1), int64_t(3), int64_t(17)})
    for (const int64_t k : {int64_t(32768), int64_t(32769), int64_t(40001), int64_t(65537)})
      for (const bool packed : {false, true}) {
        const Layout layout{packed};
        const uint64_t seed = uint64_t(m) * 31u + uint64_t(k) + (packed ? 5u : 0u);
        SCOPED_TRACE("seed " + std::to_string(seed));
        const std::vector<uint16_t> x =
            make_x(d.in, m, k, make_case(d.in, d.out, 0, m, k, layout).ldx, seed);
        for (const int n : {0, 3, 4}) {
          run_case(make_case(d.in, d.out, n, m, k, layout), x);
          if (HasFailure()) return;
        }
      }
}

INSTANTIATE_TEST_SUITE_P(Quantize, QuantLift,
                         ::testing::Values(DTypes{DType::kBF16, DType::kI8},
                                           DTypes{DType::kBF16, DType::kE4M3},
                                           DTypes{DType::kF16, DType::kI8},
                                           DTypes{DType::kF16, DType::kE4M3}),
                         dtypes_name);
INSTANTIATE_TEST_SUITE_P(LiftOnly, QuantLift,
                         ::testing::Values(DTypes{DType::kBF16, DType::kBF16},
                                           DTypes{DType::kF16, DType::kF16}),
                         dtypes_name);

// A row holding inf or NaN: the CPU core rejects it; the kernel writes scale NaN and q = 0 for
// that row only, so the token's GEMM output is NaN rather than silently finite.
TEST(QuantLiftGpu, NonFiniteRowGetsNanScaleAndZeros) {
  SLIDESPARSE_REQUIRE_GPU();
  for (const DType in : {DType::kBF16, DType::kF16})
    for (const DType out : {DType::kI8, DType::kE4M3}) {
      const int64_t m = 6, k = 100, ldx = 104, m_pad = 8;
      const int n = 4;
      const int64_t k_out = slide_k(Pattern::from_n(n), k);
      std::vector<uint16_t> x = make_x(in, m, k, ldx, 99);
      const float inf = std::numeric_limits<float>::infinity();
      x[size_t(1 * ldx + 5)] = to_half_bits(in, inf);
      x[size_t(3 * ldx + 99)] = to_half_bits(in, -inf);
      x[size_t(4 * ldx + 0)] = nan_bits(in);
      SCOPED_TRACE(std::string(dtype_token(in)) + "->" + dtype_token(out));
      DeviceBuffer dx(x.size() * 2), dq(size_t(m_pad * k_out)), ds(size_t(m_pad) * 4);
      SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(dx.get(), x.data(), x.size() * 2, cudaMemcpyHostToDevice));
      SLIDESPARSE_CUDA_ASSERT(cudaMemset(dq.get(), kPoison, dq.bytes()));
      SLIDESPARSE_CUDA_ASSERT(cudaMemset(ds.get(), kPoison, ds.bytes()));
      QuantLiftParams p;
      p.x = dx.get();
      p.in_dtype = in;
      p.m = m, p.k = k, p.ldx = ldx;
      p.q = dq.get();
      p.out_dtype = out;
      p.m_pad = m_pad, p.k_out = k_out, p.ldq = k_out;
      p.scale = reinterpret_cast<float*>(ds.get());
      p.pattern_n = n;
      SLIDESPARSE_CUDA_ASSERT(quant_lift(p, nullptr));
      SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
      std::vector<uint8_t> q(dq.bytes());
      std::vector<float> s(static_cast<size_t>(m_pad));
      SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(q.data(), dq.get(), q.size(), cudaMemcpyDeviceToHost));
      SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(s.data(), ds.get(), ds.bytes(), cudaMemcpyDeviceToHost));

      // Finite rows, compared through the CPU core on those rows alone.
      for (int64_t r = 0; r < m; ++r) {
        const bool bad = r == 1 || r == 3 || r == 4;
        SCOPED_TRACE("row " + std::to_string(r));
        if (bad) {
          EXPECT_TRUE(std::isnan(s[size_t(r)])) << s[size_t(r)];
          for (int64_t c = 0; c < k_out; ++c)
            ASSERT_EQ(q[size_t(r * k_out + c)], 0) << "column " << c;
          continue;
        }
        std::vector<uint8_t> qd(static_cast<size_t>(k)), ql(static_cast<size_t>(k_out));
        float sd = 0.0f;
        if (out == DType::kI8)
          quantize_rows_i8(in, &x[size_t(r * ldx)], 1, k, reinterpret_cast<int8_t*>(qd.data()), &sd);
        else
          quantize_rows_e4m3(in, &x[size_t(r * ldx)], 1, k, qd.data(), &sd);
        lift_activations(Pattern::from_n(n), out, qd.data(), 1, k, ql.data(), k_out);
        EXPECT_EQ(std::memcmp(&sd, &s[size_t(r)], 4), 0) << sd << " vs " << s[size_t(r)];
        EXPECT_EQ(std::memcmp(ql.data(), &q[size_t(r * k_out)], size_t(k_out)), 0);
      }
    }
}

// Lift only may run without a scale array; all rows, padding included, still get written.
TEST(QuantLiftGpu, LiftOnlyWithoutScale) {
  SLIDESPARSE_REQUIRE_GPU();
  const Case c = make_case(DType::kBF16, DType::kBF16, 4, 33, 100, Layout{false});
  const std::vector<uint16_t> x = make_x(c.in, c.m, c.k, c.ldx, 5);
  DeviceBuffer dx(x.size() * 2), dq(size_t(c.m_pad * c.ldq) * 2);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(dx.get(), x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  SLIDESPARSE_CUDA_ASSERT(cudaMemset(dq.get(), kPoison, dq.bytes()));
  QuantLiftParams p;
  p.x = dx.get();
  p.in_dtype = c.in, p.out_dtype = c.out;
  p.m = c.m, p.k = c.k, p.ldx = c.ldx;
  p.q = dq.get();
  p.m_pad = c.m_pad, p.k_out = c.k_out, p.ldq = c.ldq;
  p.pattern_n = c.n;
  SLIDESPARSE_CUDA_ASSERT(quant_lift(p, nullptr));
  SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
  std::vector<uint8_t> q(dq.bytes());
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(q.data(), dq.get(), q.size(), cudaMemcpyDeviceToHost));
  Expected e = reference(c, x);
  e.q.resize(q.size());  // no guard bytes in this buffer
  EXPECT_TRUE(same_bytes("q", e.q, q, c.ldq * 2));
}

// m_pad > m = 0: only padding rows, x may be null.
TEST(QuantLiftGpu, OnlyPaddingRows) {
  SLIDESPARSE_REQUIRE_GPU();
  const int64_t m_pad = 16, k_out = 96;
  DeviceBuffer dq(size_t(m_pad * k_out)), ds(size_t(m_pad) * 4);
  SLIDESPARSE_CUDA_ASSERT(cudaMemset(dq.get(), kPoison, dq.bytes()));
  SLIDESPARSE_CUDA_ASSERT(cudaMemset(ds.get(), kPoison, ds.bytes()));
  QuantLiftParams p;
  p.in_dtype = DType::kBF16, p.out_dtype = DType::kE4M3;
  p.m = 0, p.k = 64, p.ldx = 64;
  p.q = dq.get(), p.m_pad = m_pad, p.k_out = k_out, p.ldq = k_out;
  p.scale = reinterpret_cast<float*>(ds.get());
  p.pattern_n = 4;
  SLIDESPARSE_CUDA_ASSERT(quant_lift(p, nullptr));
  SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
  std::vector<uint8_t> q(dq.bytes());
  std::vector<float> s(static_cast<size_t>(m_pad));
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(q.data(), dq.get(), q.size(), cudaMemcpyDeviceToHost));
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(s.data(), ds.get(), ds.bytes(), cudaMemcpyDeviceToHost));
  EXPECT_TRUE(same_bytes("q", std::vector<uint8_t>(q.size(), 0), q, k_out));
  for (const float v : s) EXPECT_EQ(v, 1.0f);
}

// The device encoder quant_lift uses must equal the CPU's f32_to_e4m3 on every input class:
// each midpoint between adjacent codes (ties to even) and its f32 neighbours, every exponent with
// many mantissa patterns (round and sticky bits), saturation, infinities, NaN, random floats.
TEST(QuantLiftGpu, DeviceE4m3EncoderMatchesCpuEncoder) {
  SLIDESPARSE_REQUIRE_GPU();
  std::vector<float> v;
  for (int c = 0; c < 0x7f; ++c) {
    for (const float s : {1.0f, -1.0f}) {
      const float a = e4m3_to_f32(uint8_t(c));
      const float mid = 0.5f * (a + e4m3_to_f32(uint8_t(c + 1 == 0x7f ? 0x7e : c + 1)));
      for (const float y : {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)})
        v.push_back(s * y);
    }
  }
  for (const float y : {448.0f, 456.0f, 463.99997f, 464.0f, 464.00003f, 480.0f, 1e30f,
                        std::numeric_limits<float>::infinity(), std::numeric_limits<float>::max(),
                        std::numeric_limits<float>::denorm_min(), 0.0f})
    for (const float s : {1.0f, -1.0f}) v.push_back(s * y);
  for (uint32_t e = 0; e < 256; ++e)
    for (uint32_t sign = 0; sign < 2; ++sign)
      for (uint32_t hi = 0; hi < 2048; hi += 1)
        for (const uint32_t lo : {0u, 1u, 0x7ffu, 0x800u, 0x801u, 0xfffu}) {
          const uint32_t bits = sign << 31 | e << 23 | hi << 12 | lo;
          if ((bits & 0x7fffffffu) > 0x7f800000u) continue;  // NaN: checked below
          float f;
          std::memcpy(&f, &bits, 4);
          v.push_back(f);
        }
  std::mt19937 rng(1234);
  for (int i = 0; i < (1 << 22); ++i) {
    const uint32_t bits = uint32_t(rng());
    if ((bits & 0x7fffffffu) > 0x7f800000u) continue;
    float f;
    std::memcpy(&f, &bits, 4);
    v.push_back(f);
  }
  v.push_back(std::numeric_limits<float>::quiet_NaN());
  const size_t n = v.size();
  DeviceBuffer din(n * 4), dout(n);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(din.get(), v.data(), n * 4, cudaMemcpyHostToDevice));
  SLIDESPARSE_CUDA_ASSERT(
      encode_e4m3(reinterpret_cast<const float*>(din.get()), dout.get(), int64_t(n), nullptr));
  SLIDESPARSE_CUDA_ASSERT(cudaDeviceSynchronize());
  std::vector<uint8_t> got(n);
  SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(got.data(), dout.get(), n, cudaMemcpyDeviceToHost));
  int64_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t want = f32_to_e4m3(v[i]);
    if (got[i] == want) continue;
    if (bad++ < 8) {
      uint32_t bits;
      std::memcpy(&bits, &v[i], 4);
      ADD_FAILURE() << "e4m3(" << v[i] << " = 0x" << std::hex << bits << "): device 0x"
                    << int(got[i]) << ", CPU 0x" << int(want) << std::dec;
    }
  }
  EXPECT_EQ(bad, 0) << "of " << n << " inputs";
}

// No device needed: the host emulation in cuda_fp8.h (what sm_80 code runs) equals the CPU
// encoder on a strided sweep of all f32 bit patterns. (An exhaustive sweep of all 2^32 also
// matched when this kernel was written; it takes ~15 s, too slow for every run.)
TEST(QuantLiftHost, CudaFp8HostEmulationMatchesCpuEncoder) {
  int64_t bad = 0, n = 0;
  for (uint64_t b = 0; b < (uint64_t(1) << 32); b += 251) {
    const uint32_t bits = uint32_t(b);
    float f;
    std::memcpy(&f, &bits, 4);
    const uint8_t got = __nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3);
    const uint8_t want = f32_to_e4m3(f);
    ++n;
    if (got != want && bad++ < 8)
      ADD_FAILURE() << "bits 0x" << std::hex << bits << ": cuda_fp8.h 0x" << int(got) << ", CPU 0x"
                    << int(want) << std::dec;
  }
  EXPECT_EQ(bad, 0) << "of " << n;
}

// Invalid parameters are refused before anything touches the device (runs without a GPU).
TEST(QuantLiftHost, RejectsInvalidParams) {
  alignas(16) static uint16_t x[64];
  alignas(16) static uint8_t q[256];
  alignas(16) static float s[4];
  QuantLiftParams ok;
  ok.x = x, ok.in_dtype = DType::kBF16, ok.m = 2, ok.k = 16, ok.ldx = 16;
  ok.q = q, ok.out_dtype = DType::kI8, ok.m_pad = 4, ok.k_out = 32, ok.ldq = 32;
  ok.scale = s, ok.pattern_n = 4;
  ASSERT_EQ(quant_lift_check(ok), nullptr) << quant_lift_check(ok);

  struct Bad {
    const char* fragment;
    QuantLiftParams p;
  };
  std::vector<Bad> bad;
  auto with = [&](const char* fragment, auto edit) {
    QuantLiftParams p = ok;
    edit(p);
    bad.push_back({fragment, p});
  };
  with("in_dtype", [](QuantLiftParams& p) { p.in_dtype = DType::kF32; });
  with("out_dtype", [](QuantLiftParams& p) { p.out_dtype = DType::kF16; });
  with("pattern_n", [](QuantLiftParams& p) { p.pattern_n = 1; });
  with("pattern_n", [](QuantLiftParams& p) { p.pattern_n = 17; });
  with("non-negative", [](QuantLiftParams& p) { p.k = -1; });
  with("m_pad", [](QuantLiftParams& p) { p.m_pad = 1; });
  with("k_out", [](QuantLiftParams& p) { p.k_out = 23; });  // 6:8, k = 16 needs 24
  with("k_out", [](QuantLiftParams& p) { p.pattern_n = 0, p.k_out = 15; });
  with("ldx", [](QuantLiftParams& p) { p.ldx = 15; });
  with("ldq", [](QuantLiftParams& p) { p.ldq = 31; });
  with("2^30", [](QuantLiftParams& p) { p.k = int64_t(1) << 30, p.ldx = p.k, p.k_out = 1; });
  with("x is null", [](QuantLiftParams& p) { p.x = nullptr; });
  with("q is null", [](QuantLiftParams& p) { p.q = nullptr; });
  with("scale is null", [](QuantLiftParams& p) { p.scale = nullptr; });
  with("x must be 2-byte aligned", [](QuantLiftParams& p) { p.x = reinterpret_cast<uint8_t*>(x) + 1; });
  with("q must be 2-byte aligned", [](QuantLiftParams& p) {
    p.out_dtype = DType::kBF16, p.q = q + 1;
  });
  with("scale must be 4-byte aligned",
       [](QuantLiftParams& p) { p.scale = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(s) + 2); });
  for (const Bad& b : bad) {
    const char* msg = quant_lift_check(b.p);
    ASSERT_NE(msg, nullptr) << "accepted a case that should fail with '" << b.fragment << "'";
    EXPECT_NE(std::string(msg).find(b.fragment), std::string::npos)
        << "message '" << msg << "' lacks '" << b.fragment << "'";
    EXPECT_EQ(quant_lift(b.p, nullptr), cudaErrorInvalidValue) << msg;
  }
  EXPECT_EQ(quant_lift_min_k_out(0, 13), 13);
  EXPECT_EQ(quant_lift_min_k_out(4, 13), 2 * 12);  // 6:8: 2 groups of 8 -> 2 * 12 columns
  EXPECT_EQ(quant_lift_min_k_out(2, 13), 16);
  EXPECT_EQ(quant_lift_min_k_out(1, 13), -1);
}

}  // namespace
}  // namespace slidesparse
