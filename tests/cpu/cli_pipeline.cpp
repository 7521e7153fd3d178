// End to end: prune -> verify --against -> slide -> verify on generated checkpoints (synth, single
// file and sharded directory) and on hand-made files with odd shapes (k = 3, 10, 13, 100; n = 1,
// 3, 5, 7, 33), for every pattern and precision the brief names. The written files are read back
// and checked by the independent oracle in cli_util.hpp (column map computed in the test, exact
// int64 X.W^T == X'.W'^T, reference pruner, quantization bound and scale).
#include <set>
#include <string>
#include <vector>

#include "cpu/cli_util.hpp"

// Suite names start with "cli_" so that `ctest -R cli_` selects this family.

namespace slidesparse::clitest {
namespace {

constexpr uint32_t kSeed = 20241121;

std::string prefix_of(const std::string& weight) { return weight.substr(0, weight.size() - 7); }

// Hand-made dense checkpoint: odd shapes, mixed float dtypes, small-integer values (with zeros and
// many ties), plus tensors that must never be touched.
struct OddModel {
  std::vector<std::string> targets;  // default prune targets
  std::vector<std::string> others;
};
OddModel write_odd_model(const std::string& path, uint32_t seed) {
  std::mt19937 rng(seed);
  auto bf16 = [&](const std::string& name, std::vector<int64_t> shape) {
    const std::vector<float> v = small_ints(rng, numel(shape));
    OwnedTensor t{{name, DType::kBF16, shape}, std::vector<uint8_t>(v.size() * 2)};
    for (size_t i = 0; i < v.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &v[i], 4);
      const uint16_t hi = uint16_t(bits >> 16);  // small integers are exact in bf16
      std::memcpy(t.bytes.data() + 2 * i, &hi, 2);
    }
    return t;
  };
  auto f16 = [&](const std::string& name, std::vector<int64_t> shape) {
    const std::vector<float> v = small_ints(rng, numel(shape));
    OwnedTensor t{{name, DType::kF16, shape}, std::vector<uint8_t>(v.size() * 2)};
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = f32_to_f16(v[i]);
      EXPECT_EQ(f16_to_f32(h), v[i]);
      std::memcpy(t.bytes.data() + 2 * i, &h, 2);
    }
    return t;
  };
  auto f32 = [&](const std::string& name, std::vector<int64_t> shape) {
    return f32_tensor(name, shape, small_ints(rng, numel(shape)));
  };
  const std::string L = "model.layers.0.";
  std::vector<OwnedTensor> ts = {
      f32("model.embed_tokens.weight", {4, 10}),
      f32(L + "input_layernorm.weight", {10}),
      f32(L + "self_attn.q_proj.weight", {5, 10}),
      bf16(L + "self_attn.k_proj.weight", {3, 13}),
      f16(L + "self_attn.v_proj.weight", {7, 13}),
      f32(L + "self_attn.o_proj.weight", {1, 3}),  // k < 2N
      f32(L + "mlp.down_proj.weight", {33, 100}),
      f32("model.norm.weight", {10}),
      f32("lm_head.weight", {4, 10}),
  };
  write_safetensors(path, ts, {{"format", "pt"}});
  OddModel m;
  for (const auto& t : ts) (t.spec.name.find("_proj.") != std::string::npos ? m.targets : m.others).push_back(t.spec.name);
  return m;
}

int n_of(const std::string& pattern) { return std::stoi(pattern.substr(pattern.find(':') + 1)) / 2; }

// ---- every pattern x precision on the odd-shaped model -----------------------------------------

struct Combo {
  std::string pattern, precision;
};
void PrintTo(const Combo& c, std::ostream* os) { *os << c.pattern << " " << c.precision; }
class cli_PatternPrecision : public ::testing::TestWithParam<Combo> {};

