// Tier 1: the Llama forward on the GPU (include/slidesparse/llama_gpu.hpp) and
// SlideLinear::from_quantized.
//
// Oracles (docs/TESTING.md, "GPU Llama forward"):
// - A. float64 reference forward (tests/cpu/model_test_util.hpp, written from the HF formulas,
//   shares no code with src/model or src/api) over the same weights; for pattern models over the
//   weights pruned by the independent group pruner below (FORMAT 2: drop the smallest |w|, ties keep
//   the lower index).
// - D. same-precision baseline: the CPU model (src/model) with its projections wrapped so that
//   their inputs and outputs are rounded to bf16 exactly where the GPU rounds them (SlideLinear's
//   bf16 contract; the lm_head included), with f32 (bf16 model) or the CPU W8A8 INT8 linear (i8
//   model) inside. The GPU's relative Frobenius error against A must be at most 2x this baseline's,
//   and below a ceiling per precision.
//   For e4m3 the twin is the CPU W8A8 FP8 linear of the stored-code checkpoint (same codes).
// - C. differential: the sparse path and the dense fallback of the same loaded model (the same
//   pruned, quantized operands): i8 logits must be bit-identical (integer sums are exact and both
//   paths share quantization and epilogue); e4m3 / bf16 (f32 sums in another order) must differ by
//   less than the dense path's own error against A.
// - B. exact integer oracle for from_quantized: codes that a re-quantization would not reproduce
//   (max |q| below 127 / 448), power-of-two scales, so Y equals bf16(acc * 2^e) exactly.
// - Stored-code checkpoints (I8 / F8_E4M3 + weight_scale, as `slidesparse prune --precision`
//   writes them) give logits bit-identical to pruning + quantizing the dense checkpoint at load.
// Small models: hidden 68 / 72 (not multiples of 32), head_dim 34 / 12, k = 100 (partial 6:8
// groups), vocab 300 / 257, T in {1, 7, 33, 100}. A SmolLM2-shaped random model (30 layers, 576,
// 9/3 heads, vocab 49152) checks the GPU against the CPU at T = 512 and prints tokens/s per variant
// (JSON Lines to $SLIDESPARSE_BENCH_OUT when set). The real SmolLM2 perplexity test skips unless
// /tmp/smol-hf (or $SLIDESPARSE_SMOL_HF) and the WikiText-2 test file are present.
// SLIDESPARSE_GPU_TEST_QUICK=1 runs fewer token counts and skips the full-size model (memcheck).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/backend.hpp"
#include "cpu/model_test_util.hpp"
#include "cpu/temp_dir.hpp"
#include "gpu/gpu_test_util.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/eval.hpp"
#include "slidesparse/llama.hpp"
#include "slidesparse/llama_gpu.hpp"
#include "slidesparse/quant.hpp"
#include "slidesparse/safetensors.hpp"
#include "slidesparse/slide_linear.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

using testing::TempDir;
using testing::TinyModel;
using testing::TinyShape;

using gputest::quick;

const Pattern k68 = Pattern::from_n(4);  // 6:8

// Error ceilings against the float64 reference (relative Frobenius norm of the logits), far above
// what the tests measure, reached only by a wrong layout, index or formula.
constexpr double kCeilBf16 = 0.03;
constexpr double kCeilI8 = 0.08;
constexpr double kCeilE4m3 = 0.2;
// The full-size model has no float64 reference or quantized twin: its i8 / e4m3 logits are only
// checked for being the model's at all (a wrong layout or scale gives errors near 1 or above).
constexpr double kSanityFullSize = 0.5;

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

template <class Ref>
double rel_fro(const std::vector<float>& a, const std::vector<Ref>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = double(a[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  return std::sqrt(num / den);
}

::testing::AssertionResult same_bits(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << b.size();
  int64_t bad = 0;
  std::ostringstream first;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      if (bad < 5) first << "\n  logits[" << int64_t(i) / vocab << ", " << int64_t(i) % vocab << "]: " << a[i] << " vs " << b[i];
      ++bad;
    }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << a.size() << " logits differ" << first.str();
}

std::vector<int32_t> random_tokens(int64_t count, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(count));
  for (auto& v : t) v = d(rng);
  return t;
}

std::vector<int64_t> token_counts() {
  return quick() ? std::vector<int64_t>{1, 33} : std::vector<int64_t>{1, 7, 33, 100};
}

// ---- the independent pruner (FORMAT 2, magnitude) -------------------------------------------------
// Per row and aligned group of 2N columns (the last one partial): when the group holds more than
// 2N-2 nonzeros, zero the nnz-(2N-2) smallest |w|; among equal |w| the higher column goes first.
template <class T>
void prune_groups(T* w, int64_t n, int64_t k, Pattern p) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g0 = 0; g0 < k; g0 += p.group()) {
      std::vector<int64_t> nz;
      for (int64_t c = g0; c < std::min(k, g0 + p.group()); ++c)
        if (w[r * k + c] != T(0)) nz.push_back(c);
      const int64_t drop = int64_t(nz.size()) - p.keep();
      if (drop <= 0) continue;
      std::sort(nz.begin(), nz.end(), [&](int64_t a, int64_t b) {
        const double ma = std::fabs(double(w[r * k + a])), mb = std::fabs(double(w[r * k + b]));
        return ma != mb ? ma < mb : a > b;
      });
      for (int64_t i = 0; i < drop; ++i) w[r * k + nz[size_t(i)]] = T(0);
    }
}

bool is_projection(const std::string& name) {
  for (const char* s : {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight", "gate_proj.weight",
                        "up_proj.weight", "down_proj.weight"}) {
    const std::string suf(s);
    if (name.size() > suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0) return true;
  }
  return false;
}

TinyModel pruned_model(const TinyModel& m, Pattern p) {
  TinyModel out = m;
  for (auto& [name, w] : out.w)
    if (is_projection(name)) prune_groups(w.data(), out.shape[name][0], out.shape[name][1], p);
  return out;
}

// ---- CPU baselines with the GPU's bf16 boundaries --------------------------------------------------
class Bf16Boundary : public Linear {
 public:
  explicit Bf16Boundary(std::unique_ptr<Linear> inner) : inner_(std::move(inner)) {}
  int64_t n() const noexcept override { return inner_->n(); }
  int64_t k() const noexcept override { return inner_->k(); }
  void apply(const float* x, int64_t m, float* y) const override {
    std::vector<float> xr(x, x + m * k());
    for (float& v : xr) v = round_bf16(v);
    inner_->apply(xr.data(), m, y);
    for (int64_t i = 0; i < m * n(); ++i) y[i] = round_bf16(y[i]);
  }

 private:
  std::unique_ptr<Linear> inner_;
};

enum class Sim { kF32, kBf16, kI8, kStored };

