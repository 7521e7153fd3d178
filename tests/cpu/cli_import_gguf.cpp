// `slidesparse import-gguf` on a hand-built 1-layer llama GGUF (hidden 8, 2 query heads of 4, one
// KV head, FFN 32, vocab 16; F32 / F16 / Q8_0 tensors): HF names, shapes, exact values, the q/k
// RoPE row un-permutation (expected rows computed here from llama.cpp's permutation), config.json,
// tokenizer_gguf.json, atomic output and exit codes. A last test checks the real SmolLM2 file when
// scripts/fetch_model.sh has been run.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "convert/convert.hpp"
#include "gguf_builder.hpp"
#include "slidesparse/gguf.hpp"
#include "slidesparse/safetensors.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

using namespace clitest;
using namespace ggufbuild;
namespace fs = std::filesystem;

constexpr int kHidden = 8, kHeads = 2, kKvHeads = 1, kHeadDim = 4, kFfn = 32, kVocab = 16;

// GGUF element e of tensor number t: small distinct integers (exact in f16 and bf16).
float val(int t, size_t e) { return float(int((e * 7 + size_t(t) * 5) % 23) - 11); }

std::vector<float> values(int t, size_t n) {
  std::vector<float> v(n);
  for (size_t e = 0; e < n; ++e) v[e] = val(t, e);
  return v;
}

struct Tiny {
  std::map<std::string, std::vector<float>> gguf_values;  // by GGUF name, ggml order
  std::vector<uint8_t> image;
};

Tiny tiny_llama(bool with_output = false, const std::string& arch = "llama") {
  Builder b;
  b.str("general.architecture", arch);
  b.u32("llama.block_count", 1);
  b.u32("llama.context_length", 128);
  b.u32("llama.embedding_length", kHidden);
  b.u32("llama.feed_forward_length", kFfn);
  b.u32("llama.attention.head_count", kHeads);
  b.u32("llama.attention.head_count_kv", kKvHeads);
  b.f32("llama.rope.freq_base", 100000.0f);
  b.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  b.u32("llama.vocab_size", kVocab);
  b.str("tokenizer.ggml.model", "gpt2");
  b.str("tokenizer.ggml.pre", "smollm");
  std::vector<std::string> toks;
  for (int i = 0; i < kVocab; ++i) toks.push_back("t" + std::to_string(i));
  b.str_array("tokenizer.ggml.tokens", toks);
  b.i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(kVocab, 1));
  b.str_array("tokenizer.ggml.merges", {"t 1", "Ġ t"});
  b.u32("tokenizer.ggml.bos_token_id", 1);
  b.u32("tokenizer.ggml.eos_token_id", 2);
  b.u32("tokenizer.ggml.padding_token_id", 2);
  b.boolean("tokenizer.ggml.add_bos_token", false);
  b.str("tokenizer.chat_template", "{{ messages }}");
  Tiny t;
  int idx = 0;
  auto f32 = [&](const std::string& name, std::vector<uint64_t> ne) {
    size_t n = 1;
    for (auto d : ne) n *= d;
    auto v = values(idx++, n);
    b.f32_tensor(name, std::move(ne), v);
    t.gguf_values[name] = v;
  };
  f32("token_embd.weight", {kHidden, kVocab});
  f32("blk.0.attn_norm.weight", {kHidden});
  f32("blk.0.attn_q.weight", {kHidden, kHeads * kHeadDim});
  {  // k as F16
    auto v = values(idx++, kHidden * kKvHeads * kHeadDim);
    std::vector<uint8_t> bytes;
    for (float x : v) put_le(bytes, f32_to_f16(x), 2);
    b.tensor("blk.0.attn_k.weight", {kHidden, kKvHeads * kHeadDim}, tF16, bytes);
    t.gguf_values["blk.0.attn_k.weight"] = v;
  }
  f32("blk.0.attn_v.weight", {kHidden, kKvHeads * kHeadDim});
  f32("blk.0.attn_output.weight", {kHidden, kHidden});
  f32("blk.0.ffn_norm.weight", {kHidden});
  f32("blk.0.ffn_gate.weight", {kHidden, kFfn});
  f32("blk.0.ffn_up.weight", {kHidden, kFfn});
  {  // down as Q8_0: 8 rows of 32 = one block per row, scale 0.5 (exact)
    std::vector<uint8_t> bytes;
    std::vector<float> v;
    for (int r = 0; r < kHidden; ++r) {
      std::vector<int8_t> q;
      for (int j = 0; j < 32; ++j) {
        q.push_back(int8_t((r * 32 + j) % 50 - 25));
        v.push_back(float(q.back()) * 0.5f);
      }
      auto blk = q8_0_block(0x3800, q);
      bytes.insert(bytes.end(), blk.begin(), blk.end());
    }
    b.tensor("blk.0.ffn_down.weight", {kFfn, kHidden}, tQ8_0, bytes);
    t.gguf_values["blk.0.ffn_down.weight"] = v;
  }
  f32("output_norm.weight", {kHidden});
  if (with_output) f32("output.weight", {kHidden, kVocab});
  t.image = b.build();
  return t;
}

