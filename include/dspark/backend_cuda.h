// CUDA backend: device memory, streams, timing events, the elementwise/norm kernels of the model
// forward and dense matrix products through cuBLAS. No CUDA type appears here, so code that
// includes this header builds with a plain C++ compiler; device pointers are plain pointers.
// Every call checks its arguments and returns CUDA and cuBLAS failures as Status values that
// name the operation and carry the CUDA error string; nothing aborts. Kernels run on the given
// stream and on the calling thread's current device; results are checked against the CPU
// backend with tolerances (they are not bit-identical to it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dspark/backend.h"
#include "dspark/loader.h"
#include "dspark/status.h"

namespace dspark::cuda {

// ---- devices ----

struct DeviceInfo {
  int index = 0;
  std::string name;                // "NVIDIA H200"
  uint64_t total_memory = 0;       // bytes
  uint64_t free_memory = 0;        // bytes, when queried
  int sm_count = 0;                // streaming multiprocessors
  int cc_major = 0, cc_minor = 0;  // compute capability, 9.0 for Hopper
  uint64_t l2_cache_bytes = 0;
  int memory_bus_bits = 0;
  int driver_version = 0, runtime_version = 0;  // 13000 = 13.0
};

// Whether at least one usable device exists; otherwise *why (if given) says why, with the
// cudaGetDeviceCount error string ("no CUDA-capable device is detected", a driver mismatch...).
bool cuda_available(std::string* why = nullptr);
Result<int> cuda_device_count();
Result<DeviceInfo> cuda_device_info(int device);
// Makes device the calling thread's current device.
Status cuda_set_device(int device);
// Waits for all work on the current device.
Status cuda_synchronize();

// ---- memory, streams, events ----

// Stream-ordered work queue. A default-constructed Stream is CUDA's legacy default stream.
class Stream {
 public:
  Stream() = default;
  static Result<Stream> create();  // a new non-blocking stream on the current device
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void* handle() const { return handle_; }  // cudaStream_t
  Status synchronize() const;

 private:
  explicit Stream(void* handle) : handle_(handle), owned_(true) {}
  void* handle_ = nullptr;
  bool owned_ = false;
};

// Owns device memory from cudaMalloc; freed on destruction. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // bytes == 0 gives an empty buffer without allocating.
  static Result<DeviceBuffer> allocate(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  DeviceBuffer(void* data, size_t size) : data_(data), size_(size) {}
  void* data_ = nullptr;
  size_t size_ = 0;
};

// Copies ordered on the stream that return when the data has arrived (they synchronize the
// stream), so host memory may be reused or read right after the call.
Status copy_to_device(void* device_dst, const void* host_src, size_t bytes, const Stream& stream);
Status copy_to_host(void* host_dst, const void* device_src, size_t bytes, const Stream& stream);
// Device-to-device copy, asynchronous on the stream.
Status copy_on_device(void* device_dst, const void* device_src, size_t bytes, const Stream& stream);
// Sets bytes of device memory to zero, asynchronous on the stream.
Status zero_on_device(void* device_dst, size_t bytes, const Stream& stream);

// Timing marker recorded on a stream (for benchmarks).
class Event {
 public:
  Event() = default;
  static Result<Event> create();
  ~Event();
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  Status record(const Stream& stream);
  // Milliseconds between two recorded events; waits for `end` to complete.
  static Result<float> elapsed_ms(const Event& start, const Event& end);

 private:
  explicit Event(void* handle) : handle_(handle) {}
  void* handle_ = nullptr;  // cudaEvent_t
};

// ---- kernels (all pointers are device pointers) ----

// y = x / sqrt(mean(x^2) + eps) * weight per row, as cpu::rmsnorm; in place allowed (y == x).
// One block per row, fp32 sums reduced with warp shuffles.
Status rmsnorm(const float* x /*[n, d]*/, const float* weight /*[d]*/, int64_t n, int64_t d,
               float eps, float* y /*[n, d]*/, const Stream& stream);

// y = silu(gate) * up, elementwise, as cpu::silu_mul. y may alias gate or up.
Status silu_mul(const float* gate /*[n]*/, const float* up /*[n]*/, int64_t n, float* y /*[n]*/,
                const Stream& stream);

// Rotates each head of x in place by its token's position, as cpu::rope (same layouts and
// frequency scalings). params.rot_dims must be even, in (0, head_dim] and at most
// kMaxRopeDims.
inline constexpr int kMaxRopeDims = 512;
Status rope(float* x /*[n_tok, n_heads, head_dim]*/, const int32_t* positions /*[n_tok]*/,
            int64_t n_tok, int64_t n_heads, int64_t head_dim, const RopeParams& params,
            const Stream& stream);

// A dense weight matrix in device memory: [rows, cols], rows contiguous (row stride = cols).
struct DeviceWeight {
  DType type = DType::F32;  // F32, F16 or BF16
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;  // [rows, cols] of type
};

// cuBLAS handle plus scratch memory for its calls. Not thread-safe: one per stream/thread.
class Blas {
 public:
  Blas() = default;
  static Result<Blas> create();  // on the current device
  ~Blas();
  Blas(Blas&& other) noexcept;
  Blas& operator=(Blas&& other) noexcept;
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // y[t, r] = dot(w[r, :], x[t, :]) with fp32 accumulation, as cpu::matmul_reference. F32
  // weights multiply in full fp32 (no TF32). For F16/BF16 weights x is first rounded to the
  // weight's type (cuBLAS multiplies two matrices of one type), so results carry that rounding
  // and x must lie within the type's range (fp16: |x| < 65504).
  Status matmul(const DeviceWeight& w, const float* x /*[n_tok, w.cols]*/, int64_t n_tok,
                float* y /*[n_tok, w.rows]*/, const Stream& stream);

 private:
  explicit Blas(void* handle) : handle_(handle) {}
  void* handle_ = nullptr;  // cublasHandle_t
  DeviceBuffer scratch_;    // x rounded to the weight type: [n_tok, cols]
};

// ---- benchmark helpers ----

// Reads every element of x once and writes the sum to sum[0]: a streaming read kernel, so
// bytes / time is the device's read bandwidth. Sums per block in fp32 (for timing, not math).
Status read_sweep(const float* x /*[n]*/, int64_t n, float* sum /*[1]*/, const Stream& stream);

}  // namespace dspark::cuda
