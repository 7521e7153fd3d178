// Writer: streaming round trips for every dtype, byte-exact output, 8-byte alignment, atomicity
// (no file and no temporary left without commit), and misuse caught with kInternal.
#include <cstring>
#include <random>

#include "cpu/io_util.hpp"
#include "io/atomic_file.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse {
namespace {

using testing::TempDir;
using testing::throws_error;

constexpr uint32_t kSeed = 20240611;

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = uint8_t(rng());
  return out;
}

size_t spec_bytes(const TensorSpec& s) {
  size_t n = dtype_size(s.dtype);
  for (int64_t d : s.shape) n *= size_t(d);
  return n;
}

TEST(io_SafetensorsWrite, StreamingRoundTripAllDtypes) {
  SCOPED_TRACE(::testing::Message() << "seed " << kSeed);
  std::mt19937 rng(kSeed);
  TempDir dir;
  const std::string path = dir.file("all.safetensors");

  std::vector<TensorSpec> specs;
  for (int i = 0; i <= static_cast<int>(DType::kF64); ++i) {
    const auto dt = static_cast<DType>(i);
    specs.push_back({std::string("t.") + dtype_token(dt), dt, {3, 5, int64_t(1 + i % 4)}});
  }
  specs.push_back({"scalar", DType::kF32, {}});
  specs.push_back({"empty", DType::kBF16, {0, 4}});
  specs.push_back({"model.layers.0.mlp.down_proj.weight", DType::kE4M3, {17, 33}});
  specs.push_back({"unicode \u00e9\u4e2d \"quoted\"\\", DType::kI32, {2}});
  const std::map<std::string, std::string> meta = {{"format", "pt"},
                                                   {"slidesparse", R"({"format":1})"}};

  std::vector<std::vector<uint8_t>> data;
  for (const auto& s : specs) data.push_back(random_bytes(rng, spec_bytes(s)));
  {
    SafetensorsWriter w(path, specs, meta);
    EXPECT_EQ(w.path(), path);
    // Append in random-sized chunks, including empty ones.
    for (const auto& d : data) {
      size_t off = 0;
      while (off < d.size()) {
        const size_t n = std::min(d.size() - off, size_t(rng() % 7));
        w.append(d.data() + off, n);
        off += n;
      }
    }
    w.commit();
  }

  const auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), meta);
  EXPECT_EQ(f.header().data_offset % 8, 0u);
  ASSERT_EQ(f.tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    SCOPED_TRACE(specs[i].name);
    // Tensors come back in file order, which is declaration order.
    const TensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.dtype, specs[i].dtype);
    EXPECT_EQ(t.shape, specs[i].shape);
    ASSERT_EQ(t.nbytes(), data[i].size());
    EXPECT_EQ(std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes()), data[i]);
  }
  EXPECT_EQ(f.find("scalar")->numel(), 1);
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"all.safetensors"}));
}

TEST(io_SafetensorsWrite, WholeTensorWritesAndHelper) {
  TempDir dir;
  const std::string path = dir.file("h.safetensors");
  std::vector<OwnedTensor> ts;
  ts.push_back({{"a", DType::kF16, {2, 2}}, {1, 2, 3, 4, 5, 6, 7, 8}});
  ts.push_back({{"e", DType::kI8, {0}}, {}});
  ts.push_back({{"b", DType::kI8, {3}}, {9, 8, 7}});
  ts.push_back({{"e2", DType::kF32, {4, 0}}, {}});
  write_safetensors(path, ts, {{"k", "v"}});
  const auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 4u);
  for (size_t i = 0; i < ts.size(); ++i) {
    const TensorInfo* t = f.find(ts[i].spec.name);
    ASSERT_NE(t, nullptr) << ts[i].spec.name;
    EXPECT_EQ(std::vector<uint8_t>(f.data(*t), f.data(*t) + t->nbytes()), ts[i].bytes);
  }
  EXPECT_EQ(f.metadata().at("k"), "v");
}

