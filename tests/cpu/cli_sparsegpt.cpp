// `calibrate --hessian` and `prune --method sparsegpt` through the CLI on tiny random Llama models:
// the written Hessians against sum x x^T computed here from the weights (layer 0's q/k/v input is
// RMSNorm(embedding) * gamma), the pruned checkpoint accepted by `verify --against` (kept values
// updated, not compared), a tampered one refused, and every bad input with its exit code and no
// output left behind.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cpu/cli_util.hpp"
#include "cpu/model_test_util.hpp"
#include "slidesparse/pattern.hpp"
#include "slidesparse/prune.hpp"

namespace slidesparse::clitest {
namespace {

using testing::TinyModel;
using testing::TinyShape;

struct Fixture {
  TempDir dir;
  TinyShape s;
  TinyModel m;
  std::string model, ids_path, calib;
  std::vector<int32_t> ids;
  explicit Fixture(DType dt = DType::kBF16) {
    // intermediate 52: down_proj's k ends in a partial 6:8 group.
    s.layers = 2, s.hidden = 32, s.heads = 2, s.kv_heads = 1, s.intermediate = 52, s.vocab = 64;
    m = testing::make_tiny_model(s, 11, dt);
    model = dir.file("m");
    fs::create_directories(model);
    testing::write_tiny_model(m, model, dt);
    ids = random_ids(70, s.vocab, 5);
    ids_path = dir.file("calib.bin");
    write_ids(ids_path, ids);
    calib = dir.file("calib.safetensors");
  }
  CliResult calibrate() const {
    return run_cli({"calibrate", "--model", model, "--ids", ids_path, "--ctx", "32", "--hessian", "-o", calib,
                    "--json"});
  }
};

TEST(CliSparseGpt, CalibrateHessianAndPruneEndToEnd) {
  Fixture fx;
  const TinyShape& s = fx.s;
  const auto r = fx.calibrate();
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out_json()["tensors"].get<int64_t>(), 2 * 7 * s.layers);
  EXPECT_EQ(r.out_json()["windows"].get<int64_t>(), 3);  // 32 + 32 + 6 tokens: sums across windows
  const auto cal = load_file(fx.calib);
  ASSERT_EQ(cal.size(), size_t(2 * 7 * s.layers));

