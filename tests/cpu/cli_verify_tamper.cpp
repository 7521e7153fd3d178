// verify catches tampering: a modified copy of a correct pruned/slid checkpoint must make
// `verify` exit 1 and name the layer (text and --json), while the untouched original passes.
#include <string>
#include <vector>

#include "cpu/cli_util.hpp"

// Suite names start with "cli_" so that `ctest -R cli_` selects this family.

namespace slidesparse::clitest {
namespace {

constexpr int kExitNotCompliant = 1;
const std::string kQP = "model.layers.0.self_attn.q_proj";
const std::string kQ = kQP + ".weight";
const std::string kUp = "model.layers.0.mlp.up_proj.weight";
constexpr int64_t kN = 4, kK = 16;  // q_proj shape

struct Fixture {
  TempDir dir;
  std::string dense = dir.file("dense.safetensors"), pruned = dir.file("pruned.safetensors"),
              slid = dir.file("slid.safetensors"), bad = dir.file("bad.safetensors");
  explicit Fixture(const std::string& precision = "keep") {
    std::mt19937 rng(99);
    // No zeros in the dense weights: every 6:8 group of the pruned q_proj holds exactly 6.
    write_safetensors(dense, {f32_tensor("model.embed_tokens.weight", {3, 16}, small_ints(rng, 48, 9, 0)),
                              f32_tensor(kQ, {kN, kK}, small_ints(rng, size_t(kN * kK), 9, 0)),
                              f32_tensor(kUp, {24, 16}, small_ints(rng, 24 * 16, 9, 0))});
    EXPECT_EQ(run_cli({"prune", "--precision", precision, dense, pruned}).code, 0);
    EXPECT_EQ(run_cli({"slide", pruned, slid}).code, 0);
    const CliResult a = run_cli({"verify", pruned, "--against", dense});
    EXPECT_EQ(a.code, 0) << a;
    const CliResult b = run_cli({"verify", slid, "--against", dense});
    EXPECT_EQ(b.code, 0) << b;
  }
  // Index (row-major) of the first element pruned to zero in q_proj.
  size_t first_pruned() const {
    const auto p = load_file(pruned).at(kQ);
    for (size_t i = 0; i < p.count(); ++i)
      if (p.is_zero(i)) return i;
    ADD_FAILURE() << "no pruned element";
    return 0;
  }
};

void set_f32(OwnedTensor& t, size_t i, float v) { std::memcpy(t.bytes.data() + 4 * i, &v, 4); }
float get_f32(const OwnedTensor& t, size_t i) {
  float v;
  std::memcpy(&v, t.bytes.data() + 4 * i, 4);
  return v;
}

// Runs verify (text and --json) on `file`; expects exit 1, every fragment among the problems.
void expect_not_compliant(const std::string& file, const std::vector<std::string>& fragments,
                          const std::string& against = "") {
  std::vector<std::string> args = {"verify", file};
  if (!against.empty()) args.insert(args.end(), {"--against", against});
  const CliResult r = run_cli(args);
  EXPECT_EQ(r.code, kExitNotCompliant) << r;
  EXPECT_NE(r.out.find("NOT COMPLIANT"), std::string::npos) << r;
  for (const auto& f : fragments) EXPECT_NE(r.out.find(f), std::string::npos) << "wanted \"" << f << "\"\n" << r;

  args.push_back("--json");
  const CliResult j = run_cli(args);
  EXPECT_EQ(j.code, kExitNotCompliant) << j;
  const json doc = json::parse(j.out);
  EXPECT_EQ(doc["compliant"], false);
  ASSERT_TRUE(doc["problems"].is_array());
  EXPECT_FALSE(doc["problems"].empty());
  std::string all;
  for (const auto& p : doc["problems"]) all += p.get<std::string>() + "\n";
  for (const auto& f : fragments) EXPECT_NE(all.find(f), std::string::npos) << "wanted \"" << f << "\" in\n" << all;
}

TEST(cli_Tamper, PrunedZeroMadeNonzero) {
  Fixture fx;
  const size_t i = fx.first_pruned();
  const size_t row = i / kK, group = (i % kK) / 8;
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) { set_f32(find_tensor(ts, kQ), i, 5.0f); });
  expect_not_compliant(fx.bad, {kQ, "hold more than 6 nonzeros",
                                "(first: row " + std::to_string(row) + ", group " + std::to_string(group) + ")"});
  // The other layer is not blamed.
  const CliResult r = run_cli({"verify", fx.bad});
  EXPECT_EQ(r.out.find(kUp + ":"), std::string::npos) << r;
}

