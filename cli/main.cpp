// `slidesparse`: thin subcommands over src/convert. All logic lives in the library; this file parses
// options, draws progress, prints tables (or JSON with --json) and maps errors to exit codes.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_cmd.hpp"
#include "convert/convert.hpp"
#include "io/atomic_file.hpp"
#include "io/mapped_file.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/tokenizer.hpp"

namespace ss = slidesparse;
using nlohmann::json;

namespace {

// Process exit codes: one per error class (docs/FORMAT.md "Exit codes").
enum ExitCode : int {
  kExitOk = 0,
  kExitNotCompliant = 1,  // verify ran and found a violation
  kExitUsage = 2,         // bad command line or option value
  kExitNotFound = 3,
  kExitIo = 4,
  kExitBadFormat = 5,
  kExitInvalidData = 6,
  kExitExists = 7,
  kExitUnsupported = 8,
  kExitInternal = 70,  // a bug in slidesparse (EX_SOFTWARE)
};

int exit_code_for(ss::Status s) {
  switch (s) {
    case ss::Status::kOk: return kExitOk;
    case ss::Status::kInvalidArgument: return kExitUsage;
    case ss::Status::kNotFound: return kExitNotFound;
    case ss::Status::kIoError: return kExitIo;
    case ss::Status::kBadFormat: return kExitBadFormat;
    case ss::Status::kInvalidData: return kExitInvalidData;
    case ss::Status::kAlreadyExists: return kExitExists;
    case ss::Status::kUnsupported: return kExitUnsupported;
    case ss::Status::kInternal: return kExitInternal;
  }
  return kExitInternal;
}

// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class Progress {
 public:
  Progress(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled && isatty(2)) {}
  ~Progress() { finish(); }
  ss::ProgressFn fn() {
    if (!enabled_) return {};
    return [this](uint64_t done, uint64_t total, const std::string& tensor) { draw(done, total, tensor); };
  }
  void finish() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  void draw(uint64_t done, uint64_t total, const std::string& tensor) {
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double frac = total ? double(done) / double(total) : 1.0;
    const int width = 24, filled = int(frac * width);
    const double secs = std::chrono::duration<double>(now - start_).count();
    std::string name = tensor.size() > 48 ? "..." + tensor.substr(tensor.size() - 45) : tensor;
    std::fprintf(stderr, "\r\033[K[%s] [%s%s] %3.0f%% %.0f/%.0f MiB %.1fs %s", label_.c_str(),
                 std::string(size_t(filled), '#').c_str(), std::string(size_t(width - filled), '.').c_str(),
                 frac * 100, double(done) / 1048576.0, double(total) / 1048576.0, secs, name.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  std::string label_;
  bool enabled_, drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_;
};

std::string human_count(double v) {
  if (v >= 1e9) return fmt::format("{:.2f} B", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f} M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f} K", v / 1e3);
  return fmt::format("{:.0f}", v);
}
std::string human_bytes(double v) {
  if (v >= 1073741824.0) return fmt::format("{:.2f} GiB", v / 1073741824.0);
  if (v >= 1048576.0) return fmt::format("{:.1f} MiB", v / 1048576.0);
  if (v >= 1024.0) return fmt::format("{:.1f} KiB", v / 1024.0);
  return fmt::format("{:.0f} B", v);
}
std::string shape_str(const json& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i].get<int64_t>());
  return out + "]";
}

// Print at most `limit` rows of a layer table (all with --verbose).
template <typename RowFn>
void print_rows(const json& rows, size_t limit, RowFn row) {
  for (size_t i = 0; i < rows.size() && i < limit; ++i) row(rows[i]);
  if (rows.size() > limit) fmt::print("  ... {} more (use --verbose to list all)\n", rows.size() - limit);
}