  // Layer 0's q/k/v input, x_t = gamma * e_t / rms(e_t): H = sum_t x_t x_t^T in double here.
  const auto& emb = fx.m.w.at("model.embed_tokens.weight");
  const auto& gamma = fx.m.w.at("model.layers.0.input_layernorm.weight");
  const int64_t H = s.hidden;
  std::vector<double> want(size_t(H * H), 0.0);
  for (int32_t t : fx.ids) {
    double ms = 0;
    for (int64_t i = 0; i < H; ++i) ms += emb[size_t(t * H + i)] * emb[size_t(t * H + i)];
    const double inv = 1.0 / std::sqrt(ms / double(H) + s.eps);
    std::vector<double> x(static_cast<size_t>(H));
    for (int64_t i = 0; i < H; ++i) x[size_t(i)] = gamma[size_t(i)] * emb[size_t(t * H + i)] * inv;
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < H; ++j) want[size_t(i * H + j)] += x[size_t(i)] * x[size_t(j)];
  }
  const Loaded& hq = cal.at("model.layers.0.self_attn.q_proj.input_hessian");
  ASSERT_EQ(hq.dtype, DType::kF32);
  ASSERT_EQ(hq.shape, (std::vector<int64_t>{H, H}));
  const std::vector<double> got = hq.values();
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < H; ++j) {
      const double scale = std::sqrt(want[size_t(i * H + i)] * want[size_t(j * H + j)]);
      EXPECT_NEAR(got[size_t(i * H + j)], want[size_t(i * H + j)], 1e-5 * scale) << i << "," << j;
    }
  // Shared inputs get identical copies; distinct inputs do not.
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    EXPECT_EQ(cal.at(p + "self_attn.k_proj.input_hessian").bytes, cal.at(p + "self_attn.q_proj.input_hessian").bytes);
    EXPECT_EQ(cal.at(p + "self_attn.v_proj.input_hessian").bytes, cal.at(p + "self_attn.q_proj.input_hessian").bytes);
    EXPECT_EQ(cal.at(p + "mlp.up_proj.input_hessian").bytes, cal.at(p + "mlp.gate_proj.input_hessian").bytes);
    EXPECT_NE(cal.at(p + "self_attn.o_proj.input_hessian").bytes, cal.at(p + "self_attn.q_proj.input_hessian").bytes);
    EXPECT_EQ(cal.at(p + "mlp.down_proj.input_hessian").shape, (std::vector<int64_t>{s.intermediate, s.intermediate}));
    // diag H = norm^2 (two accumulations of the same squares).
    const std::vector<double> h = cal.at(p + "mlp.down_proj.input_hessian").values();
    const std::vector<double> nrm = cal.at(p + "mlp.down_proj.input_norm").values();
    for (int64_t i = 0; i < s.intermediate; ++i)
      EXPECT_NEAR(h[size_t(i * s.intermediate + i)], nrm[size_t(i)] * nrm[size_t(i)], 1e-5 * nrm[size_t(i)] * nrm[size_t(i)]);
  }

  // sparsegpt 6:8: compliant, accepted by verify --against with the values not compared.
  const std::string out = fx.dir.file("sg68");
  auto p = run_cli({"prune", fx.model, out, "--pattern", "6:8", "--method", "sparsegpt", "--calib", fx.calib, "--json"});
  ASSERT_EQ(p.code, 0) << p;
  EXPECT_EQ(p.out_json()["method"], "sparsegpt");
  EXPECT_EQ(p.out_json()["num_layers"].get<int64_t>(), 7 * s.layers);
  // q/k/v share one Hessian, gate/up another: at most 4 distinct factorizations per layer.
  EXPECT_EQ(p.out_json()["sparsegpt"]["factorizations"].get<int64_t>(), 4 * s.layers);
  auto v = run_cli({"verify", out, "--against", fx.model, "--json"});
  ASSERT_EQ(v.code, 0) << v;
  const json vj = v.out_json();
  EXPECT_TRUE(vj["compliant"].get<bool>());
  EXPECT_EQ(vj["method"], "sparsegpt");
  for (const auto& l : vj["layers"]) {
    EXPECT_EQ(l["against"]["values"], "values updated by sparsegpt (not compared)");
    EXPECT_EQ(l["against"]["over_pruned_groups"].get<int64_t>(), 0);
  }
  // The kept values really changed (error compensation), and each layer equals the core's
  // prune_obs over the file's Hessian, rounded to bf16 (the wiring: dtype, Hessian, damp).
  const auto dense = load_any(fx.model), pruned = load_any(out);
  int64_t changed = 0;
  for (const char* name : {"model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"}) {
    const Loaded& d = dense.at(std::string(name) + ".weight");
    const Loaded& w = pruned.at(std::string(name) + ".weight");
    const int64_t n = d.shape[0], k = d.shape[1];
    std::vector<float> wf(d.count());
    const std::vector<double> dv = d.values();
    for (size_t i = 0; i < wf.size(); ++i) wf[i] = float(dv[i]);
    const std::vector<double> hv = cal.at(std::string(name) + ".input_hessian").values();
    const std::vector<float> hf(hv.begin(), hv.end());
    prune_obs(Pattern::parse("6:8"), wf.data(), n, k, hf.data(), 0.01, name, 1);
    const std::vector<double> wv = w.values();
    for (size_t i = 0; i < wf.size(); ++i) {
      EXPECT_EQ(f32_to_bf16(wf[i]), f32_to_bf16(float(wv[i]))) << name << " " << i;
      changed += wv[i] != 0.0 && wv[i] != dv[i];
    }
  }
  EXPECT_GT(changed, 100);
  EXPECT_TRUE(std::isfinite(run_cli({"eval", "--model", out, "--ids", fx.ids_path, "--json"}).out_json()["ppl"].get<double>()));

  // INT8 output: compliant; the group count is not checked there (a kept value may quantize to 0).
  ASSERT_EQ(run_cli({"prune", fx.model, fx.dir.file("sg68i8"), "--method", "sparsegpt", "--calib", fx.calib,
                     "--precision", "int8", "-q"})
                .code,
            0);
  v = run_cli({"verify", fx.dir.file("sg68i8"), "--against", fx.model, "--json"});
  ASSERT_EQ(v.code, 0) << v;
  EXPECT_TRUE(v.out_json()["layers"][0]["against"]["over_pruned_groups"].is_null());

  // Tampering: one more zero in a kept group is "dropped more than required"; a ninth nonzero
  // ... is a pattern violation. Both make verify fail (exit 1).
  const std::string out_file = (fs::path(out) / "model.safetensors").string();
  for (int mode = 0; mode < 2; ++mode) {
    const std::string bad = fx.dir.file(mode == 0 ? "tamper_zero" : "tamper_fill");
    copy_dir(out, bad);
    rewrite_file(out_file, (fs::path(bad) / "model.safetensors").string(), [&](std::vector<OwnedTensor>& ts) {
      OwnedTensor& t = find_tensor(ts, "model.layers.0.mlp.gate_proj.weight");
      auto* e = reinterpret_cast<uint16_t*>(t.bytes.data());
      for (int c = 0; c < 8; ++c) {
        if (mode == 0 && e[c] != 0) {
          e[c] = 0;
          break;
        }
        if (mode == 1 && e[c] == 0) e[c] = f32_to_bf16(0.5f);
      }
    });
    v = run_cli({"verify", bad, "--against", fx.model});
    EXPECT_EQ(v.code, 1) << v;
    EXPECT_NE(v.out.find(mode == 0 ? "dropped more values than the pattern requires" : "hold more than 6 nonzeros"),
              std::string::npos)
        << v;
  }
}

