// CPU backend: a thread pool and the kernels the model forward is made of. Every kernel is
// batch-invariant: each output row is computed by one thread in a fixed reduction order, so a
// token's results do not depend on which other tokens share the call. Each fast kernel has a
// plain *_reference twin used by the tests.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dspark/backend.h"
#include "dspark/loader.h"

namespace dspark::cpu {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  bool avxvnni = false;
};
// Detected once at run time; DSPARK_CPU_ISA=scalar|avx2|avx512 caps what is used (for tests).
const CpuFeatures& cpu_features();
const char* isa_name();  // "avx512-vnni", "avx2", "scalar": what the kernels dispatch to

// Instruction-set levels the kernels are written for, lowest first.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };
Isa active_isa();
// Caps the level the kernels use (tests run each path); returns the level now active, the lower
// of cap and what the CPU has. Not to be called while kernels run on other threads.
Isa set_isa_cap(Isa cap);

// Opt-in time per op kind (dspark bench --profile). While off, an instrumented op costs one
// relaxed load of a flag; while on, two clock reads and a table update on the calling thread.
// Ops time themselves on the thread that calls them (the forward's), wall clock, so the pool's
// share of an op is inside the op's time; "pool wait" is the part of those times the caller
// spent waiting for the workers after finishing its own tasks.
namespace profile {
namespace detail {
extern std::atomic<bool> on;
void record(const char* kind, int64_t a, int64_t b, int64_t ns);
int64_t now_ns();
}  // namespace detail

inline bool enabled() {
  return detail::on.load(std::memory_order_relaxed);
}
void set_enabled(bool on);

struct Entry {
  std::string name;  // kind, with its shape where it has one: "matmul Q4_1 576->1536"
  int64_t calls = 0;
  double seconds = 0.0;
};
// The entries recorded since the last take(), in first-seen order; clears them.
std::vector<Entry> take();

// Times its scope as `kind` (a string literal); a, b (> 0) name a shape: for "matmul" a is
// the weight type (DType) and b packs rows and cols as rows << 32 | cols.
class Scope {
 public:
  explicit Scope(const char* kind, int64_t a = 0, int64_t b = 0)
      : kind_(enabled() ? kind : nullptr), a_(a), b_(b), start_(kind_ ? detail::now_ns() : 0) {}
  ~Scope() {
    if (kind_ != nullptr) detail::record(kind_, a_, b_, detail::now_ns() - start_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* kind_;
  int64_t a_, b_, start_;
};
}  // namespace profile

// Fixed set of worker threads. run() splits n_tasks over the threads and returns when all are
// done; the caller's thread takes part. Low overhead (spinning briefly before sleeping), since
// a forward calls it a few hundred times.
class ThreadPool {
 public:
  explicit ThreadPool(int n_threads = 0);  // 0 = number of physical cores available
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;
  // fn(task_index, thread_index) for task_index in [0, n_tasks); fn must not call run() on the
  // same pool. Calls from several threads are serialized.
  void run(int64_t n_tasks, const std::function<void(int64_t, int)>& fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

using WeightView = dspark::WeightView;

// Returns w with a packed copy when the active kernels have a packed layout for its type
// (AVX-512: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K; AVX2: the five 32-value formats),
// else w unchanged. The packed tiles
// skip a transpose per tile that would otherwise be paid on every call, for every 8 tokens. With
// release_source, the pages of w.data the copy replaces are handed back to the OS afterwards
// (a hint that keeps their contents: mapped file pages are re-read if ever touched again), so
// packing does not double the resident memory of a memory-mapped model.
WeightView pack_for_matmul(const WeightView& w, bool release_source);

// y[t, r] = dot(w[r, :], x[t, :]). Quantized weights are used directly: activations are
// quantized per token to 8 bits (as llama.cpp does) and multiplied with integer dot products.
// Reads each weight once for all n_tok tokens.
void matmul(const WeightView& w, const float* x /*[n_tok, w.cols]*/, int64_t n_tok,
            float* y /*[n_tok, w.rows]*/, ThreadPool& pool);
// matmul of several matrices over the same x (q, k and v; gate and up): ys[i] gets exactly what
// matmul(*ws[i], x, n_tok, ys[i], pool) gives, but the activations are quantized once and all
// the matrices' rows are split over the pool in one run (when they read the same activation
// format, as matrices of one weight family do; else they run one by one).
void matmul_shared_input(const WeightView* const ws[], float* const ys[] /*[n_tok, ws[i]->rows]*/,
                         int n_mats, const float* x /*[n_tok, cols]*/, int64_t n_tok,
                         ThreadPool& pool);
// Whether matmul and get_row handle this weight type: every type the loader can dequantize
// (F32, F16, BF16, Q4_0..Q8_0 and Q4_K..Q6_K have their own kernels; others are converted to
// fp32 row by row). The model checks at load time; matmul fills y with NaN for other types.
bool matmul_supported(DType type);
// Same contract: dequantize each row, then a float dot product with the unquantized x.
void matmul_reference(const WeightView& w, const float* x /*[n_tok, w.cols]*/, int64_t n_tok,
                      float* y /*[n_tok, w.rows]*/);

// out[c] = w[row, c] dequantized.
void get_row(const WeightView& w, int64_t row, float* out /*[w.cols]*/);

// y = x / sqrt(mean(x^2) + eps) * weight, per row. In-place allowed (y == x).
void rmsnorm(const float* x /*[n, d]*/, const float* weight /*[d]*/, int64_t n, int64_t d,
             float eps, float* y /*[n, d]*/);

using dspark::rope_inv_frequencies;
using dspark::RopeLayout;
using dspark::RopeParams;
// Rotates each head of x in place by its token's position.
void rope(float* x /*[n_tok, n_heads, head_dim]*/, const int32_t* positions /*[n_tok]*/,
          int64_t n_tok, int64_t n_heads, int64_t head_dim, const RopeParams& params);

// y = silu(gate) * up, elementwise.
void silu_mul(const float* gate /*[n]*/, const float* up /*[n]*/, int64_t n, float* y /*[n]*/);
// y += x
void add_inplace(float* y /*[n]*/, const float* x /*[n]*/, int64_t n);

// K/V cache rows are fp16 in "slots": slot s holds [n_kv_heads, head_dim] for one token.
void store_kv_f16(const float* kv /*[n_tok, n_kv_heads*head_dim]*/,
                  const int32_t* slots /*[n_tok]*/, int64_t n_tok, int64_t row_elems,
                  uint16_t* cache /*[n_slots, row_elems]*/);

using dspark::attention_args;
using dspark::AttentionArgs;
void attention(const AttentionArgs& args, ThreadPool& pool);
void attention_reference(const AttentionArgs& args);

// One row of n floats (n % 32 == 0) as Q8_0 blocks: d = max |x| / 127 (stored f16),
// q = round(x / d).
void quantize_row_q8_0(const float* x /*[n]*/, int64_t n, uint8_t* out /*[n / 32 * 34]*/);
// Backend::quantize_weight and gather_rows of the CPU backend (owned copies, packed).
Result<WeightView> quantize_weight(const WeightView& w, DType type);
WeightView gather_rows(const WeightView& w, const int32_t* ids /*[n]*/, int64_t n);

// Index of the largest value (first one on ties).
int64_t argmax(const float* x /*[n]*/, int64_t n);

// Measured read bandwidth of this machine in bytes/s using all pool threads (for benchmarks).
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30);

}  // namespace dspark::cpu
