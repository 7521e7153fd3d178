// slidesparse backends, internal: RAII device memory and events, timing of a launch sequence, and
// filling a scratch activation buffer for algorithm selection. Plain CUDA runtime only.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/check.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse::detail {

// cuSPARSELt 0.8.0's sm90 sparse kernels read up to 1 KiB past the end of their operands
// (compute-sanitizer memcheck on an H100 flags 1024-byte reads ending 512 bytes beyond buffers of
// 1536 and 40960 bytes; results are unaffected). Every device buffer we allocate carries this much
// trailing slack; buffers callers pass to run() need the same (docs/BACKENDS.md).
inline constexpr size_t kDeviceAllocSlack = 64 * 1024;

class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(size_t bytes) { reset(bytes); }
  ~DeviceMemory() { release(); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  DeviceMemory(DeviceMemory&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceMemory& operator=(DeviceMemory&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = o.ptr_;
      bytes_ = o.bytes_;
      o.ptr_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  void reset(size_t bytes) {
    release();
    if (bytes > 0) SLIDESPARSE_CUDA_CHECK(cudaMalloc(&ptr_, bytes + kDeviceAllocSlack));
    bytes_ = bytes;
  }
  // Grow-only: keeps the allocation when it is already large enough.
  void ensure(size_t bytes) {
    if (bytes > bytes_) reset(bytes);
  }
  void* get() const noexcept { return ptr_; }
  size_t bytes() const noexcept { return bytes_; }

 private:
  void release() noexcept {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class Event {
 public:
  Event() { SLIDESPARSE_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() { cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const noexcept { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

inline double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// Median per-launch time (us) of `launch` over `iters` timed launches after `warmup` ones, each
// launch between its own pair of events (so one slow launch does not move the median).
template <class Launch>
double time_launches_us(Launch&& launch, int warmup, int iters, cudaStream_t stream) {
  for (int i = 0; i < warmup; ++i) launch();
  std::vector<Event> ev(size_t(2 * std::max(iters, 1)));
  for (int i = 0; i < std::max(iters, 1); ++i) {
    SLIDESPARSE_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * i)].get(), stream));
    launch();
    SLIDESPARSE_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * i + 1)].get(), stream));
  }
  SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> us;
  for (int i = 0; i < std::max(iters, 1); ++i) {
    float ms = 0;
    SLIDESPARSE_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[size_t(2 * i)].get(), ev[size_t(2 * i + 1)].get()));
    us.push_back(double(ms) * 1e3);
  }
  return median_of(std::move(us));
}

// dst[0:dst_rows] = src rows repeated (src_rows of them), by doubling device-to-device copies.
inline void fill_rows_from(void* dst, int64_t dst_rows, const void* src, int64_t src_rows,
                           size_t row_bytes, cudaStream_t stream) {
  if (dst_rows <= 0) return;
  const int64_t first = std::min(dst_rows, src_rows);
  SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(first) * row_bytes,
                                         cudaMemcpyDeviceToDevice, stream));
  int64_t have = first;
  while (have < dst_rows) {  // doubling copies of what is already there
    const int64_t n = std::min(have, dst_rows - have);
    SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + size_t(have) * row_bytes, dst,
                                           size_t(n) * row_bytes, cudaMemcpyDeviceToDevice, stream));
    have += n;
  }
}

// A zero-row-padded copy of W[n, k] as [n_cols, k].
inline void copy_padded_rows(void* dst, const void* src, int64_t n, int64_t n_cols, size_t row_bytes,
                             cudaStream_t stream) {
  SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(n) * row_bytes, cudaMemcpyDeviceToDevice, stream));
  if (n_cols > n)
    SLIDESPARSE_CUDA_CHECK(cudaMemsetAsync(static_cast<char*>(dst) + size_t(n) * row_bytes, 0,
                                           size_t(n_cols - n) * row_bytes, stream));
}

inline bool stream_is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  SLIDESPARSE_CUDA_CHECK(cudaStreamIsCapturing(stream, &st));
  return st != cudaStreamCaptureStatusNone;
}

inline double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The run() contract every GemmPlan enforces: prepare_weight() came first, and an alpha vector is
// passed exactly when the plan was made with PlanOptions::alpha_vector. Throws kInvalidArgument.
void check_run_args(const char* backend, bool prepared, bool alpha_vector, const float* alpha_vec_dev);

int current_device();          // cudaGetDevice, checked
int device_sm(int device);     // major*10 + minor

// Scratch activations for algorithm selection: [rows, k] of `dtype`, random finite nonzero values
// (a 64-row block made on the host, repeated), so a search never times zeros, which can run faster
// than real data. Synchronizes `stream`.
void fill_random_rows(void* dst, int64_t rows, int64_t k, DType dtype, cudaStream_t stream);

}  // namespace slidesparse::detail