// The CPU model of `dir` with every projection (and the lm_head) behind bf16 boundaries: f32
// weights rounded to bf16 (kBf16), the W8A8 INT8 linear of the pruned weight (kI8), or the linear
// the CPU model built from a stored-code checkpoint (kStored: its Int8Linear / Fp8Linear). kF32:
// plain f32 projections of the pruned weights, no boundaries.
LlamaModel cpu_baseline(const std::string& dir, Sim sim, std::optional<Pattern> p) {
  LlamaModel m = LlamaModel::load(dir);
  m.transform_linears(
      [&](const std::string& name, const Linear& cur) -> std::unique_ptr<Linear> {
        if (sim == Sim::kStored && name != "lm_head") {
          if (const auto* i8 = dynamic_cast<const Int8Linear*>(&cur))
            return std::make_unique<Bf16Boundary>(std::make_unique<Int8Linear>(*i8));
          if (const auto* f8 = dynamic_cast<const Fp8Linear*>(&cur))
            return std::make_unique<Bf16Boundary>(std::make_unique<Fp8Linear>(*f8));
          throw std::runtime_error("cpu_baseline: " + name + " is not a stored-code linear");
        }
        const auto* dense = dynamic_cast<const DenseLinear*>(&cur);
        if (dense == nullptr) throw std::runtime_error("cpu_baseline: " + name + " is not a DenseLinear");
        std::vector<float> w = dense->weight();
        for (float& v : w) v = round_bf16(v);
        const int64_t n = cur.n(), k = cur.k();
        if (name != "lm_head" && p) prune_groups(w.data(), n, k, *p);
        if (sim == Sim::kF32) return std::make_unique<DenseLinear>(w.data(), n, k, 0);
        if (name == "lm_head" || sim == Sim::kBf16)
          return std::make_unique<Bf16Boundary>(std::make_unique<DenseLinear>(w.data(), n, k, 0));
        return std::make_unique<Bf16Boundary>(std::make_unique<Int8Linear>(Int8Linear::quantize(w.data(), n, k, 0)));
      },
      true);
  return m;
}

// ---- small random models ----------------------------------------------------------------------------
struct TinyCase {
  std::string name;
  TinyShape shape;
  uint64_t seed;
};

std::vector<TinyCase> tiny_cases() {
  TinyShape a;  // tied, head_dim 34 (lanes own 2 dims, the second partly), one kv head
  a.layers = 2;
  a.hidden = 68;
  a.heads = 2;
  a.kv_heads = 1;
  a.intermediate = 100;
  a.vocab = 300;
  a.tied = true;
  TinyShape b;  // untied, head_dim 12, 3 kv heads shared by 2 query heads each
  b.layers = 2;
  b.hidden = 72;
  b.heads = 6;
  b.kv_heads = 3;
  b.intermediate = 100;
  b.vocab = 257;
  b.theta = 100000.0;
  b.tied = false;
  return {{"tied_h68_hd34", a, 11}, {"untied_h72_hd12", b, 12}};
}

struct TinyDir {
  TinyModel model;
  std::string dir;
};

TinyDir write_case(const TinyCase& tc, const TempDir& tmp, const std::string& sub = "dense") {
  TinyDir d{testing::make_tiny_model(tc.shape, tc.seed, DType::kBF16), tmp.sub(sub)};
  testing::write_tiny_model(d.model, d.dir, DType::kBF16);
  return d;
}

LlamaGpuOptions gpu_options(std::optional<Pattern> p, LinearPrecision prec, LinearPath path) {
  LlamaGpuOptions o;
  o.pattern = p;
  o.precision = prec;
  o.path = path;
  o.max_tokens = 128;
  o.search = false;  // library defaults: deterministic plans, quick loads
  return o;
}

// A checkpoint as `slidesparse prune --precision` writes it: the projections of `m` (already
// pruned) as `proj` (I8 / E4M3 codes + P.weight_scale from the core quantizer, or F32), the other
// tensors bf16. dequantize_i8: F32 projections holding q * scale of the I8 codes instead.
void write_checkpoint(const TinyModel& m, const std::string& dir, DType proj, bool dequantize_i8 = false,
                      const std::string& drop_scale_of = "") {
  testing::write_tiny_model(m, dir, DType::kBF16);  // config.json (the weights are replaced below)
  std::filesystem::remove(dir + "/model.safetensors");
  std::vector<OwnedTensor> all;
  auto put = [&](const std::string& name, DType dt, std::vector<int64_t> shape, const void* p, size_t bytes) {
    OwnedTensor t{{name, dt, std::move(shape)}, {}};
    t.bytes.assign(static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + bytes);
    all.push_back(std::move(t));
  };
  for (const auto& [name, v] : m.w) {
    const std::vector<int64_t>& shape = m.shape.at(name);
    std::vector<float> f(v.begin(), v.end());
    if (!is_projection(name)) {
      std::vector<uint16_t> b(f.size());
      for (size_t i = 0; i < f.size(); ++i) b[i] = f32_to_bf16(f[i]);
      put(name, DType::kBF16, shape, b.data(), b.size() * 2);
      continue;
    }
    const int64_t n = shape[0], k = shape[1];
    const std::string prefix = name.substr(0, name.size() - std::string(".weight").size());
    if (proj == DType::kF32 && !dequantize_i8) {
      put(name, DType::kF32, shape, f.data(), f.size() * 4);
      continue;
    }
    std::vector<uint8_t> q(f.size());
    std::vector<float> s(static_cast<size_t>(n));
    if (proj == DType::kE4M3)
      quantize_rows_e4m3(DType::kF32, f.data(), n, k, q.data(), s.data());
    else
      quantize_rows_i8(DType::kF32, f.data(), n, k, reinterpret_cast<int8_t*>(q.data()), s.data());
    if (dequantize_i8) {
      std::vector<float> dq(f.size());
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) dq[size_t(r * k + c)] = float(int8_t(q[size_t(r * k + c)])) * s[size_t(r)];
      put(name, DType::kF32, shape, dq.data(), dq.size() * 4);
      continue;
    }
    put(name, proj, shape, q.data(), q.size());
    if (prefix != drop_scale_of) put(prefix + ".weight_scale", DType::kF32, {n}, s.data(), s.size() * 4);
  }
  write_safetensors(dir + "/model.safetensors", all);
}

