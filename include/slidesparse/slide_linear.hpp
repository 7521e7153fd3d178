// slidesparse: SlideLinear, a linear layer Y[m,n] = X[m,k] . W[n,k]^T (+ bias[n]) whose weight is
// pruned to a (2N-2):2N pattern, slid to 2:4 along k' and run on the 2:4 sparse tensor cores.
//
// Offline (from_dense): magnitude pruning along k (CPU core), per-output-channel quantization of
// the pruned weight (i8 / e4m3; bf16 is a rounding), sliding W -> W'[n, k'] (k' = slide_k). Both
// the slid weight (sparse path) and the pruned weight itself (dense fallback: the same pruned,
// quantized operands, on cuBLASLt over K) are uploaded.
// forward, on the caller's stream (bf16 in, bf16 out, both row-major on the device):
//   sparse path:  quant_lift (per-token scale, quantize, lift X -> X'[m, k'])  ->  2:4 GEMM
//                 (cuSPARSELt) on k'  ->  scale_epilogue (acc * s_x[m] * s_w[n] + bias[n] -> bf16)
//   dense path:   quant_lift without lifting (X -> X[m, K])  ->  dense GEMM (cuBLASLt) on K
//                 ->  the same epilogue
//   bf16:         the same with a lift-only copy, a bf16 GEMM and no scales.
// The dense path is taken for m below a crossover (SlideLinearOptions::dense_below_m): sparse
// GEMMs lose to dense ones at small m (launch overheads, m padded to 16, k' > K).
//
// GEMM plans are cached per m bucket (the next power of two >= m, at least 16, at most 65536 rows;
// a call with more rows is run in chunks of 65536). A bucket holds its plan (algorithm chosen at
// creation) and every buffer for its largest m (X', per-token scales, the GEMM output), so a
// forward on a warmed bucket allocates nothing, never synchronizes, and can be captured in a CUDA
// graph. Buckets are created lazily on first use (outside graph capture) or by warmup().
// Rows beyond m in a bucket are computed but never read: m = 1025 runs the 2048-row plan.
//
// No CUDA header here: device pointers are void*, streams are `Stream` (a cudaStream_t).
// Errors are slidesparse::Error: kInvalidArgument (shapes, null pointers, an unwarmed bucket under
// graph capture), kUnsupported (no device, no cuSPARSELt in this build, precision/GPU), kInternal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/crossover.hpp"  // CrossoverProbe, the rule
#include "slidesparse/pattern.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {

using Stream = void*;  // a cudaStream_t; nullptr is the legacy default stream
class PlanCache;       // src/backends/plan_cache.hpp: GEMM algorithm choices, shareable by layers

enum class LinearPrecision { kI8, kE4M3, kBF16 };
const char* linear_precision_name(LinearPrecision p) noexcept;  // "i8", "e4m3", "bf16"

// Which GEMM engine a bucket runs (src/backends/backend.hpp):
//   kLibrary  cuSPARSELt (sparse path) / cuBLASLt (dense path), then the separate scale epilogue;
//   kSm90     our Hopper kernels (CUTLASS, wgmma.sp) with the scale epilogue fused into the GEMM
//             (the dense path too, where a dense kernel of the precision is compiled, else cuBLASLt);
//             kUnsupported without CUTLASS in the build or on a non-sm_90 GPU;
//   kAuto     with `search` on an sm_90 GPU and a build with the sm90 kernels: each bucket builds
//             both, times the full GEMM + epilogue of each on its rows and keeps the faster;
//             otherwise kLibrary.
enum class LinearBackend { kAuto, kLibrary, kSm90 };
const char* linear_backend_name(LinearBackend b) noexcept;  // "auto", "library", "sm90"

struct SlideLinearOptions {
  Pattern pattern = Pattern::from_n(4);  // 6:8
  LinearPrecision precision = LinearPrecision::kI8;
  // m below which forward takes the dense path. -1: measured in from_dense (full layer, sparse vs
  // dense, timed in interleaved pairs at m = 16, 64, 256, 1024, 4096, 16384 with the L2 scrubbed
  // before each call; crossover_from_probes in crossover.hpp: the smallest probe from which sparse
  // is at least 3% faster at every larger probe; dense for every m when it is not at the largest).
  // 0: never dense.
  int64_t dense_below_m = -1;
  bool search = true;  // measure GEMM algorithms when a bucket is created (else library defaults)
  int search_iters = 10;  // timed launches per candidate algorithm during that search
  // A plain quantized dense layer: W is neither pruned nor slid and forward always takes the dense
  // path. The baseline the benchmarks compare against.
  bool dense_only = false;
  // Algorithm choices shared between layers: a bucket whose GEMM (m bucket, n, k, precision, path)
  // is already in the cache takes that choice instead of searching again (a model's many layers of
  // one shape search once). Not owned; it must outlive every bucket creation. Null: none.
  PlanCache* plan_cache = nullptr;
  LinearBackend backend = LinearBackend::kAuto;
  // Library GEMMs (cuSPARSELt / cuBLASLt) of a bucket with its own buffers are recorded once as a
  // CUDA graph on those buffers (GemmPlan::bind), so forward() launches the GEMM with one
  // cudaGraphLaunch instead of the library's host path (same kernels, same bits). False: the
  // library is called on every forward.
  bool bind_gemm_graphs = true;
};