TEST(io_SafetensorsWrite, ByteExactOutput) {
  TempDir dir;
  const std::string path = dir.file("exact.safetensors");
  write_safetensors(path,
                    {{{"w", DType::kF32, {2}}, {0, 0, 128, 63, 0, 0, 0, 64}},
                     {{"b", DType::kI8, {1, 3}}, {1, 2, 255}}},
                    {{"k", "v"}});
  // Compact JSON in declaration order, metadata first, padded with spaces to a multiple of 8.
  std::string header =
      R"({"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I8","shape":[1,3],"data_offsets":[8,11]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  ASSERT_EQ(header.size() % 8, 0u);
  const auto expected = testing::make_image(header, {0, 0, 128, 63, 0, 0, 0, 64, 1, 2, 255});
  EXPECT_EQ(testing::read_bytes(path), expected);
}

TEST(io_SafetensorsWrite, NoMetadataMeansNoMetadataEntry) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  write_safetensors(path, {});
  const auto bytes = testing::read_bytes(path);
  ASSERT_EQ(bytes.size(), 16u);
  EXPECT_EQ(std::string(bytes.begin() + 8, bytes.end()), "{}      ");
}

TEST(io_SafetensorsWrite, HeaderAlignedForEveryNameLength) {
  TempDir dir;
  for (size_t len = 1; len <= 17; ++len) {
    const std::string path = dir.file("a" + std::to_string(len) + ".safetensors");
    write_safetensors(path, {{{std::string(len, 'n'), DType::kF64, {1}}, std::vector<uint8_t>(8)}});
    const auto f = SafetensorsFile::open(path);
    EXPECT_EQ(f.header().data_offset % 8, 0u) << "name length " << len;
    EXPECT_EQ(f.header().header_bytes % 8, 0u) << "name length " << len;
  }
}

TEST(io_SafetensorsWrite, LargeTensorBypassesBuffer) {
  SCOPED_TRACE(::testing::Message() << "seed " << kSeed);
  std::mt19937 rng(kSeed);
  TempDir dir;
  const std::string path = dir.file("big.safetensors");
  // 20 MiB exceeds the 8 MiB write buffer, so the streaming path mixes buffered and direct writes.
  const auto big = random_bytes(rng, size_t(20) << 20);
  const auto small = random_bytes(rng, 1000);
  {
    SafetensorsWriter w(path, {{"s", DType::kU8, {1000}}, {"big", DType::kU8, {20, 1 << 20}}});
    w.write("s", small.data(), small.size());
    size_t off = 0;
    const size_t chunks[] = {3, size_t(9) << 20, 12345, size_t(8) << 20};
    for (size_t c : chunks) {
      w.append(big.data() + off, c);
      off += c;
    }
    w.append(big.data() + off, big.size() - off);
    w.commit();
  }
  const auto f = SafetensorsFile::open(path);
  const TensorInfo& t = *f.find("big");
  EXPECT_EQ(std::memcmp(f.data(t), big.data(), big.size()), 0);
  EXPECT_EQ(std::memcmp(f.data(*f.find("s")), small.data(), small.size()), 0);
}

TEST(io_SafetensorsWrite, AppendMaySpanTensors) {
  TempDir dir;
  const std::string path = dir.file("span.safetensors");
  const std::vector<uint8_t> all = {1, 2, 3, 4, 5, 6};
  {
    SafetensorsWriter w(path,
                        {{"a", DType::kU8, {2}}, {"e", DType::kU8, {0}}, {"b", DType::kU16, {2}}});
    w.append(all.data(), all.size());
    w.commit();
  }
  const auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.data(*f.find("b"))[0], 3);
}

TEST(io_SafetensorsWrite, ReleaseKeepsDataReadable) {
  SCOPED_TRACE(::testing::Message() << "seed " << kSeed);
  std::mt19937 rng(kSeed);
  TempDir dir;
  const std::string path = dir.file("r.safetensors");
  std::vector<OwnedTensor> ts;
  // Sizes straddle page boundaries so released ranges share pages with neighbours and the header.
  for (int i = 0; i < 6; ++i) {
    const int64_t n = 1000 + 3001 * i;
    ts.push_back({{"t" + std::to_string(i), DType::kF32, {n}}, random_bytes(rng, size_t(n) * 4)});
  }
  ts.push_back({{"e", DType::kF32, {0}}, {}});
  write_safetensors(path, ts);
  const auto f = SafetensorsFile::open(path);
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& o : ts) {
      const TensorInfo& t = *f.find(o.spec.name);
      ASSERT_EQ(std::vector<uint8_t>(f.data(t), f.data(t) + t.nbytes()), o.bytes)
          << o.spec.name << " pass " << pass;
      f.release(t);
    }
  }
  // Releasing everything then reading in reverse also re-faults pages shared with neighbours.
  for (auto it = ts.rbegin(); it != ts.rend(); ++it) {
    const TensorInfo& t = *f.find(it->spec.name);
    EXPECT_EQ(std::memcmp(f.data(t), it->bytes.data(), it->bytes.size()), 0) << it->spec.name;
  }
}