template <class F>
::testing::AssertionResult throws_status(F&& f, Status want, const std::string& needle = "") {
  try {
    f();
  } catch (const Error& e) {
    if (e.status() != want)
      return ::testing::AssertionFailure() << "status " << status_name(e.status()) << ", want " << status_name(want)
                                           << ": " << e.what();
    if (!needle.empty() && std::string(e.what()).find(needle) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks \"" << needle << "\": " << e.what();
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no exception (want " << status_name(want) << ")";
}

// ---- A / D: the dense bf16 model against the float64 reference and its CPU twin ----------------------
TEST(GpuLlama, DenseBf16MatchesCpuForward) {
  SLIDESPARSE_REQUIRE_GPU();
  for (const TinyCase& tc : tiny_cases()) {
    SCOPED_TRACE(tc.name);
    TempDir tmp;
    const TinyDir d = write_case(tc, tmp);
    const LlamaGpuModel gpu = LlamaGpuModel::load(d.dir, gpu_options(std::nullopt, LinearPrecision::kBF16,
                                                                      LinearPath::kAuto));
    const LlamaModel cpu = LlamaModel::load(d.dir);
    const LlamaModel twin = cpu_baseline(d.dir, Sim::kBf16, std::nullopt);
    for (int64_t T : token_counts()) {
      SCOPED_TRACE("T=" + std::to_string(T));
      const std::vector<int32_t> tok = random_tokens(T, tc.shape.vocab, tc.seed * 100 + uint64_t(T));
      const std::vector<double> ref = testing::reference_forward(d.model, tok);
      const std::vector<float> g = gpu.forward(tok);
      ASSERT_EQ(g.size(), ref.size());
      const double e_gpu = rel_fro(g, ref), e_twin = rel_fro(twin.forward(tok), ref),
                   e_cpu = rel_fro(cpu.forward(tok), ref);
      std::cout << "[ bf16 ] " << tc.name << " T=" << T << ": gpu " << e_gpu << ", cpu bf16 twin " << e_twin
                << ", cpu f32 " << e_cpu << " (rel. Frobenius error vs float64)\n";
      EXPECT_LE(e_cpu, 1e-5) << "the CPU f32 forward disagrees with the float64 reference";
      EXPECT_GT(e_twin, 0.0);
      EXPECT_LE(e_gpu, 2.0 * e_twin);
      EXPECT_LE(e_gpu, kCeilBf16);
    }
  }
}

// ---- C: i8 6:8, sparse path == dense path, bit for bit; and against the INT8 twin ---------------
TEST(GpuLlama, I8SparsePathEqualsDensePathBitForBit) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  for (const TinyCase& tc : tiny_cases()) {
    SCOPED_TRACE(tc.name);
    TempDir tmp;
    const TinyDir d = write_case(tc, tmp);
    const TinyModel pruned = pruned_model(d.model, k68);
    LlamaGpuModel gpu = LlamaGpuModel::load(d.dir, gpu_options(k68, LinearPrecision::kI8, LinearPath::kSparse));
    const LlamaModel twin = cpu_baseline(d.dir, Sim::kI8, k68);
    for (int64_t T : token_counts()) {
      SCOPED_TRACE("T=" + std::to_string(T));
      const std::vector<int32_t> tok = random_tokens(T, tc.shape.vocab, tc.seed * 200 + uint64_t(T));
      gpu.set_path(LinearPath::kSparse);
      const std::vector<float> sparse = gpu.forward(tok);
      gpu.set_path(LinearPath::kDense);
      const std::vector<float> dense = gpu.forward(tok);
      EXPECT_TRUE(same_bits(sparse, dense, tc.shape.vocab)) << "i8 sparse path vs dense path";
      const std::vector<double> ref = testing::reference_forward(pruned, tok);
      const std::vector<float> tw = twin.forward(tok);
      const double e_gpu = rel_fro(sparse, ref), e_twin = rel_fro(tw, ref), d_twin = rel_fro(sparse, tw);
      std::cout << "[ i8 6:8 ] " << tc.name << " T=" << T << ": gpu " << e_gpu << ", cpu i8 twin " << e_twin
                << " (vs float64 of the pruned model); gpu vs twin " << d_twin << "\n";
      EXPECT_LE(e_gpu, 2.0 * e_twin);
      EXPECT_LE(d_twin, e_twin) << "the GPU is farther from its same-precision twin than the twin from exact";
      EXPECT_LE(e_gpu, kCeilI8);
    }
  }
}

// ---- C / A: e4m3 and bf16 6:8, sparse path vs dense path within the dense path's own error -------
class GpuLlamaPaths : public ::testing::TestWithParam<LinearPrecision> {};

TEST_P(GpuLlamaPaths, SparseMatchesDensePathWithinItsError) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  const LinearPrecision prec = GetParam();
  const bool bf16 = prec == LinearPrecision::kBF16;
  const double ceiling = bf16 ? kCeilBf16 : kCeilE4m3;
  for (const TinyCase& tc : tiny_cases()) {
    SCOPED_TRACE(tc.name);
    TempDir tmp;
    const TinyDir d = write_case(tc, tmp);
    const TinyModel pruned = pruned_model(d.model, k68);
    LlamaGpuModel gpu = LlamaGpuModel::load(d.dir, gpu_options(k68, prec, LinearPath::kSparse));
    // e4m3 twin: the CPU W8A8 FP8 linear over the codes of the stored checkpoint (the same codes the
    // GPU derives from the dense checkpoint at load).
    std::string twin_dir = d.dir;
    if (!bf16) {
      twin_dir = tmp.sub("stored_e4m3");
      write_checkpoint(pruned, twin_dir, DType::kE4M3);
    }
    const LlamaModel twin = bf16 ? cpu_baseline(d.dir, Sim::kBf16, k68) : cpu_baseline(twin_dir, Sim::kStored, {});
    for (int64_t T : token_counts()) {
      SCOPED_TRACE("T=" + std::to_string(T));
      const std::vector<int32_t> tok = random_tokens(T, tc.shape.vocab, tc.seed * 300 + uint64_t(T));
      gpu.set_path(LinearPath::kSparse);
      const std::vector<float> sparse = gpu.forward(tok);
      gpu.set_path(LinearPath::kDense);
      const std::vector<float> dense = gpu.forward(tok);
      const std::vector<double> ref = testing::reference_forward(pruned, tok);
      const double e_sparse = rel_fro(sparse, ref), e_dense = rel_fro(dense, ref), diff = rel_fro(sparse, dense),
                   e_twin = rel_fro(twin.forward(tok), ref);
      std::cout << "[ " << linear_precision_name(prec) << " 6:8 ] " << tc.name << " T=" << T << ": sparse "
                << e_sparse << ", dense " << e_dense << ", cpu twin " << e_twin
                << " (vs float64 of the pruned model); sparse vs dense " << diff << "\n";
      EXPECT_LE(diff, e_dense);
      EXPECT_LE(e_sparse, 2.0 * e_twin);
      EXPECT_LE(e_dense, 2.0 * e_twin);
      EXPECT_LE(e_dense, ceiling);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, GpuLlamaPaths, ::testing::Values(LinearPrecision::kE4M3, LinearPrecision::kBF16),
                         [](const auto& p) { return std::string(linear_precision_name(p.param)); });

// ---- stored-code checkpoints ------------------------------------------------------------------------
TEST(GpuLlama, QuantizedCheckpointsUseTheirStoredCodes) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  const TinyCase tc = tiny_cases()[0];
  TempDir tmp;
  const TinyDir d = write_case(tc, tmp);
  const TinyModel pruned = pruned_model(d.model, k68);
  const std::vector<int32_t> tok = random_tokens(33, tc.shape.vocab, 77);
  for (LinearPrecision prec : {LinearPrecision::kI8, LinearPrecision::kE4M3}) {
    SCOPED_TRACE(linear_precision_name(prec));
    const std::string qdir = tmp.sub(std::string("q_") + linear_precision_name(prec));
    write_checkpoint(pruned, qdir, prec == LinearPrecision::kI8 ? DType::kI8 : DType::kE4M3);
    const auto opts = gpu_options(k68, prec, LinearPath::kSparse);
    const LlamaGpuModel stored = LlamaGpuModel::load(qdir, opts);
    const LlamaGpuModel at_load = LlamaGpuModel::load(d.dir, opts);
    std::cout << stored.describe() << "\n";
    EXPECT_NE(stored.describe().find("qkv: 2 from stored codes, 0 from float weights"), std::string::npos);
    EXPECT_NE(at_load.describe().find("qkv: 0 from stored codes, 2 from float weights"), std::string::npos);
    for (int64_t T : {int64_t(1), int64_t(33)}) {
      const std::vector<int32_t> t(tok.begin(), tok.begin() + T);
      EXPECT_TRUE(same_bits(stored.forward(t), at_load.forward(t), tc.shape.vocab)) << "T=" << T;
    }
    // Dense model (no pattern) from the same codes: dense_only layers, codes as stored.
    const LlamaGpuModel dense = LlamaGpuModel::load(qdir, gpu_options(std::nullopt, prec, LinearPath::kAuto));
    EXPECT_NE(dense.describe().find("down: 2 from stored codes"), std::string::npos);
    LlamaGpuModel stored_dense_path = LlamaGpuModel::load(qdir, gpu_options(k68, prec, LinearPath::kDense));
    if (prec == LinearPrecision::kI8) {  // the same codes on cuBLASLt: exact integer sums either way
      EXPECT_TRUE(same_bits(dense.forward(tok), stored_dense_path.forward(tok), tc.shape.vocab));
    }
    // Codes pruned 6:8 cannot run as 2:4.
    EXPECT_TRUE(throws_status([&] { LlamaGpuModel::load(qdir, gpu_options(Pattern::from_n(2), prec, LinearPath::kSparse)); },
                              Status::kInvalidData, "looser pattern"));
  }
  // Another precision than the stored one: dequantized (q * scale), then as float weights. The same
  // values stored as F32 give the same model, bit for bit.
  const std::string i8dir = tmp.sub("i8"), f32dir = tmp.sub("f32_of_i8");
  write_checkpoint(pruned, i8dir, DType::kI8);
  write_checkpoint(pruned, f32dir, DType::kF32, /*dequantize_i8=*/true);
  const auto opts = gpu_options(k68, LinearPrecision::kBF16, LinearPath::kSparse);
  const LlamaGpuModel from_i8 = LlamaGpuModel::load(i8dir, opts);
  const LlamaGpuModel from_f32 = LlamaGpuModel::load(f32dir, opts);
  EXPECT_NE(from_i8.describe().find("o: 0 from stored codes, 0 from float weights, 2 dequantized"), std::string::npos)
      << from_i8.describe();
  EXPECT_TRUE(same_bits(from_i8.forward(tok), from_f32.forward(tok), tc.shape.vocab));
  // A quantized weight without its scale.
  const std::string noscale = tmp.sub("noscale");
  write_checkpoint(pruned, noscale, DType::kI8, false, "model.layers.1.self_attn.o_proj");
  EXPECT_TRUE(throws_status([&] { LlamaGpuModel::load(noscale, gpu_options(k68, LinearPrecision::kI8, LinearPath::kSparse)); },
                            Status::kBadFormat, "model.layers.1.self_attn.o_proj.weight_scale"));
}

// ---- causality, determinism, prefix consistency -------------------------------------------------------
TEST(GpuLlama, CausalAndDeterministic) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  const TinyCase tc = tiny_cases()[1];
  TempDir tmp;
  const TinyDir d = write_case(tc, tmp);
  const int64_t V = tc.shape.vocab, T = 40, p = 20;
  const LlamaGpuModel gpu = LlamaGpuModel::load(d.dir, gpu_options(k68, LinearPrecision::kI8, LinearPath::kSparse));
  const std::vector<int32_t> tok = random_tokens(T, V, 5);
  const std::vector<float> a = gpu.forward(tok);  // eager (then captured)
  EXPECT_TRUE(same_bits(a, gpu.forward(tok), V)) << "the graph replay vs the eager run";
  auto no_graphs = gpu_options(k68, LinearPrecision::kI8, LinearPath::kSparse);
  no_graphs.cuda_graphs = false;
  const LlamaGpuModel eager = LlamaGpuModel::load(d.dir, no_graphs);
  EXPECT_TRUE(same_bits(a, eager.forward(tok), V)) << "a model without graphs";
  std::vector<int32_t> tok2 = tok;
  tok2[size_t(p)] = int32_t((tok[size_t(p)] + 1) % V);
  const std::vector<float> b = gpu.forward(tok2);
  const std::vector<float> a_head(a.begin(), a.begin() + p * V), b_head(b.begin(), b.begin() + p * V);
  EXPECT_TRUE(same_bits(a_head, b_head, V)) << "a change at position " << p << " moved earlier logits";
  EXPECT_FALSE(std::equal(a.begin() + p * V, a.begin() + (p + 1) * V, b.begin() + p * V))
      << "a change at position " << p << " left its own logits unchanged";
  // A prefix alone: the same rows up to the lm_head's algorithm for another m (bf16 rounding).
  const std::vector<int32_t> prefix(tok.begin(), tok.begin() + p);
  EXPECT_LE(rel_fro(gpu.forward(prefix), a_head), 1e-2);
}

