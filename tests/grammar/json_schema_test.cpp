// JSON schema grammars on the tiny vocabulary: a valid document walks through token by token and
// terminates; documents that break the schema are cut at the first offending token.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dspark/grammar.h"
#include "grammar_test_util.h"

namespace dspark {
namespace {

using namespace grammar_testing;

class JsonSchemaTest : public TinyGrammarTest {
 protected:
  // Index of the first token of `doc` the schema forbids (doc.size() in tokens if none).
  size_t first_rejected(const GrammarSpec& spec, const std::string& doc) {
    auto m = matcher_for(compiler, spec);
    return m ? walk(*m, tiny.encode(doc), {tiny.start}) : 0;
  }
  // The prefix of doc covered by the tokens before index i.
  std::string prefix_tokens(const std::string& doc, size_t i) {
    std::string out;
    std::vector<int32_t> ids = tiny.encode(doc);
    for (size_t k = 0; k < i && k < ids.size(); ++k) out += tiny.tokens[ids[k]];
    return out;
  }
};

TEST_F(JsonSchemaTest, ValidDocumentWalksAndTerminates) {
  for (bool any_ws : {true, false}) {
    GrammarSpec spec = GrammarSpec::json_schema(kPersonSchema);
    spec.any_whitespace = any_ws;
    auto m = matcher_for(compiler, spec);
    ASSERT_TRUE(m);
    std::vector<int32_t> ids = tiny.encode(kPersonDoc);
    ASSERT_EQ(walk(*m, ids, {tiny.start}), ids.size()) << "any_whitespace " << any_ws;
    EXPECT_TRUE(m->can_end());
    EXPECT_FALSE(m->is_terminated());
    std::vector<uint32_t> mask = mask_of(*m);
    EXPECT_TRUE(allowed(mask, tiny.eos));
    EXPECT_FALSE(allowed(mask, tiny.start));
    EXPECT_TRUE(m->accept(tiny.eos));
    EXPECT_TRUE(m->is_terminated());
    EXPECT_EQ(count_allowed(mask_of(*m)), 0) << "nothing is allowed after termination";
    EXPECT_FALSE(m->accept(tiny.id("}")));
  }
}

TEST_F(JsonSchemaTest, EosOnlyWhereTheDocumentIsComplete) {
  auto m = matcher_for(compiler, GrammarSpec::json_schema(kPersonSchema));
  ASSERT_TRUE(m);
  std::vector<int32_t> ids = tiny.encode(kPersonDoc);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_FALSE(allowed(mask_of(*m), tiny.eos)) << "EOS allowed after token " << i;
    EXPECT_FALSE(m->accept(tiny.eos));
    ASSERT_TRUE(m->accept(ids[i]));
  }
  EXPECT_TRUE(allowed(mask_of(*m), tiny.eos));
}

TEST_F(JsonSchemaTest, ViolationsAreCutAtTheOffendingToken) {
  const GrammarSpec spec = GrammarSpec::json_schema(kPersonSchema);
  struct Case {
    std::string doc;
    std::string valid_prefix;  // what the grammar accepts before the offending token
  };
  const std::string head = R"({"name": "Ada", "age": )";
  const std::vector<Case> cases = {
      {head + "-3}", head},                                          // below the minimum
      {head + "200}", head + "20"},                                  // above the maximum
      {head + "3.5}", head + "3"},                                   // not an integer
      {R"({"name": 5})", R"({"name": )"},                            // wrong type
      {R"({"nick": "x"})", R"({"n)"},                                // unknown property
      {R"({"age": 3})", R"({")"},                                    // a required property skipped
      {head + R"(36, "role": "root"})", head + R"(36, "role": ")"},  // not in the enum
      {head + R"(36, "role": "admin", "tags": [1]})", head + R"(36, "role": "admin", "tags": [)"},
  };
  for (const Case& c : cases) {
    size_t i = first_rejected(spec, c.doc);
    ASSERT_LT(i, tiny.encode(c.doc).size()) << c.doc << " was accepted whole";
    std::string accepted = prefix_tokens(c.doc, i);
    // Greedy tokens may straddle the boundary: the accepted text is a prefix of the valid part
    // and reaches at least the last token boundary before it.
    EXPECT_EQ(c.valid_prefix.compare(0, accepted.size(), accepted), 0) << c.doc;
    EXPECT_GE(accepted.size() + tiny.longest, c.valid_prefix.size()) << c.doc;
  }
}

TEST_F(JsonSchemaTest, ZipBoundsThroughTheReference) {
  const GrammarSpec spec = GrammarSpec::json_schema(kPersonSchema);
  const std::string head =
      R"({"name": "A", "age": 1, "role": "user", "tags": [], "address": {"street": "s", "zip": )";
  EXPECT_EQ(first_rejected(spec, head + "12345}}"), tiny.encode(head + "12345}}").size());
  EXPECT_LT(first_rejected(spec, head + "123}}"), tiny.encode(head + "123}}").size());
  EXPECT_LT(first_rejected(spec, head + "123456}}"), tiny.encode(head + "123456}}").size());
}

TEST_F(JsonSchemaTest, ArraysRespectMaxItems) {
  const GrammarSpec spec = GrammarSpec::json_schema(kPersonSchema);
  const std::string head = R"({"name": "A", "age": 1, "role": "user", "tags": [)";
  const std::string four = R"("a", "b", "c", "d")";
  auto m = matcher_for(compiler, spec);
  ASSERT_TRUE(m);
  std::vector<int32_t> ids = tiny.encode(head + four);
  ASSERT_EQ(walk(*m, ids), ids.size());
  std::vector<uint32_t> mask = mask_of(*m);
  EXPECT_FALSE(allowed(mask, tiny.id(","))) << "a fifth item";
  EXPECT_TRUE(allowed(mask, tiny.id("]")));
}

TEST_F(JsonSchemaTest, LooseModeAllowsUnknownProperties) {
  const std::string doc = R"({"name": "A", "nick": "x", "age": 1, "role": "user", "tags": [], )"
                          R"("address": {"street": "s", "zip": 12345}})";
  EXPECT_LT(first_rejected(GrammarSpec::json_schema(kPersonSchema, true), doc),
            tiny.encode(doc).size());
  // Not strict: additional properties are allowed where the schema does not forbid them.
  const std::string loose_doc = R"({"name": "A", "age": 1, "role": "user", "tags": [], )"
                                R"("address": {"street": "s", "zip": 12345}, "nick": "x"})";
  EXPECT_EQ(first_rejected(GrammarSpec::json_schema(kPersonSchema, false), loose_doc),
            tiny.encode(loose_doc).size());
}

TEST_F(JsonSchemaTest, JsonObjectTakesAnyObjectOnly) {
  const GrammarSpec spec = GrammarSpec::json_object();
  const std::string doc = R"({"a": [1, 2.5, {"b": null}], "c": "d", "e": true})";
  auto m = matcher_for(compiler, spec);
  ASSERT_TRUE(m);
  ASSERT_EQ(walk(*m, tiny.encode(doc)), tiny.encode(doc).size());
  EXPECT_TRUE(m->accept(tiny.eos));
  EXPECT_EQ(first_rejected(spec, "[1]"), 0u) << "an array is not an object";
  EXPECT_EQ(first_rejected(spec, "\"s\""), 0u);
}

// A prefix and a suffix around the document (a tool call's tags): the whole text walks through,
// the document's keys keep the schema's order, and EOS comes only after the suffix.
TEST_F(JsonSchemaTest, PrefixAndSuffixFrameTheDocument) {
  GrammarSpec spec = GrammarSpec::json_schema(
      R"({"type": "object", "properties": {"name": {"enum": ["f"]}, "arguments": {"type":
      "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}, "required":
      ["name", "arguments"]})");
  spec.any_whitespace = false;
  spec.prefix = "<tool_call>\n";
  spec.suffix = "\n</tool_call>";
  const std::string text =
      "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 12}}\n</tool_call>";
  auto m = matcher_for(compiler, spec);
  ASSERT_TRUE(m);
  const std::vector<int32_t> ids = tiny.encode(text);
  ASSERT_EQ(walk(*m, ids, {tiny.start}), ids.size());
  EXPECT_TRUE(m->can_end());
  // Without the suffix the output is not complete; keys in another order are refused.
  EXPECT_EQ(first_rejected(spec, text.substr(0, text.size() - 13) + "x"),
            tiny.encode(text.substr(0, text.size() - 13)).size());
  const std::string swapped =
      "<tool_call>\n{\"arguments\": {\"x\": 1}, \"name\": \"f\"}\n</tool_call>";
  EXPECT_LT(first_rejected(spec, swapped), tiny.encode(swapped).size());
  // The frame is part of the cache key.
  GrammarSpec bare = spec;
  bare.prefix.clear();
  EXPECT_NE(bare.key(), spec.key());
}

}  // namespace
}  // namespace dspark
