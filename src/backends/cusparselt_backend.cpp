// slidesparse backends: 2:4 sparse GEMM on cuSPARSELt (the engine for native 2:4 and for slid
// (2N-2):2N weights, which are 2:4 along k').
//
// Call order (the vendor sample's, BRIEF 2):
//   constructor:    handle -> structured W / dense X / output descriptors -> matmul descriptor
//                   -> algorithm selection (default) -> plan
//   prepare_weight: prune check on the device (Error(kInvalidData) if W is not 2:4 along k)
//                   -> compressed size -> compress -> algorithm choice (cache, timed grid or
//                   default; fresh descriptor/selection/plan per candidate) -> compress again for
//                   the chosen plan -> workspace (once)
//   SLIDESPARSE_DEBUG_SEARCH=1 in the environment prints every grid candidate to stderr.
//   run:            cusparseLtMatmul only.
// Layout ("TN", everything column-major; see backend.hpp):
//   A = W  structured, k x n_cols, ld k, op T      B = X^T dense, k x m_rows, ld k, op N
//   C = D  n_cols x m_rows, ld n_cols              => D's memory is row-major Y[m_rows, n_cols]
// Types: i8 x i8 -> i32 (compute 32I), e4m3 x e4m3 -> f32, bf16 -> bf16, f16 -> f16 (compute 32F).
// alpha and beta are float for every compute type; ALPHA_VECTOR_SCALING scales rows of D, i.e.
// output channels.
#include "backends/backend.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/check.hpp"
#include "backends/detail.hpp"
#include "backends/plan_cache.hpp"

#if SLIDESPARSE_HAVE_CUSPARSELT
#include <cusparseLt.h>
#endif

