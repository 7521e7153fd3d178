#include "slidesparse/checkpoint.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/check.hpp"
#include "io/json_util.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr std::string_view kSafetensorsExt = ".safetensors";

bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SLIDESPARSE_CHECK(in.good(), Status::kIoError, "cannot open '{}' for reading: {}", path,
                    std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  SLIDESPARSE_CHECK(!in.bad(), Status::kIoError, "reading '{}' failed", path);
  return ss.str();
}

// Follows symlinks: Hugging Face cache snapshots are directories of links into a blob store.
bool is_file_or_link_to_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Shards must be plain file names in the checkpoint directory: anything with a separator could
// reach outside it ("../x", "/etc/x"), and the converter mirrors the directory flat.
void check_shard_name(const std::string& shard, const std::string& tensor,
                      const std::string& index_path) {
  SLIDESPARSE_CHECK(
      !shard.empty() && shard != "." && shard != ".." && shard.find('/') == std::string::npos &&
          shard.find('\\') == std::string::npos && shard.find('\0') == std::string::npos,
      Status::kBadFormat,
      "{}: weight_map maps tensor {} to shard {}, which is not a file name inside "
      "the checkpoint directory",
      index_path, quote_for_message(tensor), quote_for_message(shard));
}

void open_sharded(Checkpoint& c, const std::string& index_path) {
  c.index_json = read_text_file(index_path);
  const json doc = parse_json_no_duplicates(
      c.index_json.data(), c.index_json.data() + c.index_json.size(), index_path, "index");
  SLIDESPARSE_CHECK(doc.is_object(), Status::kBadFormat, "{}: index must be a JSON object, got {}",
                    index_path, describe_json(doc));
  SLIDESPARSE_CHECK(doc.contains("weight_map"), Status::kBadFormat,
                    "{}: index has no \"weight_map\"", index_path);
  const json& wm = doc["weight_map"];
  SLIDESPARSE_CHECK(wm.is_object(), Status::kBadFormat,
                    "{}: \"weight_map\" must be an object of tensor name -> shard file, got {}",
                    index_path, describe_json(wm));

  SLIDESPARSE_CHECK(!wm.empty(), Status::kBadFormat, "{}: \"weight_map\" is empty", index_path);
  std::map<std::string, std::string> weight_map;
  std::set<std::string> shard_set;
  for (const auto& [tensor, shard] : wm.items()) {
    SLIDESPARSE_CHECK(shard.is_string(), Status::kBadFormat,
                      "{}: weight_map value for tensor {} must be a shard file name, got {}",
                      index_path, quote_for_message(tensor), describe_json(shard));
    const auto& name = shard.get_ref<const std::string&>();
    check_shard_name(name, tensor, index_path);
    weight_map.emplace(tensor, name);
    shard_set.insert(name);
  }
  c.shards.assign(shard_set.begin(), shard_set.end());

  std::map<std::string, std::set<std::string>> in_shard;  // shard -> its tensors
  for (const auto& shard : c.shards) {
    const std::string path = (fs::path(c.dir) / shard).string();
    std::error_code ec;
    SLIDESPARSE_CHECK(fs::exists(path, ec), Status::kNotFound,
                      "{}: shard {} named by the weight_map does not exist at '{}'", index_path,
                      quote_for_message(shard), path);
    const SafetensorsFile f = SafetensorsFile::open(path);  // validates the header
    auto& names = in_shard[shard];
    for (const auto& t : f.tensors()) {
      const auto it = weight_map.find(t.name);
      SLIDESPARSE_CHECK(it != weight_map.end(), Status::kBadFormat,
                        "{}: tensor {} in shard {} is missing from the weight_map", index_path,
                        quote_for_message(t.name), quote_for_message(shard));
      SLIDESPARSE_CHECK(it->second == shard, Status::kBadFormat,
                        "{}: tensor {} is in shard {} but the weight_map says shard {}", index_path,
                        quote_for_message(t.name), quote_for_message(shard),
                        quote_for_message(it->second));
      names.insert(t.name);
    }
  }
  for (const auto& [tensor, shard] : weight_map) {
    SLIDESPARSE_CHECK(in_shard[shard].count(tensor) == 1, Status::kBadFormat,
                      "{}: weight_map names tensor {} in shard {}, which does not contain it",
                      index_path, quote_for_message(tensor), quote_for_message(shard));
  }
}

