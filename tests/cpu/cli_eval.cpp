// `slidesparse eval` and `slidesparse calibrate` through the CLI on tiny random Llama models:
// perplexity against an independent float64 forward pass, the losslessness of sliding (INT8
// identical, FP8/BF16 to 4 significant digits), stored vs load-time quantization, calibration norms
// against values computed here from the weights, wanda end to end, and every bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cpu/cli_util.hpp"
#include "cpu/model_test_util.hpp"

namespace slidesparse::clitest {
namespace {

using testing::TinyModel;
using testing::TinyShape;

// Perplexity over non-overlapping windows from the float64 reference forward.
double reference_ppl(const TinyModel& m, const std::vector<int32_t>& ids, int64_t ctx) {
  double nll = 0;
  int64_t count = 0;
  for (size_t b = 0; b < ids.size(); b += size_t(ctx)) {
    const size_t e = std::min(ids.size(), b + size_t(ctx));
    if (e - b < 2) break;
    const std::vector<int32_t> win(ids.begin() + long(b), ids.begin() + long(e));
    const std::vector<double> lg = testing::reference_forward(m, win);
    const int64_t V = m.s.vocab;
    for (size_t t = 0; t + 1 < win.size(); ++t) {
      double mx = -INFINITY, sum = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, lg[t * size_t(V) + size_t(v)]);
      for (int64_t v = 0; v < V; ++v) sum += std::exp(lg[t * size_t(V) + size_t(v)] - mx);
      nll += std::log(sum) + mx - lg[t * size_t(V) + size_t(win[t + 1])];
      ++count;
    }
  }
  return std::exp(nll / double(count));
}

double eval_ppl(const std::vector<std::string>& args) {
  std::vector<std::string> a = {"eval"};
  a.insert(a.end(), args.begin(), args.end());
  a.push_back("--json");
  const auto r = run_cli(a);
  EXPECT_EQ(r.code, 0) << r;
  if (r.code != 0) return NAN;
  return r.out_json()["ppl"].get<double>();
}

TEST(CliEval, PerplexityMatchesFloat64Reference) {
  TempDir dir;
  TinyShape s;
  s.hidden = 48, s.heads = 4, s.kv_heads = 2, s.intermediate = 80, s.vocab = 96;
  const TinyModel m = testing::make_tiny_model(s, 3);
  const std::string model = dir.file("m");
  fs::create_directories(model);
  testing::write_tiny_model(m, model);
  const auto ids = random_ids(150, s.vocab, 9);  // windows 64 + 64 + 22
  write_ids(dir.file("ids.bin"), ids);
  const auto r = run_cli({"eval", "--model", model, "--ids", dir.file("ids.bin"), "--ctx", "64", "--json", "-j", "2"});
  ASSERT_EQ(r.code, 0) << r;
  const json j = r.out_json();
  EXPECT_EQ(j["windows"].get<int64_t>(), 3);
  EXPECT_EQ(j["tokens_evaluated"].get<int64_t>(), 63 + 63 + 21);
  EXPECT_EQ(j["tokens_total"].get<int64_t>(), 150);
  const double want = reference_ppl(m, ids, 64);
  EXPECT_NEAR(j["ppl"].get<double>(), want, 1e-5 * want);
  // --max-tokens keeps the first N tokens.
  const auto r2 = run_cli({"eval", "--model", model, "--ids", dir.file("ids.bin"), "--ctx", "64", "--max-tokens",
                           "64", "--json"});
  ASSERT_EQ(r2.code, 0) << r2;
  EXPECT_NEAR(r2.out_json()["ppl"].get<double>(), reference_ppl(m, {ids.begin(), ids.begin() + 64}, 64), 1e-5 * want);
  // --dump-logits: the first window's logits, bit for bit those the perplexity was computed from
  // (checked against the float64 reference here).
  const auto r4 = run_cli({"eval", "--model", model, "--ids", dir.file("ids.bin"), "--ctx", "64", "--dump-logits",
                           dir.file("l.bin"), "--json"});
  ASSERT_EQ(r4.code, 0) << r4;
  const auto bytes = read_bytes(dir.file("l.bin"));
  ASSERT_EQ(bytes.size(), size_t(64 * s.vocab * 4));
  const std::vector<double> ref = testing::reference_forward(m, {ids.begin(), ids.begin() + 64});
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    float v;
    std::memcpy(&v, &bytes[4 * i], 4);
    worst = std::max(worst, std::fabs(double(v) - ref[i]));
  }
  EXPECT_LT(worst, 1e-3);
  // The human output names the perplexity.
  const auto r3 = run_cli({"eval", "--model", model, "--ids", dir.file("ids.bin"), "--ctx", "64"});
  ASSERT_EQ(r3.code, 0) << r3;
  EXPECT_NE(r3.out.find("perplexity"), std::string::npos) << r3;
}

