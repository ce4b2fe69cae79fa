// Grammar engine for constrained decoding (structured outputs): compiles a JSON schema, "any JSON
// object", a regex, a list of choices or an EBNF grammar into a token-level mask over the model's
// vocabulary. Built on xgrammar's C++ core (no xgrammar type appears here); every failure comes
// back as an Error naming the problem, never as an exception or an abort.
//
// Use: one GrammarVocab per model (from its tokenizer), one GrammarCompiler over it (caches
// compiled grammars, thread-safe), one GrammarMatcher per request (not thread-safe; one thread at
// a time). The mask bit for token t is bit (t % 32) of word t / 32; a set bit means allowed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dspark/status.h"

namespace dspark {

class Tokenizer;

// Number of uint32_t words in a mask over `vocab_size` tokens: ceil(vocab_size / 32).
inline int32_t grammar_mask_words(int32_t vocab_size) {
  return (vocab_size + 31) / 32;
}

// The vocabulary as the grammar engine sees it: every token's bytes, special tokens (never
// allowed) and the end-of-sequence ids (allowed only where the grammar may end). Immutable.
class GrammarVocab {
 public:
  // From a tokenizer: token_bytes(id, false) of every ordinary token; is_special() tokens are
  // never allowed. eos_ids: the ids that end generation (empty: tokenizer.stop_ids()).
  // vocab_size: the model's logits width when it exceeds the tokenizer's (extra ids are never
  // allowed); -1: the tokenizer's vocab_size().
  static Result<std::shared_ptr<const GrammarVocab>> from_tokenizer(
      const Tokenizer& tokenizer, std::span<const int32_t> eos_ids = {}, int32_t vocab_size = -1);
  // From raw token bytes, id = index; an empty string marks a token that is never allowed
  // (special/control). eos_ids must be non-empty and < vocab_size (-1: tokens.size()).
  static Result<std::shared_ptr<const GrammarVocab>> from_tokens(
      std::span<const std::string> tokens, std::span<const int32_t> eos_ids,
      int32_t vocab_size = -1);

