// `prune --precision ternary` end to end (docs/FORMAT.md section 3, "ternary"): the stored codes and
// scales against the float64 reference (src/reference, independent of the core), the metadata
// marker through prune / slide / info, `verify` accepting the result and catching every kind of
// tampering (exit 1), bad inputs with their exit codes, and the integer oracle: the checkpoint's
// i8 codes times the CPU core's per-token INT8 activations, summed in int64 here, against the CPU
// slid layer (SlidInt8Linear on the stored P.slide_weight) -- exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cpu/cli_util.hpp"
#include "cpu/model_test_util.hpp"
#include "slidesparse/llama.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/quant.hpp"

namespace slidesparse::clitest {
namespace {

constexpr int kExitNotCompliant = 1, kExitUsage = 2, kExitBadFormat = 5, kExitInvalidData = 6;
const std::string kQP = "model.layers.0.self_attn.q_proj", kUpP = "model.layers.0.mlp.up_proj";
const std::string kQ = kQP + ".weight", kUp = kUpP + ".weight", kEmbed = "model.embed_tokens.weight";
constexpr int64_t kQN = 37, kQK = 101;  // k not a multiple of 8, n not a multiple of 32
constexpr int64_t kUpN = 24, kUpK = 16;

OwnedTensor bf16_tensor(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
  OwnedTensor t{{name, DType::kBF16, std::move(shape)}, {}};
  t.bytes.resize(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = f32_to_bf16(v[i]);
    std::memcpy(t.bytes.data() + 2 * i, &h, 2);
  }
  return t;
}

std::vector<float> gaussian(std::mt19937& rng, size_t count, float sd) {
  std::normal_distribution<float> g(0.0f, sd);
  std::vector<float> v(count);
  for (auto& x : v) x = g(rng);
  return v;
}

json slidesparse_meta(const std::string& file) { return json::parse(load_metadata(file).at("slidesparse")); }

struct Fixture {
  TempDir dir;
  std::string dense = dir.file("dense.safetensors"), pruned = dir.file("pruned.safetensors"),
              slid = dir.file("slid.safetensors"), bad = dir.file("bad.safetensors");
  json prune_report;
  Fixture() {
    std::mt19937 rng(77);
    // Small integers in up_proj: many ties in |w| and exact half-way quotients w / s.
    write_safetensors(dense, {f32_tensor(kEmbed, {3, 16}, gaussian(rng, 48, 1.0f)),
                              f32_tensor(kQ, {kQN, kQK}, gaussian(rng, size_t(kQN * kQK), 0.02f)),
                              bf16_tensor(kUp, {kUpN, kUpK}, small_ints(rng, size_t(kUpN * kUpK), 4, 20))});
    const CliResult p = run_cli({"prune", "--precision", "ternary", "--pattern", "6:8", dense, pruned, "--json"});
    EXPECT_EQ(p.code, 0) << p;
    if (p.code == 0) prune_report = p.out_json();
    const CliResult s = run_cli({"slide", pruned, slid});
    EXPECT_EQ(s.code, 0) << s;
  }
};

// Codes and scale of one stored layer against the reference on the dense values.
void expect_layer_matches_reference(const std::string& file, const std::string& dense, const std::string& prefix,
                                    int64_t n, int64_t k) {
  SCOPED_TRACE(prefix);
  const auto out = load_file(file), in = load_file(dense);
  const reference::TernaryTensor ref = reference::ternary(4, in.at(prefix + ".weight").values(), n, k);
  const Loaded& w = out.at(prefix + ".weight");
  ASSERT_EQ(w.dtype, DType::kI8);
  ASSERT_EQ(w.shape, (std::vector<int64_t>{n, k}));
  std::vector<int> codes(size_t(n * k));
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = int(int8_t(w.bytes[i]));
  EXPECT_EQ(codes, ref.q);
  const Loaded& s = out.at(prefix + ".weight_scale");
  ASSERT_EQ(s.dtype, DType::kF32);
  ASSERT_EQ(s.shape, std::vector<int64_t>{n});
  for (double v : s.values()) EXPECT_EQ(float(v), ref.scale);
  // Not vacuous: the codes use all three values and some groups were pruned.
  int64_t neg = 0, pos = 0;
  for (int c : codes) neg += c < 0, pos += c > 0;
  EXPECT_GT(neg, 0);
  EXPECT_GT(pos, 0);
}

TEST(CliTernary, PruneStoresReferenceCodesAndOneScale) {
  Fixture fx;
  expect_layer_matches_reference(fx.pruned, fx.dense, kQP, kQN, kQK);
  expect_layer_matches_reference(fx.pruned, fx.dense, kUpP, kUpN, kUpK);
  // Untargeted tensors are copied byte for byte.
  EXPECT_EQ(load_file(fx.pruned).at(kEmbed).bytes, load_file(fx.dense).at(kEmbed).bytes);
  // The marker: precision i8 + quant ternary; method magnitude.
  const json meta = slidesparse_meta(fx.pruned);
  EXPECT_EQ(meta["method"], "magnitude");
  for (const auto& p : {kQP, kUpP}) {
    EXPECT_EQ(meta["layers"][p]["precision"], "i8") << p;
    EXPECT_EQ(meta["layers"][p]["quant"], "ternary") << p;
  }
  // The report: precision, per-layer scale and counts.
  const json& r = fx.prune_report;
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["precision"], "ternary");
  const auto ref = reference::ternary(4, load_file(fx.dense).at(kQ).values(), kQN, kQK);
  bool seen = false;
  for (const auto& l : r["layers"])
    if (l["tensor"] == kQ) {
      seen = true;
      EXPECT_EQ(l["dtype_out"], "i8");
      EXPECT_EQ(l["ternary"]["scale"].get<float>(), ref.scale);
      int64_t nz = 0;
      for (int c : ref.q) nz += c != 0;
      EXPECT_EQ(l["ternary"]["nonzeros_before_pruning"].get<int64_t>() - l["pruned"].get<int64_t>(), nz);
      EXPECT_GT(l["pruned"].get<int64_t>(), 0);
    }
  EXPECT_TRUE(seen);
}

TEST(CliTernary, SlideKeepsTheMarkerAndVerifyAndInfoReportIt) {
  Fixture fx;
  const json meta = slidesparse_meta(fx.slid);
  EXPECT_EQ(meta["layers"][kQP]["quant"], "ternary");
  EXPECT_GT(meta["layers"][kQP]["k_slide"].get<int64_t>(), 0);
  const auto slid = load_file(fx.slid);
  EXPECT_EQ(slid.at(kQP + ".slide_weight").dtype, DType::kI8);
  for (const std::string& file : {fx.pruned, fx.slid}) {
    const CliResult v = run_cli({"verify", file, "--against", fx.dense, "--json"});
    ASSERT_EQ(v.code, 0) << v;
    const json j = v.out_json();
    EXPECT_EQ(j["compliant"], true);
    for (const auto& l : j["layers"]) {
      EXPECT_EQ(l["quant"], "ternary");
      EXPECT_EQ(l["codes_ok"], true);
      EXPECT_EQ(l["one_scale"], true);
      EXPECT_EQ(l["pattern_ok"], true);
      EXPECT_EQ(l["against"]["scale_ok"], true);
      EXPECT_EQ(l["against"]["mismatches"], 0);
    }
    const CliResult text = run_cli({"verify", file, "--against", fx.dense});
    EXPECT_EQ(text.code, 0) << text;
    EXPECT_NE(text.out.find("COMPLIANT"), std::string::npos) << text;
  }
  const CliResult info = run_cli({"info", fx.slid, "--json"});
  ASSERT_EQ(info.code, 0) << info;
  int ternary_layers = 0;
  const json info_doc = info.out_json();
  for (const auto& l : info_doc["layers"]) ternary_layers += l.value("quant", std::string()) == "ternary";
  EXPECT_EQ(ternary_layers, 2);
  const CliResult info_text = run_cli({"info", fx.slid});
  EXPECT_NE(info_text.out.find("2 ternary"), std::string::npos) << info_text;
}

TEST(CliTernary, ShardedDirectoryRoundTrip) {
  TempDir dir;
  ASSERT_EQ(run_cli({"synth", dir.file("dense"), "--layers", "2", "--hidden", "96", "--intermediate", "200",
                     "--vocab", "64", "--shards", "2", "-q"})
                .code,
            0);
  const CliResult p = run_cli({"prune", "--precision", "ternary", "--pattern", "8:10", dir.file("dense"),
                               dir.file("pruned"), "-q"});
  ASSERT_EQ(p.code, 0) << p;
  ASSERT_EQ(run_cli({"slide", dir.file("pruned"), dir.file("slid"), "-q"}).code, 0);
  const CliResult v = run_cli({"verify", dir.file("slid"), "--against", dir.file("dense")});
  EXPECT_EQ(v.code, 0) << v;
}

// ---- verify catches tampering ---------------------------------------------------------------

void expect_not_compliant(const std::string& file, const std::vector<std::string>& fragments,
                          const std::string& against = "") {
  std::vector<std::string> args = {"verify", file, "--json"};
  if (!against.empty()) args.insert(args.end(), {"--against", against});
  const CliResult r = run_cli(args);
  EXPECT_EQ(r.code, kExitNotCompliant) << r;
  if (r.code != kExitNotCompliant) return;
  std::string all;
  const json doc = r.out_json();
  for (const auto& p : doc["problems"]) all += p.get<std::string>() + "\n";
  for (const auto& f : fragments) EXPECT_NE(all.find(f), std::string::npos) << "wanted \"" << f << "\" in\n" << all;
}

size_t first_code(const std::string& file, const std::string& name, int value) {
  const Loaded w = load_file(file).at(name);
  for (size_t i = 0; i < w.count(); ++i)
    if (int8_t(w.bytes[i]) == value) return i;
  ADD_FAILURE() << "no code " << value << " in " << name;
  return 0;
}

TEST(CliTernary, VerifyCatchesACodeOutsideMinusOneToOne) {
  Fixture fx;
  const size_t i = first_code(fx.pruned, kQ, 1);
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) { find_tensor(ts, kQ).bytes[i] = 2; });
  expect_not_compliant(fx.bad, {kQ + ": 1 ternary codes outside {-1, 0, 1} (first: row " + std::to_string(i / kQK) +
                                ", column " + std::to_string(i % kQK) + ", value 2)"});
}