void print_prune(const json& r, size_t limit) {
  fmt::print("pruned {} layers: {} -> {}\n  pattern {}  method {}  precision {}\n", r["num_layers"].get<size_t>(),
             r["input"].get<std::string>(), r["output"].get<std::string>(), r["pattern"].get<std::string>(),
             r["method"].get<std::string>(), r["precision"].get<std::string>());
  fmt::print("  {:<52} {:>16} {:>6} {:>6} {:>8}\n", "layer", "shape [n, k]", "in", "out", "pruned");
  print_rows(r["layers"], limit, [](const json& l) {
    fmt::print("  {:<52} {:>16} {:>6} {:>6} {:>7.1f}%\n", l["tensor"].get<std::string>(), shape_str(l["shape"]),
               l["dtype_in"].get<std::string>(), l["dtype_out"].get<std::string>(),
               100 * l["pruned_fraction"].get<double>());
  });
  for (const auto& s : r["skipped"])
    fmt::print("  skipped {}: {}\n", s["tensor"].get<std::string>(), s["reason"].get<std::string>());
  const double total = r["params_total"].get<double>(), in_layers = r["params_in_layers"].get<double>(),
               pruned = r["params_pruned"].get<double>();
  fmt::print("  parameters: {} total, {} in pruned layers, {} set to zero ({:.1f}% of those layers)\n",
             human_count(total), human_count(in_layers), human_count(pruned),
             in_layers > 0 ? 100 * pruned / in_layers : 0.0);
  if (r["precision"].get<std::string>() == "ternary") {
    // "pruned" above counts nonzero codes the pattern removed; rounding to {-1, 0, 1} zeroes more.
    double zero = 0;
    for (const auto& l : r["layers"])
      zero += l["ternary"]["zero_fraction"].get<double>() * l["shape"][0].get<double>() * l["shape"][1].get<double>();
    fmt::print("  ternary codes: {:.1f}% zero after quantization and pruning (per-tensor scales in --json)\n",
               in_layers > 0 ? 100 * zero / in_layers : 0.0);
  }
  fmt::print("  output {}  time {:.2f} s ({} threads)\n", human_bytes(r["output_bytes"].get<double>()),
             r["seconds"].get<double>(), r["threads"].get<int>());
}

void print_slide(const json& r, size_t limit) {
  fmt::print("slid {} layers ({}): {} -> {}\n", r["num_layers"].get<size_t>(), r["pattern"].get<std::string>(),
             r["input"].get<std::string>(), r["output"].get<std::string>());
  fmt::print("  {:<52} {:>16} {:>8} {:>6} {:>9}\n", "layer", "shape [n, k]", "k'", "dtype", "k'/k");
  print_rows(r["layers"], limit, [](const json& l) {
    fmt::print("  {:<52} {:>16} {:>8} {:>6} {:>9.4f}\n", l["tensor"].get<std::string>(), shape_str(l["shape"]),
               l["k_slide"].get<int64_t>(), l["dtype"].get<std::string>(), l["expansion"].get<double>());
  });
  fmt::print("  output {}  time {:.2f} s ({} threads)\n", human_bytes(r["output_bytes"].get<double>()),
             r["seconds"].get<double>(), r["threads"].get<int>());
}

void print_verify(const json& r, size_t limit) {
  fmt::print("verify {} (pattern {}, method {}{})\n", r["path"].get<std::string>(), r["pattern"].get<std::string>(),
             r["method"].get<std::string>(),
             r["against"].get<std::string>().empty() ? "" : ", against " + r["against"].get<std::string>());
  fmt::print("  {:<52} {:>16} {:>9} {:>8} {:>7} {:>9}\n", "layer", "shape [n, k]", "sparsity", "pattern", "slide",
             "against");
  print_rows(r["layers"], limit, [](const json& l) {
    std::string slide = "-", against = "-";
    if (l.contains("slide")) {
      const auto& s = l["slide"];
      slide = s.value("twofour_ok", false) && s.value("roundtrip_ok", false) ? "ok" : "FAIL";
    }
    if (l.contains("against")) {
      const auto& a = l["against"];
      const bool over_ok = a["over_pruned_groups"].is_null() || a["over_pruned_groups"].get<int64_t>() == 0;
      against = a["mismatches"].get<int64_t>() == 0 && over_ok && a.value("scale_ok", true)
                    ? (a.contains("values") ? "ok*" : "ok")
                    : "FAIL";
    }
    fmt::print("  {:<52} {:>16} {:>8.1f}% {:>8} {:>7} {:>9}\n", l["tensor"].get<std::string>(), shape_str(l["shape"]),
               100 * l["sparsity"].get<double>(), l["pattern_ok"].get<bool>() ? "ok" : "FAIL", slide, against);
  });
  if (r["method"].get<std::string>() == "sparsegpt" && !r["against"].get<std::string>().empty())
    fmt::print("  * values updated by sparsegpt (not compared); pattern, dropped positions and group counts checked\n");
  if (r["compliant"].get<bool>()) {
    fmt::print("COMPLIANT: {} layers checked in {:.2f} s\n", r["num_layers"].get<size_t>(), r["seconds"].get<double>());
  } else {
    fmt::print("NOT COMPLIANT: {} problems\n", r["problems"].size());
    for (const auto& p : r["problems"]) fmt::print("  - {}\n", p.get<std::string>());
  }
}

