// Shared helpers for the cli_* tests: a per-test temporary directory, running the built
// `slidesparse` binary with stdout/stderr/exit code captured, hand-built safetensors images, and
// small readers that turn a written tensor back into numbers. Everything here is deliberately
// independent of src/convert (the code under test); valid files are written with the IO library's
// write_safetensors, malformed ones byte by byte.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reference.hpp"
#include "slidesparse/safetensors.hpp"
#include "slidesparse/types.hpp"
#include "temp_dir.hpp"

extern char** environ;

namespace slidesparse::clitest {

namespace fs = std::filesystem;
using nlohmann::json;

inline const char* cli_path() { return SLIDESPARSE_CLI_PATH; }

using slidesparse::testing::TempDir;

// Sorted names in a directory (hidden ones included).
inline std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}
inline std::vector<std::string> hidden_entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& n : entries(dir))
    if (!n.empty() && n[0] == '.') out.push_back(n);
  return out;
}

inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// ---- running the CLI ----------------------------------------------------------------------

struct CliResult {
  int code = -1;  // exit status; 128+signal when killed by a signal
  std::string out, err;
  std::string cmd;
  json out_json() const { return json::parse(out); }
};
inline std::ostream& operator<<(std::ostream& os, const CliResult& r) {
  return os << "$ " << r.cmd << "\n[exit " << r.code << "]\n[stdout]\n"
            << r.out.substr(0, 4000) << "\n[stderr]\n"
            << r.err.substr(0, 4000);
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Captured output goes to files in a private directory (not the test directory, whose contents
// the tests inspect), which also avoids pipe deadlocks on large outputs.
inline CliResult run_cli(const std::vector<std::string>& args) {
  static const fs::path cap_dir = [] {
    fs::path p = fs::temp_directory_path() / ("slidesparse_cli_capture_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  static int counter = 0;
  const std::string out_path = (cap_dir / ("out" + std::to_string(counter))).string();
  const std::string err_path = (cap_dir / ("err" + std::to_string(counter++))).string();

  std::vector<std::string> argv_s = {cli_path()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  CliResult r;
  r.cmd = "slidesparse " + join(args);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn(" << argv[0] << ") failed: " << std::strerror(rc);
    return r;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  std::error_code ec;
  fs::remove(out_path, ec);
  fs::remove(err_path, ec);
  return r;
}

// ---- bytes and files ----------------------------------------------------------------------

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}
inline void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// 8-byte little-endian header length + header text + data: the safetensors layout, by hand.
// Token id files for `eval --ids` / `calibrate --ids`: int32 little-endian.
inline std::vector<int32_t> random_ids(int64_t count, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(count));
  for (auto& t : ids) t = int32_t(rng() % uint64_t(vocab));
  return ids;
}
inline void write_ids(const std::string& path, const std::vector<int32_t>& ids) {
  std::vector<uint8_t> b(ids.size() * 4);
  std::memcpy(b.data(), ids.data(), b.size());
  write_bytes(path, b);
}

inline std::vector<uint8_t> make_image(const std::string& header, const std::vector<uint8_t>& data,
                                       uint64_t header_len_override = UINT64_MAX) {
  const uint64_t h = header_len_override == UINT64_MAX ? header.size() : header_len_override;
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(h >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// ---- tensors ------------------------------------------------------------------------------

inline size_t numel(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

inline OwnedTensor f32_tensor(const std::string& name, std::vector<int64_t> shape,
                              const std::vector<float>& v) {
  OwnedTensor t{{name, DType::kF32, std::move(shape)}, {}};
  t.bytes.resize(v.size() * 4);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

// Small-integer values in [-amp, amp] with about `zero_pct`% zeros: products and sums stay exact.
inline std::vector<float> small_ints(std::mt19937& rng, size_t count, int amp = 9, int zero_pct = 10) {
  std::vector<float> v(count);
  for (auto& x : v) {
    if (int(rng() % 100) < zero_pct) {
      x = 0.0f;
    } else {
      int a = 1 + int(rng() % uint32_t(amp));
      x = float(rng() % 2 ? a : -a);
    }
  }
  return v;
}

// A tensor read back from a written file.
struct Loaded {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  size_t count() const { return numel(shape); }
  const uint8_t* elem(size_t i) const { return bytes.data() + i * dtype_size(dtype); }
  // Values as double: exact for every float/int dtype up to 32 bits.
  std::vector<double> values() const {
    std::vector<double> out(count());
    for (size_t i = 0; i < out.size(); ++i) out[i] = double(element_to_f32(dtype, elem(i)));
    return out;
  }
  bool is_zero(size_t i) const { return element_is_zero(dtype, elem(i)); }
};

// All tensors of a file (or of every shard of a directory), by name.
inline std::map<std::string, Loaded> load_file(const std::string& path) {
  std::map<std::string, Loaded> out;
  const auto f = SafetensorsFile::open(path);
  for (const auto& t : f.tensors())
    out[t.name] = Loaded{t.dtype, t.shape, std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes())};
  return out;
}
inline std::vector<std::string> shard_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& n : entries(dir))
    if (n.size() > 12 && n.substr(n.size() - 12) == ".safetensors") out.push_back(n);
  return out;
}
inline std::map<std::string, Loaded> load_any(const std::string& path) {
  if (!fs::is_directory(path)) return load_file(path);
  std::map<std::string, Loaded> out;
  for (const auto& s : shard_files(path))
    for (auto& [k, v] : load_file((fs::path(path) / s).string())) out[k] = std::move(v);
  return out;
}
inline std::map<std::string, std::string> load_metadata(const std::string& file) {
  return SafetensorsFile::open(file).metadata();
}

// Rewrites a safetensors file with `edit` applied to its tensors (file order and metadata kept).
inline void rewrite_file(const std::string& in, const std::string& out,
                         const std::function<void(std::vector<OwnedTensor>&)>& edit) {
  std::vector<OwnedTensor> tensors;
  std::map<std::string, std::string> meta;
  {
    const auto f = SafetensorsFile::open(in);
    meta = f.metadata();
    for (const auto& t : f.tensors())
      tensors.push_back({{t.name, t.dtype, t.shape}, std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes())});
  }
  edit(tensors);
  write_safetensors(out, tensors, meta);
}
inline OwnedTensor& find_tensor(std::vector<OwnedTensor>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.spec.name == name) return t;
  throw std::runtime_error("test: no tensor " + name);
}

// Copies a checkpoint directory (flat) to a new path.
inline void copy_dir(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) fs::copy_file(e.path(), fs::path(to) / e.path().filename());
}

// ---- the format's geometry, computed here from docs/FORMAT.md --------------------------------

// k' = align32(ceil(k/2N) * 4(N-1)).
inline int64_t expected_k_slide(int n_pat, int64_t k) {
  const int64_t groups = (k + 2 * n_pat - 1) / (2 * n_pat);
  const int64_t raw = groups * 4 * (n_pat - 1);
  return (raw + 31) / 32 * 32;
}
// Column map k' = g*4(N-1) + 4w + l  <->  k = g*2N + 2w + l; -1 for padding.
inline int64_t slid_to_orig(int n_pat, int64_t kp, int64_t k) {
  const int64_t sg = 4 * (n_pat - 1);
  const int64_t g = kp / sg, r = kp % sg, w = r / 4, l = r % 4;
  const int64_t groups = (k + 2 * n_pat - 1) / (2 * n_pat);
  if (g >= groups) return -1;
  const int64_t orig = g * 2 * n_pat + 2 * w + l;
  return orig < k ? orig : -1;
}

// ---- the independent oracle -----------------------------------------------------------------

// Values that are all dyadic rationals (every float dtype) as int64 scaled by 2^shift, exact.
// Returns false if they do not fit comfortably (|v| * 2^shift < 2^40).
inline bool to_scaled_ints(const std::vector<double>& v, int shift, std::vector<int64_t>& out) {
  out.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const double s = std::ldexp(v[i], shift);
    if (std::fabs(s) >= std::ldexp(1.0, 40) || s != std::floor(s)) return false;
    out[i] = int64_t(s);
  }
  return true;
}
// The smallest shift that makes every value an integer.
inline int integer_shift(const std::vector<double>& v) {
  int shift = 0;
  for (double x : v) {
    if (x == 0) continue;
    int e = 0;
    (void)std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1) with at most 53 bits
    for (int s = std::max(0, -e); s < 200; ++s) {
      const double y = std::ldexp(x, s);
      if (y == std::floor(y)) {
        shift = std::max(shift, s);
        break;
      }
    }
  }
  return shift;
}

