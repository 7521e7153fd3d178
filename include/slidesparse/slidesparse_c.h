/* slidesparse C ABI: the GPU linear layer (SlideLinear) and the fused quant+lift kernel behind plain
 * C functions, for bindings that must not compile against the C++ library (the PyTorch extension
 * in python/slidesparse calls these through ctypes: no torch headers anywhere in the library).
 *
 * GEMM convention: Y[m,n] = X[m,k] . W[n,k]^T, W structured along k (6:8 etc.), row-major.
 * Handles are opaque pointers. Device data pointers and streams (a cudaStream_t; NULL = the legacy
 * default stream) are void*. Every function returning int returns 0 on success or a
 * slidesparse::Status code (1 invalid argument, 2 not found, 3 I/O, 4 bad format, 5 invalid data,
 * 6 already exists, 7 unsupported, 8 internal); ss_last_error() then holds the message (per thread,
 * valid until the next failing call on that thread). No function throws or exits.
 */
#ifndef SLIDESPARSE_C_H_
#define SLIDESPARSE_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SS_C_ABI_VERSION 1

/* The library is built with hidden visibility; only these functions are exported. */
#if defined(__GNUC__)
#define SS_API __attribute__((visibility("default")))
#else
#define SS_API
#endif

typedef struct ss_linear ss_linear;         /* a slidesparse::SlideLinear */
typedef struct ss_plan_cache ss_plan_cache; /* GEMM algorithm choices shared by layers (in memory) */

/* Precision of a linear layer (weights and activations): W8A8 int8, W8A8 FP8 E4M3, or bf16. */
enum { SS_PRECISION_I8 = 0, SS_PRECISION_E4M3 = 1, SS_PRECISION_BF16 = 2 };
/* Which GEMM a forward runs: by the layer's crossover, the slid 2:4 sparse GEMM, the dense GEMM. */
enum { SS_PATH_AUTO = 0, SS_PATH_SPARSE = 1, SS_PATH_DENSE = 2 };

SS_API int ss_c_abi_version(void);
SS_API const char* ss_last_error(void);
/* 1 when this build has the cuSPARSELt backend (sparse layers), else 0. */
SS_API int ss_have_cusparselt(void);
/* Columns of the slid weight / lifted activation for pattern (2N-2):2N and k (docs/FORMAT.md sec. 4). */
SS_API int64_t ss_slide_k(int pattern_n, int64_t k);

SS_API int ss_plan_cache_create(ss_plan_cache** out);
SS_API void ss_plan_cache_destroy(ss_plan_cache* cache);

/* Layer options as plain arguments:
 *   pattern_n      N of (2N-2):2N (2 = native 2:4, 4 = 6:8); ignored when dense_only
 *   precision      SS_PRECISION_*
 *   dense_only     1: the plain quantized dense layer (no pruning; forward always dense)
 *   dense_below_m  -1 measure the crossover, 0 never dense, else the row count
 *   search         0: library default algorithms; n >= 1: time GEMM algorithms when a bucket is
 *                  created, n launches per candidate (SlideLinear's default is 10)
 *   cache          shared algorithm choices or NULL (must outlive the layer)
 * from_dense: w_host f32 [n, k] (host), magnitude-pruned (unless dense_only), quantized per channel.
 * from_quantized: codes (i8 / e4m3 bytes) [n, k] and scales [n] used exactly as given.
 * bias_host: f32 [n] or NULL. */
SS_API int ss_linear_from_dense(const float* w_host, int64_t n, int64_t k, const float* bias_host, int pattern_n,
                         int precision, int dense_only, int64_t dense_below_m, int search, ss_plan_cache* cache,
                         ss_linear** out);
SS_API int ss_linear_from_quantized(const void* w_q_host, const float* w_scale_host, int64_t n, int64_t k,
                             const float* bias_host, int pattern_n, int precision, int dense_only,
                             int64_t dense_below_m, int search, ss_plan_cache* cache, ss_linear** out);
/* from_dense with the weight already on the device (SlideLinear::from_dense_device): w_dev [n, k]
 * row-major of dtype SS_DTYPE_* (the element types of ss_nm_mask, below), pruned / quantized / slid on the GPU on `stream` (synchronized);
 * the same layer as ss_linear_from_dense on the same values. */
SS_API int ss_linear_from_dense_device(const void* w_dev, int dtype, int64_t n, int64_t k, const float* bias_host,
                                int pattern_n, int precision, int dense_only, int64_t dense_below_m, int search,
                                ss_plan_cache* cache, void* stream, ss_linear** out);
