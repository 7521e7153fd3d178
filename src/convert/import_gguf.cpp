// `slidesparse import-gguf`: a llama.cpp GGUF (Llama architecture) to a Hugging Face directory:
// model.safetensors (dequantized to bf16 or f32, HF tensor names and layouts), config.json and
// tokenizer_gguf.json (the GGUF tokenizer data, for a later BPE tokenizer build).
//
// Layout differences undone here:
//  - GGUF lists dims fastest-first: ne = [k, n] is the row-major HF weight [n, k].
//  - llama.cpp's convert_hf_to_gguf.py permutes the rows of q_proj / k_proj for its RoPE
//    implementation: per head, w.reshape(n_head, 2, head_dim/2, k).swapaxes(1, 2), i.e. GGUF row
//    h*hd + 2*i + j holds HF row h*hd + j*hd/2 + i (n_head = head_count_kv for k_proj).
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>

#include "common/check.hpp"
#include "convert/convert.hpp"
#include "convert/output.hpp"
#include "io/atomic_file.hpp"
#include "slidesparse/gguf.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Staging {
  fs::path path;
  bool keep = false;
  ~Staging() {
    if (!keep && !path.empty()) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

const GgufValue& require_key(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.value(key);
  SLIDESPARSE_CHECK(v != nullptr, Status::kBadFormat, "{}: missing metadata key {}", f.path(), key);
  return *v;
}
uint64_t require_uint(const GgufFile& f, const std::string& key) {
  const auto v = require_key(f, key).as_uint();
  SLIDESPARSE_CHECK(v.has_value(), Status::kBadFormat, "{}: metadata {} must be a non-negative integer",
                    f.path(), key);
  return *v;
}
// f32 metadata as the shortest decimal that reads back as the same f32 (1e-05, not 9.99999e-06).
double f32_decimal(double v) { return std::stod(fmt::format("{}", float(v))); }
double require_float(const GgufFile& f, const std::string& key) {
  const GgufValue& v = require_key(f, key);
  const auto d = v.as_double();
  SLIDESPARSE_CHECK(d.has_value(), Status::kBadFormat, "{}: metadata {} must be a number", f.path(), key);
  return v.type == GgufValueType::kF32 ? f32_decimal(*d) : *d;
}

// llama.cpp tensor name -> HF name; "" when unknown.
std::string hf_name(const std::string& g) {
  static const std::map<std::string, std::string> top = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  static const std::map<std::string, std::string> layer = {
      {"attn_q.weight", "self_attn.q_proj.weight"},   {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},   {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},    {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},    {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
  };
  if (auto it = top.find(g); it != top.end()) return it->second;
  static const std::regex re(R"(blk\.(0|[1-9][0-9]*)\.(.+))");
  std::smatch m;
  if (!std::regex_match(g, m, re)) return "";
  auto it = layer.find(m[2].str());
  if (it == layer.end()) return "";
  return "model.layers." + m[1].str() + "." + it->second;
}

}  // namespace

void unpermute_rope_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t n_head) {
  SLIDESPARSE_CHECK(n_head > 0 && rows % n_head == 0 && (rows / n_head) % 2 == 0, Status::kInvalidData,
                    "q/k weight with {} rows cannot be split into {} heads of even size", rows, n_head);
  const int64_t hd = rows / n_head, half = hd / 2;
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const float* s = src + (h * hd + 2 * i + j) * cols;
        std::copy(s, s + cols, dst + (h * hd + j * half + i) * cols);
      }
}

