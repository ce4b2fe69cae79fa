// Test helper for dspark_ref.py: runs a tiny target over a few prompts with feature capture,
// commits the features to a DSpark drafter, proposes for all prompts in one call (greedy, then
// sampled) and writes everything the NumPy reference needs as JSON. TARGET and DRAFTER are
// tiny model names (build/tiny_models/...) or paths (with a '/'); by default the qwen3 pair.
//
//   dspark_ref_tool OUT.json [TARGET DRAFTER]
//
// Bench mode: the cost of one propose() round for one request (B drafts, greedy) after a
// prompt of PROMPT tokens over ROUNDS rounds (a real target, e.g. a GGUF, and a checkpoint
// written for it, e.g. by scripts/make_random_dspark.py): wall time, and the process's CPU time
// (all threads), which other processes' load inflates much less on a shared machine.
//
//   dspark_ref_tool --bench TARGET DRAFTER [ROUNDS [PROMPT]]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "dspark_harness.h"

namespace {

using dspark::spec::DraftInput;
using dspark::spec::DraftTree;
using dspark::spec::test::DSparkHarness;
using json = nlohmann::json;

constexpr float kSampleTemperature = 0.7f;

json tree_json(const DraftTree& t, const std::vector<float>& logits) {
  json q = json::array();
  for (const auto& d : t.q) q.push_back({{"ids", d.ids}, {"probs", d.probs}});
  return {{"tokens", t.tokens},
          {"parent", t.parent},
          {"confidence", t.confidence},
          {"q_index", t.q_index},
          {"q", q},
          {"logits", logits}};
}

// n pseudo-random ids in [0, vocab - 1) (the tiny checkpoints' mask id is vocab - 1).
std::vector<int32_t> lcg_tokens(int n, int32_t vocab, uint32_t& x) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    t.push_back(int32_t((x >> 8) % uint32_t(vocab - 1)));
  }
  return t;
}

std::unique_ptr<DSparkHarness> open(const std::string& target, const std::string& drafter,
                                    bool quantize_layers = false) {
  std::string error;
  auto h = DSparkHarness::create(dspark::spec::test::tiny_model(drafter), 8, 5, &error, target,
                                 quantize_layers);
  if (h == nullptr) std::cerr << error << "\n";
  return h;
}

int dump(const std::string& out_path, const std::string& target, const std::string& drafter) {
  auto h = open(target, drafter);
  if (h == nullptr) return 1;
  const int32_t V = h->target().config().vocab_size;
  const int lengths[] = {2, 7, 16, 29};
  std::vector<std::vector<int32_t>> tokens, tables;
  std::vector<std::vector<float>> features;
  uint32_t x = 12345;
  for (size_t r = 0; r < std::size(lengths); ++r) {
    std::vector<int32_t> t = lcg_tokens(lengths[r], V, x), table;
    // Paged, out of order: block b of request r at 15 * r + 14 - b.
    for (int b = 0; b * DSparkHarness::kBlockSize < lengths[r]; ++b) {
      table.push_back(int32_t(15 * r + 14 - b));
    }
    std::vector<float> f;
    auto st = h->prefill(t, 0, lengths[r] - 1, table, &f);
    if (!st.ok()) {
      std::cerr << st.message() << "\n";
      return 1;
    }
    tokens.push_back(t);
    tables.push_back(table);
    features.push_back(f);
  }
  dspark::SamplingParams sampled;
  sampled.temperature = kSampleTemperature;
  json out;
  out["feature_layers"] = h->drafter().feature_layers();
  out["sample_temperature"] = kSampleTemperature;
  out["cases"] = json::array();
  for (size_t r = 0; r < tokens.size(); ++r) {
    out["cases"].push_back({{"tokens", tokens[r]}, {"features", features[r]}});
  }
  h->drafter().keep_logits(true);
  for (const char* mode : {"greedy", "sampled"}) {
    std::vector<DraftInput> inputs;
    for (size_t r = 0; r < tokens.size(); ++r) {
      inputs.push_back(DSparkHarness::input(dspark::spec::RequestId(r + 1), tokens[r], tables[r], 8,
                                            8, mode[0] == 's' ? &sampled : nullptr));
    }
    std::vector<DraftTree> trees;
    auto st = h->drafter().propose(inputs, trees);
    if (!st.ok()) {
      std::cerr << st.message() << "\n";
      return 1;
    }
    for (size_t r = 0; r < trees.size(); ++r) {
      out["cases"][r][mode] = tree_json(trees[r], h->drafter().last_logits()[r]);
    }
  }
  std::ofstream(out_path) << out.dump();
  return 0;
}