// ---- profile_ms: every stage, once per kind, non-negative; the forward still gives the same bits -------
TEST(GpuLlama, ProfileCoversEveryStage) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  const TinyCase tc = tiny_cases()[1];
  TempDir tmp;
  const TinyDir d = write_case(tc, tmp);
  const LlamaGpuModel gpu = LlamaGpuModel::load(d.dir, gpu_options(k68, LinearPrecision::kE4M3, LinearPath::kSparse));
  const std::vector<int32_t> tok = random_tokens(33, tc.shape.vocab, 8);
  const std::vector<float> before = gpu.forward(tok);
  const auto prof = gpu.profile_ms(tok, 3);
  std::vector<std::string> names;
  double total = 0;
  for (const auto& [stage, ms] : prof) {
    names.push_back(stage);
    EXPECT_TRUE(std::isfinite(ms) && ms >= 0.0) << stage << " " << ms;
    total += ms;
  }
  const std::vector<std::string> want = {"norm", "qkv", "rope", "attention", "o", "gate_up", "silu", "down", "lm_head",
                                         "logits"};
  EXPECT_EQ(names, want);
  EXPECT_GT(total, 0.0);
  EXPECT_TRUE(same_bits(before, gpu.forward(tok), tc.shape.vocab)) << "after profiling";
}

