#include "slidesparse/gguf.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/check.hpp"
#include "io/mapped_file.hpp"
#include "io/json_util.hpp"
#include "slidesparse/types.hpp"

namespace slidesparse {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32

// Fixed block layouts (ggml-common.h). Dequantizers exist for the types real Llama GGUFs use for
// weights; the other known types are parsed and sized so files holding them still open.
struct TypeRow {
  uint32_t id;
  GgmlTypeTraits traits;
};
constexpr TypeRow kTypes[] = {
    {0, {"F32", 1, 4, true}},        {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 18, true}},     {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, true}},     {7, {"Q5_1", 32, 24, true}},
    {8, {"Q8_0", 32, 34, true}},     {9, {"Q8_1", 32, 36, false}},
    {10, {"Q2_K", 256, 84, false}},  {11, {"Q3_K", 256, 110, false}},
    {12, {"Q4_K", 256, 144, false}}, {13, {"Q5_K", 256, 176, false}},
    {14, {"Q6_K", 256, 210, true}},  {15, {"Q8_K", 256, 292, false}},
    {24, {"I8", 1, 1, false}},       {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},      {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, true}},       {30, {"BF16", 1, 2, true}},
};

std::string supported_type_names() {
  std::string s;
  for (const auto& r : kTypes) s += std::string(s.empty() ? "" : ", ") + r.traits.name;
  return s;
}

// Bounds-checked little-endian reader over the file image. Every read names what it was reading.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, std::string_view what) : p_(data), size_(size), what_(what) {}
  uint64_t pos() const noexcept { return pos_; }
  uint64_t remaining() const noexcept { return size_ - pos_; }
  std::string_view what() const noexcept { return what_; }

  void need(uint64_t n, std::string_view item) const {
    SLIDESPARSE_CHECK(n <= remaining(), Status::kBadFormat,
                      "{}: truncated: {} needs {} bytes at offset {}, only {} left", what_, item, n,
                      pos_, remaining());
  }
  uint64_t uint(int bytes, std::string_view item) {
    need(uint64_t(bytes), item);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p_[pos_ + size_t(i)];
    pos_ += uint64_t(bytes);
    return v;
  }
  uint32_t u32(std::string_view item) { return uint32_t(uint(4, item)); }
  uint64_t u64(std::string_view item) { return uint(8, item); }
  std::string str(std::string_view item) {
    const uint64_t n = u64(item);
    SLIDESPARSE_CHECK(n <= remaining(), Status::kBadFormat,
                      "{}: {}: string of {} bytes at offset {} runs past the end of the file ({} "
                      "bytes left)",
                      what_, item, n, pos_ - 8, remaining());
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string_view what_;
};

// Smallest encoding of one value of each type: bounds array counts before allocating.
uint64_t min_value_bytes(GgufValueType t) noexcept {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    case GgufValueType::kString: return 8;
    case GgufValueType::kArray: return 12;
  }
  return 1;
}

bool known_value_type(uint32_t t) noexcept { return t <= 12; }

