// Tiny random Llama checkpoints for the model tests, and an independent float64 reference forward
// written from the formulas (HF LlamaForCausalLM): shares no code with src/model.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slidesparse/safetensors.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse::testing {

struct TinyShape {
  int64_t layers = 2, hidden = 64, heads = 4, kv_heads = 2, intermediate = 96, vocab = 128;
  double eps = 1e-5, theta = 10000.0;
  bool tied = false;
};

// Weights held in double (already rounded to the storage dtype), keyed by HF tensor name.
struct TinyModel {
  TinyShape s;
  std::map<std::string, std::vector<double>> w;
  std::map<std::string, std::vector<int64_t>> shape;
};

inline TinyModel make_tiny_model(const TinyShape& s, uint64_t seed, DType dt = DType::kF32, bool zero = false) {
  TinyModel m;
  m.s = s;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  const int64_t hd = s.hidden / s.heads;
  auto round = [&](double v) -> double {
    if (dt == DType::kBF16) return double(bf16_to_f32(f32_to_bf16(float(v))));
    if (dt == DType::kF16) return double(f16_to_f32(f32_to_f16(float(v))));
    return double(float(v));
  };
  auto add = [&](const std::string& name, std::vector<int64_t> shp, double stddev, double mean) {
    int64_t n = 1;
    for (auto d : shp) n *= d;
    std::vector<double> v(static_cast<size_t>(n));
    for (auto& x : v) x = zero ? 0.0 : round(mean + stddev * nd(rng));
    m.w[name] = std::move(v);
    m.shape[name] = std::move(shp);
  };
  const double sh = 1.0 / std::sqrt(double(s.hidden)), si = 1.0 / std::sqrt(double(s.intermediate));
  add("model.embed_tokens.weight", {s.vocab, s.hidden}, 1.0, 0.0);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {s.hidden}, 0.1, 1.0);
    add(p + "self_attn.q_proj.weight", {s.heads * hd, s.hidden}, 2 * sh, 0.0);
    add(p + "self_attn.k_proj.weight", {s.kv_heads * hd, s.hidden}, 2 * sh, 0.0);
    add(p + "self_attn.v_proj.weight", {s.kv_heads * hd, s.hidden}, sh, 0.0);
    add(p + "self_attn.o_proj.weight", {s.hidden, s.heads * hd}, sh, 0.0);
    add(p + "post_attention_layernorm.weight", {s.hidden}, 0.1, 1.0);
    add(p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}, sh, 0.0);
    add(p + "mlp.up_proj.weight", {s.intermediate, s.hidden}, sh, 0.0);
    add(p + "mlp.down_proj.weight", {s.hidden, s.intermediate}, si, 0.0);
  }
  add("model.norm.weight", {s.hidden}, 0.1, 1.0);
  if (!s.tied) add("lm_head.weight", {s.vocab, s.hidden}, sh, 0.0);
  return m;
}