TEST(CliTernary, VerifyCatchesScalesThatDifferBetweenRows) {
  Fixture fx;
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& s = find_tensor(ts, kQP + ".weight_scale");
    float v;
    std::memcpy(&v, s.bytes.data() + 4 * 5, 4);
    v = std::nextafter(v, 1.0f);  // one ulp: still positive and finite
    std::memcpy(s.bytes.data() + 4 * 5, &v, 4);
  });
  expect_not_compliant(fx.bad, {kQP + ".weight_scale: a ternary layer has one scale for every row, but 1 rows differ",
                                "first: row 5"});
}

TEST(CliTernary, OnlyAgainstCatchesAWrongScaleOrACodeFlip) {
  Fixture fx;
  // Every row's scale doubled: consistent, so only the dense original reveals it.
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& s = find_tensor(ts, kQP + ".weight_scale");
    for (size_t r = 0; r < size_t(kQN); ++r) {
      float v;
      std::memcpy(&v, s.bytes.data() + 4 * r, 4);
      v *= 2;
      std::memcpy(s.bytes.data() + 4 * r, &v, 4);
    }
  });
  EXPECT_EQ(run_cli({"verify", fx.bad}).code, 0);
  expect_not_compliant(fx.bad, {kQP + ".weight_scale: ", "but the mean |w| of the dense original gives"}, fx.dense);
  // A 1 turned into -1: a valid code, the pattern still holds.
  const size_t i = first_code(fx.pruned, kQ, 1);
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) { find_tensor(ts, kQ).bytes[i] = uint8_t(-1); });
  EXPECT_EQ(run_cli({"verify", fx.bad}).code, 0);
  expect_not_compliant(fx.bad,
                       {kQ + ": 1 ternary codes differ from those the dense original gives (first: row " +
                        std::to_string(i / kQK) + ", column " + std::to_string(i % kQK) + ")"},
                       fx.dense);
  // A kept code zeroed: also an over-pruned group.
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) { find_tensor(ts, kQ).bytes[i] = 0; });
  const CliResult r = run_cli({"verify", fx.bad, "--against", fx.dense, "--json"});
  EXPECT_EQ(r.code, kExitNotCompliant) << r;
  const json doc = r.out_json();
  for (const auto& l : doc["layers"]) {
    if (l["tensor"] == kQ) {
      EXPECT_EQ(l["against"]["over_pruned_groups"], 1);
    }
  }
}