enum class LinearPath { kAuto, kSparse, kDense };  // kAuto: by dense_below_m


// Stages of forward(), as bits. Benchmarks time one stage on a warmed bucket (the stages read what
// the previous full forward left in the bucket's buffers); callers use kStageAll.
enum LinearStage : unsigned {
  kStageQuant = 1u,     // quant_lift into the bucket's X'
  kStageGemm = 2u,      // the GEMM into the bucket's output (a fused sm90 plan: straight into Y)
  kStageEpilogue = 4u,  // scale_epilogue into Y (nothing for a fused sm90 plan)
  kStageAll = 7u,
};

class SlideLinear {
 public:
  static constexpr int64_t kMinBucketRows = 16;
  static constexpr int64_t kMaxBucketRows = 65536;

  // w_host: W[n, k] f32 row-major (host memory), bias_host: [n] or null. Prunes, quantizes,
  // slides, uploads (on the current device), and with dense_below_m == -1 measures the crossover
  // (creating the probed buckets). Throws Error: kInvalidArgument (n, k < 1, non-finite weights as
  // kInvalidData), kUnsupported (no device, no cuSPARSELt for a sparse layer).
  static SlideLinear from_dense(const float* w_host, int64_t n, int64_t k, const SlideLinearOptions& opts,
                                const float* bias_host = nullptr);

  // The same from a weight that is already quantized per output channel: w_q_host holds W[n, k] as
  // i8 values (precision kI8) or E4M3 codes (kE4M3), w_scale_host[n] the channel scales
  // (w ~= q * scale), e.g. the I8 / F8_E4M3 weights and P.weight_scale of a checkpoint written by
  // `slidesparse prune --precision int8|fp8`. Codes and scales are used exactly as given: no
  // pruning, no re-quantization. A sparse layer needs the codes to satisfy opts.pattern already
  // (kInvalidData naming row and group otherwise). Throws kInvalidArgument for kBF16 (use
  // from_dense) and kInvalidData for a non-finite or non-positive scale or an E4M3 NaN code.
  static SlideLinear from_quantized(const void* w_q_host, const float* w_scale_host, int64_t n, int64_t k,
                                    const SlideLinearOptions& opts, const float* bias_host = nullptr);

  // from_dense on the GPU, for a weight already in device memory: w_dev is W[n, k] row-major (row
  // stride k) of dtype f32, bf16 or f16 on the current device. The same layer from_dense makes from
  // the same values (f32(w)): magnitude pruning (the nm_mask kernel, keep = 2N-2 of 2N), per-channel
  // quantization, sliding, all on the GPU on `stream` (kernels/weight_prep.cuh), bit-identical
  // weights and scales, so forward gives the same bytes. Then as from_dense (bias, crossover).
  // Synchronizes `stream`. Throws kInvalidArgument (null / misaligned pointer, dtype other than
  // f32 / bf16 / f16, shapes), kInvalidData naming row and column for a non-finite weight, and what
  // from_dense throws.
  static SlideLinear from_dense_device(const void* w_dev, DType dtype, int64_t n, int64_t k,
                                       const SlideLinearOptions& opts, const float* bias_host = nullptr,
                                       Stream stream = nullptr);

