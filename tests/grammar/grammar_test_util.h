// Helpers for the grammar tests: a tiny byte-level vocabulary with a greedy tokenizer, the real
// SmolLM2 tokenizer when its model file is present, and walks of text through a matcher.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dspark/grammar.h"
#include "dspark/loader.h"
#include "dspark/tokenizer.h"

namespace dspark::grammar_testing {

// Ids 0..255: the single bytes; then a few merged pieces; then two special tokens.
struct TinyVocab {
  std::vector<std::string> tokens;  // bytes per id; "" for the special ones
  std::unordered_map<std::string, int32_t> ids;
  int32_t eos = -1;    // "<|endoftext|>": special, ends generation
  int32_t start = -1;  // "<|im_start|>": special, never allowed
  size_t longest = 1;

  explicit TinyVocab(bool merges = true) {
    for (int b = 0; b < 256; ++b) add(std::string(1, static_cast<char>(b)));
    if (merges) {
      for (const char* piece : {"{\"", "\":", "\": ", ", \"", "name", "age", "role", "admin",
                                "true", "false", "null", "\"]", "\"}", "}}", "12", "street"}) {
        add(piece);
      }
    }
    eos = static_cast<int32_t>(tokens.size());
    tokens.emplace_back();
    start = static_cast<int32_t>(tokens.size());
    tokens.emplace_back();
  }
  void add(const std::string& piece) {
    ids[piece] = static_cast<int32_t>(tokens.size());
    tokens.push_back(piece);
    longest = std::max(longest, piece.size());
  }
  int32_t id(const std::string& piece) const { return ids.at(piece); }
  // Greedy longest-match tokenization (every byte is a token, so it always succeeds).
  std::vector<int32_t> encode(const std::string& text) const {
    std::vector<int32_t> out;
    for (size_t pos = 0; pos < text.size();) {
      for (size_t n = std::min(longest, text.size() - pos); n > 0; --n) {
        auto it = ids.find(text.substr(pos, n));
        if (it != ids.end()) {
          out.push_back(it->second);
          pos += n;
          break;
        }
      }
    }
    return out;
  }
  std::shared_ptr<const GrammarVocab> grammar_vocab() const {
    std::vector<int32_t> eos_ids{eos};
    auto v = GrammarVocab::from_tokens(tokens, eos_ids);
    EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.error().message);
    return v.ok() ? v.value() : nullptr;
  }
};

inline bool allowed(const std::vector<uint32_t>& mask, int32_t token) {
  return (mask[token / 32] >> (token % 32)) & 1u;
}

inline int count_allowed(const std::vector<uint32_t>& mask) {
  int n = 0;
  for (uint32_t w : mask) n += __builtin_popcount(w);
  return n;
}

inline std::vector<uint32_t> mask_of(GrammarMatcher& m) {
  std::vector<uint32_t> mask(static_cast<size_t>(m.vocab().mask_words()));
  EXPECT_TRUE(m.fill_mask(mask).ok());
  return mask;
}

// Walks tokens through the matcher checking each is in the mask first; returns the index of the
// first token the mask forbids (or tokens.size()). never_allowed: ids no mask may contain.
inline size_t walk(GrammarMatcher& m, const std::vector<int32_t>& tokens,
                   const std::vector<int32_t>& never_allowed = {}) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::vector<uint32_t> mask = mask_of(m);
    for (int32_t id : never_allowed) EXPECT_FALSE(allowed(mask, id)) << "id " << id << " at " << i;
    if (!allowed(mask, tokens[i])) {
      EXPECT_FALSE(m.accept(tokens[i])) << "accepted a token its mask forbids at " << i;
      return i;
    }
    EXPECT_TRUE(m.accept(tokens[i])) << "mask allows token " << tokens[i] << " at " << i;
  }
  return tokens.size();
}

inline std::unique_ptr<GrammarMatcher> matcher_for(GrammarCompiler& compiler,
                                                   const GrammarSpec& spec) {
  auto g = compiler.compile(spec);
  EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message);
  if (!g.ok()) return nullptr;
  auto m = g.value()->make_matcher();
  EXPECT_TRUE(m.ok());
  return m.ok() ? std::move(m).value() : nullptr;
}

// Fixture base: the tiny vocabulary and a compiler over it.
class TinyGrammarTest : public ::testing::Test {
 protected:
  TinyVocab tiny;
  std::shared_ptr<const GrammarVocab> vocab = tiny.grammar_vocab();
  GrammarCompiler compiler{vocab};
};

// A real model's tokenizer under models/, or nullptr when the file is absent.
inline std::unique_ptr<Tokenizer> load_tokenizer(const std::string& file) {
  std::string path = std::string(DSPARK_SOURCE_DIR) + "/models/" + file;
  auto model = ModelFile::open(path);
  if (!model.ok()) return nullptr;
  auto tok = Tokenizer::from_model_file(*model.value());
  return tok.ok() ? std::move(tok).value() : nullptr;
}

inline constexpr const char* kSmolLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf";

// A schema with nested objects, arrays, an enum, bounded integers, optional properties and a
// $defs reference, and a document that satisfies it (properties in the schema's order).
inline const char* kPersonSchema = R"({
  "$defs": {
    "address": {
      "type": "object",
      "properties": {
        "street": {"type": "string"},
        "zip": {"type": "integer", "minimum": 10000, "maximum": 99999}
      },
      "required": ["street", "zip"]
    }
  },
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "role": {"enum": ["admin", "user", "guest"]},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
    "address": {"$ref": "#/$defs/address"},
    "score": {"type": "number"},
    "active": {"type": "boolean"}
  },
  "required": ["name", "age", "role", "tags", "address"]
})";

inline const char* kPersonDoc =
    R"({"name": "Ada", "age": 36, "role": "admin", "tags": ["x", "math"], )"
    R"("address": {"street": "12 Main St", "zip": 12345}, "active": true})";

}  // namespace dspark::grammar_testing