TEST(CliTernary, VerifyCatchesATamperedSlideWeight) {
  Fixture fx;
  const size_t i = first_code(fx.slid, kQP + ".slide_weight", 1);
  rewrite_file(fx.slid, fx.bad,
               [&](std::vector<OwnedTensor>& ts) { find_tensor(ts, kQP + ".slide_weight").bytes[i] = uint8_t(-1); });
  expect_not_compliant(fx.bad, {kQP + ".slide_weight does not map back to " + kQ});
}

// The marker is validated where metadata is read: only "ternary", only on i8 layers (exit 5).
TEST(CliTernary, BadMarkerIsMalformedMetadata) {
  Fixture fx;
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
           {"quant", "binary"}, {"quant", 1}, {"precision", "bf16"}}) {
    SCOPED_TRACE(key + " = " + value.dump());
    std::vector<OwnedTensor> ts;
    std::map<std::string, std::string> meta;
    {
      const auto f = SafetensorsFile::open(fx.pruned);
      meta = f.metadata();
      for (const auto& t : f.tensors())
        ts.push_back({{t.name, t.dtype, t.shape}, std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes())});
    }
    json m = json::parse(meta.at("slidesparse"));
    m["layers"][kQP][key] = value;
    meta["slidesparse"] = m.dump();
    write_safetensors(fx.bad, ts, meta);
    const CliResult v = run_cli({"verify", fx.bad});
    EXPECT_EQ(v.code, kExitBadFormat) << v;
    EXPECT_NE(v.err.find("\"ternary\""), std::string::npos) << v;
    const CliResult s = run_cli({"slide", fx.bad, fx.dir.file("never.safetensors")});
    EXPECT_EQ(s.code, kExitBadFormat) << s;
    EXPECT_FALSE(fs::exists(fx.dir.file("never.safetensors")));
  }
}