// prune -> (int8/fp8) -> slide, then eval every form: sliding is lossless.
TEST(CliEval, SlidingIsLosslessAndStoredEqualsLoadTimeQuantization) {
  TempDir dir;
  TinyShape s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.intermediate = 96, s.vocab = 80;
  const std::string dense = dir.file("dense");
  fs::create_directories(dense);
  testing::write_tiny_model(testing::make_tiny_model(s, 5), dense, DType::kBF16);
  write_ids(dir.file("ids.bin"), random_ids(200, s.vocab, 4));
  auto ok = [&](const std::vector<std::string>& a) {
    const auto r = run_cli(a);
    ASSERT_EQ(r.code, 0) << r;
  };
  ok({"prune", dense, dir.file("p68"), "--pattern", "6:8", "-q"});
  ok({"prune", dense, dir.file("p68i8"), "--pattern", "6:8", "--precision", "int8", "-q"});
  ok({"prune", dense, dir.file("p68f8"), "--pattern", "6:8", "--precision", "fp8", "-q"});
  ok({"slide", dir.file("p68"), dir.file("s68"), "-q"});
  ok({"slide", dir.file("p68i8"), dir.file("s68i8"), "-q"});
  ok({"slide", dir.file("p68f8"), dir.file("s68f8"), "-q"});
  const std::vector<std::string> ids = {"--ids", dir.file("ids.bin"), "--ctx", "50"};
  auto ppl = [&](const std::string& model, std::vector<std::string> extra) {
    extra.insert(extra.begin(), {"--model", model});
    extra.insert(extra.end(), ids.begin(), ids.end());
    return eval_ppl(extra);
  };
  // INT8: identical through every route (load-time quantization of the pruned bf16 weights is the
  // same per-channel quantization that prune --precision int8 stores).
  const double i8 = ppl(dir.file("p68"), {"--precision", "int8"});
  EXPECT_EQ(ppl(dir.file("p68i8"), {}), i8);
  EXPECT_EQ(ppl(dir.file("s68i8"), {"--slide"}), i8);  // the stored P.slide_weight
  EXPECT_EQ(ppl(dir.file("p68"), {"--precision", "int8", "--slide"}), i8);
  EXPECT_EQ(ppl(dir.file("s68"), {"--precision", "int8", "--slide"}), i8);
  // FP8 and BF16: the same products in another order: 4 significant digits (in fact far closer).
  const double f8 = ppl(dir.file("p68f8"), {});
  EXPECT_EQ(ppl(dir.file("p68"), {"--precision", "fp8"}), f8);
  EXPECT_NEAR(ppl(dir.file("s68f8"), {"--slide"}), f8, 5e-5 * f8);
  const double bf = ppl(dir.file("p68"), {});
  EXPECT_NEAR(ppl(dir.file("s68"), {"--slide"}), bf, 5e-5 * bf);
  // The dense model slid at load with an explicit pattern refuses: it is not 6:8-sparse.
  const auto r = run_cli({"eval", "--model", dense, "--ids", dir.file("ids.bin"), "--slide", "--pattern", "6:8"});
  EXPECT_EQ(r.code, 6) << r;
  // And the quantized models differ from the bf16 one (the comparison above is not vacuous).
  EXPECT_NE(i8, bf);
  EXPECT_NE(f8, bf);
}

TEST(CliEval, CalibrateNormsAndWandaEndToEnd) {
  TempDir dir;
  TinyShape s;
  s.layers = 2, s.hidden = 32, s.heads = 2, s.kv_heads = 1, s.intermediate = 48, s.vocab = 64;
  const TinyModel m = testing::make_tiny_model(s, 8);
  const std::string model = dir.file("m");
  fs::create_directories(model);
  testing::write_tiny_model(m, model);
  const auto ids = random_ids(70, s.vocab, 2);
  write_ids(dir.file("calib.bin"), ids);
  const auto r = run_cli({"calibrate", "--model", model, "--ids", dir.file("calib.bin"), "--ctx", "32", "-o",
                          dir.file("norms.safetensors"), "--json"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out_json()["tensors"].get<int64_t>(), 7 * s.layers);
  EXPECT_EQ(r.out_json()["tokens"].get<int64_t>(), 70);
  const auto norms = load_file(dir.file("norms.safetensors"));
  ASSERT_EQ(norms.size(), size_t(7 * s.layers));
  // Layer 0's q/k/v input is RMSNorm(embedding) * gamma: position-independent, so the norms can be
  // computed here from the weights alone.
  const auto& emb = m.w.at("model.embed_tokens.weight");
  const auto& gamma = m.w.at("model.layers.0.input_layernorm.weight");
  std::vector<double> want(size_t(s.hidden), 0.0);
  for (int32_t t : ids) {
    double ms = 0;
    for (int64_t i = 0; i < s.hidden; ++i) ms += emb[size_t(t * s.hidden + i)] * emb[size_t(t * s.hidden + i)];
    const double inv = 1.0 / std::sqrt(ms / double(s.hidden) + s.eps);
    for (int64_t i = 0; i < s.hidden; ++i) {
      const double x = gamma[size_t(i)] * emb[size_t(t * s.hidden + i)] * inv;
      want[size_t(i)] += x * x;
    }
  }
  for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
    const auto& got = norms.at(std::string("model.layers.0.self_attn.") + proj + ".input_norm");
    ASSERT_EQ(got.shape, std::vector<int64_t>{s.hidden});
    ASSERT_EQ(got.dtype, DType::kF32);
    const std::vector<double> v = got.values();
    for (int64_t i = 0; i < s.hidden; ++i)
      EXPECT_NEAR(v[size_t(i)], std::sqrt(want[size_t(i)]), 1e-5 * std::sqrt(want[size_t(i)])) << proj << i;
  }
  EXPECT_EQ(norms.at("model.layers.1.mlp.down_proj.input_norm").shape, std::vector<int64_t>{s.intermediate});
  // wanda with these norms prunes to a compliant checkpoint that evaluates.
  auto r2 = run_cli({"prune", model, dir.file("w68"), "--pattern", "6:8", "--method", "wanda", "--calib",
                     dir.file("norms.safetensors"), "-q"});
  ASSERT_EQ(r2.code, 0) << r2;
  EXPECT_EQ(run_cli({"verify", dir.file("w68"), "--against", model}).code, 0);
  EXPECT_TRUE(std::isfinite(eval_ppl({"--model", dir.file("w68"), "--ids", dir.file("calib.bin")})));
  // The output is not overwritten without --force.
  r2 = run_cli({"calibrate", "--model", model, "--ids", dir.file("calib.bin"), "-o", dir.file("norms.safetensors")});
  EXPECT_EQ(r2.code, 7) << r2;
  r2 = run_cli({"calibrate", "--model", model, "--ids", dir.file("calib.bin"), "-o", dir.file("norms.safetensors"),
                "--force", "-q"});
  EXPECT_EQ(r2.code, 0) << r2;
}

