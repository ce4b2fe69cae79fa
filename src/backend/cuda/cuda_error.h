// Turns CUDA runtime and cuBLAS failures into Error values naming the failed operation.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>
#include <string_view>

#include "dspark/backend_cuda.h"
#include "dspark/status.h"

namespace dspark::cuda::detail {

// "what: cudaErrorMemoryAllocation (out of memory)"
Error cuda_error(cudaError_t code, std::string_view what);
Error cublas_error(cublasStatus_t code, std::string_view what);

inline Status check(cudaError_t code, std::string_view what) {
  if (code == cudaSuccess) return Status::Ok();
  return cuda_error(code, what);
}
inline Status check(cublasStatus_t code, std::string_view what) {
  if (code == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  return cublas_error(code, what);
}

inline cudaStream_t native(const Stream& stream) {
  return static_cast<cudaStream_t>(stream.handle());
}

// Argument errors: "cuda::rmsnorm: <message>".
inline Error arg_error(std::string_view op, std::string_view message) {
  return Error{"cuda::" + std::string(op) + ": " + std::string(message)};
}

}  // namespace dspark::cuda::detail