namespace slidesparse {

#if SLIDESPARSE_HAVE_CUSPARSELT

std::string cusparselt_version_string() {
  int major = 0, minor = 0, patch = 0;
  if (cusparseLtGetProperty(MAJOR_VERSION, &major) != CUSPARSE_STATUS_SUCCESS ||
      cusparseLtGetProperty(MINOR_VERSION, &minor) != CUSPARSE_STATUS_SUCCESS ||
      cusparseLtGetProperty(PATCH_LEVEL, &patch) != CUSPARSE_STATUS_SUCCESS)
    return "unknown";
  return fmt::format("{}.{}.{}", major, minor, patch);
}

namespace {

constexpr const char* kBackend = "cusparselt";
// Candidates whose workspace exceeds this are skipped by the grid search.
constexpr size_t kMaxGridWorkspaceBytes = size_t(512) << 20;
constexpr int kGridSplitK[] = {1, 2, 4, 8};

const cusparseLtHandle_t* shared_handle() {
  static std::mutex mu;
  // One handle per device for the process lifetime (cusparseLtInit is tied to the current device).
  static std::map<int, std::unique_ptr<cusparseLtHandle_t>> handles;
  const int dev = detail::current_device();
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(dev);
  if (it != handles.end()) return it->second.get();
  auto h = std::make_unique<cusparseLtHandle_t>();
  SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtInit(h.get()));
  return handles.emplace(dev, std::move(h)).first->second.get();
}

cudaDataType cuda_type(DType t) {
  switch (t) {
    case DType::kI8: return CUDA_R_8I;
    case DType::kE4M3: return CUDA_R_8F_E4M3;
    case DType::kBF16: return CUDA_R_16BF;
    case DType::kF16: return CUDA_R_16F;
    case DType::kI32: return CUDA_R_32I;
    case DType::kF32: return CUDA_R_32F;
    default: break;
  }
  throw Error(Status::kInternal, fmt::format("cusparselt: no cudaDataType for {}", dtype_token(t)));
}

struct SparseChoice {
  int alg_id = 0;
  int split_k = 1;
  int split_k_mode = 0;
  int split_k_buffers = 0;
};

class CusparseLtPlan final : public GemmPlan {
 public:
  CusparseLtPlan(const GemmProblem& p, const PlanOptions& o) : opts_(o) {
    SLIDESPARSE_BACKEND_REQUIRE(p.sparse, Status::kInvalidArgument, kBackend,
                                "make_cusparselt_plan: the problem is marked dense; cuSPARSELt runs "
                                "2:4 sparse GEMMs (use make_cublaslt_plan)");
    problem_ = p;
    layout_ = gemm_layout(p);
    device_ = detail::current_device();
    sm_ = detail::device_sm(device_);
    SLIDESPARSE_BACKEND_REQUIRE(sm_ >= 80, Status::kUnsupported, kBackend,
                                "2:4 sparse tensor cores need sm_80 or newer (this GPU is sm_{})", sm_);
    SLIDESPARSE_BACKEND_REQUIRE(p.precision != GemmPrecision::kE4M3 || sm_ >= 89, Status::kUnsupported,
                                kBackend,
                                "sparse e4m3 needs sm_89 or newer (this GPU is sm_{}); supported here: "
                                "i8, bf16, f16",
                                sm_);
    SLIDESPARSE_BACKEND_REQUIRE(
        p.precision != GemmPrecision::kF16 || sm_ != 90 || o.allow_f16_sparse_sm90, Status::kUnsupported,
        kBackend,
        "sparse f16 is disabled on sm_90: cuSPARSELt 0.8.x is reported to hit an illegal instruction "
        "for m >= 128, which destroys the CUDA context. Supported sparse precisions here: i8, e4m3, "
        "bf16 (PlanOptions::allow_f16_sparse_sm90 tries f16 anyway)");
    SLIDESPARSE_BACKEND_REQUIRE(!o.alpha_vector || p.precision != GemmPrecision::kI8,
                                Status::kUnsupported, kBackend,
                                "alpha_vector is supported for e4m3, bf16 and f16 outputs; i8 plans "
                                "return raw i32 accumulators (scale them in the epilogue)");
    handle_ = shared_handle();

    const cudaDataType in = cuda_type(layout_.x_dtype), out = cuda_type(layout_.d_dtype);
    const int64_t k = layout_.k, n = layout_.n_cols, m = layout_.m_rows;
    constexpr uint32_t kAlignment = 16;
    SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtStructuredDescriptorInit(handle_, &mat_w_, k, n, k, kAlignment, in,
                                                                    CUSPARSE_ORDER_COL,
                                                                    CUSPARSELT_SPARSITY_50_PERCENT));
    have_w_ = true;
    SLIDESPARSE_CUSPARSELT_CHECK(
        cusparseLtDenseDescriptorInit(handle_, &mat_x_, k, m, k, kAlignment, in, CUSPARSE_ORDER_COL));
    have_x_ = true;
    SLIDESPARSE_CUSPARSELT_CHECK(
        cusparseLtDenseDescriptorInit(handle_, &mat_d_, n, m, n, kAlignment, out, CUSPARSE_ORDER_COL));
    have_d_ = true;
    build_matmul();
    init_plan();  // the default algorithm: fails here (kUnsupported) if the library refuses the problem
    choice_ = read_choice();
    stats_.source = "default";
  }

  ~CusparseLtPlan() override {
    unbind();  // before the library objects the recorded graphs use
    if (have_plan_) cusparseLtMatmulPlanDestroy(&plan_);
    if (have_alg_) cusparseLtMatmulAlgSelectionDestroy(&alg_sel_);
    if (have_d_) cusparseLtMatDescriptorDestroy(&mat_d_);
    if (have_x_) cusparseLtMatDescriptorDestroy(&mat_x_);
    if (have_w_) cusparseLtMatDescriptorDestroy(&mat_w_);
  }

