// The seam between the model code (model, drafters, engine) and the hardware: neutral
// descriptors of weights, RoPE and attention, and the Backend interface whose ops a forward is
// made of. Nothing above this header names a backend's own types; a backend (backend_cpu.h)
// implements the interface over its kernels and keeps its threads or streams to itself.
//
// Memory: every float*/uint16_t* an op takes is the backend's memory (host memory on the CPU
// backend). Index arrays (token ids, positions, slots, the attention plan) are host memory that
// the backend reads or stages as it needs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dspark/attention_plan.h"
#include "dspark/loader.h"
#include "dspark/status.h"

namespace dspark {

enum class RopeLayout {
  Interleaved,  // rotates pairs (2i, 2i+1): GGUF llama (q/k permuted at conversion)
  Neox,         // rotates (i, i + rot_dims/2): Hugging Face, GGUF qwen2/qwen3
};
struct RopeParams {
  RopeLayout layout = RopeLayout::Neox;
  int rot_dims = 0;  // leading dims of each head that rotate (= head_dim normally)
  float theta = 10000.0f;
  // Frequency scaling: factor 1 = none. Linear divides positions by factor. Llama3 uses
  // low/high frequency factors around original_context.
  enum class Scaling { None, Linear, Llama3, Yarn } scaling = Scaling::None;
  float factor = 1.0f;
  float low_freq_factor = 1.0f, high_freq_factor = 4.0f;
  int64_t original_context = 0;
  float yarn_beta_fast = 32.0f, yarn_beta_slow = 1.0f;
};
// Inverse frequency of each rotated pair i in [0, rot_dims / 2) with the model's scaling
// applied, computed in double; *mscale receives the factor YaRN applies to cos/sin (else 1).
// Shared by every backend so they rotate by the same angles.
std::vector<double> rope_inv_frequencies(const RopeParams& params, double* mscale);

// A weight matrix [rows, cols] of `type`, each row row_bytes long, as a backend holds it.
struct WeightView {
  DType type = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;  // [rows, row_bytes]
  uint64_t row_bytes = 0;
  // Optional copy of the rows of every whole group of 16 in the CPU kernels' tile layout (see
  // cpu::pack_for_matmul), same size as those rows; matmul and get_row then read it, not data,
  // for them (the scalar kernels always read data).
  std::shared_ptr<const uint8_t> packed;  // [rows / 16, 16 * row_bytes]
  // Owns data when the view is a copy a backend made (quantized, rows gathered); null when data
  // points into a mapped model file that outlives the view.
  std::shared_ptr<const void> storage;

  static WeightView from(const TensorInfo& t);  // the tensor as stored in its file
  // The first n rows (a row-id prefix of an output head is a smaller head).
  WeightView first_rows(int64_t n) const;
};

// Attention of each token over the keys its plan gives it (attention_plan.h: its context
// through its pages, its sequence's extra slots, its in-batch keys) in that order; softmax in
// fp32 (long key lists in fixed 256-key chunks merged in order, so results depend on neither
// the batch nor the thread count). Grouped-query: head h reads kv head h / (n_heads /
// n_kv_heads). A token with no keys gets zeros.
struct AttentionArgs {
  int64_t n_tok = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;  // n_tok = plan->n_tok()
  float scale = 1.0f;
  const float* q = nullptr;             // [n_tok, n_heads, head_dim]
  const uint16_t* k_cache = nullptr;    // [n_slots, n_kv_heads, head_dim] fp16
  const uint16_t* v_cache = nullptr;    // [n_slots, n_kv_heads, head_dim] fp16
  const AttentionPlan* plan = nullptr;  // host: the step's plan, shared by every layer
  float* out = nullptr;                 // [n_tok, n_heads, head_dim]
};
// The args of a model's attention over its KV cache, scaled by 1 / sqrt(head_dim).
AttentionArgs attention_args(const AttentionPlan& plan, int64_t n_heads, int64_t n_kv_heads,
                             int64_t head_dim, const float* q, const uint16_t* k_cache,
                             const uint16_t* v_cache, float* out);

// The ops of a transformer forward on one device. Every op is batch-invariant: a token's
// results do not depend on which other tokens share the call. Ops may run asynchronously;
// synchronize() waits for all of them (results in host memory are then final).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu avx2 x2": kind, instruction set, parallelism
  virtual int n_threads() const = 0;     // host threads its ops (and host_parallel) use

