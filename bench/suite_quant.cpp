// slidesparse_bench_quant: the fused per-token quantize + lift kernel against a device-to-device
// copy of the same bytes, measured in the same run.
//
//   slidesparse_bench_quant [--out FILE.jsonl] [--reps N] [--quick]
//
// Per configuration: one launch is verified against the CPU core on sampled rows, then the kernel
// is timed with CUDA events (warm-up, median of --reps launches), inputs and outputs rotated over
// >= 4 buffer sets whose total exceeds twice the L2, and a cudaMemcpyAsync D2D of half the
// kernel's traffic (so the copy also moves read + write = the same total bytes) is timed the
// same way. GB/s = (bytes of X read + bytes of q and scales written) / median time.
// Exit status: 0 when every verification passed, 1 on a mismatch, 2 on bad usage or CUDA errors.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/quant_lift.cuh"
#include "slidesparse/pattern.hpp"
#include "slidesparse/quant.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/types.hpp"

#ifndef SLIDESPARSE_GIT_SHA
#define SLIDESPARSE_GIT_SHA "unknown"
#endif

namespace {

using namespace slidesparse;

#define BENCH_CUDA(expr)                                                                  \
  do {                                                                                    \
    const cudaError_t e_ = (expr);                                                        \
    if (e_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr,           \
                   cudaGetErrorName(e_), cudaGetErrorString(e_));                         \
      std::exit(2);                                                                       \
    }                                                                                     \
  } while (0)

// Deterministic pseudo-random bf16 activations: a sum of three uniforms (bell-shaped, never all
// zero) times a per-row magnitude 2^(r%7 - 3), so rows have different scales.
__global__ void init_bf16(uint16_t* x, int64_t m, int64_t k, uint32_t seed) {
  const int64_t n = m * k, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    uint64_t h = uint64_t(i) * 0x9E3779B97F4A7C15ull ^ (uint64_t(seed) << 32 | seed);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    const float u = float(h & 0xfffff) + float((h >> 20) & 0xfffff) + float((h >> 40) & 0xfffff);
    const float v = (u * (1.0f / 1048576.0f) - 1.5f) * exp2f(float(int((i / k) % 7) - 3));
    x[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

struct Env {
  std::string json;
  int64_t l2_bytes = 0;
};

Env environment() {
  int dev = 0, driver = 0, runtime = 0, clock_khz = 0, mem_clock_khz = 0;
  BENCH_CUDA(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, dev));
  BENCH_CUDA(cudaDriverGetVersion(&driver));
  BENCH_CUDA(cudaRuntimeGetVersion(&runtime));
  BENCH_CUDA(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev));
  BENCH_CUDA(cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, dev));
  char date[32] = "unknown";
  const std::time_t now = std::time(nullptr);
  if (const std::tm* utc = std::gmtime(&now)) std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", utc);
  std::ostringstream s;
  s << "{\"date_utc\":\"" << date << "\",\"gpu\":\"" << prop.name << "\",\"cc\":\"" << prop.major << "." << prop.minor
    << "\",\"sm_count\":" << prop.multiProcessorCount << ",\"sm_clock_khz\":" << clock_khz
    << ",\"mem_clock_khz\":" << mem_clock_khz << ",\"mem_bus_bits\":" << prop.memoryBusWidth
    << ",\"l2_bytes\":" << prop.l2CacheSize << ",\"mem_bytes\":" << prop.totalGlobalMem
    << ",\"driver_version\":" << driver << ",\"runtime_version\":" << runtime
    << ",\"git_sha\":\"" << SLIDESPARSE_GIT_SHA << "\"}";
  return {s.str(), prop.l2CacheSize};
}

struct Buffers {
  std::vector<uint16_t*> x;
  std::vector<uint8_t*> q;
  std::vector<float*> scale;
  ~Buffers() {
    for (auto* p : x) cudaFree(p);
    for (auto* p : q) cudaFree(p);
    for (auto* p : scale) cudaFree(p);
  }
};

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (double(v[n / 2 - 1]) + v[n / 2]);
}

// Times fn(i) for reps launches (i = rotation index) with one event pair each; returns the
// median in microseconds.
template <class Fn>
double time_us(int reps, int warmup, int nbuf, Fn&& fn) {
  for (int i = 0; i < warmup; ++i) fn(i % nbuf);
  std::vector<cudaEvent_t> ev(size_t(2 * reps));
  for (auto& e : ev) BENCH_CUDA(cudaEventCreate(&e));
  for (int i = 0; i < reps; ++i) {
    BENCH_CUDA(cudaEventRecord(ev[size_t(2 * i)]));
    fn((warmup + i) % nbuf);
    BENCH_CUDA(cudaEventRecord(ev[size_t(2 * i + 1)]));
  }
  BENCH_CUDA(cudaDeviceSynchronize());
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    float t = 0.0f;
    BENCH_CUDA(cudaEventElapsedTime(&t, ev[size_t(2 * i)], ev[size_t(2 * i + 1)]));
    ms.push_back(t);
  }
  for (auto& e : ev) BENCH_CUDA(cudaEventDestroy(e));
  return median(ms) * 1000.0;
}

