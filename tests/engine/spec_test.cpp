// Speculative decoding through the engine on tiny models: greedy output equals plain greedy
// token for token (every drafter, chains and trees, 1 to 16 concurrent requests, prefix caching
// on and off, forced preemption), logprobs equal too, and seeded sampling keeps the target's
// distribution (chi-square against the exact distribution of the first three tokens), with and
// without a grammar's mask.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/engine_helpers.h"

namespace dspark::test {
namespace {

using engine::Completion;
using engine::Engine;
using engine::SpecMethod;

struct SpecCase {
  const char* name;
  SpecMethod method;
  // Tiny model file of the draft ("" for ngram; the target's own = self) or the DSpark
  // checkpoint folder; a DSpark case runs on kDSparkTarget, the others on llama-f32.gguf.
  const char* draft;
  int32_t top_k;  // children per draft node
  bool prefix_caching;
  int32_t kv_blocks;  // small: preemption
};

class SpecEngineTest : public ::testing::TestWithParam<SpecCase> {
 protected:
  void SetUp() override {
    target_ = load_model(spec_target_path(GetParam().method));
    ASSERT_TRUE(target_.model) << target_.error;
    vocab_ = target_.model->config().vocab_size;
  }
  engine::EngineConfig config(const SpecCase& c) {
    engine::EngineConfig ec = engine_config(target_, c.kv_blocks, 4, c.prefix_caching);
    ec.max_num_seqs = 16;
    use_drafter(ec, c.method, c.draft, target_, &draft_);
    ec.spec.max_depth = 5;
    ec.spec.tree_budget = 10;
    ec.spec.draft_top_k = c.top_k;
    ec.spec.profile = false;
    return ec;
  }
  // Prompts with repeated stretches, so prompt lookup finds matches.
  std::vector<std::vector<int32_t>> prompts(int n) const {
    std::vector<std::vector<int32_t>> out = mixed_prompts(n, vocab_);
    for (int i = 0; i < n; ++i) {
      const std::vector<int32_t> motif = token_run(6, vocab_, uint32_t(77 + i % 3));
      for (int rep = 0; rep < 3; ++rep) out[i].insert(out[i].end(), motif.begin(), motif.end());
    }
    return out;
  }
  static engine::Request greedy(const std::vector<int32_t>& prompt, int32_t max_tokens) {
    engine::Request r;
    r.prompt = prompt;
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    r.params.logprobs = true;
    r.params.top_logprobs = 2;
    return r;
  }

