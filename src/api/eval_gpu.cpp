// `slidesparse eval --device gpu`: the forward function of a LlamaGpuModel for the perplexity
// evaluator of src/convert/model_cmds.cpp. Compiled into the CLI only in CUDA builds (it replaces
// the weak stub there, which reports "unsupported").
#include <fmt/format.h>

#include "common/check.hpp"
#include "convert/convert.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/llama_gpu.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse {

GpuForward load_gpu_forward(const ModelRunOptions& o) {
  LlamaGpuOptions g;
  if (o.mode == "stored") g.precision = LinearPrecision::kBF16;
  else if (o.mode == "int8") g.precision = LinearPrecision::kI8;
  else if (o.mode == "fp8") g.precision = LinearPrecision::kE4M3;
  else SLIDESPARSE_FAIL(Status::kInvalidArgument, "--precision '{}' is not one of: stored, int8, fp8", o.mode);

  // The pattern: the checkpoint's slidesparse metadata (a pruned checkpoint), else --pattern.
  std::optional<Pattern> pattern;
  if (!o.pattern.empty()) pattern = Pattern::parse(o.pattern);
  const Checkpoint ck = Checkpoint::open(o.model);
  if (!ck.shards.empty()) {
    const SafetensorsFile f = SafetensorsFile::open(ck.shard_path(0));
    if (auto it = f.metadata().find(kMetadataKey); it != f.metadata().end()) {
      const SlideMetadata meta = SlideMetadata::from_json(it->second, ck.shard_path(0));
      SLIDESPARSE_CHECK(!pattern || *pattern == meta.pattern, Status::kInvalidArgument,
                        "{}: the checkpoint is pruned to {}:{}, but --pattern {} was given", o.model,
                        meta.pattern.keep(), meta.pattern.group(), o.pattern);
      pattern = meta.pattern;
      for (const auto& [layer, lf] : meta.layers)
        SLIDESPARSE_CHECK(o.mode != "stored" || lf.precision == "bf16" || lf.precision == "f16" ||
                              lf.precision == "f32",
                          Status::kInvalidArgument,
                          "{}: '{}' is stored as {}; on the GPU give --precision {} to run its codes", o.model, layer,
                          lf.precision, lf.precision == "i8" ? "int8" : "fp8");
    }
  }
  g.pattern = pattern;
  if (o.gpu_path == "sparse") {
    // An unpruned model has no sparse path: it runs dense (SlideLinear dense_only).
    g.path = pattern ? LinearPath::kSparse : LinearPath::kAuto;
  } else if (o.gpu_path == "dense") {
    g.path = pattern ? LinearPath::kDense : LinearPath::kAuto;
  } else if (o.gpu_path == "auto") {
    g.path = LinearPath::kAuto;
  } else {
    SLIDESPARSE_FAIL(Status::kInvalidArgument, "--gpu-path '{}' is not one of: sparse, dense, auto", o.gpu_path);
  }
  g.max_tokens = o.ctx;
  auto model = std::make_shared<LlamaGpuModel>(LlamaGpuModel::load(o.model, g));
  GpuForward out;
  out.vocab = model->config().vocab;
  out.describe = model->describe();
  out.load_seconds = model->load_seconds();
  out.forward = [model](const std::vector<int32_t>& w) { return model->forward(w); };
  return out;
}

}  // namespace slidesparse