void list_other_files(Checkpoint& c) {
  std::set<std::string> taken(c.shards.begin(), c.shards.end());
  if (!c.index_json.empty()) taken.insert(kIndexFileName);
  std::error_code ec;
  fs::directory_iterator it(c.dir, ec);
  SLIDESPARSE_CHECK(!ec, Status::kIoError, "cannot list directory '{}': {}", c.dir, ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    SLIDESPARSE_CHECK(!ec, Status::kIoError, "cannot list directory '{}': {}", c.dir, ec.message());
    const std::string name = it->path().filename().string();
    // Subdirectories (.git, original/, ...) are not part of the safetensors checkpoint.
    if (taken.count(name) == 0 && is_file_or_link_to_file(it->path()))
      c.other_files.push_back(name);
  }
  std::sort(c.other_files.begin(), c.other_files.end());
}

// A JSON integer that fits int64, or nullopt ("8.0" is a float, not an integer).
std::optional<int64_t> json_int64(const json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  c.path = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    SLIDESPARSE_FAIL(err == ENOENT || err == ENOTDIR ? Status::kNotFound : Status::kIoError,
                     "checkpoint '{}' cannot be opened: {}", path, std::strerror(err));
  }

  if (!S_ISDIR(st.st_mode)) {
    const fs::path p(path);
    c.dir = p.has_parent_path() ? p.parent_path().string() : std::string(".");
    c.shards = {p.filename().string()};
    (void)SafetensorsFile::open(path);
    return c;
  }

  c.is_directory = true;
  c.dir = path;
  const fs::path dir(path);
  const std::string index_path = (dir / kIndexFileName).string();
  if (is_file_or_link_to_file(index_path)) {
    open_sharded(c, index_path);
  } else if (is_file_or_link_to_file(dir / kSingleFileName)) {
    c.shards = {kSingleFileName};
  } else {
    std::vector<std::string> found;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (ends_with(name, kSafetensorsExt) && is_file_or_link_to_file(it->path()))
        found.push_back(name);
    }
    SLIDESPARSE_CHECK(!ec, Status::kIoError, "cannot list directory '{}': {}", path, ec.message());
    std::sort(found.begin(), found.end());
    SLIDESPARSE_CHECK(!found.empty(), Status::kNotFound,
                      "checkpoint directory '{}' holds no {}, no {} and no *.safetensors file",
                      path, kIndexFileName, kSingleFileName);
    SLIDESPARSE_CHECK(found.size() == 1, Status::kBadFormat,
                      "checkpoint directory '{}' holds {} .safetensors files ({}) but no {} saying "
                      "how they form one model",
                      path, found.size(), fmt::join(found, ", "), kIndexFileName);
    c.shards = std::move(found);
  }
  if (c.index_json.empty()) (void)SafetensorsFile::open(c.shard_path(0));
  list_other_files(c);
  return c;
}

std::string Checkpoint::shard_path(size_t i) const {
  SLIDESPARSE_CHECK(i < shards.size(), Status::kInvalidArgument,
                    "shard index {} out of range: checkpoint '{}' has {} shards", i, path,
                    shards.size());
  return (fs::path(dir) / shards[i]).string();
}

// --- SlideMetadata -------------------------------------------------------------------------

