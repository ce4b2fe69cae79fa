// Engine::submit_n: n completions of one prompt compute the prompt once and fork its KV. Each
// choice equals the same request run alone (greedy, and seeded with seed + i), with prefix
// caching on and off; prompt forwards drop from n * n_prompt to n_prompt + n - 1 (also when the
// first member finishes at its first token); aborting the prefilling member or a decoding one,
// and preemption in a tiny KV pool, keep the others exact and leave the KV pool idle.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/engine_helpers.h"

namespace dspark::test {
namespace {

using engine::Completion;
using engine::Engine;
using engine::FinishReason;

class SubmitN : public ::testing::Test {
 protected:
  void SetUp() override {
    loaded_ = load_model(tiny_model_path("llama-f32.gguf"));
    ASSERT_TRUE(loaded_.model) << loaded_.error;
    vocab_ = loaded_.model->config().vocab_size;
  }
  std::unique_ptr<Engine> make(int32_t kv_blocks, bool prefix_caching,
                               std::optional<int32_t> chunk = 24) {
    engine::EngineConfig c = engine_config(loaded_, kv_blocks, 4, prefix_caching);
    c.long_prefill_chunk = chunk;
    auto e = Engine::create(c);
    EXPECT_TRUE(e.ok()) << e.error().message;
    return e.ok() ? std::move(e.value()) : nullptr;
  }
  static engine::Request greedy(std::vector<int32_t> prompt, int32_t max_tokens) {
    engine::Request r;
    r.prompt = std::move(prompt);
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    return r;
  }
  static engine::Request seeded(std::vector<int32_t> prompt, int32_t max_tokens, uint64_t seed) {
    engine::Request r = greedy(std::move(prompt), max_tokens);
    r.params.temperature = 0.9f;
    r.params.top_k = 40;
    r.params.seed = seed;
    return r;
  }
  // The request on an engine of its own.
  Completion alone(const engine::Request& r) {
    auto e = make(512, false);
    auto s = e->submit(r);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.value()->collect();
  }
  std::vector<std::shared_ptr<engine::Stream>> submit_n(Engine& e, const engine::Request& r,
                                                        int32_t n) {
    auto streams = e.submit_n(r, n);
    EXPECT_TRUE(streams.ok()) << streams.error().message;
    if (!streams.ok()) return {};
    EXPECT_EQ(streams.value().size(), size_t(n));
    return std::move(streams.value());
  }
  static void expect_idle(Engine& e) {
    Status idle = e.check_kv_idle();
    EXPECT_TRUE(idle.ok()) << idle.message();
  }

