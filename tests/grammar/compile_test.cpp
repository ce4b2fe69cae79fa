// Compiling: choices, regexes and EBNF; bad inputs come back as errors (never a crash or an
// exception); the cache compiles a spec once, also under concurrent callers.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "dspark/grammar.h"
#include "grammar_test_util.h"

namespace dspark {
namespace {

using namespace grammar_testing;

class CompileTest : public TinyGrammarTest {
 protected:
  // True when the whole text walks through and EOS may follow it.
  bool matches(const GrammarSpec& spec, const std::string& text) {
    auto m = matcher_for(compiler, spec);
    std::vector<int32_t> ids = tiny.encode(text);
    return m && walk(*m, ids, {tiny.start}) == ids.size() && m->accept(tiny.eos);
  }
  std::string error_of(const GrammarSpec& spec) {
    auto g = compiler.compile(spec);
    return g.ok() ? std::string() : g.error().message;
  }
};

TEST_F(CompileTest, Choices) {
  const GrammarSpec spec = GrammarSpec::choice({"red", "green", "blue", "say \"hi\"\n\\"});
  EXPECT_TRUE(matches(spec, "green"));
  EXPECT_TRUE(matches(spec, "say \"hi\"\n\\"));
  EXPECT_FALSE(matches(spec, "gree"));
  EXPECT_FALSE(matches(spec, "gray"));
  EXPECT_FALSE(matches(spec, "greens"));
  EXPECT_TRUE(matches(GrammarSpec::choice({"caf\xc3\xa9", "na\xc3\xafve"}), "caf\xc3\xa9"));
  auto m = matcher_for(compiler, spec);
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->accept(tiny.id("b")));
  EXPECT_EQ(m->forced_string(), "lue");
}

TEST_F(CompileTest, ChoiceErrors) {
  EXPECT_NE(error_of(GrammarSpec::choice({})), "");
  EXPECT_NE(error_of(GrammarSpec::choice({"a", ""})).find("empty"), std::string::npos);
  EXPECT_NE(error_of(GrammarSpec::choice({"\xff"})).find("UTF-8"), std::string::npos);
}

TEST_F(CompileTest, Regex) {
  const GrammarSpec spec = GrammarSpec::regex("[0-9]{3}-[a-z]+");
  EXPECT_TRUE(matches(spec, "123-abc"));
  EXPECT_FALSE(matches(spec, "12-abc"));
  EXPECT_FALSE(matches(spec, "123-"));
  EXPECT_FALSE(matches(spec, "123-abC"));
  EXPECT_TRUE(matches(GrammarSpec::regex("(yes|no)!?"), "no!"));
  EXPECT_TRUE(matches(GrammarSpec::regex("\\d+\\.\\d{2}"), "12.50"));
}

TEST_F(CompileTest, Ebnf) {
  const GrammarSpec spec = GrammarSpec::ebnf(R"g(root ::= "(" item ("," item)* ")"
item ::= [a-z]+)g");
  EXPECT_TRUE(matches(spec, "(ab,c)"));
  EXPECT_FALSE(matches(spec, "(ab,)"));
}

TEST_F(CompileTest, BadInputsAreErrorsNamingTheProblem) {
  struct Case {
    GrammarSpec spec;
    std::string mentions;  // a word the message must contain
  };
  const std::vector<Case> cases = {
      {GrammarSpec::json_schema(R"({"type": "object")"), "json_schema"},  // malformed JSON
      {GrammarSpec::json_schema(R"({"type": "widget"})"), "widget"},      // unknown type
      {GrammarSpec::json_schema(R"({"$ref": "#/$defs/missing"})"), "missing"},
      {GrammarSpec::json_schema(""), "empty"},
      {GrammarSpec::regex("[a-"), "regex"},
      {GrammarSpec::regex("(ab"), "regex"},
      {GrammarSpec::ebnf("root ::= "), "ebnf"},
      {GrammarSpec::ebnf("start ::= \"a\""), "root"},
      {GrammarSpec::ebnf("root ::= undefined_rule"), "undefined_rule"},
  };
  for (const Case& c : cases) {
    std::string error = error_of(c.spec);
    EXPECT_NE(error, "") << c.spec.key() << " compiled";
    EXPECT_NE(error.find(c.mentions), std::string::npos) << c.spec.key() << ": " << error;
  }
}

// Odd schemas: each either compiles or gives an error; none may crash the process.
TEST_F(CompileTest, OddSchemasNeverCrash) {
  std::string deep = R"({"type": "string"})";
  for (int i = 0; i < 200; ++i) deep = R"({"type": "array", "items": )" + deep + "}";
  const std::vector<std::string> schemas = {
      "true",
      "false",
      "[]",
      "\"string\"",
      "42",
      "null",
      R"({"type": "integer", "minimum": 5, "maximum": 1})",
      R"({"type": "string", "minLength": 4, "maxLength": 2})",
      R"({"type": "string", "minLength": -1})",
      R"({"type": "string", "pattern": "(("})",
      R"({"type": "string", "format": "no-such-format"})",
      R"({"type": ["string", "null"]})",
      R"({"type": "array", "minItems": 3, "maxItems": 1})",
      R"({"type": "object", "properties": {"a": {"$ref": "#"}}})",
      R"({"type": "object", "required": ["absent"]})",
      R"({"enum": []})",
      R"({"anyOf": []})",
      R"({"allOf": [{"type": "string"}, {"type": "integer"}]})",
      R"({"not": {"type": "string"}})",
      R"({"type": "number", "multipleOf": 0})",
      R"({"$ref": "http://example.com/schema.json"})",
      R"({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})",
      R"({"type": "object", "properties": 5})",
      R"({"type": "array", "items": "x"})",
      deep,
  };
  for (const std::string& s : schemas) {
    for (bool strict : {true, false}) {
      auto g = compiler.compile(GrammarSpec::json_schema(s, strict));
      if (g.ok()) {
        auto m = g.value()->make_matcher();
        ASSERT_TRUE(m.ok()) << s;
        mask_of(*m.value());
      } else {
        EXPECT_NE(g.error().message, "") << s;
      }
      // The log shows what each odd schema gives (the report on xgrammar's behaviour).
      std::printf("[schema] %s%s -> %s\n", s.substr(0, 70).c_str(), strict ? "" : " (loose)",
                  g.ok() ? "compiled" : g.error().message.c_str());
    }
  }
}

TEST_F(CompileTest, UnenforcedFeaturesAreErrorsUnlessIgnored) {
  struct Case {
    std::string schema;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {R"({"type": "string", "not": {"const": "x"}})", "'not'"},
      {R"({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true}}})",
       "'uniqueItems' (at #/properties/a)"},
      {R"({"type": "array", "items": {"if": {"type": "string"}}})", "'if'"},
      {R"({"anyOf": [{"type": "array", "contains": {"type": "integer"}}]})", "'contains'"},
      {R"({"allOf": [{"type": "string"}, {"maxLength": 3}]})", "allOf"},
      {R"({"$ref": "https://example.com/s.json"})", "https://example.com/s.json"},
  };
  for (const Case& c : cases) {
    std::string error = error_of(GrammarSpec::json_schema(c.schema));
    EXPECT_NE(error.find("unsupported"), std::string::npos) << c.schema << ": " << error;
    EXPECT_NE(error.find(c.mentions), std::string::npos) << c.schema << ": " << error;
    GrammarSpec lenient = GrammarSpec::json_schema(c.schema);
    lenient.ignore_unsupported = true;
    auto g = compiler.compile(lenient);
    EXPECT_TRUE(g.ok()) << c.schema << ": " << (g.ok() ? "" : g.error().message);
  }
  // The same words as property names or as data are fine.
  EXPECT_EQ(error_of(GrammarSpec::json_schema(
                R"({"type": "object", "properties": {"not": {"type": "string"}}})")),
            "");
  EXPECT_EQ(error_of(GrammarSpec::json_schema(R"({"enum": [{"not": 1}, "if"]})")), "");
  // Regex features the engine would drop (an anchor inside the pattern) or does not have.
  EXPECT_NE(error_of(GrammarSpec::regex("a$b")).find("unsupported"), std::string::npos);
  EXPECT_NE(error_of(GrammarSpec::regex("a(?=b)b")).find("Lookahead"), std::string::npos);
  GrammarSpec lenient = GrammarSpec::regex("a$b");
  lenient.ignore_unsupported = true;
  auto g = compiler.compile(lenient);
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(g.value()->warnings().empty());
}

TEST_F(CompileTest, CacheCompilesOnce) {
  auto a = compiler.compile(GrammarSpec::json_schema(kPersonSchema));
  auto b = compiler.compile(GrammarSpec::json_schema(kPersonSchema));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a.value().get(), b.value().get());
  EXPECT_EQ(compiler.cached(), 1u);
  GrammarSpec compact = GrammarSpec::json_schema(kPersonSchema);
  compact.any_whitespace = false;
  auto c = compiler.compile(compact);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a.value().get(), c.value().get());
  EXPECT_FALSE(compiler.compile(GrammarSpec::regex("[")).ok());
  EXPECT_FALSE(compiler.compile(GrammarSpec::regex("[")).ok());
  EXPECT_EQ(compiler.cached(), 3u) << "errors are cached too";
  EXPECT_NE(GrammarSpec::choice({"ab", "c"}).key(), GrammarSpec::choice({"a", "bc"}).key());
  EXPECT_GT(a.value()->memory_bytes(), 0u);
  EXPECT_EQ(a.value()->kind(), GrammarKind::JsonSchema);
}

TEST_F(CompileTest, CacheEvictsTheOldest) {
  GrammarCompiler small(vocab, GrammarCompilerOptions{1, 2});
  auto first = small.compile(GrammarSpec::choice({"a"}));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(small.compile(GrammarSpec::choice({"b"})).ok());
  ASSERT_TRUE(small.compile(GrammarSpec::choice({"c"})).ok());
  EXPECT_EQ(small.cached(), 2u);
  auto again = small.compile(GrammarSpec::choice({"a"}));
  ASSERT_TRUE(again.ok());
  EXPECT_NE(first.value().get(), again.value().get()) << "compiled again after eviction";
}

TEST_F(CompileTest, ConcurrentCallersShareOneCompile) {
  const std::vector<GrammarSpec> specs = {GrammarSpec::json_schema(kPersonSchema),
                                          GrammarSpec::regex("[a-z]{2,5}"),
                                          GrammarSpec::choice({"x", "y"})};
  std::vector<std::vector<const CompiledGrammar*>> seen(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < specs.size(); ++i) {
        auto g = compiler.compile(specs[(i + t) % specs.size()]);
        seen[t].push_back(g.ok() ? g.value().get() : nullptr);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(compiler.cached(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    auto g = compiler.compile(specs[i]);
    ASSERT_TRUE(g.ok());
    for (int t = 0; t < 8; ++t) {
      EXPECT_EQ(seen[t][(i + specs.size() - t % specs.size()) % specs.size()], g.value().get());
    }
  }
}

}  // namespace
}  // namespace dspark
