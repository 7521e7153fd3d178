// slidesparse: checkpoints (a single .safetensors file or a sharded Hugging Face directory) and
// the format contract v1 (docs/FORMAT.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slidesparse/pattern.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse {

inline constexpr const char* kMetadataKey = "slidesparse";
inline constexpr int kFormatVersion = 1;
inline constexpr const char* kIndexFileName = "model.safetensors.index.json";
inline constexpr const char* kSingleFileName = "model.safetensors";

// The value of __metadata__["slidesparse"] (a JSON string):
// {"format": 1, "pattern": "6:8", "method": "magnitude",
//  "layers": {"P": {"k": K, "precision": "bf16", "k_slide": K'}}}   (k_slide once slid)
// A ternary layer (prune --precision ternary) adds "quant": "ternary" to its entry; its precision
// must be "i8".
inline constexpr const char* kQuantTernary = "ternary";
struct LayerFormat {
  int64_t k = 0;
  std::string precision;  // dtype token of P.weight: "bf16", "f16", "f32", "i8", "e4m3"
  int64_t k_slide = 0;    // 0 until `slide` wrote P.slide_weight
  std::string quant;      // "" (as precision says) or kQuantTernary
};
struct SlideMetadata {
  int format = kFormatVersion;
  Pattern pattern = Pattern::from_n(4);
  std::string method;
  std::map<std::string, LayerFormat> layers;  // key: layer prefix P (tensor "P.weight")
  std::string to_json() const;
  static SlideMetadata from_json(std::string_view json, std::string_view what);  // kBadFormat
};

// A checkpoint on disk: one file, or a directory with model.safetensors.index.json (sharded) or a
// single model.safetensors. Opening reads and validates every header (no tensor data).
struct Checkpoint {
  std::string path;                 // as given
  bool is_directory = false;
  std::vector<std::string> shards;  // file names relative to `dir` (or the single file's name)
  std::string dir;                  // directory holding the shards
  std::vector<std::string> other_files;  // directory entries that are not shards/index (copied)
  std::string index_json;           // raw index file text ("" when not sharded)
  static Checkpoint open(const std::string& path);  // kNotFound / kBadFormat
  std::string shard_path(size_t i) const;
};

// Default targets: 2-D weights of attention/MLP projections -- names ending in
// {q,k,v,o,gate,up,down}_proj.weight and the fused qkv_proj / gate_up_proj. Never embeddings,
// norms or lm_head.
bool is_default_target(std::string_view tensor_name) noexcept;
// "P.weight" -> "P"; empty if the name does not end in ".weight".
std::string layer_prefix(std::string_view tensor_name);

}  // namespace slidesparse