// ---- bad inputs -----------------------------------------------------------------------------

TEST(CliTernary, RefusesActivationAwareMethodsWithUsageError) {
  TempDir dir;
  std::mt19937 rng(5);
  const std::string dense = dir.file("dense.safetensors"), out = dir.file("out.safetensors");
  write_safetensors(dense, {f32_tensor(kQ, {8, 16}, gaussian(rng, 128, 1.0f))});
  for (const std::string method : {"wanda", "sparsegpt"}) {
    const CliResult r = run_cli({"prune", "--precision", "ternary", "--method", method, "--calib", dense, dense, out});
    EXPECT_EQ(r.code, kExitUsage) << r;
    EXPECT_NE(r.err.find("--precision ternary prunes by magnitude only"), std::string::npos) << r;
    EXPECT_NE(r.err.find("--method " + method), std::string::npos) << r;
    EXPECT_FALSE(fs::exists(out));
  }
  const CliResult h = run_cli({"prune", "--help"});
  EXPECT_NE(h.out.find("ternary"), std::string::npos) << h;
}

TEST(CliTernary, NonFiniteWeightIsInvalidDataAndWritesNothing) {
  TempDir dir;
  std::mt19937 rng(6);
  std::vector<float> w = gaussian(rng, 128, 1.0f);
  w[size_t(3 * 16 + 9)] = std::numeric_limits<float>::infinity();
  const std::string dense = dir.file("dense.safetensors"), out = dir.file("out.safetensors");
  write_safetensors(dense, {f32_tensor(kQ, {8, 16}, w)});
  const CliResult r = run_cli({"prune", "--precision", "ternary", dense, out});
  EXPECT_EQ(r.code, kExitInvalidData) << r;
  EXPECT_NE(r.err.find("row 3, column 9"), std::string::npos) << r;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(hidden_entries(dir.path().string()).empty()) << join(hidden_entries(dir.path().string()));
}

// ---- the integer oracle ---------------------------------------------------------------------

// int64 sums of the checkpoint's codes times activation codes.
std::vector<int64_t> int_gemm(const std::vector<int8_t>& xq, const std::vector<int8_t>& wq, int64_t m, int64_t n,
                              int64_t k) {
  std::vector<int64_t> acc(size_t(m * n), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < k; ++c) acc[size_t(i * n + j)] += int64_t(xq[size_t(i * k + c)]) * wq[size_t(j * k + c)];
  return acc;
}