// --- atomicity --------------------------------------------------------------------------------

TEST(io_SafetensorsWrite, NoCommitLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  {
    SafetensorsWriter w(path, {{"a", DType::kF32, {4}}});
    const float v[2] = {1, 2};
    w.append(v, sizeof v);
    // The temporary exists while writing, hidden next to the destination.
    const auto during = dir.entries();
    ASSERT_EQ(during.size(), 1u);
    EXPECT_EQ(during[0].rfind(".x.safetensors.tmp-", 0), 0u) << during[0];
  }
  EXPECT_TRUE(dir.entries().empty());

  // Also after a complete stream without commit, and after a failed append.
  {
    SafetensorsWriter w(path, {{"a", DType::kU8, {1}}});
    const uint8_t b[2] = {1, 2};
    EXPECT_TRUE(throws_error([&] { w.append(b, 2); }, Status::kInternal, {path}));
    w.append(b, 1);
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(io_SafetensorsWrite, CommitReplacesExistingFileAtomically) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  write_safetensors(path, {{{"old", DType::kU8, {1}}, {7}}});
  {
    SafetensorsWriter w(path, {{"new", DType::kU8, {1}}});
    const uint8_t b = 9;
    w.append(&b, 1);
    // Until commit the old file is intact.
    EXPECT_NE(SafetensorsFile::open(path).find("old"), nullptr);
    w.commit();
  }
  const auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.find("old"), nullptr);
  ASSERT_NE(f.find("new"), nullptr);
  EXPECT_EQ(f.data(*f.find("new"))[0], 9);
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"x.safetensors"}));
}

// --- misuse -----------------------------------------------------------------------------------

TEST(io_SafetensorsWrite, TooManyBytes) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  SafetensorsWriter w(path, {{"a", DType::kF32, {1}}, {"b", DType::kI8, {2}}});
  const std::vector<uint8_t> b(7);
  EXPECT_TRUE(throws_error([&] { w.append(b.data(), 7); }, Status::kInternal,
                           {path, "appending 7 bytes at data offset 0", "declared 6 bytes"}));
  w.append(b.data(), 6);
  EXPECT_TRUE(throws_error([&] { w.append(b.data(), 1); }, Status::kInternal,
                           {"appending 1 bytes at data offset 6"}));
  w.commit();
  EXPECT_TRUE(throws_error([&] { w.append(b.data(), 0); }, Status::kInternal, {"after commit"}));
  EXPECT_TRUE(throws_error([&] { w.commit(); }, Status::kInternal, {"commit called twice"}));
}

TEST(io_SafetensorsWrite, TooFewBytes) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  {
    SafetensorsWriter w(path, {{"a", DType::kF32, {1}}, {"b", DType::kI8, {2}}});
    const std::vector<uint8_t> b(5);
    w.append(b.data(), 5);
    EXPECT_TRUE(throws_error([&] { w.commit(); }, Status::kInternal,
                             {path, "5 of 6 data bytes", "tensor \"b\" is incomplete"}));
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(io_SafetensorsWrite, WriteChecksOrderAndSize) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  SafetensorsWriter w(path,
                      {{"a", DType::kF32, {1}}, {"e", DType::kF32, {0}}, {"b", DType::kI8, {2}}});
  const std::vector<uint8_t> b(4);
  EXPECT_TRUE(throws_error([&] { w.write("b", b.data(), 2); }, Status::kInternal,
                           {"write(\"b\") out of order", "next declared tensor is \"a\""}));
  EXPECT_TRUE(throws_error([&] { w.write("a", b.data(), 3); }, Status::kInternal,
                           {"write(\"a\") got 3 bytes", "[1]", "F32", "needs 4"}));
  w.write("a", b.data(), 4);
  // The empty tensor must be named in order too.
  EXPECT_TRUE(throws_error([&] { w.write("b", b.data(), 2); }, Status::kInternal,
                           {"next declared tensor is \"e\""}));
  w.write("e", nullptr, 0);
  w.append(b.data(), 1);
  EXPECT_TRUE(throws_error([&] { w.write("b", b.data(), 1); }, Status::kInternal,
                           {"not at the start of a declared tensor"}));
  w.append(b.data(), 1);
  w.commit();
  EXPECT_EQ(SafetensorsFile::open(path).tensors().size(), 3u);
}

