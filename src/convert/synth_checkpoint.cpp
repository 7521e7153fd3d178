// `slidesparse synth`: a random Llama-shaped checkpoint for demos, tests and benchmarks.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "common/check.hpp"
#include "convert/convert.hpp"
#include "convert/output.hpp"
#include "io/atomic_file.hpp"
#include "slidesparse/checkpoint.hpp"

namespace slidesparse {
namespace fs = std::filesystem;
namespace {

// splitmix64: tiny, fast, and reproducible across platforms (std distributions are not).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

// Approximately normal (Irwin-Hall of four 16-bit uniforms), std ~ `stddev`. Cheap enough to
// generate a GiB in seconds; exact normality does not matter for pruning benchmarks.
void fill(DType dt, int64_t count, float stddev, uint64_t seed, std::vector<uint8_t>& out) {
  Rng rng{seed};
  const size_t es = dtype_size(dt);
  out.resize(size_t(count) * es);
  const float norm = stddev * std::sqrt(3.0f) / 65536.0f;  // var of sum of 4 U(0,1) = 1/3
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t r = rng.next();
    const float u = float((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48)) - 131070.0f;
    const float v = u * norm;
    uint8_t* p = out.data() + size_t(i) * es;
    if (dt == DType::kBF16) {
      const uint16_t b = f32_to_bf16(v);
      std::memcpy(p, &b, 2);
    } else if (dt == DType::kF16) {
      const uint16_t b = f32_to_f16(v);
      std::memcpy(p, &b, 2);
    } else {
      std::memcpy(p, &v, 4);
    }
  }
}

}  // namespace

