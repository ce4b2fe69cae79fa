// Engine behaviour on tiny models: batched greedy/seeded output equals each request alone
// (prefix caching on and off, a KV pool small enough to force preemption), streaming order,
// stop strings, aborts under load leaving the KV pool idle, request validation and stop().
#include <gtest/gtest.h>
#include <cstdlib>

#include <random>
#include <thread>

#include "engine/engine_helpers.h"

namespace dspark::test {
namespace {

using engine::Completion;
using engine::Engine;
using engine::FinishReason;

const char* kTiny = "llama-f32.gguf";

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loaded_ = load_model(tiny_model_path(kTiny));
    ASSERT_TRUE(loaded_.model) << loaded_.error;
    vocab_ = loaded_.model->config().vocab_size;
  }
  std::unique_ptr<Engine> make(int32_t kv_blocks, bool prefix_caching, int32_t block_size = 4) {
    auto e = Engine::create(engine_config(loaded_, kv_blocks, block_size, prefix_caching));
    EXPECT_TRUE(e.ok()) << e.error().message;
    return e.ok() ? std::move(e.value()) : nullptr;
  }
  // Request i: greedy for even i, seeded temperature sampling for odd i.
  engine::Request request(const std::vector<int32_t>& prompt, int i, int32_t max_tokens) {
    engine::Request r;
    r.prompt = prompt;
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    if (i % 2 == 1) {
      r.params.temperature = 0.9f;
      r.params.top_k = 40;
      r.params.seed = 1000 + uint64_t(i);
    }
    return r;
  }
  Completion run_alone(const engine::Request& r) {
    auto e = make(256, false);
    auto s = e->submit(r);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.value()->collect();
  }

  Loaded loaded_;
  int vocab_ = 0;
};

// Every event but the last holds exactly one token; the last holds the final record.
void expect_well_formed(const Completion& c, int32_t n_prompt) {
  EXPECT_EQ(c.final.n_prompt_tokens, n_prompt);
  EXPECT_EQ(c.final.n_completion_tokens, int32_t(c.tokens.size()));
  EXPECT_LE(c.n_events, int32_t(c.tokens.size()) + 1);
  EXPECT_GE(c.n_events, int32_t(c.tokens.size()));
}

struct BatchCase {
  bool prefix_caching;
  int32_t kv_blocks;
  bool expect_preemption;
};

class EngineBatchTest : public EngineTest, public ::testing::WithParamInterface<BatchCase> {};

TEST_P(EngineBatchTest, ConcurrentRequestsEqualEachAlone) {
  const BatchCase bc = GetParam();
  const auto prompts = mixed_prompts(8, vocab_);
  const int32_t max_tokens = 12;
  std::vector<Completion> alone;
  for (int i = 0; i < 8; ++i) alone.push_back(run_alone(request(prompts[i], i, max_tokens)));

  auto e = make(bc.kv_blocks, bc.prefix_caching);
  std::vector<std::shared_ptr<engine::Stream>> streams;
  for (int i = 0; i < 8; ++i) {
    auto s = e->submit(request(prompts[i], i, max_tokens));
    ASSERT_TRUE(s.ok()) << s.error().message;
    streams.push_back(s.value());
  }
  for (int i = 0; i < 8; ++i) {
    Completion c = streams[i]->collect();
    EXPECT_EQ(c.final.reason, FinishReason::kLength) << c.final.message;
    EXPECT_EQ(c.tokens, alone[i].tokens) << "request " << i;
    EXPECT_EQ(c.text, alone[i].text) << "request " << i;
    EXPECT_EQ(int32_t(c.tokens.size()), max_tokens);
    expect_well_formed(c, int32_t(prompts[i].size()));
    EXPECT_GE(c.final.timings.ttft_s, c.final.timings.queue_s);
  }
  Status idle = e->check_kv_idle();
  EXPECT_TRUE(idle.ok()) << idle.message();
  const engine::EngineStats st = e->stats();
  if (bc.expect_preemption) {
    EXPECT_GT(st.sched.n_preemptions, 0);
  }
  if (bc.prefix_caching) {
    EXPECT_GT(st.sched.n_prefix_hit_tokens, 0);
  }
}

