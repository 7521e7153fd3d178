// The model shapes of the brief (BRIEF section 5) as data: per decoder layer, (n, k) of the four
// linears, Y[m,n] = X[m,k] . W[n,k]^T. CPU-only (no CUDA): the CLI validates --models against it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slidesparse::bench {

struct Layer {
  const char* name;
  int64_t n, k;
  bool bias;  // Qwen2.5's qkv projection carries a bias
};
struct Model {
  std::string name;
  std::vector<Layer> layers;
  int decoder_layers;  // how many times the four linears repeat in the model (suite load)
};

inline const std::vector<Model>& models() {
  static const std::vector<Model> m = {
      {"llama3.2-1b",
       {{"qkv", 3072, 2048, false}, {"o", 2048, 2048, false}, {"gate_up", 16384, 2048, false}, {"down", 2048, 8192, false}}, 16},
      {"llama3.2-3b",
       {{"qkv", 5120, 3072, false}, {"o", 3072, 3072, false}, {"gate_up", 16384, 3072, false}, {"down", 3072, 8192, false}}, 28},
      {"bitnet-2b",
       {{"qkv", 3840, 2560, false}, {"o", 2560, 2560, false}, {"gate_up", 13824, 2560, false}, {"down", 2560, 6912, false}}, 30},
      {"qwen2.5-7b",
       {{"qkv", 4608, 3584, true}, {"o", 3584, 3584, false}, {"gate_up", 37888, 3584, false}, {"down", 3584, 18944, false}}, 28},
      {"qwen2.5-14b",
       {{"qkv", 7168, 5120, true}, {"o", 5120, 5120, false}, {"gate_up", 27648, 5120, false}, {"down", 5120, 13824, false}}, 48},
      {"llama3-8b",
       {{"qkv", 6144, 4096, false}, {"o", 4096, 4096, false}, {"gate_up", 28672, 4096, false}, {"down", 4096, 14336, false}}, 32},
  };
  return m;
}

inline const Model* find_model(const std::string& name) {
  for (const auto& m : models())
    if (m.name == name) return &m;
  return nullptr;
}

}  // namespace slidesparse::bench