// Checks sampled rows of one launch (q and scale) against the CPU core; prints the first miss.
bool verify(const QuantLiftParams& p, const char* label) {
  const int64_t m = p.m, k = p.k, k_out = p.k_out;
  std::vector<int64_t> rows = {0, 1, m / 3, m / 2, m - 2, m - 1};
  for (int i = 0; i < 6; ++i) rows.push_back((int64_t(i) * 2654435761ll + 12345) % m);
  std::vector<uint16_t> x(static_cast<size_t>(k));
  std::vector<uint8_t> got(static_cast<size_t>(k_out)), want(static_cast<size_t>(k_out));
  std::vector<uint8_t> qd(static_cast<size_t>(k));
  for (const int64_t r : rows) {
    if (r < 0 || r >= m) continue;
    BENCH_CUDA(cudaMemcpy(x.data(), static_cast<const uint16_t*>(p.x) + r * p.ldx, size_t(k) * 2,
                          cudaMemcpyDeviceToHost));
    BENCH_CUDA(cudaMemcpy(got.data(), static_cast<const uint8_t*>(p.q) + r * p.ldq, size_t(k_out),
                          cudaMemcpyDeviceToHost));
    float s_got = 0.0f, s_want = 0.0f;
    BENCH_CUDA(cudaMemcpy(&s_got, p.scale + r, 4, cudaMemcpyDeviceToHost));
    if (p.out_dtype == DType::kI8)
      quantize_rows_i8(p.in_dtype, x.data(), 1, k, reinterpret_cast<int8_t*>(qd.data()), &s_want);
    else
      quantize_rows_e4m3(p.in_dtype, x.data(), 1, k, qd.data(), &s_want);
    std::fill(want.begin(), want.end(), uint8_t(0));
    if (p.pattern_n == 0)
      std::memcpy(want.data(), qd.data(), size_t(k));
    else
      lift_activations(Pattern::from_n(p.pattern_n), p.out_dtype, qd.data(), 1, k, want.data(),
                       k_out);
    if (std::memcmp(&s_got, &s_want, 4) != 0) {
      std::fprintf(stderr, "VERIFY FAILED %s: row %lld scale %.9g, CPU %.9g\n", label,
                   (long long)r, s_got, s_want);
      return false;
    }
    for (int64_t c = 0; c < k_out; ++c)
      if (got[size_t(c)] != want[size_t(c)]) {
        std::fprintf(stderr, "VERIFY FAILED %s: row %lld col %lld: 0x%02x, CPU 0x%02x\n", label,
                     (long long)r, (long long)c, got[size_t(c)], want[size_t(c)]);
        return false;
      }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path;
  int reps = 50;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out_path = argv[++i];
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--out FILE.jsonl] [--reps N] [--quick]\n", argv[0]);
      return 2;
    }
  }
  int ndev = 0;
  const cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev == 0) {
    std::fprintf(stderr, "no CUDA device: %s\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 2;
  }
  const Env env = environment();
  std::printf("env %s\n", env.json.c_str());
  std::ofstream jsonl;
  if (!out_path.empty()) {
    jsonl.open(out_path);
    if (!jsonl) {
      std::fprintf(stderr, "cannot write %s\n", out_path.c_str());
      return 2;
    }
  }

  const std::vector<int64_t> ms = quick ? std::vector<int64_t>{8192} : std::vector<int64_t>{4096, 8192, 16384};
  const std::vector<int64_t> ks = quick ? std::vector<int64_t>{4096} : std::vector<int64_t>{3584, 4096, 18944};
  const int patterns[] = {0, 4, 3};  // dense, 6:8, 4:6
  const DType outs[] = {DType::kI8, DType::kE4M3};
  constexpr int kWarmup = 20;  // launches; also lets clocks settle after the CPU check
  bool all_ok = true;
  double worst_fraction = 1e9;

  std::printf("%-8s %6s %6s %6s %-6s %-5s %10s %8s %8s %6s\n", "kernel", "m", "k", "k_out",
              "pattern", "dtype", "time_us", "GB/s", "copyGB/s", "frac");
  for (const int64_t m : ms)
    for (const int64_t k : ks) {
      const int64_t x_bytes = m * k * 2;
      auto k_out_for = [k](int n) { return n == 0 ? k : slide_k(Pattern::from_n(n), k); };
      int64_t q_max = 0;
      for (const int n : patterns) q_max = std::max(q_max, m * k_out_for(n));
      // q buffers also serve as destinations of the copy baseline: half the kernel's traffic.
      const int64_t q_alloc = std::max(q_max, (x_bytes + q_max + m * 4) / 2 + 16);
      const int nbuf = int(std::max<int64_t>(4, (2 * env.l2_bytes) / (x_bytes + q_alloc) + 1));
      Buffers b;
      for (int i = 0; i < nbuf; ++i) {
        uint16_t* x = nullptr;
        uint8_t* q = nullptr;
        float* s = nullptr;
        BENCH_CUDA(cudaMalloc(&x, size_t(x_bytes)));
        b.x.push_back(x);
        BENCH_CUDA(cudaMalloc(&q, size_t(q_alloc)));
        b.q.push_back(q);
        BENCH_CUDA(cudaMalloc(&s, size_t(m) * 4));
        b.scale.push_back(s);
        init_bf16<<<1024, 256>>>(x, m, k, uint32_t(1000 + i));
        BENCH_CUDA(cudaGetLastError());
      }
      BENCH_CUDA(cudaDeviceSynchronize());
      for (const int n : patterns)
        for (const DType out : outs) {
          QuantLiftParams p;
          p.in_dtype = DType::kBF16;
          p.out_dtype = out;
          p.m = m, p.k = k, p.ldx = k;
          p.m_pad = m;
          p.k_out = k_out_for(n);
          p.ldq = p.k_out;
          p.pattern_n = n;
          const std::string pattern = n == 0 ? "dense" : Pattern::from_n(n).str();
          const std::string label = pattern + " " + dtype_token(out) + " m=" + std::to_string(m) +
                                    " k=" + std::to_string(k);
          auto params = [&](int i) {
            QuantLiftParams r = p;
            r.x = b.x[size_t(i)];
            r.q = b.q[size_t(i)];
            r.scale = b.scale[size_t(i)];
            return r;
          };
          BENCH_CUDA(quant_lift(params(0), nullptr));
          BENCH_CUDA(cudaDeviceSynchronize());
          const bool ok = verify(params(0), label.c_str());
          all_ok = all_ok && ok;
          const double t_us = time_us(reps, kWarmup, nbuf, [&](int i) {
            BENCH_CUDA(quant_lift(params(i), nullptr));
          });
          const int64_t bytes = x_bytes + p.m_pad * p.k_out + p.m_pad * 4;
          const int64_t copy_bytes = bytes / 2;
          const double copy_us = time_us(reps, kWarmup, nbuf, [&](int i) {
            BENCH_CUDA(cudaMemcpyAsync(b.q[size_t(i)], b.x[size_t(i)], size_t(copy_bytes),
                                       cudaMemcpyDeviceToDevice, nullptr));
          });
          const double gbps = double(bytes) / (t_us * 1e3);
          const double copy_gbps = double(2 * copy_bytes) / (copy_us * 1e3);
          const double frac = gbps / copy_gbps;
          if (m * k >= (int64_t(32) << 20)) worst_fraction = std::min(worst_fraction, frac);
          std::printf("%-8s %6lld %6lld %6lld %-6s %-5s %10.1f %8.0f %8.0f %6.3f%s\n", "fused",
                      (long long)m, (long long)k, (long long)p.k_out, pattern.c_str(),
                      dtype_token(out), t_us, gbps, copy_gbps, frac, ok ? "" : "  VERIFY FAILED");
          if (jsonl) {
            jsonl << "{\"kernel\":\"quant_lift\",\"in_dtype\":\"bf16\",\"dtype\":\""
                  << dtype_token(out) << "\",\"pattern\":\"" << pattern << "\",\"m\":" << m
                  << ",\"k\":" << k << ",\"k_out\":" << p.k_out << ",\"bytes\":" << bytes
                  << ",\"time_us\":" << t_us << ",\"gbps\":" << gbps
                  << ",\"copy_time_us\":" << copy_us << ",\"copy_gbps\":" << copy_gbps
                  << ",\"fraction_of_copy\":" << frac << ",\"reps\":" << reps
                  << ",\"rotating_buffers\":" << nbuf << ",\"verified\":" << (ok ? "true" : "false")
                  << ",\"env\":" << env.json << "}\n";
          }
        }
    }
  if (worst_fraction < 1e9)
    std::printf("acceptance: worst fraction_of_copy at m*k >= 32M = %.3f (target >= 0.85): %s\n",
                worst_fraction, worst_fraction >= 0.85 ? "PASS" : "FAIL");
  std::printf("verification: %s\n", all_ok ? "all sampled rows match the CPU core" : "MISMATCH");
  return all_ok ? 0 : 1;
}
