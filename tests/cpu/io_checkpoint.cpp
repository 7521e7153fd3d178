// Checkpoint::open over single files, single-file directories and sharded directories with an
// index; every index inconsistency is rejected naming the tensor or shard. Also the tensor-name
// helpers (is_default_target, layer_prefix).
#include "cpu/io_util.hpp"
#include "slidesparse/checkpoint.hpp"

namespace slidesparse {
namespace {

using testing::TempDir;
using testing::throws_error;
using testing::write_text;

std::vector<OwnedTensor> tensors(std::initializer_list<std::string> names) {
  std::vector<OwnedTensor> out;
  uint8_t v = 1;
  for (const auto& n : names) {
    OwnedTensor t;
    t.spec.name = n;
    t.spec.dtype = DType::kBF16;
    t.spec.shape = {2, 2};
    t.bytes.assign(8, v++);
    out.push_back(std::move(t));
  }
  return out;
}

// Three shards, an index, config and tokenizer files, and a subdirectory that must be ignored.
struct ShardedFixture {
  TempDir dir;
  std::string index;
  ShardedFixture() {
    write_safetensors(
        dir.file("model-00001-of-00003.safetensors"),
        tensors({"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"}));
    write_safetensors(dir.file("model-00002-of-00003.safetensors"),
                      tensors({"model.layers.0.mlp.down_proj.weight"}));
    write_safetensors(dir.file("model-00003-of-00003.safetensors"),
                      tensors({"lm_head.weight", "model.norm.weight"}));
    index = R"({"metadata":{"total_size":40},"weight_map":{
      "model.embed_tokens.weight":"model-00001-of-00003.safetensors",
      "model.layers.0.self_attn.q_proj.weight":"model-00001-of-00003.safetensors",
      "model.layers.0.mlp.down_proj.weight":"model-00002-of-00003.safetensors",
      "lm_head.weight":"model-00003-of-00003.safetensors",
      "model.norm.weight":"model-00003-of-00003.safetensors"}})";
    write_text(dir.file(kIndexFileName), index);
    write_text(dir.file("config.json"), "{}");
    write_text(dir.file("tokenizer.json"), "{}");
    std::filesystem::create_directory(dir.path() / "original");
    write_text(dir.file("original/params.json"), "{}");
  }
  std::string index_path() const { return dir.file(kIndexFileName); }
  void set_index(const std::string& text) { write_text(index_path(), text); }
};

TEST(io_CheckpointOpen, ShardedDirectory) {
  ShardedFixture fx;
  const auto c = Checkpoint::open(fx.dir.path().string());
  EXPECT_TRUE(c.is_directory);
  EXPECT_EQ(c.path, fx.dir.path().string());
  EXPECT_EQ(c.dir, fx.dir.path().string());
  EXPECT_EQ(c.shards, (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                                "model-00002-of-00003.safetensors",
                                                "model-00003-of-00003.safetensors"}));
  EXPECT_EQ(c.other_files, (std::vector<std::string>{"config.json", "tokenizer.json"}));
  EXPECT_EQ(c.index_json, fx.index);
  EXPECT_EQ(c.shard_path(1), fx.dir.file("model-00002-of-00003.safetensors"));

  // Round trip: every tensor comes back with its bytes from the shard the index names.
  size_t count = 0;
  for (size_t i = 0; i < c.shards.size(); ++i) {
    const auto f = SafetensorsFile::open(c.shard_path(i));
    for (const auto& t : f.tensors()) {
      EXPECT_EQ(t.dtype, DType::kBF16);
      EXPECT_EQ(t.nbytes(), 8u);
      ++count;
    }
  }
  EXPECT_EQ(count, 5u);
  EXPECT_TRUE(throws_error([&] { c.shard_path(3); }, Status::kInvalidArgument,
                           {"shard index 3", "3 shards"}));
}

TEST(io_CheckpointOpen, SingleFile) {
  TempDir dir;
  const std::string p = dir.file("m.safetensors");
  write_safetensors(p, tensors({"a.weight"}));
  write_text(dir.file("config.json"), "{}");
  const auto c = Checkpoint::open(p);
  EXPECT_FALSE(c.is_directory);
  EXPECT_EQ(c.dir, dir.path().string());
  EXPECT_EQ(c.shards, (std::vector<std::string>{"m.safetensors"}));
  EXPECT_TRUE(c.other_files.empty());
  EXPECT_TRUE(c.index_json.empty());
  EXPECT_EQ(c.shard_path(0), p);
}

TEST(io_CheckpointOpen, SingleFileBadHeader) {
  TempDir dir;
  const std::string p = dir.file("m.safetensors");
  write_text(p, "garbage!");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(p); }, Status::kBadFormat, {p}));
}

