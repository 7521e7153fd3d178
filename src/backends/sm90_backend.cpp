// slidesparse backends: our own Hopper GEMMs (src/backends/sm90, CUTLASS 3.x instantiations) behind
// the GemmPlan interface, with the scale epilogue fused into the kernel (run_fused).
//
//   constructor:    shape / precision / device checks, the candidate kernels (compiled for this
//                   precision and sparsity, and able to run the shape: CUTLASS can_implement)
//   prepare_weight: W padded to n_cols rows; sparse: 2:4 check + compression on the GPU
//                   (sm90_compress.cu; Error(kInvalidData) "not 2:4" naming the element);
//                   dense: a copy. Then the kernel: timed candidates (PlanOptions::search) or the
//                   default table below; the workspace.
//   run / run_fused: one kernel launch (plus CUTLASS's host-side TMA descriptor setup).
#include "backends/backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <set>

#include "backends/check.hpp"
#include "backends/detail.hpp"

#if SLIDESPARSE_HAVE_SM90
#include "backends/sm90/sm90_kernels.hpp"
#endif

namespace slidesparse {

bool sm90_compiled() noexcept { return SLIDESPARSE_HAVE_SM90 != 0; }

#if SLIDESPARSE_HAVE_SM90

namespace {

constexpr const char* kBackend = "sm90";

bool device_is_sm90() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    return false;
  }
  return detail::device_sm(detail::current_device()) == 90;
}

std::vector<const sm90::Kernel*> compiled_for(GemmPrecision p, bool sparse) {
  std::vector<const sm90::Kernel*> out;
  for (const sm90::Kernel* k : sm90::kernels())
    if (k->precision == p && k->sparse == sparse) out.push_back(k);
  return out;
}

// Kernel preparation (the dynamic shared memory attribute) once per kernel and device.
void prepare_kernel(const sm90::Kernel& k) {
  static std::mutex mu;
  static std::set<std::pair<const sm90::Kernel*, int>> done;
  const int dev = detail::current_device();
  std::lock_guard<std::mutex> lock(mu);
  if (done.count({&k, dev})) return;
  SLIDESPARSE_CUDA_CHECK(k.prepare());
  done.insert({&k, dev});
}

// Without a search: the configuration measured fastest for the shape class in the sweep of
// bench/results/kernel_sm90_h100.jsonl (every compiled configuration on the Qwen2.5-7B layers at
// m = 4096 and 8192, 2:4 and 6:8; docs/BACKENDS.md has the table), and the ping-pong 128x128 tile
// below m = 1024 (the fastest in the SlideLinear bucket searches at n = 1000). Within 6% of the
// best on every swept shape. nullptr: the first compiled candidate.
const char* default_kernel(GemmPrecision p, bool sparse, int64_t m, int64_t n) {
  if (!sparse) return nullptr;  // one dense configuration per precision
  if (p == GemmPrecision::kE4M3) {
    if (m < 1024) return "sm90_sp_e4m3_128x128x128_1x1_pingfa";
    if (n >= 16384) return "sm90_sp_e4m3_128x256x128_1x2_coopfa";
    return "sm90_sp_e4m3_256x128x128_1x1_coopfa";
  }
  if (p == GemmPrecision::kI8) {
    if (m < 1024) return "sm90_sp_i8_128x128x128_1x1_ping";
    if (n >= 16384) return "sm90_sp_i8_256x128x128_2x1_coop";
    if (m >= 8192 && n <= 4096) return "sm90_sp_i8_128x256x128_1x1_coop";
    return "sm90_sp_i8_256x128x128_1x1_coop";
  }
  return nullptr;
}