TEST_P(cli_PatternPrecision, PruneSlideVerifyAndOracle) {
  const Combo& c = GetParam();
  const int N = n_of(c.pattern);
  TempDir dir;
  const std::string in = dir.file("dense.safetensors"), p = dir.file("pruned.safetensors"),
                    s = dir.file("slid.safetensors");
  const OddModel model = write_odd_model(in, kSeed + uint32_t(N));

  const CliResult pr = run_cli({"prune", "--pattern", c.pattern, "--precision", c.precision, in, p});
  ASSERT_EQ(pr.code, 0) << pr;
  const CliResult v1 = run_cli({"verify", p, "--against", in});
  EXPECT_EQ(v1.code, 0) << v1;
  const CliResult sl = run_cli({"slide", p, s});
  ASSERT_EQ(sl.code, 0) << sl;
  const CliResult v2 = run_cli({"verify", s, "--against", in});
  EXPECT_EQ(v2.code, 0) << v2;
  EXPECT_NE(v2.out.find("COMPLIANT"), std::string::npos) << v2;

  const auto dense = load_file(in), pruned = load_file(p), slid = load_file(s);
  for (const auto& t : model.targets) {
    check_layer(dense, pruned, {prefix_of(t), N, c.precision, false, true, nullptr}, kSeed);
    check_layer(dense, slid, {prefix_of(t), N, c.precision, true, true, nullptr}, kSeed + 1);
    // slide copies P.weight (and its scale) unchanged.
    EXPECT_EQ(slid.at(t).bytes, pruned.at(t).bytes) << t;
  }
  for (const auto& t : model.others) {
    EXPECT_EQ(slid.at(t).bytes, dense.at(t).bytes) << t;
    EXPECT_EQ(slid.at(t).dtype, dense.at(t).dtype) << t;
  }
  // Nothing else in the output: each target adds slide_weight (and weight_scale when quantized).
  const size_t extra = c.precision == "keep" ? 1 : 2;
  EXPECT_EQ(slid.size(), dense.size() + extra * model.targets.size());

  // Metadata, per FORMAT.md section 5.
  const auto meta = load_metadata(s);
  EXPECT_EQ(meta.at("format"), "pt");
  const json m = json::parse(meta.at("slidesparse"));
  EXPECT_EQ(m["format"], 1);
  EXPECT_EQ(m["pattern"], c.pattern);
  EXPECT_EQ(m["method"], "magnitude");
  ASSERT_EQ(m["layers"].size(), model.targets.size()) << m.dump();
  for (const auto& t : model.targets) {
    const json& l = m["layers"][prefix_of(t)];
    const int64_t k = dense.at(t).shape[1];
    EXPECT_EQ(l["k"], k) << t;
    EXPECT_EQ(l["precision"], c.precision == "int8" ? "i8"
                              : c.precision == "fp8" ? "e4m3"
                                                     : dtype_token(dense.at(t).dtype))
        << t;
    EXPECT_EQ(l["k_slide"], expected_k_slide(N, k)) << t;
  }
  const json pm = json::parse(load_metadata(p).at("slidesparse"));
  for (const auto& t : model.targets) EXPECT_FALSE(pm["layers"][prefix_of(t)].contains("k_slide")) << t;
  EXPECT_EQ(hidden_entries(dir.path().string()), std::vector<std::string>{});
}

std::vector<Combo> combos() {
  std::vector<Combo> out;
  for (const char* pat : {"2:4", "4:6", "6:8", "8:10", "14:16"})
    for (const char* prec : {"keep", "int8", "fp8"}) out.push_back({pat, prec});
  return out;
}
INSTANTIATE_TEST_SUITE_P(All, cli_PatternPrecision, ::testing::ValuesIn(combos()),
                         [](const ::testing::TestParamInfo<Combo>& i) {
                           std::string s = i.param.pattern + "_" + i.param.precision;
                           for (char& ch : s)
                             if (ch == ':') ch = 'x';
                           return s;
                         });

// ---- synth: single file ----------------------------------------------------------------------

TEST(cli_Synth, SingleFilePipeline) {
  TempDir dir;
  const std::string in = dir.file("m.safetensors"), p = dir.file("p.safetensors"), s = dir.file("s.safetensors");
  const CliResult sy = run_cli({"synth", in, "--layers", "2", "--hidden", "44", "--intermediate", "50", "--vocab",
                                "24", "--seed", "3"});
  ASSERT_EQ(sy.code, 0) << sy;
  ASSERT_EQ(run_cli({"prune", "--pattern", "6:8", in, p}).code, 0);
  const CliResult v1 = run_cli({"verify", p, "--against", in});
  EXPECT_EQ(v1.code, 0) << v1;
  ASSERT_EQ(run_cli({"slide", p, s}).code, 0);
  const CliResult v2 = run_cli({"verify", s, "--against", in});
  EXPECT_EQ(v2.code, 0) << v2;
  const CliResult v3 = run_cli({"verify", s});
  EXPECT_EQ(v3.code, 0) << v3;

  const auto dense = load_file(in), slid = load_file(s);
  int layers = 0;
  for (const auto& [name, t] : dense) {
    if (name.find("_proj.weight") == std::string::npos) {
      EXPECT_EQ(slid.at(name).bytes, t.bytes) << name;
      continue;
    }
    ++layers;
    check_layer(dense, slid, {prefix_of(name), 4, "keep", true, false, nullptr}, kSeed);
  }
  EXPECT_EQ(layers, 14);
  EXPECT_EQ(entries(dir.path().string()), (std::vector<std::string>{"m.safetensors", "p.safetensors", "s.safetensors"}));
}