TEST(io_CheckpointOpen, DirectoryWithModelSafetensors) {
  TempDir dir;
  write_safetensors(dir.file(kSingleFileName), tensors({"a.weight"}));
  write_safetensors(dir.file("extra.safetensors"), tensors({"b.weight"}));
  write_text(dir.file("config.json"), "{}");
  std::filesystem::create_directory(dir.path() / "sub");
  const auto c = Checkpoint::open(dir.path().string());
  EXPECT_TRUE(c.is_directory);
  EXPECT_EQ(c.shards, (std::vector<std::string>{kSingleFileName}));
  EXPECT_EQ(c.other_files, (std::vector<std::string>{"config.json", "extra.safetensors"}));
  EXPECT_EQ(c.shard_path(0), dir.file(kSingleFileName));
}

TEST(io_CheckpointOpen, DirectoryWithOneOtherSafetensors) {
  TempDir dir;
  write_safetensors(dir.file("weights.safetensors"), tensors({"a.weight"}));
  write_text(dir.file("README.md"), "x");
  const auto c = Checkpoint::open(dir.path().string());
  EXPECT_EQ(c.shards, (std::vector<std::string>{"weights.safetensors"}));
  EXPECT_EQ(c.other_files, (std::vector<std::string>{"README.md"}));
}

TEST(io_CheckpointOpen, DirectoryWithSeveralSafetensorsAndNoIndex) {
  TempDir dir;
  write_safetensors(dir.file("a.safetensors"), tensors({"a.weight"}));
  write_safetensors(dir.file("b.safetensors"), tensors({"b.weight"}));
  const std::string p = dir.path().string();
  EXPECT_TRUE(
      throws_error([&] { Checkpoint::open(p); }, Status::kBadFormat,
                   {p, "2 .safetensors files", "a.safetensors, b.safetensors", kIndexFileName}));
}

TEST(io_CheckpointOpen, EmptyDirectoryAndMissingPath) {
  TempDir dir;
  write_text(dir.file("config.json"), "{}");
  const std::string p = dir.path().string();
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(p); }, Status::kNotFound,
                           {p, "no model.safetensors.index.json"}));
  const std::string missing = dir.file("nope");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(missing); }, Status::kNotFound, {missing}));
}

TEST(io_CheckpointOpen, DirectoryWithCorruptSingleFile) {
  TempDir dir;
  write_text(dir.file(kSingleFileName), "0123456789");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(dir.path().string()); }, Status::kBadFormat,
                           {dir.file(kSingleFileName)}));
}

// --- index errors -----------------------------------------------------------------------------

TEST(io_CheckpointIndex, NotJson) {
  ShardedFixture fx;
  fx.set_index("{\"weight_map\": ");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {fx.index_path(), "index is not valid JSON"}));
}

TEST(io_CheckpointIndex, NotObject) {
  ShardedFixture fx;
  fx.set_index("[]");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {fx.index_path(), "index must be a JSON object", "an array"}));
}

TEST(io_CheckpointIndex, NoWeightMap) {
  ShardedFixture fx;
  fx.set_index(R"({"metadata":{}})");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {fx.index_path(), "no \"weight_map\""}));
  fx.set_index(R"({"weight_map":{}})");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {fx.index_path(), "\"weight_map\" is empty"}));
  fx.set_index(R"({"weight_map":["a"]})");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {fx.index_path(), "\"weight_map\" must be an object"}));
}

TEST(io_CheckpointIndex, ValueNotString) {
  ShardedFixture fx;
  fx.set_index(R"({"weight_map":{"lm_head.weight":3}})");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {fx.index_path(), "\"lm_head.weight\"", "the integer 3"}));
}

TEST(io_CheckpointIndex, DuplicateTensorInWeightMap) {
  ShardedFixture fx;
  fx.set_index(R"({"weight_map":{"a":"x.safetensors","a":"y.safetensors"}})");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {fx.index_path(), "duplicate key \"a\""}));
}

TEST(io_CheckpointIndex, ShardMissing) {
  ShardedFixture fx;
  std::filesystem::remove(fx.dir.path() / "model-00002-of-00003.safetensors");
  EXPECT_TRUE(
      throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kNotFound,
                   {fx.index_path(), "\"model-00002-of-00003.safetensors\"", "does not exist"}));
}

TEST(io_CheckpointIndex, ShardEscapingDirectory) {
  ShardedFixture fx;
  const char* bad[] = {"../model-00001-of-00003.safetensors", "/etc/passwd", "sub/x.safetensors",
                       "..", "."};
  for (const char* shard : bad) {
    fx.set_index(std::string(R"({"weight_map":{"w":")") + shard + "\"}}");
    EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                             {fx.index_path(), "\"w\"", std::string("\"") + shard + "\"",
                              "not a file name inside the checkpoint directory"}))
        << shard;
  }
  fx.set_index(R"({"weight_map":{"w":""}})");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {"not a file name"}));
}

