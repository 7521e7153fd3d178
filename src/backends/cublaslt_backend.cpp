// slidesparse backends: dense GEMM on cuBLASLt, the baseline every sparse plan is compared with.
//
// Y^T = W . X^T in cuBLASLt's column-major terms ("TN"): A = W as column-major k x n_cols (ld k)
// with op T, B = X^T as column-major k x m_rows (ld k) with op N, C = D column-major n_cols x
// m_rows (ld n_cols), i.e. row-major Y[m_rows, n_cols]. The same layout as the cuSPARSELt plan, so
// both compute the same D bit for bit on integer data.
//   i8:   compute 32I, scale 32I (alpha = 1, beta = 0 as int32), D i32
//   e4m3: compute 32F, scale 32F, C = D f32
//   bf16/f16: compute 32F, scale 32F, D bf16/f16; split-k only with f32 partial sums (no in-place
//             or output-type reduction), so D is the f32 accumulator rounded once
#include <cublasLt.h>
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "backends/backend.hpp"
#include "backends/check.hpp"
#include "backends/detail.hpp"
#include "backends/plan_cache.hpp"

namespace slidesparse {
namespace {

constexpr const char* kBackend = "cublaslt";
// Hopper kernels want up to 32 MiB of workspace (cuBLAS docs' recommendation for sm_90).
constexpr size_t kMaxWorkspaceBytes = size_t(32) << 20;

cublasLtHandle_t shared_handle() {
  static std::mutex mu;
  static std::map<int, cublasLtHandle_t> handles;  // per device, for the process lifetime
  const int dev = detail::current_device();
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(dev);
  if (it != handles.end()) return it->second;
  cublasLtHandle_t h = nullptr;
  SLIDESPARSE_CUBLAS_CHECK(cublasLtCreate(&h));
  handles.emplace(dev, h);
  return h;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kI8: return CUDA_R_8I;
    case DType::kE4M3: return CUDA_R_8F_E4M3;
    case DType::kBF16: return CUDA_R_16BF;
    case DType::kF16: return CUDA_R_16F;
    case DType::kI32: return CUDA_R_32I;
    case DType::kF32: return CUDA_R_32F;
    default: break;
  }
  throw Error(Status::kInternal, fmt::format("cublaslt: no cudaDataType for {}", dtype_token(t)));
}

std::string algo_to_hex(const cublasLtMatmulAlgo_t& a) {
  std::string s;
  for (uint64_t w : a.data) s += fmt::format("{:016x}", w);
  return s;
}

bool algo_from_hex(const std::string& s, cublasLtMatmulAlgo_t& a) {
  if (s.size() != 16 * 8) return false;
  for (size_t i = 0; i < 8; ++i) {
    uint64_t w = 0;
    for (size_t j = 0; j < 16; ++j) {
      const char c = s[16 * i + j];
      int v;
      if (c >= '0' && c <= '9') v = c - '0';
      else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
      else return false;
      w = (w << 4) | uint64_t(v);
    }
    a.data[i] = w;
  }
  return true;
}

template <class T>
T algo_attr(const cublasLtMatmulAlgo_t& a, cublasLtMatmulAlgoConfigAttributes_t attr) {
  T v{};
  size_t written = 0;
  if (cublasLtMatmulAlgoConfigGetAttribute(&a, attr, &v, sizeof(v), &written) != CUBLAS_STATUS_SUCCESS)
    return T{};
  return v;
}

class CublasLtPlan final : public GemmPlan {
 public:
  CublasLtPlan(const GemmProblem& p, const PlanOptions& o) : opts_(o) {
    SLIDESPARSE_BACKEND_REQUIRE(!p.sparse, Status::kInvalidArgument, kBackend,
                                "make_cublaslt_plan: the problem is marked sparse; cuBLASLt runs dense "
                                "GEMMs (use make_cusparselt_plan)");
    problem_ = p;
    layout_ = gemm_layout(p);
    device_ = detail::current_device();
    const int sm = detail::device_sm(device_);
    SLIDESPARSE_BACKEND_REQUIRE(p.precision != GemmPrecision::kE4M3 || sm >= 89, Status::kUnsupported,
                                kBackend,
                                "e4m3 GEMMs need sm_89 or newer (this GPU is sm_{}); supported here: "
                                "i8, bf16, f16",
                                sm);
    SLIDESPARSE_BACKEND_REQUIRE(!o.alpha_vector || p.precision != GemmPrecision::kI8,
                                Status::kUnsupported, kBackend,
                                "alpha_vector is supported for e4m3, bf16 and f16 outputs; i8 plans "
                                "return raw i32 accumulators (scale them in the epilogue)");
    handle_ = shared_handle();

    const bool i8 = p.precision == GemmPrecision::kI8;
    SLIDESPARSE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, i8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F,
                                                      i8 ? CUDA_R_32I : CUDA_R_32F));
    const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
    SLIDESPARSE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof(op_t)));
    SLIDESPARSE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof(op_n)));
    if (o.alpha_vector) {
      const int32_t mode = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_ZERO;
      SLIDESPARSE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_POINTER_MODE, &mode, sizeof(mode)));
    }
    const cudaDataType_t in = cuda_type(layout_.x_dtype), out = cuda_type(layout_.d_dtype);
    const auto k = uint64_t(layout_.k), n = uint64_t(layout_.n_cols), m = uint64_t(layout_.m_rows);
    SLIDESPARSE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a_, in, k, n, int64_t(k)));
    SLIDESPARSE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b_, in, k, m, int64_t(k)));
    SLIDESPARSE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d_, out, n, m, int64_t(n)));
  }

  ~CublasLtPlan() override {
    unbind();  // before the library objects the recorded graphs use
    if (d_) cublasLtMatrixLayoutDestroy(d_);
    if (b_) cublasLtMatrixLayoutDestroy(b_);
    if (a_) cublasLtMatrixLayoutDestroy(a_);
    if (desc_) cublasLtMatmulDescDestroy(desc_);
  }

  void prepare_weight(const void* w_dev, cudaStream_t stream) override {
    unbind();  // recorded graphs hold the old weight, workspace and algorithm
    const auto t0 = std::chrono::steady_clock::now();
    SLIDESPARSE_BACKEND_REQUIRE(w_dev != nullptr, Status::kInvalidArgument, kBackend,
                                "prepare_weight: w_dev is null");
    SLIDESPARSE_BACKEND_REQUIRE(!detail::stream_is_capturing(stream), Status::kInvalidArgument, kBackend,
                                "prepare_weight copies the weight and times algorithms: it cannot run "
                                "while the stream captures a CUDA graph");
    const size_t row_bytes = size_t(layout_.k) * dtype_size(layout_.x_dtype);
    weight_.reset(layout_.w_bytes(layout_.n_cols));
    detail::copy_padded_rows(weight_.get(), w_dev, problem_.n, layout_.n_cols, row_bytes, stream);

    const std::vector<cublasLtMatmulHeuristicResult_t> candidates = heuristics(std::max(opts_.dense_top_n, 1));
    SLIDESPARSE_BACKEND_REQUIRE(
        !candidates.empty(), Status::kUnsupported, kBackend,
        "cublasLtMatmulAlgoGetHeuristic found no algorithm for dense {} (TN, m={} n={} k={}{}); "
        "cuBLASLt supports i8 (i32 out), e4m3 (f32 out, sm_89+), bf16 and f16 here",
        gemm_precision_name(problem_.precision), layout_.m_rows, layout_.n_cols, layout_.k,
        opts_.alpha_vector ? ", alpha vector" : "");

    const PlanKey key = PlanKey::of(problem_, opts_.alpha_vector);
    bool chosen = false;
    if (opts_.cache) {
      if (auto e = opts_.cache->find(key)) chosen = adopt_cached(*e, candidates);
    }
    if (!chosen && opts_.search) {
      const auto ts = std::chrono::steady_clock::now();
      search(candidates, stream);
      stats_.search_ms = detail::ms_since(ts);
      chosen = true;
      if (opts_.cache) {
        PlanEntry e;
        e.algo_index = algo_index_;
        e.algo_hex = algo_to_hex(algo_);
        e.time_us = stats_.measured_us;
        e.source = stats_.source;
        opts_.cache->put(key, e);
      }
    }
    if (!chosen) {
      algo_ = candidates[0].algo;
      ws_size_ = candidates[0].workspaceSize;
      algo_index_ = 0;
      stats_.source = "heuristic";
    }
    workspace_.reset(ws_size_);
    SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
    prepared_ = true;
    stats_.prepare_ms = detail::ms_since(t0);
  }

  void update_weight(const void* w_dev, cudaStream_t stream) override {
    SLIDESPARSE_BACKEND_REQUIRE(weight_.get() != nullptr, Status::kInvalidArgument, kBackend,
                                "update_weight() before prepare_weight()");
    SLIDESPARSE_BACKEND_REQUIRE(w_dev != nullptr, Status::kInvalidArgument, kBackend, "update_weight: w_dev is null");
    SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(weight_.get(), w_dev, layout_.w_bytes(layout_.n_cols),
                                           cudaMemcpyDeviceToDevice, stream));
  }

  void run_direct(const void* x_dev, void* d_dev, const float* alpha_vec_dev, cudaStream_t stream) override {
    detail::check_run_args(kBackend, prepared_, opts_.alpha_vector, alpha_vec_dev);
    launch(x_dev, d_dev, alpha_vec_dev, stream);
  }

  size_t workspace_bytes() const override { return ws_size_; }
  const char* backend_name() const noexcept override { return kBackend; }

  std::string describe() const override {
    return fmt::format(
        "cublaslt dense {} m={} n={} k={} algo#{} id={} tile={} stages={} splitk={} ws={} ({})",
        gemm_precision_name(problem_.precision), problem_.m, problem_.n, problem_.k, algo_index_,
        algo_attr<int32_t>(algo_, CUBLASLT_ALGO_CONFIG_ID), algo_attr<uint32_t>(algo_, CUBLASLT_ALGO_CONFIG_TILE_ID),
        algo_attr<uint32_t>(algo_, CUBLASLT_ALGO_CONFIG_STAGES_ID),
        algo_attr<int32_t>(algo_, CUBLASLT_ALGO_CONFIG_SPLITK_NUM), ws_size_, stats_.source);
  }

 private:
  std::vector<cublasLtMatmulHeuristicResult_t> heuristics(int top_n) {
    cublasLtMatmulPreference_t pref = nullptr;
    SLIDESPARSE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    std::vector<cublasLtMatmulHeuristicResult_t> res(static_cast<size_t>(top_n));
    int returned = 0;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                             &kMaxWorkspaceBytes, sizeof(kMaxWorkspaceBytes));
    if (st == CUBLAS_STATUS_SUCCESS && dtype_size(layout_.d_dtype) == 2) {
      // 16-bit outputs: split-k partial sums stay in f32 (the in-place and output-type schemes add
      // bf16/f16-rounded partials), so D is the f32 accumulator rounded once, as cuSPARSELt's.
      const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                sizeof(schemes));
    }
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(handle_, desc_, a_, b_, d_, d_, pref, top_n, res.data(), &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    // NOT_SUPPORTED means "no algorithm for this configuration": an empty list, reported by the caller.
    if (st != CUBLAS_STATUS_NOT_SUPPORTED) SLIDESPARSE_CUBLAS_CHECK(st);
    std::vector<cublasLtMatmulHeuristicResult_t> ok;
    for (int i = 0; i < returned; ++i)
      if (res[size_t(i)].state == CUBLAS_STATUS_SUCCESS) ok.push_back(res[size_t(i)]);
    return ok;
  }

  // A cached algorithm is used only if cuBLASLt still accepts it for this exact shape; else the
  // cached heuristic index, if still in range.
  bool adopt_cached(const PlanEntry& e, const std::vector<cublasLtMatmulHeuristicResult_t>& candidates) {
    cublasLtMatmulAlgo_t a{};
    if (!e.algo_hex.empty() && algo_from_hex(e.algo_hex, a)) {
      cublasLtMatmulHeuristicResult_t r{};
      if (cublasLtMatmulAlgoCheck(handle_, desc_, a_, b_, d_, d_, &a, &r) == CUBLAS_STATUS_SUCCESS &&
          r.workspaceSize <= kMaxWorkspaceBytes) {
        algo_ = a;
        ws_size_ = r.workspaceSize;
        algo_index_ = e.algo_index;
        stats_.from_cache = true;
        stats_.source = "cache";
        stats_.measured_us = e.time_us;
        return true;
      }
    }
    if (e.algo_index >= 0 && size_t(e.algo_index) < candidates.size()) {
      algo_index_ = e.algo_index;
      algo_ = candidates[size_t(e.algo_index)].algo;
      ws_size_ = candidates[size_t(e.algo_index)].workspaceSize;
      stats_.from_cache = true;
      stats_.source = "cache-index";
      stats_.measured_us = e.time_us;
      return true;
    }
    return false;
  }

  // Times each heuristic candidate on scratch buffers (random nonzero X, never zeros).
  void search(const std::vector<cublasLtMatmulHeuristicResult_t>& candidates, cudaStream_t stream) {
    detail::DeviceMemory x(layout_.x_bytes()), d(layout_.d_bytes()), alpha;
    detail::fill_random_rows(x.get(), layout_.m_rows, layout_.k, layout_.x_dtype, stream);
    if (opts_.alpha_vector) {
      alpha.reset(size_t(layout_.n_cols) * sizeof(float));
      const std::vector<float> ones(size_t(layout_.n_cols), 1.0f);
      SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(alpha.get(), ones.data(), alpha.bytes(), cudaMemcpyHostToDevice, stream));
      SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    size_t max_ws = 0;
    for (const auto& c : candidates) max_ws = std::max(max_ws, c.workspaceSize);
    workspace_.reset(max_ws);
    double best = 0;
    int best_i = -1;
    for (size_t i = 0; i < candidates.size(); ++i) {
      algo_ = candidates[i].algo;
      ws_size_ = candidates[i].workspaceSize;
      double us = 0;
      try {
        us = detail::time_launches_us(
            [&] { launch(x.get(), d.get(), static_cast<const float*>(alpha.get()), stream); }, 2,
            std::max(opts_.search_iters, 1), stream);
      } catch (const Error&) {
        // A candidate the library offered but cannot launch: skip it, unless the context is gone.
        if (cudaStreamSynchronize(stream) != cudaSuccess) throw;
        continue;
      }
      if (best_i < 0 || us < best) {
        best = us;
        best_i = int(i);
      }
    }
    SLIDESPARSE_BACKEND_REQUIRE(best_i >= 0, Status::kUnsupported, kBackend,
                                "none of the {} cuBLASLt heuristic candidates could run dense {} m={} "
                                "n={} k={}",
                                candidates.size(), gemm_precision_name(problem_.precision), layout_.m_rows,
                                layout_.n_cols, layout_.k);
    algo_index_ = best_i;
    algo_ = candidates[size_t(best_i)].algo;
    ws_size_ = candidates[size_t(best_i)].workspaceSize;
    stats_.measured_us = best;
    stats_.source = "timed-heuristics";
  }

  void launch(const void* x_dev, void* d_dev, const float* alpha_vec_dev, cudaStream_t stream) {
    static const int32_t i_one = 1, i_zero = 0;
    static const float f_one = 1.0f, f_zero = 0.0f;
    const bool i8 = problem_.precision == GemmPrecision::kI8;
    const void* alpha = opts_.alpha_vector ? static_cast<const void*>(alpha_vec_dev)
                        : i8              ? static_cast<const void*>(&i_one)
                                          : static_cast<const void*>(&f_one);
    const void* beta = i8 ? static_cast<const void*>(&i_zero) : static_cast<const void*>(&f_zero);
    SLIDESPARSE_CUBLAS_CHECK(cublasLtMatmul(handle_, desc_, alpha, weight_.get(), a_, x_dev, b_, beta, d_dev,
                                            d_, d_dev, d_, &algo_, workspace_.get(), ws_size_, stream));
  }

  PlanOptions opts_;
  int device_ = 0;
  cublasLtHandle_t handle_ = nullptr;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  int algo_index_ = -1;
  size_t ws_size_ = 0;
  detail::DeviceMemory weight_, workspace_;
  bool prepared_ = false;
};

}  // namespace

std::unique_ptr<GemmPlan> make_cublaslt_plan(const GemmProblem& p, const PlanOptions& o) {
  return std::make_unique<CublasLtPlan>(p, o);
}

}  // namespace slidesparse