std::string SlideMetadata::to_json() const {
  ordered_json layers_json = ordered_json::object();
  for (const auto& [prefix, l] : layers) {
    ordered_json e;
    e["k"] = l.k;
    e["precision"] = l.precision;
    if (!l.quant.empty()) e["quant"] = l.quant;
    if (l.k_slide > 0) e["k_slide"] = l.k_slide;
    layers_json[prefix] = std::move(e);
  }
  ordered_json doc;
  doc["format"] = format;
  doc["pattern"] = pattern.str();
  doc["method"] = method;
  doc["layers"] = std::move(layers_json);
  try {
    return doc.dump();
  } catch (const ordered_json::exception& e) {
    // dump() refuses strings that are not valid UTF-8 (method, layer names).
    SLIDESPARSE_FAIL(Status::kInvalidArgument, "slidesparse metadata is not valid UTF-8: {}",
                     e.what());
  }
}

SlideMetadata SlideMetadata::from_json(std::string_view text, std::string_view what) {
  const json doc = parse_json_no_duplicates(text.data(), text.data() + text.size(), what,
                                            "slidesparse metadata");
  SLIDESPARSE_CHECK(doc.is_object(), Status::kBadFormat,
                    "{}: slidesparse metadata must be a JSON object, got {}", what,
                    describe_json(doc));
  // The version is checked first: a newer file may legitimately differ in every other field.
  SLIDESPARSE_CHECK(doc.contains("format"), Status::kBadFormat,
                    "{}: slidesparse metadata has no \"format\" version", what);
  const auto format = json_int64(doc["format"]);
  SLIDESPARSE_CHECK(format.has_value(), Status::kBadFormat,
                    "{}: slidesparse metadata \"format\" must be an integer, got {}", what,
                    describe_json(doc["format"]));
  SLIDESPARSE_CHECK(*format == kFormatVersion, Status::kUnsupported,
                    "{}: slidesparse format version {} is not supported (this build reads "
                    "version {})",
                    what, *format, kFormatVersion);

  for (const auto& [key, value] : doc.items()) {
    (void)value;
    SLIDESPARSE_CHECK(key == "format" || key == "pattern" || key == "method" || key == "layers",
                      Status::kBadFormat,
                      "{}: slidesparse metadata: unexpected key {} (format {} has format, pattern, "
                      "method, layers)",
                      what, quote_for_message(key), kFormatVersion);
  }
  SlideMetadata m;
  m.format = kFormatVersion;
  for (const char* key : {"pattern", "method", "layers"}) {
    SLIDESPARSE_CHECK(doc.contains(key), Status::kBadFormat,
                      "{}: slidesparse metadata has no \"{}\"", what, key);
  }
  const json& pattern = doc["pattern"];
  SLIDESPARSE_CHECK(pattern.is_string(), Status::kBadFormat,
                    "{}: slidesparse metadata \"pattern\" must be a string like \"6:8\", got {}",
                    what, describe_json(pattern));
  try {
    m.pattern = Pattern::parse(pattern.get_ref<const std::string&>());
  } catch (const Error& e) {
    SLIDESPARSE_FAIL(Status::kBadFormat, "{}: slidesparse metadata \"pattern\": {}", what,
                     e.message());
  }
  const json& method = doc["method"];
  SLIDESPARSE_CHECK(method.is_string(), Status::kBadFormat,
                    "{}: slidesparse metadata \"method\" must be a string, got {}", what,
                    describe_json(method));
  m.method = method.get<std::string>();

  const json& layers = doc["layers"];
  SLIDESPARSE_CHECK(layers.is_object(), Status::kBadFormat,
                    "{}: slidesparse metadata \"layers\" must be an object, got {}", what,
                    describe_json(layers));
  for (const auto& [prefix, e] : layers.items()) {
    const std::string qp = quote_for_message(prefix);
    SLIDESPARSE_CHECK(!prefix.empty(), Status::kBadFormat,
                      "{}: slidesparse metadata: empty layer name", what);
    SLIDESPARSE_CHECK(e.is_object(), Status::kBadFormat,
                      "{}: slidesparse metadata: layer {} must be an object, got {}", what, qp,
                      describe_json(e));
    for (const auto& [key, value] : e.items()) {
      (void)value;
      SLIDESPARSE_CHECK(key == "k" || key == "precision" || key == "k_slide" || key == "quant",
                        Status::kBadFormat,
                        "{}: slidesparse metadata: layer {}: unexpected key {} (allowed: k, "
                        "precision, quant, k_slide)",
                        what, qp, quote_for_message(key));
    }
    LayerFormat l;
    SLIDESPARSE_CHECK(e.contains("k"), Status::kBadFormat,
                      "{}: slidesparse metadata: layer {} has no \"k\"", what, qp);
    const auto k = json_int64(e["k"]);
    SLIDESPARSE_CHECK(
        k.has_value() && *k > 0, Status::kBadFormat,
        "{}: slidesparse metadata: layer {}: \"k\" must be a positive integer, got {}", what, qp,
        describe_json(e["k"]));
    l.k = *k;
    SLIDESPARSE_CHECK(e.contains("precision"), Status::kBadFormat,
                      "{}: slidesparse metadata: layer {} has no \"precision\"", what, qp);
    const json& precision = e["precision"];
    SLIDESPARSE_CHECK(precision.is_string() &&
                          dtype_from_token(precision.get_ref<const std::string&>()).has_value(),
                      Status::kBadFormat,
                      "{}: slidesparse metadata: layer {}: \"precision\" must be a dtype token "
                      "(bf16, f16, f32, i8, e4m3, ...), got {}",
                      what, qp, describe_json(precision));
    l.precision = precision.get<std::string>();
    if (e.contains("k_slide")) {
      const auto ks = json_int64(e["k_slide"]);
      SLIDESPARSE_CHECK(ks.has_value() && *ks >= 0, Status::kBadFormat,
                        "{}: slidesparse metadata: layer {}: \"k_slide\" must be a non-negative "
                        "integer, got {}",
                        what, qp, describe_json(e["k_slide"]));
      l.k_slide = *ks;
    }
    if (e.contains("quant")) {
      // The only quantization a layer may name: per-tensor ternary codes stored as I8.
      SLIDESPARSE_CHECK(e["quant"].is_string() && e["quant"].get<std::string>() == kQuantTernary,
                        Status::kBadFormat,
                        "{}: slidesparse metadata: layer {}: \"quant\" must be \"{}\", got {}", what, qp,
                        kQuantTernary, describe_json(e["quant"]));
      SLIDESPARSE_CHECK(l.precision == "i8", Status::kBadFormat,
                        "{}: slidesparse metadata: layer {}: a \"{}\" layer must have precision \"i8\", got "
                        "\"{}\"",
                        what, qp, kQuantTernary, l.precision);
      l.quant = kQuantTernary;
    }
    m.layers.emplace(prefix, std::move(l));
  }
  return m;
}

// --- Tensor naming -------------------------------------------------------------------------

bool is_default_target(std::string_view name) noexcept {
  // Llama/Mistral/Qwen-style attention and MLP projections, plus the fused variants some
  // checkpoints use. Matching whole name components keeps "xq_proj" or "lm_head" out, and
  // embeddings, norms and lm_head never end in these.
  static constexpr std::string_view kTargets[] = {
      "q_proj",  "k_proj",    "v_proj",   "o_proj",       "gate_proj",
      "up_proj", "down_proj", "qkv_proj", "gate_up_proj",
  };
  constexpr std::string_view kWeight = ".weight";
  if (!ends_with(name, kWeight)) return false;
  const std::string_view module = name.substr(0, name.size() - kWeight.size());
  for (std::string_view t : kTargets) {
    if (module == t) return true;
    if (module.size() > t.size() && ends_with(module, t) &&
        module[module.size() - t.size() - 1] == '.')
      return true;
  }
  return false;
}

std::string layer_prefix(std::string_view name) {
  constexpr std::string_view kWeight = ".weight";
  if (!ends_with(name, kWeight)) return {};
  return std::string(name.substr(0, name.size() - kWeight.size()));
}

}  // namespace slidesparse
