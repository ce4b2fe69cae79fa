// matmul: quantizes the activations once per token, then splits the rows over the pool; each
// task runs the ISA's rows-kernel over its rows for all tokens, a few rows at a time so a
// weight row is fetched from memory once and reused from cache by every token.
#include <algorithm>
#include <limits>
#include <new>
#include <vector>

#include "kernels.h"
#include "packed.h"

namespace dspark::cpu {
namespace {

constexpr int64_t kRowTile = 16;  // rows whose weights stay in L1/L2 while tokens loop
// Row tiles are whole packed groups: the AVX2 kernels read a row from the packed copy only when
// its whole group is in the rectangle (kernels.h), so a row must never see its group split.
static_assert(kRowTile % packed::kRows == 0);
constexpr int64_t kTokTile = 8;  // tokens per kernel call (the kernels' register tile)
constexpr int64_t kParallelQuantizeValues = int64_t(1) << 16;  // tokens x cols worth a pool run

const MatmulKernel* pick(const KernelSet& ks, DType type) {
  switch (type) {
    case DType::F32:
      return &ks.f32;
    case DType::F16:
      return &ks.f16;
    case DType::BF16:
      return &ks.bf16;
    case DType::Q4_0:
      return &ks.q4_0;
    case DType::Q4_1:
      return &ks.q4_1;
    case DType::Q5_0:
      return &ks.q5_0;
    case DType::Q5_1:
      return &ks.q5_1;
    case DType::Q8_0:
      return &ks.q8_0;
    case DType::Q4_K:
      return &ks.q4_k;
    case DType::Q5_K:
      return &ks.q5_k;
    case DType::Q6_K:
      return &ks.q6_k;
    default:
      return nullptr;
  }
}

// Cache-line aligned storage: the SIMD kernels load whole 64-byte lines of activations, and a
// load that straddles two lines costs two.
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}  // NOLINT: allocator rebind
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const AlignedAllocator&) const { return true; }
};
template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

// Per-thread scratch for the quantized activations, reused across calls.
struct ActBuffers {
  AlignedVector<int8_t> qs;
  AlignedVector<float> d;
  AlignedVector<int32_t> sums;
};

QuantizedActs quantize_acts(const ActFormat& fmt, const float* x, int64_t n_tok, int64_t cols,
                            ThreadPool& pool) {
  thread_local ActBuffers buf;
  const ActLengths len = fmt.lengths(cols);
  buf.qs.resize(static_cast<size_t>(n_tok * len.qs));
  buf.d.resize(static_cast<size_t>(n_tok * len.d));
  buf.sums.resize(static_cast<size_t>(n_tok * len.sums));
  // Pointers, not buf: buf is this thread's, and the pool runs the lambda on others.
  int8_t* qs = buf.qs.data();
  float* d = buf.d.data();
  int32_t* sums = buf.sums.data();
  QuantizedActs a;
  a.n_tok = n_tok;
  a.qs = qs;
  a.d = d;
  a.sums = sums;
  a.qs_stride = len.qs;
  a.d_stride = len.d;
  a.sums_stride = len.sums;
  auto one = [&](int64_t t, int) {
    fmt.quantize(x + t * cols, cols, qs + t * len.qs, d + t * len.d, sums + t * len.sums);
  };
  // A pool run costs microseconds, far more than quantizing a few tokens: only a prefill's
  // worth of values is worth one.
  if (n_tok * cols >= kParallelQuantizeValues) {
    pool.run(n_tok, one);
  } else {
    for (int64_t t = 0; t < n_tok; ++t) one(t, 0);
  }
  return a;
}

}  // namespace

const KernelSet& active_kernels() {
  switch (active_isa()) {
    case Isa::Avx512:
      return kernels_avx512();
    case Isa::Avx2:
      return kernels_avx2();
    case Isa::Scalar:
      break;
  }
  return kernels_scalar();
}

bool matmul_supported(DType type) {
  const DTypeInfo* info = dtype_info(type);
  return info != nullptr && info->dequantizable;
}

namespace {

// One matrix of a matmul call, ready to run: its kernel and its share of the pool's tasks.
struct Job {
  const WeightView* w = nullptr;
  MatmulArgs args;
  const MatmulKernel* mk = nullptr;
  bool via_f32 = false;  // no kernel for the type: rows converted to fp32 first
  int64_t tiles_per_task = 0, n_tasks = 0;
};

// False (y filled with NaN) for a type the kernels cannot read.
bool prepare(const WeightView& w, float* y, int64_t n_tok, int pool_size, Job* job) {
  const DTypeInfo* info = dtype_info(w.type);
  if (info == nullptr || !info->dequantizable || w.cols % info->block_elems != 0) {
    std::fill(y, y + n_tok * w.rows, std::numeric_limits<float>::quiet_NaN());
    return false;
  }
  const KernelSet& ks = active_kernels();
  job->w = &w;
  job->args.w = static_cast<const uint8_t*>(w.data);
  job->args.row_bytes = w.row_bytes;
  job->args.packed = w.packed.get();
  job->args.cols = w.cols;
  job->args.y = y;
  job->args.y_stride = w.rows;
  job->mk = pick(ks, w.type);
  job->via_f32 = job->mk == nullptr;
  if (job->via_f32) job->mk = &ks.f32;
  // About four tasks per thread for balance, whole row tiles each.
  const int64_t n_tiles = (w.rows + kRowTile - 1) / kRowTile;
  job->tiles_per_task = std::max<int64_t>(1, n_tiles / (4 * pool_size));
  job->n_tasks = (n_tiles + job->tiles_per_task - 1) / job->tiles_per_task;
  return true;
}

// Task `task` of a job: its rows for all n_tok tokens.
void run_task(const Job& job, int64_t n_tok, int64_t task) {
  const WeightView& w = *job.w;
  const RowsKernel kernel = job.mk->rows;
  const int64_t r_begin = task * job.tiles_per_task * kRowTile;
  const int64_t r_end = std::min(w.rows, r_begin + job.tiles_per_task * kRowTile);
  if (job.via_f32) {
    thread_local std::vector<float> row;
    row.resize(static_cast<size_t>(w.cols));
    MatmulArgs one = job.args;
    one.w = reinterpret_cast<const uint8_t*>(row.data());
    one.row_bytes = 0;  // every row index reads the converted row
    for (int64_t r = r_begin; r < r_end; ++r) {
      dequantize_row(w.type, job.args.w + r * job.args.row_bytes, row.data(), w.cols);
      for (int64_t t0 = 0; t0 < n_tok; t0 += kTokTile) {
        kernel(one, r, r + 1, t0, std::min(n_tok, t0 + kTokTile));
      }
    }
    return;
  }
  for (int64_t r0 = r_begin; r0 < r_end; r0 += kRowTile) {
    const int64_t r1 = std::min(r_end, r0 + kRowTile);
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTokTile) {
      kernel(job.args, r0, r1, t0, std::min(n_tok, t0 + kTokTile));
    }
  }
}

