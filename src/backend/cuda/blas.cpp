// Dense matrix products through cuBLAS: y[n_tok, rows] = x[n_tok, cols] * W[rows, cols]^T.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <string>
#include <utility>

#include "cuda_error.h"
#include "dspark/backend_cuda.h"
#include "launchers.h"

namespace dspark::cuda {

Result<Blas> Blas::create() {
  cublasHandle_t handle = nullptr;
  DSPARK_RETURN_IF_ERROR(detail::check(cublasCreate(&handle), "cublasCreate"));
  // Default math keeps fp32 products in fp32 (no TF32), which the CPU comparison relies on.
  const cublasStatus_t mode = cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH);
  if (mode != CUBLAS_STATUS_SUCCESS) {
    cublasDestroy(handle);
    return detail::cublas_error(mode, "cublasSetMathMode");
  }
  return Blas(handle);
}

Blas::~Blas() {
  if (handle_) cublasDestroy(static_cast<cublasHandle_t>(handle_));
}

Blas::Blas(Blas&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)), scratch_(std::move(other.scratch_)) {}

Blas& Blas::operator=(Blas&& other) noexcept {
  if (this != &other) {
    if (handle_) cublasDestroy(static_cast<cublasHandle_t>(handle_));
    handle_ = std::exchange(other.handle_, nullptr);
    scratch_ = std::move(other.scratch_);
  }
  return *this;
}

Status Blas::matmul(const DeviceWeight& w, const float* x, int64_t n_tok, float* y,
                    const Stream& stream) {
  if (!handle_) return detail::arg_error("Blas::matmul", "handle was not created");
  if (w.rows < 0 || w.cols < 0 || n_tok < 0) {
    return detail::arg_error("Blas::matmul", "negative shape: weight [" + std::to_string(w.rows) +
                                                 ", " + std::to_string(w.cols) + "], n_tok " +
                                                 std::to_string(n_tok));
  }
  if (w.rows > INT_MAX || w.cols > INT_MAX || n_tok > INT_MAX) {
    return detail::arg_error("Blas::matmul", "shape exceeds cuBLAS's int range");
  }
  cudaDataType_t type;
  size_t elem_bytes = 0;
  switch (w.type) {
    case DType::F32:
      type = CUDA_R_32F;
      elem_bytes = 4;
      break;
    case DType::F16:
      type = CUDA_R_16F;
      elem_bytes = 2;
      break;
    case DType::BF16:
      type = CUDA_R_16BF;
      elem_bytes = 2;
      break;
    default:
      return detail::arg_error("Blas::matmul", "weight type " +
                                                   std::to_string(static_cast<uint32_t>(w.type)) +
                                                   " is not F32, F16 or BF16");
  }
  if (n_tok == 0 || w.rows == 0) return Status::Ok();
  if (!x || !y || !w.data) return detail::arg_error("Blas::matmul", "null pointer");
  const cudaStream_t native = detail::native(stream);
  if (w.cols == 0) {
    // An empty sum: cuBLAS may leave y untouched for k == 0, so clear it here.
    return zero_on_device(y, static_cast<size_t>(n_tok * w.rows) * sizeof(float), stream);
  }

  const void* b = x;
  if (type != CUDA_R_32F) {
    const int64_t n = n_tok * w.cols;
    const size_t bytes = static_cast<size_t>(n) * elem_bytes;
    if (scratch_.size() < bytes) {
      // Work queued on the old scratch must finish before it is freed and reused.
      DSPARK_RETURN_IF_ERROR(stream.synchronize());
      scratch_ = DeviceBuffer();
      auto buffer = DeviceBuffer::allocate(bytes);
      if (!buffer.ok()) return buffer.error();
      scratch_ = std::move(buffer.value());
    }
    const cudaError_t launched = type == CUDA_R_16F
                                     ? kernels::launch_f32_to_f16(x, n, scratch_.data(), native)
                                     : kernels::launch_f32_to_bf16(x, n, scratch_.data(), native);
    DSPARK_RETURN_IF_ERROR(detail::check(launched, "Blas::matmul: rounding x kernel launch"));
    b = scratch_.data();
  }

  auto handle = static_cast<cublasHandle_t>(handle_);
  DSPARK_RETURN_IF_ERROR(detail::check(cublasSetStream(handle, native), "cublasSetStream"));
  // Row-major y[n_tok, rows] is column-major y^T[rows, n_tok] = W * x^T, where row-major
  // W[rows, cols] read column-major is W^T (so op T) and row-major x is x^T (op N).
  const float alpha = 1.0f, beta = 0.0f;
  const int m = static_cast<int>(w.rows), n = static_cast<int>(n_tok), k = static_cast<int>(w.cols);
  return detail::check(
      cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, w.data, type, k, b, type, k,
                   &beta, y, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx");
}

}  // namespace dspark::cuda