json import_gguf(const std::string& in, const std::string& out, const ImportGgufOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  SLIDESPARSE_CHECK(opts.dtype == "bf16" || opts.dtype == "f32", Status::kInvalidArgument,
                    "--dtype '{}' is not one of: bf16, f32", opts.dtype);
  const DType out_dtype = opts.dtype == "bf16" ? DType::kBF16 : DType::kF32;
  const GgufFile f = GgufFile::open(in);
  check_output_path(in, out, opts.force);

  const GgufValue& arch = require_key(f, "general.architecture");
  SLIDESPARSE_CHECK(arch.type == GgufValueType::kString, Status::kBadFormat,
                    "{}: general.architecture must be a string", in);
  SLIDESPARSE_CHECK(arch.s == "llama", Status::kUnsupported,
                    "{}: architecture '{}' is not supported (supported: llama)", in, arch.s);
  const uint64_t layers = require_uint(f, "llama.block_count");
  const uint64_t hidden = require_uint(f, "llama.embedding_length");
  const uint64_t ffn = require_uint(f, "llama.feed_forward_length");
  const uint64_t n_head = require_uint(f, "llama.attention.head_count");
  const uint64_t n_kv = f.value("llama.attention.head_count_kv") ? require_uint(f, "llama.attention.head_count_kv") : n_head;
  SLIDESPARSE_CHECK(n_head > 0 && n_kv > 0 && hidden % n_head == 0 && n_head % n_kv == 0, Status::kBadFormat,
                    "{}: hidden {} / heads {} / kv heads {} are inconsistent", in, hidden, n_head, n_kv);
  const uint64_t head_dim = hidden / n_head;
  const GgufTensorInfo* embd = f.find("token_embd.weight");
  SLIDESPARSE_CHECK(embd != nullptr && embd->ne.size() == 2 && embd->ne[0] == hidden, Status::kBadFormat,
                    "{}: token_embd.weight missing or not [vocab, {}]", in, hidden);
  uint64_t vocab = embd->ne[1];
  if (f.value("llama.vocab_size")) {
    const uint64_t v = require_uint(f, "llama.vocab_size");
    SLIDESPARSE_CHECK(v == vocab, Status::kBadFormat, "{}: llama.vocab_size {} != token_embd rows {}", in, v, vocab);
  }
  const bool tied = f.find("output.weight") == nullptr;

  json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", hidden},
      {"intermediate_size", ffn},
      {"num_hidden_layers", layers},
      {"num_attention_heads", n_head},
      {"num_key_value_heads", n_kv},
      {"head_dim", head_dim},
      {"hidden_act", "silu"},
      {"rms_norm_eps", require_float(f, "llama.attention.layer_norm_rms_epsilon")},
      {"rope_theta", f.value("llama.rope.freq_base") ? require_float(f, "llama.rope.freq_base") : 10000.0},
      {"vocab_size", vocab},
      {"max_position_embeddings", require_uint(f, "llama.context_length")},
      {"tie_word_embeddings", tied},
      {"torch_dtype", opts.dtype == "bf16" ? "bfloat16" : "float32"},
  };
  json tok = json::object();
  for (const char* k : {"bos_token_id", "eos_token_id", "padding_token_id", "unknown_token_id"}) {
    const std::string key = std::string("tokenizer.ggml.") + k;
    if (f.value(key)) {
      const uint64_t id = require_uint(f, key);
      tok[k] = id;
      if (std::string(k) == "bos_token_id" || std::string(k) == "eos_token_id") config[k] = id;
      if (std::string(k) == "padding_token_id") config["pad_token_id"] = id;
    }
  }
  for (const char* k : {"model", "pre", "tokens", "token_type", "merges", "scores", "add_bos_token",
                        "add_eos_token", "add_space_prefix"}) {
    if (const GgufValue* v = f.value(std::string("tokenizer.ggml.") + k)) tok[k] = v->to_json();
  }
  if (const GgufValue* v = f.value("tokenizer.chat_template")) tok["chat_template"] = v->to_json();

  // Plan: every tensor must map to an HF name; shapes checked against the config.
  struct Item {
    const GgufTensorInfo* t;
    std::string name;
    int64_t unpermute_heads = 0;
  };
  std::vector<Item> items;
  std::vector<TensorSpec> specs;
  std::map<std::string, int> type_counts;
  for (const auto& t : f.tensors()) {
    const std::string name = hf_name(t.name);
    SLIDESPARSE_CHECK(!name.empty(), Status::kUnsupported, "{}: tensor '{}' has no Hugging Face Llama name", in,
                      t.name);
    const auto* tr = ggml_type_traits(uint32_t(t.type));
    SLIDESPARSE_CHECK(tr->dequantizable, Status::kUnsupported,
                      "{}: tensor '{}' is {}, which cannot be dequantized (supported: F32, F16, BF16, F64, Q4_0, "
                      "Q4_1, Q5_0, Q5_1, Q8_0, Q6_K)",
                      in, t.name, tr->name);
    Item it{&t, name, 0};
    const bool is_q = name.find("q_proj") != std::string::npos, is_k = name.find("k_proj") != std::string::npos;
    if (is_q || is_k) {
      const uint64_t heads = is_q ? n_head : n_kv;
      SLIDESPARSE_CHECK(t.ne.size() == 2 && t.ne[0] == hidden && t.ne[1] == heads * head_dim, Status::kBadFormat,
                        "{}: {} has ne {} but [{}, {}] was expected", in, t.name, fmt::join(t.ne, "x"), hidden,
                        heads * head_dim);
      it.unpermute_heads = int64_t(heads);
    }
    items.push_back(it);
    specs.push_back({name, out_dtype, t.shape()});
    ++type_counts[tr->name];
  }

  const fs::path out_path(strip_trailing_separators(out));
  Staging staging;
  staging.path = staging_path_for(out_path);
  std::error_code ec;
  fs::create_directory(staging.path, ec);
  SLIDESPARSE_CHECK(!ec, Status::kIoError, "cannot create staging directory '{}': {}", staging.path.string(),
                    ec.message());

  uint64_t total = 0, done = 0, out_bytes = 0;
  for (const auto& it : items) total += it.t->nbytes();
  json tensors = json::array();
  {
    SafetensorsWriter w((staging.path / "model.safetensors").string(), specs,
                        {{"format", "pt"}, {"source", "gguf"}});
    std::vector<float> tmp;
    std::vector<uint16_t> half;
    for (const auto& it : items) {
      if (opts.progress) opts.progress(done, total, it.name);
      std::vector<float> v = f.dequantize(*it.t);
      if (it.unpermute_heads) {
        tmp.resize(v.size());
        unpermute_rope_rows(v.data(), tmp.data(), int64_t(it.t->ne[1]), int64_t(it.t->ne[0]), it.unpermute_heads);
        v.swap(tmp);
      }
      if (out_dtype == DType::kF32) {
        w.write(it.name, v.data(), v.size() * 4);
      } else {
        half.resize(v.size());
        for (size_t i = 0; i < v.size(); ++i) half[i] = f32_to_bf16(v[i]);
        w.write(it.name, half.data(), half.size() * 2);
      }
      out_bytes += v.size() * dtype_size(out_dtype);
      done += it.t->nbytes();
      tensors.push_back({{"name", it.name},
                         {"gguf_name", it.t->name},
                         {"ggml_type", ggml_type_traits(uint32_t(it.t->type))->name},
                         {"shape", it.t->shape()},
                         {"unpermuted", it.unpermute_heads != 0}});
    }
    w.commit();
  }
  write_text_file_atomic((staging.path / "config.json").string(), config.dump(2) + "\n");
  write_text_file_atomic((staging.path / "tokenizer_gguf.json").string(), tok.dump() + "\n");
  if (opts.progress) opts.progress(total, total, "");
  move_into_place(staging.path, out_path);
  staging.keep = true;

  json metadata = json::object();
  for (const auto& k : f.header().metadata_order) {
    const GgufValue& v = *f.value(k);
    if (v.type == GgufValueType::kArray)
      metadata[k] = fmt::format("array of {} {}", v.items.size(), gguf_value_type_name(v.elem_type));
    else if (v.type == GgufValueType::kString && v.s.size() > 120)
      metadata[k] = v.s.substr(0, 117) + "...";
    else
      metadata[k] = v.to_json();
  }
  return {{"input", in},
          {"output", out_path.string()},
          {"gguf_version", f.header().version},
          {"dtype", opts.dtype},
          {"num_tensors", items.size()},
          {"ggml_types", type_counts},
          {"tensors", tensors},
          {"config", config},
          {"metadata", metadata},
          {"output_bytes", out_bytes},
          {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
}

}  // namespace slidesparse
