#include "slidesparse/safetensors.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <utility>

#include "common/check.hpp"
#include "io/mapped_file.hpp"
#include "io/atomic_file.hpp"
#include "io/json_util.hpp"

namespace slidesparse {
namespace {

using json = nlohmann::json;

constexpr std::string_view kMetadataEntry = "__metadata__";
// Large enough that syscall overhead vanishes against disk bandwidth, small enough to be harmless
// next to the tensors being streamed.
constexpr size_t kWriteBufferBytes = size_t(8) << 20;

uint64_t load_u64_le(const uint8_t* p) noexcept {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void store_u64_le(uint8_t* p, uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}

// Product of the dims with every step overflow-checked; false on a negative dim or overflow.
bool checked_numel(const std::vector<int64_t>& shape, int64_t& out) noexcept {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return false;
  }
  out = n;
  return true;
}

bool checked_nbytes(const std::vector<int64_t>& shape, DType dtype, uint64_t& out) noexcept {
  int64_t n = 0;
  if (!checked_numel(shape, n)) return false;
  return !__builtin_mul_overflow(uint64_t(n), uint64_t(dtype_size(dtype)), &out);
}

std::string supported_dtype_names() {
  std::string s;
  for (int i = 0; i <= static_cast<int>(DType::kF64); ++i) {
    if (!s.empty()) s += ", ";
    s += dtype_safetensors_name(static_cast<DType>(i));
  }
  return s;
}

// A JSON integer that fits int64 (shape dims). nlohmann stores non-negative literals as
// number_unsigned and negative ones as number_integer; "2.0" is a float and never an integer here.
enum class IntCheck { kOk, kNotInteger, kNegative, kTooLarge };

IntCheck json_to_u64(const json& v, uint64_t& out) noexcept {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return IntCheck::kOk;
  }
  if (v.is_number_integer()) return v.get<int64_t>() < 0 ? IntCheck::kNegative : IntCheck::kOk;
  return IntCheck::kNotInteger;
}

std::vector<int64_t> parse_shape(const json& v, std::string_view what, std::string_view name) {
  SLIDESPARSE_CHECK(v.is_array(), Status::kBadFormat,
                    "{}: tensor {}: \"shape\" must be an array of integers, got {}", what,
                    quote_for_message(name), describe_json(v));
  std::vector<int64_t> shape;
  shape.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const json& d = v[i];
    uint64_t u = 0;
    const IntCheck c = json_to_u64(d, u);
    SLIDESPARSE_CHECK(c != IntCheck::kNotInteger, Status::kBadFormat,
                      "{}: tensor {}: \"shape\" must be an array of integers, dim {} is {}", what,
                      quote_for_message(name), i, describe_json(d));
    SLIDESPARSE_CHECK(c != IntCheck::kNegative, Status::kBadFormat,
                      "{}: tensor {}: negative shape dim {} at index {}", what,
                      quote_for_message(name), d.get<int64_t>(), i);
    SLIDESPARSE_CHECK(u <= uint64_t(std::numeric_limits<int64_t>::max()), Status::kBadFormat,
                      "{}: tensor {}: shape dim {} at index {} exceeds the int64 range", what,
                      quote_for_message(name), u, i);
    shape.push_back(int64_t(u));
  }
  return shape;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

TensorInfo parse_entry(const std::string& name, const json& e, uint64_t buffer_bytes,
                       std::string_view what) {
  const std::string qname = quote_for_message(name);
  SLIDESPARSE_CHECK(e.is_object(), Status::kBadFormat,
                    "{}: tensor {}: entry must be an object with dtype/shape/data_offsets, got {}",
                    what, qname, describe_json(e));
  for (const auto& [key, value] : e.items()) {
    (void)value;
    SLIDESPARSE_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", Status::kBadFormat,
                      "{}: tensor {}: unexpected key {} (allowed: dtype, shape, data_offsets)",
                      what, qname, quote_for_message(key));
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    SLIDESPARSE_CHECK(e.contains(key), Status::kBadFormat, "{}: tensor {}: missing \"{}\"", what,
                      qname, key);
  }

