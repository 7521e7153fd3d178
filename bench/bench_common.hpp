// Shared by the GPU benchmark suites (suite_kernel.cpp, suite_layer.cpp, suite_quant.cpp, tune.cpp):
// small threading helpers, CUDA checks, device buffers, event timing, the environment record and
// the JSON Lines sink. The model shapes are in shapes.hpp.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backends/backend.hpp"
#include "shapes.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse::bench {

// ---- small utilities ----------------------------------------------------------------------------
inline int resolve_threads(int requested) {
  return requested > 0 ? requested : std::max(1, int(std::thread::hardware_concurrency()));
}

// f(begin, end) over [0, n) in `threads` contiguous chunks.
inline void parallel_for(int64_t n, int threads, const std::function<void(int64_t, int64_t)>& f) {
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(threads, n));
  std::vector<std::thread> pool;
  for (int64_t i = 0; i < t; ++i) pool.emplace_back(f, n * i / t, n * (i + 1) / t);
  for (auto& th : pool) th.join();
}

inline uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

[[noreturn]] inline void cuda_fail(cudaError_t e, const char* what) {
  throw Error(Status::kInternal, fmt::format("{}: {} ({})", what, cudaGetErrorName(e), cudaGetErrorString(e)));
}

inline std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace slidesparse::bench

