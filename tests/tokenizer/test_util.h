// Helpers for the tokenizer unit tests: tiny hand-made vocabularies and a minimal GGUF writer.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dspark/tokenizer.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/byte_unicode.h"

namespace dspark::tok::testing {

// Byte-level vocabulary: ids 0..255 are the bytes (GPT-2 spelling, in byte order), then one id
// per merge result in merge order, then the added tokens.
inline TokenizerSpec byte_level_spec(const std::vector<std::pair<std::string, std::string>>& merges,
                                     const std::vector<AddedToken>& added = {}) {
  TokenizerSpec spec;
  spec.kind = TokenizerKind::ByteLevelBpe;
  spec.bpe.byte_level = true;
  spec.decode.byte_level = true;
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(bytes_to_byte_level(std::string(1, char(b))));
  for (const auto& [l, r] : merges) {
    spec.merges.emplace_back(bytes_to_byte_level(l), bytes_to_byte_level(r));
    spec.tokens.push_back(bytes_to_byte_level(l + r));
  }
  spec.in_model.assign(spec.tokens.size(), true);
  for (AddedToken t : added) {
    t.id = static_cast<int32_t>(spec.tokens.size());
    spec.tokens.push_back(t.content);
    spec.in_model.push_back(false);
    spec.added.push_back(t);
  }
  auto gpt2 = make_byte_level_step(false, true);
  spec.pre_tokenizers.push_back(std::move(gpt2).value());
  return spec;
}

inline std::unique_ptr<Tokenizer> build(TokenizerSpec spec) {
  auto t = build_tokenizer(std::move(spec));
  if (!t.ok()) return nullptr;
  return std::move(t).value();
}

// Id of a token by its raw bytes in a byte-level tokenizer.
inline int32_t id_of_bytes(const Tokenizer& t, const std::string& bytes) {
  return t.token_id(bytes_to_byte_level(bytes));
}

// Minimal GGUF v3 image: metadata only, no tensors.
class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& v) {
    header(key, 8);
    str(v);
    ++n_;
  }
  void add_u32(const std::string& key, uint32_t v) {
    header(key, 4);
    pod(v);
    ++n_;
  }
  void add_bool(const std::string& key, bool v) {
    header(key, 7);
    pod(static_cast<uint8_t>(v));
    ++n_;
  }
  void add_strings(const std::string& key, const std::vector<std::string>& v) {
    header(key, 9);
    pod(uint32_t{8});
    pod(static_cast<uint64_t>(v.size()));
    for (const auto& s : v) str(s);
    ++n_;
  }
  void add_i32s(const std::string& key, const std::vector<int32_t>& v) {
    header(key, 9);
    pod(uint32_t{5});
    pod(static_cast<uint64_t>(v.size()));
    for (int32_t x : v) pod(x);
    ++n_;
  }
  void add_f32s(const std::string& key, const std::vector<float>& v) {
    header(key, 9);
    pod(uint32_t{6});
    pod(static_cast<uint64_t>(v.size()));
    for (float x : v) pod(x);
    ++n_;
  }
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out;
    auto put = [&](const void* p, size_t n) {
      const auto* b = static_cast<const uint8_t*>(p);
      out.insert(out.end(), b, b + n);
    };
    put("GGUF", 4);
    const uint32_t version = 3;
    const uint64_t n_tensors = 0;
    put(&version, 4);
    put(&n_tensors, 8);
    put(&n_, 8);
    out.insert(out.end(), body_.begin(), body_.end());
    while (out.size() % 32 != 0) out.push_back(0);
    return out;
  }

 private:
  template <class T>
  void pod(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    body_.insert(body_.end(), b, b + sizeof(T));
  }
  void str(const std::string& s) {
    pod(static_cast<uint64_t>(s.size()));
    body_.insert(body_.end(), s.begin(), s.end());
  }
  void header(const std::string& key, uint32_t type) {
    str(key);
    pod(type);
  }
  std::vector<uint8_t> body_;
  uint64_t n_ = 0;
};

}  // namespace dspark::tok::testing
