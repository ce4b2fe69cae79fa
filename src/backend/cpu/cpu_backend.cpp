// The Backend interface over the CPU kernels: host memory, a thread pool that only this class
// sees, and ops that run synchronously on the calling thread and the pool.
#include <string>

#include "dspark/backend_cpu.h"

namespace dspark {

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads) : pool_(n_threads) {}

  std::string name() const override {
    return std::string("cpu ") + cpu::isa_name() + " x" + std::to_string(pool_.size());
  }
  int n_threads() const override { return pool_.size(); }

  WeightView place_weight(const WeightView& w, bool release_source) override {
    return cpu::pack_for_matmul(w, release_source);
  }
  Result<WeightView> quantize_weight(const WeightView& w, DType type) override {
    return cpu::quantize_weight(w, type);
  }
  WeightView gather_rows(const WeightView& w, const int32_t* ids, int64_t n) override {
    return cpu::gather_rows(w, ids, n);
  }
  bool supports(DType type) const override { return cpu::matmul_supported(type); }

  void matmul(const WeightView& w, const float* x, int64_t n_tok, float* y) override {
    cpu::matmul(w, x, n_tok, y, pool_);
  }
  void matmul_shared_input(const WeightView* const ws[], float* const ys[], int n_mats,
                           const float* x, int64_t n_tok) override {
    cpu::matmul_shared_input(ws, ys, n_mats, x, n_tok, pool_);
  }
  void gather_weight_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out) override {
    cpu::profile::Scope timing("embedding rows");
    for (int64_t t = 0; t < n; ++t) cpu::get_row(w, ids[t], out + t * w.cols);
  }
  void rmsnorm(const float* x, const float* weight, int64_t n, int64_t d, float eps,
               float* y) override {
    cpu::rmsnorm(x, weight, n, d, eps, y);
  }
  void rope(float* x, const int32_t* positions, int64_t n_tok, int64_t n_heads, int64_t head_dim,
            const RopeParams& p) override {
    cpu::rope(x, positions, n_tok, n_heads, head_dim, p);
  }
  void silu_mul(float* gate, const float* up, int64_t n_tok, int64_t width) override {
    cpu::profile::Scope timing("silu_mul");
    pool_.run(n_tok, [&](int64_t t, int) {
      cpu::silu_mul(gate + t * width, up + t * width, width, gate + t * width);
    });
  }
  void add(float* y, const float* x, int64_t n) override { cpu::add_inplace(y, x, n); }
  void add_rows(float* y, const float* bias, int64_t n, int64_t dim) override {
    for (int64_t t = 0; t < n; ++t) cpu::add_inplace(y + t * dim, bias, dim);
  }
  void store_kv(const float* kv, const int32_t* slots, int64_t n_tok, int64_t row_elems,
                uint16_t* cache) override {
    cpu::store_kv_f16(kv, slots, n_tok, row_elems, cache);
  }
  void attention(const AttentionArgs& args) override { cpu::attention(args, pool_); }
  int64_t argmax(const float* x, int64_t n) override { return cpu::argmax(x, n); }
  void synchronize() override {}

  void host_parallel(int64_t n, const std::function<void(int64_t, int)>& fn) override {
    pool_.run(n, fn);
  }

 private:
  cpu::ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) {
  return std::make_unique<CpuBackend>(n_threads);
}

}  // namespace dspark