class Sm90Plan final : public GemmPlan {
 public:
  Sm90Plan(const GemmProblem& p, const PlanOptions& o, const std::string& forced) : opts_(o) {
    problem_ = p;
    SLIDESPARSE_BACKEND_REQUIRE(device_is_sm90(), Status::kUnsupported, kBackend,
                                "the sm90 backend runs on sm_90 GPUs (H100/H200) only; this device is not one");
    GemmProblem lp = p;
    layout_ = gemm_layout(lp);
    layout_.d_dtype = DType::kBF16;
    SLIDESPARSE_BACKEND_REQUIRE(p.m <= std::numeric_limits<int>::max() && p.n <= (1 << 30) && p.k <= (1 << 30),
                                Status::kInvalidArgument, kBackend, "shape m={} n={} k={} exceeds 32-bit indexing",
                                p.m, p.n, p.k);
    candidates_ = compiled_for(p.precision, p.sparse);
    SLIDESPARSE_BACKEND_REQUIRE(!candidates_.empty(), Status::kUnsupported, kBackend,
                                "no {} {} kernel is compiled into this build (sm90 kernels: {})",
                                p.sparse ? "sparse" : "dense", gemm_precision_name(p.precision), compiled_list());
    if (!forced.empty()) {
      auto it = std::find_if(candidates_.begin(), candidates_.end(),
                             [&](const sm90::Kernel* k) { return forced == k->name; });
      SLIDESPARSE_BACKEND_REQUIRE(it != candidates_.end(), Status::kInvalidArgument, kBackend,
                                  "kernel '{}' is not a compiled {} {} kernel (have: {})", forced,
                                  p.sparse ? "sparse" : "dense", gemm_precision_name(p.precision), compiled_list());
      candidates_ = {*it};
    }
    // Keep the candidates that can run the full padded problem (run()) and therefore any m below.
    const sm90::Args a = args_for(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, layout_.n_cols,
                                  int(layout_.m_rows), int(layout_.n_cols));
    std::string why;
    std::vector<const sm90::Kernel*> ok;
    for (const sm90::Kernel* k : candidates_) {
      const char* r = k->check(a);
      if (r == nullptr) ok.push_back(k);
      else why += fmt::format(" {}: {};", k->name, r);
    }
    SLIDESPARSE_BACKEND_REQUIRE(!ok.empty(), Status::kInvalidArgument, kBackend,
                                "no sm90 kernel can run m={} n={} k={}:{}", p.m, p.n, p.k, why);
    candidates_ = ok;
    if (p.sparse) clayout_ = sm90::compressed_layout(p.precision, layout_.n_cols, p.k);
  }

  void prepare_weight(const void* w_dev, cudaStream_t stream) override {
    unbind();  // recorded graphs hold the old weight, workspace and algorithm
    SLIDESPARSE_BACKEND_REQUIRE(!detail::stream_is_capturing(stream), Status::kInvalidArgument, kBackend,
                                "prepare_weight() on a stream that is capturing a CUDA graph");
    SLIDESPARSE_BACKEND_REQUIRE(w_dev != nullptr, Status::kInvalidArgument, kBackend, "prepare_weight: W is null");
    const auto t0 = std::chrono::steady_clock::now();
    prepared_ = false;
    const size_t es = dtype_size(layout_.x_dtype);
    const size_t row_bytes = size_t(layout_.k) * es;
    // W padded with zero rows to n_cols (both kernels then compute full D columns).
    detail::DeviceMemory wpad(size_t(layout_.n_cols) * row_bytes);
    detail::copy_padded_rows(wpad.get(), w_dev, problem_.n, layout_.n_cols, row_bytes, stream);
    if (problem_.sparse) {
      const auto tc = std::chrono::steady_clock::now();
      w_.reset(clayout_.value_bytes);
      meta_.reset(clayout_.meta_bytes);
      detail::DeviceMemory bad(sizeof(int64_t));
      int64_t first_bad = -1;
      SLIDESPARSE_CUDA_CHECK(sm90::compress_gpu(problem_.precision, wpad.get(), layout_.n_cols, layout_.k, w_.get(),
                                                meta_.get(), static_cast<int64_t*>(bad.get()), &first_bad, stream));
      SLIDESPARSE_BACKEND_REQUIRE(first_bad < 0, Status::kInvalidData, kBackend,
                                  "W[{}, {}] ({}) is not 2:4 along k: the group of 4 starting there holds more than "
                                  "two nonzeros (-0.0 counts as zero)",
                                  first_bad / layout_.k, first_bad % layout_.k, gemm_precision_name(problem_.precision));
      stats_.compress_ms = detail::ms_since(tc);
      compress_ws_.reset(sm90::compress_workspace_bytes(problem_.precision, layout_.n_cols, layout_.k));
    } else {
      w_ = std::move(wpad);
      meta_.reset(0);
    }
    for (const sm90::Kernel* k : candidates_) prepare_kernel(*k);
    choose(stream);
    const sm90::Args a = args_for(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, layout_.n_cols,
                                  int(layout_.m_rows), int(layout_.n_cols));
    workspace_bytes_ = kernel_->workspace_bytes(a);
    workspace_.reset(workspace_bytes_);
    SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
    prepared_ = true;
    stats_.prepare_ms = detail::ms_since(t0);
  }

