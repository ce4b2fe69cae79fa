// Transformer models (llama, qwen2, qwen3) over a backend (backend.h). One forward runs a flat
// batch of tokens from several sequences; each token attends to its sequence's cached KV (through a
// paged block table) and to chosen earlier tokens of the same batch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dspark/backend.h"
#include "dspark/loader.h"
#include "dspark/status.h"

namespace dspark {

enum class Arch { Llama, Qwen2, Qwen3 };
const char* arch_name(Arch arch);

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string name;
  int n_layers = 0;
  int d_model = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int d_ff = 0;
  int vocab_size = 0;
  int64_t context_length = 0;  // trained context
  float rms_eps = 1e-6f;
  RopeParams rope;
  bool tied_embeddings = false;
  bool qkv_bias = false;  // qwen2
  bool qk_norm = false;   // qwen3

  // Reads GGUF (llama.*, qwen2.*, qwen3.* keys) or config.json ("hf.*") metadata. Unknown
  // architectures and inconsistent shapes give a clear error.
  static Result<ModelConfig> from_file(const ModelFile& file);
};

// fp16 K and V for every layer, indexed by slot = block_id * block_size + offset. A block_size or
// n_blocks below 1 gives an empty storage (every slot is then rejected by Model::forward).
class KvStorage {
 public:
  KvStorage(const ModelConfig& config, int block_size, int n_blocks);
  int block_size() const { return block_size_; }
  int n_blocks() const { return n_blocks_; }
  int n_layers() const { return static_cast<int>(k_.size()); }
  int64_t n_slots() const { return int64_t{block_size_} * n_blocks_; }
  int64_t row_elems() const { return row_elems_; }     // n_kv_heads * head_dim
  uint16_t* k(int layer) { return k_[layer].data(); }  // [n_blocks * block_size, row_elems]
  uint16_t* v(int layer) { return v_[layer].data(); }  // [n_blocks * block_size, row_elems]
  static uint64_t bytes_per_block(const ModelConfig& config, int block_size);
  // Copies n consecutive slots' K and V rows of every layer from one slot range to another
  // (copy-on-write of a block, accepted draft tokens moved into place).
  void copy_slots(int64_t from_slot, int64_t to_slot, int64_t n);

 private:
  int block_size_, n_blocks_;
  int64_t row_elems_;
  std::vector<std::vector<uint16_t>> k_, v_;  // [n_layers][n_slots * row_elems]
};

// One sequence taking part in a forward. Several SeqRefs may share a block table (tree nodes of
// one request with different ancestors, expanded level by level).
struct SeqRef {
  std::vector<int32_t> block_table;  // [n_blocks_used] block ids of the sequence's KV
  int32_t n_past = 0;  // cached tokens: logical slots [0, n_past) are attended by all its tokens
  // [n_extra] physical slots attended after the context and before the in-batch tokens, in this
  // order (tree ancestors whose KV an earlier forward wrote outside the context).
  std::vector<int32_t> extra_slots{};
};

// Rules Model::forward checks: every kv_slot is distinct, inside the storage and not one of the
// context slots [0, n_past) of any sequence in the batch (it would overwrite attended KV). Extra
// slots lie inside the storage, are distinct within their sequence, are not among its context
// slots and are not written by this batch (they must hold KV of an earlier forward).
// A token's keys are its context slots in logical order, then its sequence's extra slots, then
// its attended in-batch tokens in the order given, then itself: so a token sees exactly the same
// key list whether its sequence is prefilled in one chunk or token by token, or a tree is
// verified in one forward or expanded level by level (which keeps logits bit-identical).
struct ForwardBatch {
  std::vector<int32_t> tokens;     // [n_tok]
  std::vector<int32_t> positions;  // [n_tok] absolute position (RoPE)
  std::vector<int32_t> seq;        // [n_tok] index into seqs
  std::vector<int32_t> kv_slots;   // [n_tok] physical slot where each token's K/V is written
  // Optional, [n_tok] when set: the earlier in-batch token indices (same sequence, strictly
  // increasing) each token attends to besides its context and itself (tree verification: its
  // ancestors).
  // When empty, a token attends to all earlier tokens of its sequence in the batch (causal).
  std::vector<std::vector<int32_t>> attend;
  std::vector<SeqRef> seqs;
  std::vector<int32_t> logit_rows;  // token indices whose logits are wanted, in order
  // > 0: logits only for ids [0, logit_vocab) (a drafter's cut-down head: the output projection
  // is the largest matrix of a small model); 0: the whole vocabulary.
  int32_t logit_vocab = 0;
  std::vector<int32_t> capture_layers;  // hidden states wanted: -1 = embeddings, l = after layer l

  // Appends a token of sequence s at logical index n_past + (tokens already added for s) with
  // the slot taken from s's block table (so the table must already cover it; otherwise the slot
  // is -1 and forward rejects the batch). Leaves `attend` alone.
  void add_token(int32_t token, int32_t position, int32_t s, int block_size, bool want_logits);
};

struct ForwardOutput {
  std::vector<float> logits;  // [logit_rows.size(), logit_vocab or vocab_size]
  std::vector<float> hidden;  // [n_tok, capture_layers.size(), d_model]
};

