// Rotary position embedding: argument checks and the frequency table.
#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_error.h"
#include "dspark/backend_cuda.h"
#include "launchers.h"

namespace dspark::cuda {
namespace {

static_assert(kMaxRopeDims == 2 * kernels::kRopeMaxPairs);

// The frequencies come from the CPU backend's rule, so both backends rotate by the same angles.
void fill_frequencies(const RopeParams& p, kernels::RopeTable& table) {
  const std::vector<double> inv_freq = rope_inv_frequencies(p, &table.mscale);
  std::copy(inv_freq.begin(), inv_freq.end(), table.inv_freq);
}

}  // namespace

Status rope(float* x, const int32_t* positions, int64_t n_tok, int64_t n_heads, int64_t head_dim,
            const RopeParams& params, const Stream& stream) {
  auto bad = [](const std::string& message) { return detail::arg_error("rope", message); };
  if (n_tok < 0 || n_heads < 0 || head_dim < 0) {
    return bad("negative shape [" + std::to_string(n_tok) + ", " + std::to_string(n_heads) + ", " +
               std::to_string(head_dim) + "]");
  }
  const int rot = params.rot_dims;
  if (rot <= 0 || rot % 2 != 0 || rot > head_dim || rot > kMaxRopeDims) {
    return bad("rot_dims " + std::to_string(rot) + " must be even, in (0, head_dim = " +
               std::to_string(head_dim) + "] and at most " + std::to_string(kMaxRopeDims));
  }
  if (!(params.theta > 0.0f) || !std::isfinite(params.theta)) {
    return bad("theta " + std::to_string(params.theta) + " must be positive and finite");
  }
  if (n_tok == 0 || n_heads == 0) return Status::Ok();
  if (!x || !positions) return bad("null pointer");
  if (n_tok > INT_MAX || n_heads > INT_MAX || head_dim > INT_MAX ||
      n_tok * n_heads > INT64_MAX / head_dim || n_tok * n_heads * (rot / 2) / 256 >= INT_MAX) {
    return bad("shape [" + std::to_string(n_tok) + ", " + std::to_string(n_heads) + ", " +
               std::to_string(head_dim) + "] exceeds the kernel's range");
  }
  kernels::RopeTable table;
  table.rot_dims = rot;
  table.neox = params.layout == RopeLayout::Neox;
  fill_frequencies(params, table);
  return detail::check(
      kernels::launch_rope(x, positions, static_cast<int>(n_tok), static_cast<int>(n_heads),
                           static_cast<int>(head_dim), table, detail::native(stream)),
      "rope kernel launch");
}

}  // namespace dspark::cuda
