// dspark capture: runs the target over prompt + answer pairs and writes, per token, what a DSpark
// drafter's self-distillation training reads (the target's hidden states after the chosen layers
// and its top-K next-token distribution), in raw shards listed by meta.json. The format is
// described in docs/dspark-training.md ("dspark capture").
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dspark/server.h"
#include "model_loading.h"

namespace dspark::cli::capture {

// ---------------------------------------------------------------- input (capture_input.cpp)

// One input line as token ids: the prompt's tokens followed by the answer's.
struct EncodedSample {
  std::vector<int32_t> tokens;  // [n_prompt + n_answer]
  int64_t n_prompt = 0;
};

// Turns JSONL lines into token ids: {"prompt": text} is tokenized as a rendered prompt (special
// tokens parsed, no BOS added: the rendering wrote any), {"messages": [...]} is first rendered
// with the model's chat template and the generation prompt (as `dspark serve` renders it); the
// "answer" is tokenized on its own (special tokens parsed, no BOS) and appended.
class SampleEncoder {
 public:
  explicit SampleEncoder(const LoadedModel& model) : model_(model) {}
  // Errors name the line (1-based) and what is wrong with it.
  Result<EncodedSample> encode(const std::string& line, int64_t line_no);

 private:
  Result<chat::RenderedPrompt> render_messages(const nlohmann::json& messages,
                                               const std::string& where);

  const LoadedModel& model_;
  std::optional<server::ChatFormat> chat_;  // loaded on the first "messages" sample
};

// ---------------------------------------------------------------- output (capture_writer.cpp)

struct ShardInfo {
  std::string name;  // "shard-00000"
  int64_t n_seqs = 0, n_tokens = 0;
};

// meta.json: what was captured with which settings, and the finished shards.
struct CaptureMeta {
  std::string model, model_name, arch;
  int64_t n_layers = 0, d_model = 0, vocab_size = 0;
  std::vector<int32_t> target_layer_ids;
  int64_t top_k = 0, max_len = 0;
  int64_t samples_done = 0;  // input lines consumed (skipped ones included)
  std::vector<ShardInfo> shards;

  std::string to_json() const;
  // nullopt when path does not exist; an error when it exists but does not parse.
  static Result<std::optional<CaptureMeta>> read(const std::string& path);
  // An error (suggesting a new --output) when `existing` was captured with other settings.
  static Status check_resumable(const CaptureMeta& existing, const CaptureMeta& wanted);
};

// Streams sequences into the six files of the current shard under temporary names (".tmp");
// flush() closes them, renames them to their final names and only then rewrites meta.json
// (atomically, tmp + rename) listing the shard. A killed run leaves only unlisted files, which
// the next run overwrites. Memory stays bounded by one forward's output.
class ShardWriter {
 public:
  ShardWriter(std::string dir, CaptureMeta meta);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Per-token rows of the sequence being written, in order: features [n, m, d] fp16, top-K ids
  // [n, K] and probabilities [n, K] fp16.
  Status write_rows(const std::vector<uint16_t>& features, const std::vector<int32_t>& topk_ids,
                    const std::vector<uint16_t>& topk_probs);
  // Ends the sequence whose rows were written: its tokens and answer mask ([n] each).
  Status end_sequence(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& mask);
  // Finishes the current shard (when it holds a sequence) and records samples_done in meta.json.
  Status flush(int64_t samples_done);

  int64_t pending_tokens() const { return pending_.n_tokens; }
  uint64_t bytes_written() const { return bytes_; }  // this run's bytes, all files
  const CaptureMeta& meta() const { return meta_; }

 private:
  Status open_shard();
  Status write(int which, const void* data, size_t bytes);
  Status write_meta();
  std::string shard_path(const std::string& suffix) const;

  std::string dir_;
  CaptureMeta meta_;
  ShardInfo pending_;
  std::vector<int64_t> offsets_;   // [pending_.n_seqs + 1]
  std::vector<std::FILE*> files_;  // open tmp files of the pending shard (empty: none open)
  uint64_t bytes_ = 0;
};

}  // namespace dspark::cli::capture
