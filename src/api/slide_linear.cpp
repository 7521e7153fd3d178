// slidesparse api: SlideLinear (include/slidesparse/slide_linear.hpp). Validates arguments once,
// owns the device weights and the per-m-bucket GEMM plans and buffers, and launches
// quant_lift -> GEMM plan -> scale_epilogue on the caller's stream.
//
// Buckets: one slot per power of two from 16 to 65536 rows and per path (sparse, dense). A slot is
// filled once (plan + algorithm choice + buffers, which synchronizes), under a mutex, and never
// changed afterwards; forward on a filled slot only enqueues three launches. X' is given m_pad = m:
// the rows of X' past m keep what earlier calls (or the zero fill at creation) left there, always
// finite, and the GEMM rows they produce are never read (the epilogue writes rows < m only).
#include "slidesparse/slide_linear.hpp"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "backends/backend.hpp"
#include "backends/check.hpp"
#include "backends/detail.hpp"
#include "kernels/epilogue.cuh"
#include "kernels/l2_scrub.cuh"
#include "kernels/nm_mask.cuh"
#include "kernels/quant_lift.cuh"
#include "kernels/weight_prep.cuh"
#include "slidesparse/error.hpp"
#include "slidesparse/prune.hpp"
#include "slidesparse/quant.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/types.hpp"

#define SLIDESPARSE_API_REQUIRE(cond, status, ...) \
  SLIDESPARSE_BACKEND_REQUIRE(cond, status, "slide_linear", __VA_ARGS__)