// One transformer layer's weights: a llama/qwen2/qwen3 layer of a Model, or a DSpark draft
// layer. Matrices are backend-placed views; the small vectors are float.
struct LayerWeights {
  std::vector<float> attn_norm;  // [d_model]
  WeightView q;                  // [n_heads * head_dim, d_model]
  WeightView k;                  // [n_kv_heads * head_dim, d_model]
  WeightView v;                  // [n_kv_heads * head_dim, d_model]
  WeightView o;                  // [d_model, n_heads * head_dim]
  std::vector<float> q_bias;     // [n_heads * head_dim] with qkv_bias, else empty
  std::vector<float> k_bias;     // [n_kv_heads * head_dim] with qkv_bias, else empty
  std::vector<float> v_bias;     // [n_kv_heads * head_dim] with qkv_bias, else empty
  std::vector<float> q_norm;     // [head_dim] with qk_norm, else empty
  std::vector<float> k_norm;     // [head_dim] with qk_norm, else empty
  std::vector<float> ffn_norm;   // [d_model]
  WeightView gate;               // [d_ff, d_model]
  WeightView up;                 // [d_ff, d_model]
  WeightView down;               // [d_model, d_ff]
};

// Activations one layer forward reuses from call to call (grown, never shrunk: steady-state
// calls do not allocate; new elements are zeroed).
struct LayerScratch {
  std::vector<float> x;     // [n_tok, d_model] the residual stream the layers update in place
  std::vector<float> xn;    // [n_tok, d_model] normed input of a sub-block
  std::vector<float> q;     // [n_tok, n_heads * head_dim]
  std::vector<float> k;     // [n_tok, n_kv_heads * head_dim]
  std::vector<float> v;     // [n_tok, n_kv_heads * head_dim]
  std::vector<float> attn;  // [n_tok, n_heads * head_dim]
  std::vector<float> proj;  // [n_tok, d_model] output of o / down before the residual add
  std::vector<float> gate;  // [n_tok, d_ff]
  std::vector<float> up;    // [n_tok, d_ff]
  void fit(const ModelConfig& c, int64_t n_tok);
};

// Where a layer's tokens write their K/V and which slots each attends to (host arrays).
struct LayerKeys {
  const int32_t* positions = nullptr;   // [n_tok] absolute positions (RoPE)
  const int32_t* kv_slots = nullptr;    // [n_tok] slots receiving the tokens' K/V
  const AttentionPlan* plan = nullptr;  // the keys of each token (plan->n_tok() == n_tok)
};

// One pre-norm transformer layer over n_tok rows of the residual stream s.x, in place: the
// attention block (RMSNorm, q/k/v with the config's biases or per-head q/k norms, RoPE, K/V
// stored at kv layer `kv_layer`, attention over each token's keys in the plan, o, residual add),
// then the SwiGLU feed-forward block. The slots are trusted: the caller has validated them.
void forward_layer(const ModelConfig& c, const LayerWeights& L, int kv_layer, const LayerKeys& keys,
                   int64_t n_tok, KvStorage& kv, LayerScratch& s, Backend& backend);

class Model {
 public:
  // Optional progress callback (done_bytes, total_bytes) while weights are paged in.
  using Progress = std::function<void(uint64_t, uint64_t)>;
  // Binds the file's weights and places the matrices on `backend` (Backend::place_weight):
  // forwards then run on that backend or one of the same kind (CPU backends of any thread
  // count are interchangeable).
  static Result<std::unique_ptr<Model>> load(std::shared_ptr<ModelFile> file, Backend& backend,
                                             const Progress& progress = {});

  const ModelConfig& config() const { return config_; }
  const ModelFile& file() const { return *file_; }
  uint64_t weight_bytes() const;  // bytes read from weights by one forward
  // The model's own weights, for drafters that share them (DSpark): possibly quantized and
  // packed, so read them through a Backend's ops. They point into the model's mapped file:
  // valid while the model lives.
  const WeightView& token_embedding() const { return token_embd_; }  // [vocab, d_model]
  // [vocab, d_model]; the token embedding itself when tied.
  const WeightView& output_head() const { return output_; }

  // Validates the batch (ids, slots, positions in range) before touching anything. Calls are
  // serialized on an internal mutex (the scratch buffers are reused from call to call), so use
  // one Model per thread for parallel forwards.
  Status forward(const ForwardBatch& batch, KvStorage& kv, ForwardOutput& out,
                 Backend& backend) const;
  // Grows the forward's scratch to n_tokens (every row with logits), touching it, so that the
  // first step that large pays no allocation and page faults (an engine reserves its per-step
  // token limit at creation; the scratch is shared by every engine on this model). An error
  // where the memory cannot be had.
  Status reserve(int64_t n_tokens) const;

 private:
  struct Scratch;
  Model();
  Status bind_weights(Backend& backend);  // weights.cpp: finds, checks and places every tensor
  void page_in(const Progress& progress) const;  // model.cpp: reads the mapped weights once

  ModelConfig config_;
  std::shared_ptr<ModelFile> file_;
  std::vector<LayerWeights> layers_;
  WeightView token_embd_;           // [vocab, d_model]
  WeightView output_;               // [vocab, d_model] (token_embd_ when tied)
  std::vector<float> output_norm_;  // [d_model]
  uint64_t weight_bytes_ = 0;
  mutable std::mutex forward_mutex_;
  mutable std::unique_ptr<Scratch> scratch_;  // guarded by forward_mutex_

 public:
  ~Model();
};

}  // namespace dspark