// ---- kAuto: the crossover is measured once per projection shape ---------------------------------------
TEST(GpuLlama, AutoPathMeasuresCrossoverOncePerShape) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  const TinyCase tc = tiny_cases()[0];
  TempDir tmp;
  const TinyDir d = write_case(tc, tmp);
  auto opts = gpu_options(k68, LinearPrecision::kI8, LinearPath::kAuto);
  opts.dense_below_m = -1;
  LlamaGpuModel gpu = LlamaGpuModel::load(d.dir, opts);
  const std::string desc = gpu.describe();
  std::cout << desc << "\n";
  size_t lines = 0;
  for (size_t at = desc.find("crossover n="); at != std::string::npos; at = desc.find("crossover n=", at + 1)) ++lines;
  EXPECT_EQ(lines, 4u) << "qkv, o, gate_up and down have four distinct shapes";
  for (int64_t T : {int64_t(1), int64_t(33)}) {
    const std::vector<int32_t> tok = random_tokens(T, tc.shape.vocab, 9);
    gpu.set_path(LinearPath::kAuto);
    const std::vector<float> a = gpu.forward(tok);
    gpu.set_path(LinearPath::kDense);
    EXPECT_TRUE(same_bits(a, gpu.forward(tok), tc.shape.vocab)) << "i8: whichever path kAuto took, T=" << T;
  }
}

// ---- rejections -------------------------------------------------------------------------------------
TEST(GpuLlama, RejectsBadInput) {
  SLIDESPARSE_REQUIRE_GPU();
  const TinyCase tc = tiny_cases()[0];
  TempDir tmp;
  const TinyDir d = write_case(tc, tmp);
  const auto dense = gpu_options(std::nullopt, LinearPrecision::kBF16, LinearPath::kAuto);
  EXPECT_TRUE(throws_status([&] { LlamaGpuModel::load(tmp.file("missing"), dense); }, Status::kNotFound));
  EXPECT_TRUE(throws_status([&] { LlamaGpuModel::load(d.dir, gpu_options(std::nullopt, LinearPrecision::kI8, LinearPath::kSparse)); },
                            Status::kInvalidArgument, "kSparse needs a pattern"));
  auto zero = dense;
  zero.max_tokens = 0;
  EXPECT_TRUE(throws_status([&] { LlamaGpuModel::load(d.dir, zero); }, Status::kInvalidArgument, "max_tokens"));
  LlamaGpuModel gpu = LlamaGpuModel::load(d.dir, dense);
  const int64_t V = tc.shape.vocab;
  EXPECT_TRUE(throws_status([&] { gpu.forward({}); }, Status::kInvalidArgument, "0 tokens"));
  EXPECT_TRUE(throws_status([&] { gpu.forward(std::vector<int32_t>(129, 0)); }, Status::kInvalidArgument, "max_tokens = 128"));
  EXPECT_TRUE(throws_status([&] { gpu.forward({0, int32_t(V)}); }, Status::kInvalidArgument, "position 1"));
  EXPECT_TRUE(throws_status([&] { gpu.forward({-1}); }, Status::kInvalidArgument, "outside"));
  EXPECT_TRUE(throws_status([&] { gpu.set_path(LinearPath::kSparse); }, Status::kInvalidArgument));
  EXPECT_EQ(gpu.forward({1, 2, 3}).size(), size_t(3 * V)) << "a rejected call leaves the model usable";

  TinyShape wide;  // head_dim 130 > kAttentionMaxHeadDim
  wide.layers = 1;
  wide.hidden = 130;
  wide.heads = 1;
  wide.kv_heads = 1;
  wide.intermediate = 16;
  wide.vocab = 16;
  const std::string wdir = tmp.sub("wide");
  testing::write_tiny_model(testing::make_tiny_model(wide, 3, DType::kBF16), wdir, DType::kBF16);
  EXPECT_TRUE(throws_status([&] { LlamaGpuModel::load(wdir, dense); }, Status::kUnsupported, "head_dim 130"));
}

// ---- B: SlideLinear::from_quantized uses the codes as given ------------------------------------------
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) { status_ = cudaMalloc(&ptr_, bytes); }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  cudaError_t status() const { return status_; }

 private:
  void* ptr_ = nullptr;
  cudaError_t status_ = cudaSuccess;
};

