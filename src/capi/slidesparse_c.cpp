// slidesparse C ABI (include/slidesparse/slidesparse_c.h): exceptions become status codes plus a
// per-thread message; handles own the C++ objects. No logic of its own beyond argument mapping.
#include "slidesparse/slidesparse_c.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "backends/backend.hpp"
#include "backends/plan_cache.hpp"
#include "kernels/nm_mask.cuh"
#include "kernels/quant_lift.cuh"
#include "slidesparse/error.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/slide_linear.hpp"

static_assert(sizeof(uint64_t) == sizeof(unsigned long long), "first_nan is passed to atomicMin as unsigned long long");

struct ss_linear {
  slidesparse::SlideLinear layer;
};
struct ss_plan_cache {
  std::unique_ptr<slidesparse::PlanCache> cache;
};

namespace {

using slidesparse::Error;
using slidesparse::Status;

thread_local std::string g_last_error;

int fail(Status s, std::string msg) {
  g_last_error = std::move(msg);
  return static_cast<int>(s);
}

// Runs f, mapping every exception to a status code and the thread's message.
template <class F>
int guarded(const char* what, F&& f) noexcept {
  try {
    f();
    return 0;
  } catch (const Error& e) {
    return fail(e.status(), fmt::format("{}: {}", what, e.what()));
  } catch (const std::bad_alloc&) {
    return fail(Status::kIoError, fmt::format("{}: out of host memory", what));
  } catch (const std::exception& e) {
    return fail(Status::kInternal, fmt::format("{}: {}", what, e.what()));
  } catch (...) {
    return fail(Status::kInternal, fmt::format("{}: unknown exception", what));
  }
}

void require(bool ok, const std::string& msg) {
  if (!ok) throw Error(Status::kInvalidArgument, msg, __FILE__, __LINE__, "c_api");
}

slidesparse::LinearPrecision precision_of(int p) {
  switch (p) {
    case SS_PRECISION_I8: return slidesparse::LinearPrecision::kI8;
    case SS_PRECISION_E4M3: return slidesparse::LinearPrecision::kE4M3;
    case SS_PRECISION_BF16: return slidesparse::LinearPrecision::kBF16;
  }
  require(false, fmt::format("precision {} is not one of 0 (i8), 1 (e4m3), 2 (bf16)", p));
  return slidesparse::LinearPrecision::kI8;
}

slidesparse::LinearPath path_of(int p) {
  switch (p) {
    case SS_PATH_AUTO: return slidesparse::LinearPath::kAuto;
    case SS_PATH_SPARSE: return slidesparse::LinearPath::kSparse;
    case SS_PATH_DENSE: return slidesparse::LinearPath::kDense;
  }
  require(false, fmt::format("path {} is not one of 0 (auto), 1 (sparse), 2 (dense)", p));
  return slidesparse::LinearPath::kAuto;
}

slidesparse::DType dtype_of(int d) {
  switch (d) {
    case SS_DTYPE_F32: return slidesparse::DType::kF32;
    case SS_DTYPE_BF16: return slidesparse::DType::kBF16;
    case SS_DTYPE_F16: return slidesparse::DType::kF16;
  }
  require(false, fmt::format("dtype {} is not one of 0 (f32), 1 (bf16), 2 (f16)", d));
  return slidesparse::DType::kF32;
}

slidesparse::SlideLinearOptions options_of(int pattern_n, int precision, int dense_only, int64_t dense_below_m,
                                           int search, ss_plan_cache* cache) {
  slidesparse::SlideLinearOptions o;
  o.dense_only = dense_only != 0;
  if (!o.dense_only) o.pattern = slidesparse::Pattern::from_n(pattern_n);
  o.precision = precision_of(precision);
  o.dense_below_m = dense_below_m;
  o.search = search > 0;
  if (search > 0) o.search_iters = search;
  o.plan_cache = cache ? cache->cache.get() : nullptr;
  return o;
}

}  // namespace