  TensorInfo t;
  t.name = name;
  const json& dt = e["dtype"];
  SLIDESPARSE_CHECK(dt.is_string(), Status::kBadFormat,
                    "{}: tensor {}: \"dtype\" must be a string, got {}", what, qname,
                    describe_json(dt));
  const auto dtype = dtype_from_safetensors_name(dt.get_ref<const std::string&>());
  SLIDESPARSE_CHECK(dtype.has_value(), Status::kBadFormat,
                    "{}: tensor {}: unknown dtype {} (supported: {})", what, qname,
                    describe_json(dt), supported_dtype_names());
  t.dtype = *dtype;
  t.shape = parse_shape(e["shape"], what, name);

  const json& off = e["data_offsets"];
  SLIDESPARSE_CHECK(off.is_array() && off.size() == 2, Status::kBadFormat,
                    "{}: tensor {}: \"data_offsets\" must be [begin, end], got {}", what, qname,
                    describe_json(off));
  uint64_t be[2] = {0, 0};
  for (size_t i = 0; i < 2; ++i) {
    SLIDESPARSE_CHECK(json_to_u64(off[i], be[i]) == IntCheck::kOk, Status::kBadFormat,
                      "{}: tensor {}: \"data_offsets\" must be two non-negative integers, "
                      "element {} is {}",
                      what, qname, i, describe_json(off[i]));
  }
  t.begin = be[0];
  t.end = be[1];
  SLIDESPARSE_CHECK(t.begin <= t.end, Status::kBadFormat,
                    "{}: tensor {}: data_offsets reversed: begin {} > end {}", what, qname, t.begin,
                    t.end);

  uint64_t expected = 0;
  SLIDESPARSE_CHECK(checked_nbytes(t.shape, t.dtype, expected), Status::kBadFormat,
                    "{}: tensor {}: shape {} of {} overflows the 64-bit byte count", what, qname,
                    shape_str(t.shape), dtype_safetensors_name(t.dtype));
  SLIDESPARSE_CHECK(
      t.end - t.begin == expected, Status::kBadFormat,
      "{}: tensor {}: data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", what, qname,
      t.begin, t.end, t.end - t.begin, shape_str(t.shape), dtype_safetensors_name(t.dtype),
      expected);
  SLIDESPARSE_CHECK(t.end <= buffer_bytes, Status::kBadFormat,
                    "{}: tensor {}: data_offsets [{}, {}] past the end of the {}-byte data buffer",
                    what, qname, t.begin, t.end, buffer_bytes);
  return t;
}

std::map<std::string, std::string> parse_metadata(const json& m, std::string_view what) {
  SLIDESPARSE_CHECK(m.is_object(), Status::kBadFormat,
                    "{}: \"__metadata__\" must be an object of strings, got {}", what,
                    describe_json(m));
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : m.items()) {
    SLIDESPARSE_CHECK(value.is_string(), Status::kBadFormat,
                      "{}: \"__metadata__\" value for key {} must be a string, got {}", what,
                      quote_for_message(key), describe_json(value));
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

}  // namespace

int64_t TensorInfo::numel() const noexcept {
  int64_t n = 0;
  // Only reachable for hand-built infos: parsed headers are validated against overflow.
  return checked_numel(shape, n) ? n : -1;
}

