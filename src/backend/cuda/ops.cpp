// Argument checks and launches for the norm, activation and benchmark kernels.
#include <climits>
#include <string>

#include "cuda_error.h"
#include "dspark/backend_cuda.h"
#include "launchers.h"

namespace dspark::cuda {

Status rmsnorm(const float* x, const float* weight, int64_t n, int64_t d, float eps, float* y,
               const Stream& stream) {
  if (n < 0 || d < 0) {
    return detail::arg_error(
        "rmsnorm", "negative shape [" + std::to_string(n) + ", " + std::to_string(d) + "]");
  }
  if (n == 0) return Status::Ok();
  if (d == 0) return detail::arg_error("rmsnorm", "rows of width 0");
  if (n > INT_MAX || d > INT_MAX) {
    return detail::arg_error("rmsnorm", "shape [" + std::to_string(n) + ", " + std::to_string(d) +
                                            "] exceeds the kernel's int range");
  }
  if (!x || !weight || !y) return detail::arg_error("rmsnorm", "null pointer");
  if (!(eps >= 0.0f)) return detail::arg_error("rmsnorm", "eps must be >= 0");
  return detail::check(kernels::launch_rmsnorm(x, weight, static_cast<int>(n), static_cast<int>(d),
                                               eps, y, detail::native(stream)),
                       "rmsnorm kernel launch");
}

Status silu_mul(const float* gate, const float* up, int64_t n, float* y, const Stream& stream) {
  if (n < 0) return detail::arg_error("silu_mul", "negative length " + std::to_string(n));
  if (n == 0) return Status::Ok();
  if (!gate || !up || !y) return detail::arg_error("silu_mul", "null pointer");
  return detail::check(kernels::launch_silu_mul(gate, up, n, y, detail::native(stream)),
                       "silu_mul kernel launch");
}

Status read_sweep(const float* x, int64_t n, float* sum, const Stream& stream) {
  if (n < 0) return detail::arg_error("read_sweep", "negative length " + std::to_string(n));
  if (!sum || (n > 0 && !x)) return detail::arg_error("read_sweep", "null pointer");
  DSPARK_RETURN_IF_ERROR(zero_on_device(sum, sizeof(float), stream));
  if (n == 0) return Status::Ok();
  return detail::check(kernels::launch_read_sweep(x, n, sum, detail::native(stream)),
                       "read_sweep kernel launch");
}

}  // namespace dspark::cuda