// Whether jobs a and b read the same activations: the same input width and format.
bool same_activations(const Job& a, const Job& b) {
  return a.args.cols == b.args.cols && a.mk->act.quantize == b.mk->act.quantize &&
         a.mk->act.lengths == b.mk->act.lengths;
}

}  // namespace

void matmul(const WeightView& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const WeightView* ws[] = {&w};
  float* ys[] = {y};
  matmul_shared_input(ws, ys, 1, x, n_tok, pool);
}

void matmul_shared_input(const WeightView* const ws[], float* const ys[], int n_mats,
                         const float* x, int64_t n_tok, ThreadPool& pool) {
  if (n_tok <= 0 || n_mats <= 0) return;
  constexpr int kMaxMats = 4;
  if (n_mats > kMaxMats) {  // more than the fused path holds: in fused groups of kMaxMats
    matmul_shared_input(ws, ys, kMaxMats, x, n_tok, pool);
    matmul_shared_input(ws + kMaxMats, ys + kMaxMats, n_mats - kMaxMats, x, n_tok, pool);
    return;
  }
  Job jobs[kMaxMats];
  int n_jobs = 0;
  int64_t out_rows = 0;
  for (int i = 0; i < n_mats; ++i) {
    if (ws[i]->rows > 0 && prepare(*ws[i], ys[i], n_tok, pool.size(), &jobs[n_jobs])) {
      out_rows += ws[i]->rows;
      ++n_jobs;
    }
  }
  if (n_jobs == 0) return;
  // One quantization serves all matrices only if they read the same format; else each runs
  // on its own.
  for (int i = 1; i < n_jobs; ++i) {
    if (same_activations(jobs[0], jobs[i])) continue;
    for (int j = 0; j < n_jobs; ++j) {
      float* y = jobs[j].args.y;
      matmul_shared_input(&jobs[j].w, &y, 1, x, n_tok, pool);
    }
    return;
  }
  const ActFormat& fmt = jobs[0].mk->act;
  if (fmt.quantize == nullptr) {
    for (int i = 0; i < n_jobs; ++i) jobs[i].args.x = x;
  } else {
    profile::Scope timing("quantize activations");
    const QuantizedActs acts = quantize_acts(fmt, x, n_tok, jobs[0].args.cols, pool);
    for (int i = 0; i < n_jobs; ++i) jobs[i].args.acts = acts;
  }
  profile::Scope timing("matmul", int64_t(jobs[0].w->type), out_rows << 32 | jobs[0].args.cols);
  int64_t first_task[kMaxMats + 1] = {0};
  for (int i = 0; i < n_jobs; ++i) first_task[i + 1] = first_task[i] + jobs[i].n_tasks;
  pool.run(first_task[n_jobs], [&](int64_t task, int) {
    int i = 0;
    while (task >= first_task[i + 1]) ++i;
    run_task(jobs[i], n_tok, task - first_task[i]);
  });
}

void matmul_reference(const WeightView& w, const float* x, int64_t n_tok, float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    get_row(w, r, row.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      double acc = 0.0;
      for (int64_t c = 0; c < w.cols; ++c) acc += double(row[c]) * double(x[t * w.cols + c]);
      y[t * w.rows + r] = static_cast<float>(acc);
    }
  }
}

void get_row(const WeightView& w, int64_t row, float* out) {
  const DTypeInfo* info = dtype_info(w.type);
  if (info == nullptr || !info->dequantizable || w.cols % info->block_elems != 0) {
    std::fill(out, out + w.cols, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  const int64_t group = row / packed::kRows;
  if (w.packed != nullptr && group < w.rows / packed::kRows) {
    thread_local std::vector<uint8_t> bytes;
    bytes.resize(static_cast<size_t>(w.row_bytes));
    packed::unpack_row(w.type, w.packed.get() + group * packed::kRows * w.row_bytes,
                       int(row % packed::kRows), w.cols, bytes.data());
    dequantize_row(w.type, bytes.data(), out, w.cols);
    return;
  }
  const auto* base = static_cast<const uint8_t*>(w.data);
  dequantize_row(w.type, base + row * w.row_bytes, out, w.cols);
}

}  // namespace dspark::cpu
