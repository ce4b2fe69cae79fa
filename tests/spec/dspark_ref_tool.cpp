// Test helper for dspark_ref.py: runs the tiny qwen3 target over a few prompts with feature
// capture, commits the features to the DSpark drafter, proposes for all prompts in one call
// (greedy, then sampled) and writes everything the NumPy reference needs as JSON.
//
//   dspark_ref_tool OUT.json
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: dspark_ref_tool OUT.json\n";
    return 2;
  }
  std::string error;
  auto h = DSparkHarness::create(dspark::spec::test::tiny_model(dspark::spec::test::kTinyDSpark), 8,
                                 5, &error);
  if (h == nullptr) {
    std::cerr << error << "\n";
    return 1;
  }
  const int32_t V = h->target().config().vocab_size;
  const int lengths[] = {2, 7, 16, 29};
  std::vector<std::vector<int32_t>> tokens, tables;
  std::vector<std::vector<float>> features;
  uint32_t x = 12345;
  for (size_t r = 0; r < std::size(lengths); ++r) {
    std::vector<int32_t> t, table;
    for (int i = 0; i < lengths[r]; ++i) {
      x = x * 1664525u + 1013904223u;
      t.push_back(int32_t((x >> 8) % uint32_t(V - 1)));
    }
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
  std::ofstream(argv[1]) << out.dump();
  return 0;
}