// n_running() is published after each step: two long requests are counted once a later step
// than their first one has streamed (the engine does not wait for readers, so the requests are
// as long as the context allows and aborted after the check), and none once the engine is idle.
TEST_F(EngineTest, RunningCountIsPublishedAfterEachStep) {
  auto e = make(256, true);
  EXPECT_EQ(e->n_running(), 0);
  const auto prompts = mixed_prompts(2, vocab_);
  // Both fit in the pool together (256 blocks of 4 slots).
  const int64_t room = std::min<int64_t>(loaded_.model->config().context_length, 400);
  std::vector<std::shared_ptr<engine::Stream>> streams;
  for (int i = 0; i < 2; ++i) {
    const auto n = static_cast<int32_t>(room - int64_t(prompts[size_t(i)].size()) - 1);
    auto s = e->submit(request(prompts[size_t(i)], i, n));
    ASSERT_TRUE(s.ok()) << s.error().message;
    streams.push_back(s.value());
  }
  // A second event of each comes from a later step than the first, so the count published
  // after the first step that ran them both is visible.
  for (int k = 0; k < 2; ++k) {
    for (auto& s : streams) {
      const engine::Event ev = s->next();
      ASSERT_FALSE(ev.final.has_value())
          << engine::finish_reason_name(ev.final->reason) << " " << ev.final->message << " after "
          << ev.final->n_completion_tokens << " tokens (room " << room << ")";
    }
  }
  EXPECT_GE(e->n_running(), 1);
  EXPECT_LE(e->n_running(), 2);
  for (auto& s : streams) EXPECT_TRUE(e->abort(s->id()).ok());
  for (auto& s : streams) (void)s->collect();
  ASSERT_TRUE(e->check_kv_idle().ok());
  EXPECT_EQ(e->n_running(), 0);
}

INSTANTIATE_TEST_SUITE_P(Configs, EngineBatchTest,
                         ::testing::Values(BatchCase{true, 256, false},
                                           BatchCase{false, 256, false}, BatchCase{true, 20, true},
                                           BatchCase{false, 20, true}),
                         [](const auto& info) {
                           return std::string(info.param.prefix_caching ? "Prefix" : "NoPrefix") +
                                  (info.param.expect_preemption ? "TinyKv" : "BigKv");
                         });

TEST_F(EngineTest, SubmitAndReadFromManyThreads) {
  const auto prompts = mixed_prompts(8, vocab_);
  std::vector<Completion> alone;
  for (int i = 0; i < 8; ++i) alone.push_back(run_alone(request(prompts[i], i, 10)));
  auto e = make(64, true);
  std::vector<Completion> got(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 8; i += 4) {
        auto s = e->submit(request(prompts[i], i, 10));
        if (s.ok()) got[i] = s.value()->collect();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(got[i].tokens, alone[i].tokens) << "request " << i;
    EXPECT_EQ(got[i].final.reason, FinishReason::kLength) << got[i].final.message;
  }
  Status idle = e->check_kv_idle();
  EXPECT_TRUE(idle.ok()) << idle.message();
}

TEST_F(EngineTest, StopStringEndsRequestAndIsNotEmitted) {
  const auto prompt = token_run(10, vocab_, 7);
  engine::Request r = request(prompt, 0, 40);
  const Completion full = run_alone(r);
  ASSERT_GE(full.text.size(), 12u);
  // A stop string from the middle of the text: the output ends right before its first match.
  const std::string stop = full.text.substr(full.text.size() / 2, 2);
  const size_t at = full.text.find(stop);
  r.params.stop = {stop};
  const Completion c = run_alone(r);
  EXPECT_EQ(c.final.reason, FinishReason::kStop);
  EXPECT_EQ(c.text, full.text.substr(0, at));
  EXPECT_LE(c.tokens.size(), full.tokens.size());
  EXPECT_TRUE(std::equal(c.tokens.begin(), c.tokens.end(), full.tokens.begin()));
}

