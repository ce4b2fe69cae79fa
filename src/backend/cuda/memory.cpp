// Device buffers, streams, events and copies.
#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "cuda_error.h"
#include "dspark/backend_cuda.h"

namespace dspark::cuda {

// ---- Stream ----

Result<Stream> Stream::create() {
  cudaStream_t stream = nullptr;
  DSPARK_RETURN_IF_ERROR(detail::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                                       "cudaStreamCreateWithFlags"));
  return Stream(stream);
}

Stream::~Stream() {
  if (owned_) cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
}

Stream::Stream(Stream&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)), owned_(std::exchange(other.owned_, false)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (owned_) cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
    handle_ = std::exchange(other.handle_, nullptr);
    owned_ = std::exchange(other.owned_, false);
  }
  return *this;
}

Status Stream::synchronize() const {
  return detail::check(cudaStreamSynchronize(detail::native(*this)), "cudaStreamSynchronize");
}

// ---- DeviceBuffer ----

Result<DeviceBuffer> DeviceBuffer::allocate(size_t bytes) {
  if (bytes == 0) return DeviceBuffer();
  void* data = nullptr;
  const cudaError_t code = cudaMalloc(&data, bytes);
  if (code != cudaSuccess) {
    return detail::cuda_error(code, "cudaMalloc(" + std::to_string(bytes) + " bytes)");
  }
  return DeviceBuffer(data, bytes);
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

// ---- copies ----

namespace {

Status copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const Stream& stream,
            bool wait, const char* what) {
  if (bytes == 0) return Status::Ok();
  if (!dst || !src)
    return detail::arg_error(what, "null pointer for " + std::to_string(bytes) + " bytes");
  DSPARK_RETURN_IF_ERROR(
      detail::check(cudaMemcpyAsync(dst, src, bytes, kind, detail::native(stream)), what));
  if (!wait) return Status::Ok();
  return stream.synchronize();
}

}  // namespace

Status copy_to_device(void* device_dst, const void* host_src, size_t bytes, const Stream& stream) {
  return copy(device_dst, host_src, bytes, cudaMemcpyHostToDevice, stream, true, "copy_to_device");
}

Status copy_to_host(void* host_dst, const void* device_src, size_t bytes, const Stream& stream) {
  return copy(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, stream, true, "copy_to_host");
}

Status copy_on_device(void* device_dst, const void* device_src, size_t bytes,
                      const Stream& stream) {
  return copy(device_dst, device_src, bytes, cudaMemcpyDeviceToDevice, stream, false,
              "copy_on_device");
}

Status zero_on_device(void* device_dst, size_t bytes, const Stream& stream) {
  if (bytes == 0) return Status::Ok();
  if (!device_dst) return detail::arg_error("zero_on_device", "null pointer");
  return detail::check(cudaMemsetAsync(device_dst, 0, bytes, detail::native(stream)),
                       "cudaMemsetAsync");
}

// ---- Event ----

Result<Event> Event::create() {
  cudaEvent_t event = nullptr;
  DSPARK_RETURN_IF_ERROR(detail::check(cudaEventCreate(&event), "cudaEventCreate"));
  return Event(event);
}

Event::~Event() {
  if (handle_) cudaEventDestroy(static_cast<cudaEvent_t>(handle_));
}

Event::Event(Event&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    if (handle_) cudaEventDestroy(static_cast<cudaEvent_t>(handle_));
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

Status Event::record(const Stream& stream) {
  if (!handle_) return detail::arg_error("Event::record", "event was not created");
  return detail::check(cudaEventRecord(static_cast<cudaEvent_t>(handle_), detail::native(stream)),
                       "cudaEventRecord");
}

Result<float> Event::elapsed_ms(const Event& start, const Event& end) {
  if (!start.handle_ || !end.handle_) {
    return detail::arg_error("Event::elapsed_ms", "event was not created");
  }
  DSPARK_RETURN_IF_ERROR(detail::check(cudaEventSynchronize(static_cast<cudaEvent_t>(end.handle_)),
                                       "cudaEventSynchronize"));
  float ms = 0.0f;
  DSPARK_RETURN_IF_ERROR(
      detail::check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start.handle_),
                                         static_cast<cudaEvent_t>(end.handle_)),
                    "cudaEventElapsedTime"));
  return ms;
}

}  // namespace dspark::cuda