// HF directory: config.json + one model.safetensors, or `shards` files with the index.
inline void write_tiny_model(const TinyModel& m, const std::string& dir, DType dt = DType::kF32, int shards = 1) {
  std::vector<OwnedTensor> all;
  for (const auto& [name, v] : m.w) {
    OwnedTensor t{{name, dt, m.shape.at(name)}, {}};
    t.bytes.resize(v.size() * dtype_size(dt));
    for (size_t i = 0; i < v.size(); ++i) {
      if (dt == DType::kF32) {
        const float f = float(v[i]);
        std::memcpy(&t.bytes[4 * i], &f, 4);
      } else {
        const uint16_t b = dt == DType::kBF16 ? f32_to_bf16(float(v[i])) : f32_to_f16(float(v[i]));
        std::memcpy(&t.bytes[2 * i], &b, 2);
      }
    }
    all.push_back(std::move(t));
  }
  nlohmann::json weight_map = nlohmann::json::object();
  if (shards <= 1) {
    write_safetensors(dir + "/model.safetensors", all);
  } else {
    for (int si = 0; si < shards; ++si) {
      std::vector<OwnedTensor> part;
      const std::string fname = "model-0000" + std::to_string(si + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
      for (size_t i = size_t(si); i < all.size(); i += size_t(shards)) {
        part.push_back(all[i]);
        weight_map[all[i].spec.name] = fname;
      }
      write_safetensors(dir + "/" + fname, part);
    }
    std::ofstream(dir + "/model.safetensors.index.json") << nlohmann::json{{"metadata", nlohmann::json::object()},
                                                                            {"weight_map", weight_map}}.dump(2);
  }
  const nlohmann::json cfg = {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", m.s.hidden},
                              {"intermediate_size", m.s.intermediate}, {"num_hidden_layers", m.s.layers},
                              {"num_attention_heads", m.s.heads}, {"num_key_value_heads", m.s.kv_heads},
                              {"vocab_size", m.s.vocab}, {"rms_norm_eps", m.s.eps}, {"rope_theta", m.s.theta},
                              {"tie_word_embeddings", m.s.tied}};
  std::ofstream(dir + "/config.json") << cfg.dump(2);
}

// Float64 reference forward: logits [T, vocab].
inline std::vector<double> reference_forward(const TinyModel& m, const std::vector<int32_t>& tok) {
  const auto& s = m.s;
  const int64_t T = int64_t(tok.size()), H = s.hidden, hd = H / s.heads, F = s.intermediate, V = s.vocab;
  auto W = [&](const std::string& n) -> const std::vector<double>& { return m.w.at(n); };
  // y[t, n] = sum_k x[t, k] w[n, k]
  auto matmul = [&](const std::vector<double>& x, const std::vector<double>& w, int64_t n, int64_t k) {
    std::vector<double> y(size_t(T * n), 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < n; ++j) {
        double a = 0;
        for (int64_t i = 0; i < k; ++i) a += x[size_t(t * k + i)] * w[size_t(j * k + i)];
        y[size_t(t * n + j)] = a;
      }
    return y;
  };
  auto rmsnorm = [&](const std::vector<double>& x, const std::vector<double>& g) {
    std::vector<double> y(x.size());
    for (int64_t t = 0; t < T; ++t) {
      double ms = 0;
      for (int64_t i = 0; i < H; ++i) ms += x[size_t(t * H + i)] * x[size_t(t * H + i)];
      ms /= double(H);
      for (int64_t i = 0; i < H; ++i) y[size_t(t * H + i)] = g[size_t(i)] * x[size_t(t * H + i)] / std::sqrt(ms + s.eps);
    }
    return y;
  };
  // rotate_half: pairs (i, i + hd/2), angle = pos * theta^(-2i/hd).
  auto rope = [&](std::vector<double>& x, int64_t heads) {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < hd / 2; ++i) {
          const double ang = double(t) * std::pow(s.theta, -2.0 * double(i) / double(hd));
          double& a = x[size_t((t * heads + h) * hd + i)];
          double& b = x[size_t((t * heads + h) * hd + i + hd / 2)];
          const double na = a * std::cos(ang) - b * std::sin(ang), nb = b * std::cos(ang) + a * std::sin(ang);
          a = na;
          b = nb;
        }
  };
  std::vector<double> x(size_t(T * H));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < H; ++i) x[size_t(t * H + i)] = W("model.embed_tokens.weight")[size_t(tok[size_t(t)] * H + i)];
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto xn = rmsnorm(x, W(p + "input_layernorm.weight"));
    auto q = matmul(xn, W(p + "self_attn.q_proj.weight"), s.heads * hd, H);
    auto k = matmul(xn, W(p + "self_attn.k_proj.weight"), s.kv_heads * hd, H);
    auto v = matmul(xn, W(p + "self_attn.v_proj.weight"), s.kv_heads * hd, H);
    rope(q, s.heads);
    rope(k, s.kv_heads);
    std::vector<double> att(size_t(T * s.heads * hd), 0.0);
    for (int64_t h = 0; h < s.heads; ++h) {
      const int64_t kh = h / (s.heads / s.kv_heads);
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> sc(size_t(t + 1));
        double mx = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          double d = 0;
          for (int64_t i = 0; i < hd; ++i)
            d += q[size_t((t * s.heads + h) * hd + i)] * k[size_t((j * s.kv_heads + kh) * hd + i)];
          sc[size_t(j)] = d / std::sqrt(double(hd));
          mx = std::max(mx, sc[size_t(j)]);
        }
        double sum = 0;
        for (auto& e : sc) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j)
          for (int64_t i = 0; i < hd; ++i)
            att[size_t((t * s.heads + h) * hd + i)] += sc[size_t(j)] / sum * v[size_t((j * s.kv_heads + kh) * hd + i)];
      }
    }
    auto o = matmul(att, W(p + "self_attn.o_proj.weight"), H, s.heads * hd);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    xn = rmsnorm(x, W(p + "post_attention_layernorm.weight"));
    auto g = matmul(xn, W(p + "mlp.gate_proj.weight"), F, H);
    auto u = matmul(xn, W(p + "mlp.up_proj.weight"), F, H);
    for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    auto d = matmul(g, W(p + "mlp.down_proj.weight"), H, F);
    for (size_t i = 0; i < x.size(); ++i) x[i] += d[i];
  }
  auto xn = rmsnorm(x, W("model.norm.weight"));
  return matmul(xn, W(s.tied ? "model.embed_tokens.weight" : "lm_head.weight"), V, H);
}

// max |a - b| / max |b|.
inline double max_rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / den;
}

}  // namespace slidesparse::testing