  Loaded loaded_;
  int vocab_ = 0;
};

class ForkTest : public SubmitN, public ::testing::WithParamInterface<bool> {};

TEST_P(ForkTest, GreedyChoicesEqualIndependentRunsAndPrefillOnce) {
  const bool prefix_caching = GetParam();
  const int32_t n = 4, n_prompt = 30, max_tokens = 8;
  const engine::Request r = greedy(token_run(n_prompt, vocab_, 7), max_tokens);
  const Completion ref = alone(r);

  auto e = make(256, prefix_caching);
  auto streams = submit_n(*e, r, n);
  ASSERT_EQ(streams.size(), size_t(n));
  for (int32_t i = 0; i < n; ++i) {
    const Completion c = streams[size_t(i)]->collect();
    EXPECT_EQ(c.final.reason, FinishReason::kLength) << c.final.message;
    EXPECT_EQ(c.tokens, ref.tokens) << "choice " << i;
    EXPECT_EQ(c.text, ref.text) << "choice " << i;
    EXPECT_EQ(c.final.n_prompt_tokens, n_prompt);
  }
  expect_idle(*e);
  // The prompt once, each other choice its last prompt token, then every choice's decodes
  // (the last sampled token is never an input): far below n * n_prompt prompt tokens.
  const engine::EngineStats st = e->stats();
  EXPECT_EQ(st.n_forward_tokens, n_prompt + (n - 1) + n * (max_tokens - 1));
  EXPECT_EQ(st.sched.n_forked_tokens, (n - 1) * (n_prompt - 1));
  EXPECT_EQ(st.sched.n_prefix_hit_tokens, 0);
}

TEST_P(ForkTest, SingleTokenChoicesStillPrefillOnce) {
  // The first member finishes with its first token and hands its KV to the others on its way.
  const int32_t n = 4, n_prompt = 30;
  const engine::Request r = greedy(token_run(n_prompt, vocab_, 13), 1);
  const Completion ref = alone(r);
  auto e = make(256, GetParam());
  auto streams = submit_n(*e, r, n);
  ASSERT_EQ(streams.size(), size_t(n));
  for (auto& s : streams) EXPECT_EQ(s->collect().tokens, ref.tokens);
  expect_idle(*e);
  EXPECT_EQ(e->stats().n_forward_tokens, n_prompt + (n - 1));
}

TEST_P(ForkTest, SeededChoiceIUsesSeedPlusI) {
  const int32_t n = 3;
  const engine::Request r = seeded(token_run(21, vocab_, 8), 12, 500);
  auto run = [&] {
    auto e = make(256, GetParam());
    std::vector<Completion> out;
    for (auto& s : submit_n(*e, r, n)) out.push_back(s->collect());
    expect_idle(*e);
    return out;
  };
  const std::vector<Completion> a = run(), b = run();
  ASSERT_EQ(a.size(), size_t(n));
  ASSERT_EQ(b.size(), size_t(n));
  for (int32_t i = 0; i < n; ++i) {
    EXPECT_EQ(a[size_t(i)].tokens, b[size_t(i)].tokens) << "choice " << i << " not reproducible";
    const Completion single = alone(seeded(r.prompt, 12, 500 + uint64_t(i)));
    EXPECT_EQ(a[size_t(i)].tokens, single.tokens) << "choice " << i << " != seed + " << i;
  }
  EXPECT_NE(a[0].tokens, a[1].tokens);  // different seeds, different samples
}

TEST_P(ForkTest, AbortOfThePrefillingLeaderHandsOver) {
  // 4 prompt tokens per step: the 160-token prompt takes 40 steps, so the abort sent right after
  // submit_n lands while the others wait for it.
  const int32_t n_prompt = 160;
  const engine::Request r = greedy(token_run(n_prompt, vocab_, 9), 6);
  const Completion ref = alone(r);
  auto e = make(512, GetParam(), 4);
  auto streams = submit_n(*e, r, 3);
  ASSERT_EQ(streams.size(), 3u);
  ASSERT_TRUE(e->abort(streams[0]->id()).ok());
  const Completion leader = streams[0]->collect();
  EXPECT_EQ(leader.final.reason, FinishReason::kAbort);
  for (size_t i = 1; i < 3; ++i) {
    const Completion c = streams[i]->collect();
    EXPECT_EQ(c.final.reason, FinishReason::kLength) << c.final.message;
    EXPECT_EQ(c.tokens, ref.tokens) << "choice " << i;
  }
  expect_idle(*e);
  EXPECT_GE(e->stats().sched.n_forked_tokens, n_prompt - 1);  // the third forked at least
}

TEST_P(ForkTest, AbortOfADecodingMemberLeavesTheOthers) {
  // 1,000 tokens: the abort must land before member 1 finishes, and the tiny model decodes a
  // hundred tokens in a few milliseconds, a time a loaded machine can keep the test thread off
  // a core.
  const engine::Request r = greedy(token_run(25, vocab_, 10), 1000);
  const Completion ref = alone(r);
  auto e = make(900, GetParam());
  auto streams = submit_n(*e, r, 3);
  ASSERT_EQ(streams.size(), 3u);
  const engine::Event first = streams[1]->next();  // member 1 decodes now
  ASSERT_FALSE(first.final.has_value());
  ASSERT_TRUE(e->abort(streams[1]->id()).ok());
  const Completion aborted = streams[1]->collect();
  EXPECT_EQ(aborted.final.reason, FinishReason::kAbort);
  std::vector<int32_t> got = first.tokens;
  got.insert(got.end(), aborted.tokens.begin(), aborted.tokens.end());
  ASSERT_LT(got.size(), ref.tokens.size());
  EXPECT_EQ(got, std::vector<int32_t>(ref.tokens.begin(), ref.tokens.begin() + got.size()));
  for (size_t i : {0, 2}) {
    const Completion c = streams[i]->collect();
    EXPECT_EQ(c.final.reason, FinishReason::kLength) << c.final.message;
    EXPECT_EQ(c.tokens, ref.tokens) << "choice " << i;
  }
  expect_idle(*e);
}

TEST_P(ForkTest, PreemptionInATinyPoolStaysExact) {
  // Each choice needs 13 blocks of 4 for 30 + 19 tokens; 4 of them sharing 7 prompt blocks
  // need 31 of the 24.
  const engine::Request r = greedy(token_run(30, vocab_, 11), 20);
  const Completion ref = alone(r);
  auto e = make(24, GetParam());
  auto streams = submit_n(*e, r, 4);
  ASSERT_EQ(streams.size(), 4u);
  for (size_t i = 0; i < streams.size(); ++i) {
    const Completion c = streams[i]->collect();
    EXPECT_EQ(c.final.reason, FinishReason::kLength) << c.final.message;
    EXPECT_EQ(c.tokens, ref.tokens) << "choice " << i;
  }
  expect_idle(*e);
  const engine::EngineStats st = e->stats();
  EXPECT_GT(st.sched.n_preemptions, 0);
  EXPECT_GT(st.sched.n_forked_tokens, 0);
}

INSTANTIATE_TEST_SUITE_P(PrefixCaching, ForkTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "On" : "Off"; });

TEST_F(SubmitN, RefusalsQueueNothing) {
  auto e = make(64, false);
  const engine::Request r = greedy(token_run(8, vocab_, 12), 4);
  auto zero = e->submit_n(r, 0);
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.error().message.find("n must be at least 1"), std::string::npos);
  engine::Request bad = r;
  bad.prompt[2] = vocab_;
  auto refused = e->submit_n(bad, 3);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("outside the vocabulary"), std::string::npos);
  EXPECT_EQ(e->stats().n_prompt_tokens, 0);
  // n = 1 is a plain submit.
  auto one = submit_n(*e, r, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]->collect().tokens, alone(r).tokens);
  expect_idle(*e);
  EXPECT_EQ(e->stats().sched.n_forked_tokens, 0);
}

}  // namespace
}  // namespace dspark::test