  void prepare_weight(const void* w_dev, cudaStream_t stream) override {
    unbind();  // recorded graphs hold the old weight, workspace and algorithm
    const auto t0 = std::chrono::steady_clock::now();
    SLIDESPARSE_BACKEND_REQUIRE(w_dev != nullptr, Status::kInvalidArgument, kBackend,
                                "prepare_weight: w_dev is null");
    SLIDESPARSE_BACKEND_REQUIRE(!detail::stream_is_capturing(stream), Status::kInvalidArgument, kBackend,
                                "prepare_weight compresses the weight and searches algorithms: it "
                                "cannot run while the stream captures a CUDA graph");
    prepared_ = false;

    // The structured descriptor has n_cols rows of W: pad with zero rows when n is not aligned.
    const size_t row_bytes = size_t(layout_.k) * dtype_size(layout_.x_dtype);
    detail::DeviceMemory padded;
    const void* w = w_dev;
    if (layout_.n_cols != problem_.n) {
      padded.reset(layout_.w_bytes(layout_.n_cols));
      detail::copy_padded_rows(padded.get(), w_dev, problem_.n, layout_.n_cols, row_bytes, stream);
      w = padded.get();
    }

    // The check only ever sets the flag (to 1, on a violation): it must start at 0.
    detail::DeviceMemory valid(sizeof(int));
    SLIDESPARSE_CUDA_CHECK(cudaMemsetAsync(valid.get(), 0, sizeof(int), stream));
    SLIDESPARSE_CUSPARSELT_CHECK(
        cusparseLtSpMMAPruneCheck(handle_, &matmul_, w, static_cast<int*>(valid.get()), stream));
    int invalid = 1;
    SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(&invalid, valid.get(), sizeof(int), cudaMemcpyDeviceToHost, stream));
    SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
    SLIDESPARSE_BACKEND_REQUIRE(invalid == 0, Status::kInvalidData, kBackend,
                                "W[{}, {}] ({}) is not 2:4 along k: cusparseLtSpMMAPruneCheck found an "
                                "aligned group of 4 with more than 2 nonzeros (prune it, or slide a "
                                "(2N-2):2N weight first)",
                                problem_.n, problem_.k, gemm_precision_name(problem_.precision));

