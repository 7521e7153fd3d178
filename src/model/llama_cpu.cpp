// CPU Llama forward pass in f32 (see include/slidesparse/llama.hpp).
#include "slidesparse/llama.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include <fmt/ranges.h>

#include "common/check.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/quant.hpp"
#include "slidesparse/safetensors.hpp"
#include "slidesparse/slide.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace fs = std::filesystem;
namespace {

int hw_threads(int requested) noexcept {
  if (requested > 0) return requested;
  const unsigned h = std::thread::hardware_concurrency();
  return h == 0 ? 1 : int(h);
}

// Runs fn(i) for i in [0, items) on up to num_threads threads (dynamic scheduling: items may
// differ in cost, e.g. causal attention rows). Rethrows the first exception.
template <class Fn>
void parallel_for(int64_t items, int num_threads, const Fn& fn) {
  const int nt = int(std::min<int64_t>(std::max(1, num_threads), items));
  if (nt <= 1) {
    for (int64_t i = 0; i < items; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr err;
  std::atomic<bool> failed{false};
  auto worker = [&]() {
    try {
      for (int64_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < items;) fn(i);
    } catch (...) {
      if (!failed.exchange(true)) err = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(size_t(nt - 1));
  for (int t = 1; t < nt; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (err) std::rethrow_exception(err);
}

// Tile sizes for the dense f32 matmul: kTileM rows of X share each streamed row of W^T; kTileN
// accumulators per row stay in L1 (4 x 256 floats = 4 KiB).
constexpr int64_t kTileM = 4;
constexpr int64_t kTileN = 256;

// Integer dot products of up to 4 int8 rows of X with one row of W (the W row is loaded once for
// all four). Integer sums are associative, so the compiler vectorizes, and every clone gives the
// same exact result.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
#endif
void dot4_i8(const int8_t* a, int64_t rows, const int8_t* b, int64_t k, int32_t* out) noexcept {
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  if (rows == 4) {
    for (int64_t i = 0; i < k; ++i) {
      const int32_t w = b[i];
      s0 += int32_t(a[i]) * w;
      s1 += int32_t(a[k + i]) * w;
      s2 += int32_t(a[2 * k + i]) * w;
      s3 += int32_t(a[3 * k + i]) * w;
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    int32_t acc = 0;
    for (int64_t i = 0; i < k; ++i) acc += int32_t(a[r * k + i]) * int32_t(b[i]);
    out[r] = acc;
  }
}

// The largest k whose int32 sum of int8 products cannot overflow: 128*128*k < 2^31.
constexpr int64_t kMaxInt32K = (int64_t(1) << 31) / (128 * 128) - 1;

// Y[m,n] = float(sum_k xq[m,k] wq[n,k]) * s_x[m] * s_w[n].
void int8_gemm(const int8_t* xq, const float* sx, const int8_t* wq, const float* sw, int64_t m, int64_t n,
               int64_t k, float* y, int num_threads) {
  SLIDESPARSE_CHECK(k <= kMaxInt32K, Status::kUnsupported, "INT8 linear: k = {} exceeds the int32 accumulator limit {}",
                    k, kMaxInt32K);
  constexpr int64_t kBlockN = 64, kRows = 4;
  const int64_t nb = (n + kBlockN - 1) / kBlockN, mb = (m + kRows - 1) / kRows;
  parallel_for(mb * nb, num_threads, [&](int64_t item) {
    const int64_t r0 = (item / nb) * kRows, rows = std::min(kRows, m - r0);
    const int64_t n0 = (item % nb) * kBlockN, n1 = std::min(n, n0 + kBlockN);
    int32_t acc[kRows];
    for (int64_t j = n0; j < n1; ++j) {
      dot4_i8(xq + r0 * k, rows, wq + j * k, k, acc);
      for (int64_t r = 0; r < rows; ++r) y[(r0 + r) * n + j] = float(acc[r]) * sx[r0 + r] * sw[j];
    }
  });
}

std::vector<float> to_f32(DType dt, const uint8_t* p, int64_t count, const std::string& name) {
  std::vector<float> out(static_cast<size_t>(count));
  if (dt == DType::kF32) {
    std::memcpy(out.data(), p, size_t(count) * 4);
  } else if (dt == DType::kBF16 || dt == DType::kF16) {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t b;
      std::memcpy(&b, p + 2 * i, 2);
      out[size_t(i)] = dt == DType::kBF16 ? bf16_to_f32(b) : f16_to_f32(b);
    }
  } else {
    SLIDESPARSE_FAIL(Status::kUnsupported, "tensor '{}' has dtype {}; the CPU model reads f32, f16 and bf16", name,
                     dtype_token(dt));
  }
  return out;
}

void rms_norm(const float* x, const float* w, int64_t t, int64_t h, float eps, float* out) {
  for (int64_t r = 0; r < t; ++r) {
    const float* xr = x + r * h;
    float ss = 0.0f;
    for (int64_t i = 0; i < h; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / float(h) + eps);
    float* o = out + r * h;
    for (int64_t i = 0; i < h; ++i) o[i] = w[i] * (xr[i] * inv);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
DenseLinear::DenseLinear(const float* w, int64_t n, int64_t k, int num_threads)
    : n_(n), k_(k), num_threads_(hw_threads(num_threads)), wt_(size_t(n * k)) {
  SLIDESPARSE_CHECK(n > 0 && k > 0 && w != nullptr, Status::kInvalidArgument, "DenseLinear: n = {}, k = {}", n, k);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < k; ++i) wt_[size_t(i * n + j)] = w[j * k + i];
}

std::vector<float> DenseLinear::weight() const {
  std::vector<float> w(size_t(n_ * k_));
  for (int64_t j = 0; j < n_; ++j)
    for (int64_t i = 0; i < k_; ++i) w[size_t(j * k_ + i)] = wt_[size_t(i * n_ + j)];
  return w;
}

namespace {
// One tile of Y: rows [r0, r1) x columns [n0, n1) of X[m,k] . W^T, with W^T [k, n]. Compiled for
// AVX-512, AVX2 and baseline x86-64, chosen at load time (target_clones). The arithmetic is the
// same in every clone -- one multiply and one add per product in k order, never fused
// (-ffp-contract=off) -- so results do not depend on the machine.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
#endif
void dense_tile(const float* x, const float* wt, float* y, int64_t n, int64_t k, int64_t r0, int64_t r1, int64_t n0,
                int64_t n1) {
  const int64_t w = n1 - n0;
  alignas(64) float acc[kTileM][kTileN];
  for (int64_t r = 0; r < kTileM; ++r)
    for (int64_t j = 0; j < w; ++j) acc[r][j] = 0.0f;
  if (r1 - r0 == kTileM) {
    const float* x0 = x + r0 * k;
    for (int64_t i = 0; i < k; ++i) {
      const float* wr = wt + i * n + n0;
      const float a0 = x0[i], a1 = x0[k + i], a2 = x0[2 * k + i], a3 = x0[3 * k + i];
      for (int64_t j = 0; j < w; ++j) {
        const float b = wr[j];
        acc[0][j] += a0 * b;
        acc[1][j] += a1 * b;
        acc[2][j] += a2 * b;
        acc[3][j] += a3 * b;
      }
    }
  } else {
    for (int64_t r = r0; r < r1; ++r) {
      float* ar = acc[r - r0];
      for (int64_t i = 0; i < k; ++i) {
        const float* wr = wt + i * n + n0;
        const float a = x[r * k + i];
        for (int64_t j = 0; j < w; ++j) ar[j] += a * wr[j];
      }
    }
  }
  for (int64_t r = r0; r < r1; ++r) std::memcpy(y + r * n + n0, acc[r - r0], size_t(w) * sizeof(float));
}
}  // namespace

void DenseLinear::apply(const float* x, int64_t m, float* y) const {
  const int64_t mt = (m + kTileM - 1) / kTileM, nt = (n_ + kTileN - 1) / kTileN;
  const int64_t n = n_, k = k_;
  const float* wt = wt_.data();
  parallel_for(mt * nt, num_threads_, [&](int64_t item) {
    // Items are ordered n-major so that neighbouring threads share the same W^T column block.
    const int64_t r0 = (item % mt) * kTileM, r1 = std::min(m, r0 + kTileM);
    const int64_t n0 = (item / mt) * kTileN, n1 = std::min(n, n0 + kTileN);
    dense_tile(x, wt, y, n, k, r0, r1, n0, n1);
  });
}

namespace {
// W'[n, k'] from W[n, k] (dtype bytes), or the stored one checked by unsliding it back to W.
template <typename T>
std::vector<T> slid_or_checked(Pattern p, DType dt, const std::vector<T>& w, int64_t n, int64_t k, int64_t k_slide,
                               const T* stored, int num_threads, const char* what) {
  std::vector<T> ws(size_t(n * k_slide));
  if (stored == nullptr) {
    slide_weight(p, dt, w.data(), n, k, ws.data(), k_slide, what, num_threads);
    return ws;
  }
  std::memcpy(ws.data(), stored, ws.size() * sizeof(T));
  std::vector<T> back(w.size());
  unslide_weight(p, dt, ws.data(), n, k_slide, back.data(), k, what);
  for (size_t i = 0; i < w.size(); ++i) {
    // Compare values, not bits: -0 and +0 are the same weight.
    const bool same = dt == DType::kE4M3 ? ((uint8_t(back[i]) & 0x7F) == 0 && (uint8_t(w[i]) & 0x7F) == 0) ||
                                               back[i] == w[i]
                                         : back[i] == w[i];
    SLIDESPARSE_CHECK(same, Status::kInvalidData, "{}: stored slide_weight does not reproduce the weight at [{}, {}]",
                      what, int64_t(i) / k, int64_t(i) % k);
  }
  return ws;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
Int8Linear Int8Linear::quantize(const float* w, int64_t n, int64_t k, int num_threads) {
  SLIDESPARSE_CHECK(n > 0 && k > 0 && w != nullptr, Status::kInvalidArgument, "Int8Linear: n = {}, k = {}", n, k);
  std::vector<int8_t> q(size_t(n * k));
  std::vector<float> s(static_cast<size_t>(n));
  quantize_rows_i8(DType::kF32, w, n, k, q.data(), s.data(), hw_threads(num_threads));
  return Int8Linear(std::move(q), std::move(s), n, k, num_threads);
}

Int8Linear::Int8Linear(std::vector<int8_t> w_q, std::vector<float> w_scale, int64_t n, int64_t k, int num_threads)
    : n_(n), k_(k), num_threads_(hw_threads(num_threads)), w_q_(std::move(w_q)), w_scale_(std::move(w_scale)) {
  SLIDESPARSE_CHECK(n > 0 && k > 0 && int64_t(w_q_.size()) == n * k && int64_t(w_scale_.size()) == n,
                    Status::kInvalidArgument, "Int8Linear: n = {}, k = {}, {} weights, {} scales", n, k, w_q_.size(),
                    w_scale_.size());
}

void Int8Linear::apply(const float* x, int64_t m, float* y) const {
  if (m == 0) return;
  std::vector<int8_t> xq(size_t(m * k_));
  std::vector<float> sx(static_cast<size_t>(m));
  quantize_rows_i8(DType::kF32, x, m, k_, xq.data(), sx.data(), num_threads_);
  int8_gemm(xq.data(), sx.data(), w_q_.data(), w_scale_.data(), m, n_, k_, y, num_threads_);
}

SlidInt8Linear::SlidInt8Linear(Pattern p, const Int8Linear& base, const int8_t* w_slide)
    : p_(p), n_(base.n()), k_(base.k()), k_slide_(slide_k(p, base.k())), num_threads_(base.num_threads()),
      w_slide_(slid_or_checked(p, DType::kI8, base.weight_q(), n_, k_, k_slide_, w_slide, num_threads_,
                               "SlidInt8Linear")),
      w_scale_(base.weight_scale()) {}

void SlidInt8Linear::apply(const float* x, int64_t m, float* y) const {
  if (m == 0) return;
  std::vector<int8_t> xq(size_t(m * k_)), xl(size_t(m * k_slide_));
  std::vector<float> sx(static_cast<size_t>(m));
  quantize_rows_i8(DType::kF32, x, m, k_, xq.data(), sx.data(), num_threads_);
  lift_activations(p_, DType::kI8, xq.data(), m, k_, xl.data(), k_slide_);
  int8_gemm(xl.data(), sx.data(), w_slide_.data(), w_scale_.data(), m, n_, k_slide_, y, num_threads_);
}

// ---------------------------------------------------------------------------------------------
namespace {
std::vector<float> decode_e4m3(const uint8_t* q, size_t count) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = e4m3_to_f32(q[i]);
  return out;
}
// Per-token E4M3 quantization of x[m,k], returned decoded to f32, with the scales.
void quantize_decode_e4m3(const float* x, int64_t m, int64_t k, int num_threads, std::vector<float>& xd,
                          std::vector<float>& sx) {
  std::vector<uint8_t> xq(size_t(m * k));
  sx.resize(size_t(m));
  quantize_rows_e4m3(DType::kF32, x, m, k, xq.data(), sx.data(), num_threads);
  xd = decode_e4m3(xq.data(), xq.size());
}
void apply_scales(float* y, int64_t m, int64_t n, const float* sx, const float* sw) {
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) y[r * n + j] = y[r * n + j] * sx[r] * sw[j];
}
}  // namespace

Fp8Linear Fp8Linear::quantize(const float* w, int64_t n, int64_t k, int num_threads) {
  SLIDESPARSE_CHECK(n > 0 && k > 0 && w != nullptr, Status::kInvalidArgument, "Fp8Linear: n = {}, k = {}", n, k);
  std::vector<uint8_t> q(size_t(n * k));
  std::vector<float> s(static_cast<size_t>(n));
  quantize_rows_e4m3(DType::kF32, w, n, k, q.data(), s.data(), hw_threads(num_threads));
  return Fp8Linear(std::move(q), std::move(s), n, k, num_threads);
}

namespace {
// The codes of an Fp8Linear's weight, validated, as f32 values.
std::vector<float> checked_decode(const std::vector<uint8_t>& q, size_t scales, int64_t n, int64_t k) {
  SLIDESPARSE_CHECK(n > 0 && k > 0 && int64_t(q.size()) == n * k && int64_t(scales) == n, Status::kInvalidArgument,
                    "Fp8Linear: n = {}, k = {}, {} weights, {} scales", n, k, q.size(), scales);
  for (size_t i = 0; i < q.size(); ++i)
    SLIDESPARSE_CHECK((q[i] & 0x7F) != 0x7F, Status::kInvalidData, "Fp8Linear: weight [{}, {}] is NaN",
                      int64_t(i) / k, int64_t(i) % k);
  return decode_e4m3(q.data(), q.size());
}
}  // namespace

Fp8Linear::Fp8Linear(std::vector<uint8_t> w_q, std::vector<float> w_scale, int64_t n, int64_t k, int num_threads)
    : n_(n), k_(k), num_threads_(hw_threads(num_threads)), w_q_(std::move(w_q)), w_scale_(std::move(w_scale)),
      decoded_(checked_decode(w_q_, w_scale_.size(), n, k).data(), n, k, num_threads) {}

void Fp8Linear::apply(const float* x, int64_t m, float* y) const {
  if (m == 0) return;
  std::vector<float> xd, sx;
  quantize_decode_e4m3(x, m, k_, num_threads_, xd, sx);
  decoded_.apply(xd.data(), m, y);
  apply_scales(y, m, n_, sx.data(), w_scale_.data());
}


SlidDenseLinear::SlidDenseLinear(Pattern p, const DenseLinear& base, const float* w_slide)
    : p_(p), n_(base.n()), k_(base.k()), k_slide_(slide_k(p, base.k())), num_threads_(base.num_threads()) {
  const std::vector<float> ws =
      slid_or_checked(p, DType::kF32, base.weight(), n_, k_, k_slide_, w_slide, num_threads_, "SlidDenseLinear");
  dense_ = std::make_unique<DenseLinear>(ws.data(), n_, k_slide_, num_threads_);
}

void SlidDenseLinear::apply(const float* x, int64_t m, float* y) const {
  if (m == 0) return;
  std::vector<float> xl(size_t(m * k_slide_));
  lift_activations(p_, DType::kF32, x, m, k_, xl.data(), k_slide_);
  dense_->apply(xl.data(), m, y);
}

SlidFp8Linear::SlidFp8Linear(Pattern p, const Fp8Linear& base, const uint8_t* w_slide)
    : p_(p), n_(base.n()), k_(base.k()), k_slide_(slide_k(p, base.k())), num_threads_(base.num_threads()),
      w_scale_(base.weight_scale()) {
  const std::vector<uint8_t> ws =
      slid_or_checked(p, DType::kE4M3, base.weight_q(), n_, k_, k_slide_, w_slide, num_threads_, "SlidFp8Linear");
  decoded_ = std::make_unique<DenseLinear>(decode_e4m3(ws.data(), ws.size()).data(), n_, k_slide_, num_threads_);
}

void SlidFp8Linear::apply(const float* x, int64_t m, float* y) const {
  if (m == 0) return;
  std::vector<float> xd, sx, xl(size_t(m * k_slide_));
  quantize_decode_e4m3(x, m, k_, num_threads_, xd, sx);
  lift_activations(p_, DType::kF32, xd.data(), m, k_, xl.data(), k_slide_);
  decoded_->apply(xl.data(), m, y);
  apply_scales(y, m, n_, sx.data(), w_scale_.data());
}

const char* linear_mode_name(LinearMode m) noexcept {
  switch (m) {
    case LinearMode::kStored: return "stored";
    case LinearMode::kInt8: return "int8";
    case LinearMode::kFp8: return "fp8";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
LlamaConfig parse_llama_config(const std::string& text, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    SLIDESPARSE_FAIL(Status::kBadFormat, "{}: not JSON: {}", what, e.what());
  }
  SLIDESPARSE_CHECK(j.is_object(), Status::kBadFormat, "{}: not a JSON object", what);
  auto get_int = [&](const char* key, int64_t fallback, bool required) -> int64_t {
    if (!j.contains(key) || j[key].is_null()) {
      SLIDESPARSE_CHECK(!required, Status::kBadFormat, "{}: missing \"{}\"", what, key);
      return fallback;
    }
    SLIDESPARSE_CHECK(j[key].is_number_integer() && j[key].get<int64_t>() > 0, Status::kBadFormat,
                      "{}: \"{}\" must be a positive integer, got {}", what, key, j[key].dump());
    return j[key].get<int64_t>();
  };
  auto get_num = [&](const char* key, double fallback) -> double {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    SLIDESPARSE_CHECK(j[key].is_number() && j[key].get<double>() > 0, Status::kBadFormat,
                      "{}: \"{}\" must be a positive number, got {}", what, key, j[key].dump());
    return j[key].get<double>();
  };
  LlamaConfig c;
  c.hidden = get_int("hidden_size", 0, true);
  c.intermediate = get_int("intermediate_size", 0, true);
  c.layers = get_int("num_hidden_layers", 0, true);
  c.heads = get_int("num_attention_heads", 0, true);
  c.kv_heads = get_int("num_key_value_heads", c.heads, false);
  c.vocab = get_int("vocab_size", 0, true);
  SLIDESPARSE_CHECK(c.hidden % c.heads == 0 || j.contains("head_dim"), Status::kBadFormat,
                    "{}: hidden_size {} is not a multiple of num_attention_heads {}", what, c.hidden, c.heads);
  c.head_dim = get_int("head_dim", c.hidden / c.heads, false);
  SLIDESPARSE_CHECK(c.heads % c.kv_heads == 0, Status::kBadFormat,
                    "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", what, c.heads, c.kv_heads);
  SLIDESPARSE_CHECK(c.head_dim % 2 == 0, Status::kBadFormat, "{}: head_dim {} must be even for RoPE", what,
                    c.head_dim);
  c.rms_norm_eps = get_num("rms_norm_eps", 1e-6);
  c.rope_theta = get_num("rope_theta", 10000.0);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    SLIDESPARSE_FAIL(Status::kUnsupported, "{}: rope_scaling {} is not supported (plain RoPE only)", what,
                     j["rope_scaling"].dump());
  }
  if (j.contains("tie_word_embeddings")) {
    SLIDESPARSE_CHECK(j["tie_word_embeddings"].is_boolean(), Status::kBadFormat,
                      "{}: \"tie_word_embeddings\" must be a boolean", what);
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  return c;
}

struct LlamaModel::Impl {
  struct Layer {
    std::string prefix;  // "model.layers.<l>."
    std::vector<float> input_norm, post_norm;
    std::unique_ptr<Linear> q, k, v, o, gate, up, down;
  };
  LlamaConfig cfg;
  int num_threads = 1;
  std::vector<float> embed;  // [vocab, hidden]
  std::vector<Layer> layers;
  std::vector<float> final_norm;
  std::unique_ptr<Linear> lm_head;
  std::vector<float> inv_freq;  // [head_dim / 2]
  std::string description;
  LinearObserver observer;
};

LlamaModel::LlamaModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaModel::LlamaModel(LlamaModel&&) noexcept = default;
LlamaModel& LlamaModel::operator=(LlamaModel&&) noexcept = default;
LlamaModel::~LlamaModel() = default;
const LlamaConfig& LlamaModel::config() const noexcept { return impl_->cfg; }
int LlamaModel::num_threads() const noexcept { return impl_->num_threads; }
const std::string& LlamaModel::describe() const noexcept { return impl_->description; }
void LlamaModel::set_linear_observer(LinearObserver observer) { impl_->observer = std::move(observer); }

LlamaModel LlamaModel::load(const std::string& dir, const LlamaLoadOptions& opts) {
  const fs::path cfg_path = fs::path(dir) / "config.json";
  std::ifstream in(cfg_path);
  SLIDESPARSE_CHECK(in.good(), Status::kNotFound, "{}: cannot open config.json", cfg_path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  auto impl = std::make_unique<Impl>();
  impl->cfg = parse_llama_config(ss.str(), cfg_path.string());
  impl->num_threads = hw_threads(opts.num_threads);
  const LlamaConfig& c = impl->cfg;

  const Checkpoint ck = Checkpoint::open(dir);
  std::vector<SafetensorsFile> files;
  std::map<std::string, std::pair<size_t, const TensorInfo*>> where;
  files.reserve(ck.shards.size());
  for (size_t i = 0; i < ck.shards.size(); ++i) files.push_back(SafetensorsFile::open(ck.shard_path(i)));
  for (size_t i = 0; i < files.size(); ++i)
    for (const auto& t : files[i].tensors()) where[t.name] = {i, &t};

  auto tensor = [&](const std::string& name, std::vector<int64_t> shape) {
    auto it = where.find(name);
    SLIDESPARSE_CHECK(it != where.end(), Status::kNotFound, "{}: tensor '{}' not found", dir, name);
    const TensorInfo& t = *it->second.second;
    SLIDESPARSE_CHECK(t.shape == shape, Status::kBadFormat, "{}: tensor '{}' has shape [{}], config says [{}]", dir,
                      name, fmt::join(t.shape, ", "), fmt::join(shape, ", "));
    const SafetensorsFile& f = files[it->second.first];
    std::vector<float> v = to_f32(t.dtype, f.data(t), t.numel(), name);
    f.release(t);
    return v;
  };
  const int nt = impl->num_threads;

  // The pattern: from the checkpoint's slidesparse metadata (written by prune/slide) or the options.
  std::optional<Pattern> pattern = opts.pattern;
  if (!files.empty()) {
    const auto& md = files[0].metadata();
    if (auto it = md.find(kMetadataKey); it != md.end()) {
      const SlideMetadata meta = SlideMetadata::from_json(it->second, ck.shard_path(0));
      SLIDESPARSE_CHECK(!pattern || *pattern == meta.pattern, Status::kInvalidArgument,
                        "{}: the checkpoint is pruned to {}:{}, but pattern {}:{} was requested", dir,
                        meta.pattern.keep(), meta.pattern.group(), pattern->keep(), pattern->group());
      pattern = meta.pattern;
    }
  }
  SLIDESPARSE_CHECK(!opts.slide || pattern, Status::kInvalidArgument,
                    "{}: sliding needs a pattern; the checkpoint has no slidesparse metadata, so give one", dir);
  std::map<std::string, int> kinds;  // for describe()
  const std::string slid_label =
      pattern ? fmt::format(" (slid {}:{})", pattern->keep(), pattern->group()) : std::string();

  // A stored tensor's raw bytes (kNotFound / kBadFormat on a missing name or wrong shape).
  auto raw = [&](const std::string& name, const std::vector<int64_t>& shape) -> std::vector<uint8_t> {
    auto it = where.find(name);
    SLIDESPARSE_CHECK(it != where.end(), Status::kNotFound, "{}: tensor '{}' not found", dir, name);
    const TensorInfo& t = *it->second.second;
    SLIDESPARSE_CHECK(t.shape == shape, Status::kBadFormat, "{}: tensor '{}' has shape [{}], expected [{}]", dir, name,
                      fmt::join(t.shape, ", "), fmt::join(shape, ", "));
    const SafetensorsFile& f = files[it->second.first];
    const uint8_t* p = f.data(t);
    std::vector<uint8_t> v(p, p + t.numel() * int64_t(dtype_size(t.dtype)));
    f.release(t);
    return v;
  };
  auto dtype_of = [&](const std::string& name) -> std::optional<DType> {
    auto it = where.find(name);
    if (it == where.end()) return std::nullopt;
    return it->second.second->dtype;
  };
  auto linear = [&](const std::string& prefix, int64_t n, int64_t k) -> std::unique_ptr<Linear> {
    const std::string wname = prefix + ".weight";
    const std::optional<DType> wdt = dtype_of(wname);
    SLIDESPARSE_CHECK(wdt.has_value(), Status::kNotFound, "{}: tensor '{}' not found", dir, wname);
    const int64_t ks = pattern ? slide_k(*pattern, k) : 0;
    // The stored slid weight's dtype (kBool: none, or not sliding).
    const DType sdt = opts.slide ? dtype_of(prefix + ".slide_weight").value_or(DType::kBool) : DType::kBool;
    auto note = [&](const std::string& kind) { ++kinds[kind + (opts.slide ? slid_label : std::string())]; };
    std::unique_ptr<Linear> out;
    if (*wdt == DType::kI8 || *wdt == DType::kE4M3) {
      const bool i8 = *wdt == DType::kI8;
      SLIDESPARSE_CHECK(opts.mode == LinearMode::kStored || opts.mode == (i8 ? LinearMode::kInt8 : LinearMode::kFp8),
                        Status::kInvalidArgument, "{}: '{}' is stored as {}; it cannot run as {}", dir, wname,
                        dtype_token(*wdt), linear_mode_name(opts.mode));
      const std::string sname = prefix + ".weight_scale";
      SLIDESPARSE_CHECK(dtype_of(sname) == DType::kF32, Status::kBadFormat,
                        "{}: quantized '{}' needs an F32 [{}] '{}'", dir, wname, n, sname);
      const std::vector<uint8_t> sb = raw(sname, {n});
      std::vector<float> scale(static_cast<size_t>(n));
      std::memcpy(scale.data(), sb.data(), sb.size());
      for (int64_t j = 0; j < n; ++j)
        SLIDESPARSE_CHECK(std::isfinite(scale[size_t(j)]) && scale[size_t(j)] > 0, Status::kInvalidData,
                          "{}: '{}'[{}] = {} is not a positive finite scale", dir, sname, j, scale[size_t(j)]);
      std::vector<uint8_t> q = raw(wname, {n, k});
      std::vector<uint8_t> stored_slide;
      if (sdt != DType::kBool) {
        SLIDESPARSE_CHECK(sdt == *wdt, Status::kBadFormat, "{}: '{}.slide_weight' is {}, the weight is {}", dir,
                          prefix, dtype_token(sdt), dtype_token(*wdt));
        stored_slide = raw(prefix + ".slide_weight", {n, ks});
      }
      const void* ws = stored_slide.empty() ? nullptr : stored_slide.data();
      if (i8) {
        Int8Linear base(std::vector<int8_t>(q.begin(), q.end()), std::move(scale), n, k, nt);
        note("Int8Linear");
        if (opts.slide) return std::make_unique<SlidInt8Linear>(*pattern, base, static_cast<const int8_t*>(ws));
        return std::make_unique<Int8Linear>(std::move(base));
      }
      Fp8Linear base(std::move(q), std::move(scale), n, k, nt);
      note("Fp8Linear");
      if (opts.slide) return std::make_unique<SlidFp8Linear>(*pattern, base, static_cast<const uint8_t*>(ws));
      return std::make_unique<Fp8Linear>(std::move(base));
    }
    const std::vector<float> w = tensor(wname, {n, k});
    if (opts.mode == LinearMode::kInt8) {
      Int8Linear base = Int8Linear::quantize(w.data(), n, k, nt);
      note("Int8Linear");
      if (opts.slide) return std::make_unique<SlidInt8Linear>(*pattern, base);
      return std::make_unique<Int8Linear>(std::move(base));
    }
    if (opts.mode == LinearMode::kFp8) {
      Fp8Linear base = Fp8Linear::quantize(w.data(), n, k, nt);
      note("Fp8Linear");
      if (opts.slide) return std::make_unique<SlidFp8Linear>(*pattern, base);
      return std::make_unique<Fp8Linear>(std::move(base));
    }
    DenseLinear base(w.data(), n, k, nt);
    note("DenseLinear");
    if (!opts.slide) return std::make_unique<DenseLinear>(std::move(base));
    // A float checkpoint's stored slide_weight has the weight's dtype; compare it as f32.
    std::vector<float> stored_slide;
    if (sdt != DType::kBool) stored_slide = tensor(prefix + ".slide_weight", {n, ks});
    return std::make_unique<SlidDenseLinear>(*pattern, base, stored_slide.empty() ? nullptr : stored_slide.data());
  };

  const int64_t h = c.hidden, qd = c.heads * c.head_dim, kvd = c.kv_heads * c.head_dim, ff = c.intermediate;
  impl->embed = tensor("model.embed_tokens.weight", {c.vocab, h});
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Impl::Layer L;
    L.input_norm = tensor(p + "input_layernorm.weight", {h});
    L.post_norm = tensor(p + "post_attention_layernorm.weight", {h});
    L.prefix = p;
    L.q = linear(p + "self_attn.q_proj", qd, h);
    L.k = linear(p + "self_attn.k_proj", kvd, h);
    L.v = linear(p + "self_attn.v_proj", kvd, h);
    L.o = linear(p + "self_attn.o_proj", h, qd);
    L.gate = linear(p + "mlp.gate_proj", ff, h);
    L.up = linear(p + "mlp.up_proj", ff, h);
    L.down = linear(p + "mlp.down_proj", h, ff);
    impl->layers.push_back(std::move(L));
  }
  impl->final_norm = tensor("model.norm.weight", {h});
  if (c.tie_word_embeddings) {
    impl->lm_head = std::make_unique<DenseLinear>(impl->embed.data(), c.vocab, h, nt);
  } else {
    const std::vector<float> w = tensor("lm_head.weight", {c.vocab, h});
    impl->lm_head = std::make_unique<DenseLinear>(w.data(), c.vocab, h, nt);
  }
  for (const auto& [kind, count] : kinds)
    impl->description += fmt::format("{}{} x {}", impl->description.empty() ? "" : ", ", count, kind);
  // HF computes inv_freq = 1 / theta^(2i/d) in f32; we round the double value to f32 once.
  impl->inv_freq.resize(size_t(c.head_dim / 2));
  for (int64_t i = 0; i < c.head_dim / 2; ++i)
    impl->inv_freq[size_t(i)] = float(1.0 / std::pow(c.rope_theta, double(2 * i) / double(c.head_dim)));
  return LlamaModel(std::move(impl));
}

void LlamaModel::transform_linears(const LinearTransform& f, bool include_lm_head) {
  auto apply = [&](const std::string& name, std::unique_ptr<Linear>& slot) {
    std::unique_ptr<Linear> next = f(name, *slot);
    if (!next) return;
    SLIDESPARSE_CHECK(next->n() == slot->n() && next->k() == slot->k(), Status::kInvalidArgument,
                      "transform_linears: '{}' replacement is [{}, {}], expected [{}, {}]", name, next->n(),
                      next->k(), slot->n(), slot->k());
    slot = std::move(next);
  };
  for (size_t l = 0; l < impl_->layers.size(); ++l) {
    auto& L = impl_->layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    apply(p + "self_attn.q_proj", L.q);
    apply(p + "self_attn.k_proj", L.k);
    apply(p + "self_attn.v_proj", L.v);
    apply(p + "self_attn.o_proj", L.o);
    apply(p + "mlp.gate_proj", L.gate);
    apply(p + "mlp.up_proj", L.up);
    apply(p + "mlp.down_proj", L.down);
  }
  if (include_lm_head) apply("lm_head", impl_->lm_head);
}

std::vector<float> LlamaModel::embed(const std::vector<int32_t>& tokens) const {
  const Impl& m = *impl_;
  const LlamaConfig& c = m.cfg;
  const int64_t T = int64_t(tokens.size()), h = c.hidden;
  SLIDESPARSE_CHECK(T > 0, Status::kInvalidArgument, "forward: empty token sequence");
  for (int64_t t = 0; t < T; ++t)
    SLIDESPARSE_CHECK(tokens[size_t(t)] >= 0 && tokens[size_t(t)] < c.vocab, Status::kInvalidArgument,
                      "forward: token {} at position {} is outside [0, {})", tokens[size_t(t)], t, c.vocab);
  std::vector<float> x(size_t(T * h));
  for (int64_t t = 0; t < T; ++t)
    std::memcpy(&x[size_t(t * h)], &m.embed[size_t(tokens[size_t(t)]) * size_t(h)], size_t(h) * sizeof(float));
  return x;
}

std::vector<float> LlamaModel::logits(const float* x, int64_t T) const {
  const Impl& m = *impl_;
  const LlamaConfig& c = m.cfg;
  SLIDESPARSE_CHECK(x != nullptr && T > 0, Status::kInvalidArgument, "logits: T = {}", T);
  std::vector<float> xn(size_t(T * c.hidden));
  rms_norm(x, m.final_norm.data(), T, c.hidden, float(c.rms_norm_eps), xn.data());
  std::vector<float> out(size_t(T * c.vocab));
  m.lm_head->apply(xn.data(), T, out.data());
  return out;
}

std::vector<float> LlamaModel::forward(const std::vector<int32_t>& tokens) const {
  std::vector<float> x = embed(tokens);
  const int64_t T = int64_t(tokens.size());
  for (int64_t l = 0; l < int64_t(impl_->layers.size()); ++l) apply_layer(l, x.data(), T);
  return logits(x.data(), T);
}

void LlamaModel::apply_layer(int64_t layer, float* x_ptr, int64_t T) const {
  const Impl& m = *impl_;
  const LlamaConfig& c = m.cfg;
  SLIDESPARSE_CHECK(layer >= 0 && layer < int64_t(m.layers.size()) && x_ptr != nullptr && T > 0,
                    Status::kInvalidArgument, "apply_layer: layer {} of {}, T = {}", layer, m.layers.size(), T);
  const int64_t h = c.hidden, hd = c.head_dim, half = hd / 2;
  const int64_t nh = c.heads, nkv = c.kv_heads, group = nh / nkv, qd = nh * hd, kvd = nkv * hd, ff = c.intermediate;
  const float eps = float(c.rms_norm_eps);
  const int nt = m.num_threads;
  float* x = x_ptr;
  std::vector<float> xn(size_t(T * h)), tmp(size_t(T * h));
  // RoPE tables [T, half]: angle = pos * inv_freq in f32 as HF does, cos/sin of that f32 angle.
  std::vector<float> cos_t(size_t(T * half)), sin_t(size_t(T * half));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float ang = float(t) * m.inv_freq[size_t(i)];
      cos_t[size_t(t * half + i)] = float(std::cos(double(ang)));
      sin_t[size_t(t * half + i)] = float(std::sin(double(ang)));
    }
  auto rope = [&](float* v, int64_t heads) {
    for (int64_t t = 0; t < T; ++t) {
      const float* cs = &cos_t[size_t(t * half)];
      const float* sn = &sin_t[size_t(t * half)];
      for (int64_t hh = 0; hh < heads; ++hh) {
        float* p = v + (t * heads + hh) * hd;
        for (int64_t i = 0; i < half; ++i) {
          const float a = p[i], b = p[i + half];
          p[i] = a * cs[i] - b * sn[i];
          p[i + half] = b * cs[i] + a * sn[i];
        }
      }
    }
  };

  std::vector<float> q(size_t(T * qd)), k(size_t(T * kvd)), v(size_t(T * kvd)), att(size_t(T * qd));
  std::vector<float> kt(size_t(kvd * T));  // K transposed per kv head: [nkv][hd][T]
  std::vector<float> g(size_t(T * ff)), u(size_t(T * ff));
  const float scale = float(1.0 / std::sqrt(double(hd)));
  constexpr int64_t kRowsPerItem = 16;  // query rows per attention work item
  const int64_t row_blocks = (T + kRowsPerItem - 1) / kRowsPerItem;

  auto observe = [&](const Impl::Layer& L, const char* proj, const float* in, int64_t k_in) {
    if (m.observer) m.observer(L.prefix + proj, in, T, k_in);
  };
  {
    const Impl::Layer& L = m.layers[size_t(layer)];
    rms_norm(x, L.input_norm.data(), T, h, eps, xn.data());
    observe(L, "self_attn.q_proj", xn.data(), h);
    observe(L, "self_attn.k_proj", xn.data(), h);
    observe(L, "self_attn.v_proj", xn.data(), h);
    L.q->apply(xn.data(), T, q.data());
    L.k->apply(xn.data(), T, k.data());
    L.v->apply(xn.data(), T, v.data());
    rope(q.data(), nh);
    rope(k.data(), nkv);
    for (int64_t kh = 0; kh < nkv; ++kh)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < hd; ++d) kt[size_t((kh * hd + d) * T + t)] = k[size_t(t * kvd + kh * hd + d)];

    parallel_for(nh * row_blocks, nt, [&](int64_t item) {
      const int64_t hh = item / row_blocks, kh = hh / group;
      const int64_t t0 = (item % row_blocks) * kRowsPerItem, t1 = std::min(T, t0 + kRowsPerItem);
      std::vector<float> s(static_cast<size_t>(T));
      for (int64_t t = t0; t < t1; ++t) {
        const float* qr = &q[size_t(t * qd + hh * hd)];
        const int64_t ns = t + 1;  // causal: keys 0..t
        std::fill(s.begin(), s.begin() + ns, 0.0f);
        for (int64_t d = 0; d < hd; ++d) {
          const float a = qr[d];
          const float* kr = &kt[size_t((kh * hd + d) * T)];
          for (int64_t j = 0; j < ns; ++j) s[size_t(j)] += a * kr[j];
        }
        float mx = -INFINITY;
        for (int64_t j = 0; j < ns; ++j) {
          s[size_t(j)] *= scale;
          mx = std::max(mx, s[size_t(j)]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < ns; ++j) {
          s[size_t(j)] = std::exp(s[size_t(j)] - mx);
          sum += s[size_t(j)];
        }
        const float inv = 1.0f / sum;
        float* o = &att[size_t(t * qd + hh * hd)];
        for (int64_t d = 0; d < hd; ++d) o[d] = 0.0f;
        for (int64_t j = 0; j < ns; ++j) {
          const float p = s[size_t(j)] * inv;
          const float* vr = &v[size_t(j * kvd + kh * hd)];
          for (int64_t d = 0; d < hd; ++d) o[d] += p * vr[d];
        }
      }
    });
    observe(L, "self_attn.o_proj", att.data(), qd);
    L.o->apply(att.data(), T, tmp.data());
    for (int64_t i = 0; i < T * h; ++i) x[i] += tmp[size_t(i)];

    rms_norm(x, L.post_norm.data(), T, h, eps, xn.data());
    observe(L, "mlp.gate_proj", xn.data(), h);
    observe(L, "mlp.up_proj", xn.data(), h);
    L.gate->apply(xn.data(), T, g.data());
    L.up->apply(xn.data(), T, u.data());
    for (int64_t i = 0; i < T * ff; ++i) {
      const float a = g[size_t(i)];
      g[size_t(i)] = a / (1.0f + std::exp(-a)) * u[size_t(i)];
    }
    observe(L, "mlp.down_proj", g.data(), ff);
    L.down->apply(g.data(), T, tmp.data());
    for (int64_t i = 0; i < T * h; ++i) x[i] += tmp[size_t(i)];
  }
}

}  // namespace slidesparse