TEST(io_SafetensorsWrite, InvalidSpecs) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  EXPECT_TRUE(throws_error(
      [&] {
        SafetensorsWriter w(path, {{"a", DType::kF32, {1}}, {"a", DType::kI8, {1}}});
      },
      Status::kInvalidArgument, {path, "\"a\" declared twice"}));
  EXPECT_TRUE(throws_error(
      [&] {
        SafetensorsWriter w(path, {{"a", DType::kF32, {2, -1}}});
      },
      Status::kInvalidArgument, {"negative shape dim -1", "index 1"}));
  EXPECT_TRUE(throws_error(
      [&] {
        SafetensorsWriter w(path, {{"__metadata__", DType::kF32, {1}}});
      },
      Status::kInvalidArgument, {"reserved"}));
  EXPECT_TRUE(throws_error(
      [&] {
        SafetensorsWriter w(path, {{"a", DType::kF32, {int64_t(1) << 62, 4}}});
      },
      Status::kInvalidArgument, {"\"a\"", "overflows"}));
  // Total size overflow across tensors.
  EXPECT_TRUE(throws_error(
      [&] {
        // 8 * (2^61 - 1) bytes fit in 64 bits; 8 more do not.
        SafetensorsWriter w(path,
                            {{"a", DType::kI64, {(int64_t(1) << 61) - 1}}, {"b", DType::kI8, {8}}});
      },
      Status::kInvalidArgument, {"\"b\"", "overflows"}));
  EXPECT_TRUE(throws_error(
      [&] {
        SafetensorsWriter w(path, {{"bad\xff", DType::kF32, {1}}});
      },
      Status::kInvalidArgument, {"not valid UTF-8"}));
  EXPECT_TRUE(throws_error(
      [&] {
        write_safetensors(path, {{{"a", DType::kF32, {2}}, {1, 2, 3}}});
      },
      Status::kInvalidArgument, {"\"a\" has 3 bytes", "needs 8"}));
  EXPECT_TRUE(dir.entries().empty());
}

TEST(io_SafetensorsWrite, MissingOutputDirectory) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/x.safetensors");
  EXPECT_TRUE(throws_error([&] { write_safetensors(path, {}); }, Status::kNotFound,
                           {"x.safetensors", "No such file or directory"}));
}

TEST(io_SafetensorsWrite, DestinationIsDirectory) {
  TempDir dir;
  std::filesystem::create_directory(dir.path() / "d");
  const std::string path = dir.file("d");
  EXPECT_TRUE(
      throws_error([&] { write_safetensors(path, {}); }, Status::kIoError, {"renaming", path}));
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"d"}));
}

// --- write_text_file_atomic -------------------------------------------------------------------

TEST(io_AtomicFile, TextFileWrittenAndReplaced) {
  TempDir dir;
  const std::string path = dir.file("index.json");
  write_text_file_atomic(path, "{\"a\":1}\n");
  EXPECT_EQ(testing::read_bytes(path),
            (std::vector<uint8_t>{'{', '"', 'a', '"', ':', '1', '}', '\n'}));
  write_text_file_atomic(path, "");
  EXPECT_TRUE(testing::read_bytes(path).empty());
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"index.json"}));
}

TEST(io_AtomicFile, RelativePathInCurrentDirectory) {
  TempDir dir;
  const auto old = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  write_text_file_atomic("rel.txt", "x");
  std::filesystem::current_path(old);
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"rel.txt"}));
}

TEST(io_AtomicFile, AbandonedFileIsRemoved) {
  TempDir dir;
  {
    AtomicFile f(dir.file("a.txt"));
    f.write("abc", 3);
    EXPECT_TRUE(std::filesystem::exists(f.temp_path()));
  }
  EXPECT_TRUE(dir.entries().empty());
  EXPECT_TRUE(throws_error([&] { AtomicFile f(dir.file("")); }, Status::kInvalidArgument,
                           {"does not name a file"}));
}

}  // namespace
}  // namespace slidesparse