    // The compressed layout belongs to the plan: compress for the default plan, then again for
    // whichever configuration the search (or the cache) chooses.
    w_src_ = w;
    compress(stream);
    choose_algorithm(stream);
    compress(stream);
    w_src_ = nullptr;
    size_t ws = 0;
    SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtMatmulGetWorkspace(handle_, &plan_, &ws));
    workspace_.reset(ws);
    SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
    prepared_ = true;
    stats_.prepare_ms = detail::ms_since(t0);
  }

  // cusparseLtSpMMACompress for the chosen plan into the existing compressed buffer, with the
  // compression buffer kept from prepare_weight: no allocation, no check, no synchronization.
  void update_weight(const void* w_dev, cudaStream_t stream) override {
    SLIDESPARSE_BACKEND_REQUIRE(prepared_, Status::kInvalidArgument, kBackend, "update_weight() before prepare_weight()");
    SLIDESPARSE_BACKEND_REQUIRE(w_dev != nullptr, Status::kInvalidArgument, kBackend, "update_weight: w_dev is null");
    SLIDESPARSE_CUSPARSELT_CHECK(
        cusparseLtSpMMACompress(handle_, &plan_, w_dev, compressed_.get(), compress_buffer_.get(), stream));
  }

  void run_direct(const void* x_dev, void* d_dev, const float* alpha_vec_dev, cudaStream_t stream) override {
    detail::check_run_args(kBackend, prepared_, opts_.alpha_vector, alpha_vec_dev);
    launch(x_dev, d_dev, alpha_vec_dev, workspace_.get(), stream);
  }

  size_t workspace_bytes() const override { return workspace_.bytes(); }
  const char* backend_name() const noexcept override { return kBackend; }

  std::string describe() const override {
    return fmt::format("cusparselt 2:4 {} m={} n={} k={} alg={}/{} split_k={} split_k_mode={} "
                       "split_k_buffers={} ws={} ({})",
                       gemm_precision_name(problem_.precision), problem_.m, problem_.n, problem_.k,
                       choice_.alg_id, max_alg_id_, choice_.split_k, choice_.split_k_mode,
                       choice_.split_k_buffers, workspace_.bytes(), stats_.source);
  }

 private:
  void init_plan() {
    if (have_plan_) {
      cusparseLtMatmulPlanDestroy(&plan_);
      have_plan_ = false;
    }
    SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtMatmulPlanInit(handle_, &plan_, &matmul_, &alg_sel_));
    have_plan_ = true;
  }

  // The selection's current configuration (the library fills split-k fields it chose).
  SparseChoice read_choice() {
    SparseChoice c;
    cusparseLtMatmulAlgGetAttribute(handle_, &alg_sel_, CUSPARSELT_MATMUL_ALG_CONFIG_ID, &c.alg_id, sizeof(int));
    cusparseLtMatmulAlgGetAttribute(handle_, &alg_sel_, CUSPARSELT_MATMUL_SPLIT_K, &c.split_k, sizeof(int));
    cusparseLtMatmulAlgGetAttribute(handle_, &alg_sel_, CUSPARSELT_MATMUL_SPLIT_K_MODE, &c.split_k_mode,
                                    sizeof(int));
    cusparseLtMatmulAlgGetAttribute(handle_, &alg_sel_, CUSPARSELT_MATMUL_SPLIT_K_BUFFERS,
                                    &c.split_k_buffers, sizeof(int));
    return c;
  }

  // Sets the selection to `c` and re-makes the plan; false (and the default plan back) if the
  // library refuses it.
  // (Re)initialize the matmul descriptor and the algorithm selection. cuSPARSELt 0.8.0 crashes
  // (SIGSEGV inside cusparseLtMatmulPlanInit, seen on an H100) when a plan is destroyed and
  // re-initialized over the same descriptor and selection, so every configuration tried gets
  // fresh objects.
  void build_matmul() {
    if (have_plan_) {
      cusparseLtMatmulPlanDestroy(&plan_);
      have_plan_ = false;
    }
    if (have_alg_) {
      cusparseLtMatmulAlgSelectionDestroy(&alg_sel_);
      have_alg_ = false;
    }
    const cusparseComputeType compute =
        problem_.precision == GemmPrecision::kI8 ? CUSPARSE_COMPUTE_32I : CUSPARSE_COMPUTE_32F;
    SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtMatmulDescriptorInit(handle_, &matmul_, CUSPARSE_OPERATION_TRANSPOSE,
                                                                CUSPARSE_OPERATION_NON_TRANSPOSE, &mat_w_,
                                                                &mat_x_, &mat_d_, &mat_d_, compute));
    if (opts_.alpha_vector) {
      const int on = 1;
      SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtMatmulDescSetAttribute(
          handle_, &matmul_, CUSPARSELT_MATMUL_ALPHA_VECTOR_SCALING, &on, sizeof(on)));
    }
    SLIDESPARSE_CUSPARSELT_CHECK(
        cusparseLtMatmulAlgSelectionInit(handle_, &alg_sel_, &matmul_, CUSPARSELT_MATMUL_ALG_DEFAULT));
    have_alg_ = true;
    SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtMatmulAlgGetAttribute(
        handle_, &alg_sel_, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, &max_alg_id_, sizeof(max_alg_id_)));
  }

  // Compress w_src_ for the current plan (its compressed size can depend on the configuration).
  void compress(cudaStream_t stream) {
    size_t compressed_bytes = 0, buffer_bytes = 0;
    SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtSpMMACompressedSize(handle_, &plan_, &compressed_bytes, &buffer_bytes));
    compressed_.reset(compressed_bytes);
    // Kept (grow-only) for update_weight, which must not allocate.
    compress_buffer_.ensure(buffer_bytes);
    detail::Event e0, e1;
    SLIDESPARSE_CUDA_CHECK(cudaEventRecord(e0.get(), stream));
    SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtSpMMACompress(handle_, &plan_, w_src_, compressed_.get(), compress_buffer_.get(), stream));
    SLIDESPARSE_CUDA_CHECK(cudaEventRecord(e1.get(), stream));
    SLIDESPARSE_CUDA_CHECK(cudaEventSynchronize(e1.get()));
    float ms = 0;
    SLIDESPARSE_CUDA_CHECK(cudaEventElapsedTime(&ms, e0.get(), e1.get()));
    stats_.compress_ms = ms;
  }

  // Fresh descriptor, selection and plan for configuration c; false if the library refuses it,
  // in which case the default configuration is restored.
  bool apply_choice(const SparseChoice& c) {
    build_matmul();
    auto set = [&](cusparseLtMatmulAlgAttribute_t a, int v) {
      return cusparseLtMatmulAlgSetAttribute(handle_, &alg_sel_, a, &v, sizeof(v)) == CUSPARSE_STATUS_SUCCESS;
    };
    bool ok = set(CUSPARSELT_MATMUL_ALG_CONFIG_ID, c.alg_id) && set(CUSPARSELT_MATMUL_SPLIT_K, c.split_k);
    if (ok && c.split_k != 1 && c.split_k_mode > 0) ok = set(CUSPARSELT_MATMUL_SPLIT_K_MODE, c.split_k_mode);
    if (ok && c.split_k != 1 && c.split_k_buffers > 0)
      ok = set(CUSPARSELT_MATMUL_SPLIT_K_BUFFERS, c.split_k_buffers);
    if (ok) {
      ok = cusparseLtMatmulPlanInit(handle_, &plan_, &matmul_, &alg_sel_) == CUSPARSE_STATUS_SUCCESS;
      have_plan_ = ok;
    }
    if (!ok) {
      build_matmul();
      init_plan();
    }
    return ok;
  }

  void choose_algorithm(cudaStream_t stream) {
    const PlanKey key = PlanKey::of(problem_, opts_.alpha_vector);
    if (opts_.cache) {
      if (auto e = opts_.cache->find(key); e && e->alg_id >= 0) {
        SparseChoice c{e->alg_id, e->split_k, e->split_k_mode, e->split_k_buffers};
        if (apply_choice(c)) {
          choice_ = read_choice();
          stats_.from_cache = true;
          stats_.source = "cache";
          stats_.measured_us = e->time_us;
          return;
        }
      }
    }
    if (!opts_.search) {
      choice_ = read_choice();
      stats_.source = "default";
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    Scratch s(*this, stream);
    grid_search(s, stream);
    stats_.search_ms = detail::ms_since(t0);
    if (opts_.cache) {
      PlanEntry e;
      e.alg_id = choice_.alg_id;
      e.split_k = choice_.split_k;
      e.split_k_mode = choice_.split_k_mode;
      e.split_k_buffers = choice_.split_k_buffers;
      e.time_us = stats_.measured_us;
      e.source = stats_.source;
      opts_.cache->put(key, e);
    }
  }

  // Buffers for timing candidates: random nonzero X, an output, an alpha vector of ones.
  struct Scratch {
    detail::DeviceMemory x, d, alpha, workspace;
    Scratch(const CusparseLtPlan& p, cudaStream_t stream)
        : x(p.layout_.x_bytes()), d(p.layout_.d_bytes()) {
      detail::fill_random_rows(x.get(), p.layout_.m_rows, p.layout_.k, p.layout_.x_dtype, stream);
      if (p.opts_.alpha_vector) {
        alpha.reset(size_t(p.layout_.n_cols) * sizeof(float));
        const std::vector<float> ones(size_t(p.layout_.n_cols), 1.0f);
        SLIDESPARSE_CUDA_CHECK(
            cudaMemcpyAsync(alpha.get(), ones.data(), alpha.bytes(), cudaMemcpyHostToDevice, stream));
        SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
      }
    }
    const float* alpha_ptr() const { return static_cast<const float*>(alpha.get()); }
  };

  double time_current(Scratch& s, cudaStream_t stream) {
    size_t ws = 0;
    SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtMatmulGetWorkspace(handle_, &plan_, &ws));
    s.workspace.ensure(ws);
    return detail::time_launches_us([&] { launch(s.x.get(), s.d.get(), s.alpha_ptr(), s.workspace.get(), stream); },
                                    2, std::max(opts_.search_iters, 1), stream);
  }

  // Our own search: algorithm ids x split-k in {1, 2, 4, 8}, plus segment-k (split_k = -1) when
  // n >= segment_k_min_n (it is reported to hang for small n). Each candidate is compressed for
  // and timed with its own plan. (cusparseLtMatmulSearch is not used: its workspace handling in
  // 0.8.0 is undocumented, and our timing also feeds the plan cache.)
  void grid_search(Scratch& s, cudaStream_t stream) {
    SparseChoice best;
    double best_us = -1;
    std::vector<int> split_ks(std::begin(kGridSplitK), std::end(kGridSplitK));
    if (problem_.n >= opts_.segment_k_min_n) split_ks.push_back(-1);
    const int max_id = max_alg_id_;
    for (int id = 0; id <= max_id; ++id) {
      for (int sk : split_ks) {
        SparseChoice c;
        c.alg_id = id;
        c.split_k = sk;
        if (std::getenv("SLIDESPARSE_DEBUG_SEARCH"))
          std::fprintf(stderr, "[cusparselt grid] n=%lld k=%lld m=%lld alg %d split_k %d\n", (long long)layout_.n_cols,
                       (long long)layout_.k, (long long)layout_.m_rows, id, sk);
        if (!apply_choice(c)) continue;
        size_t ws = 0;
        if (cusparseLtMatmulGetWorkspace(handle_, &plan_, &ws) != CUSPARSE_STATUS_SUCCESS ||
            ws > kMaxGridWorkspaceBytes)
          continue;
        double us = 0;
        try {
          compress(stream);
          us = time_current(s, stream);
        } catch (const Error&) {
          if (cudaStreamSynchronize(stream) != cudaSuccess) throw;  // the context is gone
          continue;
        }
        if (best_us < 0 || us < best_us) {
          best_us = us;
          best = read_choice();
        }
      }
    }
    SLIDESPARSE_BACKEND_REQUIRE(best_us >= 0, Status::kUnsupported, kBackend,
                                "no cuSPARSELt algorithm (ids 0..{}, split-k 1/2/4/8) runs sparse {} m={} "
                                "n={} k={}",
                                max_alg_id_, gemm_precision_name(problem_.precision), layout_.m_rows,
                                layout_.n_cols, layout_.k);
    SLIDESPARSE_BACKEND_REQUIRE(apply_choice(best), Status::kInternal, kBackend,
                                "grid search: alg {} split_k {} ran but the plan cannot be re-made",
                                best.alg_id, best.split_k);
    choice_ = read_choice();
    stats_.measured_us = best_us;
    stats_.source = "grid";
  }

  void launch(const void* x_dev, void* d_dev, const float* alpha_vec_dev, void* workspace,
              cudaStream_t stream) {
    static const float one = 1.0f, zero = 0.0f;
    const void* alpha = opts_.alpha_vector ? static_cast<const void*>(alpha_vec_dev) : &one;
    cudaStream_t streams[1] = {stream};
    SLIDESPARSE_CUSPARSELT_CHECK(cusparseLtMatmul(handle_, &plan_, alpha, compressed_.get(), x_dev, &zero,
                                                  d_dev, d_dev, workspace, streams, 1));
  }

  PlanOptions opts_;
  int device_ = 0, sm_ = 0;
  const cusparseLtHandle_t* handle_ = nullptr;
  cusparseLtMatDescriptor_t mat_w_{}, mat_x_{}, mat_d_{};
  cusparseLtMatmulDescriptor_t matmul_{};
  cusparseLtMatmulAlgSelection_t alg_sel_{};
  cusparseLtMatmulPlan_t plan_{};
  const void* w_src_ = nullptr;  // the (padded) 2:4 weight, valid during prepare_weight only
  bool have_w_ = false, have_x_ = false, have_d_ = false, have_alg_ = false, have_plan_ = false;
  int max_alg_id_ = 0;
  SparseChoice choice_;
  detail::DeviceMemory compressed_, workspace_, compress_buffer_;
  bool prepared_ = false;
};

}  // namespace

std::unique_ptr<GemmPlan> make_cusparselt_plan(const GemmProblem& p, const PlanOptions& o) {
  return std::make_unique<CusparseLtPlan>(p, o);
}

#else  // !SLIDESPARSE_HAVE_CUSPARSELT

std::string cusparselt_version_string() { return "none"; }

std::unique_ptr<GemmPlan> make_cusparselt_plan(const GemmProblem&, const PlanOptions&) {
  throw Error(Status::kUnsupported,
              "cusparselt: this build has no cuSPARSELt (cusparseLt.h / libcusparseLt.so.0 were not "
              "found at configure time; run scripts/fetch_cusparselt.sh or set "
              "SLIDESPARSE_CUSPARSELT_ROOT). Dense GEMMs (make_cublaslt_plan) are available.",
              __FILE__, __LINE__, "cusparselt");
}

#endif

}  // namespace slidesparse