namespace slidesparse {

const char* linear_precision_name(LinearPrecision p) noexcept {
  switch (p) {
    case LinearPrecision::kI8: return "i8";
    case LinearPrecision::kE4M3: return "e4m3";
    case LinearPrecision::kBF16: return "bf16";
  }
  return "?";
}

const char* linear_backend_name(LinearBackend b) noexcept {
  switch (b) {
    case LinearBackend::kAuto: return "auto";
    case LinearBackend::kLibrary: return "library";
    case LinearBackend::kSm90: return "sm90";
  }
  return "?";
}

namespace {

constexpr int kBucketSlots = 13;       // 16, 32, ..., 65536 rows
constexpr int64_t kDenseKAlign = 16;   // cuBLASLt 8-bit operands: k % 16 == 0 (16-bit: 8)
// Rows of the layer's weight buffers: n rounded up to the largest row padding any backend uses
// (gemm_layout's n_cols: 32 for 8-bit inputs, 16 for 16-bit ones), the padding rows zero, so that
// GemmPlan::update_weight can read its n_cols rows straight from them.
constexpr int64_t kWeightRowAlign = 32;
constexpr int64_t kNever = kCrossoverNever;
// Crossover probes (kCrossoverProbeMs, crossover.hpp): each creates both buckets, then times
// interleaved pairs: enough to fill kProbeTargetUs of GPU time (the power-capped clock settles over
// tens of milliseconds), at least kProbeMinPairs, at most kProbeMaxPairs. kProbeWarmup and
// kProbeIters are also time_plan's (the backend choice).
constexpr int kProbeWarmup = 2;
constexpr int kProbeIters = 10;
constexpr int kProbeMinPairs = 15;
constexpr int kProbeMaxPairs = 400;
constexpr double kProbeTargetUs = 100000;

static_assert((SlideLinear::kMinBucketRows << (kBucketSlots - 1)) == SlideLinear::kMaxBucketRows);

GemmPrecision gemm_precision_of(LinearPrecision p) {
  switch (p) {
    case LinearPrecision::kI8: return GemmPrecision::kI8;
    case LinearPrecision::kE4M3: return GemmPrecision::kE4M3;
    case LinearPrecision::kBF16: return GemmPrecision::kBF16;
  }
  return GemmPrecision::kBF16;
}

int bucket_slot(int64_t rows) {
  int s = 0;
  while ((SlideLinear::kMinBucketRows << s) < rows) ++s;
  return s;
}

int host_threads() { return std::max(1, int(std::thread::hardware_concurrency())); }

class OwnedStream {
 public:
  OwnedStream() { SLIDESPARSE_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~OwnedStream() { cudaStreamDestroy(s_); }
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  cudaStream_t get() const noexcept { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

void upload(detail::DeviceMemory& dst, const void* src, size_t bytes) {
  dst.reset(bytes);
  if (bytes > 0) SLIDESPARSE_CUDA_CHECK(cudaMemcpy(dst.get(), src, bytes, cudaMemcpyHostToDevice));
}

}  // namespace

struct SlideLinear::Impl {
  struct Bucket {
    int64_t rows = 0;
    bool dense = false;
    std::unique_ptr<GemmPlan> plan;
    std::string choice;          // how the backend was chosen (kAuto: both timed)
    detail::DeviceMemory xq;     // X' [rows, k_gemm]: quantized (and lifted on the sparse path)
    detail::DeviceMemory scale;  // [rows] per-token scales (i8 / e4m3)
    detail::DeviceMemory d;      // GEMM output [rows, n_cols]
  };
  using Slots = std::array<std::unique_ptr<Bucket>, kBucketSlots>;

  SlideLinearOptions opts;
  int64_t n = 0, k = 0, k_sparse = 0, k_dense = 0;
  GemmPrecision gemm_precision = GemmPrecision::kI8;
  DType q_dtype = DType::kI8;  // X' elements: i8, e4m3, or bf16 (lift only)
  bool quantized = true;
  // W'[n_pad, k_sparse], W[n_pad, k_dense] (rows n.. zero), [n], [n]; the status block of the
  // weight-preparation kernels (kernels/weight_prep.cuh) for deferred checks.
  detail::DeviceMemory w_sparse, w_dense, s_w, bias, prep_status;
  int64_t n_pad = 0;
  bool has_bias = false;
  int64_t dense_below = 0;
  std::vector<CrossoverProbe> probes;
  mutable std::mutex mu;  // guards filling the slots
  Slots sparse_slots, dense_slots;

  bool dense_for(int64_t m) const noexcept { return opts.dense_only || m < dense_below; }

  // Validates the options and the device, sets the shapes (no weights yet).
  static std::unique_ptr<Impl> create(int64_t n, int64_t k, const SlideLinearOptions& opts, const char* what);
  // Allocates the weight buffers (zero-filled: padding rows and columns stay zero for good) and
  // the status block.
  void allocate_weights();
  // q: the pruned, quantized W[n, k] (q_dtype elements), sw: [n] scales (i8 / e4m3), bias or null.
  // Uploads W (padded to k_dense) and, unless dense_only, W' slid from it; then finish().
  void upload_weights(const uint8_t* q, const float* sw, const float* bias_host);
  // Uploads the bias and resolves the crossover (measuring it for dense_below_m == -1).
  void finish(const float* bias_host);

  // ---- weight preparation on the device (kernels/weight_prep.cuh) ----
  // Dense W[n, k] (f32 / bf16 / f16, device) -> pruned (unless dense_only), quantized into w_dense
  // and s_w, slid into w_sparse; problems go to prep_status. Enqueues only.
  void prep_from_dense(const void* w, DType dtype, cudaStream_t stream);
  // Codes (q_dtype, [n, k]) + scales [n] (i8 / e4m3) -> w_dense, s_w, slid into w_sparse.
  void prep_from_codes(const void* codes, const float* scales, cudaStream_t stream);
  // w_dense -> w_sparse (slide_weight_device); problems go to `status`. Enqueues only.
  void slide_on_device(uint64_t* status, cudaStream_t stream);
  // Every existing bucket's plan takes the new weight (compress / copy; no allocation).
  void update_plans(cudaStream_t stream);
  // Runs scan_weight on the input (status reset first), synchronizes, throws the first problem.
  void check_input(const void* w, DType dtype, bool pattern, const float* scales, cudaStream_t stream,
                   const char* what);
  // Reads the status block (synchronizing `stream`), resets it, throws the first problem.
  void raise_status(cudaStream_t stream, const char* what);

  bool resolve_dense(LinearPath path, int64_t m) const {
    if (path == LinearPath::kAuto) return dense_for(m);
    SLIDESPARSE_API_REQUIRE(path == LinearPath::kDense || !opts.dense_only, Status::kInvalidArgument,
                            "LinearPath::kSparse on a dense_only layer (it has no sparse weight)");
    return path == LinearPath::kDense;
  }

  GemmProblem problem(bool dense, int64_t rows) const {
    return GemmProblem{rows, n, dense ? k_dense : k_sparse, gemm_precision, !dense};
  }

  // Scratch carve-up for forward_with_scratch: X', then the GEMM output, then the scales, each
  // 256-byte aligned, plus the slack the GEMM libraries may read past X' (detail.hpp).
  struct ScratchLayout {
    size_t xq = 0, d = 0, scale = 0, total = 0;
  };
  ScratchLayout scratch_layout(bool dense, int64_t rows) const {
    const GemmLayout l = gemm_layout(problem(dense, rows));
    auto align = [](size_t b) { return (b + 255) / 256 * 256; };
    ScratchLayout s;
    s.xq = 0;
    s.d = align(l.x_bytes());
    s.scale = s.d + align(l.d_bytes());
    s.total = s.scale + align(quantized ? size_t(l.m_rows) * sizeof(float) : 0) + detail::kDeviceAllocSlack;
    return s;
  }

  // The bucket that runs m rows (m <= kMaxBucketRows) on a path, created on first use; with
  // `buffers`, also its own X', scale and output buffers (forward without scratch).
  Bucket& bucket(bool dense, int64_t m, cudaStream_t stream, bool buffers = true) {
    const int64_t rows = bucket_rows(m);
    Slots& slots = dense ? dense_slots : sparse_slots;
    std::lock_guard<std::mutex> lock(mu);
    std::unique_ptr<Bucket>& slot = slots[size_t(bucket_slot(rows))];
    if (slot && (!buffers || slot->xq.get() != nullptr)) return *slot;
    SLIDESPARSE_API_REQUIRE(!detail::stream_is_capturing(stream), Status::kInvalidArgument,
                            "forward(m = {}) needs the {} bucket of {} rows{}, which does not exist yet, while "
                            "the stream captures a CUDA graph: creating a bucket chooses the GEMM algorithm "
                            "and synchronizes. Call warmup(max_m) before capturing",
                            m, dense ? "dense" : "sparse", rows, slot ? " (its buffers)" : "");
    if (slot) {  // the plan exists (made for forward_with_scratch): add the buffers
      allocate_buffers(*slot, stream);
      return *slot;
    }
    auto b = std::make_unique<Bucket>();
    b->rows = rows;
    b->dense = dense;
    const GemmProblem p = problem(dense, rows);
    PlanOptions po;
    po.search = opts.search;
    po.search_iters = opts.search_iters;
    po.cache = opts.plan_cache;
    const void* w = dense ? w_dense.get() : w_sparse.get();
    const bool sm90_kernel = sm90_available() && !sm90_kernels_for(gemm_precision, !dense).empty();
    const bool want_sm90 = opts.backend == LinearBackend::kSm90;
    SLIDESPARSE_API_REQUIRE(!want_sm90 || dense || sm90_kernel, Status::kUnsupported,
                            "backend sm90: {}", sm90_available() ? "no sparse kernel of this precision is compiled"
                                                                 : "this build or GPU has no sm90 kernels");
    const bool try_both = opts.backend == LinearBackend::kAuto && opts.search && sm90_kernel;
    std::unique_ptr<GemmPlan> lib, own;
    if (!want_sm90 || !sm90_kernel) {
      lib = make_gemm_plan(p, po);
      lib->prepare_weight(w, stream);
    }
    if ((want_sm90 && sm90_kernel) || try_both) {
      own = make_sm90_plan(p, po);
      own->prepare_weight(w, stream);
    }
    if (lib && own) {
      // Both engines on this bucket's rows, each with its epilogue: keep the faster.
      const double t_lib = time_plan(*lib, rows, stream);
      const double t_own = time_plan(*own, rows, stream);
      b->choice = fmt::format("auto: library {:.1f} us, sm90 {:.1f} us", t_lib, t_own);
      b->plan = t_own < t_lib ? std::move(own) : std::move(lib);
    } else {
      b->plan = lib ? std::move(lib) : std::move(own);
      b->choice = linear_backend_name(opts.backend);
    }
    if (buffers) allocate_buffers(*b, stream);
    slot = std::move(b);
    return *slot;
  }

  // GEMM + epilogue of `plan` on `rows` rows of zero X' (unit scales), median us.
  double time_plan(GemmPlan& plan, int64_t rows, cudaStream_t stream) const {
    const GemmLayout& l = plan.layout();
    detail::DeviceMemory xq(l.x_bytes()), d(plan.fuses_epilogue() ? 0 : l.d_bytes()),
        scale(quantized ? size_t(l.m_rows) * sizeof(float) : 0), y(size_t(rows) * size_t(n) * 2);
    SLIDESPARSE_CUDA_CHECK(cudaMemsetAsync(xq.get(), 0, l.x_bytes(), stream));
    if (quantized) {
      const std::vector<float> ones(size_t(l.m_rows), 1.0f);
      SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(scale.get(), ones.data(), ones.size() * sizeof(float),
                                             cudaMemcpyHostToDevice, stream));
      SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    const float* sc = quantized ? static_cast<const float*>(scale.get()) : nullptr;
    return detail::time_launches_us(
        [&] { run_gemm_epilogue(plan, xq.get(), sc, d.get(), rows, y.get(), stream, kStageGemm | kStageEpilogue); },
        kProbeWarmup, kProbeIters, stream);
  }

  void run_gemm_epilogue(GemmPlan& plan, const void* xq, const float* scale, void* d, int64_t m, void* y,
                         cudaStream_t stream, unsigned stages) const {
    const GemmLayout& l = plan.layout();
    const float* sw = quantized ? static_cast<const float*>(s_w.get()) : nullptr;
    const float* bs = has_bias ? static_cast<const float*>(bias.get()) : nullptr;
    if (plan.fuses_epilogue()) {
      if (stages & kStageGemm) {
        GemmPlan::FusedOutput o;
        o.s_x = scale;
        o.s_w = sw;
        o.bias = bs;
        o.y = y;
        o.ldy = n;
        o.m = m;
        plan.run_fused(xq, o, stream);
      }
      return;
    }
    if (stages & kStageGemm) plan.run(xq, d, nullptr, stream);
    if (stages & kStageEpilogue) {
      EpilogueParams e;
      e.acc = d;
      e.acc_dtype = l.d_dtype;
      e.ld_acc = l.n_cols;
      e.s_x = scale;
      e.s_w = sw;
      e.bias = bs;
      e.y = y;
      e.y_dtype = DType::kBF16;
      e.ldy = n;
      e.m = m;
      e.n = n;
      const char* why = epilogue_check(e);
      SLIDESPARSE_API_REQUIRE(why == nullptr, Status::kInvalidArgument, "forward: {}", why ? why : "");
      SLIDESPARSE_CUDA_CHECK(scale_epilogue(e, stream));
    }
  }

  void allocate_buffers(Bucket& b, cudaStream_t stream) const {
    const GemmLayout& l = b.plan->layout();
    b.xq.reset(l.x_bytes());
    b.d.reset(b.plan->fuses_epilogue() ? 0 : l.d_bytes());  // a fused plan writes Y directly
    if (quantized) b.scale.reset(size_t(l.m_rows) * sizeof(float));
    // Finite contents from the start: rows past m are computed by every GEMM.
    SLIDESPARSE_CUDA_CHECK(cudaMemsetAsync(b.xq.get(), 0, l.x_bytes(), stream));
    if (b.d.get() != nullptr) SLIDESPARSE_CUDA_CHECK(cudaMemsetAsync(b.d.get(), 0, l.d_bytes(), stream));
    SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
    bind_gemm(b, stream);
  }

  // The bucket's library GEMM on its own X' and D, recorded once (GemmPlan::bind); a fused sm90
  // plan writes the caller's Y, whose pointer changes from call to call, so it is not bound.
  void bind_gemm(Bucket& b, cudaStream_t stream) const {
    if (opts.bind_gemm_graphs && !b.plan->fuses_epilogue() && b.xq.get() != nullptr)
      b.plan->bind(b.xq.get(), b.d.get(), nullptr, stream);
  }

  void run(const Bucket& b, const void* x, int64_t m, void* y, cudaStream_t stream, unsigned stages) const {
    run(b, x, m, y, stream, stages, b.xq.get(), quantized ? static_cast<float*>(b.scale.get()) : nullptr,
        b.d.get(), m);
  }

  // xq, scale, d: the bucket's own buffers or pieces of a caller's scratch; m_pad: rows of X'
  // quant_lift writes (m for the bucket's own buffers, whose padding rows stay finite from their
  // zero fill; the bucket's rows for scratch, whose contents are unknown).
  void run(const Bucket& b, const void* x, int64_t m, void* y, cudaStream_t stream, unsigned stages, void* xq,
           float* scale, void* d, int64_t m_pad) const {
    const GemmLayout& l = b.plan->layout();
    if (stages & kStageQuant) {
      QuantLiftParams q;
      q.x = x;
      q.in_dtype = DType::kBF16;
      q.m = m;
      q.k = k;
      q.ldx = k;
      q.q = xq;
      q.out_dtype = q_dtype;
      q.m_pad = m_pad;
      q.k_out = l.k;
      q.ldq = l.k;
      q.scale = scale;
      q.pattern_n = b.dense ? 0 : opts.pattern.n();
      const char* why = quant_lift_check(q);
      SLIDESPARSE_API_REQUIRE(why == nullptr, Status::kInvalidArgument, "forward: {}", why ? why : "");
      SLIDESPARSE_CUDA_CHECK(quant_lift(q, stream));
    }
    run_gemm_epilogue(*b.plan, xq, scale, d, m, y, stream, stages);
  }

  // Both paths' full layer at each probe m (kCrossoverProbeMs), timed in interleaved pairs (the
  // order swapped every pair) with the L2 scrubbed before each call, as a layer inside a model
  // finds it: its weight and X in DRAM, nothing dirty to write back. The crossover is
  // crossover_from_probes (crossover.hpp). Buckets no m will use afterwards are freed.
  void measure_crossover(cudaStream_t stream) {
    const int64_t max_probe = kCrossoverProbeMs[std::size(kCrossoverProbeMs) - 1];
    detail::DeviceMemory x(size_t(max_probe * k) * 2), y(size_t(max_probe * n) * 2);
    detail::fill_random_rows(x.get(), max_probe, k, DType::kBF16, stream);
    // Scrub buffer: twice the L2 (at least 64 MiB), zero, so its xor is 0 and never 1.
    const size_t scrub_bytes = std::max<size_t>(2 * l2_cache_bytes(), size_t(64) << 20);
    detail::DeviceMemory scrub(scrub_bytes), sink(sizeof(uint32_t));
    SLIDESPARSE_CUDA_CHECK(cudaMemsetAsync(scrub.get(), 0, scrub_bytes, stream));
    auto* sink_word = static_cast<uint32_t*>(sink.get());
    for (int64_t pm : kCrossoverProbeMs) {
      const Bucket& bs = bucket(false, pm, stream);
      const Bucket& bd = bucket(true, pm, stream);
      auto call = [&](const Bucket& b) { run(b, x.get(), pm, y.get(), stream, kStageAll); };
      auto scrub_l2 = [&] { SLIDESPARSE_CUDA_CHECK(l2_scrub(scrub.get(), scrub_bytes, 1u, sink_word, stream)); };
      for (int i = 0; i < kProbeWarmup; ++i) {
        call(bs);
        call(bd);
      }
      // One pair (scrubs included) timed whole: the number of pairs to fill kProbeTargetUs.
      detail::Event e0, e1;
      SLIDESPARSE_CUDA_CHECK(cudaEventRecord(e0.get(), stream));
      scrub_l2();
      call(bs);
      scrub_l2();
      call(bd);
      SLIDESPARSE_CUDA_CHECK(cudaEventRecord(e1.get(), stream));
      SLIDESPARSE_CUDA_CHECK(cudaEventSynchronize(e1.get()));
      float pair_ms = 0;
      SLIDESPARSE_CUDA_CHECK(cudaEventElapsedTime(&pair_ms, e0.get(), e1.get()));
      const double want = pair_ms > 0 ? kProbeTargetUs / (double(pair_ms) * 1e3) : kProbeMinPairs;
      const int pairs = int(std::clamp(want, double(kProbeMinPairs), double(kProbeMaxPairs)));
      std::vector<detail::Event> ev(size_t(4 * pairs));
      for (int i = 0; i < pairs; ++i)
        for (int h = 0; h < 2; ++h) {
          const bool dense = (h == 0) == (i % 2 == 0);
          scrub_l2();
          const size_t e = size_t(4 * i + (dense ? 2 : 0));
          SLIDESPARSE_CUDA_CHECK(cudaEventRecord(ev[e].get(), stream));
          call(dense ? bd : bs);
          SLIDESPARSE_CUDA_CHECK(cudaEventRecord(ev[e + 1].get(), stream));
        }
      SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
      std::vector<double> ts, td, ratio;
      for (int i = 0; i < pairs; ++i) {
        float ms_s = 0, ms_d = 0;
        SLIDESPARSE_CUDA_CHECK(cudaEventElapsedTime(&ms_s, ev[size_t(4 * i)].get(), ev[size_t(4 * i + 1)].get()));
        SLIDESPARSE_CUDA_CHECK(cudaEventElapsedTime(&ms_d, ev[size_t(4 * i + 2)].get(), ev[size_t(4 * i + 3)].get()));
        ts.push_back(ms_s);
        td.push_back(ms_d);
        ratio.push_back(ms_s > 0 ? double(ms_d) / ms_s : 1.0);
      }
      CrossoverProbe pr;
      pr.m = pm;
      pr.pairs = pairs;
      pr.sparse_us = detail::median_of(std::move(ts)) * 1e3;
      pr.dense_us = detail::median_of(std::move(td)) * 1e3;
      pr.dense_over_sparse = detail::median_of(std::move(ratio));
      probes.push_back(pr);
    }
    dense_below = crossover_from_probes(probes);

    // Sparse serves m >= dense_below, dense m < dense_below.
    for (int s = 0; s < kBucketSlots; ++s) {
      const int64_t rows = kMinBucketRows << s;
      const bool sparse_used = dense_below != kNever && (dense_below == 0 || rows >= bucket_rows(dense_below));
      const bool dense_used = dense_below != 0 && (dense_below == kNever || rows <= bucket_rows(dense_below - 1));
      if (!sparse_used) sparse_slots[size_t(s)].reset();
      if (!dense_used) dense_slots[size_t(s)].reset();
    }
  }
};

SlideLinear::SlideLinear(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SlideLinear::SlideLinear(SlideLinear&&) noexcept = default;
SlideLinear& SlideLinear::operator=(SlideLinear&&) noexcept = default;
SlideLinear::~SlideLinear() = default;

int64_t SlideLinear::bucket_rows(int64_t m) noexcept {
  int64_t rows = kMinBucketRows;
  while (rows < m && rows < kMaxBucketRows) rows *= 2;
  return rows;
}

std::unique_ptr<SlideLinear::Impl> SlideLinear::Impl::create(int64_t n, int64_t k, const SlideLinearOptions& opts,
                                                              const char* what) {
  SLIDESPARSE_API_REQUIRE(n >= 1 && k >= 1, Status::kInvalidArgument,
                          "{}: W[n, k] needs n >= 1 and k >= 1 (got n = {}, k = {})", what, n, k);
  SLIDESPARSE_API_REQUIRE(opts.search_iters >= 1, Status::kInvalidArgument,
                          "search_iters = {}: at least one timed launch per candidate", opts.search_iters);
  SLIDESPARSE_API_REQUIRE(opts.dense_below_m >= -1, Status::kInvalidArgument,
                          "dense_below_m = {}: use -1 (measure), 0 (never dense) or a row count",
                          opts.dense_below_m);
  int devices = 0;
  const cudaError_t de = cudaGetDeviceCount(&devices);
  SLIDESPARSE_API_REQUIRE(de == cudaSuccess && devices > 0, Status::kUnsupported, "no CUDA device: {}",
                          de == cudaSuccess ? "0 devices" : cudaGetErrorString(de));
  SLIDESPARSE_API_REQUIRE(opts.dense_only || cusparselt_compiled(), Status::kUnsupported,
                          "this build has no cuSPARSELt, so sparse layers are unsupported (dense_only layers "
                          "work); run scripts/fetch_cusparselt.sh and rebuild");
  auto impl = std::make_unique<Impl>();
  Impl& I = *impl;
  I.opts = opts;
  I.n = n;
  I.k = k;
  I.gemm_precision = gemm_precision_of(opts.precision);
  I.q_dtype = gemm_input_dtype(I.gemm_precision);
  I.quantized = opts.precision != LinearPrecision::kBF16;
  I.k_dense = (k + kDenseKAlign - 1) / kDenseKAlign * kDenseKAlign;
  I.k_sparse = opts.dense_only ? 0 : slide_k(opts.pattern, k);
  return impl;
}

void SlideLinear::Impl::allocate_weights() {
  const size_t es = dtype_size(q_dtype);
  n_pad = (n + kWeightRowAlign - 1) / kWeightRowAlign * kWeightRowAlign;
  w_dense.reset(size_t(n_pad) * size_t(k_dense) * es);
  SLIDESPARSE_CUDA_CHECK(cudaMemset(w_dense.get(), 0, w_dense.bytes()));
  if (!opts.dense_only) {
    w_sparse.reset(size_t(n_pad) * size_t(k_sparse) * es);
    SLIDESPARSE_CUDA_CHECK(cudaMemset(w_sparse.get(), 0, w_sparse.bytes()));
  }
  if (quantized) s_w.reset(size_t(n) * sizeof(float));
  prep_status.reset(kStatusWords * sizeof(uint64_t));
  SLIDESPARSE_CUDA_CHECK(weight_prep_status_reset(static_cast<uint64_t*>(prep_status.get()), nullptr));
  SLIDESPARSE_CUDA_CHECK(cudaDeviceSynchronize());
}

void SlideLinear::Impl::upload_weights(const uint8_t* q, const float* sw, const float* bias_host) {
  const int threads = host_threads();
  const size_t es = dtype_size(q_dtype);
  allocate_weights();
  // Dense fallback: the same pruned, quantized W, k padded with zero columns.
  SLIDESPARSE_CUDA_CHECK(cudaMemcpy2D(w_dense.get(), size_t(k_dense) * es, q, size_t(k) * es, size_t(k) * es,
                                      size_t(n), cudaMemcpyHostToDevice));
  if (!opts.dense_only) {
    std::vector<uint8_t> ws(size_t(n) * size_t(k_sparse) * es, 0);
    slide_weight(opts.pattern, q_dtype, q, n, k, ws.data(), k_sparse, "slide_linear", threads);
    SLIDESPARSE_CUDA_CHECK(cudaMemcpy(w_sparse.get(), ws.data(), ws.size(), cudaMemcpyHostToDevice));
  }
  if (quantized) SLIDESPARSE_CUDA_CHECK(cudaMemcpy(s_w.get(), sw, size_t(n) * sizeof(float), cudaMemcpyHostToDevice));
  finish(bias_host);
}

void SlideLinear::Impl::finish(const float* bias_host) {
  if (bias_host != nullptr) {
    for (int64_t j = 0; j < n; ++j)
      SLIDESPARSE_API_REQUIRE(std::isfinite(bias_host[j]), Status::kInvalidData,
                              "bias[{}] = {} is not finite", j, bias_host[j]);
    upload(bias, bias_host, size_t(n) * sizeof(float));
    has_bias = true;
  }

  if (opts.dense_only) {
    dense_below = kNever;
  } else if (opts.dense_below_m >= 0) {
    dense_below = opts.dense_below_m;
  } else {
    OwnedStream stream;
    measure_crossover(stream.get());
  }
}

void SlideLinear::Impl::prep_from_dense(const void* w, DType dtype, cudaStream_t stream) {
  auto* status = static_cast<uint64_t*>(prep_status.get());
  const uint8_t* keep = nullptr;
  if (!opts.dense_only) {
    // The keep mask goes to w_sparse, which holds n_pad * k_sparse >= n * k elements of at least a
    // byte (k' >= k for every pattern) and is rewritten by the slide below: no extra buffer.
    NmMaskParams mp;
    mp.w = w;
    mp.dtype = dtype;
    mp.rows = n;
    mp.k = k;
    mp.ldw = k;
    mp.keep = opts.pattern.keep();
    mp.group = opts.pattern.group();
    mp.mask = static_cast<uint8_t*>(w_sparse.get());
    mp.ldm = k;
    const char* why = nm_mask_check(mp);
    SLIDESPARSE_API_REQUIRE(why == nullptr, Status::kInternal, "weight prep: {}", why ? why : "");
    SLIDESPARSE_CUDA_CHECK(nm_mask(mp, stream));
    keep = mp.mask;
  }
  QuantizeWeightParams qp;
  qp.w = w;
  qp.in_dtype = dtype;
  qp.n = n;
  qp.k = k;
  qp.ldw = k;
  qp.keep = keep;
  qp.ldm = k;
  qp.q = w_dense.get();
  qp.out_dtype = q_dtype;
  qp.ldq = k_dense;
  qp.scale = quantized ? static_cast<float*>(s_w.get()) : nullptr;
  qp.status = status;
  const char* why = quantize_weight_check(qp);
  SLIDESPARSE_API_REQUIRE(why == nullptr, Status::kInternal, "weight prep: {}", why ? why : "");
  SLIDESPARSE_CUDA_CHECK(quantize_weight(qp, stream));
  if (!opts.dense_only) slide_on_device(status, stream);
}

void SlideLinear::Impl::prep_from_codes(const void* codes, const float* scales, cudaStream_t stream) {
  const size_t es = dtype_size(q_dtype);
  SLIDESPARSE_CUDA_CHECK(cudaMemcpy2DAsync(w_dense.get(), size_t(k_dense) * es, codes, size_t(k) * es,
                                           size_t(k) * es, size_t(n), cudaMemcpyDeviceToDevice, stream));
  if (quantized)
    SLIDESPARSE_CUDA_CHECK(
        cudaMemcpyAsync(s_w.get(), scales, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  if (!opts.dense_only) slide_on_device(static_cast<uint64_t*>(prep_status.get()), stream);
}

// W' = slide(W) on the device: the quantized (or bf16) w_dense into w_sparse.
void SlideLinear::Impl::slide_on_device(uint64_t* status, cudaStream_t stream) {
  SlideWeightParams sp;
  sp.q = w_dense.get();
  sp.dtype = q_dtype;
  sp.n = n;
  sp.k = k;
  sp.ldq = k_dense;
  sp.ws = w_sparse.get();
  sp.k_slide = k_sparse;
  sp.ldws = k_sparse;
  sp.pattern_n = opts.pattern.n();
  sp.status = status;
  const char* why = slide_weight_device_check(sp);
  SLIDESPARSE_API_REQUIRE(why == nullptr, Status::kInternal, "weight prep: {}", why ? why : "");
  SLIDESPARSE_CUDA_CHECK(slide_weight_device(sp, stream));
}

void SlideLinear::Impl::update_plans(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(mu);
  for (auto* slots : {&sparse_slots, &dense_slots})
    for (auto& b : *slots)
      if (b) b->plan->update_weight(b->dense ? w_dense.get() : w_sparse.get(), stream);
}

void SlideLinear::Impl::check_input(const void* w, DType dtype, bool pattern, const float* scales,
                                    cudaStream_t stream, const char* what) {
  SLIDESPARSE_API_REQUIRE(!detail::stream_is_capturing(stream), Status::kInvalidArgument,
                          "{} with check = true synchronizes the stream to read the check's result, which a "
                          "stream capturing a CUDA graph cannot do: pass check = false under capture (problems "
                          "are then reported by check_weight_updates)",
                          what);
  auto* status = static_cast<uint64_t*>(prep_status.get());
  SLIDESPARSE_CUDA_CHECK(weight_prep_status_reset(status, stream));
  WeightScanParams sp;
  sp.w = w;
  sp.dtype = dtype;
  sp.n = n;
  sp.k = k;
  sp.ldw = k;
  sp.pattern_n = pattern ? opts.pattern.n() : 0;
  sp.scale = scales;
  sp.status = status;
  const char* why = scan_weight_check(sp);
  SLIDESPARSE_API_REQUIRE(why == nullptr, Status::kInvalidArgument, "{}: {}", what, why ? why : "");
  SLIDESPARSE_CUDA_CHECK(scan_weight(sp, stream));
  raise_status(stream, what);
}

void SlideLinear::Impl::raise_status(cudaStream_t stream, const char* what) {
  uint64_t st[kStatusWords];
  auto* status = static_cast<uint64_t*>(prep_status.get());
  SLIDESPARSE_CUDA_CHECK(cudaMemcpyAsync(st, status, sizeof st, cudaMemcpyDeviceToHost, stream));
  SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (st[kStatusNonFinite] == kStatusNone && st[kStatusDenseGroup] == kStatusNone && st[kStatusBadScale] == kStatusNone)
    return;
  SLIDESPARSE_CUDA_CHECK(weight_prep_status_reset(status, stream));
  SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (st[kStatusNonFinite] != kStatusNone) {
    const int64_t i = int64_t(st[kStatusNonFinite]);
    SLIDESPARSE_API_REQUIRE(false, Status::kInvalidData, "{}: W[{}, {}] is not finite{}", what, i / k, i % k,
                            q_dtype == DType::kE4M3 ? " (or an E4M3 NaN code 0x7F/0xFF)" : "");
  }
  if (st[kStatusDenseGroup] != kStatusNone) {
    const int64_t groups = num_groups(opts.pattern, k), i = int64_t(st[kStatusDenseGroup]);
    const int64_t r = i / groups, g = i % groups;
    SLIDESPARSE_API_REQUIRE(false, Status::kInvalidData,
                            "{}: row {}, group {} (columns {}..{}) holds more than {} nonzeros, which pattern {} "
                            "allows: mask the codes first",
                            what, r, g, g * opts.pattern.group(), std::min(k, (g + 1) * opts.pattern.group()) - 1,
                            opts.pattern.keep(), opts.pattern.str());
  }
  const int64_t r = int64_t(st[kStatusBadScale]);
  SLIDESPARSE_API_REQUIRE(false, Status::kInvalidData, "{}: w_scale[{}] must be finite and positive", what, r);
}

SlideLinear SlideLinear::from_dense(const float* w_host, int64_t n, int64_t k, const SlideLinearOptions& opts,
                                    const float* bias_host) {
  SLIDESPARSE_API_REQUIRE(w_host != nullptr, Status::kInvalidArgument, "from_dense: w_host is null");
  auto impl = Impl::create(n, k, opts, "from_dense");
  Impl& I = *impl;
  const int threads = host_threads();
  const size_t nk = size_t(n) * size_t(k);

  std::vector<float> w(w_host, w_host + nk);
  for (size_t i = 0; i < nk; ++i)
    SLIDESPARSE_API_REQUIRE(std::isfinite(w[i]), Status::kInvalidData, "from_dense: W[{}, {}] = {} is not finite",
                            int64_t(i) / k, int64_t(i) % k, w[i]);
  if (!opts.dense_only)
    prune_inplace(opts.pattern, PruneMethod::kMagnitude, DType::kF32, w.data(), n, k, nullptr, "slide_linear",
                  threads);

  // Per-channel quantization of the pruned weight (zeros stay zeros, so the pattern holds).
  std::vector<uint8_t> q(nk * dtype_size(I.q_dtype));
  std::vector<float> sw;
  switch (opts.precision) {
    case LinearPrecision::kI8:
      sw.resize(size_t(n));
      quantize_rows_i8(DType::kF32, w.data(), n, k, reinterpret_cast<int8_t*>(q.data()), sw.data(), threads);
      break;
    case LinearPrecision::kE4M3:
      sw.resize(size_t(n));
      quantize_rows_e4m3(DType::kF32, w.data(), n, k, q.data(), sw.data(), threads);
      break;
    case LinearPrecision::kBF16:
      for (size_t i = 0; i < nk; ++i) {
        const uint16_t b = f32_to_bf16(w[i]);
        std::memcpy(&q[2 * i], &b, 2);
      }
      break;
  }
  w.clear();
  w.shrink_to_fit();
  I.upload_weights(q.data(), sw.data(), bias_host);
  return SlideLinear(std::move(impl));
}

SlideLinear SlideLinear::from_quantized(const void* w_q_host, const float* w_scale_host, int64_t n, int64_t k,
                                        const SlideLinearOptions& opts, const float* bias_host) {
  SLIDESPARSE_API_REQUIRE(w_q_host != nullptr && w_scale_host != nullptr, Status::kInvalidArgument,
                          "from_quantized: w_q_host and w_scale_host must not be null");
  SLIDESPARSE_API_REQUIRE(opts.precision != LinearPrecision::kBF16, Status::kInvalidArgument,
                          "from_quantized takes i8 or e4m3 codes with per-channel scales; a bf16 layer is made "
                          "by from_dense");
  auto impl = Impl::create(n, k, opts, "from_quantized");
  for (int64_t j = 0; j < n; ++j)
    SLIDESPARSE_API_REQUIRE(std::isfinite(w_scale_host[j]) && w_scale_host[j] > 0.0f, Status::kInvalidData,
                            "from_quantized: w_scale[{}] = {} must be finite and positive", j, w_scale_host[j]);
  const auto* q = static_cast<const uint8_t*>(w_q_host);
  if (opts.precision == LinearPrecision::kE4M3) {
    for (size_t i = 0; i < size_t(n) * size_t(k); ++i)
      SLIDESPARSE_API_REQUIRE((q[i] & 0x7F) != 0x7F, Status::kInvalidData,
                              "from_quantized: W[{}, {}] is the E4M3 NaN code 0x{:02X}", int64_t(i) / k,
                              int64_t(i) % k, q[i]);
  }
  // slide_weight (in upload_weights) rejects a group with more than 2N-2 nonzeros, naming it.
  impl->upload_weights(q, w_scale_host, bias_host);
  return SlideLinear(std::move(impl));
}

namespace {

void require_dense_input(const void* w_dev, DType dtype, const char* what) {
  SLIDESPARSE_API_REQUIRE(w_dev != nullptr, Status::kInvalidArgument, "{}: the weight pointer is null", what);
  SLIDESPARSE_API_REQUIRE(dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16,
                          Status::kInvalidArgument, "{}: a dense weight of dtype {} is not supported; supported: "
                          "f32, bf16, f16", what, dtype_token(dtype));
  SLIDESPARSE_API_REQUIRE(reinterpret_cast<uintptr_t>(w_dev) % dtype_size(dtype) == 0, Status::kInvalidArgument,
                          "{}: the weight pointer is not aligned to its {}-byte elements", what, dtype_size(dtype));
}

}  // namespace

SlideLinear SlideLinear::from_dense_device(const void* w_dev, DType dtype, int64_t n, int64_t k,
                                           const SlideLinearOptions& opts, const float* bias_host, Stream stream) {
  const char* what = "from_dense_device";
  require_dense_input(w_dev, dtype, what);
  auto impl = Impl::create(n, k, opts, what);
  Impl& I = *impl;
  I.allocate_weights();
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  I.prep_from_dense(w_dev, dtype, s);
  I.raise_status(s, what);  // synchronizes; non-finite weights are kInvalidData, as in from_dense
  I.finish(bias_host);
  return SlideLinear(std::move(impl));
}

void SlideLinear::update_weight_device(const void* w_dev, DType dtype, Stream stream, bool check) {
  Impl& I = *impl_;
  const char* what = "update_weight_device";
  require_dense_input(w_dev, dtype, what);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (check) I.check_input(w_dev, dtype, false, nullptr, s, what);
  I.prep_from_dense(w_dev, dtype, s);
  I.update_plans(s);
}

void SlideLinear::update_weight_codes_device(const void* codes_dev, const float* scales_dev, Stream stream,
                                             bool check) {
  Impl& I = *impl_;
  const char* what = "update_weight_codes_device";
  SLIDESPARSE_API_REQUIRE(codes_dev != nullptr, Status::kInvalidArgument, "{}: codes is null", what);
  SLIDESPARSE_API_REQUIRE(I.quantized ? scales_dev != nullptr : scales_dev == nullptr, Status::kInvalidArgument,
                          "{}: a {} layer takes {}", what, linear_precision_name(I.opts.precision),
                          I.quantized ? "per-channel scales [n] (f32, device) with its codes"
                                      : "bf16 values without scales (pass null)");
  SLIDESPARSE_API_REQUIRE(reinterpret_cast<uintptr_t>(codes_dev) % dtype_size(I.q_dtype) == 0 &&
                              reinterpret_cast<uintptr_t>(scales_dev) % alignof(float) == 0,
                          Status::kInvalidArgument, "{}: codes / scales are not aligned to their element size", what);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (check) {
    I.check_input(codes_dev, I.q_dtype, !I.opts.dense_only, scales_dev, s, what);
  } else {
    // Deferred: the same scan, reported by check_weight_updates (no synchronization here).
    WeightScanParams sp;
    sp.w = codes_dev;
    sp.dtype = I.q_dtype;
    sp.n = I.n;
    sp.k = I.k;
    sp.ldw = I.k;
    sp.pattern_n = I.opts.dense_only ? 0 : I.opts.pattern.n();
    sp.scale = scales_dev;
    sp.status = static_cast<uint64_t*>(I.prep_status.get());
    SLIDESPARSE_CUDA_CHECK(scan_weight(sp, s));
  }
  I.prep_from_codes(codes_dev, scales_dev, s);
  I.update_plans(s);
}

void SlideLinear::check_weight_updates(Stream stream) {
  impl_->raise_status(static_cast<cudaStream_t>(stream), "check_weight_updates");
}

void SlideLinear::forward(const void* x_bf16_dev, int64_t m, void* y_bf16_dev, Stream stream, LinearPath path,
                          unsigned stages) {
  Impl& I = *impl_;
  SLIDESPARSE_API_REQUIRE(m >= 0, Status::kInvalidArgument, "forward: m = {} is negative", m);
  if (m == 0) return;
  SLIDESPARSE_API_REQUIRE(x_bf16_dev != nullptr && y_bf16_dev != nullptr, Status::kInvalidArgument,
                          "forward: x and y must not be null (m = {})", m);
  const bool dense = I.resolve_dense(path, m);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const auto* x = static_cast<const uint8_t*>(x_bf16_dev);
  auto* y = static_cast<uint8_t*>(y_bf16_dev);
  for (int64_t r0 = 0; r0 < m; r0 += kMaxBucketRows) {
    const int64_t rows = std::min(kMaxBucketRows, m - r0);
    const Impl::Bucket& b = I.bucket(dense, rows, s);
    I.run(b, x + size_t(r0 * I.k) * 2, rows, y + size_t(r0 * I.n) * 2, s, stages);
  }
}

void SlideLinear::forward_with_scratch(const void* x_bf16_dev, int64_t m, void* y_bf16_dev, Stream stream,
                                       LinearPath path, void* scratch, size_t scratch_bytes) {
  Impl& I = *impl_;
  SLIDESPARSE_API_REQUIRE(m >= 0, Status::kInvalidArgument, "forward_with_scratch: m = {} is negative", m);
  if (m == 0) return;
  SLIDESPARSE_API_REQUIRE(x_bf16_dev != nullptr && y_bf16_dev != nullptr && scratch != nullptr,
                          Status::kInvalidArgument, "forward_with_scratch: x, y and scratch must not be null (m = {})",
                          m);
  SLIDESPARSE_API_REQUIRE(reinterpret_cast<uintptr_t>(scratch) % 256 == 0, Status::kInvalidArgument,
                          "forward_with_scratch: scratch must be 256-byte aligned");
  const bool dense = I.resolve_dense(path, m);
  const int64_t first = std::min(kMaxBucketRows, m);
  const Impl::ScratchLayout sl = I.scratch_layout(dense, bucket_rows(first));
  SLIDESPARSE_API_REQUIRE(scratch_bytes >= sl.total, Status::kInvalidArgument,
                          "forward_with_scratch: m = {} needs {} bytes of scratch, got {}", m, sl.total,
                          scratch_bytes);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const auto* x = static_cast<const uint8_t*>(x_bf16_dev);
  auto* y = static_cast<uint8_t*>(y_bf16_dev);
  auto* base = static_cast<uint8_t*>(scratch);
  for (int64_t r0 = 0; r0 < m; r0 += kMaxBucketRows) {
    const int64_t rows = std::min(kMaxBucketRows, m - r0);
    const Impl::Bucket& b = I.bucket(dense, rows, s, /*buffers=*/false);
    // A smaller last chunk has a smaller bucket: its carve-up fits in the first one's.
    const Impl::ScratchLayout c = I.scratch_layout(dense, b.rows);
    I.run(b, x + size_t(r0 * I.k) * 2, rows, y + size_t(r0 * I.n) * 2, s, kStageAll, base + c.xq,
          I.quantized ? reinterpret_cast<float*>(base + c.scale) : nullptr, base + c.d, b.plan->layout().m_rows);
  }
}

size_t SlideLinear::scratch_bytes(int64_t m, LinearPath path) const {
  const Impl& I = *impl_;
  SLIDESPARSE_API_REQUIRE(m >= 0, Status::kInvalidArgument, "scratch_bytes: m = {} is negative", m);
  if (m == 0) return 0;
  return I.scratch_layout(I.resolve_dense(path, m), bucket_rows(std::min(kMaxBucketRows, m))).total;
}

void SlideLinear::release_buckets() {
  Impl& I = *impl_;
  std::lock_guard<std::mutex> lock(I.mu);
  for (auto* slots : {&I.sparse_slots, &I.dense_slots})
    for (auto& b : *slots) b.reset();
}

void SlideLinear::set_bind_gemm_graphs(bool on, Stream stream) {
  Impl& I = *impl_;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  std::lock_guard<std::mutex> lock(I.mu);
  I.opts.bind_gemm_graphs = on;
  SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(s));
  for (auto* slots : {&I.sparse_slots, &I.dense_slots})
    for (auto& b : *slots) {
      if (!b) continue;
      if (on)
        I.bind_gemm(*b, s);
      else
        b->plan->unbind();
    }
}

void SlideLinear::warmup(int64_t max_m, Stream stream, LinearPath path, bool with_buffers) {
  Impl& I = *impl_;
  SLIDESPARSE_API_REQUIRE(max_m >= 0, Status::kInvalidArgument, "warmup: max_m = {} is negative", max_m);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  // Calls past kMaxBucketRows run in chunks whose remainder can be any size: every bucket, on the
  // path the whole call takes.
  const int64_t top = std::min(max_m, kMaxBucketRows + 1);
  const bool chunked_sparse = max_m > kMaxBucketRows && !I.dense_for(max_m);
  for (int64_t rows = kMinBucketRows; max_m > 0; rows *= 2) {
    const int64_t lo = rows == kMinBucketRows ? 1 : rows / 2 + 1;
    if (lo > top) break;
    const int64_t hi = std::min(rows, top);
    if (path == LinearPath::kAuto) {
      if (I.dense_for(lo)) I.bucket(true, hi, s, with_buffers);
      if (!I.dense_for(hi) || chunked_sparse) I.bucket(false, hi, s, with_buffers);
    } else {
      I.bucket(I.resolve_dense(path, hi), hi, s, with_buffers);
    }
    if (rows == kMaxBucketRows) break;
  }
  SLIDESPARSE_CUDA_CHECK(cudaStreamSynchronize(s));
}

int64_t SlideLinear::n() const noexcept { return impl_->n; }
int64_t SlideLinear::k() const noexcept { return impl_->k; }
int64_t SlideLinear::k_sparse() const noexcept { return impl_->k_sparse; }
int64_t SlideLinear::k_dense() const noexcept { return impl_->k_dense; }
const SlideLinearOptions& SlideLinear::options() const noexcept { return impl_->opts; }
int64_t SlideLinear::dense_below_m() const noexcept { return impl_->dense_below; }
bool SlideLinear::takes_dense_path(int64_t m) const noexcept { return impl_->dense_for(m); }
const std::vector<CrossoverProbe>& SlideLinear::crossover_probes() const noexcept { return impl_->probes; }

std::string SlideLinear::describe() const {
  const Impl& I = *impl_;
  std::string s = fmt::format(
      "SlideLinear {} {} n={} k={} k_sparse={} k_dense={} bias={} dense_below_m={}",
      I.opts.dense_only ? "dense" : I.opts.pattern.str(), linear_precision_name(I.opts.precision), I.n, I.k,
      I.k_sparse, I.k_dense, I.has_bias, I.dense_below == kNever ? std::string("never-sparse")
                                                                 : std::to_string(I.dense_below));
  for (const auto& p : I.probes)
    s += fmt::format("\n  probe m={}: sparse {:.1f} us, dense {:.1f} us, dense/sparse {:.3f} (pairwise median)", p.m,
                     p.sparse_us, p.dense_us, p.dense_over_sparse);
  std::lock_guard<std::mutex> lock(I.mu);
  for (const auto* slots : {&I.sparse_slots, &I.dense_slots})
    for (const auto& b : *slots)
      if (b)
        s += fmt::format("\n  {} bucket {} rows: {} [{}]", b->dense ? "dense" : "sparse", b->rows, b->plan->describe(),
                         b->choice);
  return s;
}

}  // namespace slidesparse