TEST(CliEval, BadInputs) {
  TempDir dir;
  TinyShape s;
  s.layers = 1, s.hidden = 16, s.heads = 2, s.kv_heads = 1, s.intermediate = 24, s.vocab = 40;
  const std::string model = dir.file("m");
  fs::create_directories(model);
  testing::write_tiny_model(testing::make_tiny_model(s, 1), model);
  write_ids(dir.file("ids.bin"), random_ids(30, s.vocab, 1));
  write_ids(dir.file("big.bin"), {1, 2, 40, 3});
  write_bytes(dir.file("odd.bin"), {1, 0, 0, 0, 7});
  write_text(dir.file("t.txt"), "hello");
  struct Case {
    std::vector<std::string> args;
    int code;
    const char* says;
  };
  const std::string ids = dir.file("ids.bin");
  const std::vector<Case> cases = {
      {{"eval", "--model", dir.file("nope"), "--ids", ids}, 3, "config.json"},
      {{"eval", "--model", model}, 2, "exactly one of --text"},
      {{"eval", "--model", model, "--ids", ids, "--text", dir.file("t.txt")}, 2, "exactly one of --text"},
      {{"eval", "--model", model, "--ids", dir.file("missing.bin")}, 3, "does not exist"},
      {{"eval", "--model", model, "--ids", dir.file("odd.bin")}, 5, "whole number of int32"},
      {{"eval", "--model", model, "--ids", dir.file("big.bin")}, 6, "outside the model's vocabulary"},
      {{"eval", "--model", model, "--ids", ids, "--precision", "int4"}, 2, "--precision 'int4'"},
      {{"eval", "--model", model, "--ids", ids, "--ctx", "1"}, 2, "--ctx"},
      {{"eval", "--model", model, "--ids", ids, "--max-tokens", "-3"}, 2, "--max-tokens"},
      {{"eval", "--model", model, "--ids", ids, "--slide"}, 2, "sliding needs a pattern"},
      {{"eval", "--model", model, "--text", dir.file("t.txt")}, 3, "tokenizer_gguf.json"},
      {{"eval", "--ids", ids}, 2, "--model"},
      {{"eval", "--model", model, "--ids", ids, "--device", "tpu"}, 2, "--device 'tpu'"},
      {{"eval", "--model", model, "--ids", ids, "--device", "gpu", "--slide"}, 2, "--slide is for the CPU path"},
      {{"calibrate", "--model", model, "--ids", ids}, 2, "--output"},
      {{"calibrate", "--model", model, "--ids", ids, "-o", dir.path().string()}, 2, "is a directory"},
  };
  for (const auto& c : cases) {
    const auto r = run_cli(c.args);
    EXPECT_EQ(r.code, c.code) << r;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << "expected '" << c.says << "'\n" << r;
  }
  // Without CUDA in the build (or without a device) the GPU path is "unsupported", not a crash.
  const auto g = run_cli({"eval", "--model", model, "--ids", ids, "--device", "gpu"});
  EXPECT_EQ(g.code, 8) << g;
  // A failed calibrate leaves nothing behind.
  EXPECT_EQ(run_cli({"calibrate", "--model", model, "--ids", dir.file("big.bin"), "-o", dir.file("n.st")}).code, 6);
  EXPECT_FALSE(fs::exists(dir.file("n.st")));
  EXPECT_TRUE(hidden_entries(dir.path().string()).empty());
}

}  // namespace
}  // namespace slidesparse::clitest