TEST(io_CheckpointIndex, TensorMissingFromWeightMap) {
  ShardedFixture fx;
  fx.set_index(R"({"weight_map":{
      "model.embed_tokens.weight":"model-00001-of-00003.safetensors",
      "model.layers.0.self_attn.q_proj.weight":"model-00001-of-00003.safetensors",
      "model.layers.0.mlp.down_proj.weight":"model-00002-of-00003.safetensors",
      "lm_head.weight":"model-00003-of-00003.safetensors"}})");
  EXPECT_TRUE(
      throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                   {fx.index_path(), "\"model.norm.weight\"",
                    "\"model-00003-of-00003.safetensors\"", "missing from the weight_map"}));
}

TEST(io_CheckpointIndex, WeightMapNamesAbsentTensor) {
  ShardedFixture fx;
  fx.set_index(R"({"weight_map":{
      "model.embed_tokens.weight":"model-00001-of-00003.safetensors",
      "model.layers.0.self_attn.q_proj.weight":"model-00001-of-00003.safetensors",
      "model.layers.0.mlp.down_proj.weight":"model-00002-of-00003.safetensors",
      "model.layers.0.mlp.up_proj.weight":"model-00002-of-00003.safetensors",
      "lm_head.weight":"model-00003-of-00003.safetensors",
      "model.norm.weight":"model-00003-of-00003.safetensors"}})");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {fx.index_path(), "\"model.layers.0.mlp.up_proj.weight\"",
                            "\"model-00002-of-00003.safetensors\"", "does not contain it"}));
}

TEST(io_CheckpointIndex, TensorInWrongShard) {
  ShardedFixture fx;
  fx.set_index(R"({"weight_map":{
      "model.embed_tokens.weight":"model-00001-of-00003.safetensors",
      "model.layers.0.self_attn.q_proj.weight":"model-00001-of-00003.safetensors",
      "model.layers.0.mlp.down_proj.weight":"model-00001-of-00003.safetensors",
      "lm_head.weight":"model-00003-of-00003.safetensors",
      "model.norm.weight":"model-00002-of-00003.safetensors"}})");
  EXPECT_TRUE(throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat,
                           {fx.index_path(), "is in shard", "but the weight_map says"}));
}

TEST(io_CheckpointIndex, CorruptShardNamesShard) {
  ShardedFixture fx;
  const std::string shard = fx.dir.file("model-00003-of-00003.safetensors");
  write_text(shard, "not a safetensors file");
  EXPECT_TRUE(
      throws_error([&] { Checkpoint::open(fx.dir.path().string()); }, Status::kBadFormat, {shard}));
}

// --- tensor names -----------------------------------------------------------------------------

TEST(io_TensorNames, DefaultTargets) {
  const char* yes[] = {
      "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
      "model.layers.0.self_attn.v_proj.weight", "model.layers.31.self_attn.o_proj.weight",
      "model.layers.0.mlp.gate_proj.weight",    "model.layers.0.mlp.up_proj.weight",
      "model.layers.0.mlp.down_proj.weight",    "model.layers.0.self_attn.qkv_proj.weight",
      "model.layers.0.mlp.gate_up_proj.weight", "q_proj.weight",
  };
  for (const char* n : yes) EXPECT_TRUE(is_default_target(n)) << n;
  const char* no[] = {
      "model.embed_tokens.weight",
      "lm_head.weight",
      "model.norm.weight",
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.post_attention_layernorm.weight",
      "model.layers.0.self_attn.q_proj.bias",
      "model.layers.0.self_attn.q_proj.weight_scale",
      "model.layers.0.self_attn.q_proj.slide_weight",
      "model.layers.0.self_attn.xq_proj.weight",
      "model.layers.0.self_attn.q_proj",
      "model.layers.0.self_attn.out_proj.weight",
      "transformer.h.0.attn.query_key_value.weight",
      ".weight",
      "",
  };
  for (const char* n : no) EXPECT_FALSE(is_default_target(n)) << n;
}

TEST(io_TensorNames, LayerPrefix) {
  EXPECT_EQ(layer_prefix("model.layers.0.mlp.up_proj.weight"), "model.layers.0.mlp.up_proj");
  EXPECT_EQ(layer_prefix("a.weight"), "a");
  EXPECT_EQ(layer_prefix("a.bias"), "");
  EXPECT_EQ(layer_prefix("weight"), "");
  EXPECT_EQ(layer_prefix("a.weight_scale"), "");
  EXPECT_EQ(layer_prefix(""), "");
}

}  // namespace
}  // namespace slidesparse
