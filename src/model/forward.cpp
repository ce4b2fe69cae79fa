// Model::forward: embeddings, the transformer layers over the backend's ops, final norm and the
// logits of the requested rows.
#include <algorithm>
#include <cstring>
#include <new>
#include <string>

#include "batch_plan.h"
#include "model_internal.h"

namespace dspark {

namespace {

// Copies the residual stream into capture slot c of every token.
void capture(const float* x /*[n, d]*/, int64_t n, int64_t d, size_t c, size_t n_capture,
             float* hidden /*[n, n_capture, d]*/) {
  for (int64_t t = 0; t < n; ++t) {
    std::memcpy(hidden + (t * int64_t(n_capture) + int64_t(c)) * d, x + t * d,
                sizeof(float) * size_t(d));
  }
}

}  // namespace

void Model::Scratch::fit(const ModelConfig& c, int64_t n, size_t n_rows) {
  const int64_t d = c.d_model;
  layer.fit(c, n);
  if (rows.size() < n_rows * size_t(d)) rows.resize(n_rows * size_t(d));
}

Status Model::reserve(int64_t n_tokens) const {
  if (n_tokens < 1) return Status::Ok();
  std::lock_guard<std::mutex> lock(forward_mutex_);
  try {
    scratch_->fit(config_, n_tokens, size_t(n_tokens));
  } catch (const std::bad_alloc&) {
    return Error{"cannot allocate the activations of a " + std::to_string(n_tokens) +
                 "-token step"};
  }
  return Status::Ok();
}

Status Model::forward(const ForwardBatch& batch, KvStorage& kv, ForwardOutput& out,
                      Backend& backend) const {
  std::lock_guard<std::mutex> lock(forward_mutex_);
  Scratch& s = *scratch_;
  const ModelConfig& c = config_;
  DSPARK_RETURN_IF_ERROR(model_detail::plan_batch(c, batch, kv, &s.plan, &s.slot_mark));
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const int64_t d = c.d_model;
  const size_t n_capture = batch.capture_layers.size();
  const size_t n_rows = batch.logit_rows.size();
  // Every element is overwritten below (each capture layer is validated to exist).
  const int64_t n_vocab = batch.logit_vocab > 0 ? batch.logit_vocab : c.vocab_size;
  out.logits.resize(n_rows * size_t(n_vocab));
  out.hidden.resize(size_t(n) * n_capture * size_t(d));
  if (n == 0) return Status::Ok();

  s.fit(c, n, n_rows);

  auto capture_layer = [&](int layer) {
    for (size_t i = 0; i < n_capture; ++i) {
      if (batch.capture_layers[i] == layer)
        capture(s.layer.x.data(), n, d, i, n_capture, out.hidden.data());
    }
  };
  backend.gather_weight_rows(token_embd_, batch.tokens.data(), n, s.layer.x.data());
  capture_layer(-1);
  const LayerKeys keys{batch.positions.data(), batch.kv_slots.data(), &s.plan};
  for (int l = 0; l < c.n_layers; ++l) {
    forward_layer(c, layers_[size_t(l)], l, keys, n, kv, s.layer, backend);
    capture_layer(l);
  }
  if (n_rows == 0) {
    backend.synchronize();
    return Status::Ok();
  }
  // Only the requested rows go through the final norm and the (large) output projection.
  for (size_t i = 0; i < n_rows; ++i) {
    std::memcpy(s.rows.data() + i * size_t(d), s.layer.x.data() + int64_t(batch.logit_rows[i]) * d,
                sizeof(float) * size_t(d));
  }
  backend.rmsnorm(s.rows.data(), output_norm_.data(), int64_t(n_rows), d, c.rms_eps, s.rows.data());
  // Rows are token ids: a prefix of them is a smaller head.
  backend.matmul(output_.first_rows(n_vocab), s.rows.data(), int64_t(n_rows), out.logits.data());
  backend.synchronize();
  return Status::Ok();
}

}  // namespace dspark
