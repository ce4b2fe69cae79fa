// Test harness of the DSpark drafter: a tiny target (the qwen3 one unless told) with its own
// paged KV, and a tiny DSpark checkpoint on top. prefill() runs target forwards with feature
// capture and commits every token's features at its target slot, as the engine does.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "draft_input.h"
#include "dspark/model.h"
#include "dspark/spec.h"
#include "spec/dspark_drafter.h"

namespace dspark::spec::test {

// Written by scripts/make_tiny_models.py (ctest fixture model_tiny_models_setup). A path (a
// name with a '/') is returned as it is.
inline std::string tiny_model(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  return std::string(DSPARK_BINARY_DIR) + "/tiny_models/" + name;
}
inline const char* kTinyTarget = "qwen3-f16.gguf";
inline const char* kTinyDSpark = "dspark-qwen3";
// A llama GGUF target (interleaved RoPE) and its drafters: with F32 copies of the target's
// embedding and head, and without them (the target's own are used).
inline const char* kTinyLlamaTarget = "llama-f32.gguf";
inline const char* kTinyLlamaDSpark = "dspark-llama";
inline const char* kTinyLlamaDSparkShared = "dspark-llama-shared";

// Writes a copy of the safetensors file `from` to `to`: its JSON header edited by edit_header
// (handed the header and the size in bytes of the data section, where the data of a tensor
// added by the edit starts) and `extra` appended to the data. The new header is padded with
// spaces to a multiple of 8 bytes.
inline void rewrite_safetensors(
    const std::filesystem::path& from, const std::filesystem::path& to,
    const std::function<void(nlohmann::json& header, size_t data_size)>& edit_header,
    const std::string& extra = {}) {
  std::ifstream in(from, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  const std::string bytes = all.str();
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_len));
  const std::string data = bytes.substr(8 + header_len);
  edit_header(header, data.size());
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t new_len = text.size();
  std::ofstream out(to, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&new_len), 8);
  out << text << data << extra;
}

class DSparkHarness {
 public:
  static constexpr int32_t kBlockSize = 4;  // target KV block size (the drafter shares it)
  static constexpr int32_t kBlocks = 64;    // target KV blocks

  // The target model (a tiny model's file name) and a drafter over the checkpoint at
  // drafter_path (nullptr and *error set on failure).
  static std::unique_ptr<DSparkHarness> create(const std::string& drafter_path,
                                               int32_t max_requests, uint64_t seed,
                                               std::string* error,
                                               const std::string& target = kTinyTarget,
                                               bool quantize_layers = false) {
    auto file = ModelFile::open(tiny_model(target));
    if (!file.ok()) {
      *error = file.error().message;
      return nullptr;
    }
    auto model = Model::load(file.value(), *make_cpu_backend(1));
    if (!model.ok()) {
      *error = model.error().message;
      return nullptr;
    }
    std::unique_ptr<DSparkHarness> h(new DSparkHarness(std::move(model.value())));
    auto drafter = h->make_drafter(drafter_path, max_requests, seed, quantize_layers);
    if (!drafter.ok()) {
      *error = drafter.error().message;
      return nullptr;
    }
    h->drafter_ = std::move(drafter.value());
    return h;
  }

  Result<std::unique_ptr<DSparkDrafter>> make_drafter(
      const std::string& path, int32_t max_requests, uint64_t seed, bool quantize_layers = false,
      size_t max_pending_floats = DSparkDrafterConfig{}.max_pending_floats) {
    DSparkDrafterConfig c;
    c.path = path;
    c.target_model = target_.get();
    c.kv_blocks = kBlocks;
    c.block_size = kBlockSize;
    c.max_requests = max_requests;
    c.backend = backend_.get();
    c.seed = seed;
    c.quantize_layers = quantize_layers;
    c.max_pending_floats = max_pending_floats;
    return DSparkDrafter::create(c);
  }

  // Runs tokens [from, to) of a sequence (block table `table`, positions [0, from) cached)
  // through the target with feature capture and commits them to the drafter. The captured
  // features ([to - from, n_layers, d_model]) are appended to *features when given.
  Status prefill(const std::vector<int32_t>& tokens, int32_t from, int32_t to,
                 const std::vector<int32_t>& table, std::vector<float>* features = nullptr) {
    ForwardBatch b;
    b.seqs.push_back(SeqRef{table, from});
    for (int32_t p = from; p < to; ++p) b.add_token(tokens[size_t(p)], p, 0, kBlockSize, false);
    b.capture_layers = drafter_->feature_layers();
    ForwardOutput out;
    DSPARK_RETURN_IF_ERROR(target_->forward(b, kv_, out, *backend_));
    std::vector<int64_t> slots(b.kv_slots.begin(), b.kv_slots.end());
    if (features != nullptr)
      features->insert(features->end(), out.hidden.begin(), out.hidden.end());
    return drafter_->commit_features(slots, b.positions, out.hidden);
  }

  // The request's input for propose: its anchor is tokens.back().
  static DraftInput input(RequestId id, const std::vector<int32_t>& tokens,
                          const std::vector<int32_t>& table, int32_t max_nodes, int32_t max_depth,
                          const SamplingParams* params = nullptr) {
    return dspark::test::draft_input(id, tokens, max_nodes, max_depth, params, table);
  }

  const Model& target() const { return *target_; }
  DSparkDrafter& drafter() { return *drafter_; }
  Backend& backend() { return *backend_; }

 private:
  explicit DSparkHarness(std::unique_ptr<Model> target)
      : target_(std::move(target)),
        backend_(make_cpu_backend(2)),
        kv_(target_->config(), kBlockSize, kBlocks) {}

  std::unique_ptr<Model> target_;
  std::unique_ptr<Backend> backend_;  // the target's and the drafter's ops
  KvStorage kv_;
  std::unique_ptr<DSparkDrafter> drafter_;
};

}  // namespace dspark::spec::test