TEST(cli_Tamper, PrunedZeroRestoredToDenseValueInSlidCheckpoint) {
  Fixture fx;
  const size_t i = fx.first_pruned();
  const float dense_v = float(load_file(fx.dense).at(kQ).values()[i]);
  ASSERT_NE(dense_v, 0.0f);
  rewrite_file(fx.slid, fx.bad, [&](std::vector<OwnedTensor>& ts) { set_f32(find_tensor(ts, kQ), i, dense_v); });
  // P.weight now breaks the pattern and no longer matches P.slide_weight.
  expect_not_compliant(fx.bad, {kQ + ": ", "hold more than 6 nonzeros", "slide_weight does not map back to " + kQ});
}

TEST(cli_Tamper, SlideWeightValueChanged) {
  Fixture fx;
  rewrite_file(fx.slid, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& s = find_tensor(ts, kQP + ".slide_weight");
    for (size_t i = 0; i < s.bytes.size() / 4; ++i)
      if (get_f32(s, i) != 0) {
        set_f32(s, i, get_f32(s, i) + 1);
        return;
      }
  });
  expect_not_compliant(fx.bad, {kQP + ".slide_weight does not map back to " + kQ});
}

TEST(cli_Tamper, SlideWeightThirdNonzeroInWindow) {
  Fixture fx;
  size_t row = 0, window = 0;
  rewrite_file(fx.slid, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& s = find_tensor(ts, kQP + ".slide_weight");
    const int64_t kp = s.spec.shape[1];
    for (int64_t r = 0; r < kN; ++r)
      for (int64_t w = 0; w < kp / 4; ++w) {
        int nnz = 0;
        size_t zero_at = 0;
        for (int64_t l = 0; l < 4; ++l) {
          const size_t i = size_t(r * kp + 4 * w + l);
          if (get_f32(s, i) != 0) ++nnz;
          else zero_at = i;
        }
        if (nnz == 2) {
          set_f32(s, zero_at, 3.0f);
          row = size_t(r), window = size_t(w);
          return;
        }
      }
    ADD_FAILURE() << "no full window";
  });
  expect_not_compliant(fx.bad, {kQP + ".slide_weight: 1 windows hold more than 2 nonzeros",
                                "(first: row " + std::to_string(row) + ", window " + std::to_string(window) + ")"});
}

TEST(cli_Tamper, SlideWeightNonzeroOnPadding) {
  Fixture fx;
  rewrite_file(fx.slid, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& s = find_tensor(ts, kQP + ".slide_weight");
    const int64_t kp = s.spec.shape[1];
    ASSERT_EQ(kp, 32);  // k = 16 -> 2 groups * 6 = 12 slid columns, padded to 32
    set_f32(s, size_t(1 * kp + 20), 1.0f);  // row 1, column 20: a padding window
  });
  expect_not_compliant(fx.bad, {kQP + ".slide_weight"});
}

TEST(cli_Tamper, SlideWeightMissingOrMisShaped) {
  Fixture fx;
  rewrite_file(fx.slid, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [](const OwnedTensor& t) { return t.spec.name == kQP + ".slide_weight"; }),
             ts.end());
  });
  expect_not_compliant(fx.bad, {kQ + ": needs '" + kQP + ".slide_weight' f32 [4, 32]"});
  rewrite_file(fx.slid, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& s = find_tensor(ts, kQP + ".slide_weight");
    s.spec.shape = {8, 16};
  });
  expect_not_compliant(fx.bad, {"needs '" + kQP + ".slide_weight'"});
}

