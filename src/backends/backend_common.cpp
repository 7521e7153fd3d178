// slidesparse backends: what both backends share (names, layout rules, environment).
#include <cublasLt.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/backend.hpp"
#include "backends/check.hpp"
#include "backends/detail.hpp"

namespace slidesparse {

std::string cusparselt_version_string();  // cusparselt_backend.cpp

const char* gemm_precision_name(GemmPrecision p) noexcept {
  switch (p) {
    case GemmPrecision::kI8: return "i8";
    case GemmPrecision::kE4M3: return "e4m3";
    case GemmPrecision::kBF16: return "bf16";
    case GemmPrecision::kF16: return "f16";
  }
  return "?";
}

std::optional<GemmPrecision> gemm_precision_from_name(std::string_view s) noexcept {
  if (s == "i8" || s == "int8") return GemmPrecision::kI8;
  if (s == "e4m3" || s == "fp8") return GemmPrecision::kE4M3;
  if (s == "bf16") return GemmPrecision::kBF16;
  if (s == "f16" || s == "fp16") return GemmPrecision::kF16;
  return std::nullopt;
}

DType gemm_input_dtype(GemmPrecision p) noexcept {
  switch (p) {
    case GemmPrecision::kI8: return DType::kI8;
    case GemmPrecision::kE4M3: return DType::kE4M3;
    case GemmPrecision::kBF16: return DType::kBF16;
    case GemmPrecision::kF16: return DType::kF16;
  }
  return DType::kBF16;
}

DType gemm_output_dtype(GemmPrecision p) noexcept {
  switch (p) {
    case GemmPrecision::kI8: return DType::kI32;
    case GemmPrecision::kE4M3: return DType::kF32;
    case GemmPrecision::kBF16: return DType::kBF16;
    case GemmPrecision::kF16: return DType::kF16;
  }
  return DType::kBF16;
}

GemmLayout gemm_layout(const GemmProblem& p) {
  const char* be = p.sparse ? "cusparselt" : "cublaslt";
  SLIDESPARSE_BACKEND_REQUIRE(p.m >= 1 && p.n >= 1 && p.k >= 1, Status::kInvalidArgument, be,
                              "GEMM shape m={} n={} k={}: every dimension must be >= 1", p.m, p.n, p.k);
  const DType in = gemm_input_dtype(p.precision);
  const bool eight_bit = dtype_size(in) == 1;
  // Structured operand: rows/cols multiples of 32 bytes' worth of elements; dense operands: 16
  // bytes' worth (cuSPARSELt). cuBLASLt only needs 16-byte aligned rows.
  const int64_t k_align = p.sparse ? (eight_bit ? 32 : 16) : (eight_bit ? 16 : 8);
  const int64_t n_align = eight_bit ? 32 : 16;
  SLIDESPARSE_BACKEND_REQUIRE(
      p.k % k_align == 0, Status::kInvalidArgument, be,
      "k = {} is not a multiple of {}: {} {} GEMMs need k % {} == 0 (pad k with zero columns of X and "
      "W; slide_k() always returns a multiple of 32)",
      p.k, k_align, p.sparse ? "sparse" : "dense", gemm_precision_name(p.precision), k_align);
  GemmLayout l;
  l.m_rows = (p.m + kGemmMAlign - 1) / kGemmMAlign * kGemmMAlign;
  l.n_cols = (p.n + n_align - 1) / n_align * n_align;
  l.k = p.k;
  l.x_dtype = in;
  l.d_dtype = gemm_output_dtype(p.precision);
  return l;
}

GemmPlan::~GemmPlan() { unbind(); }

void GemmPlan::run(const void* x_dev, void* d_dev, const float* alpha_vec_dev, cudaStream_t stream) {
  for (const Binding& b : bindings_) {
    if (b.x != x_dev || b.d != d_dev || b.alpha != alpha_vec_dev) continue;
    // A capture records the library's kernels themselves (as it did before bindings existed).
    if (detail::stream_is_capturing(stream)) break;
    SLIDESPARSE_CUDA_CHECK(cudaGraphLaunch(b.exec, stream));
    return;
  }
  run_direct(x_dev, d_dev, alpha_vec_dev, stream);
}

void GemmPlan::bind(const void* x_dev, void* d_dev, const float* alpha_vec_dev, cudaStream_t stream) {
  SLIDESPARSE_BACKEND_REQUIRE(!detail::stream_is_capturing(stream), Status::kInvalidArgument, backend_name(),
                              "bind() records a graph on a stream of its own: it cannot run while the "
                              "caller's stream captures one");
  for (const Binding& b : bindings_)
    if (b.x == x_dev && b.d == d_dev && b.alpha == alpha_vec_dev) return;
  cudaStream_t side = nullptr;
  SLIDESPARSE_CUDA_CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  try {
    SLIDESPARSE_CUDA_CHECK(cudaStreamBeginCapture(side, cudaStreamCaptureModeThreadLocal));
    try {
      run_direct(x_dev, d_dev, alpha_vec_dev, side);
    } catch (...) {
      cudaGraph_t discard = nullptr;
      cudaStreamEndCapture(side, &discard);
      if (discard) cudaGraphDestroy(discard);
      throw;
    }
    SLIDESPARSE_CUDA_CHECK(cudaStreamEndCapture(side, &graph));
    SLIDESPARSE_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  } catch (...) {
    if (graph) cudaGraphDestroy(graph);
    cudaStreamDestroy(side);
    throw;
  }
  cudaGraphDestroy(graph);
  cudaStreamDestroy(side);
  // Upload now (stream-ordered), so that the first run() does not pay for it.
  if (const cudaError_t e = cudaGraphUpload(exec, stream); e != cudaSuccess) {
    cudaGraphExecDestroy(exec);
    SLIDESPARSE_CUDA_CHECK(e);
  }
  if (int(bindings_.size()) == kMaxBindings) {
    cudaGraphExecDestroy(bindings_.front().exec);
    bindings_.erase(bindings_.begin());
  }
  bindings_.push_back({x_dev, d_dev, alpha_vec_dev, exec});
}

void GemmPlan::unbind() noexcept {
  for (const Binding& b : bindings_) cudaGraphExecDestroy(b.exec);
  bindings_.clear();
}

void GemmPlan::run_fused(const void*, const FusedOutput&, cudaStream_t) {
  throw Error(Status::kUnsupported,
              fmt::format("{} plans have no fused epilogue: run() and scale_epilogue instead (only sm90 plans "
                          "fuse it)", backend_name()),
              __FILE__, __LINE__, backend_name(), "run_fused");
}

void GemmPlan::update_weight(const void*, cudaStream_t) {
  throw Error(Status::kUnsupported,
              fmt::format("{}: update_weight is not implemented by this backend", backend_name()), __FILE__,
              __LINE__, backend_name(), "update_weight");
}

std::unique_ptr<GemmPlan> make_gemm_plan(const GemmProblem& p, const PlanOptions& o) {
  return p.sparse ? make_cusparselt_plan(p, o) : make_cublaslt_plan(p, o);
}

bool cusparselt_compiled() noexcept { return SLIDESPARSE_HAVE_CUSPARSELT != 0; }

namespace detail {

void check_run_args(const char* backend, bool prepared, bool alpha_vector, const float* alpha_vec_dev) {
  SLIDESPARSE_BACKEND_REQUIRE(prepared, Status::kInvalidArgument, backend, "run() before prepare_weight()");
  SLIDESPARSE_BACKEND_REQUIRE((alpha_vec_dev != nullptr) == alpha_vector, Status::kInvalidArgument, backend,
                              "alpha_vec_dev must be {} for a plan made with alpha_vector={}",
                              alpha_vector ? "non-null" : "null", alpha_vector);
}
int current_device() {
  int d = 0;
  SLIDESPARSE_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}
int device_sm(int device) {
  int major = 0, minor = 0;
  SLIDESPARSE_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  SLIDESPARSE_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor;
}
void fill_random_rows(void* dst, int64_t rows, int64_t k, DType dtype, cudaStream_t stream) {
  if (rows <= 0) return;
  const int64_t block_rows = std::min<int64_t>(rows, 64);
  const size_t es = dtype_size(dtype);
  std::vector<uint8_t> host(size_t(block_rows * k) * es);
  uint64_t s = 0x9E3779B97F4A7C15ull;
  auto next = [&s] {  // xorshift64*
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  };
  for (size_t i = 0; i < host.size() / es; ++i) {
    const uint64_t r = next();
    // Uniform in [-1, 1) without 0: magnitudes in [1/64, 1).
    const float mag = float((r >> 40) % 63 + 1) / 64.0f;
    const float v = (r & 1) ? -mag : mag;
    switch (dtype) {
      case DType::kI8: host[i] = uint8_t(int8_t(((r & 1) ? -1 : 1) * int((r >> 8) % 127 + 1))); break;
      case DType::kE4M3: host[i] = f32_to_e4m3(v); break;
      case DType::kBF16: {
        const uint16_t b = f32_to_bf16(v);
        std::memcpy(&host[2 * i], &b, 2);
        break;
      }
      case DType::kF16: {
        const uint16_t b = f32_to_f16(v);
        std::memcpy(&host[2 * i], &b, 2);
        break;
      }
      default:
        throw Error(Status::kInternal, fmt::format("fill_random_rows: unexpected dtype {}", dtype_token(dtype)));
    }
  }
  DeviceMemory block(host.size());
  SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(block.get(), host.data(), host.size(), cudaMemcpyHostToDevice, stream));
  fill_rows_from(dst, rows, block.get(), block_rows, size_t(k) * es, stream);
  SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace detail

std::string BackendEnv::key() const {
  return fmt::format("{}|sm{}|driver {}|cuda {}|cusparselt {}|cublaslt {}", gpu_name, sm,
                     driver_version, runtime_version, cusparselt_version, cublaslt_version);
}

BackendEnv backend_env() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  SLIDESPARSE_BACKEND_REQUIRE(e == cudaSuccess && count > 0, Status::kUnsupported, "cuda",
                              "no CUDA device: {}", e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
  BackendEnv env;
  const int dev = detail::current_device();
  cudaDeviceProp prop{};
  SLIDESPARSE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  env.gpu_name = prop.name;
  env.sm = prop.major * 10 + prop.minor;
  env.sm_count = prop.multiProcessorCount;
  env.l2_bytes = size_t(prop.l2CacheSize);
  SLIDESPARSE_CUDA_CHECK(cudaDeviceGetAttribute(&env.clock_khz, cudaDevAttrClockRate, dev));
  SLIDESPARSE_CUDA_CHECK(cudaDeviceGetAttribute(&env.mem_clock_khz, cudaDevAttrMemoryClockRate, dev));
  SLIDESPARSE_CUDA_CHECK(cudaDriverGetVersion(&env.driver_version));
  SLIDESPARSE_CUDA_CHECK(cudaRuntimeGetVersion(&env.runtime_version));
  env.cusparselt_version = cusparselt_version_string();
  env.cublaslt_version = std::to_string(cublasLtGetVersion());
  return env;
}

}  // namespace slidesparse
