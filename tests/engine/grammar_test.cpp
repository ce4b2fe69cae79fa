// Constrained decoding through the engine on tiny models: greedy output under a grammar is the
// same with every drafter as without speculation, token for token and logprob for logprob
// (drafts the grammar forbids are cut, verified rows are masked along their paths), every
// output matches its grammar, a grammar that ends stops the request, and n > 1 choices each
// keep their own matcher.
#include <gtest/gtest.h>

#include <string>

#include "engine/engine_helpers.h"

namespace dspark::test {
namespace {

using engine::Completion;
using engine::Engine;
using engine::SpecMethod;

struct GrammarCase {
  const char* name;
  SpecMethod method;
  const char* draft;  // draft model file ("" for ngram) or the DSpark checkpoint
  int32_t top_k;
};

std::shared_ptr<const CompiledGrammar> compile(const Loaded& l, const GrammarSpec& spec) {
  auto vocab = GrammarVocab::from_tokenizer(*l.tokenizer, {}, l.model->config().vocab_size);
  EXPECT_TRUE(vocab.ok()) << vocab.error().message;
  if (!vocab.ok()) return nullptr;
  auto compiled = GrammarCompiler(vocab.value()).compile(spec);
  EXPECT_TRUE(compiled.ok()) << compiled.error().message;
  return compiled.ok() ? compiled.value() : nullptr;
}

// Whether a fresh matcher accepts every token of the output in order.
bool matches(const CompiledGrammar& grammar, const std::vector<int32_t>& tokens) {
  auto m = grammar.make_matcher();
  if (!m.ok()) return false;
  for (int32_t t : tokens) {
    if (!(*m)->accept(t)) return false;
  }
  return true;
}

class GrammarSpecTest : public ::testing::TestWithParam<GrammarCase> {
 protected:
  void SetUp() override {
    target_ = load_model(spec_target_path(GetParam().method));
    ASSERT_TRUE(target_.model) << target_.error;
    vocab_ = target_.model->config().vocab_size;
  }
  engine::EngineConfig config(const GrammarCase& c, bool speculate) {
    engine::EngineConfig ec = engine_config(target_, 512, 4, true);
    ec.max_num_seqs = 8;
    if (!speculate) return ec;
    use_drafter(ec, c.method, c.draft, target_, &draft_);
    ec.spec.max_depth = 4;
    ec.spec.tree_budget = 10;
    ec.spec.draft_top_k = c.top_k;
    ec.spec.profile = false;
    ec.spec.fixed_depth = 4;  // verify every surviving draft
    return ec;
  }
  std::vector<Completion> run(const engine::EngineConfig& ec,
                              const std::shared_ptr<const CompiledGrammar>& grammar, int n,
                              engine::EngineStats* stats) {
    auto e = Engine::create(ec);
    EXPECT_TRUE(e.ok()) << e.error().message;
    if (!e.ok()) return {};
    std::vector<std::shared_ptr<engine::Stream>> streams;
    std::vector<std::vector<int32_t>> ps = mixed_prompts(n, vocab_);
    for (int i = 0; i < n; ++i) {
      // Repeated stretches, so that prompt lookup proposes something.
      const std::vector<int32_t> motif = token_run(6, vocab_, uint32_t(77 + i % 3));
      for (int rep = 0; rep < 3; ++rep) ps[i].insert(ps[i].end(), motif.begin(), motif.end());
      engine::Request r;
      r.prompt = ps[i];
      r.params.max_tokens = 24;
      r.params.logprobs = true;
      r.params.top_logprobs = 2;
      r.grammar = grammar;
      auto s = (*e)->submit(r);
      EXPECT_TRUE(s.ok()) << s.error().message;
      if (s.ok()) streams.push_back(s.value());
    }
    std::vector<Completion> out;
    for (auto& s : streams) out.push_back(s->collect());
    Status idle = (*e)->check_kv_idle();
    EXPECT_TRUE(idle.ok()) << idle.message();
    if (stats) *stats = (*e)->stats();
    return out;
  }