std::vector<float> read_f32(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  EXPECT_NE(t, nullptr) << name;
  if (!t) return {};
  EXPECT_EQ(t->dtype, DType::kF32);
  std::vector<float> v(size_t(t->numel()));
  std::memcpy(v.data(), f.data(*t), v.size() * 4);
  return v;
}

json read_json(const std::string& path) { return json::parse(read_text(path)); }

TEST(CliImportGguf, NamesShapesValuesConfig) {
  TempDir dir;
  const Tiny t = tiny_llama();
  write_bytes(dir.file("tiny.gguf"), t.image);
  const auto r = run_cli({"import-gguf", dir.file("tiny.gguf"), dir.file("out"), "--dtype", "f32", "--json"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(entries(dir.file("out")), (std::vector<std::string>{"config.json", "model.safetensors", "tokenizer_gguf.json"}));
  const json rep = json::parse(r.out);
  EXPECT_EQ(rep["num_tensors"], 11);
  EXPECT_EQ(rep["ggml_types"], json({{"F16", 1}, {"F32", 9}, {"Q8_0", 1}}));

  const auto f = SafetensorsFile::open(dir.file("out/model.safetensors"));
  EXPECT_EQ(f.tensors().size(), 11u);
  EXPECT_EQ(f.find("lm_head.weight"), nullptr);
  const std::map<std::string, std::pair<std::string, std::vector<int64_t>>> plain = {
      {"token_embd.weight", {"model.embed_tokens.weight", {kVocab, kHidden}}},
      {"blk.0.attn_norm.weight", {"model.layers.0.input_layernorm.weight", {kHidden}}},
      {"blk.0.attn_v.weight", {"model.layers.0.self_attn.v_proj.weight", {kHeadDim, kHidden}}},
      {"blk.0.attn_output.weight", {"model.layers.0.self_attn.o_proj.weight", {kHidden, kHidden}}},
      {"blk.0.ffn_norm.weight", {"model.layers.0.post_attention_layernorm.weight", {kHidden}}},
      {"blk.0.ffn_gate.weight", {"model.layers.0.mlp.gate_proj.weight", {kFfn, kHidden}}},
      {"blk.0.ffn_up.weight", {"model.layers.0.mlp.up_proj.weight", {kFfn, kHidden}}},
      {"blk.0.ffn_down.weight", {"model.layers.0.mlp.down_proj.weight", {kHidden, kFfn}}},
      {"output_norm.weight", {"model.norm.weight", {kHidden}}},
  };
  for (const auto& [g, hf] : plain) {
    const TensorInfo* ti = f.find(hf.first);
    ASSERT_NE(ti, nullptr) << hf.first;
    EXPECT_EQ(ti->shape, hf.second) << hf.first;
    // Row-major [n, k] with k = ne[0]: the same element order as GGUF, values exact.
    EXPECT_EQ(read_f32(f, hf.first), t.gguf_values.at(g)) << hf.first;
  }
  // q/k: HF row h*hd + j*hd/2 + i comes from GGUF row h*hd + 2*i + j (llama.cpp's permute:
  // reshape(n_head, 2, hd/2, k).swapaxes(1, 2)).
  for (auto [g, hf, heads] : {std::tuple{"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", kHeads},
                              std::tuple{"blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", kKvHeads}}) {
    const auto& src = t.gguf_values.at(g);
    const auto got = read_f32(f, hf);
    EXPECT_EQ(f.find(hf)->shape, (std::vector<int64_t>{heads * kHeadDim, kHidden}));
    ASSERT_EQ(got.size(), src.size());
    for (int h = 0; h < heads; ++h)
      for (int j = 0; j < 2; ++j)
        for (int i = 0; i < kHeadDim / 2; ++i)
          for (int c = 0; c < kHidden; ++c) {
            const size_t hf_row = size_t(h * kHeadDim + j * kHeadDim / 2 + i);
            const size_t gg_row = size_t(h * kHeadDim + 2 * i + j);
            EXPECT_EQ(got[hf_row * kHidden + size_t(c)], src[gg_row * kHidden + size_t(c)]) << hf << " row " << hf_row;
          }
    EXPECT_NE(got, src) << "the permutation must move rows";
  }

  const json cfg = read_json(dir.file("out/config.json"));
  EXPECT_EQ(cfg["architectures"], json({"LlamaForCausalLM"}));
  EXPECT_EQ(cfg["hidden_size"], kHidden);
  EXPECT_EQ(cfg["intermediate_size"], kFfn);
  EXPECT_EQ(cfg["num_hidden_layers"], 1);
  EXPECT_EQ(cfg["num_attention_heads"], kHeads);
  EXPECT_EQ(cfg["num_key_value_heads"], kKvHeads);
  EXPECT_EQ(cfg["rms_norm_eps"], 1e-5);
  EXPECT_EQ(cfg["rope_theta"], 100000.0);
  EXPECT_EQ(cfg["vocab_size"], kVocab);
  EXPECT_EQ(cfg["max_position_embeddings"], 128);
  EXPECT_EQ(cfg["tie_word_embeddings"], true);
  EXPECT_EQ(cfg["bos_token_id"], 1);
  EXPECT_EQ(cfg["eos_token_id"], 2);
  const json tok = read_json(dir.file("out/tokenizer_gguf.json"));
  EXPECT_EQ(tok["model"], "gpt2");
  EXPECT_EQ(tok["pre"], "smollm");
  EXPECT_EQ(tok["tokens"].size(), size_t(kVocab));
  EXPECT_EQ(tok["token_type"][0], 1);
  EXPECT_EQ(tok["merges"], json({"t 1", "Ġ t"}));
  EXPECT_EQ(tok["bos_token_id"], 1);
  EXPECT_EQ(tok["eos_token_id"], 2);
  EXPECT_EQ(tok["padding_token_id"], 2);
  EXPECT_EQ(tok["add_bos_token"], false);
  EXPECT_EQ(tok["chat_template"], "{{ messages }}");
}

TEST(CliImportGguf, Bf16AndUntiedHead) {
  TempDir dir;
  const Tiny t = tiny_llama(/*with_output=*/true);
  write_bytes(dir.file("tiny.gguf"), t.image);
  const auto r = run_cli({"import-gguf", dir.file("tiny.gguf"), dir.file("out")});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("imported"), std::string::npos) << r.out;
  const auto f = SafetensorsFile::open(dir.file("out/model.safetensors"));
  const TensorInfo* head = f.find("lm_head.weight");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->dtype, DType::kBF16);
  EXPECT_EQ(head->shape, (std::vector<int64_t>{kVocab, kHidden}));
  const auto& src = t.gguf_values.at("output.weight");
  const uint8_t* p = f.data(*head);
  for (size_t e = 0; e < src.size(); ++e) {
    uint16_t bits;
    std::memcpy(&bits, p + 2 * e, 2);
    EXPECT_EQ(bf16_to_f32(bits), src[e]);
  }
  EXPECT_EQ(read_json(dir.file("out/config.json"))["tie_word_embeddings"], false);
}

