// slidesparse: a byte-level BPE tokenizer (GPT-2 style, as llama.cpp's "gpt2" tokenizer model)
// built from the tokenizer data of a GGUF file -- the tokenizer_gguf.json that `import-gguf`
// writes next to model.safetensors (tokens, merges, token_type, pre, bos/eos ids, add_bos_token).
//
// encode: special (control / user-defined) tokens are matched verbatim first; the text between
// them is split by the pre-tokenizer regular expressions of the "pre" type (RE2), each piece is
// mapped byte -> unicode (the GPT-2 byte table) and merged by BPE rank. Ids are meant to be
// identical to the Hugging Face `tokenizers` output for the same model (tested on the whole
// WikiText-2 test file, see docs/TESTING.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace slidesparse {

class BpeTokenizer {
 public:
  // `path`: a tokenizer_gguf.json file, or a model directory holding one.
  // Errors: kNotFound, kBadFormat (missing/invalid fields), kUnsupported (tokenizer model other
  // than "gpt2", or an unknown "pre" type).
  static BpeTokenizer load(const std::string& path);

  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;
  ~BpeTokenizer();

  // Token ids of `text` (UTF-8; invalid bytes are encoded byte-wise like any other byte, and split
  // as U+FFFD would be). A byte the vocabulary has no token for is dropped, as `tokenizers` does.
  // With add_bos, the BOS id is prepended when the tokenizer data asks for it (add_bos_token).
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false) const;
  // The bytes the ids stand for (special tokens as their text). kInvalidArgument for an id out of range.
  std::string decode(const std::vector<int32_t>& ids) const;

  int64_t vocab_size() const noexcept;
  int32_t bos_id() const noexcept;  // -1 when absent
  int32_t eos_id() const noexcept;
  bool add_bos() const noexcept;
  const std::string& pre_type() const noexcept;

 private:
  struct Impl;
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace slidesparse