  Loaded target_, draft_;
  int vocab_ = 0;
};

TEST_P(GrammarSpecTest, GreedyConstrainedEqualsPlainConstrained) {
  const GrammarCase c = GetParam();
  GrammarSpec compact = GrammarSpec::json_object();
  compact.any_whitespace = false;
  int64_t verified = 0, accepted = 0;
  for (const GrammarSpec& spec : {compact, GrammarSpec::regex("[^aeiou]{60,}")}) {
    const auto grammar = compile(target_, spec);
    ASSERT_TRUE(grammar);
    const std::vector<Completion> plain = run(config(c, false), grammar, 8, nullptr);
    engine::EngineStats st;
    const std::vector<Completion> spec_out = run(config(c, true), grammar, 8, &st);
    ASSERT_EQ(plain.size(), spec_out.size());
    for (size_t i = 0; i < plain.size(); ++i) {
      ASSERT_NE(plain[i].final.reason, engine::FinishReason::kError) << plain[i].final.message;
      EXPECT_TRUE(matches(*grammar, plain[i].tokens)) << spec.key() << " request " << i;
      EXPECT_EQ(spec_out[i].tokens, plain[i].tokens) << c.name << " " << spec.key() << " " << i;
      EXPECT_EQ(spec_out[i].text, plain[i].text);
      EXPECT_EQ(spec_out[i].final.reason, plain[i].final.reason);
      ASSERT_EQ(spec_out[i].logprobs.size(), spec_out[i].tokens.size());
      for (size_t t = 0; t < plain[i].logprobs.size() && t < spec_out[i].logprobs.size(); ++t) {
        EXPECT_EQ(spec_out[i].logprobs[t].logprob, plain[i].logprobs[t].logprob);
        EXPECT_EQ(spec_out[i].logprobs[t].top, plain[i].logprobs[t].top);
        // Masked logprobs: the chosen token and its alternatives are all allowed.
        EXPECT_GT(plain[i].logprobs[t].logprob, -1e30f);
      }
    }
    verified += st.spec.n_verified;
    accepted += st.spec.n_accepted;
    size_t n_tokens = 0;
    for (const Completion& p : plain) n_tokens += p.tokens.size();
    std::printf("%s %s: %zu tokens in %zu requests, %ld drafted, %ld verified, %ld accepted\n",
                c.name, grammar_kind_name(spec.kind), n_tokens, plain.size(),
                long(st.spec.n_drafted), long(st.spec.n_verified), long(st.spec.n_accepted));
  }
  EXPECT_GT(verified, 0) << "nothing was verified: the test would prove nothing";
  EXPECT_GT(accepted, 0) << "nothing was accepted: the test would prove nothing";
}

INSTANTIATE_TEST_SUITE_P(
    Drafters, GrammarSpecTest,
    ::testing::Values(GrammarCase{"Ngram", SpecMethod::kNgram, "", 1},
                      GrammarCase{"SelfChain", SpecMethod::kDraftModel, "llama-f32.gguf", 1},
                      GrammarCase{"SelfTree", SpecMethod::kDraftModel, "llama-f32.gguf", 3},
                      GrammarCase{"Q8Tree", SpecMethod::kDraftModel, "llama-q8_0.gguf", 3},
                      GrammarCase{"DSpark", SpecMethod::kDSpark, kDSparkCheckpoint, 1}),
    [](const auto& info) { return std::string(info.param.name); });

class GrammarEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = load_model(tiny_model_path("llama-f32.gguf"));
    ASSERT_TRUE(target_.model) << target_.error;
  }
  Loaded target_;
};

// A grammar that ends (one of a few choices) stops the request with kStop, even with
// ignore_eos, at temperature 0 and 1; n > 1 choices each match on their own.
TEST_F(GrammarEngineTest, EndedGrammarStopsTheRequest) {
  const auto grammar =
      compile(target_, GrammarSpec::choice({"yes", "no", "maybe not", "certainly"}));
  ASSERT_TRUE(grammar);
  engine::EngineConfig ec = engine_config(target_, 256, 4, true);
  ec.spec.method = SpecMethod::kNgram;
  ec.spec.profile = false;
  auto e = Engine::create(ec);
  ASSERT_TRUE(e.ok()) << e.error().message;
  for (bool ignore_eos : {false, true}) {
    for (float temperature : {0.0f, 1.0f}) {
      engine::Request r;
      r.prompt = token_run(12, target_.model->config().vocab_size, 3);
      r.params.max_tokens = 30;
      r.params.temperature = temperature;
      r.params.ignore_eos = ignore_eos;
      r.params.seed = 7;
      r.grammar = grammar;
      auto streams = (*e)->submit_n(r, 3);
      ASSERT_TRUE(streams.ok()) << streams.error().message;
      for (auto& s : *streams) {
        const Completion got = s->collect();
        EXPECT_EQ(got.final.reason, engine::FinishReason::kStop) << got.final.message;
        EXPECT_TRUE(got.text == "yes" || got.text == "no" || got.text == "maybe not" ||
                    got.text == "certainly")
            << "'" << got.text << "'";
        EXPECT_TRUE(matches(*grammar, got.tokens));
      }
    }
  }
  Status idle = (*e)->check_kv_idle();
  EXPECT_TRUE(idle.ok()) << idle.message();
}

// min_tokens holding back the EOS that is all the grammar allows: the request ends with an
// error saying so (the server refuses the combination), never a token outside the grammar,
// and its KV is freed.
TEST_F(GrammarEngineTest, MinTokensAgainstAnEndedGrammarIsAnError) {
  const auto grammar = compile(target_, GrammarSpec::choice({"yes"}));
  ASSERT_TRUE(grammar);
  auto e = Engine::create(engine_config(target_, 64, 4, true));
  ASSERT_TRUE(e.ok()) << e.error().message;
  engine::Request r;
  r.prompt = token_run(8, target_.model->config().vocab_size, 5);
  r.params.max_tokens = 20;
  r.params.min_tokens = 10;
  r.grammar = grammar;
  const Completion got = (*e)->submit(r).value()->collect();
  EXPECT_EQ(got.final.reason, engine::FinishReason::kError);
  EXPECT_NE(got.final.message.find("grammar"), std::string::npos) << got.final.message;
  EXPECT_EQ(got.text.rfind("yes", 0), 0u) << got.text;
  Status idle = (*e)->check_kv_idle();
  EXPECT_TRUE(idle.ok()) << idle.message();
}

// A grammar compiled for another vocabulary is refused at submit.
TEST_F(GrammarEngineTest, GrammarOfAnotherVocabularyIsRefused) {
  std::vector<std::string> tokens = {"a", "b", ""};
  std::vector<int32_t> eos = {2};
  auto vocab = GrammarVocab::from_tokens(tokens, eos);
  ASSERT_TRUE(vocab.ok()) << vocab.error().message;
  auto grammar = GrammarCompiler(vocab.value()).compile(GrammarSpec::regex("a+"));
  ASSERT_TRUE(grammar.ok()) << grammar.error().message;
  auto e = Engine::create(engine_config(target_, 64, 4, true));
  ASSERT_TRUE(e.ok());
  engine::Request r;
  r.prompt = {1, 2, 3};
  r.params.max_tokens = 4;
  r.grammar = grammar.value();
  auto s = (*e)->submit(r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("vocabulary"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace dspark::test