TEST(SlideLinearFromQuantized, UsesStoredCodesExactlyOnBothPaths) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  const int64_t n = 40, k = 100, m_max = 33;
  for (LinearPrecision prec : {LinearPrecision::kI8, LinearPrecision::kE4M3}) {
    SCOPED_TRACE(linear_precision_name(prec));
    const bool i8 = prec == LinearPrecision::kI8;
    // |codes| <= wmax < Q, so the codes are not what quantizing q * scale again would give. Column 0
    // of W is zero and holds X's big entry (the per-token amax), so sums stay small: exact in f32
    // and inside the FP8 tensor cores' accumulator.
    const int wmax = i8 ? 20 : 3, xmax = i8 ? 10 : 2, big = i8 ? 127 : 448;
    std::mt19937_64 rng(i8 ? 41 : 42);
    std::uniform_int_distribution<int> wv(-wmax, wmax), xv(-xmax, xmax), pick(0, 7);
    std::vector<int> qw(size_t(n * k));
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t c = 1; c < k; ++c) qw[size_t(j * k + c)] = wv(rng);
      for (int64_t g0 = 0; g0 < k; g0 += 8) {  // two zeros per group of 8 (6:8), the partial one too
        const int a = pick(rng), b = (a + 1 + pick(rng) % 7) % 8;
        for (int z : {a, b})
          if (g0 + z < k) qw[size_t(j * k + g0 + z)] = 0;
      }
    }
    std::vector<uint8_t> codes(size_t(n * k));
    for (size_t i = 0; i < codes.size(); ++i) {
      codes[i] = i8 ? uint8_t(int8_t(qw[i])) : f32_to_e4m3(float(qw[i]));
      if (!i8) {
        ASSERT_EQ(e4m3_to_f32(codes[i]), float(qw[i])) << "test data: not an E4M3 value";
      }
    }
    std::vector<float> scale(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) scale[size_t(j)] = std::ldexp(1.0f, -int(j % 5) - 3);
    std::vector<int> qx(size_t(m_max * k));
    std::vector<uint16_t> x(size_t(m_max * k));
    for (int64_t i = 0; i < m_max; ++i) {
      const int e = int(i % 3) - 1;
      for (int64_t c = 0; c < k; ++c) qx[size_t(i * k + c)] = c == 0 ? ((i & 1) ? -big : big) : xv(rng);
      for (int64_t c = 0; c < k; ++c) {
        const float v = std::ldexp(float(qx[size_t(i * k + c)]), e);
        x[size_t(i * k + c)] = f32_to_bf16(v);
        ASSERT_EQ(bf16_to_f32(x[size_t(i * k + c)]), v) << "test data: not a bf16 value";
      }
    }
    std::vector<uint16_t> want(size_t(m_max * n));
    for (int64_t i = 0; i < m_max; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t acc = 0;
        for (int64_t c = 0; c < k; ++c) acc += int64_t(qx[size_t(i * k + c)]) * qw[size_t(j * k + c)];
        const double exact = std::ldexp(double(acc), int(i % 3) - 1) * double(scale[size_t(j)]);
        ASSERT_EQ(double(float(exact)), exact) << "test data: Y not exact in f32";
        want[size_t(i * n + j)] = f32_to_bf16(float(exact));
      }

    SlideLinearOptions o;
    o.pattern = k68;
    o.precision = prec;
    o.dense_below_m = 0;
    o.search = false;
    SlideLinear layer = SlideLinear::from_quantized(codes.data(), scale.data(), n, k, o);
    cudaStream_t stream = nullptr;
    SLIDESPARSE_CUDA_ASSERT(cudaStreamCreate(&stream));
    DeviceBuffer xd(x.size() * 2), yd(size_t(m_max * n) * 2);
    ASSERT_EQ(xd.status(), cudaSuccess);
    ASSERT_EQ(yd.status(), cudaSuccess);
    SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(xd.get(), x.data(), x.size() * 2, cudaMemcpyHostToDevice));
    for (LinearPath path : {LinearPath::kSparse, LinearPath::kDense})
      for (int64_t m : {int64_t(1), int64_t(17), m_max}) {
        SCOPED_TRACE(std::string(path == LinearPath::kSparse ? "sparse" : "dense") + " m=" + std::to_string(m));
        SLIDESPARSE_CUDA_ASSERT(cudaMemset(yd.get(), 0xFF, size_t(m_max * n) * 2));
        layer.forward(xd.get(), m, yd.get(), stream, path);
        SLIDESPARSE_CUDA_ASSERT(cudaStreamSynchronize(stream));
        std::vector<uint16_t> y(size_t(m_max * n));
        SLIDESPARSE_CUDA_ASSERT(cudaMemcpy(y.data(), yd.get(), y.size() * 2, cudaMemcpyDeviceToHost));
        int64_t bad = 0;
        for (int64_t i = 0; i < m * n; ++i) bad += y[size_t(i)] != want[size_t(i)];
        EXPECT_EQ(bad, 0) << "Y[0] = " << bf16_to_f32(y[0]) << ", want " << bf16_to_f32(want[0]);
        EXPECT_TRUE(std::all_of(y.begin() + m * n, y.end(), [](uint16_t v) { return v == 0xFFFF; }))
            << "forward wrote past Y[m, n]";
      }
    cudaStreamDestroy(stream);

    // Rejections: a bf16 layer, a NaN code, a zero scale, a group with 7 nonzeros.
    SlideLinearOptions bad = o;
    bad.precision = LinearPrecision::kBF16;
    EXPECT_TRUE(throws_status([&] { SlideLinear::from_quantized(codes.data(), scale.data(), n, k, bad); },
                              Status::kInvalidArgument, "from_dense"));
    std::vector<float> zero_scale = scale;
    zero_scale[3] = 0.0f;
    EXPECT_TRUE(throws_status([&] { SlideLinear::from_quantized(codes.data(), zero_scale.data(), n, k, o); },
                              Status::kInvalidData, "w_scale[3]"));
    std::vector<uint8_t> dense_group = codes;
    for (int64_t c = 8; c < 16; ++c) dense_group[size_t(2 * k + c)] = i8 ? 1 : f32_to_e4m3(1.0f);
    EXPECT_TRUE(throws_status([&] { SlideLinear::from_quantized(dense_group.data(), scale.data(), n, k, o); },
                              Status::kInvalidData));
    SlideLinearOptions dense_only = o;
    dense_only.dense_only = true;
    EXPECT_NO_THROW(SlideLinear::from_quantized(dense_group.data(), scale.data(), n, k, dense_only));
    if (!i8) {
      std::vector<uint8_t> nan = codes;
      nan[size_t(5 * k + 7)] = 0x7F;
      EXPECT_TRUE(throws_status([&] { SlideLinear::from_quantized(nan.data(), scale.data(), n, k, o); },
                                Status::kInvalidData, "NaN"));
    }
  }
}