void print_info(const json& r, size_t limit) {
  fmt::print("{} ({}, {} shard{}): {} tensors, {} parameters, {}\n", r["path"].get<std::string>(),
             r["kind"].get<std::string>(), r["shards"].size(), r["shards"].size() == 1 ? "" : "s",
             r["num_tensors"].get<size_t>(), human_count(r["params"].get<double>()),
             human_bytes(r["total_bytes"].get<double>()));
  for (const auto& [k, v] : r["metadata"].items()) {
    if (k == "slidesparse" && v.is_object()) {
      size_t slid = 0, ternary = 0;
      for (const auto& [name, l] : v["layers"].items()) {
        slid += l.value("k_slide", 0) > 0;
        ternary += l.value("quant", std::string()) == "ternary";
      }
      fmt::print("  slidesparse format {}: pattern {}, method {}, {} pruned layers ({} slid{})\n", v["format"].dump(),
                 v["pattern"].get<std::string>(), v["method"].get<std::string>(), v["layers"].size(), slid,
                 ternary ? fmt::format(", {} ternary", ternary) : std::string());
    } else {
      fmt::print("  metadata {}: {}\n", k, v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
  fmt::print("  {:<56} {:>6} {:>16} {:>11}\n", "tensor", "dtype", "shape", "bytes");
  print_rows(r["tensors"], limit, [](const json& t) {
    fmt::print("  {:<56} {:>6} {:>16} {:>11}\n", t["name"].get<std::string>(), t["dtype"].get<std::string>(),
               shape_str(t["shape"]), human_bytes(t["bytes"].get<double>()));
  });
  if (!r["layers"].empty()) {
    fmt::print("  {:<56} {:>9} {:>8} {:>8}\n", "layer", "sparsity", "pattern", "quant");
    print_rows(r["layers"], limit, [](const json& l) {
      fmt::print("  {:<56} {:>8.1f}% {:>8} {:>8}\n", l["tensor"].get<std::string>(), 100 * l["sparsity"].get<double>(),
                 l.contains("pattern_ok") ? (l["pattern_ok"].get<bool>() ? "ok" : "FAIL") : "-",
                 l.value("quant", std::string("-")));
    });
  }
}

void print_import_gguf(const json& r, size_t limit) {
  const json& c = r["config"];
  fmt::print("imported {} (GGUF v{}) -> {}: {} tensors as {}, {} in {:.2f} s\n", r["input"].get<std::string>(),
             r["gguf_version"].get<int>(), r["output"].get<std::string>(), r["num_tensors"].get<size_t>(),
             r["dtype"].get<std::string>(), human_bytes(r["output_bytes"].get<double>()), r["seconds"].get<double>());
  std::string types;
  for (const auto& [k, v] : r["ggml_types"].items()) types += fmt::format("{}{} x{}", types.empty() ? "" : ", ", k, v.get<int>());
  fmt::print("  ggml types: {}\n", types);
  fmt::print("  config: {} layers, hidden {}, intermediate {}, heads {}/{} kv, vocab {}, rope_theta {}, rms_eps {}, tied {}\n",
             c["num_hidden_layers"].get<int64_t>(), c["hidden_size"].get<int64_t>(), c["intermediate_size"].get<int64_t>(),
             c["num_attention_heads"].get<int64_t>(), c["num_key_value_heads"].get<int64_t>(), c["vocab_size"].get<int64_t>(),
             c["rope_theta"].dump(), c["rms_norm_eps"].dump(), c["tie_word_embeddings"].get<bool>());
  fmt::print("  {:<52} {:>6} {:>16}\n", "tensor", "ggml", "shape");
  print_rows(r["tensors"], limit, [](const json& t) {
    fmt::print("  {:<52} {:>6} {:>16}\n", t["name"].get<std::string>(), t["ggml_type"].get<std::string>(),
               shape_str(t["shape"]));
  });
}

// `tokenize`: a model directory's tokenizer over a whole text file (BOS only where the tokenizer asks
// for one, as `eval --text` does); --ids-out gets the ids as int32 little-endian, written atomically.
json tokenize_file(const std::string& model, const std::string& text_path, const std::string& ids_out, bool force) {
  if (!ids_out.empty() && !force && access(ids_out.c_str(), F_OK) == 0)
    throw ss::Error(ss::Status::kAlreadyExists, "--ids-out '" + ids_out + "' exists (use --force to replace it)");
  const ss::BpeTokenizer tok = ss::BpeTokenizer::load(model);
  struct Text {
    ss::Mapping m;
    ~Text() { ss::unmap_file(m); }
  } text{ss::map_file_readonly(text_path, "text")};
  const std::string_view body(text.m.data ? reinterpret_cast<const char*>(text.m.data) : "", text.m.size);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok.encode(body, /*add_bos=*/true);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!ids_out.empty()) {
    std::string bytes(ids.size() * 4, '\0');
    for (size_t i = 0; i < ids.size(); ++i)
      for (int b = 0; b < 4; ++b) bytes[4 * i + size_t(b)] = char(uint32_t(ids[i]) >> (8 * b) & 0xFF);
    ss::AtomicFile f(ids_out);
    f.write(bytes.data(), bytes.size());
    f.commit();
  }
  const bool bos = !ids.empty() && tok.add_bos() && ids[0] == tok.bos_id();
  return {{"model", model},     {"text", text_path}, {"text_bytes", body.size()},     {"tokens", ids.size()},
          {"bos", bos},         {"pre", tok.pre_type()}, {"vocab", tok.vocab_size()}, {"seconds", secs},
          {"ids_out", ids_out.empty() ? json(nullptr) : json(ids_out)},
          {"first_ids", std::vector<int32_t>(ids.begin(), ids.begin() + int64_t(std::min<size_t>(ids.size(), 16)))}};
}

void print_tokenize(const json& r) {
  const double bytes = r["text_bytes"].get<double>(), tokens = r["tokens"].get<double>();
  fmt::print("tokenized {}: {} bytes -> {} tokens ({:.2f} bytes/token{}) in {:.2f} s; pre-tokenizer {}, vocab {}\n",
             r["text"].get<std::string>(), r["text_bytes"].get<size_t>(), r["tokens"].get<size_t>(),
             tokens > 0 ? bytes / tokens : 0.0, r["bos"].get<bool>() ? ", BOS first" : "", r["seconds"].get<double>(),
             r["pre"].get<std::string>(), r["vocab"].get<int64_t>());
  if (!r["ids_out"].is_null()) fmt::print("  ids -> {} (int32 little-endian)\n", r["ids_out"].get<std::string>());
}

void print_synth(const json& r) {
  fmt::print("wrote {}: {} layers, hidden {}, intermediate {}, vocab {}, {} ({} tensors, {}) in {:.2f} s\n",
             r["output"].get<std::string>(), r["layers"].get<int64_t>(), r["hidden"].get<int64_t>(),
             r["intermediate"].get<int64_t>(), r["vocab"].get<int64_t>(), r["dtype"].get<std::string>(),
             r["num_tensors"].get<size_t>(), human_bytes(r["total_bytes"].get<double>()), r["seconds"].get<double>());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "slidesparse: (2N-2):2N structured sparsity on 2:4 sparse tensor cores.\n"
      "GEMM convention: Y[m,n] = X[m,k] . W[n,k]^T, W pruned along k in groups of 2N.\n"
      "Typical flow: prune --pattern 6:8 IN PRUNED; slide PRUNED SLID; verify SLID --against IN.\n"
      "Exit codes: 0 ok, 1 verify found violations, 2 usage, 3 not found, 4 I/O error,\n"
      "5 malformed file, 6 invalid data, 7 output exists, 8 unsupported, 70 internal error.",
      "slidesparse"};
  app.set_version_flag("--version", std::string("slidesparse ") + SLIDESPARSE_VERSION);
  app.require_subcommand(1);
  bool json_out = false, quiet = false, verbose = false;
  int threads = 0;
  auto add_common = [&](CLI::App* sub) {
    sub->add_flag("--json", json_out, "Print the result as one JSON object on stdout");
    sub->add_flag("-q,--quiet", quiet, "No progress bar");
    sub->add_flag("-v,--verbose", verbose, "List every layer/tensor in tables");
    sub->add_option("-j,--threads", threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  };

  std::string in, out, pattern = "6:8", method = "magnitude", calib, precision = "keep", include, exclude, against;
  double damp = 0.01;
  bool force = false;
  auto* prune = app.add_subcommand("prune", "Prune the linear layers of a checkpoint to a (2N-2):2N pattern");
  prune->add_option("--pattern", pattern, "Pattern keep:group of the (2N-2):2N family: 2:4, 4:6, 6:8, 8:10 ... 30:32")
      ->capture_default_str();
  prune->add_option("--method", method,
                    "magnitude (keep the largest |w|), wanda (|w| x input column norm) or sparsegpt (second-order "
                    "pruning with error compensation; changes kept values)")
      ->capture_default_str();
  prune->add_option("--calib", calib,
                    "Calibration file: for wanda F32 [k] tensors 'P.input_norm', for sparsegpt F32 [k, k] "
                    "'P.input_hessian' (calibrate --hessian)");
  prune->add_option("--damp", damp, "sparsegpt: Hessian dampening, H += damp * mean(diag H) * I")
      ->capture_default_str();
  prune->add_option("--precision", precision,
                    "keep (same dtype), int8 or fp8 (E4M3, per-output-channel scale in P.weight_scale), or ternary "
                    "(1.58-bit: I8 codes in {-1, 0, 1} with one per-tensor scale s = mean|w| of the unpruned weight, "
                    "q = clamp(round(w / s), -1, 1), then the pattern drops the smallest |w| among nonzero codes; "
                    "magnitude only; runs on the INT8 path)")
      ->capture_default_str();
  prune->add_option("--include", include, "RE2 regex on tensor names choosing the layers (replaces the default rule)");
  prune->add_option("--exclude", exclude, "RE2 regex on tensor names removing layers");
  prune->add_flag("-f,--force", force, "Replace OUT if it exists");
  prune->add_option("IN", in, "Input checkpoint: .safetensors file or Hugging Face directory")->required();
  prune->add_option("OUT", out, "Output path (file for a file input, directory for a directory input)")->required();
  add_common(prune);
  prune->footer(
      "Default targets: 2-D weights named *.{q,k,v,o,qkv,gate,up,gate_up,down}_proj.weight; never embeddings, "
      "norms or lm_head. Other tensors and files are copied unchanged.");

  auto* slide = app.add_subcommand("slide", "Add P.slide_weight (windowed 2:4 weight, k' columns) to a pruned checkpoint");
  slide->add_option("IN", in, "Pruned checkpoint (written by `slidesparse prune`)")->required();
  slide->add_option("OUT", out, "Output path")->required();
  slide->add_flag("-f,--force", force, "Replace OUT if it exists");
  add_common(slide);

  auto* verify = app.add_subcommand("verify", "Check pattern compliance (and with --against, kept values); exit 1 if not compliant");
  verify->add_option("FILE", in, "Pruned (optionally slid) checkpoint")->required();
  verify->add_option("--against", against, "The dense checkpoint it was pruned from");
  add_common(verify);

  auto* info = app.add_subcommand("info", "Tensors, shapes, dtypes, metadata and per-layer sparsity of a checkpoint");
  info->add_option("FILE", in, "Checkpoint file or directory")->required();
  add_common(info);

  ss::SynthOptions so;
  int64_t shards = 0;
  auto* synth = app.add_subcommand("synth", "Write a random Llama-shaped checkpoint (for demos, tests, benchmarks)");
  synth->add_option("OUT", out, "Output: a .safetensors file, or a directory with --shards N")->required();
  synth->add_option("--layers", so.layers, "Decoder layers")->capture_default_str();
  synth->add_option("--hidden", so.hidden, "Hidden size")->capture_default_str();
  synth->add_option("--intermediate", so.intermediate, "MLP intermediate size")->capture_default_str();
  synth->add_option("--vocab", so.vocab, "Vocabulary size")->capture_default_str();
  synth->add_option("--dtype", so.dtype, "bf16, f16 or f32")->capture_default_str();
  synth->add_option("--seed", so.seed, "Random seed")->capture_default_str();
  synth->add_option("--shards", shards, "Write a Hugging Face directory with this many shards (0: one file)")
      ->capture_default_str();
  synth->add_flag("-f,--force", force, "Replace OUT if it exists");
  add_common(synth);

  std::string import_dtype = "bf16";
  auto* import_gguf = app.add_subcommand("import-gguf", "Convert a llama.cpp GGUF (Llama) to a Hugging Face directory");
  import_gguf->add_option("IN", in, "Input .gguf file")->required();
  import_gguf->add_option("OUT_DIR", out, "Output directory: model.safetensors, config.json, tokenizer_gguf.json")
      ->required();
  import_gguf->add_option("--dtype", import_dtype, "Dequantized weight dtype: bf16 or f32")->capture_default_str();
  import_gguf->add_flag("-f,--force", force, "Replace OUT_DIR if it exists");
  add_common(import_gguf);

  std::string tok_model, tok_text, tok_ids_out;
  auto* tokenize = app.add_subcommand("tokenize", "Token ids of a text file with a model directory's tokenizer");
  tokenize->add_option("--model", tok_model, "Model directory with tokenizer_gguf.json (from import-gguf), or that file")
      ->required();
  tokenize->add_option("--text", tok_text, "Text file, tokenized whole (BOS only where the tokenizer asks for one)")
      ->required();
  tokenize->add_option("--ids-out", tok_ids_out, "Write the ids to this file: int32 little-endian");
  tokenize->add_flag("-f,--force", force, "Replace --ids-out if it exists");
  add_common(tokenize);

  ss::ModelRunOptions mo;
  std::string calib_out;
  auto add_model_opts = [&](CLI::App* sub) {
    sub->add_option("--model", mo.model, "Hugging Face Llama directory (config.json, model.safetensors, "
                                         "tokenizer_gguf.json), e.g. from import-gguf or prune")
        ->required();
    sub->add_option("--text", mo.text, "Text file, tokenized with the model's tokenizer");
    sub->add_option("--ids", mo.ids, "Token ids instead of --text: int32 little-endian, as `tokenize --ids-out` writes");
    sub->add_option("--ctx", mo.ctx, "Window length in tokens (non-overlapping windows)")->capture_default_str();
    sub->add_option("--max-tokens", mo.max_tokens, "Use only the first N tokens (0: all)")->capture_default_str();
  };
  auto* eval = app.add_subcommand("eval", "Perplexity of a Llama model on a text (CPU forward pass)");
  add_model_opts(eval);
  eval->add_option("--precision", mo.mode,
                   "Projections: stored (as the checkpoint holds them: float, or int8/fp8 with P.weight_scale), "
                   "int8 or fp8 (W8A8: weights quantized per channel at load, activations per token)")
      ->capture_default_str();
  eval->add_flag("--slide", mo.slide, "Run the projections through their slid 2:4 form (P.slide_weight, or slid at load)");
  eval->add_option("--pattern", mo.pattern, "Pattern for --slide when the checkpoint has no slidesparse metadata");
  eval->add_option("--device", mo.device,
                   "cpu (f32 reference forward, simulated W8A8) or gpu (every projection through SlideLinear; "
                   "CUDA builds)")
      ->capture_default_str();
  eval->add_option("--gpu-path", mo.gpu_path,
                   "GPU projections of a pruned model: sparse (slid 2:4 GEMMs), dense (the same pruned, quantized "
                   "operands on dense GEMMs) or auto (dense below the measured crossover); an unpruned model "
                   "always runs dense")
      ->capture_default_str();
  eval->add_option("--dump-logits", mo.dump_logits,
                   "Also write the first window's logits [T, vocab] as f32 little-endian to this file (for "
                   "comparisons with other implementations)");
  add_common(eval);
  eval->footer(
      "Perplexity = exp(mean NLL) over non-overlapping windows of --ctx tokens; the first token of each window is "
      "context only. The text is tokenized whole (BOS only where the tokenizer asks for one).");
  auto* calibrate = app.add_subcommand(
      "calibrate", "Per-column input norms of every projection on a calibration text, for prune --method wanda");
  add_model_opts(calibrate);
  calibrate->add_option("-o,--output", calib_out, "Output .safetensors: F32 [k] tensors 'P.input_norm'")->required();
  calibrate->add_flag("--hessian", mo.hessian,
                      "Also write each projection's input Hessian sum x x^T as F32 [k, k] 'P.input_hessian' (for "
                      "prune --method sparsegpt; ~0.5 GB for SmolLM2-135M)");
  calibrate->add_option("--sequential", mo.sequential,
                        "wanda or sparsegpt: block-sequential statistics - each layer is observed on the model whose "
                        "earlier layers are already pruned with this method and --pattern (then prune with the same "
                        "method and pattern); sparsegpt implies --hessian");
  calibrate->add_option("--pattern", mo.pattern, "With --sequential: the pattern prune will use, e.g. 6:8");
  calibrate->add_option("--damp", mo.damp, "With --sequential sparsegpt: as prune --damp")->capture_default_str();
  calibrate->add_flag("-f,--force", force, "Replace the output if it exists");
  add_common(calibrate);
  calibrate->footer(
      "Use a text disjoint from the evaluation text. norm[k] = sqrt(sum over tokens of x[t,k]^2) of the input of each "
      "q/k/v/o/gate/up/down projection, computed by the float (CPU) forward pass. Sequential calibration costs about "
      "two forward passes and keeps every window's hidden state (tokens x hidden floats) in memory.");

  ss::cli::BenchCommands bench_cmds(app, add_common);  // bench, tune (cli/bench_cmd.cpp)

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help/version or the parse error
    return rc == 0 ? kExitOk : kExitUsage;
  }

  const size_t limit = verbose ? SIZE_MAX : 12;
  try {
    json r;
    int rc = kExitOk;
    if (prune->parsed()) {
      ss::PruneOptions o;
      o.pattern = ss::Pattern::parse(pattern);
      auto m = ss::prune_method_from_name(method);
      if (!m)
        throw ss::Error(ss::Status::kInvalidArgument,
                        "--method '" + method + "' is not one of: magnitude, wanda, sparsegpt");
      o.method = *m;
      auto p = ss::precision_from_name(precision);
      if (!p)
        throw ss::Error(ss::Status::kInvalidArgument,
                        "--precision '" + precision + "' is not one of: keep, int8, fp8, ternary");
      o.precision = *p;
      if (!calib.empty() && o.method == ss::PruneMethod::kMagnitude)
        throw ss::Error(ss::Status::kInvalidArgument, "--calib is only used by --method wanda and sparsegpt");
      if (prune->count("--damp") && o.method != ss::PruneMethod::kSparseGpt)
        throw ss::Error(ss::Status::kInvalidArgument, "--damp is only used by --method sparsegpt");
      o.calib_path = calib;
      o.damp = damp;
      o.include_re = include;
      o.exclude_re = exclude;
      o.force = force;
      o.num_threads = threads;
      Progress bar("prune", !quiet);
      o.progress = bar.fn();
      r = ss::prune_checkpoint(in, out, o);
      bar.finish();
      if (!json_out) print_prune(r, limit);
    } else if (slide->parsed()) {
      ss::SlideOptions o;
      o.force = force;
      o.num_threads = threads;
      Progress bar("slide", !quiet);
      o.progress = bar.fn();
      r = ss::slide_checkpoint(in, out, o);
      bar.finish();
      if (!json_out) print_slide(r, limit);
    } else if (verify->parsed()) {
      ss::VerifyOptions o;
      o.against = against;
      o.num_threads = threads;
      Progress bar("verify", !quiet);
      o.progress = bar.fn();
      r = ss::verify_checkpoint(in, o);
      bar.finish();
      if (!json_out) print_verify(r, limit);
      rc = r["compliant"].get<bool>() ? kExitOk : kExitNotCompliant;
    } else if (info->parsed()) {
      Progress bar("info", !quiet);
      r = ss::info_checkpoint(in, bar.fn());
      bar.finish();
      if (!json_out) print_info(r, limit);
    } else if (import_gguf->parsed()) {
      ss::ImportGgufOptions o;
      o.dtype = import_dtype;
      o.force = force;
      Progress bar("import-gguf", !quiet);
      o.progress = bar.fn();
      r = ss::import_gguf(in, out, o);
      bar.finish();
      if (!json_out) print_import_gguf(r, limit);
    } else if (tokenize->parsed()) {
      r = tokenize_file(tok_model, tok_text, tok_ids_out, force);
      if (!json_out) print_tokenize(r);
    } else if (eval->parsed() || calibrate->parsed()) {
      mo.num_threads = threads;
      const bool is_eval = eval->parsed();
      const bool draw = !quiet && isatty(2);
      const auto start = std::chrono::steady_clock::now();
      auto progress = [&](int64_t done, int64_t total, double ppl) {
        if (!draw) return;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "\r\033[K[%s] %s %lld/%lld %.0fs", is_eval ? "eval" : "calibrate",
                     mo.sequential.empty() ? "window" : "layer", (long long)done,
                     (long long)total, secs);
        if (is_eval) std::fprintf(stderr, "  ppl %.4f", ppl);
        if (done == total) std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
      };
      if (is_eval) {
        r = ss::eval_model(mo, progress);
        if (!json_out)
          fmt::print("perplexity {:.4f}  ({} tokens evaluated in {} windows of {}, {:.1f} s, {:.0f} tok/s)\n  model {}  "
                     "precision {}{}\n  linears: {}\n",
                     r["ppl"].get<double>(), r["tokens_evaluated"].get<int64_t>(), r["windows"].get<int64_t>(),
                     r["ctx"].get<int64_t>(), r["seconds"].get<double>(), r["tokens_per_second"].get<double>(),
                     r["model"].get<std::string>(), r["precision"].get<std::string>(),
                     r["slide"].get<bool>() ? " (slid)" : "", r["linears"].get<std::string>());
      } else {
        r = ss::calibrate_model(mo, calib_out, force, progress);
        if (!json_out)
          fmt::print("calibrated {} projections on {} tokens ({} windows, {:.1f} s) -> {}\n", r["tensors"].get<size_t>(),
                     r["tokens"].get<int64_t>(), r["windows"].get<int64_t>(), r["seconds"].get<double>(),
                     r["output"].get<std::string>());
      }
    } else if (bench_cmds.parsed()) {
      rc = bench_cmds.run(r, json_out, threads);
    } else if (synth->parsed()) {
      so.shards = int(shards);
      so.force = force;
      Progress bar("synth", !quiet);
      so.progress = bar.fn();
      r = ss::synth_checkpoint(out, so);
      bar.finish();
      if (!json_out) print_synth(r);
    }
    if (json_out) std::cout << r.dump(2) << std::endl;
    return rc;
  } catch (const ss::Error& e) {
    std::fprintf(stderr, "slidesparse: error: %s\n", e.message().c_str());
    if (json_out) {
      std::cout << json{{"error", {{"status", ss::status_name(e.status())}, {"message", e.message()}}}}.dump(2) << std::endl;
    }
    if (e.status() == ss::Status::kInternal && e.file())
      std::fprintf(stderr, "  (at %s:%d; please report this bug)\n", e.file(), e.line());
    return exit_code_for(e.status());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "slidesparse: error: out of memory\n");
    return kExitIo;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "slidesparse: internal error: %s (please report this bug)\n", e.what());
    return kExitInternal;
  }
}