  // Sparse: the compressor alone into the existing values / metadata (workspace kept from
  // prepare_weight); dense: a copy into the padded weight.
  void update_weight(const void* w_dev, cudaStream_t stream) override {
    SLIDESPARSE_BACKEND_REQUIRE(prepared_, Status::kInvalidArgument, kBackend, "update_weight() before prepare_weight()");
    SLIDESPARSE_BACKEND_REQUIRE(w_dev != nullptr, Status::kInvalidArgument, kBackend, "update_weight: W is null");
    if (problem_.sparse) {
      SLIDESPARSE_CUDA_CHECK(sm90::compress_gpu_async(problem_.precision, w_dev, layout_.n_cols, layout_.k, w_.get(),
                                                      meta_.get(), compress_ws_.get(), stream));
    } else {
      SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(w_.get(), w_dev, layout_.w_bytes(layout_.n_cols),
                                             cudaMemcpyDeviceToDevice, stream));
    }
  }

  void run_direct(const void* x_dev, void* d_dev, const float* alpha_vec_dev, cudaStream_t stream) override {
    detail::check_run_args(kBackend, prepared_, opts_.alpha_vector, alpha_vec_dev);
    launch(args_for(x_dev, nullptr, alpha_vec_dev, nullptr, d_dev, nullptr, layout_.n_cols, int(layout_.m_rows),
                    int(layout_.n_cols)),
           stream);
  }

  bool fuses_epilogue() const noexcept override { return true; }

  void run_fused(const void* x_dev, const FusedOutput& o, cudaStream_t stream) override {
    SLIDESPARSE_BACKEND_REQUIRE(prepared_, Status::kInvalidArgument, kBackend, "run_fused() before prepare_weight()");
    SLIDESPARSE_BACKEND_REQUIRE(o.m >= 1 && o.m <= layout_.m_rows, Status::kInvalidArgument, kBackend,
                                "run_fused: m = {} outside 1..{} (the plan's m_rows)", o.m, layout_.m_rows);
    SLIDESPARSE_BACKEND_REQUIRE(o.ldy >= problem_.n && o.ldy % 8 == 0, Status::kInvalidArgument, kBackend,
                                "run_fused: ldy = {} must be >= n = {} and a multiple of 8", o.ldy, problem_.n);
    SLIDESPARSE_BACKEND_REQUIRE(x_dev != nullptr && o.y != nullptr, Status::kInvalidArgument, kBackend,
                                "run_fused: x and y must not be null");
    launch(args_for(x_dev, o.s_x, o.s_w, o.bias, o.y, nullptr, o.ldy, int(o.m), int(problem_.n)), stream);
  }

  size_t workspace_bytes() const override { return workspace_bytes_; }
  std::string describe() const override {
    return fmt::format("sm90 {} {} m={} n={} k={} kernel={} ({}x{}x{} cluster {}x{} {}) source={}{}",
                       problem_.sparse ? "sparse" : "dense", gemm_precision_name(problem_.precision), problem_.m,
                       problem_.n, problem_.k, kernel_ ? kernel_->name : "?", kernel_ ? kernel_->tile_m : 0,
                       kernel_ ? kernel_->tile_n : 0, kernel_ ? kernel_->tile_k : 0, kernel_ ? kernel_->cluster_m : 0,
                       kernel_ ? kernel_->cluster_n : 0, kernel_ ? kernel_->schedule : "", stats_.source,
                       stats_.measured_us > 0 ? fmt::format(" {:.1f}us", stats_.measured_us) : std::string());
  }
  const char* backend_name() const noexcept override { return kBackend; }
  const char* kernel_name() const noexcept { return kernel_ ? kernel_->name : ""; }

 private:
  static std::string compiled_list() {
    std::string s;
    for (const sm90::Kernel* k : sm90::kernels()) s += (s.empty() ? "" : ", ") + std::string(k->name);
    return s.empty() ? "none" : s;
  }

  sm90::Args args_for(const void* x, const float* s_x, const float* s_w, const float* bias, void* y, const void*,
                      int64_t ldy, int m, int n) const {
    sm90::Args a;
    a.m = m;
    a.n = n;
    a.k = int(layout_.k);
    a.w = w_.get();
    a.meta = problem_.sparse ? meta_.get() : nullptr;
    a.x = x;
    a.s_x = s_x;
    a.s_w = s_w;
    a.bias = bias;
    a.y = y;
    a.ldy = ldy;
    a.sm_count = sm_count();
    return a;
  }

  static int sm_count() {
    static const int n = [] {
      int v = 0;
      cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, detail::current_device());
      return v;
    }();
    return n;
  }

  void launch(const sm90::Args& a, cudaStream_t stream) const {
    SLIDESPARSE_CUDA_CHECK(kernel_->run(a, workspace_.get(), stream));
  }

  void choose(cudaStream_t stream) {
    kernel_ = candidates_.front();
    stats_.source = "default";
    if (const char* name = default_kernel(problem_.precision, problem_.sparse, problem_.m, problem_.n)) {
      for (const sm90::Kernel* k : candidates_)
        if (name == std::string(k->name)) {
          kernel_ = k;
          stats_.source = "table";
        }
    }
    if (!opts_.search || candidates_.size() == 1) return;
    const auto ts = std::chrono::steady_clock::now();
    detail::DeviceMemory x(layout_.x_bytes()), y(size_t(layout_.m_rows) * size_t(layout_.n_cols) * 2);
    detail::fill_random_rows(x.get(), layout_.m_rows, layout_.k, layout_.x_dtype, stream);
    double best = std::numeric_limits<double>::infinity();
    for (const sm90::Kernel* k : candidates_) {
      const sm90::Args a = args_for(x.get(), nullptr, nullptr, nullptr, y.get(), nullptr, layout_.n_cols,
                                    int(problem_.m), int(problem_.n));
      detail::DeviceMemory ws(k->workspace_bytes(a));
      const double us = detail::time_launches_us([&] { SLIDESPARSE_CUDA_CHECK(k->run(a, ws.get(), stream)); }, 2,
                                                 opts_.search_iters, stream);
      if (us < best) {
        best = us;
        kernel_ = k;
      }
    }
    stats_.measured_us = best;
    stats_.source = "search";
    stats_.search_ms = detail::ms_since(ts);
  }

  PlanOptions opts_;
  std::vector<const sm90::Kernel*> candidates_;
  const sm90::Kernel* kernel_ = nullptr;
  sm90::CompressedLayout clayout_;
  detail::DeviceMemory w_, meta_, workspace_, compress_ws_;
  size_t workspace_bytes_ = 0;
  bool prepared_ = false;
};

}  // namespace