nlohmann::json synth_checkpoint(const std::string& out, const SynthOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto dt_opt = dtype_from_token(o.dtype);
  SLIDESPARSE_CHECK(dt_opt && (*dt_opt == DType::kBF16 || *dt_opt == DType::kF16 || *dt_opt == DType::kF32),
                    Status::kInvalidArgument, "--dtype '{}' is not supported (use bf16, f16 or f32)", o.dtype);
  SLIDESPARSE_CHECK(o.layers >= 1 && o.hidden >= 1 && o.intermediate >= 1 && o.vocab >= 1 && o.kv_heads_ratio >= 1 &&
                        o.hidden % o.kv_heads_ratio == 0 && o.shards >= 0,
                    Status::kInvalidArgument,
                    "invalid shape: layers {}, hidden {}, intermediate {}, vocab {}, kv ratio {} (hidden must be "
                    "divisible by the kv ratio), shards {}",
                    o.layers, o.hidden, o.intermediate, o.vocab, o.kv_heads_ratio, o.shards);
  const DType dt = *dt_opt;
  const int64_t h = o.hidden, kv = o.hidden / o.kv_heads_ratio, in = o.intermediate;

  std::vector<TensorSpec> specs;
  specs.push_back({"model.embed_tokens.weight", dt, {o.vocab, h}});
  for (int64_t l = 0; l < o.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "input_layernorm.weight", dt, {h}});
    specs.push_back({p + "self_attn.q_proj.weight", dt, {h, h}});
    specs.push_back({p + "self_attn.k_proj.weight", dt, {kv, h}});
    specs.push_back({p + "self_attn.v_proj.weight", dt, {kv, h}});
    specs.push_back({p + "self_attn.o_proj.weight", dt, {h, h}});
    specs.push_back({p + "post_attention_layernorm.weight", dt, {h}});
    specs.push_back({p + "mlp.gate_proj.weight", dt, {in, h}});
    specs.push_back({p + "mlp.up_proj.weight", dt, {in, h}});
    specs.push_back({p + "mlp.down_proj.weight", dt, {h, in}});
  }
  specs.push_back({"model.norm.weight", dt, {h}});
  specs.push_back({"lm_head.weight", dt, {o.vocab, h}});

  uint64_t total = 0;
  for (const auto& s : specs) total += uint64_t(s.shape.size() == 1 ? s.shape[0] : s.shape[0] * s.shape[1]) * dtype_size(dt);

  // Split into shards of roughly equal bytes, keeping tensor order.
  const int nshards = std::max(1, o.shards);
  std::vector<std::vector<TensorSpec>> parts(static_cast<size_t>(nshards));
  {
    uint64_t acc = 0;
    for (const auto& s : specs) {
      const uint64_t b = uint64_t(s.shape.size() == 1 ? s.shape[0] : s.shape[0] * s.shape[1]) * dtype_size(dt);
      size_t idx = std::min<size_t>(size_t(nshards - 1), size_t(acc * uint64_t(nshards) / std::max<uint64_t>(total, 1)));
      parts[idx].push_back(s);
      acc += b;
    }
  }

  // Everything is staged at a hidden sibling path and moved into place at the end, so a failure
  // (or an existing OUT replaced with --force) never leaves a partial output.
  const bool as_dir = o.shards >= 1;
  check_output_path("", out, o.force);
  const fs::path out_path(strip_trailing_separators(out));
  const fs::path staging = staging_path_for(out_path);
  if (as_dir) fs::create_directory(staging);
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t done = 0, seed = o.seed * 1000003ull + 17;
  std::vector<uint8_t> buf;
  std::vector<std::string> shard_names;
  try {
    for (int si = 0; si < nshards; ++si) {
      const std::string name = as_dir ? (nshards == 1 ? std::string(kSingleFileName)
                                                      : fmt::format("model-{:05d}-of-{:05d}.safetensors", si + 1, nshards))
                                      : fs::path(out).filename().string();
      shard_names.push_back(name);
      SafetensorsWriter w(as_dir ? (staging / name).string() : staging.string(), parts[size_t(si)], {{"format", "pt"}});
      for (const auto& s : parts[size_t(si)]) {
        if (o.progress) o.progress(done, total, s.name);
        const bool norm = s.shape.size() == 1;
        const int64_t count = norm ? s.shape[0] : s.shape[0] * s.shape[1];
        // Norm weights near 1, matrices ~ N(0, 0.02^2) like an initialized transformer.
        fill(dt, count, norm ? 0.1f : 0.02f, seed++, buf);
        if (norm) {
          for (int64_t i = 0; i < count; ++i) {
            const float v = 1.0f + element_to_f32(dt, buf.data() + size_t(i) * dtype_size(dt));
            if (dt == DType::kF32) std::memcpy(buf.data() + size_t(i) * 4, &v, 4);
            else {
              const uint16_t b = dt == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
              std::memcpy(buf.data() + size_t(i) * 2, &b, 2);
            }
          }
        }
        w.write(s.name, buf.data(), buf.size());
        done += buf.size();
        weight_map[s.name] = name;
      }
      w.commit();
    }
    if (as_dir) {
      // Heads consistent with the k/v projections' h/ratio rows: head_dim = gcd(64, h/ratio).
      const int64_t head_dim = std::gcd(int64_t(64), h / o.kv_heads_ratio);
      const nlohmann::json config = {
          {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", h},
          {"intermediate_size", in}, {"num_hidden_layers", o.layers}, {"vocab_size", o.vocab},
          {"num_attention_heads", h / head_dim},
          {"num_key_value_heads", (h / o.kv_heads_ratio) / head_dim},
          {"head_dim", head_dim},
          {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", false}, {"torch_dtype", dt == DType::kBF16 ? "bfloat16" : dt == DType::kF16 ? "float16" : "float32"},
          {"_slidesparse_synth", {{"seed", o.seed}}}};
      write_text_file_atomic((staging / "config.json").string(), config.dump(2) + "\n");
      if (nshards > 1) {
        const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
        write_text_file_atomic((staging / kIndexFileName).string(), index.dump(2) + "\n");
      }
    }
    move_into_place(staging, out_path);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
  if (o.progress) o.progress(total, total, "");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {{"command", "synth"}, {"output", out}, {"layers", o.layers}, {"hidden", h}, {"intermediate", in},
          {"vocab", o.vocab}, {"dtype", o.dtype}, {"shards", shard_names}, {"total_bytes", total},
          {"num_tensors", specs.size()}, {"seconds", seconds}};
}

}  // namespace slidesparse
