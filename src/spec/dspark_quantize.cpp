// Q8_0 copies of a DSpark checkpoint's fc and draft-layer matrices (quantize_layers): every
// committed token goes through fc (m * d_model inputs) and the context K/V projections, and
// every round through the layers, so on the CPU those BF16 float products were a fixed cost
// of each step even when nothing was drafted. The backend makes the copies
// (Backend::quantize_weight); the views own them.
#include <string>

#include "dspark_checkpoint.h"

namespace dspark::spec::dspark_detail {

namespace {

constexpr int64_t kBlock = 32;  // values per Q8_0 block

// w as Q8_0; unchanged when it has no data, is Q8_0 already or its width is not a whole number
// of blocks.
Status quantize(Backend& backend, const char* what, WeightView& w) {
  if (w.data == nullptr || w.cols % kBlock != 0 || w.type == DType::Q8_0) return Status::Ok();
  auto q = backend.quantize_weight(w, DType::Q8_0);
  if (!q.ok())
    return Error{std::string("quantizing the DSpark ") + what + ": " + q.error().message};
  w = std::move(q.value());
  return Status::Ok();
}

}  // namespace

Status quantize_layers(Backend& backend, Checkpoint* ck) {
  DSPARK_RETURN_IF_ERROR(quantize(backend, "fc", ck->fc));
  for (DraftLayer& l : ck->layers) {
    for (WeightView* w : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) {
      DSPARK_RETURN_IF_ERROR(quantize(backend, "draft layers", *w));
    }
  }
  return Status::Ok();
}

}  // namespace dspark::spec::dspark_detail