// ---- a SmolLM2-shaped random model: GPU vs CPU at T = 512, and tokens/s ---------------------------------
// bf16 weights, uniform. The scales keep 30 random layers well-conditioned: unit-variance q and k
// (attention scores of standard deviation ~1), GPT-2's residual scaling 1/sqrt(2 layers) on o_proj
// and down_proj, and an embedding of standard deviation 3/sqrt(hidden) so that the tied logits
// have a standard deviation near 3. (With the tiny models' scales a 30-layer random model is
// chaotic: bf16 rounding alone moves its logits by tens of percent.)
void write_random_llama(const TinyShape& s, const std::string& dir, uint64_t seed) {
  std::vector<TensorSpec> specs;
  std::vector<std::pair<double, double>> dist;  // (stddev, mean)
  const int64_t hd = s.hidden / s.heads;
  const double sh = 1.0 / std::sqrt(double(s.hidden)), res = 1.0 / std::sqrt(2.0 * double(s.layers));
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double sd, double mean) {
    specs.push_back({name, DType::kBF16, std::move(shape)});
    dist.emplace_back(sd, mean);
  };
  add("model.embed_tokens.weight", {s.vocab, s.hidden}, 3.0 * sh, 0.0);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {s.hidden}, 0.1, 1.0);
    add(p + "self_attn.q_proj.weight", {s.heads * hd, s.hidden}, sh, 0.0);
    add(p + "self_attn.k_proj.weight", {s.kv_heads * hd, s.hidden}, sh, 0.0);
    add(p + "self_attn.v_proj.weight", {s.kv_heads * hd, s.hidden}, sh, 0.0);
    add(p + "self_attn.o_proj.weight", {s.hidden, s.heads * hd}, res / std::sqrt(double(s.heads * hd)), 0.0);
    add(p + "post_attention_layernorm.weight", {s.hidden}, 0.1, 1.0);
    add(p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}, sh, 0.0);
    add(p + "mlp.up_proj.weight", {s.intermediate, s.hidden}, sh, 0.0);
    add(p + "mlp.down_proj.weight", {s.hidden, s.intermediate}, res / std::sqrt(double(s.intermediate)), 0.0);
  }
  add("model.norm.weight", {s.hidden}, 0.1, 1.0);
  if (!s.tied) add("lm_head.weight", {s.vocab, s.hidden}, sh, 0.0);
  {
    SafetensorsWriter w(dir + "/model.safetensors", specs);
    std::mt19937_64 rng(seed);
    for (size_t t = 0; t < specs.size(); ++t) {
      int64_t count = 1;
      for (int64_t e : specs[t].shape) count *= e;
      const double half_width = std::sqrt(3.0) * dist[t].first;  // uniform with that stddev
      std::vector<uint16_t> b(static_cast<size_t>(count));
      for (auto& v : b) {
        const double u = double(rng() >> 11) * 0x1.0p-53;
        v = f32_to_bf16(float(dist[t].second + (2.0 * u - 1.0) * half_width));
      }
      w.write(specs[t].name, b.data(), b.size() * 2);
    }
    w.commit();
  }
  const nlohmann::json cfg = {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", s.hidden},
                              {"intermediate_size", s.intermediate}, {"num_hidden_layers", s.layers},
                              {"num_attention_heads", s.heads}, {"num_key_value_heads", s.kv_heads},
                              {"vocab_size", s.vocab}, {"rms_norm_eps", s.eps}, {"rope_theta", s.theta},
                              {"tie_word_embeddings", s.tied}};
  std::ofstream(dir + "/config.json") << cfg.dump(2);
}

double ppl_of(const std::vector<float>& logits, int64_t vocab, const std::vector<int32_t>& tok) {
  PerplexityOptions po;
  po.ctx = int64_t(tok.size());
  return evaluate_perplexity([&](const std::vector<int32_t>&) { return logits; }, vocab, tok, po).ppl;
}

// Extra sequence lengths to time ($SLIDESPARSE_BENCH_TOKENS, e.g. "2048"; 512 is always timed).
std::vector<int64_t> extra_bench_tokens() {
  std::vector<int64_t> out;
  const char* env = std::getenv("SLIDESPARSE_BENCH_TOKENS");
  std::stringstream in(env != nullptr ? env : "");
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty() && std::stoll(item) != 512) out.push_back(std::stoll(item));
  return out;
}

void bench_line(const std::string& variant, const LlamaGpuModel& gpu, const std::vector<int32_t>& tok, double ppl,
                double forward_wall_ms) {
  auto emit = [&](const std::vector<int32_t>& t, nlohmann::json extra) {
    const double ms = gpu.time_forward_ms(t, 2, 10);
    nlohmann::json stages = nlohmann::json::object();
    for (const auto& [stage, sms] : gpu.profile_ms(t, 5)) {
      EXPECT_TRUE(std::isfinite(sms) && sms >= 0.0) << stage;
      stages[stage] = sms;
    }
    nlohmann::json j = {{"bench", "llama_gpu_forward"}, {"model", "random SmolLM2-135M shape"},
                        {"variant", variant}, {"tokens", t.size()}, {"device_ms", ms},
                        {"tokens_per_s", double(t.size()) / (ms / 1000.0)}, {"load_s", gpu.load_seconds()},
                        {"stages_ms", stages}};
    j.update(extra);
    cudaDeviceProp prop{};
    int dev = 0;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess) j["gpu"] = prop.name;
    std::cout << "[ tokens/s ] " << j.dump() << "\n";
    if (const char* out = std::getenv("SLIDESPARSE_BENCH_OUT")) std::ofstream(out, std::ios::app) << j.dump() << "\n";
  };
  emit(tok, {{"forward_wall_ms", forward_wall_ms}, {"ppl", ppl}});
  for (int64_t T : extra_bench_tokens())
    if (T <= gpu.options().max_tokens) emit(random_tokens(T, gpu.config().vocab, uint64_t(T)), nlohmann::json::object());
}

