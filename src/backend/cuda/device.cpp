// Device queries and the error-string helpers.
#include <cuda_runtime.h>

#include <string>

#include "cuda_error.h"
#include "dspark/backend_cuda.h"

namespace dspark::cuda {
namespace detail {

Error cuda_error(cudaError_t code, std::string_view what) {
  // Reset the runtime's last-error state, so a non-sticky failure (an allocation too large, a
  // bad launch configuration) is not reported again by the next launch check.
  cudaGetLastError();
  return Error{std::string(what) + ": " + cudaGetErrorName(code) + " (" + cudaGetErrorString(code) +
               ")"};
}

Error cublas_error(cublasStatus_t code, std::string_view what) {
  return Error{std::string(what) + ": " + cublasGetStatusName(code) + " (" +
               cublasGetStatusString(code) + ")"};
}

}  // namespace detail

Result<int> cuda_device_count() {
  int count = 0;
  const cudaError_t code = cudaGetDeviceCount(&count);
  if (code != cudaSuccess) return detail::cuda_error(code, "cudaGetDeviceCount");
  return count;
}

bool cuda_available(std::string* why) {
  auto count = cuda_device_count();
  if (!count.ok()) {
    if (why) *why = count.error().message;
    return false;
  }
  if (*count == 0) {
    if (why) *why = "cudaGetDeviceCount: 0 devices";
    return false;
  }
  return true;
}

Result<DeviceInfo> cuda_device_info(int device) {
  auto count = cuda_device_count();
  if (!count.ok()) return count.error();
  if (device < 0 || device >= *count) {
    return Error{"cuda_device_info: device " + std::to_string(device) + " out of range (" +
                 std::to_string(*count) + " devices)"};
  }
  DeviceInfo info;
  info.index = device;
  cudaDeviceProp prop{};
  DSPARK_RETURN_IF_ERROR(
      detail::check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties"));
  info.name = prop.name;
  info.total_memory = prop.totalGlobalMem;
  struct Attr {
    cudaDeviceAttr attr;
    int* out;
  };
  int l2 = 0;
  const Attr attrs[] = {{cudaDevAttrMultiProcessorCount, &info.sm_count},
                        {cudaDevAttrComputeCapabilityMajor, &info.cc_major},
                        {cudaDevAttrComputeCapabilityMinor, &info.cc_minor},
                        {cudaDevAttrL2CacheSize, &l2},
                        {cudaDevAttrGlobalMemoryBusWidth, &info.memory_bus_bits}};
  for (const Attr& a : attrs) {
    DSPARK_RETURN_IF_ERROR(
        detail::check(cudaDeviceGetAttribute(a.out, a.attr, device), "cudaDeviceGetAttribute"));
  }
  info.l2_cache_bytes = static_cast<uint64_t>(l2);
  DSPARK_RETURN_IF_ERROR(
      detail::check(cudaDriverGetVersion(&info.driver_version), "cudaDriverGetVersion"));
  DSPARK_RETURN_IF_ERROR(
      detail::check(cudaRuntimeGetVersion(&info.runtime_version), "cudaRuntimeGetVersion"));

  // Free memory is a property of the current device: switch to it briefly.
  int previous = 0;
  DSPARK_RETURN_IF_ERROR(detail::check(cudaGetDevice(&previous), "cudaGetDevice"));
  DSPARK_RETURN_IF_ERROR(detail::check(cudaSetDevice(device), "cudaSetDevice"));
  size_t free_bytes = 0, total_bytes = 0;
  const cudaError_t mem = cudaMemGetInfo(&free_bytes, &total_bytes);
  DSPARK_RETURN_IF_ERROR(detail::check(cudaSetDevice(previous), "cudaSetDevice"));
  DSPARK_RETURN_IF_ERROR(detail::check(mem, "cudaMemGetInfo"));
  info.free_memory = free_bytes;
  return info;
}

Status cuda_set_device(int device) {
  return detail::check(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
}

Status cuda_synchronize() {
  return detail::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

}  // namespace dspark::cuda