struct LayerCheck {
  std::string prefix;            // P
  int n_pat = 4;                 // N of the pattern (2N-2):2N
  std::string precision;         // keep | int8 | fp8
  bool slid = true;              // P.slide_weight expected
  bool exact_ints = false;       // dense values are small integers: every kept value quantizes to nonzero
  const std::vector<double>* norms = nullptr;  // wanda column norms, or null for magnitude
};

// Checks one pruned (and optionally slid) layer of `out` against its dense original, from the
// spec alone: kept set from the reference pruner, kept bits / quantization bound, per-channel
// scale, group compliance, slid shape and 2:4 windows, the column map (computed here), and
// X.W^T == X'.W'^T exactly in int64 for random small-integer X.
inline void check_layer(const std::map<std::string, Loaded>& dense, const std::map<std::string, Loaded>& out,
                        const LayerCheck& c, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << c.prefix << " N=" << c.n_pat << " " << c.precision << " seed " << seed);
  const std::string wname = c.prefix + ".weight";
  ASSERT_TRUE(dense.count(wname)) << wname;
  ASSERT_TRUE(out.count(wname)) << wname;
  const Loaded& d = dense.at(wname);
  const Loaded& w = out.at(wname);
  ASSERT_EQ(d.shape.size(), 2u);
  ASSERT_EQ(w.shape, d.shape);
  const int64_t n = d.shape[0], k = d.shape[1], g = 2 * c.n_pat, keep = g - 2;
  const DType want = c.precision == "int8" ? DType::kI8 : c.precision == "fp8" ? DType::kE4M3 : d.dtype;
  ASSERT_EQ(dtype_safetensors_name(w.dtype), std::string(dtype_safetensors_name(want)));

  const std::vector<double> dv = d.values(), wv = w.values();
  std::vector<double> norms;
  if (c.norms) norms = *c.norms;
  const std::vector<uint8_t> mask = reference::prune_keep_mask(c.n_pat, dv, n, k, norms);
  ASSERT_EQ(mask.size(), size_t(n * k));

  // Group compliance, computed here.
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g0 = 0; g0 < k; g0 += g) {
      int64_t nnz = 0;
      for (int64_t j = g0; j < std::min(k, g0 + g); ++j) nnz += !w.is_zero(size_t(r * k + j));
      ASSERT_LE(nnz, keep) << "row " << r << " group " << g0 / g;
    }

  std::vector<float> scale;
  if (c.precision != "keep") {
    const std::string sname = c.prefix + ".weight_scale";
    ASSERT_TRUE(out.count(sname)) << sname;
    const Loaded& s = out.at(sname);
    ASSERT_EQ(s.dtype, DType::kF32);
    ASSERT_EQ(s.shape, std::vector<int64_t>{n});
    scale.resize(size_t(n));
    std::memcpy(scale.data(), s.bytes.data(), s.bytes.size());
  } else {
    EXPECT_FALSE(out.count(c.prefix + ".weight_scale"));
  }
  const float qmax = c.precision == "int8" ? 127.0f : 448.0f;
  for (int64_t r = 0; r < n; ++r) {
    float amax = 0;
    for (int64_t j = 0; j < k; ++j)
      if (mask[size_t(r * k + j)]) amax = std::max(amax, float(std::fabs(dv[size_t(r * k + j)])));
    if (!scale.empty()) {
      // FORMAT.md section 3: scale = max(amax, 2^-100) / Q in f32; 1 for an all-zero row.
      const float want_s = amax == 0 ? 1.0f : std::max(amax, 7.888609052210118e-31f) / qmax;
      EXPECT_EQ(scale[size_t(r)], want_s) << "row " << r;
    }
    for (int64_t j = 0; j < k; ++j) {
      const size_t i = size_t(r * k + j);
      if (!mask[i]) {
        for (size_t b = 0; b < dtype_size(w.dtype); ++b)
          ASSERT_EQ(w.elem(i)[b], 0) << "dropped element not +0 at row " << r << " column " << j;
        continue;
      }
      if (c.precision == "keep") {
        ASSERT_EQ(std::memcmp(w.elem(i), d.elem(i), dtype_size(w.dtype)), 0)
            << "kept value changed at row " << r << " column " << j;
        continue;
      }
      const double s = scale[size_t(r)], err = std::fabs(wv[i] * s - dv[i]);
      // Rounding to the grid plus a few f32 roundings (|q| <= 448, 2^-24 each): 1e-4 relative.
      const double tol = c.precision == "int8" ? 0.5 * s : std::ldexp(std::fabs(dv[i]), -4) + std::ldexp(s, -10);
      ASSERT_LE(err, tol * (1 + 1e-4)) << "row " << r << " column " << j << " v=" << dv[i] << " q=" << wv[i]
                                       << " s=" << s;
      if (w.is_zero(i)) {  // FORMAT.md 3: a -0 result is stored as +0
        for (size_t b = 0; b < dtype_size(w.dtype); ++b) ASSERT_EQ(w.elem(i)[b], 0) << "-0 code at row " << r;
      }
      if (c.exact_ints) {
        ASSERT_EQ(w.is_zero(i), dv[i] == 0) << "row " << r << " column " << j;
      }
    }
  }

  if (!c.slid) {
    EXPECT_FALSE(out.count(c.prefix + ".slide_weight"));
    return;
  }
  const std::string sname = c.prefix + ".slide_weight";
  ASSERT_TRUE(out.count(sname)) << sname;
  const Loaded& ws = out.at(sname);
  const int64_t kp = expected_k_slide(c.n_pat, k);
  ASSERT_EQ(ws.dtype, w.dtype);
  ASSERT_EQ(ws.shape, (std::vector<int64_t>{n, kp}));
  ASSERT_EQ(kp % 32, 0);

  // The map computed here agrees with the reference library's.
  std::vector<int64_t> map(static_cast<size_t>(kp));
  for (int64_t j = 0; j < kp; ++j) map[size_t(j)] = slid_to_orig(c.n_pat, j, k);
  EXPECT_EQ(map, reference::slid_columns(c.n_pat, k, kp));

  // Every aligned 4-window is 2:4; every nonzero sits opposite its own column, each column once.
  const std::vector<double> sv = ws.values();
  for (int64_t r = 0; r < n; ++r) {
    std::vector<int> claimed(size_t(k), 0);
    for (int64_t w0 = 0; w0 < kp; w0 += 4) {
      int nnz = 0;
      for (int64_t j = w0; j < w0 + 4; ++j) nnz += !ws.is_zero(size_t(r * kp + j));
      ASSERT_LE(nnz, 2) << "row " << r << " window " << w0 / 4;
    }
    for (int64_t j = 0; j < kp; ++j) {
      const size_t i = size_t(r * kp + j);
      if (ws.is_zero(i)) continue;
      const int64_t o = map[size_t(j)];
      ASSERT_GE(o, 0) << "nonzero on padding, row " << r << " slid column " << j;
      ASSERT_EQ(std::memcmp(ws.elem(i), w.elem(size_t(r * k + o)), dtype_size(w.dtype)), 0)
          << "row " << r << " slid column " << j << " -> column " << o;
      ++claimed[size_t(o)];
    }
    for (int64_t j = 0; j < k; ++j)
      ASSERT_EQ(claimed[size_t(j)], w.is_zero(size_t(r * k + j)) ? 0 : 1) << "row " << r << " column " << j;
  }

  // Exact GEMM: X.W^T == X'.W'^T, W and W' scaled to integers by the same power of two.
  const int shift = std::max(integer_shift(wv), integer_shift(sv));
  std::vector<int64_t> wi, si;
  ASSERT_TRUE(to_scaled_ints(wv, shift, wi)) << "weights do not fit the int64 oracle";
  ASSERT_TRUE(to_scaled_ints(sv, shift, si));
  std::mt19937 rng(seed);
  const int64_t m = 7;
  std::vector<int64_t> x(size_t(m * k)), xl(size_t(m * kp), 0);
  for (auto& v : x) v = int64_t(rng() % 17) - 8;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < kp; ++j)
      if (map[size_t(j)] >= 0) xl[size_t(r * kp + j)] = x[size_t(r * k + map[size_t(j)])];
  const std::vector<int64_t> y = reference::gemm_xwt(x, wi, m, n, k);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t col = 0; col < n; ++col) {
      int64_t acc = 0;
      for (int64_t j = 0; j < kp; ++j) acc += xl[size_t(r * kp + j)] * si[size_t(col * kp + j)];
      ASSERT_EQ(acc, y[size_t(r * n + col)]) << "Y[" << r << ", " << col << "]";
    }
}

}  // namespace slidesparse::clitest