  ~GrammarVocab();
  int32_t size() const;        // mask width in tokens
  int32_t mask_words() const;  // grammar_mask_words(size())
  const std::vector<int32_t>& eos_ids() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }
  explicit GrammarVocab(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

enum class GrammarKind {
  JsonSchema,  // text: a JSON schema document
  JsonObject,  // any JSON object (OpenAI's response_format json_object); text unused
  Regex,       // text: a regular expression the whole output must match
  Choice,      // choices: the output is exactly one of them
  Ebnf,        // text: an EBNF grammar (xgrammar/GBNF dialect) with a `root` rule
};

const char* grammar_kind_name(GrammarKind kind);

struct GrammarSpec {
  GrammarKind kind = GrammarKind::JsonObject;
  std::string text;
  std::vector<std::string> choices;
  // JSON kinds: any whitespace between tokens (true), or the compact layout
  // {"a": 1, "b": [2, 3]} only (false: the model cannot loop on whitespace).
  bool any_whitespace = true;
  // JSON schema: properties and items the schema does not name are not allowed (as if
  // additionalProperties/unevaluatedItems were false where unspecified).
  bool strict = true;
  // Compile even where the engine would not enforce part of the spec (JSON Schema keywords such
  // as "not", "uniqueItems", "contains"; an allOf of several schemas; a remote $ref; regex
  // lookaheads): CompiledGrammar::warnings() lists them. false: such a spec is an error naming
  // the feature.
  bool ignore_unsupported = false;
  // JSON kinds: literal text the output has before and after the document (a tool call's
  // "<tool_call>\n" and "\n</tool_call>"); empty: none. Valid UTF-8.
  std::string prefix, suffix;

  static GrammarSpec json_schema(std::string schema, bool strict = true);
  static GrammarSpec json_object();
  static GrammarSpec regex(std::string pattern);
  static GrammarSpec choice(std::vector<std::string> choices);
  static GrammarSpec ebnf(std::string grammar);
  // Cache key: the kind, the options and the text (or choices), unambiguously.
  std::string key() const;
};

class GrammarMatcher;

// A grammar compiled against one vocabulary; shared by every request that uses it. Immutable.
class CompiledGrammar {
 public:
  ~CompiledGrammar();
  GrammarKind kind() const;
  const std::shared_ptr<const GrammarVocab>& vocab() const;
  size_t memory_bytes() const;
  // The parts of the spec the grammar does not enforce (only with ignore_unsupported).
  const std::vector<std::string>& warnings() const;
  // A fresh matcher at the start of the output.
  Result<std::unique_ptr<GrammarMatcher>> make_matcher() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }
  explicit CompiledGrammar(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

struct GrammarCompilerOptions {
  int threads = 1;          // xgrammar's compile threads (per compile)
  size_t max_cached = 256;  // compiled grammars kept; the oldest is dropped beyond this
};

// Compiles specs for one vocabulary and caches the results (errors too) by GrammarSpec::key(),
// so a repeated schema compiles once; concurrent requests for one key wait for one compile.
// Thread-safe.
class GrammarCompiler {
 public:
  explicit GrammarCompiler(std::shared_ptr<const GrammarVocab> vocab,
                           GrammarCompilerOptions options = {});
  ~GrammarCompiler();
  GrammarCompiler(const GrammarCompiler&) = delete;
  GrammarCompiler& operator=(const GrammarCompiler&) = delete;

  Result<std::shared_ptr<const CompiledGrammar>> compile(const GrammarSpec& spec);
  // Compiles without the cache.
  Result<std::shared_ptr<const CompiledGrammar>> compile_uncached(const GrammarSpec& spec) const;
  size_t cached() const;  // entries in the cache
  const std::shared_ptr<const GrammarVocab>& vocab() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The state of one request's output against its grammar. One thread at a time.
class GrammarMatcher {
 public:
  ~GrammarMatcher();

  // Writes the allowed tokens for the next position into mask[vocab().mask_words()]. After
  // termination nothing is allowed. Errors only on a mask of the wrong size.
  Status fill_mask(std::span<uint32_t> mask);
  // Advances by one token; false (and no change) if the grammar forbids it or the matcher has
  // terminated. Accepting an EOS id where the grammar may end terminates the matcher.
  bool accept(int32_t token);
  // Undoes the last k accepted tokens (0 <= k <= accepted()); the mask is then exactly the one
  // before them. Used when speculative drafts are rejected.
  Status rollback(int k);
  // Back to the start of the output.
  void reset();

  bool is_terminated() const;  // an EOS id was accepted
  bool can_end() const;        // the output so far is a complete match (EOS is allowed)
  int accepted() const;        // tokens accepted since the start (or reset), less rollbacks

  // The only token the grammar allows next, if exactly one is allowed (EOS included in the
  // count); nullopt otherwise. A drafter may propose it with survival 1.0.
  std::optional<int32_t> forced_token();
  // The run of such tokens from here, up to max_tokens: each is the only allowed token after
  // the ones before it. Leaves the matcher as it was.
  std::vector<int32_t> forced_tokens(int max_tokens);
  // The longest byte string every continuation starts with (xgrammar's jump-forward string);
  // empty where the next byte is not determined. Does not change the matcher.
  std::string forced_string();

  const GrammarVocab& vocab() const;

  struct Impl;
  explicit GrammarMatcher(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// Sets every logit the mask forbids to -infinity (logits[i] for i beyond the mask's tokens too):
// what sampling and draft acceptance apply before they read the target's distribution.
void grammar_apply_mask(std::span<const uint32_t> mask, std::span<float> logits);

// The single allowed token of a mask over vocab_size tokens, or nullopt (none or several).
std::optional<int32_t> grammar_single_token(std::span<const uint32_t> mask, int32_t vocab_size);

}  // namespace dspark