float f32_from_bits(uint32_t bits) noexcept {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
double f64_from_bits(uint64_t bits) noexcept {
  double f;
  std::memcpy(&f, &bits, 8);
  return f;
}

GgufValue read_value(Cursor& c, GgufValueType t, const std::string& key, int depth) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufValueType::kU8: v.u = c.uint(1, key); break;
    case GgufValueType::kU16: v.u = c.uint(2, key); break;
    case GgufValueType::kU32: v.u = c.uint(4, key); break;
    case GgufValueType::kU64: v.u = c.uint(8, key); break;
    case GgufValueType::kI8: v.i = int8_t(uint8_t(c.uint(1, key))); break;
    case GgufValueType::kI16: v.i = int16_t(uint16_t(c.uint(2, key))); break;
    case GgufValueType::kI32: v.i = int32_t(uint32_t(c.uint(4, key))); break;
    case GgufValueType::kI64: v.i = int64_t(c.uint(8, key)); break;
    case GgufValueType::kF32: v.f = f32_from_bits(uint32_t(c.uint(4, key))); break;
    case GgufValueType::kF64: v.f = f64_from_bits(c.uint(8, key)); break;
    case GgufValueType::kBool: {
      const uint64_t b = c.uint(1, key);
      SLIDESPARSE_CHECK(b <= 1, Status::kBadFormat, "{}: key {}: bool value {} is not 0 or 1",
                        c.what(), quote_for_message(key), b);
      v.b = b == 1;
      break;
    }
    case GgufValueType::kString: v.s = c.str(key); break;
    case GgufValueType::kArray: {
      SLIDESPARSE_CHECK(depth < kMaxGgufArrayDepth, Status::kBadFormat,
                        "{}: key {}: arrays nested deeper than {} levels", c.what(),
                        quote_for_message(key), kMaxGgufArrayDepth);
      const uint32_t et = c.u32(key);
      SLIDESPARSE_CHECK(known_value_type(et), Status::kBadFormat,
                        "{}: key {}: unknown array element type {} (valid: 0..12)", c.what(),
                        quote_for_message(key), et);
      v.elem_type = GgufValueType(et);
      const uint64_t n = c.u64(key);
      // Every element occupies at least min_value_bytes: a count that cannot fit is rejected
      // before anything is allocated (and the product cannot overflow: both are bounded).
      const uint64_t min_bytes = min_value_bytes(v.elem_type);
      SLIDESPARSE_CHECK(n <= c.remaining() / min_bytes, Status::kBadFormat,
                        "{}: key {}: array of {} {} elements cannot fit in the {} bytes left",
                        c.what(), quote_for_message(key), n, gguf_value_type_name(v.elem_type),
                        c.remaining());
      v.items.reserve(size_t(n));
      for (uint64_t i = 0; i < n; ++i) v.items.push_back(read_value(c, v.elem_type, key, depth + 1));
      break;
    }
  }
  return v;
}

uint16_t load_u16(const uint8_t* p) noexcept { return uint16_t(p[0] | (p[1] << 8)); }