/* In-place weight updates (same n, k, pattern, precision), enqueued on `stream`, no allocation:
 *   update_weight_device:       a dense weight [n, k] (SS_DTYPE_*) to prune, quantize, slide, compress;
 *   update_weight_codes_device: i8 / e4m3 codes [n, k] + f32 scales [n] (a bf16 layer: bf16 values and
 *                               scales NULL), already masked to the pattern.
 * check != 0 scans the input first and synchronizes (error 5 naming the problem, layer unchanged);
 * check == 0 does not synchronize (graph capture) and ss_linear_check_weight_updates reports later. */
SS_API int ss_linear_update_weight_device(ss_linear* layer, const void* w_dev, int dtype, void* stream, int check);
SS_API int ss_linear_update_weight_codes_device(ss_linear* layer, const void* codes_dev, const float* scales_dev,
                                         void* stream, int check);
SS_API int ss_linear_check_weight_updates(ss_linear* layer, void* stream);
SS_API void ss_linear_destroy(ss_linear* layer);

/* y[m, n] = x[m, k] . W^T (+ bias), bf16 device buffers, rows contiguous. */
SS_API int ss_linear_forward(ss_linear* layer, const void* x_bf16, int64_t m, void* y_bf16, void* stream, int path);
/* The same with the intermediate buffers in caller-owned device memory (>= ss_linear_scratch_bytes). */
SS_API int ss_linear_forward_scratch(ss_linear* layer, const void* x_bf16, int64_t m, void* y_bf16, void* stream,
                              int path, void* scratch, size_t scratch_bytes);
SS_API int ss_linear_scratch_bytes(const ss_linear* layer, int64_t m, int path, size_t* out);
/* Creates the GEMM plans for every m in [1, max_m] (with_buffers: the layer's own buffers too). */
SS_API int ss_linear_warmup(ss_linear* layer, int64_t max_m, void* stream, int path, int with_buffers);
SS_API int ss_linear_release_buckets(ss_linear* layer);
/* Any of the outputs may be NULL. dense_below_m: 0 never dense, INT64_MAX always dense. */
SS_API int ss_linear_info(const ss_linear* layer, int64_t* n, int64_t* k, int64_t* k_sparse, int64_t* k_dense,
                   int64_t* dense_below_m);
/* Writes describe() (NUL-terminated, truncated to len) and stores its full length in *needed. */
SS_API int ss_linear_describe(const ss_linear* layer, char* buf, size_t len, size_t* needed);

/* Fused per-token quantization + lifting (src/kernels/quant_lift.cuh): x bf16 [m, k] -> q [m, k_out]
 * (out: SS_PRECISION_I8 / _E4M3 quantize with scale [m] f32; SS_PRECISION_BF16 lifts only, scale may
 * be NULL), lifted for pattern_n >= 2, plain for pattern_n == 0. k_out >= ss_slide_k (or k). */
/* Element types of ss_nm_mask's weight. */
enum { SS_DTYPE_F32 = 0, SS_DTYPE_BF16 = 1, SS_DTYPE_F16 = 2 };

/* keep:group magnitude mask (src/kernels/nm_mask.cuh, definition in include/slidesparse/nm_mask.hpp):
 * w [rows, k] on the device, row stride ldw elements, dtype SS_DTYPE_*; per row, aligned groups of
 * `group` (1..32) along k keep the min(keep, len) largest |w|, ties to the lower column.
 * mask: uint8 [rows, k] (contiguous) 0/1, or NULL; w_out: the masked weight [rows, k] (contiguous,
 * same dtype; kept bits unchanged, dropped +0; may equal w when ldw == k), or NULL; at least one
 * of the two. first_nan: NULL or a device uint64 that receives the smallest flat index r*k + c of
 * a NaN (UINT64_MAX when none; a group holding a NaN keeps nothing). Asynchronous on stream. */
SS_API int ss_nm_mask(const void* w, int dtype, int64_t rows, int64_t k, int64_t ldw, int keep, int group,
                      uint8_t* mask, void* w_out, uint64_t* first_nan, void* stream);

SS_API int ss_quant_lift(const void* x_bf16, int64_t m, int64_t k, void* q, int out_precision, int64_t k_out, float* scale,
                  int pattern_n, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* SLIDESPARSE_C_H_ */
