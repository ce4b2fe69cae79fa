// StepTurns: players never step at the same time, a lone player never waits, and two engines
// taking turns (plain and speculative) each produce what they produce alone.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "engine/engine_helpers.h"

namespace dspark::test {
namespace {

using engine::Engine;
using engine::StepTurns;

TEST(StepTurns, PlayersNeverOverlapAndAllFinish) {
  StepTurns turns(3);
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> steps{0};
  std::vector<std::thread> players;
  for (int p = 0; p < 3; ++p) {
    players.emplace_back([&, p] {
      for (int i = 0; i < 200; ++i) {
        turns.begin(p);
        if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
        std::this_thread::yield();
        inside.fetch_sub(1);
        steps.fetch_add(1);
        turns.end(p);
      }
    });
  }
  for (std::thread& t : players) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(steps.load(), 600);
}

TEST(StepTurns, ALonePlayerNeverWaits) {
  StepTurns turns(2);
  // Player 1 never asks for a turn: player 0's turns must all be granted at once (a wait would
  // hang here until the test times out).
  int granted = 0;
  for (int i = 0; i < 1000; ++i) {
    turns.begin(0);
    ++granted;
    turns.end(0);
  }
  EXPECT_EQ(granted, 1000);
}

TEST(StepTurns, NoTurnWhileAnotherPlayerHoldsIt) {
  StepTurns turns(2);
  turns.begin(0);
  std::atomic<bool> got{false};
  std::thread other([&] {
    turns.begin(1);
    got = true;
    turns.end(1);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(got.load()) << "player 1 stepped while player 0 held the turn";
  turns.end(0);  // hands the turn to the waiting player
  other.join();
  EXPECT_TRUE(got.load());
}

TEST(StepTurns, EngineRejectsAPlayerOutsideTheTurns) {
  Loaded l = load_model(tiny_model_path("llama-f32.gguf"));
  ASSERT_TRUE(l.model) << l.error;
  engine::EngineConfig c = engine_config(l, 64, 4, true);
  c.turns = std::make_shared<StepTurns>(2);
  c.turn_player = 2;
  auto e = Engine::create(c);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("turn_player 2"), std::string::npos) << e.error().message;
}

// A plain and a speculative engine stepping in turns over the same greedy requests give the
// same tokens, count their own step time, and leave their KV idle.
TEST(StepTurns, PlainAndSpeculativeEnginesTakeTurns) {
  Loaded l = load_model(tiny_model_path("llama-f32.gguf"));
  ASSERT_TRUE(l.model) << l.error;
  const int vocab = int(l.model->config().vocab_size);
  auto turns = std::make_shared<StepTurns>(2);
  engine::EngineConfig plain_config = engine_config(l, 256, 4, true);
  plain_config.turns = turns;
  plain_config.turn_player = 0;
  engine::EngineConfig spec_config = plain_config;
  spec_config.turn_player = 1;
  spec_config.spec.method = engine::SpecMethod::kNgram;
  spec_config.spec.profile = false;
  auto plain = Engine::create(plain_config);
  auto spec = Engine::create(spec_config);
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  ASSERT_TRUE(spec.ok()) << spec.error().message;

  std::vector<std::shared_ptr<engine::Stream>> plain_streams, spec_streams;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> prompt = token_run(12, vocab, 40 + uint32_t(i));
    prompt.insert(prompt.end(), prompt.begin(), prompt.end());  // repeats: ngram drafts
    engine::Request r;
    r.prompt = prompt;
    r.params.max_tokens = 24;
    r.params.ignore_eos = true;
    auto a = (*plain)->submit(r);
    auto b = (*spec)->submit(r);
    ASSERT_TRUE(a.ok() && b.ok());
    plain_streams.push_back(*a);
    spec_streams.push_back(*b);
  }
  for (size_t i = 0; i < plain_streams.size(); ++i) {
    const engine::Completion a = plain_streams[i]->collect();
    const engine::Completion b = spec_streams[i]->collect();
    EXPECT_EQ(a.tokens, b.tokens) << "request " << i;
    EXPECT_EQ(a.tokens.size(), 24u);
  }
  for (Engine* e : {plain->get(), spec->get()}) {
    EXPECT_TRUE(e->check_kv_idle().ok());
    const engine::EngineStats st = e->stats();
    EXPECT_GT(st.n_steps, 0);
    EXPECT_GT(st.step_seconds, 0.0);
  }
  EXPECT_GT((*spec)->stats().spec.n_rounds, 0);
}

// A submitting thread that holds a turn of its own keeps both engines from stepping until each
// has every request, and each engine takes every request that arrived while it waited: both
// start on the same batch (an engine that started on part of the requests would split the
// prompts over steps differently and, with shared prefixes, reuse more cached blocks).
TEST(StepTurns, ASubmitterHoldingTheTurnGivesBothEnginesTheSameStart) {
  Loaded l = load_model(tiny_model_path("llama-f32.gguf"));
  ASSERT_TRUE(l.model) << l.error;
  const int vocab = int(l.model->config().vocab_size);
  auto turns = std::make_shared<StepTurns>(3);
  constexpr int kSubmitter = 2;
  engine::EngineConfig config = engine_config(l, 256, 4, true);
  config.max_num_batched_tokens = 512;  // every prompt fits one step
  config.long_prefill_chunk.reset();
  config.turns = turns;
  std::vector<std::unique_ptr<Engine>> engines;
  for (int player : {0, 1}) {
    config.turn_player = player;
    auto e = Engine::create(config);
    ASSERT_TRUE(e.ok()) << e.error().message;
    engines.push_back(std::move(e).value());
  }
  const std::vector<int32_t> shared = token_run(40, vocab, 7);  // a prefix every prompt shares
  std::vector<std::shared_ptr<engine::Stream>> streams;
  turns->begin(kSubmitter);
  for (auto& e : engines) {  // one engine after the other, as `dspark generate` submits
    for (int i = 0; i < 8; ++i) {
      engine::Request r;
      r.prompt = shared;
      r.prompt.push_back(int32_t(1 + i));
      r.params.max_tokens = 1;
      r.params.ignore_eos = true;
      auto s = e->submit(r);
      ASSERT_TRUE(s.ok()) << s.error().message;
      streams.push_back(*s);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the engine wakes meanwhile
    }
  }
  for (auto& e : engines) EXPECT_EQ(e->stats().n_steps, 0) << "an engine stepped in our turn";
  turns->end(kSubmitter);
  for (auto& s : streams) EXPECT_EQ(s->collect().tokens.size(), 1u);
  for (auto& e : engines) {
    // All eight prefilled and sampled in the first step.
    EXPECT_EQ(e->stats().n_steps, 1);
    EXPECT_EQ(e->stats().n_forward_tokens, 8 * 41);
    EXPECT_TRUE(e->check_kv_idle().ok());
  }
}

}  // namespace
}  // namespace dspark::test