TEST(GpuLlamaSmolShape, MatchesCpuAtT512AndReportsTokensPerSecond) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  if (quick()) GTEST_SKIP() << "SLIDESPARSE_GPU_TEST_QUICK: the 135M-parameter model is left out";
  TinyShape s;
  s.layers = 30;
  s.hidden = 576;
  s.heads = 9;
  s.kv_heads = 3;
  s.intermediate = 1536;
  s.vocab = 49152;
  s.eps = 1e-5;
  s.theta = 100000.0;
  s.tied = true;
  TempDir tmp;
  const std::string dir = tmp.sub("smol_shape");
  write_random_llama(s, dir, 2024);
  const int64_t T = 512;
  const std::vector<int32_t> tok = random_tokens(T, s.vocab, 512);

  // CPU references: the f32 model, its bf16 twin (the GPU's rounding points), the f32 pruned model.
  auto cpu_run = [&](const char* what, std::optional<Sim> sim, std::optional<Pattern> p) {
    const LlamaModel m = sim ? cpu_baseline(dir, *sim, p) : LlamaModel::load(dir);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<float> l = m.forward(tok);
    std::cout << "[ cpu ] " << what << " forward T=512 in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s on "
              << m.num_threads() << " threads\n";
    return l;
  };
  const std::vector<float> cpu_logits = cpu_run("f32", std::nullopt, std::nullopt);
  const std::vector<float> twin_logits = cpu_run("bf16 twin", Sim::kBf16, std::nullopt);
  const std::vector<float> pruned_logits = cpu_run("f32 6:8", Sim::kF32, k68);
  const double ppl_cpu = ppl_of(cpu_logits, s.vocab, tok), ppl_twin = ppl_of(twin_logits, s.vocab, tok);
  const double e_twin = rel_fro(twin_logits, cpu_logits), lr_twin = std::fabs(std::log(ppl_twin / ppl_cpu));

  auto opts = [&](std::optional<Pattern> p, LinearPrecision prec, LinearPath path) {
    LlamaGpuOptions o;
    o.pattern = p;
    o.precision = prec;
    o.path = path;
    o.max_tokens = T;
    for (int64_t t : extra_bench_tokens()) o.max_tokens = std::max(o.max_tokens, t);
    o.search = true;
    return o;
  };
  auto timed_forward = [&](const LlamaGpuModel& m, double& wall_ms) {
    m.forward(tok);  // creates the plans, captures the graph
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<float> l = m.forward(tok);
    wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return l;
  };
  {
    const LlamaGpuModel gpu = LlamaGpuModel::load(dir, opts(std::nullopt, LinearPrecision::kBF16, LinearPath::kAuto));
    std::cout << gpu.describe() << "\n";
    double wall = 0;
    const std::vector<float> g = timed_forward(gpu, wall);
    const double ppl_gpu = ppl_of(g, s.vocab, tok), e = rel_fro(g, cpu_logits), lr = std::fabs(std::log(ppl_gpu / ppl_cpu));
    std::cout << "[ bf16 ] T=512 vs cpu f32: logits gpu " << e << ", twin " << e_twin << "; |ln ppl ratio| gpu " << lr
              << ", twin " << lr_twin << " (ppl cpu " << ppl_cpu << ")\n";
    EXPECT_LE(e, 2.0 * e_twin);
    EXPECT_LE(e, kCeilBf16);
    EXPECT_LE(lr, 2.0 * lr_twin + 5e-3);
    bench_line("dense bf16", gpu, tok, ppl_gpu, wall);
  }
  for (LinearPrecision prec : {LinearPrecision::kI8, LinearPrecision::kE4M3}) {
    const std::string pn = linear_precision_name(prec);
    {
      const LlamaGpuModel dense = LlamaGpuModel::load(dir, opts(std::nullopt, prec, LinearPath::kAuto));
      double wall = 0;
      const std::vector<float> g = timed_forward(dense, wall);
      const double ppl = ppl_of(g, s.vocab, tok);
      const double e = rel_fro(g, cpu_logits);
      std::cout << "[ dense " << pn << " ] T=512: vs cpu f32 " << e << "\n";
      EXPECT_LE(e, kSanityFullSize) << "dense " << pn;
      bench_line("dense " + pn, dense, tok, ppl, wall);
    }
    LlamaGpuModel sparse = LlamaGpuModel::load(dir, opts(k68, prec, LinearPath::kSparse));
    double wall = 0;
    const std::vector<float> a = timed_forward(sparse, wall);
    bench_line("6:8 " + pn + " sparse path", sparse, tok, ppl_of(a, s.vocab, tok), wall);
    sparse.set_path(LinearPath::kDense);
    double wall_d = 0;
    const std::vector<float> b = timed_forward(sparse, wall_d);
    const double e_dense = rel_fro(b, pruned_logits), diff = rel_fro(a, b);
    std::cout << "[ " << pn << " 6:8 ] T=512: dense path vs cpu f32 6:8 " << e_dense << ", sparse vs dense path " << diff
              << "\n";
    EXPECT_LE(e_dense, kSanityFullSize);
    if (prec == LinearPrecision::kI8) {
      EXPECT_TRUE(same_bits(a, b, s.vocab)) << "i8 6:8 sparse vs dense path at full size";
    } else {
      EXPECT_LE(diff, e_dense);
    }
    bench_line("6:8 " + pn + " dense path (same operands)", sparse, tok, ppl_of(b, s.vocab, tok), wall_d);
  }
}

// ---- the real SmolLM2-135M: perplexity GPU vs CPU --------------------------------------------------
// GPT-2 byte-level BPE: the token of each single byte is the UTF-8 text of its code point in the
// byte-to-unicode table (printable bytes map to themselves, the others to 256, 257, ... in order).
// The text is fed byte by byte: a valid (if unusual) token sequence. (BpeTokenizer needs RE2, a
// shared library the GPU machines may lack, so the GPU binaries do not link it.)
std::vector<int32_t> byte_tokens(const std::string& tokenizer_json, const std::string& text) {
  std::ifstream in(tokenizer_json);
  const nlohmann::json j = nlohmann::json::parse(in);
  const auto& tokens = j.at("tokens");
  std::map<std::string, int32_t> id;
  for (size_t i = 0; i < tokens.size(); ++i) id.emplace(tokens[i].get<std::string>(), int32_t(i));
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
      s += char(cp);
    } else {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    }
    return s;
  };
  std::vector<int32_t> byte_id(256, -1);
  uint32_t extra = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const uint32_t cp = printable ? b : 256 + extra++;
    const auto it = id.find(utf8(cp));
    if (it != id.end()) byte_id[b] = it->second;
  }
  std::vector<int32_t> out;
  for (unsigned char ch : text) {
    if (byte_id[ch] < 0) throw std::runtime_error("no token for byte " + std::to_string(int(ch)));
    out.push_back(byte_id[ch]);
  }
  return out;
}

TEST(GpuLlamaSmolLM2, PerplexityMatchesCpu) {
  SLIDESPARSE_REQUIRE_CUSPARSELT();
  const char* env_dir = std::getenv("SLIDESPARSE_SMOL_HF");
  const std::string dir = env_dir != nullptr ? env_dir : "/tmp/smol-hf";
  const char* env_text = std::getenv("SLIDESPARSE_WIKITEXT");
  const std::string text_path = env_text != nullptr ? env_text : "/work/shared/data/wikitext-2-raw/wiki.test.raw";
  if (!std::filesystem::exists(dir + "/config.json") || !std::filesystem::exists(dir + "/tokenizer_gguf.json"))
    GTEST_SKIP() << dir << " holds no imported SmolLM2 (make it with: slidesparse import-gguf "
                 << ".deps/models/SmolLM2-135M-Instruct.Q4_1.gguf " << dir << "; or set SLIDESPARSE_SMOL_HF)";
  if (!std::filesystem::exists(text_path))
    GTEST_SKIP() << text_path << " is missing (WikiText-2 raw test split; or set SLIDESPARSE_WIKITEXT)";
  std::ifstream in(text_path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const int64_t ctx = 256, windows = 2;
  ASSERT_GT(int64_t(text.size()), 4096 + ctx * windows);
  const std::vector<int32_t> tok = byte_tokens(dir + "/tokenizer_gguf.json", text.substr(4096, size_t(ctx * windows)));
  PerplexityOptions po;
  po.ctx = ctx;
  const LlamaModel cpu = LlamaModel::load(dir);
  const double ppl_cpu = evaluate_perplexity(cpu, tok, po).ppl;
  LlamaGpuOptions o;
  o.max_tokens = ctx;
  const LlamaGpuModel gpu = LlamaGpuModel::load(dir, o);
  const auto fwd = [&](const std::vector<int32_t>& w) { return gpu.forward(w); };
  const double ppl_gpu = evaluate_perplexity(fwd, gpu.config().vocab, tok, po).ppl;
  std::cout << "[ SmolLM2 ] byte-level WikiText-2 slice (" << tok.size() << " tokens): ppl cpu f32 " << ppl_cpu
            << ", gpu bf16 " << ppl_gpu << "\n";
  EXPECT_LE(std::fabs(std::log(ppl_gpu / ppl_cpu)), 0.02);
}

}  // namespace
}  // namespace slidesparse