  Loaded target_, draft_;
  int vocab_ = 0;
};

TEST_P(SpecEngineTest, GreedyEqualsPlainAtEveryConcurrency) {
  const SpecCase c = GetParam();
  const int32_t max_tokens = 20;
  const auto ps = prompts(16);
  std::vector<Completion> plain;
  {
    engine::EngineConfig pc = engine_config(target_, 512, 4, false);
    pc.max_num_seqs = 16;
    auto e = Engine::create(pc);
    ASSERT_TRUE(e.ok()) << e.error().message;
    for (const auto& p : ps)
      plain.push_back((*e)->submit(greedy(p, max_tokens)).value()->collect());
  }
  int64_t accepted = 0, verified = 0;
  std::vector<int64_t> accepted_at, verified_at;
  for (int concurrency : {1, 4, 16}) {
    auto e = Engine::create(config(c));
    ASSERT_TRUE(e.ok()) << e.error().message;
    std::vector<std::shared_ptr<engine::Stream>> streams;
    for (int i = 0; i < concurrency; ++i) {
      auto s = (*e)->submit(greedy(ps[i], max_tokens));
      ASSERT_TRUE(s.ok()) << s.error().message;
      streams.push_back(s.value());
    }
    for (int i = 0; i < concurrency; ++i) {
      Completion got = streams[i]->collect();
      ASSERT_EQ(got.final.reason, engine::FinishReason::kLength) << got.final.message;
      EXPECT_EQ(got.tokens, plain[i].tokens)
          << c.name << " concurrency " << concurrency << " request " << i;
      EXPECT_EQ(got.text, plain[i].text);
      ASSERT_EQ(got.logprobs.size(), got.tokens.size());
      for (size_t t = 0; t < got.tokens.size() && t < plain[i].logprobs.size(); ++t) {
        EXPECT_EQ(got.logprobs[t].logprob, plain[i].logprobs[t].logprob) << "token " << t;
        EXPECT_EQ(got.logprobs[t].top, plain[i].logprobs[t].top) << "token " << t;
      }
      // Each speculative round commits its accepted drafts plus one token.
      EXPECT_LE(got.final.spec.n_rounds + got.final.spec.n_accepted, int64_t(got.tokens.size()));
    }
    Status idle = (*e)->check_kv_idle();
    EXPECT_TRUE(idle.ok()) << idle.message();
    const engine::EngineStats st = (*e)->stats();
    accepted += st.spec.n_accepted;
    verified += st.spec.n_verified;
    accepted_at.resize(st.spec.accepted_at.size());
    verified_at.resize(st.spec.verified_at.size());
    for (size_t d = 0; d < st.spec.accepted_at.size(); ++d) {
      accepted_at[d] += st.spec.accepted_at[d];
      verified_at[d] += st.spec.verified_at[d];
    }
    if (c.kv_blocks < 64 && concurrency == 16) {
      EXPECT_GT(st.sched.n_preemptions, 0);
    }
  }
  EXPECT_GT(verified, 0) << "nothing was verified: the test would prove nothing";
  EXPECT_GT(accepted, 0) << "nothing was accepted: the test would prove nothing";
  if (c.method == SpecMethod::kDraftModel && std::string(c.draft) == "llama-f32.gguf") {
    // Self-drafting under greedy: the walk never meets a rejection, at any depth.
    EXPECT_EQ(accepted_at, verified_at) << "self-drafting must be accepted under greedy";
  }
  if (c.method == SpecMethod::kDSpark) {
    // The aligned checkpoint's first block position nearly reproduces the target only when the
    // engine hands it the right features at the right slots (prefill, anchors, accepted drafts).
    ASSERT_FALSE(verified_at.empty());
    EXPECT_GT(double(accepted_at[0]), 0.9 * double(verified_at[0]))
        << accepted_at[0] << " of " << verified_at[0] << " accepted at depth 1";
  }
}

// n completions of one prompt fork its KV (and a feature drafter's context, which lives at the
// same slots): each choice still equals the plain run.
TEST_P(SpecEngineTest, ForkedChoicesEqualPlain) {
  const SpecCase c = GetParam();
  const int32_t max_tokens = 20;
  const std::vector<int32_t> prompt = prompts(1)[0];
  Completion plain;
  {
    auto e = Engine::create(engine_config(target_, 512, 4, false));
    ASSERT_TRUE(e.ok()) << e.error().message;
    plain = (*e)->submit(greedy(prompt, max_tokens)).value()->collect();
  }
  auto e = Engine::create(config(c));
  ASSERT_TRUE(e.ok()) << e.error().message;
  auto streams = (*e)->submit_n(greedy(prompt, max_tokens), 4);
  ASSERT_TRUE(streams.ok()) << streams.error().message;
  for (auto& s : *streams) {
    const Completion got = s->collect();
    ASSERT_EQ(got.final.reason, engine::FinishReason::kLength) << got.final.message;
    EXPECT_EQ(got.tokens, plain.tokens) << c.name;
  }
  EXPECT_GT((*e)->stats().sched.n_forked_tokens, 0);
  EXPECT_GT((*e)->stats().spec.n_accepted, 0)
      << "nothing was accepted: the test would prove nothing";
  Status idle = (*e)->check_kv_idle();
  EXPECT_TRUE(idle.ok()) << idle.message();
}

// A request that opts out of speculation is never drafted for, beside one that speculates in
// the same steps, and both still give plain decoding's tokens.
TEST_P(SpecEngineTest, OptedOutRequestIsNeverDrafted) {
  const SpecCase c = GetParam();
  const auto ps = prompts(2);
  engine::EngineConfig ec = config(c);
  ec.spec.fixed_depth = 3;  // draft every round, so the opt-out is what keeps drafts away
  auto e = Engine::create(ec);
  ASSERT_TRUE(e.ok()) << e.error().message;
  engine::Request out = greedy(ps[0], 20), in = greedy(ps[0], 20);
  out.speculate = false;
  auto s_out = (*e)->submit(out);
  auto s_in = (*e)->submit(in);
  ASSERT_TRUE(s_out.ok() && s_in.ok());
  const Completion got_out = s_out.value()->collect(), got_in = s_in.value()->collect();
  ASSERT_EQ(got_out.final.reason, engine::FinishReason::kLength) << got_out.final.message;
  EXPECT_EQ(got_out.final.spec.n_drafted, 0);
  EXPECT_EQ(got_out.final.spec.n_rounds, 0);
  EXPECT_GT(got_in.final.spec.n_drafted, 0) << "the other request must still speculate";
  EXPECT_EQ(got_out.tokens, got_in.tokens);
  Status idle = (*e)->check_kv_idle();
  EXPECT_TRUE(idle.ok()) << idle.message();
}

// A fixed depth drafts only as deep as it verifies: at 0 the drafter never runs, and a chain at
// depth 2 drafts at most 2 tokens a round. Outputs stay plain decoding's.
TEST_P(SpecEngineTest, FixedDepthDraftsNoDeeperThanItVerifies) {
  const SpecCase c = GetParam();
  const auto ps = prompts(2);
  std::vector<int32_t> plain_tokens;
  for (int32_t depth : {0, 2}) {
    engine::EngineConfig ec = config(c);
    ec.spec.fixed_depth = depth;
    auto e = Engine::create(ec);
    ASSERT_TRUE(e.ok()) << e.error().message;
    auto s = (*e)->submit(greedy(ps[1], 20));
    ASSERT_TRUE(s.ok()) << s.error().message;
    const Completion got = s.value()->collect();
    ASSERT_EQ(got.final.reason, engine::FinishReason::kLength) << got.final.message;
    const auto& spec = got.final.spec;
    if (depth == 0) {
      EXPECT_EQ(spec.n_drafted, 0) << "a fixed depth of 0 must not run the drafter";
      EXPECT_EQ(spec.n_rounds, 0);
      plain_tokens = got.tokens;
    } else {
      EXPECT_EQ(got.tokens, plain_tokens);
      if (c.top_k == 1) {
        EXPECT_LE(spec.n_drafted, 2 * spec.n_rounds) << "chains of depth 2";
      }
    }
    Status idle = (*e)->check_kv_idle();
    EXPECT_TRUE(idle.ok()) << idle.message();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Drafters, SpecEngineTest,
    ::testing::Values(
        SpecCase{"NgramPrefix", SpecMethod::kNgram, "", 1, true, 512},
        SpecCase{"NgramTinyKv", SpecMethod::kNgram, "", 1, false, 40},
        SpecCase{"SelfChain", SpecMethod::kDraftModel, "llama-f32.gguf", 1, true, 512},
        SpecCase{"SelfTreeTinyKv", SpecMethod::kDraftModel, "llama-f32.gguf", 3, true, 40},
        SpecCase{"Q8TreeNoPrefix", SpecMethod::kDraftModel, "llama-q8_0.gguf", 3, false, 512},
        SpecCase{"Q8ChainTinyKv", SpecMethod::kDraftModel, "llama-q8_0.gguf", 1, true, 40},
        SpecCase{"DSparkPrefix", SpecMethod::kDSpark, kDSparkCheckpoint, 1, true, 512},
        SpecCase{"DSparkNoPrefix", SpecMethod::kDSpark, kDSparkCheckpoint, 1, false, 512},
        SpecCase{"DSparkTinyKv", SpecMethod::kDSpark, kDSparkCheckpoint, 1, true, 40}),
    [](const auto& info) { return std::string(info.param.name); });

// Exact probability of each (t1, t2, t3) under plain sampling, from the model's own forward and
// the same logits processors the sampler uses.
// With a grammar, the logits are masked first (a fresh matcher walked along the output).
std::map<std::vector<int32_t>, double> exact_triples(const Model& model,
                                                     const std::vector<int32_t>& prompt,
                                                     const SamplingParams& params,
                                                     const std::vector<int32_t>& eos,
                                                     const CompiledGrammar* grammar) {
  const std::unique_ptr<Backend> backend = make_cpu_backend(1);
  const int64_t vocab = model.config().vocab_size;
  auto dist = [&](const std::vector<int32_t>& output) {
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), output.begin(), output.end());
    KvStorage kv(model.config(), 16, int((all.size() + 15) / 16));
    ForwardBatch b;
    SeqRef s;
    for (int i = 0; i * 16 < int(all.size()); ++i) s.block_table.push_back(i);
    b.seqs.push_back(s);
    for (size_t i = 0; i < all.size(); ++i) {
      b.add_token(all[i], int32_t(i), 0, 16, i + 1 == all.size());
    }
    ForwardOutput out;
    EXPECT_TRUE(model.forward(b, kv, out, *backend).ok());
    if (grammar) {
      auto m = grammar->make_matcher();
      EXPECT_TRUE(m.ok());
      for (int32_t t : output) EXPECT_TRUE((*m)->accept(t));
      std::vector<uint32_t> mask(size_t((*m)->vocab().mask_words()));
      EXPECT_TRUE((*m)->fill_mask(mask).ok());
      grammar_apply_mask(mask, std::span<float>(out.logits.data(), size_t(vocab)));
    }
    apply_logits_processors(params, TokenHistory{prompt, output, eos}, out.logits.data(), vocab);
    std::vector<float> p;
    processed_distribution(params, out.logits.data(), vocab, &p);
    return p;
  };
  std::map<std::vector<int32_t>, double> exact;
  const std::vector<float> p1 = dist({});
  for (int32_t a = 0; a < vocab; ++a) {
    if (p1[a] <= 0) continue;
    const std::vector<float> p2 = dist({a});
    for (int32_t b = 0; b < vocab; ++b) {
      if (p2[b] <= 0) continue;
      const std::vector<float> p3 = dist({a, b});
      for (int32_t c = 0; c < vocab; ++c) {
        if (p3[c] > 0) exact[{a, b, c}] = double(p1[a]) * p2[b] * p3[c];
      }
    }
  }
  return exact;
}

struct SamplingCase {
  const char* name;
  SpecMethod method;
  int32_t top_k;  // draft children
  bool fixed;     // verify every draft (else the controller, which drops useless drafts)
  // A grammar (no vowels) masks the target: forbidden drafts are cut (prompt lookup) or kept
  // only to be rejected (sampled drafts), and the output follows the masked distribution.
  bool masked = false;
};

class SpecSamplingTest : public ::testing::TestWithParam<SamplingCase> {};

// Seeded runs under speculation against the exact joint distribution of the first three tokens
// (the second and third come out of a verification step). Chi-square with cells pooled to an
// expected count >= 5; the 0.1% critical value is approximated by Wilson-Hilferty.
TEST_P(SpecSamplingTest, FirstTokensFollowTheTargetDistribution) {
  const SamplingCase sc = GetParam();
  const bool dspark = sc.method == SpecMethod::kDSpark;
  Loaded target = load_model(tiny_model_path(dspark ? kDSparkTarget : "llama-f32.gguf"));
  ASSERT_TRUE(target.model) << target.error;
  Loaded draft = load_model(tiny_model_path("llama-q8_0.gguf"));
  ASSERT_TRUE(draft.model) << draft.error;
  // A random start, then the model's own greedy continuation: it loops, so prompt lookup
  // proposes what the model tends to say next and some proposals get accepted.
  std::vector<int32_t> prompt = token_run(40, target.model->config().vocab_size, 5);
  {
    auto plain = Engine::create(engine_config(target, 512, 4, false));
    ASSERT_TRUE(plain.ok()) << plain.error().message;
    engine::Request r;
    r.prompt = prompt;
    r.params.max_tokens = 200;
    r.params.ignore_eos = true;
    const Completion c = (*plain)->submit(r).value()->collect();
    prompt.insert(prompt.end(), c.tokens.begin(), c.tokens.end());
  }
  SamplingParams params;
  params.temperature = 1.3f;
  params.top_k = 5;
  params.top_p = 0.9f;
  params.presence_penalty = 0.7f;
  params.max_tokens = 3;
  params.ignore_eos = true;
  std::shared_ptr<const CompiledGrammar> grammar;
  if (sc.masked) {
    auto vocab =
        GrammarVocab::from_tokenizer(*target.tokenizer, {}, target.model->config().vocab_size);
    ASSERT_TRUE(vocab.ok()) << vocab.error().message;
    auto compiled = GrammarCompiler(vocab.value()).compile(GrammarSpec::regex("[^aeiou]{40,}"));
    ASSERT_TRUE(compiled.ok()) << compiled.error().message;
    grammar = compiled.value();
  }
  const auto exact =
      exact_triples(*target.model, prompt, params, target.tokenizer->stop_ids(), grammar.get());

  engine::EngineConfig ec = engine_config(target, 4096, 4, true);
  ec.max_num_seqs = 16;
  // Room for every prompt in one step, so every decode step has budget for drafts.
  ec.max_num_batched_tokens = 8192;
  ec.long_prefill_chunk.reset();
  ec.spec.method = sc.method;
  ec.spec.draft_model = draft.model;
  if (dspark) ec.spec.dspark_checkpoint = tiny_model_path(kDSparkCheckpoint);
  ec.spec.draft_top_k = sc.top_k;
  ec.spec.max_depth = 2;
  ec.spec.profile = false;
  if (sc.fixed) ec.spec.fixed_depth = 2;
  auto e = Engine::create(ec);
  ASSERT_TRUE(e.ok()) << e.error().message;
  const int n_runs = 6000;
  std::map<std::vector<int32_t>, int> seen;
  for (int base = 0; base < n_runs; base += 16) {
    std::vector<std::shared_ptr<engine::Stream>> streams;
    for (int i = base; i < std::min(n_runs, base + 16); ++i) {
      engine::Request r;
      r.prompt = prompt;
      r.params = params;
      r.params.seed = 12345 + uint64_t(i);
      r.grammar = grammar;
      streams.push_back((*e)->submit(r).value());
    }
    for (auto& s : streams) {
      Completion c = s->collect();
      ASSERT_EQ(c.tokens.size(), 3u) << c.final.message;
      ++seen[c.tokens];
    }
  }
  const engine::EngineStats st = (*e)->stats();
  EXPECT_GT(st.spec.n_rounds, n_runs / 2) << "speculation barely ran";
  EXPECT_GT(st.spec.n_accepted, 0);

  double chi2 = 0, pooled_expected = 0, pooled_seen = 0;
  int cells = 0;
  for (const auto& [triple, p] : exact) {
    const double expected = p * n_runs;
    const auto it = seen.find(triple);
    const double got = it == seen.end() ? 0 : it->second;
    if (expected < 5) {
      pooled_expected += expected;
      pooled_seen += got;
      continue;
    }
    chi2 += (got - expected) * (got - expected) / expected;
    ++cells;
  }
  for (const auto& [triple, n] : seen) {
    ASSERT_TRUE(exact.count(triple)) << "sampled a sequence the target gives probability 0";
  }
  if (pooled_expected > 0) {
    chi2 += (pooled_seen - pooled_expected) * (pooled_seen - pooled_expected) / pooled_expected;
    ++cells;
  }
  const double dof = cells - 1;
  const double z = 3.09;  // one-sided 0.1%
  const double critical = dof * std::pow(1 - 2 / (9 * dof) + z * std::sqrt(2 / (9 * dof)), 3);
  EXPECT_LT(chi2, critical) << "chi2 " << chi2 << " over " << dof << " degrees of freedom";
  std::printf(
      "%s: chi2 %.1f, dof %.0f, 0.1%% critical %.1f, accepted %ld of %ld verified, %ld drafted, "
      "%ld rounds\n",
      sc.name, chi2, dof, critical, long(st.spec.n_accepted), long(st.spec.n_verified),
      long(st.spec.n_drafted), long(st.spec.n_rounds));
}

INSTANTIATE_TEST_SUITE_P(
    Drafters, SpecSamplingTest,
    ::testing::Values(SamplingCase{"DraftChain", SpecMethod::kDraftModel, 1, false},
                      SamplingCase{"DraftTree", SpecMethod::kDraftModel, 3, false},
                      SamplingCase{"DraftTreeFixed", SpecMethod::kDraftModel, 3, true},
                      SamplingCase{"NgramFixed", SpecMethod::kNgram, 1, true},
                      SamplingCase{"DSpark", SpecMethod::kDSpark, 1, false},
                      SamplingCase{"MaskedDraftTreeFixed", SpecMethod::kDraftModel, 3, true, true},
                      SamplingCase{"MaskedNgramFixed", SpecMethod::kNgram, 1, true, true},
                      SamplingCase{"MaskedDSpark", SpecMethod::kDSpark, 1, false, true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace dspark::test