TEST(CliTernary, SlidLayerEqualsIntegerOracle) {
  Fixture fx;
  const auto slid = load_file(fx.slid);
  const Loaded& w = slid.at(kQ);
  const Loaded& sw = slid.at(kQP + ".slide_weight");
  std::vector<int8_t> wq(w.bytes.begin(), w.bytes.end());
  std::vector<float> scale(static_cast<size_t>(kQN));
  std::memcpy(scale.data(), slid.at(kQP + ".weight_scale").bytes.data(), scale.size() * 4);
  const Pattern p = Pattern::parse("6:8");
  const auto* ws = reinterpret_cast<const int8_t*>(sw.bytes.data());

  // (1) Exact integers: rows of small integers with amax 127 quantize to themselves with scale 1;
  // with weight scales of 1 the layer's output is its integer accumulator, converted exactly.
  std::mt19937 rng(11);
  for (int64_t m : {1, 7, 33}) {
    SCOPED_TRACE("m=" + std::to_string(m));
    std::vector<float> x(size_t(m * kQK));
    std::vector<int8_t> xq(x.size());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < kQK; ++c) {
        const int v = c == (i * 13) % kQK ? (i % 2 ? -127 : 127) : int(rng() % 255) - 127;
        x[size_t(i * kQK + c)] = float(v);
        xq[size_t(i * kQK + c)] = int8_t(v);
      }
    const std::vector<int64_t> acc = int_gemm(xq, wq, m, kQN, kQK);
    SlidInt8Linear layer(p, Int8Linear(wq, std::vector<float>(size_t(kQN), 1.0f), kQN, kQK), ws);
    std::vector<float> y(size_t(m * kQN), std::nanf(""));
    layer.apply(x.data(), m, y.data());
    for (size_t e = 0; e < y.size(); ++e) {
      ASSERT_LT(std::llabs(acc[e]), int64_t(1) << 24);
      ASSERT_EQ(double(y[e]), double(acc[e])) << "element " << e;
    }
  }

  // (2) The layer as stored, on gaussian activations: y == ((f32(acc) * s_x) * s_w) with the CPU
  // core's per-token quantization (the formula of Int8Linear and of the GPU epilogue).
  for (int64_t m : {1, 33}) {
    SCOPED_TRACE("gaussian m=" + std::to_string(m));
    const std::vector<float> x = gaussian(rng, size_t(m * kQK), 1.0f);
    std::vector<int8_t> xq(x.size());
    std::vector<float> sx(static_cast<size_t>(m));
    quantize_rows_i8(DType::kF32, x.data(), m, kQK, xq.data(), sx.data());
    const std::vector<int64_t> acc = int_gemm(xq, wq, m, kQN, kQK);
    SlidInt8Linear slid_layer(p, Int8Linear(wq, scale, kQN, kQK), ws);
    Int8Linear plain(wq, scale, kQN, kQK);
    std::vector<float> y(size_t(m * kQN)), y_plain(y.size());
    slid_layer.apply(x.data(), m, y.data());
    plain.apply(x.data(), m, y_plain.data());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < kQN; ++j) {
        const size_t e = size_t(i * kQN + j);
        const float want = (float(acc[e]) * sx[size_t(i)]) * scale[size_t(j)];
        ASSERT_EQ(y[e], want) << "row " << i << " column " << j;
        ASSERT_EQ(y_plain[e], want) << "row " << i << " column " << j;
      }
  }
}

// `eval` runs a ternary checkpoint on the existing INT8 path: stored and slid give the identical
// perplexity, which differs from per-channel INT8 of the same model (not vacuous).
TEST(CliTernary, EvalSlidEqualsStored) {
  TempDir dir;
  testing::TinyShape s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.intermediate = 96, s.vocab = 80;
  const std::string dense = dir.file("dense");
  fs::create_directories(dense);
  testing::write_tiny_model(testing::make_tiny_model(s, 8), dense, DType::kBF16);
  write_ids(dir.file("ids.bin"), random_ids(150, s.vocab, 3));
  for (const auto& a : std::vector<std::vector<std::string>>{
           {"prune", dense, dir.file("t68"), "--pattern", "6:8", "--precision", "ternary", "-q"},
           {"prune", dense, dir.file("i68"), "--pattern", "6:8", "--precision", "int8", "-q"},
           {"slide", dir.file("t68"), dir.file("t68s"), "-q"}}) {
    const CliResult r = run_cli(a);
    ASSERT_EQ(r.code, 0) << r;
  }
  auto ppl = [&](const std::string& model, bool slide) {
    std::vector<std::string> a = {"eval", "--model", model, "--ids", dir.file("ids.bin"), "--ctx", "50", "--json"};
    if (slide) a.push_back("--slide");
    const CliResult r = run_cli(a);
    EXPECT_EQ(r.code, 0) << r;
    return r.code == 0 ? r.out_json()["ppl"].get<double>() : NAN;
  };
  const double stored = ppl(dir.file("t68"), false);
  EXPECT_TRUE(std::isfinite(stored));
  EXPECT_EQ(ppl(dir.file("t68s"), true), stored);
  EXPECT_NE(ppl(dir.file("i68"), false), stored);
}

}  // namespace
}  // namespace slidesparse::clitest
