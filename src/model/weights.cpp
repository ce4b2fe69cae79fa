// Finds every tensor the forward needs, in GGUF or Hugging Face naming, and checks its presence,
// type and shape against the config before anything is computed.
#include <string>

#include "config_read.h"
#include "model_internal.h"

namespace dspark {

namespace {

using model_detail::Tensor;
using model_detail::tensor_name;

class Binder {
 public:
  Binder(const ModelFile& file, const ModelConfig& c, Backend& backend)
      : file_(file), c_(c), backend_(backend) {}

  // A matrix the backend multiplies with directly: [rows, cols], computable type.
  Result<WeightView> matrix(Tensor t, int layer, int64_t rows, int64_t cols, const char* what) {
    auto info = find(t, layer, what);
    if (!info.ok()) return info.error();
    const TensorInfo& ti = **info;
    if (ti.shape.size() != 2 || ti.shape[0] != rows || ti.shape[1] != cols) {
      return Error{"tensor '" + ti.name + "' (" + what + ") has shape " + shape_text(ti.shape) +
                   ", expected [" + std::to_string(rows) + ", " + std::to_string(cols) +
                   "] for this " + arch_name(c_.arch) + " config"};
    }
    DSPARK_RETURN_IF_ERROR(computable(ti, what, /*matrix=*/true));
    const WeightView w = WeightView::from(ti);
    // Matrices the forward multiplies with are placed for the backend's matmul (the CPU's packed
    // layout); the embedding table is only read row by row (unless tied, see bind_weights).
    return t == Tensor::Embedding ? w : backend_.place_weight(w, /*release_source=*/true);
  }

  // A small vector (norm weight, bias) converted to float.
  Result<std::vector<float>> vector(Tensor t, int layer, int64_t n, const char* what) {
    auto info = find(t, layer, what);
    if (!info.ok()) return info.error();
    const TensorInfo& ti = **info;
    if (ti.shape.size() != 1 || ti.shape[0] != n) {
      return Error{"tensor '" + ti.name + "' (" + what + ") has shape " + shape_text(ti.shape) +
                   ", expected [" + std::to_string(n) + "]"};
    }
    DSPARK_RETURN_IF_ERROR(computable(ti, what, /*matrix=*/false));
    std::vector<float> out(static_cast<size_t>(n));
    dequantize_row(ti.type, ti.data, out.data(), n);
    return out;
  }

 private:
  Result<const TensorInfo*> find(Tensor t, int layer, const char* what) {
    const std::string name = tensor_name(file_.format(), t, layer);
    const TensorInfo* ti = file_.tensor(name);
    if (ti == nullptr) {
      return Error{"missing tensor '" + name + "' (" + what + ") in this " + arch_name(c_.arch) +
                   " model"};
    }
    return ti;
  }

  // Matrices go to the backend's matmul and row reads; vectors are dequantized once at load.
  Status computable(const TensorInfo& ti, const char* what, bool matrix) {
    const DTypeInfo* info = dtype_info(ti.type);
    if (info == nullptr || !info->dequantizable || (matrix && !backend_.supports(ti.type))) {
      return Error{"tensor '" + ti.name + "' (" + what + ") has type " +
                   (info ? info->name : std::to_string(static_cast<uint32_t>(ti.type))) +
                   ", which dspark cannot compute with"};
    }
    if (ti.shape.back() % info->block_elems != 0) {
      return Error{"tensor '" + ti.name + "' (" + what + ") rows of " +
                   std::to_string(ti.shape.back()) + " are not whole " + info->name + " blocks"};
    }
    return Status::Ok();
  }

  const ModelFile& file_;
  const ModelConfig& c_;
  Backend& backend_;
};

}  // namespace

// Assigns r's value to *dst or returns its error from the enclosing function.
#define DSPARK_ASSIGN(dst, expr)     \
  do {                               \
    auto r_ = (expr);                \
    if (!r_.ok()) return r_.error(); \
    dst = std::move(r_.value());     \
  } while (0)

Status Model::bind_weights(Backend& backend) {
  const ModelConfig& c = config_;
  Binder b(*file_, c, backend);
  const int64_t d = c.d_model, q_dim = int64_t{c.n_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.n_kv_heads} * c.head_dim;
  DSPARK_ASSIGN(token_embd_, b.matrix(Tensor::Embedding, -1, c.vocab_size, d, "token embeddings"));
  DSPARK_ASSIGN(output_norm_, b.vector(Tensor::OutputNorm, -1, d, "final norm"));
  if (c.tied_embeddings) {
    token_embd_ = backend.place_weight(token_embd_, /*release_source=*/true);
    output_ = token_embd_;
  } else {
    DSPARK_ASSIGN(output_, b.matrix(Tensor::Output, -1, c.vocab_size, d, "output projection"));
  }
  layers_.resize(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = layers_[l];
    DSPARK_ASSIGN(L.attn_norm, b.vector(Tensor::AttnNorm, l, d, "attention norm"));
    DSPARK_ASSIGN(L.q, b.matrix(Tensor::Q, l, q_dim, d, "query projection"));
    DSPARK_ASSIGN(L.k, b.matrix(Tensor::K, l, kv_dim, d, "key projection"));
    DSPARK_ASSIGN(L.v, b.matrix(Tensor::V, l, kv_dim, d, "value projection"));
    DSPARK_ASSIGN(L.o, b.matrix(Tensor::O, l, d, q_dim, "attention output projection"));
    if (c.qkv_bias) {
      DSPARK_ASSIGN(L.q_bias, b.vector(Tensor::QBias, l, q_dim, "query bias"));
      DSPARK_ASSIGN(L.k_bias, b.vector(Tensor::KBias, l, kv_dim, "key bias"));
      DSPARK_ASSIGN(L.v_bias, b.vector(Tensor::VBias, l, kv_dim, "value bias"));
    }
    if (c.qk_norm) {
      DSPARK_ASSIGN(L.q_norm, b.vector(Tensor::QNorm, l, c.head_dim, "query norm"));
      DSPARK_ASSIGN(L.k_norm, b.vector(Tensor::KNorm, l, c.head_dim, "key norm"));
    }
    DSPARK_ASSIGN(L.ffn_norm, b.vector(Tensor::FfnNorm, l, d, "feed-forward norm"));
    DSPARK_ASSIGN(L.gate, b.matrix(Tensor::Gate, l, c.d_ff, d, "feed-forward gate"));
    DSPARK_ASSIGN(L.up, b.matrix(Tensor::Up, l, c.d_ff, d, "feed-forward up"));
    DSPARK_ASSIGN(L.down, b.matrix(Tensor::Down, l, d, c.d_ff, "feed-forward down"));
  }

  // Bytes one forward reads: every matrix once (embedding rows are negligible) plus the small
  // float vectors.
  auto bytes = [](const WeightView& w) { return uint64_t(w.rows) * w.row_bytes; };
  uint64_t total = bytes(output_) + output_norm_.size() * sizeof(float);
  for (const LayerWeights& L : layers_) {
    for (const WeightView* w : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
      total += bytes(*w);
    }
    for (const std::vector<float>* v :
         {&L.attn_norm, &L.q_bias, &L.k_bias, &L.v_bias, &L.q_norm, &L.k_norm, &L.ffn_norm}) {
      total += v->size() * sizeof(float);
    }
  }
  weight_bytes_ = total;
  return Status::Ok();
}

#undef DSPARK_ASSIGN

}  // namespace dspark
