// Grammars over real vocabularies (SmolLM2's 49k byte-level BPE; Qwen2.5's 151k where present):
// documents tokenized by the model's own tokenizer walk through, special tokens never appear in a
// mask, violations are cut, rollback is exact. Skips where the model file is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dspark/grammar.h"
#include "grammar_test_util.h"

namespace dspark {
namespace {

using namespace grammar_testing;

struct RealVocab {
  std::unique_ptr<Tokenizer> tokenizer;
  std::shared_ptr<const GrammarVocab> vocab;
  std::unique_ptr<GrammarCompiler> compiler;
  std::vector<int32_t> never;  // special ids that are not EOS
};

// Loaded once per model for the whole binary.
RealVocab* real_vocab(const char* file) {
  static std::map<std::string, std::unique_ptr<RealVocab>> loaded;
  auto it = loaded.find(file);
  if (it != loaded.end()) return it->second.get();
  auto rv = std::make_unique<RealVocab>();
  rv->tokenizer = load_tokenizer(file);
  if (rv->tokenizer) {
    auto v = GrammarVocab::from_tokenizer(*rv->tokenizer);
    EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.error().message);
    if (v.ok()) {
      rv->vocab = v.value();
      rv->compiler = std::make_unique<GrammarCompiler>(rv->vocab);
      const auto& eos = rv->vocab->eos_ids();
      for (int32_t id = 0; id < rv->tokenizer->vocab_size(); ++id) {
        if (rv->tokenizer->is_special(id) && std::find(eos.begin(), eos.end(), id) == eos.end()) {
          rv->never.push_back(id);
        }
      }
    }
  }
  RealVocab* out = rv->compiler ? rv.get() : nullptr;
  loaded[file] = std::move(rv);
  return out;
}

#define REQUIRE_MODEL(var, file)     \
  RealVocab* var = real_vocab(file); \
  if (!var) GTEST_SKIP() << "models/" << file << " is absent (scripts/fetch_models.py)";

std::vector<int32_t> encode(const RealVocab& rv, const std::string& text) {
  return rv.tokenizer->encode(text, /*add_special=*/false, /*parse_special=*/false);
}

void walk_document(RealVocab& rv, const GrammarSpec& spec, const std::string& doc) {
  auto m = matcher_for(*rv.compiler, spec);
  ASSERT_TRUE(m);
  std::vector<int32_t> ids = encode(rv, doc);
  ASSERT_EQ(walk(*m, ids, rv.never), ids.size()) << doc;
  std::vector<uint32_t> mask = mask_of(*m);
  for (int32_t id : rv.never) ASSERT_FALSE(allowed(mask, id));
  const int32_t eos = rv.vocab->eos_ids().front();
  EXPECT_TRUE(allowed(mask, eos));
  EXPECT_TRUE(m->accept(eos));
  EXPECT_TRUE(m->is_terminated());
}

TEST(RealVocabTest, SmolLM2SpecialTokensAreNotOrdinary) {
  REQUIRE_MODEL(rv, kSmolLM2);
  EXPECT_EQ(rv->vocab->size(), rv->tokenizer->vocab_size());
  EXPECT_FALSE(rv->never.empty()) << "SmolLM2 has control tokens such as <|im_start|>";
  const std::vector<int32_t>& eos = rv->vocab->eos_ids();
  EXPECT_NE(std::find(eos.begin(), eos.end(), rv->tokenizer->token_id("<|im_end|>")), eos.end());
}

TEST(RealVocabTest, SmolLM2SchemaDocuments) {
  REQUIRE_MODEL(rv, kSmolLM2);
  walk_document(*rv, GrammarSpec::json_schema(kPersonSchema), kPersonDoc);
  const std::string pretty = R"({
  "name": "Zo\u00eb \"Z\" O'Neil",
  "age": 150,
  "role": "guest",
  "tags": [],
  "address": {
    "street": "Rue de l'\u00c9glise 4",
    "zip": 99999
  },
  "score": -12.5e3
})";
  walk_document(*rv, GrammarSpec::json_schema(kPersonSchema), pretty);
  walk_document(*rv, GrammarSpec::json_object(), pretty);
  GrammarSpec compact = GrammarSpec::json_schema(kPersonSchema);
  compact.any_whitespace = false;
  walk_document(*rv, compact, kPersonDoc);
}

TEST(RealVocabTest, SmolLM2ViolationsAreCut) {
  REQUIRE_MODEL(rv, kSmolLM2);
  for (const std::string doc :
       {R"({"name": "Ada", "age": 151})", R"({"name": "Ada", "age": "36"})",
        R"({"name": "Ada", "age": 36, "role": "owner"})", R"({"name": "Ada",, "age": 1})"}) {
    auto m = matcher_for(*rv->compiler, GrammarSpec::json_schema(kPersonSchema));
    ASSERT_TRUE(m);
    std::vector<int32_t> ids = encode(*rv, doc);
    EXPECT_LT(walk(*m, ids, rv->never), ids.size()) << doc;
  }
}

TEST(RealVocabTest, SmolLM2RollbackAndChoices) {
  REQUIRE_MODEL(rv, kSmolLM2);
  auto m = matcher_for(*rv->compiler, GrammarSpec::json_schema(kPersonSchema));
  ASSERT_TRUE(m);
  std::vector<int32_t> ids = encode(*rv, kPersonDoc);
  for (size_t i = 0; i + 4 < ids.size(); i += 3) {
    std::vector<uint32_t> before = mask_of(*m);
    for (size_t j = i; j < i + 4; ++j) ASSERT_TRUE(m->accept(ids[j]));
    ASSERT_TRUE(m->rollback(4).ok());
    ASSERT_EQ(mask_of(*m), before) << "at token " << i;
    for (size_t j = i; j < i + 3; ++j) ASSERT_TRUE(m->accept(ids[j]));
  }
  walk_document(*rv, GrammarSpec::choice({"positive", "negative", "neutral"}), "neutral");
  walk_document(*rv, GrammarSpec::regex("[A-Z][a-z]+ [0-9]{4}"), "March 2024");
}

// Gemma 3: a SentencePiece-style vocabulary (pieces with U+2581 for spaces, byte-fallback tokens).
TEST(RealVocabTest, GemmaSentencePieceVocabulary) {
  REQUIRE_MODEL(rv, "gemma3-270m.Q4_K_M.gguf");
  walk_document(*rv, GrammarSpec::json_schema(kPersonSchema), kPersonDoc);
  walk_document(*rv, GrammarSpec::choice({"caf\xc3\xa9 \xe2\x98\x95", "tea"}),
                "caf\xc3\xa9 \xe2\x98\x95");
}

TEST(RealVocabTest, QwenLargeVocabulary) {
  REQUIRE_MODEL(rv, "qwen2.5-coder-0.5b.gguf");
  EXPECT_GT(rv->vocab->size(), 150000);
  walk_document(*rv, GrammarSpec::json_schema(kPersonSchema), kPersonDoc);
}

}  // namespace
}  // namespace dspark
