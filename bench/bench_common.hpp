// Shared by the GPU benchmark harnesses (gemm_bench.cpp, layer_bench.cpp): the model shapes of
// the brief, small threading helpers, CUDA checks, device buffers and the JSON Lines sink.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "slidesparse/error.hpp"

namespace slidesparse::bench {

// ---- shapes (BRIEF section 5): per decoder layer, (n, k) of the four linears --------------------
struct Layer {
  const char* name;
  int64_t n, k;
  bool bias;  // Qwen2.5's qkv projection carries a bias
};
struct Model {
  std::string name;
  std::vector<Layer> layers;
};
inline const std::vector<Model>& models() {
  static const std::vector<Model> m = {
      {"llama3.2-1b",
       {{"qkv", 3072, 2048, false}, {"o", 2048, 2048, false}, {"gate_up", 16384, 2048, false}, {"down", 2048, 8192, false}}},
      {"llama3.2-3b",
       {{"qkv", 5120, 3072, false}, {"o", 3072, 3072, false}, {"gate_up", 16384, 3072, false}, {"down", 3072, 8192, false}}},
      {"bitnet-2b",
       {{"qkv", 3840, 2560, false}, {"o", 2560, 2560, false}, {"gate_up", 13824, 2560, false}, {"down", 2560, 6912, false}}},
      {"qwen2.5-7b",
       {{"qkv", 4608, 3584, true}, {"o", 3584, 3584, false}, {"gate_up", 37888, 3584, false}, {"down", 3584, 18944, false}}},
      {"qwen2.5-14b",
       {{"qkv", 7168, 5120, true}, {"o", 5120, 5120, false}, {"gate_up", 27648, 5120, false}, {"down", 5120, 13824, false}}},
      {"llama3-8b",
       {{"qkv", 6144, 4096, false}, {"o", 4096, 4096, false}, {"gate_up", 28672, 4096, false}, {"down", 4096, 14336, false}}},
  };
  return m;
}

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