TEST_F(EngineTest, StopTokenEndsRequest) {
  const auto prompt = token_run(10, vocab_, 8);
  engine::Request r = request(prompt, 0, 20);
  const Completion full = run_alone(r);
  r.params.stop_token_ids = {full.tokens[5]};
  const Completion c = run_alone(r);
  EXPECT_EQ(c.final.reason, FinishReason::kStop);
  // Ends at the first occurrence of that token, which is the last token streamed.
  const auto first = std::find(full.tokens.begin(), full.tokens.end(), full.tokens[5]);
  EXPECT_EQ(c.tokens, std::vector<int32_t>(full.tokens.begin(), first + 1));
}

TEST_F(EngineTest, AbortsUnderLoadLeaveKvIdle) {
  auto e = make(40, true);
  const auto prompts = mixed_prompts(16, vocab_);
  std::mt19937 rng(1234);
  std::vector<std::shared_ptr<engine::Stream>> streams;
  std::vector<bool> aborted(16, false);
  for (int round = 0; round < 16; ++round) {
    auto s = e->submit(request(prompts[round], round, 30));
    ASSERT_TRUE(s.ok()) << s.error().message;
    streams.push_back(s.value());
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    const int victim = int(rng() % streams.size());
    if (rng() % 2 == 0 && !aborted[victim]) {
      // Either the abort is queued or the request already finished.
      Status st = e->abort(streams[victim]->id());
      aborted[victim] = st.ok();
    }
  }
  // An abort right after its submit: 30 tokens take 30 steps, so it usually lands
  // mid-generation; a loaded machine may keep this thread off a core for longer, so a request
  // that finished first is tried again.
  bool landed = false;
  for (int attempt = 0; attempt < 20 && !landed; ++attempt) {
    auto last = e->submit(request(prompts[0], 0, 30));
    ASSERT_TRUE(last.ok()) << last.error().message;
    landed = e->abort(last.value()->id()).ok();
    EXPECT_EQ(last.value()->collect().final.reason,
              landed ? FinishReason::kAbort : FinishReason::kLength);
  }
  EXPECT_TRUE(landed) << "no abort landed before its request finished";
  for (int i = 0; i < 16; ++i) {
    Completion c = streams[i]->collect();
    if (c.final.reason == FinishReason::kAbort) {
      EXPECT_TRUE(aborted[i]) << "request " << i;
      EXPECT_LE(c.tokens.size(), 30u);
    } else {
      EXPECT_EQ(c.final.reason, FinishReason::kLength) << c.final.message;
      EXPECT_EQ(c.tokens.size(), 30u);
    }
    expect_well_formed(c, int32_t(prompts[i].size()));
  }
  Status idle = e->check_kv_idle();
  EXPECT_TRUE(idle.ok()) << idle.message();
  Status again = e->abort(streams[0]->id());
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.message().find("unknown or already finished"), std::string::npos);
  EXPECT_FALSE(e->abort(987654).ok());
}

// max_request_tokens() is the limit submit() checks and the scheduler admits: a request of
// exactly that many tokens runs to the end, one more is refused up front (with prefix caching
// the scheduler keeps a spare block, which the limit includes).
TEST_F(EngineTest, TheLargestRequestTheLimitAllowsRuns) {
  for (bool prefix_caching : {true, false}) {
    auto e = make(16, prefix_caching);
    const int64_t limit = e->max_request_tokens();
    EXPECT_EQ(limit, (prefix_caching ? 15 : 16) * 4 + 1);
    const auto prompt = token_run(8, vocab_, 5);
    auto over = e->submit(request(prompt, 0, int32_t(limit - 8 + 1)));
    ASSERT_FALSE(over.ok());
    EXPECT_NE(over.error().message.find("KV blocks"), std::string::npos) << over.error().message;
    auto fits = e->submit(request(prompt, 0, int32_t(limit - 8)));
    ASSERT_TRUE(fits.ok()) << fits.error().message;
    const engine::Completion c = fits.value()->collect();
    EXPECT_EQ(c.final.reason, engine::FinishReason::kLength) << c.final.message;
    EXPECT_EQ(int64_t(c.tokens.size()), limit - 8);
    Status idle = e->check_kv_idle();
    EXPECT_TRUE(idle.ok()) << idle.message();
  }
}