bool sm90_available() noexcept {
  try {
    return !sm90::kernels().empty() && device_is_sm90();
  } catch (...) {
    return false;
  }
}

std::vector<std::string> sm90_kernels_for(GemmPrecision p, bool sparse) {
  std::vector<std::string> out;
  for (const sm90::Kernel* k : compiled_for(p, sparse)) out.emplace_back(k->name);
  return out;
}

std::unique_ptr<GemmPlan> make_sm90_plan(const GemmProblem& p, const PlanOptions& o, const std::string& kernel) {
  return std::make_unique<Sm90Plan>(p, o, kernel);
}

#else  // !SLIDESPARSE_HAVE_SM90

bool sm90_available() noexcept { return false; }
std::vector<std::string> sm90_kernels_for(GemmPrecision, bool) { return {}; }
std::unique_ptr<GemmPlan> make_sm90_plan(const GemmProblem&, const PlanOptions&, const std::string&) {
  throw Error(Status::kUnsupported,
              "this build has no sm90 backend: CUTLASS headers were not found at configure time (run "
              "scripts/fetch_cutlass.sh and reconfigure with CUDA enabled)",
              __FILE__, __LINE__, "sm90", "make_sm90_plan");
}

#endif

std::unique_ptr<GemmPlan> make_sm90_plan(const GemmProblem& p, const PlanOptions& o) {
  return make_sm90_plan(p, o, std::string());
}

}  // namespace slidesparse