#define BENCH_CUDA(expr)                                                  \
  do {                                                                    \
    const cudaError_t e_ = (expr);                                        \
    if (e_ != cudaSuccess) ::slidesparse::bench::cuda_fail(e_, #expr);    \
  } while (0)

namespace slidesparse::bench {

// A device buffer with the trailing slack cuSPARSELt 0.8.0 needs (it reads up to 1 KiB past its
// operands; docs/BACKENDS.md "Memory slack").
class DevMem {
 public:
  DevMem() = default;
  explicit DevMem(size_t bytes) : bytes_(bytes) {
    if (bytes > 0) BENCH_CUDA(cudaMalloc(&p_, bytes + 64 * 1024));
  }
  ~DevMem() {
    if (p_) cudaFree(p_);
  }
  DevMem(DevMem&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; }
  DevMem& operator=(DevMem&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
  uint8_t* get() const { return static_cast<uint8_t*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Rotated inputs: `slots` equally sized slots of one device buffer; launch i reads slot i % slots,
// so consecutive launches read memory beyond the L2 cache. The suites fill the slots themselves.
struct SlotArena {
  DevMem mem;
  size_t slot_bytes = 0;
  int64_t slots = 0;
  const void* slot(int64_t i) const { return mem.get() + size_t(i % slots) * slot_bytes; }
};

// JSON Lines output; flushed per record so a run stopped from outside keeps every finished one.
class Sink {
 public:
  explicit Sink(const std::string& path) {
    if (!path.empty()) {
      out_.open(path, std::ios::out | std::ios::trunc);
      if (!out_) throw Error(Status::kIoError, "cannot write " + path);
    }
  }
  void write(const nlohmann::json& j) {
    if (out_.is_open()) {
      out_ << j.dump() << '\n';
      out_.flush();
    }
  }

 private:
  std::ofstream out_;
};

}  // namespace slidesparse::bench

namespace slidesparse::bench {

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

class Events {
 public:
  explicit Events(size_t n) : ev_(n) {
    for (auto& e : ev_) BENCH_CUDA(cudaEventCreate(&e));
  }
  ~Events() {
    for (auto& e : ev_) cudaEventDestroy(e);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  cudaEvent_t operator[](size_t i) const { return ev_[i]; }

 private:
  std::vector<cudaEvent_t> ev_;
};

// Median microseconds of `call(i)` over `reps` calls, each between its own pair of events, after
// `warmup` untimed calls; `before(r)` (may be empty) is enqueued ahead of timed call r, outside
// its events (an L2 flush, say).
inline double time_events_us(const std::function<void(int64_t)>& call, int warmup, int reps, cudaStream_t stream,
                             const std::function<void(int)>& before = {}) {
  for (int i = 0; i < warmup; ++i) call(i);
  Events ev(size_t(2 * reps));
  for (int r = 0; r < reps; ++r) {
    if (before) before(r);
    BENCH_CUDA(cudaEventRecord(ev[size_t(2 * r)], stream));
    call(warmup + r);
    BENCH_CUDA(cudaEventRecord(ev[size_t(2 * r + 1)], stream));
  }
  BENCH_CUDA(cudaStreamSynchronize(stream));
  std::vector<double> us;
  for (int r = 0; r < reps; ++r) {
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, ev[size_t(2 * r)], ev[size_t(2 * r + 1)]));
    us.push_back(double(ms) * 1e3);
  }
  return median(std::move(us));
}

// The GPU's clocks, power and temperature as nvidia-smi reports them right now (read only; null
// when nvidia-smi is not there). The driver's maximum clocks are in BackendEnv.
inline nlohmann::json nvidia_smi_state() {
  static const char* kFields[] = {"name", "driver_version", "pstate", "clocks.sm", "clocks.max.sm", "clocks.mem",
                                  "clocks.max.mem", "power.draw", "power.limit", "temperature.gpu"};
  std::string query;
  for (const char* f : kFields) query += (query.empty() ? "" : ",") + std::string(f);
  const std::string cmd = "nvidia-smi --query-gpu=" + query + " --format=csv,noheader 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return nullptr;
  char buf[1024] = {};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  pclose(p);
  if (!got) return nullptr;
  std::string line(buf);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  nlohmann::json j = nlohmann::json::object();
  size_t at = 0;
  for (const char* f : kFields) {
    const size_t comma = line.find(',', at);
    std::string v = line.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    while (!v.empty() && v.front() == ' ') v.erase(v.begin());
    j[f] = v;
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return j;
}

// The "env" record every suite writes first.
inline nlohmann::json env_record(const BackendEnv& env, const std::string& suite, const std::string& git_sha) {
  return {{"type", "env"},
          {"suite", suite},
          {"date", now_utc()},
          {"git_sha", git_sha},
          {"gpu", env.gpu_name},
          {"sm", env.sm},
          {"sm_count", env.sm_count},
          {"clock_mhz", env.clock_khz / 1000},
          {"mem_clock_mhz", env.mem_clock_khz / 1000},
          {"l2_bytes", env.l2_bytes},
          {"driver_version", env.driver_version},
          {"runtime_version", env.runtime_version},
          {"cusparselt_version", env.cusparselt_version},
          {"cublaslt_version", env.cublaslt_version},
          {"nvidia_smi", nvidia_smi_state()}};
}

inline std::string env_line(const BackendEnv& env) {
  return fmt::format("{} (sm_{}, {} SMs, {} MHz max), driver {}, runtime {}, cuSPARSELt {}, cuBLASLt {}", env.gpu_name,
                     env.sm, env.sm_count, env.clock_khz / 1000, env.driver_version, env.runtime_version,
                     env.cusparselt_version, env.cublaslt_version);
}

// Stops a suite cleanly between units once the budget is spent (0: no budget).
struct Budget {
  double max_seconds = 0;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
  bool out_of_time(double expect_s) const { return max_seconds > 0 && seconds() + expect_s > max_seconds; }
};

// Counts shared by the suites' summaries; error() also notices a dead CUDA context, after which
// every later measurement would be meaningless.
struct Tally {
  int records = 0, errors = 0, verification_failures = 0;
  std::string context_lost;
  void error(Sink& sink, std::ostream& out, nlohmann::json where, const std::exception& e) {
    ++errors;
    where["type"] = "error";
    where["message"] = e.what();
    if (auto* se = dynamic_cast<const Error*>(&e)) where["status"] = status_name(se->status());
    sink.write(where);
    out << "  ERROR " << where.dump() << "\n" << std::flush;
    const cudaError_t st = cudaDeviceSynchronize();
    if (st != cudaSuccess) {
      context_lost = fmt::format("{}: {}", cudaGetErrorName(st), cudaGetErrorString(st));
      out << "  CUDA context lost (" << context_lost << "): stopping\n" << std::flush;
    }
  }
};

// ---- random operands (kernel suite, tune) -------------------------------------------------------

// Random values of the precision, never zero, magnitudes spread over two binades or more:
//   i8: integers in [-127, 127] \ {0};  e4m3: grid values with |v| in [1/8, 8];  bf16: |v| in [1/64, 1).
// Returned as floats that the precision represents exactly.
inline float random_value(GemmPrecision p, uint64_t r) {
  const bool neg = r & 1;
  switch (p) {
    case GemmPrecision::kI8: {
      const float v = float((r >> 8) % 127 + 1);
      return neg ? -v : v;
    }
    case GemmPrecision::kE4M3: {
      const float v = std::ldexp(1.0f + float((r >> 8) % 8) / 8.0f, int((r >> 16) % 6) - 3);
      return neg ? -v : v;
    }
    default: {
      const float v = bf16_to_f32(f32_to_bf16(float((r >> 8) % 4096 + 64) / 4160.0f));
      return neg ? -v : v;
    }
  }
}

inline void encode(GemmPrecision p, float v, uint8_t* out) {
  switch (p) {
    case GemmPrecision::kI8: *out = uint8_t(int8_t(v)); return;
    case GemmPrecision::kE4M3: *out = f32_to_e4m3(v); return;
    case GemmPrecision::kBF16: {
      const uint16_t b = f32_to_bf16(v);
      std::memcpy(out, &b, 2);
      return;
    }
    case GemmPrecision::kF16: {
      const uint16_t b = f32_to_f16(v);
      std::memcpy(out, &b, 2);
      return;
    }
  }
}

inline std::vector<uint8_t> encode_all(GemmPrecision p, const std::vector<float>& v, int threads) {
  const size_t es = dtype_size(gemm_input_dtype(p));
  std::vector<uint8_t> out(v.size() * es);
  parallel_for(int64_t(v.size()), threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) encode(p, v[size_t(i)], &out[size_t(i) * es]);
  });
  return out;
}

}  // namespace slidesparse::bench