TEST_F(EngineTest, InvalidRequestsAreRefused) {
  auto e = make(16, true);
  const auto prompt = token_run(8, vocab_, 3);
  auto refused = [&](engine::Request r, const std::string& words) {
    auto s = e->submit(std::move(r));
    ASSERT_FALSE(s.ok()) << "accepted; expected: " << words;
    EXPECT_NE(s.error().message.find(words), std::string::npos) << s.error().message;
  };
  engine::Request r = request(prompt, 0, 4);
  r.prompt.clear();
  refused(r, "empty prompt");
  r = request(prompt, 0, 4);
  r.prompt[3] = vocab_;
  refused(r, "outside the vocabulary");
  r.prompt[3] = -1;
  refused(r, "outside the vocabulary");
  r = request(prompt, 0, 0);
  refused(r, "max_tokens");
  r = request(prompt, 0, 4);
  r.params.temperature = 7.0f;
  refused(r, "temperature");
  r = request(prompt, 0, int32_t(loaded_.model->config().context_length));
  refused(r, "exceeds the model context");
  r = request(prompt, 0, 16 * 4);  // 8 + 64 tokens > 16 blocks of 4
  refused(r, "KV blocks");
  // The engine is untouched and still serves a valid request.
  auto ok = e->submit(request(prompt, 0, 4));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok.value()->collect().tokens.size(), 4u);
  Status idle = e->check_kv_idle();
  EXPECT_TRUE(idle.ok()) << idle.message();
}

TEST_F(EngineTest, StopAbortsLiveRequests) {
  auto e = make(64, true);
  std::vector<std::shared_ptr<engine::Stream>> streams;
  for (int i = 0; i < 4; ++i) {
    auto s = e->submit(request(token_run(30, vocab_, uint32_t(50 + i)), i, 200));
    ASSERT_TRUE(s.ok()) << s.error().message;
    streams.push_back(s.value());
  }
  e->stop();
  for (auto& s : streams) {
    Completion c = s->collect();
    EXPECT_TRUE(c.final.reason == FinishReason::kAbort || c.final.reason == FinishReason::kLength);
    expect_well_formed(c, 30);
  }
  EXPECT_FALSE(e->submit(request(token_run(4, vocab_, 1), 0, 2)).ok());
  Status idle = e->check_kv_idle();
  EXPECT_TRUE(idle.ok()) << idle.message();
}

TEST(EngineCreate, RejectsBadConfig) {
  engine::EngineConfig c;
  auto e = Engine::create(c);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("no model"), std::string::npos);
}

// SmolLM2 (when present): four concurrent greedy requests equal each alone.
TEST(EngineRealModel, SmolLm2ConcurrentEqualsAlone) {
  const std::string path = real_model_path("SmolLM2-135M-Instruct.Q4_1.gguf");
  if (path.empty()) {
    const char* require = std::getenv("DSPARK_REQUIRE_MODELS");
    if (require && std::string(require) == "1")
      FAIL() << "SmolLM2 missing (scripts/fetch_models.py)";
    GTEST_SKIP() << "SmolLM2-135M-Instruct.Q4_1.gguf not in DSPARK_MODELS_DIR";
  }
  Loaded l = load_model(path);
  ASSERT_TRUE(l.model) << l.error;
  const std::vector<std::string> texts = {"The capital of France is", "The capital of Spain is",
                                          "def fibonacci(n):", "Once upon a time"};
  auto run = [&](const std::vector<size_t>& which) {
    auto cfg = engine_config(l, 64, 16, true);
    cfg.threads = 0;
    auto e = Engine::create(cfg);
    EXPECT_TRUE(e.ok());
    std::vector<std::shared_ptr<engine::Stream>> streams;
    for (size_t i : which) {
      engine::Request r;
      r.prompt = l.tokenizer->encode(texts[i], true, false);
      r.params.max_tokens = 6;
      r.params.ignore_eos = true;
      streams.push_back(e.value()->submit(r).value());
    }
    std::vector<std::vector<int32_t>> out;
    for (auto& s : streams) out.push_back(s->collect().tokens);
    EXPECT_TRUE(e.value()->check_kv_idle().ok());
    return out;
  };
  const auto together = run({0, 1, 2, 3});
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(together[i], run({i})[0]) << texts[i];
}

}  // namespace
}  // namespace dspark::test