const TensorInfo* SafetensorsHeader::find(std::string_view name) const noexcept {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, std::string_view what) {
  SLIDESPARSE_CHECK(size >= 8, Status::kBadFormat,
                    "{}: file is {} bytes, shorter than the 8-byte header length", what, size);
  SafetensorsHeader h;
  h.header_bytes = load_u64_le(data);
  SLIDESPARSE_CHECK(h.header_bytes <= kMaxHeaderBytes, Status::kBadFormat,
                    "{}: header length {} exceeds the limit of {} bytes", what, h.header_bytes,
                    kMaxHeaderBytes);
  SLIDESPARSE_CHECK(h.header_bytes <= size - 8, Status::kBadFormat,
                    "{}: header length {} runs past the end of the {}-byte file", what,
                    h.header_bytes, size);
  h.data_offset = 8 + h.header_bytes;
  const uint64_t buffer_bytes = size - h.data_offset;

  const char* text = reinterpret_cast<const char*>(data + 8);
  const json doc = parse_json_no_duplicates(text, text + h.header_bytes, what, "header");
  SLIDESPARSE_CHECK(doc.is_object(), Status::kBadFormat, "{}: header must be a JSON object, got {}",
                    what, describe_json(doc));

  h.tensors.reserve(doc.size());
  for (const auto& [key, value] : doc.items()) {
    if (key == kMetadataEntry) {
      h.metadata = parse_metadata(value, what);
    } else {
      h.tensors.push_back(parse_entry(key, value, buffer_bytes, what));
    }
  }

  // Empty tensors sort before a non-empty one at the same offset, so a zero-length tensor lying
  // exactly between two others is legal while one inside another's bytes reads as an overlap.
  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const TensorInfo* prev = nullptr;
  for (const auto& t : h.tensors) {
    SLIDESPARSE_CHECK(t.begin >= covered, Status::kBadFormat,
                      "{}: tensor {} at [{}, {}] overlaps tensor {} at [{}, {}]", what,
                      quote_for_message(t.name), t.begin, t.end,
                      quote_for_message(prev ? prev->name : ""), prev ? prev->begin : 0,
                      prev ? prev->end : 0);
    SLIDESPARSE_CHECK(t.begin == covered, Status::kBadFormat,
                      "{}: hole of {} bytes in the data buffer at [{}, {}) before tensor {}", what,
                      t.begin - covered, covered, t.begin, quote_for_message(t.name));
    covered = t.end;
    prev = &t;
  }
  SLIDESPARSE_CHECK(covered == buffer_bytes, Status::kBadFormat,
                    "{}: tensors cover {} bytes of the {}-byte data buffer: {} trailing bytes",
                    what, covered, buffer_bytes, buffer_bytes - covered);
  return h;
}