  // Weights. place_weight returns w in the form this backend's matmul reads fastest (a packed
  // copy, a device copy); with release_source the source pages may be handed back to the OS.
  virtual WeightView place_weight(const WeightView& w, bool release_source) = 0;
  // A copy of w in `type` (Q8_0 is supported for float weights whose cols are a multiple of
  // 32), placed; an error for other conversions.
  virtual Result<WeightView> quantize_weight(const WeightView& w, DType type) = 0;
  // A placed copy of rows ids[0..n) of w (ids inside [0, w.rows)).
  virtual WeightView gather_rows(const WeightView& w, const int32_t* ids /*[n]*/, int64_t n) = 0;
  // Whether matmul and weight_row handle this weight type.
  virtual bool supports(DType type) const = 0;

  // y[t, r] = dot(w[r, :], x[t, :]); quantized weights are used directly.
  virtual void matmul(const WeightView& w, const float* x /*[n_tok, w.cols]*/, int64_t n_tok,
                      float* y /*[n_tok, w.rows]*/) = 0;
  // ys[i] = matmul(*ws[i], x): the same bits, the input prepared once for all the matrices.
  virtual void matmul_shared_input(const WeightView* const ws[],
                                   float* const ys[] /*[n_tok, ws[i]->rows]*/, int n_mats,
                                   const float* x /*[n_tok, cols]*/, int64_t n_tok) = 0;
  // out[t, :] = w[ids[t], :] dequantized (embedding lookup).
  virtual void gather_weight_rows(const WeightView& w, const int32_t* ids /*[n] host*/, int64_t n,
                                  float* out /*[n, w.cols]*/) = 0;
  // y = x / sqrt(mean(x^2) + eps) * weight, per row; in place allowed.
  virtual void rmsnorm(const float* x /*[n, d]*/, const float* weight /*[d]*/, int64_t n, int64_t d,
                       float eps, float* y /*[n, d]*/) = 0;
  // Rotates each head of x in place by its token's position.
  virtual void rope(float* x /*[n_tok, n_heads, head_dim]*/, const int32_t* positions /*[n_tok]*/,
                    int64_t n_tok, int64_t n_heads, int64_t head_dim, const RopeParams& p) = 0;
  // gate = silu(gate) * up, per element of n_tok rows of `width`.
  virtual void silu_mul(float* gate /*[n_tok, width]*/, const float* up /*[n_tok, width]*/,
                        int64_t n_tok, int64_t width) = 0;
  // y += x elementwise.
  virtual void add(float* y /*[n]*/, const float* x /*[n]*/, int64_t n) = 0;
  // y[t, :] += bias for every row.
  virtual void add_rows(float* y /*[n, dim]*/, const float* bias /*[dim]*/, int64_t n,
                        int64_t dim) = 0;
  // cache[slots[t], :] = fp16(kv[t, :]).
  virtual void store_kv(const float* kv /*[n_tok, row_elems]*/, const int32_t* slots /*[n_tok]*/,
                        int64_t n_tok, int64_t row_elems,
                        uint16_t* cache /*[n_slots, row_elems]*/) = 0;
  virtual void attention(const AttentionArgs& args) = 0;
  // Index of the largest of x[0..n) (first one on ties).
  virtual int64_t argmax(const float* x /*[n]*/, int64_t n) = 0;
  // Waits until every op issued so far has finished.
  virtual void synchronize() = 0;

  // Host work between forwards (sampling, acceptance): fn(i, thread) for i in [0, n) on the
  // backend's host threads; returns when all are done. fn must not call back into the backend.
  virtual void host_parallel(int64_t n, const std::function<void(int64_t, int)>& fn) = 0;
};

// The CPU backend (backend_cpu.h's kernels) with a pool of n_threads (0: the physical cores).
std::unique_ptr<Backend> make_cpu_backend(int n_threads = 0);

}  // namespace dspark