TEST(CliImportGguf, UnpermuteInverseOfLlamaCppPermute) {
  // Synthetic [rows, cols] matrix, permuted forward as llama.cpp does, then inverted.
  const int64_t heads = 3, hd = 6, cols = 5, rows = heads * hd;
  std::vector<float> hf(size_t(rows * cols)), gg(hf.size()), back(hf.size());
  for (size_t i = 0; i < hf.size(); ++i) hf[i] = float(i);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < hd / 2; ++i)
        for (int64_t c = 0; c < cols; ++c)  // out[h, i, j] = in[h, j, i] (swapaxes(1, 2))
          gg[size_t((h * hd + i * 2 + j) * cols + c)] = hf[size_t((h * hd + j * hd / 2 + i) * cols + c)];
  unpermute_rope_rows(gg.data(), back.data(), rows, cols, heads);
  EXPECT_EQ(back, hf);
}

TEST(CliImportGguf, BadInputsAndAtomicOutput) {
  TempDir dir;
  write_bytes(dir.file("tiny.gguf"), tiny_llama().image);
  EXPECT_EQ(run_cli({"import-gguf", dir.file("missing.gguf"), dir.file("o1")}).code, 3);
  write_bytes(dir.file("bad.gguf"), {'G', 'G', 'U', 'X', 3, 0, 0, 0});
  auto r = run_cli({"import-gguf", dir.file("bad.gguf"), dir.file("o2")});
  EXPECT_EQ(r.code, 5) << r;
  write_bytes(dir.file("gpt2.gguf"), tiny_llama(false, "gpt2").image);
  r = run_cli({"import-gguf", dir.file("gpt2.gguf"), dir.file("o3")});
  EXPECT_EQ(r.code, 8) << r;
  EXPECT_NE(r.err.find("gpt2"), std::string::npos) << r;
  r = run_cli({"import-gguf", dir.file("tiny.gguf"), dir.file("o4"), "--dtype", "f16"});
  EXPECT_EQ(r.code, 2) << r;
  // Unknown tensor name: fails during planning, nothing left behind.
  Builder b;
  b.str("general.architecture", "llama");
  b.f32_tensor("mystery.weight", {4}, {1, 2, 3, 4});
  write_bytes(dir.file("mystery.gguf"), b.build());
  r = run_cli({"import-gguf", dir.file("mystery.gguf"), dir.file("o5")});
  EXPECT_NE(r.code, 0) << r;
  EXPECT_FALSE(fs::exists(dir.file("o5")));
  // Existing output: refused without --force (7), replaced with it.
  ASSERT_EQ(run_cli({"import-gguf", dir.file("tiny.gguf"), dir.file("out")}).code, 0);
  EXPECT_EQ(run_cli({"import-gguf", dir.file("tiny.gguf"), dir.file("out")}).code, 7);
  EXPECT_EQ(run_cli({"import-gguf", dir.file("tiny.gguf"), dir.file("out"), "--force"}).code, 0);
  EXPECT_TRUE(hidden_entries(dir.path().string()).empty()) << join(hidden_entries(dir.path().string()));
  for (const char* o : {"o1", "o2", "o3", "o4"}) EXPECT_FALSE(fs::exists(dir.file(o))) << o;
}

