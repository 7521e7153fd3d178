// slidesparse backends: one GEMM plan/run interface over cuSPARSELt (2:4 sparse) and cuBLASLt
// (dense). No cuSPARSELt or cuBLASLt type appears here; callers see raw device pointers, a stream
// and slidesparse::Error.
//
// Convention (the whole project): Y[m,n] = X[m,k] . W[n,k]^T. W is the structured operand (2:4
// along k when sparse), X the dense one; both are row-major with k contiguous. The libraries
// compute Y^T = W . X^T with D column-major [n, m], so D's memory is row-major Y[m, n] (BRIEF 2):
//   A = W  : column-major k x n (ld = k), op(A) = T      (the structured operand when sparse)
//   B = X^T: column-major k x m (ld = k), op(B) = N      ("TN": both operands k-major)
//   D      : column-major n x m (ld = n_cols)            == row-major Y[m_rows, n_cols]
// k is the GEMM's reduction length: K for dense and native 2:4, K' = slide_k(pattern, K) for a slid
// weight (X is then the lifted X').
//
// Output and scales (identical for both backends, so they are interchangeable and comparable):
//   i8   -> D i32: raw accumulators. Per-token x per-channel dequantization (y = acc*s_x[m]*s_w[n])
//           belongs to an epilogue kernel: cuSPARSELt's alpha vector scales rows of D = channels
//           only, and an i32 output cannot carry a float scale anyway.
//   e4m3 -> D f32: raw accumulators by default (the same epilogue applies s_x[m]*s_w[n]). With
//           PlanOptions::alpha_vector the library multiplies channel j by alpha[j] (the per-channel
//           weight scale) and the epilogue applies only s_x[m].
//   bf16 -> D bf16, f16 -> D f16: direct, no scales (alpha_vector optional as for e4m3).
//
// Padding (gemm_layout; the same rules for both backends so X and D buffers are interchangeable):
//   m_rows = m rounded up to 16       cuSPARSELt's dense operand needs cols (= m) to be a multiple
//                                     of 16 bytes' worth of 8-bit elements; we use 16 for every type.
//   n_cols = n rounded up to 32 (8-bit inputs) / 16 (16-bit inputs): the structured matrix needs rows
//            and cols that are multiples of 32 bytes' worth of elements. W is given as [n, k] and
//            the plan pads it with zero rows internally; D has n_cols columns (ldd = n_cols).
//   k      must already be a multiple of 32 (8-bit) / 16 (16-bit) for sparse plans and of
//          16 / 8 for dense ones; anything else is Error(kInvalidArgument). Pad k with zero columns
//          (slide_k() does: k' is always a multiple of 32).
// The caller allocates X as [m_rows, k] and D as [m_rows, n_cols]; rows m..m_rows of X must be
// finite (quant_lift writes zeros there). Only D[0:m, 0:n] is meaningful; with zero X padding rows
// the padding of D is zero as well.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slidesparse/types.hpp"

namespace slidesparse {

enum class GemmPrecision { kI8, kE4M3, kBF16, kF16 };
const char* gemm_precision_name(GemmPrecision p) noexcept;  // "i8", "e4m3", "bf16", "f16"
std::optional<GemmPrecision> gemm_precision_from_name(std::string_view s) noexcept;
DType gemm_input_dtype(GemmPrecision p) noexcept;   // kI8, kE4M3, kBF16, kF16
DType gemm_output_dtype(GemmPrecision p) noexcept;  // kI32, kF32, kBF16, kF16

struct GemmProblem {
  int64_t m = 0, n = 0, k = 0;  // k: reduction length of this GEMM (K, or K' for a slid weight)
  GemmPrecision precision = GemmPrecision::kBF16;
  bool sparse = false;  // W is 2:4 along k and runs on cuSPARSELt
};

// Buffer shapes a plan expects (see the padding rules above).
struct GemmLayout {
  int64_t m_rows = 0;  // rows of X and D
  int64_t n_cols = 0;  // columns of D (its row stride) and rows of the padded weight
  int64_t k = 0;       // row stride of X and W
  DType x_dtype = DType::kBF16, d_dtype = DType::kBF16;
  size_t x_bytes() const noexcept { return size_t(m_rows) * size_t(k) * dtype_size(x_dtype); }
  size_t w_bytes(int64_t n) const noexcept { return size_t(n) * size_t(k) * dtype_size(x_dtype); }
  size_t d_bytes() const noexcept { return size_t(m_rows) * size_t(n_cols) * dtype_size(d_dtype); }
};
inline constexpr int64_t kGemmMAlign = 16;
// Throws Error(kInvalidArgument) for m, n, k < 1 or a misaligned k.
GemmLayout gemm_layout(const GemmProblem& p);

class PlanCache;  // plan_cache.hpp

struct PlanOptions {
  // Pick the algorithm by measuring (in prepare_weight, never under graph capture):
  //   sparse: cusparseLtMatmulSearch (algorithm id + split-k) when n >= segment_k_min_n; below
  //           that our own grid over algorithm ids x split-k in {1,2,4,8}, so segment-k
  //           (split_k = -1, reported to hang for small n) is never tried;
  //   dense:  cublasLtMatmulAlgoGetHeuristic top dense_top_n, each timed, fastest kept.
  // false: the library default (cuSPARSELt) / heuristic top-1 (cuBLASLt), or the cache's choice.
  bool search = true;
  int search_iters = 10;  // timed launches per candidate (CUSPARSELT_MATMUL_SEARCH_ITERATIONS)
  int dense_top_n = 8;
  int segment_k_min_n = 400;
  // The library applies alpha[j] to output channel j (rows of D): e4m3/bf16/f16 only. run() then
  // needs alpha_vec_dev with layout().n_cols floats; without it, alpha_vec_dev must be null.
  bool alpha_vector = false;
  // f16 sparse is refused on sm_90 (cuSPARSELt 0.8.x: reported illegal instruction for m >= 128,
  // which kills the CUDA context). Set to try it anyway (tests do, in a child process).
  bool allow_f16_sparse_sm90 = false;
  // Consulted before searching and updated after; may be shared by many plans (thread-safe).
  PlanCache* cache = nullptr;
};

// Offline costs and the choice made, for benchmarks and logs.
struct PlanStats {
  double compress_ms = 0;  // cuSPARSELt compression of W (0 for dense)
  double search_ms = 0;    // algorithm selection (0 when taken from the cache or not searched)
  double prepare_ms = 0;   // the whole prepare_weight, host wall clock
  double measured_us = 0;  // median time of the chosen algorithm during selection (0 if unknown)
  bool from_cache = false;
  std::string source;      // "default", "heuristic", "search", "grid", "timed-heuristics", "cache"
};

class GemmPlan {
 public:
  virtual ~GemmPlan();
  GemmPlan() = default;
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;