// Median CPU milliseconds (the process's, all threads) of 7 calls of fn.
template <class Fn>
double cpu_ms_of(const Fn& fn) {
  std::vector<double> t;
  for (int i = 0; i < 7; ++i) {
    const std::clock_t c0 = std::clock();
    fn();
    t.push_back(1000.0 * double(std::clock() - c0) / CLOCKS_PER_SEC);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// CPU milliseconds of the round's two vocabulary-sized parts: the output head over B rows and
// the B one-row Markov W2 products.
void print_parts(DSparkHarness& h) {
  const auto& ck = h.drafter().checkpoint();
  const int32_t B = ck.block_size;
  std::vector<float> rows(size_t(B * ck.d_model()), 0.01f), logits(size_t(B * ck.draft_vocab()));
  const double head_ms =
      cpu_ms_of([&] { h.backend().matmul(ck.draft_head, rows.data(), B, logits.data()); });
  double markov_ms = 0.0;
  if (ck.markov_rank > 0) {
    std::vector<float> w1(size_t(ck.markov_rank), 0.1f);
    markov_ms = cpu_ms_of([&] {
      for (int32_t k = 0; k < B; ++k) {
        h.backend().matmul(ck.draft_w2, w1.data(), 1, logits.data());
      }
    });
  }
  std::printf(
      "  CPU of its parts (draft vocabulary %lld ids): output head over %d rows %.2f ms, Markov "
      "W2 (%d one-row products) %.2f ms\n",
      static_cast<long long>(ck.draft_vocab()), B, head_ms, B, markov_ms);
}

// Wall milliseconds of commit_features for n tokens (one decode step of n requests commits n
// rows), median of 21 calls, at slots past the prompt.
void print_commit_cost(DSparkHarness& h, int prompt) {
  const auto& ck = h.drafter().checkpoint();
  const int64_t row = ck.n_features() * ck.d_model();
  std::printf("  commit_features (context rows projected per step):");
  for (int n : {1, 4, 16}) {
    std::vector<int64_t> slots(static_cast<size_t>(n));
    std::vector<int32_t> positions(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      slots[size_t(i)] = prompt + 1 + i;
      positions[size_t(i)] = prompt + 1 + i;
    }
    std::vector<float> features(size_t(n * row), 0.01f);
    std::vector<double> ms;
    for (int rep = 0; rep < 21; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)h.drafter().commit_features(slots, positions, features);
      h.drafter().project_context();  // commits only keep the rows; time the projection too
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf(" %d rows %.3f ms;", n, ms[ms.size() / 2]);
  }
  std::printf("\n");
}

int bench(const std::string& target, const std::string& drafter, int rounds, int prompt,
          bool quantize_layers) {
  auto h = open(target, drafter, quantize_layers);
  if (h == nullptr) return 1;
  const int32_t V = h->target().config().vocab_size;
  const int32_t B = h->drafter().block_size();
  const auto& ck = h->drafter().checkpoint();
  uint32_t x = 777;
  const std::vector<int32_t> tokens = lcg_tokens(prompt + 1, V, x);
  std::vector<int32_t> table;
  for (int b = 0; b * DSparkHarness::kBlockSize < prompt + 1; ++b) table.push_back(b);
  if (int(table.size()) > DSparkHarness::kBlocks) {
    std::cerr << "prompt of " << prompt << " tokens exceeds the harness's KV pool\n";
    return 2;
  }
  auto st = h->prefill(tokens, 0, prompt, table);
  if (!st.ok()) {
    std::cerr << st.message() << "\n";
    return 1;
  }
  const std::vector<DraftInput> in = {DSparkHarness::input(1, tokens, table, B, B)};
  std::vector<DraftTree> out;
  std::vector<double> ms, cpu_ms;
  for (int i = 0; i < rounds + 2; ++i) {  // two warm-up rounds
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    st = h->drafter().propose(in, out);
    const std::clock_t c1 = std::clock();
    const auto t1 = std::chrono::steady_clock::now();
    if (!st.ok()) {
      std::cerr << st.message() << "\n";
      return 1;
    }
    if (i < 2) continue;
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    cpu_ms.push_back(1000.0 * double(c1 - c0) / CLOCKS_PER_SEC);
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu_ms.begin(), cpu_ms.end());
  const dspark::DTypeInfo* head_type = dspark::dtype_info(ck.lm_head.type);
  const std::string head_name = head_type != nullptr ? std::string(head_type->name) : "?";
  std::printf(
      "dspark round (%s layers, 1 request, %d drafts, context %d, %d rounds): wall median %.2f "
      "ms (min %.2f); CPU median %.2f ms (min %.2f); embed from the %s, lm_head from the %s "
      "(%s)\n",
      quantize_layers ? "Q8_0" : "checkpoint's", B, prompt, rounds, ms[ms.size() / 2], ms.front(),
      cpu_ms[cpu_ms.size() / 2], cpu_ms.front(), ck.own_embed ? "checkpoint" : "target",
      ck.own_lm_head ? "checkpoint" : "target", head_name.c_str());
  print_parts(*h);
  print_commit_cost(*h, prompt);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string first = argc > 1 ? argv[1] : "";
  if (first == "--bench" && (argc >= 4 && argc <= 6)) {
    const int rounds = argc > 4 ? std::max(1, std::atoi(argv[4])) : 20;
    const int prompt = argc > 5 ? std::max(1, std::atoi(argv[5])) : 64;
    // The checkpoint's float layers (as the reference tests run them), then the engine's Q8_0.
    for (bool quantize : {false, true}) {
      if (const int rc = bench(argv[2], argv[3], rounds, prompt, quantize); rc != 0) return rc;
    }
    return 0;
  }
  if (argc == 2) {
    return dump(argv[1], dspark::spec::test::kTinyTarget, dspark::spec::test::kTinyDSpark);
  }
  if (argc == 4) return dump(argv[1], argv[2], argv[3]);
  std::cerr << "usage: dspark_ref_tool OUT.json [TARGET DRAFTER]\n"
               "       dspark_ref_tool --bench TARGET DRAFTER [ROUNDS [PROMPT]]\n";
  return 2;
}