// The same prune with 1 thread and with 3 threads writes identical bytes.
TEST(cli_Synth, ThreadCountDoesNotChangeOutput) {
  TempDir dir;
  const std::string in = dir.file("m.safetensors");
  ASSERT_EQ(run_cli({"synth", in, "--layers", "1", "--hidden", "64", "--intermediate", "96", "--vocab", "16"}).code, 0);
  ASSERT_EQ(run_cli({"prune", "--precision", "fp8", "-j", "1", in, dir.file("a.safetensors")}).code, 0);
  ASSERT_EQ(run_cli({"prune", "--precision", "fp8", "-j", "3", in, dir.file("b.safetensors")}).code, 0);
  EXPECT_EQ(read_bytes(dir.file("a.safetensors")), read_bytes(dir.file("b.safetensors")));
  ASSERT_EQ(run_cli({"slide", "-j", "1", dir.file("a.safetensors"), dir.file("sa.safetensors")}).code, 0);
  ASSERT_EQ(run_cli({"slide", "-j", "3", dir.file("b.safetensors"), dir.file("sb.safetensors")}).code, 0);
  EXPECT_EQ(read_bytes(dir.file("sa.safetensors")), read_bytes(dir.file("sb.safetensors")));
}

// ---- synth: sharded Hugging Face directory -------------------------------------------------------

class cli_Sharded : public ::testing::TestWithParam<std::string> {};

TEST_P(cli_Sharded, DirectoryPipeline) {
  const std::string precision = GetParam();
  TempDir dir;
  const std::string in = dir.file("model"), p = dir.file("pruned"), s = dir.file("slid");
  const CliResult sy = run_cli({"synth", in, "--shards", "2", "--layers", "2", "--hidden", "44", "--intermediate",
                                "50", "--vocab", "24", "--seed", "5"});
  ASSERT_EQ(sy.code, 0) << sy;
  const std::vector<std::string> want_entries = {"config.json", "model-00001-of-00002.safetensors",
                                                 "model-00002-of-00002.safetensors", "model.safetensors.index.json"};
  ASSERT_EQ(entries(in), want_entries);
  // An extra non-tensor file is copied too, and extra index keys survive the rewrite.
  write_text(in + "/tokenizer.json", "{\"tok\": [1, 2, 3]}\n");
  {
    json index = json::parse(read_text(in + "/model.safetensors.index.json"));
    index["metadata"]["custom"] = "kept";
    index["extra_top_level"] = json::array({1, 2});
    write_text(in + "/model.safetensors.index.json", index.dump(2));
  }

  const CliResult pr = run_cli({"prune", "--pattern", "6:8", "--precision", precision, in, p});
  ASSERT_EQ(pr.code, 0) << pr;
  const CliResult v1 = run_cli({"verify", p, "--against", in});
  EXPECT_EQ(v1.code, 0) << v1;
  const CliResult sl = run_cli({"slide", p, s});
  ASSERT_EQ(sl.code, 0) << sl;
  const CliResult v2 = run_cli({"verify", s, "--against", in});
  EXPECT_EQ(v2.code, 0) << v2;

  std::vector<std::string> with_tok = want_entries;
  with_tok.push_back("tokenizer.json");
  std::sort(with_tok.begin(), with_tok.end());
  for (const std::string& d : {p, s}) {
    SCOPED_TRACE(d);
    EXPECT_EQ(entries(d), with_tok);
    EXPECT_EQ(read_bytes(d + "/config.json"), read_bytes(in + "/config.json"));
    EXPECT_EQ(read_bytes(d + "/tokenizer.json"), read_bytes(in + "/tokenizer.json"));

    // The index lists every output tensor in the shard that holds it, and the total size.
    const json index = json::parse(read_text(d + "/model.safetensors.index.json"));
    std::map<std::string, std::string> where;
    uint64_t total = 0;
    std::string meta0;
    for (const auto& shard : shard_files(d)) {
      const auto f = SafetensorsFile::open(d + "/" + shard);
      for (const auto& t : f.tensors()) {
        where[t.name] = shard;
        total += t.nbytes();
      }
      const std::string m = f.metadata().at("slidesparse");
      if (meta0.empty()) meta0 = m;
      EXPECT_EQ(m, meta0) << "shards carry different slidesparse metadata";
      EXPECT_EQ(f.metadata().at("format"), "pt");
    }
    ASSERT_TRUE(index["weight_map"].is_object());
    std::map<std::string, std::string> listed;
    for (const auto& [k, v] : index["weight_map"].items()) listed[k] = v.get<std::string>();
    EXPECT_EQ(listed, where);
    EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
    EXPECT_EQ(index["metadata"]["custom"], "kept");
    EXPECT_EQ(index["extra_top_level"], json::array({1, 2}));
    ASSERT_TRUE(index["metadata"].contains("slidesparse"));
    EXPECT_EQ(index["metadata"]["slidesparse"].get<std::string>(), meta0);

    const json m = json::parse(meta0);
    EXPECT_EQ(m["format"], 1);
    EXPECT_EQ(m["pattern"], "6:8");
    EXPECT_EQ(m["method"], "magnitude");
    EXPECT_EQ(m["layers"].size(), 14u);
    for (const auto& [prefix, l] : m["layers"].items()) {
      const std::string w = prefix + ".weight";
      ASSERT_TRUE(where.count(w)) << w;
      if (precision != "keep") {
        EXPECT_EQ(where[prefix + ".weight_scale"], where[w]) << prefix;
      }
      if (d == s) {
        EXPECT_EQ(where[prefix + ".slide_weight"], where[w]) << prefix;
        EXPECT_EQ(l["k_slide"], expected_k_slide(4, l["k"].get<int64_t>())) << prefix;
      } else {
        EXPECT_FALSE(where.count(prefix + ".slide_weight")) << prefix;
      }
      EXPECT_EQ(l["precision"], precision == "int8" ? "i8" : precision == "fp8" ? "e4m3" : "bf16");
    }
  }

  const auto dense = load_any(in), slid = load_any(s);
  int layers = 0;
  for (const auto& [name, t] : dense) {
    if (name.find("_proj.weight") == std::string::npos) {
      EXPECT_EQ(slid.at(name).bytes, t.bytes) << name;
      continue;
    }
    ++layers;
    check_layer(dense, slid, {prefix_of(name), 4, precision, true, false, nullptr}, kSeed);
  }
  EXPECT_EQ(layers, 14);
  EXPECT_EQ(hidden_entries(dir.path().string()), std::vector<std::string>{});
}
INSTANTIATE_TEST_SUITE_P(Precisions, cli_Sharded, ::testing::Values("keep", "int8", "fp8"));