// --- dequantizers: one block at a time, layouts from ggml-common.h -------------------------
// Q4_0: f16 d, 16 bytes of nibbles; element j (j < 16) is the low nibble of byte j, element
// j + 16 its high nibble; x = (q - 8) * d.
void dq_q4_0(const uint8_t* b, float* y) {
  const float d = f16_to_f32(load_u16(b));
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = float(int(qs[j] & 0x0F) - 8) * d;
    y[j + 16] = float(int(qs[j] >> 4) - 8) * d;
  }
}
// Q4_1: f16 d, f16 m, 16 bytes of nibbles (same order as Q4_0); x = q * d + m.
void dq_q4_1(const uint8_t* b, float* y) {
  const float d = f16_to_f32(load_u16(b)), m = f16_to_f32(load_u16(b + 2));
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = float(qs[j] & 0x0F) * d + m;
    y[j + 16] = float(qs[j] >> 4) * d + m;
  }
}
// Q5_0 / Q5_1: as Q4_0 / Q4_1 plus a u32 of fifth bits: bit j for element j, bit j + 16 for
// element j + 16. Q5_0 subtracts 16.
void dq_q5(const uint8_t* b, float* y, bool has_min) {
  const float d = f16_to_f32(load_u16(b));
  const float m = has_min ? f16_to_f32(load_u16(b + 2)) : 0.0f;
  const uint8_t* qhp = b + (has_min ? 4 : 2);
  const uint32_t qh = uint32_t(qhp[0]) | (uint32_t(qhp[1]) << 8) | (uint32_t(qhp[2]) << 16) |
                      (uint32_t(qhp[3]) << 24);
  const uint8_t* qs = qhp + 4;
  const int offset = has_min ? 0 : 16;
  for (int j = 0; j < 16; ++j) {
    const int lo = int(qs[j] & 0x0F) | int(((qh >> j) & 1u) << 4);
    const int hi = int(qs[j] >> 4) | int(((qh >> (j + 16)) & 1u) << 4);
    y[j] = float(lo - offset) * d + m;
    y[j + 16] = float(hi - offset) * d + m;
  }
}
// Q8_0: f16 d, 32 int8; x = q * d.
void dq_q8_0(const uint8_t* b, float* y) {
  const float d = f16_to_f32(load_u16(b));
  for (int j = 0; j < 32; ++j) y[j] = float(int8_t(b[2 + j])) * d;
}
// Q6_K (256 elements): ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] (one per 16
// elements), f16 d; x = d * scale * (q - 32). Two halves of 128; within a half, element
// l + 32 * r (l < 32, r < 4) takes its low bits from ql[l + 32 * (r & 1)] (low nibble for r < 2,
// high for r >= 2) and its high bits from qh[l] >> (2 * r), and scale index l / 16 + 2 * r.
void dq_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16_to_f32(load_u16(b + 208));
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = int((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = int((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * float(sc[is + 0]) * float(q1);
      y[l + 32] = d * float(sc[is + 2]) * float(q2);
      y[l + 64] = d * float(sc[is + 4]) * float(q3);
      y[l + 96] = d * float(sc[is + 6]) * float(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) noexcept {
  switch (t) {
    case GgufValueType::kU8: return "uint8";
    case GgufValueType::kI8: return "int8";
    case GgufValueType::kU16: return "uint16";
    case GgufValueType::kI16: return "int16";
    case GgufValueType::kU32: return "uint32";
    case GgufValueType::kI32: return "int32";
    case GgufValueType::kF32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kU64: return "uint64";
    case GgufValueType::kI64: return "int64";
    case GgufValueType::kF64: return "float64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const noexcept {
  switch (type) {
    case GgufValueType::kU8: case GgufValueType::kU16: case GgufValueType::kU32: case GgufValueType::kU64:
    case GgufValueType::kI8: case GgufValueType::kI16: case GgufValueType::kI32: case GgufValueType::kI64:
      return true;
    default:
      return false;
  }
}

std::optional<uint64_t> GgufValue::as_uint() const noexcept {
  switch (type) {
    case GgufValueType::kU8: case GgufValueType::kU16: case GgufValueType::kU32: case GgufValueType::kU64:
      return u;
    case GgufValueType::kI8: case GgufValueType::kI16: case GgufValueType::kI32: case GgufValueType::kI64:
      if (i >= 0) return uint64_t(i);
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::optional<double> GgufValue::as_double() const noexcept {
  if (is_float()) return f;
  if (!is_integer()) return std::nullopt;
  if (auto v = as_uint()) return double(*v);
  return double(i);
}

nlohmann::json GgufValue::to_json() const {
  switch (type) {
    case GgufValueType::kU8: case GgufValueType::kU16: case GgufValueType::kU32: case GgufValueType::kU64:
      return u;
    case GgufValueType::kI8: case GgufValueType::kI16: case GgufValueType::kI32: case GgufValueType::kI64:
      return i;
    case GgufValueType::kF32: case GgufValueType::kF64: return f;
    case GgufValueType::kBool: return b;
    case GgufValueType::kString: return s;
    case GgufValueType::kArray: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& it : items) a.push_back(it.to_json());
      return a;
    }
  }
  return nullptr;
}

const GgmlTypeTraits* ggml_type_traits(uint32_t type_id) noexcept {
  for (const auto& r : kTypes)
    if (r.id == type_id) return &r.traits;
  return nullptr;
}

std::string ggml_type_name(uint32_t type_id) {
  const auto* t = ggml_type_traits(type_id);
  return t ? t->name : fmt::format("type {}", type_id);
}

std::vector<int64_t> GgufTensorInfo::shape() const {
  return std::vector<int64_t>(ne.rbegin(), ne.rend());
}

const GgufTensorInfo* GgufHeader::find(std::string_view name) const noexcept {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const GgufValue* GgufHeader::value(std::string_view key) const noexcept {
  const auto it = metadata.find(std::string(key));
  return it == metadata.end() ? nullptr : &it->second;
}

GgufHeader parse_gguf(const uint8_t* data, size_t size, std::string_view what) {
  Cursor c(data, size, what);
  GgufHeader h;
  SLIDESPARSE_CHECK(size >= 24, Status::kBadFormat,
                    "{}: file is {} bytes, shorter than the 24-byte GGUF header", what, size);
  const uint32_t magic = c.u32("magic");
  SLIDESPARSE_CHECK(magic == kGgufMagic, Status::kBadFormat,
                    "{}: bad magic 0x{:08x}: not a GGUF file (expected \"GGUF\")", what, magic);
  h.version = c.u32("version");
  SLIDESPARSE_CHECK(h.version == 2 || h.version == 3, Status::kBadFormat,
                    "{}: GGUF version {} is not supported (supported: 2, 3)", what, h.version);
  const uint64_t n_tensors = c.u64("tensor count");
  const uint64_t n_kv = c.u64("metadata count");
  // Smallest key/value: 8-byte empty key + 4-byte type + 1-byte value; smallest tensor info:
  // 8-byte name + 4 + 8 (one dim) + 4 + 8.
  SLIDESPARSE_CHECK(n_kv <= c.remaining() / 13, Status::kBadFormat,
                    "{}: metadata count {} cannot fit in the {} bytes left", what, n_kv, c.remaining());
  SLIDESPARSE_CHECK(n_tensors <= c.remaining() / 32, Status::kBadFormat,
                    "{}: tensor count {} cannot fit in the {} bytes left", what, n_tensors,
                    c.remaining());

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.str(fmt::format("metadata key #{}", k));
    const uint32_t t = c.u32(key);
    SLIDESPARSE_CHECK(known_value_type(t), Status::kBadFormat,
                      "{}: key {}: unknown value type {} (valid: 0..12)", what,
                      quote_for_message(key), t);
    GgufValue v = read_value(c, GgufValueType(t), key, 0);
    SLIDESPARSE_CHECK(!h.metadata.count(key), Status::kBadFormat, "{}: duplicate metadata key {}",
                      what, quote_for_message(key));
    h.metadata_order.push_back(key);
    h.metadata.emplace(std::move(key), std::move(v));
  }

  if (const GgufValue* a = h.value("general.alignment")) {
    SLIDESPARSE_CHECK(a->type == GgufValueType::kU32, Status::kBadFormat,
                      "{}: general.alignment must be uint32, got {}", what,
                      gguf_value_type_name(a->type));
    SLIDESPARSE_CHECK(a->u != 0 && (a->u & (a->u - 1)) == 0, Status::kBadFormat,
                      "{}: general.alignment {} is not a power of two", what, a->u);
    h.alignment = uint32_t(a->u);
  }

  h.tensors.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.str(fmt::format("tensor name #{}", k));
    const std::string qname = quote_for_message(t.name);
    const uint32_t n_dims = c.u32(t.name);
    SLIDESPARSE_CHECK(n_dims >= 1 && n_dims <= uint32_t(kGgufMaxDims), Status::kBadFormat,
                      "{}: tensor {}: n_dims {} outside 1..{}", what, qname, n_dims, kGgufMaxDims);
    t.numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.u64(t.name);
      SLIDESPARSE_CHECK(ne >= 1 && ne <= uint64_t(std::numeric_limits<int64_t>::max()),
                        Status::kBadFormat, "{}: tensor {}: dim {} is {} (must be 1..2^63-1)", what,
                        qname, d, ne);
      SLIDESPARSE_CHECK(!__builtin_mul_overflow(t.numel, ne, &t.numel) &&
                            t.numel <= uint64_t(std::numeric_limits<int64_t>::max()),
                        Status::kBadFormat, "{}: tensor {}: element count overflows", what, qname);
      t.ne.push_back(ne);
    }
    const uint32_t type_id = c.u32(t.name);
    const GgmlTypeTraits* tr = ggml_type_traits(type_id);
    SLIDESPARSE_CHECK(tr != nullptr, Status::kUnsupported,
                      "{}: tensor {}: unknown ggml type id {} (supported: {})", what, qname, type_id,
                      supported_type_names());
    t.type = GgmlType(type_id);
    t.offset = c.u64(t.name);
    SLIDESPARSE_CHECK(t.ne[0] % tr->block_elems == 0, Status::kBadFormat,
                      "{}: tensor {}: row length ne[0] = {} is not a multiple of the {} block size {}",
                      what, qname, t.ne[0], tr->name, tr->block_elems);
    SLIDESPARSE_CHECK(t.offset % h.alignment == 0, Status::kBadFormat,
                      "{}: tensor {}: offset {} is not a multiple of the alignment {}", what, qname,
                      t.offset, h.alignment);
    // numel / block_elems * block_bytes <= numel * 292 / 1 < 2^63 * 292: check the multiply.
    uint64_t nbytes = 0;
    SLIDESPARSE_CHECK(!__builtin_mul_overflow(t.numel / tr->block_elems, uint64_t(tr->block_bytes), &nbytes),
                      Status::kBadFormat, "{}: tensor {}: byte size overflows", what, qname);
    t.begin = t.offset;  // made absolute below, once the data section start is known
    t.end = nbytes;      // temporarily the size
    SLIDESPARSE_CHECK(h.find(t.name) == nullptr, Status::kBadFormat, "{}: duplicate tensor name {}",
                      what, qname);
    h.tensors.push_back(std::move(t));
  }

  const uint64_t header_end = c.pos();
  const uint64_t pad = (h.alignment - header_end % h.alignment) % h.alignment;
  h.data_offset = header_end + pad;
  // A file with no tensors may end right after the header (no padding).
  SLIDESPARSE_CHECK(h.tensors.empty() || h.data_offset <= size, Status::kBadFormat,
                    "{}: data section at {} starts past the end of the {}-byte file", what,
                    h.data_offset, size);
  for (auto& t : h.tensors) {
    const uint64_t nbytes = t.end;
    SLIDESPARSE_CHECK(t.offset <= size - std::min<uint64_t>(size, h.data_offset) &&
                          nbytes <= size - h.data_offset - t.offset,
                      Status::kBadFormat,
                      "{}: tensor {}: {} bytes at data offset {} run past the end of the file ({} "
                      "data bytes)",
                      what, quote_for_message(t.name), nbytes, t.offset, size - h.data_offset);
    t.begin = h.data_offset + t.offset;
    t.end = t.begin + nbytes;
  }
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : h.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    SLIDESPARSE_CHECK(by_offset[i - 1]->end <= by_offset[i]->begin, Status::kBadFormat,
                      "{}: tensors {} [{}, {}) and {} [{}, {}) overlap", what,
                      quote_for_message(by_offset[i - 1]->name), by_offset[i - 1]->begin,
                      by_offset[i - 1]->end, quote_for_message(by_offset[i]->name),
                      by_offset[i]->begin, by_offset[i]->end);
  }
  return h;
}

void dequantize_to_f32(GgmlType type, const uint8_t* src, uint64_t count, float* dst) {
  const GgmlTypeTraits* tr = ggml_type_traits(uint32_t(type));
  SLIDESPARSE_CHECK(tr != nullptr, Status::kUnsupported, "dequantize: unknown ggml type id {}",
                    uint32_t(type));
  SLIDESPARSE_CHECK(tr->dequantizable, Status::kUnsupported,
                    "dequantize: ggml type {} has no dequantizer (supported: F32, F16, BF16, F64, "
                    "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q6_K)",
                    tr->name);
  SLIDESPARSE_CHECK(count % tr->block_elems == 0, Status::kInvalidArgument,
                    "dequantize: {} elements is not a whole number of {} blocks of {}", count,
                    tr->name, tr->block_elems);
  const uint64_t blocks = count / tr->block_elems;
  for (uint64_t bi = 0; bi < blocks; ++bi) {
    const uint8_t* b = src + bi * tr->block_bytes;
    float* y = dst + bi * tr->block_elems;
    switch (type) {
      case GgmlType::kF32: std::memcpy(y, b, 4); break;
      case GgmlType::kF16: *y = f16_to_f32(load_u16(b)); break;
      case GgmlType::kBF16: *y = bf16_to_f32(load_u16(b)); break;
      case GgmlType::kF64: {
        double v;
        std::memcpy(&v, b, 8);
        *y = float(v);
        break;
      }
      case GgmlType::kQ4_0: dq_q4_0(b, y); break;
      case GgmlType::kQ4_1: dq_q4_1(b, y); break;
      case GgmlType::kQ5_0: dq_q5(b, y, false); break;
      case GgmlType::kQ5_1: dq_q5(b, y, true); break;
      case GgmlType::kQ8_0: dq_q8_0(b, y); break;
      case GgmlType::kQ6_K: dq_q6_k(b, y); break;
      default: SLIDESPARSE_FAIL(Status::kInternal, "internal error: no dequantizer for {}", tr->name);
    }
  }
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& t) const {
  std::vector<float> out(size_t(t.numel));
  dequantize_to_f32(t.type, data(t), t.numel, out.data());
  return out;
}

GgufFile GgufFile::open(const std::string& path) {
  const Mapping m = map_file_readonly(path, "GGUF");
  GgufFile f;
  f.path_ = path;
  f.map_ = m.data;
  f.size_ = m.size;
  // On a parse error `f` is destroyed on unwind, which unmaps.
  f.header_ = parse_gguf(f.map_, size_t(f.size_), path);
  return f;
}

GgufFile::GgufFile(GgufFile&& o) noexcept
    : path_(std::move(o.path_)), header_(std::move(o.header_)), map_(o.map_), size_(o.size_) {
  o.map_ = nullptr;
  o.size_ = 0;
}

GgufFile& GgufFile::operator=(GgufFile&& o) noexcept {
  if (this != &o) {
    unmap_file(Mapping{map_, size_});
    path_ = std::move(o.path_);
    header_ = std::move(o.header_);
    map_ = o.map_;
    size_ = o.size_;
    o.map_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

GgufFile::~GgufFile() {
  unmap_file(Mapping{map_, size_});
}

}  // namespace slidesparse