// --- SafetensorsFile -----------------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  const Mapping m = map_file_readonly(path, "safetensors");
  SafetensorsFile f;
  f.path_ = path;
  f.map_ = m.data;
  f.size_ = m.size;
  // On a parse error `f` is destroyed on unwind, which unmaps.
  f.header_ = parse_safetensors(f.map_, size_t(f.size_), path);
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      header_(std::move(o.header_)),
      map_(std::exchange(o.map_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    unmap_file(Mapping{map_, size_});
    path_ = std::move(o.path_);
    header_ = std::move(o.header_);
    map_ = std::exchange(o.map_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  unmap_file(Mapping{map_, size_});
}

const uint8_t* SafetensorsFile::data(const TensorInfo& t) const noexcept {
  return map_ + header_.data_offset + t.begin;
}

void SafetensorsFile::release(const TensorInfo& t) const noexcept {
  if (!map_ || t.end <= t.begin) return;
  // Pages shared with the header or a neighbouring tensor may be dropped too: the mapping is
  // read-only and file-backed, so a later access simply faults them back in from the file.
  const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
  const uint64_t first = (header_.data_offset + t.begin) / page * page;
  const uint64_t last = std::min(header_.data_offset + t.end, size_);
  if (last <= first) return;
  (void)::madvise(const_cast<uint8_t*>(map_) + first, size_t(last - first), MADV_DONTNEED);
}

// --- SafetensorsWriter ---------------------------------------------------------------------

struct SafetensorsWriter::Impl {
  AtomicFile file;
  std::vector<TensorSpec> specs;
  std::vector<uint64_t> ends;  // cumulative end offset of each tensor in the data buffer
  uint64_t total = 0;          // data buffer bytes
  uint64_t pos = 0;            // data bytes accepted so far
  size_t cursor = 0;           // next tensor write() expects
  std::vector<uint8_t> buf;
  bool failed = false;
  bool committed = false;

  explicit Impl(std::string path) : file(std::move(path)) {}

  void flush() {
    if (buf.empty()) return;
    file.write(buf.data(), buf.size());
    buf.clear();
  }

  void put(const uint8_t* p, size_t n) {
    if (buf.size() + n <= kWriteBufferBytes) {
      buf.insert(buf.end(), p, p + n);
      return;
    }
    flush();
    if (n >= kWriteBufferBytes) {
      file.write(p, n);  // big chunks skip the copy
    } else {
      buf.insert(buf.end(), p, p + n);
    }
  }

  uint64_t begin_of(size_t i) const noexcept { return i == 0 ? 0 : ends[i - 1]; }

  // Moves `cursor` past tensors the byte stream has completed. An empty tensor at `pos` stays
  // current until write() names it or later bytes arrive, so write() can still address it.
  void advance() noexcept {
    while (cursor < specs.size() && ends[cursor] <= pos &&
           (ends[cursor] < pos || begin_of(cursor) < ends[cursor]))
      ++cursor;
  }
};

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                                     std::map<std::string, std::string> metadata)
    : path_(std::move(path)) {
  // Validate everything before the temporary file exists.
  std::set<std::string_view> names;
  std::vector<uint64_t> ends;
  ends.reserve(specs.size());
  uint64_t total = 0;
  for (const auto& s : specs) {
    SLIDESPARSE_CHECK(s.name != kMetadataEntry, Status::kInvalidArgument,
                      "{}: \"__metadata__\" is reserved and cannot name a tensor", path_);
    SLIDESPARSE_CHECK(names.insert(s.name).second, Status::kInvalidArgument,
                      "{}: tensor {} declared twice", path_, quote_for_message(s.name));
    SLIDESPARSE_CHECK(static_cast<int>(s.dtype) <= static_cast<int>(DType::kF64),
                      Status::kInvalidArgument, "{}: tensor {}: invalid dtype value {}", path_,
                      quote_for_message(s.name), static_cast<int>(s.dtype));
    for (size_t i = 0; i < s.shape.size(); ++i) {
      SLIDESPARSE_CHECK(s.shape[i] >= 0, Status::kInvalidArgument,
                        "{}: tensor {}: negative shape dim {} at index {}", path_,
                        quote_for_message(s.name), s.shape[i], i);
    }
    uint64_t nbytes = 0;
    SLIDESPARSE_CHECK(
        checked_nbytes(s.shape, s.dtype, nbytes) && !__builtin_add_overflow(total, nbytes, &total),
        Status::kInvalidArgument, "{}: tensor {}: shape {} of {} overflows the 64-bit byte count",
        path_, quote_for_message(s.name), shape_str(s.shape), dtype_safetensors_name(s.dtype));
    ends.push_back(total);
  }

  // Built by hand rather than through a json object so the entries keep declaration order,
  // which is also the data order (nlohmann's object would sort them by name).
  std::string header = "{";
  try {
    if (!metadata.empty()) {
      header += "\"__metadata__\":";
      header += json(metadata).dump();
    }
    uint64_t begin = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      const auto& s = specs[i];
      if (header.size() > 1) header += ',';
      header += fmt::format("{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{},{}]}}",
                            json(s.name).dump(), dtype_safetensors_name(s.dtype),
                            json(s.shape).dump(), begin, ends[i]);
      begin = ends[i];
    }
  } catch (const json::exception& e) {
    // dump() throws on strings that are not valid UTF-8.
    SLIDESPARSE_FAIL(Status::kInvalidArgument, "{}: tensor name or metadata is not valid UTF-8: {}",
                     path_, e.what());
  }
  header += '}';
  // Spaces after the JSON are valid whitespace; they align the data buffer to 8 bytes as the
  // reference implementation does, so readers may view tensors in place.
  header.append((8 - header.size() % 8) % 8, ' ');
  SLIDESPARSE_CHECK(header.size() <= kMaxHeaderBytes, Status::kInvalidArgument,
                    "{}: header of {} bytes exceeds the limit of {} bytes", path_, header.size(),
                    kMaxHeaderBytes);

  impl_ = std::make_unique<Impl>(path_);
  impl_->specs = std::move(specs);
  impl_->ends = std::move(ends);
  impl_->total = total;
  impl_->buf.reserve(size_t(std::min<uint64_t>(kWriteBufferBytes, 8 + header.size() + total)));
  uint8_t len[8];
  store_u64_le(len, header.size());
  impl_->put(len, 8);
  impl_->put(reinterpret_cast<const uint8_t*>(header.data()), header.size());
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::append(const void* bytes, size_t n) {
  Impl& w = *impl_;
  SLIDESPARSE_ASSERT(!w.committed, "{}: append after commit", path_);
  SLIDESPARSE_ASSERT(!w.failed, "{}: append after an earlier write failed", path_);
  SLIDESPARSE_ASSERT(n <= w.total - w.pos,
                     "{}: appending {} bytes at data offset {} overflows the declared {} bytes "
                     "({} tensors)",
                     path_, n, w.pos, w.total, w.specs.size());
  if (n == 0) return;
  try {
    w.put(static_cast<const uint8_t*>(bytes), n);
  } catch (...) {
    w.failed = true;
    throw;
  }
  w.pos += n;
  w.advance();
}

void SafetensorsWriter::write(std::string_view name, const void* bytes, size_t n) {
  Impl& w = *impl_;
  const size_t i = w.cursor;
  SLIDESPARSE_ASSERT(i < w.specs.size() && w.pos == w.begin_of(i),
                     "{}: write({}) at data offset {} is not at the start of a declared tensor",
                     path_, quote_for_message(name), w.pos);
  SLIDESPARSE_ASSERT(w.specs[i].name == name,
                     "{}: write({}) out of order: the next declared tensor is {}", path_,
                     quote_for_message(name), quote_for_message(w.specs[i].name));
  SLIDESPARSE_ASSERT(n == w.ends[i] - w.begin_of(i),
                     "{}: write({}) got {} bytes, the declared shape {} of {} needs {}", path_,
                     quote_for_message(name), n, shape_str(w.specs[i].shape),
                     dtype_safetensors_name(w.specs[i].dtype), w.ends[i] - w.begin_of(i));
  append(bytes, n);
  if (n == 0) {
    ++w.cursor;  // an empty tensor does not move `pos`; naming it is what completes it
    w.advance();
  }
}

void SafetensorsWriter::commit() {
  Impl& w = *impl_;
  SLIDESPARSE_ASSERT(!w.committed, "{}: commit called twice", path_);
  SLIDESPARSE_ASSERT(!w.failed, "{}: commit after an earlier write failed", path_);
  if (w.pos != w.total) {
    size_t i = 0;
    while (i < w.specs.size() && w.ends[i] <= w.pos) ++i;
    SLIDESPARSE_FAIL(Status::kInternal,
                     "internal error: {}: commit with {} of {} data bytes written; tensor {} is "
                     "incomplete",
                     path_, w.pos, w.total,
                     quote_for_message(i < w.specs.size() ? w.specs[i].name : std::string()));
  }
  try {
    w.flush();
    w.file.commit();
  } catch (...) {
    w.failed = true;
    throw;
  }
  w.committed = true;
}

void write_safetensors(const std::string& path, const std::vector<OwnedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& t : tensors) {
    uint64_t nbytes = 0;
    SLIDESPARSE_CHECK(
        checked_nbytes(t.spec.shape, t.spec.dtype, nbytes) && nbytes == t.bytes.size(),
        Status::kInvalidArgument, "{}: tensor {} has {} bytes but shape {} of {} needs {}", path,
        quote_for_message(t.spec.name), t.bytes.size(), shape_str(t.spec.shape),
        dtype_safetensors_name(t.spec.dtype), nbytes);
    specs.push_back(t.spec);
  }
  SafetensorsWriter w(path, std::move(specs), metadata);
  for (const auto& t : tensors) w.write(t.spec.name, t.bytes.data(), t.bytes.size());
  w.commit();
}

}  // namespace slidesparse