extern "C" {

int ss_c_abi_version(void) { return SS_C_ABI_VERSION; }
const char* ss_last_error(void) { return g_last_error.c_str(); }
int ss_have_cusparselt(void) { return slidesparse::cusparselt_compiled() ? 1 : 0; }

int64_t ss_slide_k(int pattern_n, int64_t k) {
  if (pattern_n < slidesparse::kMinN || pattern_n > slidesparse::kMaxN || k < 0) return -1;
  return slidesparse::slide_k(slidesparse::Pattern::from_n(pattern_n), k);
}

int ss_plan_cache_create(ss_plan_cache** out) {
  return guarded("ss_plan_cache_create", [&] {
    require(out != nullptr, "out is null");
    auto c = std::make_unique<ss_plan_cache>();
    c->cache = std::make_unique<slidesparse::PlanCache>(slidesparse::backend_env().key());
    *out = c.release();
  });
}

void ss_plan_cache_destroy(ss_plan_cache* cache) { delete cache; }

int ss_linear_from_dense(const float* w_host, int64_t n, int64_t k, const float* bias_host, int pattern_n,
                         int precision, int dense_only, int64_t dense_below_m, int search, ss_plan_cache* cache,
                         ss_linear** out) {
  return guarded("ss_linear_from_dense", [&] {
    require(out != nullptr, "out is null");
    *out = nullptr;
    const auto o = options_of(pattern_n, precision, dense_only, dense_below_m, search, cache);
    *out = new ss_linear{slidesparse::SlideLinear::from_dense(w_host, n, k, o, bias_host)};
  });
}

int ss_linear_from_quantized(const void* w_q_host, const float* w_scale_host, int64_t n, int64_t k,
                             const float* bias_host, int pattern_n, int precision, int dense_only,
                             int64_t dense_below_m, int search, ss_plan_cache* cache, ss_linear** out) {
  return guarded("ss_linear_from_quantized", [&] {
    require(out != nullptr, "out is null");
    *out = nullptr;
    const auto o = options_of(pattern_n, precision, dense_only, dense_below_m, search, cache);
    *out = new ss_linear{slidesparse::SlideLinear::from_quantized(w_q_host, w_scale_host, n, k, o, bias_host)};
  });
}

int ss_linear_from_dense_device(const void* w_dev, int dtype, int64_t n, int64_t k, const float* bias_host,
                                int pattern_n, int precision, int dense_only, int64_t dense_below_m, int search,
                                ss_plan_cache* cache, void* stream, ss_linear** out) {
  return guarded("ss_linear_from_dense_device", [&] {
    require(out != nullptr, "out is null");
    *out = nullptr;
    const auto o = options_of(pattern_n, precision, dense_only, dense_below_m, search, cache);
    *out = new ss_linear{
        slidesparse::SlideLinear::from_dense_device(w_dev, dtype_of(dtype), n, k, o, bias_host, stream)};
  });
}

int ss_linear_update_weight_device(ss_linear* layer, const void* w_dev, int dtype, void* stream, int check) {
  return guarded("ss_linear_update_weight_device", [&] {
    require(layer != nullptr, "layer is null");
    layer->layer.update_weight_device(w_dev, dtype_of(dtype), stream, check != 0);
  });
}

int ss_linear_update_weight_codes_device(ss_linear* layer, const void* codes_dev, const float* scales_dev,
                                         void* stream, int check) {
  return guarded("ss_linear_update_weight_codes_device", [&] {
    require(layer != nullptr, "layer is null");
    layer->layer.update_weight_codes_device(codes_dev, scales_dev, stream, check != 0);
  });
}

int ss_linear_check_weight_updates(ss_linear* layer, void* stream) {
  return guarded("ss_linear_check_weight_updates", [&] {
    require(layer != nullptr, "layer is null");
    layer->layer.check_weight_updates(stream);
  });
}

void ss_linear_destroy(ss_linear* layer) { delete layer; }

int ss_linear_forward(ss_linear* layer, const void* x_bf16, int64_t m, void* y_bf16, void* stream, int path) {
  return guarded("ss_linear_forward", [&] {
    require(layer != nullptr, "layer is null");
    layer->layer.forward(x_bf16, m, y_bf16, stream, path_of(path));
  });
}

int ss_linear_forward_scratch(ss_linear* layer, const void* x_bf16, int64_t m, void* y_bf16, void* stream,
                              int path, void* scratch, size_t scratch_bytes) {
  return guarded("ss_linear_forward_scratch", [&] {
    require(layer != nullptr, "layer is null");
    layer->layer.forward_with_scratch(x_bf16, m, y_bf16, stream, path_of(path), scratch, scratch_bytes);
  });
}

int ss_linear_scratch_bytes(const ss_linear* layer, int64_t m, int path, size_t* out) {
  return guarded("ss_linear_scratch_bytes", [&] {
    require(layer != nullptr && out != nullptr, "layer or out is null");
    *out = layer->layer.scratch_bytes(m, path_of(path));
  });
}

int ss_linear_warmup(ss_linear* layer, int64_t max_m, void* stream, int path, int with_buffers) {
  return guarded("ss_linear_warmup", [&] {
    require(layer != nullptr, "layer is null");
    layer->layer.warmup(max_m, stream, path_of(path), with_buffers != 0);
  });
}

int ss_linear_release_buckets(ss_linear* layer) {
  return guarded("ss_linear_release_buckets", [&] {
    require(layer != nullptr, "layer is null");
    layer->layer.release_buckets();
  });
}

int ss_linear_info(const ss_linear* layer, int64_t* n, int64_t* k, int64_t* k_sparse, int64_t* k_dense,
                   int64_t* dense_below_m) {
  return guarded("ss_linear_info", [&] {
    require(layer != nullptr, "layer is null");
    const slidesparse::SlideLinear& l = layer->layer;
    if (n) *n = l.n();
    if (k) *k = l.k();
    if (k_sparse) *k_sparse = l.k_sparse();
    if (k_dense) *k_dense = l.k_dense();
    if (dense_below_m) *dense_below_m = l.dense_below_m();
  });
}

int ss_linear_describe(const ss_linear* layer, char* buf, size_t len, size_t* needed) {
  return guarded("ss_linear_describe", [&] {
    require(layer != nullptr, "layer is null");
    const std::string s = layer->layer.describe();
    if (needed) *needed = s.size();
    if (buf != nullptr && len > 0) {
      const size_t c = std::min(len - 1, s.size());
      std::memcpy(buf, s.data(), c);
      buf[c] = '\0';
    }
  });
}

int ss_quant_lift(const void* x_bf16, int64_t m, int64_t k, void* q, int out_precision, int64_t k_out, float* scale,
                  int pattern_n, void* stream) {
  return guarded("ss_quant_lift", [&] {
    slidesparse::QuantLiftParams p;
    p.x = x_bf16;
    p.in_dtype = slidesparse::DType::kBF16;
    p.m = m;
    p.k = k;
    p.ldx = k;
    p.q = q;
    switch (out_precision) {
      case SS_PRECISION_I8: p.out_dtype = slidesparse::DType::kI8; break;
      case SS_PRECISION_E4M3: p.out_dtype = slidesparse::DType::kE4M3; break;
      case SS_PRECISION_BF16: p.out_dtype = slidesparse::DType::kBF16; break;
      default: require(false, fmt::format("out_precision {} is not 0 (i8), 1 (e4m3) or 2 (bf16)", out_precision));
    }
    p.m_pad = m;
    p.k_out = k_out;
    p.ldq = k_out;
    p.scale = scale;
    p.pattern_n = pattern_n;
    const char* why = slidesparse::quant_lift_check(p);
    require(why == nullptr, why ? why : "");
    const cudaError_t e = slidesparse::quant_lift(p, static_cast<cudaStream_t>(stream));
    if (e != cudaSuccess)
      throw Error(Status::kInternal, fmt::format("quant_lift launch: {}", cudaGetErrorString(e)), __FILE__, __LINE__,
                  "cuda");
  });
}

int ss_nm_mask(const void* w, int dtype, int64_t rows, int64_t k, int64_t ldw, int keep, int group, uint8_t* mask,
               void* w_out, uint64_t* first_nan, void* stream) {
  return guarded("ss_nm_mask", [&] {
    slidesparse::NmMaskParams p;
    switch (dtype) {
      case SS_DTYPE_F32: p.dtype = slidesparse::DType::kF32; break;
      case SS_DTYPE_BF16: p.dtype = slidesparse::DType::kBF16; break;
      case SS_DTYPE_F16: p.dtype = slidesparse::DType::kF16; break;
      default: require(false, fmt::format("dtype {} is not 0 (f32), 1 (bf16) or 2 (f16)", dtype));
    }
    p.w = w;
    p.rows = rows;
    p.k = k;
    p.ldw = ldw;
    p.keep = keep;
    p.group = group;
    p.mask = mask;
    p.ldm = k;
    p.w_out = w_out;
    p.ldo = k;
    p.first_nan = reinterpret_cast<unsigned long long*>(first_nan);
    const char* why = slidesparse::nm_mask_check(p);
    require(why == nullptr, why ? fmt::format("{} (keep:group {}:{}, rows {}, k {}, ldw {})", why, keep, group,
                                              rows, k, ldw)
                                : "");
    const cudaError_t e = slidesparse::nm_mask(p, static_cast<cudaStream_t>(stream));
    if (e != cudaSuccess)
      throw Error(Status::kInternal, fmt::format("nm_mask launch: {}", cudaGetErrorString(e)), __FILE__, __LINE__,
                  "cuda");
  });
}

}  // extern "C"
