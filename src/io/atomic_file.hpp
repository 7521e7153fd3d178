// slidesparse internal: output files that appear at their final path only when complete.
//
// Bytes go to a hidden temporary file in the destination's directory (same filesystem, so the
// final rename is atomic); commit() fsyncs and renames it into place. A crash, an exception or a
// missing commit() never leaves a truncated file at the destination.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace slidesparse {

class AtomicFile {
 public:
  // Creates ".<name>.tmp-<pid>-<random>" next to `path`; kIoError if the directory is not writable.
  explicit AtomicFile(std::string path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // unlinks the temporary file unless commit() succeeded

  void write(const void* bytes, size_t n);  // all n bytes or kIoError (short writes are retried)
  void commit();                            // fsync, rename over `path`, fsync the directory
  const std::string& path() const noexcept { return path_; }
  const std::string& temp_path() const noexcept { return temp_path_; }

 private:
  std::string path_, temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Small text outputs (index.json, config copies): write, fsync, rename.
void write_text_file_atomic(const std::string& path, std::string_view text);

}  // namespace slidesparse