// A directory holding a single model.safetensors (no index) round-trips as a directory.
TEST(cli_Synth, SingleShardDirectory) {
  TempDir dir;
  const std::string in = dir.file("model"), p = dir.file("pruned"), s = dir.file("slid");
  ASSERT_EQ(run_cli({"synth", in, "--shards", "1", "--layers", "1", "--hidden", "32", "--intermediate", "40",
                     "--vocab", "8"})
                .code,
            0);
  EXPECT_EQ(entries(in), (std::vector<std::string>{"config.json", "model.safetensors"}));
  ASSERT_EQ(run_cli({"prune", "--pattern", "4:6", "--precision", "int8", in, p}).code, 0);
  ASSERT_EQ(run_cli({"slide", p, s}).code, 0);
  const CliResult v = run_cli({"verify", s, "--against", in});
  EXPECT_EQ(v.code, 0) << v;
  EXPECT_EQ(entries(s), (std::vector<std::string>{"config.json", "model.safetensors"}));
  EXPECT_EQ(read_bytes(s + "/config.json"), read_bytes(in + "/config.json"));
  const auto dense = load_any(in), slid = load_any(s);
  for (const auto& [name, t] : dense)
    if (name.find("_proj.weight") != std::string::npos)
      check_layer(dense, slid, {prefix_of(name), 3, "int8", true, false, nullptr}, kSeed);
}

// Sliding a slid checkpoint again recomputes P.slide_weight (no duplicate tensors).
TEST(cli_Synth, SlideTwiceIsIdempotent) {
  TempDir dir;
  const std::string in = dir.file("m.safetensors");
  ASSERT_EQ(run_cli({"synth", in, "--layers", "1", "--hidden", "32", "--intermediate", "40", "--vocab", "8"}).code, 0);
  ASSERT_EQ(run_cli({"prune", in, dir.file("p.safetensors")}).code, 0);
  ASSERT_EQ(run_cli({"slide", dir.file("p.safetensors"), dir.file("s1.safetensors")}).code, 0);
  const CliResult r = run_cli({"slide", dir.file("s1.safetensors"), dir.file("s2.safetensors")});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(read_bytes(dir.file("s1.safetensors")), read_bytes(dir.file("s2.safetensors")));
}

}  // namespace
}  // namespace slidesparse::clitest