  // Offline, once per weight: w_dev is W[n, k] row-major (n rows, NOT padded), already 2:4 along k
  // when sparse (checked on the device: Error(kInvalidData) if not). Sparse: compress; dense: copy
  // into the plan. Then algorithm selection and the workspace. Synchronizes `stream`; w_dev may be
  // freed afterwards. Never call it while `stream` is capturing a graph.
  virtual void prepare_weight(const void* w_dev, cudaStream_t stream) = 0;

  // Replaces the weight of a prepared plan in place, keeping its algorithm choice: w_dev is
  // W[layout().n_cols, k] row-major with zero rows n..n_cols (the padded rows every backend uses
  // internally), already 2:4 along k when sparse. That is NOT checked here (a check needs a
  // synchronization): the caller checks first (SlideLinear::update_weight_device does).
  // Sparse: compress into the plan's existing compressed buffer; dense: copy into the plan's
  // weight. Allocates nothing, searches nothing, never synchronizes; w_dev is read in stream order
  // and may be reused once the stream passes this point. The buffers stay where they are, so
  // graphs recorded by bind() stay valid and run the new weight. The base class throws kUnsupported.
  virtual void update_weight(const void* w_dev, cudaStream_t stream);

  // D = X . W^T on `stream`: x_dev is [m_rows, k], d_dev is [m_rows, n_cols] (layout()).
  // Allocates nothing, searches nothing, never synchronizes: safe inside CUDA graph capture.
  // When (x_dev, d_dev, alpha_vec_dev) are a set recorded by bind() and `stream` is not capturing,
  // it launches that recorded graph (one cudaGraphLaunch) instead of calling the library: the same
  // kernels on the same pointers, so the same bits, for a fraction of the host time. Otherwise it
  // is run_direct().
  void run(const void* x_dev, void* d_dev, const float* alpha_vec_dev, cudaStream_t stream);

  // The backend's own launch (the library call or the CUTLASS kernel), what run() does unbound.
  virtual void run_direct(const void* x_dev, void* d_dev, const float* alpha_vec_dev,
                          cudaStream_t stream) = 0;

  // Records run_direct(x_dev, d_dev, alpha_vec_dev) as a CUDA graph (captured on a private stream,
  // nothing runs), so that later run() calls with exactly these pointers launch it. For buffers a
  // caller keeps for many calls (SlideLinear's buckets bind their own X' and D). At most
  // kMaxBindings sets per plan: binding one more drops the oldest. Rebinding a set already bound
  // does nothing. Offline, like prepare_weight (which drops every binding): not while `stream`
  // captures (kInvalidArgument), not concurrently with run() on this plan.
  static constexpr int kMaxBindings = 4;
  void bind(const void* x_dev, void* d_dev, const float* alpha_vec_dev, cudaStream_t stream);
  void unbind() noexcept;  // drops every binding
  int bindings() const noexcept { return int(bindings_.size()); }