  // Weight updates in place (training: new weights every step). Same n, k, pattern, precision and
  // bias; the layer's buffers and every existing bucket's GEMM plan (its algorithm choice kept)
  // take the new weight: prune -> quantize -> slide on the GPU, then each plan's update_weight
  // (cuSPARSELt compression into the plan's compressed buffer, a copy for dense plans, the sm90
  // compressor for sm90 plans). Enqueued on `stream`: no allocation, no algorithm search.
  //   check = true:  the input is scanned first and the stream synchronized; a bad input throws
  //                  kInvalidData (naming row and column / group / scale) and leaves the layer as
  //                  it was. Not allowed while `stream` captures a graph (kInvalidArgument).
  //   check = false: nothing synchronizes (CUDA graph capture works: see docs/BACKENDS.md for what
  //                  was tested); problems are recorded on the device and thrown by the next
  //                  check_weight_updates(); until a good update the layer's weights are then
  //                  unusable (a row with a non-finite weight gets scale NaN, a too-dense group is
  //                  zeroed).
  // Ordering: forwards on other streams must be ordered against the update by the caller (the
  // plans' weights are rewritten in place).
  // Dense W[n, k] (f32 / bf16 / f16, device, row stride k), pruned and quantized as from_dense_device:
  void update_weight_device(const void* w_dev, DType dtype, Stream stream, bool check = true);
  // Already quantized and masked codes: i8 / e4m3 codes [n, k] + scales [n] (f32, finite, > 0),
  // used exactly as given (as from_quantized); a bf16 layer takes bf16 values [n, k] and
  // scales_dev == null. A sparse layer needs the codes to satisfy the pattern (kInvalidData naming
  // row and group otherwise).
  void update_weight_codes_device(const void* codes_dev, const float* scales_dev, Stream stream, bool check = true);
  // Synchronizes `stream` and throws (kInvalidData) the first problem a check = false update
  // recorded since the last call; clears the record.
  void check_weight_updates(Stream stream);

  SlideLinear(SlideLinear&&) noexcept;
  SlideLinear& operator=(SlideLinear&&) noexcept;
  ~SlideLinear();

  // y[m, n] = x[m, k] . W^T (+ bias): x and y are bf16 device buffers (row strides k and n), on
  // `stream`. m == 0 does nothing.
  void forward(const void* x_bf16_dev, int64_t m, void* y_bf16_dev, Stream stream) {
    forward(x_bf16_dev, m, y_bf16_dev, stream, LinearPath::kAuto, kStageAll);
  }
  // The same with the path forced (tests, benchmarks) and a subset of the stages.
  void forward(const void* x_bf16_dev, int64_t m, void* y_bf16_dev, Stream stream, LinearPath path,
               unsigned stages = kStageAll);

  // The same, with the intermediate buffers (X', per-token scales, the GEMM output) carved from
  // caller-owned device memory instead of the bucket's own: `scratch` must hold at least
  // scratch_bytes(m, path) bytes (256-byte aligned). Many layers can then share one scratch (or
  // a framework's caching allocator) instead of each bucket keeping buffers for its largest m;
  // the bucket keeps only its GEMM plan. X' padding rows [m, bucket rows) are written as zeros.
  void forward_with_scratch(const void* x_bf16_dev, int64_t m, void* y_bf16_dev, Stream stream, LinearPath path,
                            void* scratch, size_t scratch_bytes);
  // Bytes forward_with_scratch needs for m rows on `path` (kAuto: the path m takes); calls with
  // more than kMaxBucketRows rows run in chunks that reuse the scratch. Allocates nothing.
  size_t scratch_bytes(int64_t m, LinearPath path = LinearPath::kAuto) const;

  // Creates the buckets every m in [1, max_m] needs on `path` (kAuto: the path each m takes), so
  // that later forwards up to max_m allocate nothing and can be captured. Synchronizes `stream`.
  // with_buffers = false creates the plans only (for forward_with_scratch).
  void warmup(int64_t max_m, Stream stream, LinearPath path = LinearPath::kAuto, bool with_buffers = true);
  // Frees every bucket (plans, compressed weights, buffers); later forwards create them again.
  // Not while a stream using this layer captures a graph or has work in flight on the buffers.
  void release_buckets();
  // Switches the recorded-graph GEMM launch (SlideLinearOptions::bind_gemm_graphs) on or off for
  // the buckets that exist and those created later (benchmarks compare both). Synchronizes
  // `stream`; not while a stream using this layer captures a graph.
  void set_bind_gemm_graphs(bool on, Stream stream);

  int64_t n() const noexcept;
  int64_t k() const noexcept;
  int64_t k_sparse() const noexcept;  // K' of the sparse GEMM (0 for dense_only)
  int64_t k_dense() const noexcept;   // K of the dense GEMM (k rounded up to 16)
  const SlideLinearOptions& options() const noexcept;
  int64_t dense_below_m() const noexcept;  // resolved: 0 = never dense, INT64_MAX = always dense
  bool takes_dense_path(int64_t m) const noexcept;
  const std::vector<CrossoverProbe>& crossover_probes() const noexcept;  // empty unless measured
  static int64_t bucket_rows(int64_t m) noexcept;  // rows of the plan that runs m (m in [1, 65536])
  // One line per created bucket: path, rows, the GEMM plan's description.
  std::string describe() const;

 private:
  struct Impl;
  explicit SlideLinear(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace slidesparse