TEST(cli_Tamper, KeptValueChangedOnlyAgainstCatchesIt) {
  Fixture fx;
  const auto p = load_file(fx.pruned).at(kQ);
  size_t kept = 0;
  while (p.is_zero(kept)) ++kept;
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& q = find_tensor(ts, kQ);
    set_f32(q, kept, get_f32(q, kept) * 2);
  });
  const CliResult r = run_cli({"verify", fx.bad});
  EXPECT_EQ(r.code, 0) << "without --against only the pattern is checked\n" << r;
  expect_not_compliant(fx.bad,
                       {kQ + ": 1 kept values differ from the dense original (first: row " + std::to_string(kept / kK) +
                        ", column " + std::to_string(kept % kK) + ")"},
                       fx.dense);
}

TEST(cli_Tamper, OverPrunedGroup) {
  Fixture fx;
  const auto p = load_file(fx.pruned).at(kQ);
  size_t kept = 0;
  while (p.is_zero(kept)) ++kept;
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) { set_f32(find_tensor(ts, kQ), kept, 0.0f); });
  expect_not_compliant(fx.bad, {kQ + ": 1 groups dropped more values than the pattern requires"}, fx.dense);
}

TEST(cli_Tamper, LayerListedButMissing) {
  Fixture fx;
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [](const OwnedTensor& t) { return t.spec.name == kUp; }), ts.end());
  });
  expect_not_compliant(fx.bad, {kUp + ": listed in metadata but missing"});
}

TEST(cli_Tamper, AgainstTheWrongDenseCheckpoint) {
  Fixture fx;
  const std::string other = fx.dir.file("other.safetensors");
  std::mt19937 rng(1234);
  write_safetensors(other, {f32_tensor(kQ, {kN, kK}, small_ints(rng, size_t(kN * kK), 9, 0)),
                            f32_tensor(kUp, {24, 8}, small_ints(rng, 24 * 8, 9, 0))});
  expect_not_compliant(fx.pruned, {kQ + ": ", "kept values differ", kUp + ": --against checkpoint has no tensor of shape [24, 16]"},
                       other);
}

TEST(cli_Tamper, QuantizedScaleCorruptedOrMissing) {
  Fixture fx("int8");
  rewrite_file(fx.slid, fx.bad, [&](std::vector<OwnedTensor>& ts) { set_f32(find_tensor(ts, kQP + ".weight_scale"), 2, -1.0f); });
  expect_not_compliant(fx.bad, {kQP + ".weight_scale: 1 entries are not finite and positive"});

  rewrite_file(fx.slid, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& s = find_tensor(ts, kQP + ".weight_scale");
    set_f32(s, 1, get_f32(s, 1) * 4);  // plausible but wrong: dequantized values no longer match
  });
  expect_not_compliant(fx.bad, {kQ + ": ", "kept values differ from the dense original (first: row 1,"}, fx.dense);

  rewrite_file(fx.slid, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [](const OwnedTensor& t) { return t.spec.name == kQP + ".weight_scale"; }),
             ts.end());
  });
  expect_not_compliant(fx.bad, {kQ + ": quantized layer needs '" + kQP + ".weight_scale' F32 [4]"});
}

TEST(cli_Tamper, QuantizedCodeChanged) {
  Fixture fx("fp8");
  const auto p = load_file(fx.pruned).at(kQ);
  size_t kept = 0;
  while (p.is_zero(kept)) ++kept;
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& q = find_tensor(ts, kQ);
    q.bytes[kept] = uint8_t(q.bytes[kept] ^ 0x80);  // flip the sign of a kept E4M3 code
  });
  expect_not_compliant(fx.bad, {kQ + ": 1 kept values differ"}, fx.dense);
}

// The metadata and the tensor disagree on the precision / k.
TEST(cli_Tamper, MetadataDisagreesWithTensor) {
  Fixture fx;
  rewrite_file(fx.pruned, fx.bad, [&](std::vector<OwnedTensor>& ts) {
    OwnedTensor& q = find_tensor(ts, kQ);
    q.spec.shape = {8, 8};  // same bytes, different k
  });
  expect_not_compliant(fx.bad, {kQ + ": shape [8, 8] f32 does not match metadata (k = 16, precision f32)"});
}

}  // namespace
}  // namespace slidesparse::clitest