  // Fused scale epilogue (sm90 plans only; fuses_epilogue() says so): one launch computes
  //   out.y[r, j] = bf16_rn(((f32(acc[r, j]) * s_x[r]) * s_w[j]) + bias[j])   r < out.m, j < n
  // in IEEE f32, each operation rounded on its own, in scale_epilogue's order (bit-identical to
  // run() + scale_epilogue). A null s_x / s_w / bias leaves its operation out. X as for run().
  // Plans without it throw Error(kUnsupported). Allocates nothing, never synchronizes.
  struct FusedOutput {
    const float* s_x = nullptr;   // [out.m] per-token scales, or null
    const float* s_w = nullptr;   // [n] per-channel scales, or null
    const float* bias = nullptr;  // [n], or null
    void* y = nullptr;            // bf16 Y[out.m, ldy] (row-major), device
    int64_t ldy = 0;              // >= n, a multiple of 8
    int64_t m = 0;                // rows, 1..layout().m_rows
  };
  virtual bool fuses_epilogue() const noexcept { return false; }
  virtual void run_fused(const void* x_dev, const FusedOutput& out, cudaStream_t stream);

  virtual size_t workspace_bytes() const = 0;
  virtual std::string describe() const = 0;  // backend, precision, shape, algorithm, split-k
  virtual const char* backend_name() const noexcept = 0;  // "cusparselt" / "cublaslt" / "sm90"

  const GemmProblem& problem() const noexcept { return problem_; }
  const GemmLayout& layout() const noexcept { return layout_; }
  const PlanStats& stats() const noexcept { return stats_; }

 protected:
  GemmProblem problem_;
  GemmLayout layout_;
  PlanStats stats_;

 private:
  struct Binding {
    const void* x = nullptr;
    void* d = nullptr;
    const float* alpha = nullptr;
    cudaGraphExec_t exec = nullptr;
  };
  std::vector<Binding> bindings_;
};

// Both throw Error: kInvalidArgument (shape/alignment), kUnsupported (precision, GPU, library,
// or cuSPARSELt not compiled in; the message says what is supported), kInternal (library failure).
std::unique_ptr<GemmPlan> make_cusparselt_plan(const GemmProblem& p, const PlanOptions& o = {});
std::unique_ptr<GemmPlan> make_cublaslt_plan(const GemmProblem& p, const PlanOptions& o = {});
// problem.sparse ? cuSPARSELt : cuBLASLt.
std::unique_ptr<GemmPlan> make_gemm_plan(const GemmProblem& p, const PlanOptions& o = {});

// Our own Hopper GEMMs (src/backends/sm90: CUTLASS 3.x, TMA, warp-specialized persistent kernels,
// the 2:4 operand on wgmma.sp when problem.sparse) with the scale epilogue fused (run_fused).
// Same padding rules and X layout as the other backends; run() writes D = bf16(acc) as a bf16
// [m_rows, n_cols] matrix (alpha_vec_dev, with PlanOptions::alpha_vector, scales channels), so
// layout().d_dtype is kBF16 for every precision. Precisions: the kernels compiled in
// (sm90_kernels_for). prepare_weight checks 2:4 (kInvalidData "not 2:4"), compresses on the GPU
// and, with PlanOptions::search, times every compiled configuration and keeps the fastest
// (otherwise the measured default table in sm90_backend.cpp). Throws kUnsupported without
// CUTLASS in the build, on a GPU other than sm_90, or for a precision without kernels.
std::unique_ptr<GemmPlan> make_sm90_plan(const GemmProblem& p, const PlanOptions& o = {});
// Names of the compiled sm90 kernels for a precision / sparsity (empty without CUTLASS).
std::vector<std::string> sm90_kernels_for(GemmPrecision p, bool sparse);
// Forces one kernel by name (benchmarks' configuration sweeps); empty = choose as above.
std::unique_ptr<GemmPlan> make_sm90_plan(const GemmProblem& p, const PlanOptions& o, const std::string& kernel);
bool sm90_compiled() noexcept;        // SLIDESPARSE_HAVE_SM90 (CUTLASS headers found at configure)
bool sm90_available() noexcept;       // compiled, and the current device is sm_90

bool cusparselt_compiled() noexcept;  // SLIDESPARSE_HAVE_CUSPARSELT

// What the plans run on; for logs, benchmark records and the plan cache's key.
struct BackendEnv {
  std::string gpu_name;
  int sm = 0;  // major*10 + minor
  int sm_count = 0;
  int clock_khz = 0, mem_clock_khz = 0;  // max clocks as reported by the driver
  size_t l2_bytes = 0;
  int driver_version = 0, runtime_version = 0;  // cudaDriverGetVersion / cudaRuntimeGetVersion
  std::string cusparselt_version;  // "0.8.0", or "none" when not compiled in
  std::string cublaslt_version;    // cublasLtGetVersion(), e.g. "130100"
  std::string key() const;         // identifies the setting a cached algorithm choice is valid for
};
BackendEnv backend_env();  // current device; throws Error(kUnsupported) without a device

}  // namespace slidesparse