// The real model (scripts/fetch_model.sh): architecture numbers from BRIEF §6, checked against the
// file's own metadata and tensor shapes.
TEST(CliImportGguf, RealSmolLM2Architecture) {
  const fs::path model = fs::path(SLIDESPARSE_SOURCE_DIR) / ".deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << model << " not present: run scripts/fetch_model.sh";
  const GgufFile f = GgufFile::open(model.string());
  auto u = [&](const char* k) { return f.value(k)->as_uint().value(); };
  EXPECT_EQ(f.header().version, 3u);
  EXPECT_EQ(f.value("general.architecture")->s, "llama");
  EXPECT_EQ(u("llama.block_count"), 30u);
  EXPECT_EQ(u("llama.embedding_length"), 576u);
  EXPECT_EQ(u("llama.feed_forward_length"), 1536u);
  EXPECT_EQ(u("llama.attention.head_count"), 9u);
  EXPECT_EQ(u("llama.attention.head_count_kv"), 3u);
  EXPECT_EQ(u("llama.vocab_size"), 49152u);
  EXPECT_EQ(f.value("llama.rope.freq_base")->f, 100000.0);
  EXPECT_EQ(f.value("tokenizer.ggml.tokens")->items.size(), 49152u);
  EXPECT_EQ(f.find("output.weight"), nullptr) << "embeddings are tied";
  EXPECT_EQ(f.tensors().size(), 272u);
  EXPECT_EQ(f.find("token_embd.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ(f.find("blk.0.attn_q.weight")->type, GgmlType::kQ4_1);
  EXPECT_EQ(f.find("blk.29.ffn_down.weight")->shape(), (std::vector<int64_t>{576, 1536}));
}

}  // namespace
}  // namespace slidesparse