TEST(CliSparseGpt, BadInputs) {
  Fixture fx;
  ASSERT_EQ(fx.calibrate().code, 0);
  const std::string norms_only = fx.dir.file("norms.safetensors");
  ASSERT_EQ(run_cli({"calibrate", "--model", fx.model, "--ids", fx.ids_path, "-o", norms_only, "-q"}).code, 0);
  const std::string target = "model.layers.1.self_attn.o_proj";
  auto variant = [&](const std::string& name, const std::function<void(OwnedTensor&)>& edit) {
    const std::string path = fx.dir.file(name);
    rewrite_file(fx.calib, path, [&](std::vector<OwnedTensor>& ts) { edit(find_tensor(ts, target + ".input_hessian")); });
    return path;
  };
  const int64_t H = fx.s.hidden;
  const std::string wrong_shape = variant("shape.st", [&](OwnedTensor& t) {
    t.spec.shape = {H, H - 1};
    t.bytes.resize(size_t(H * (H - 1)) * 4);
  });
  const std::string wrong_dtype = variant("dtype.st", [&](OwnedTensor& t) {
    t.spec.dtype = DType::kF16;
    t.bytes.resize(size_t(H * H) * 2);
  });
  const std::string nan = variant("nan.st", [&](OwnedTensor& t) {
    const float q = std::nanf("");
    std::memcpy(t.bytes.data() + size_t(3 * H + 1) * 4, &q, 4);
  });
  const std::string rank1 = variant("rank1.st", [&](OwnedTensor& t) {
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < H; ++j) {
        const float v = float((i + 1) * (j + 1));
        std::memcpy(t.bytes.data() + size_t(i * H + j) * 4, &v, 4);
      }
  });
  struct Case {
    std::vector<std::string> extra;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--calib", norms_only}, 6, "has no tensor 'model.layers.0.mlp.down_proj.input_hessian'"},
      {{"--calib", wrong_shape}, 6, "must be F32 [32, 32], got f32 [32, 31]"},
      {{"--calib", wrong_dtype}, 6, "must be F32 [32, 32], got f16"},
      {{"--calib", nan}, 6, target + ".weight': non-finite Hessian entry"},
      {{"--calib", rank1, "--damp", "0"}, 6, "not positive definite"},
      {{"--calib", fx.calib, "--damp", "-0.5"}, 2, "--damp must be a finite value >= 0"},
      {{}, 2, "--method sparsegpt needs --calib"},
      {{"--calib", fx.dir.file("missing.st")}, 3, "missing.st"},
  };
  for (const auto& c : cases) {
    const std::string out = fx.dir.file("out");
    std::vector<std::string> args = {"prune", fx.model, out, "--method", "sparsegpt"};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    const auto r = run_cli(args);
    EXPECT_EQ(r.code, c.code) << r;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << "expected '" << c.says << "'\n" << r;
    EXPECT_FALSE(fs::exists(out)) << r;
    EXPECT_TRUE(hidden_entries(fx.dir.path().string()).empty()) << r;
  }
  // The rank-one Hessian is fine once dampened (default damp).
  EXPECT_EQ(run_cli({"prune", fx.model, fx.dir.file("ok"), "--method", "sparsegpt", "--calib", rank1, "-q"}).code, 0);
  // --damp belongs to sparsegpt; --calib is not for magnitude.
  auto r = run_cli({"prune", fx.model, fx.dir.file("o2"), "--method", "wanda", "--calib", norms_only, "--damp", "0.1"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_NE(r.err.find("--damp is only used by --method sparsegpt"), std::string::npos) << r;
  r = run_cli({"prune", fx.model, fx.dir.file("o3"), "--method", "magnitude", "--calib", fx.calib});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_NE(r.err.find("only used by --method wanda and sparsegpt"), std::string::npos) << r;
  EXPECT_FALSE(fs::exists(fx.dir.file("o2")));
  EXPECT_FALSE(fs::exists(fx.dir.file("o3")));
}

}  // namespace
}  // namespace slidesparse::clitest
