// Device queries, memory, streams and events; the argument checks that need no device.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "cuda_test_util.h"

namespace dspark::cuda {
namespace {

using testing::CudaTest;
using testing::download;
using testing::upload;

// Holds with or without a device: availability is exactly "the count query worked and found
// at least one", and a missing device comes with a reason.
TEST(CudaDeviceQuery, AvailabilityAgreesWithDeviceCount) {
  std::string why;
  const bool available = cuda_available(&why);
  auto count = cuda_device_count();
  EXPECT_EQ(available, count.ok() && *count > 0);
  if (!available) {
    EXPECT_NE(why.find("cudaGetDeviceCount"), std::string::npos) << why;
  } else {
    EXPECT_TRUE(why.empty());
  }
}

TEST(CudaDeviceQuery, InfoForBadIndexIsAnError) {
  for (int device : {-1, 1 << 20}) {
    auto info = cuda_device_info(device);
    ASSERT_FALSE(info.ok());
    EXPECT_FALSE(info.error().message.empty());
  }
}

TEST(CudaArguments, KernelsRejectBadShapesBeforeTouchingTheDevice) {
  const Stream stream;
  float dummy = 0.0f;
  EXPECT_FALSE(rmsnorm(&dummy, &dummy, -1, 4, 1e-6f, &dummy, stream).ok());
  EXPECT_FALSE(rmsnorm(&dummy, &dummy, 2, 0, 1e-6f, &dummy, stream).ok());
  EXPECT_FALSE(rmsnorm(nullptr, &dummy, 2, 4, 1e-6f, &dummy, stream).ok());
  EXPECT_FALSE(rmsnorm(&dummy, &dummy, int64_t(1) << 32, 4, 1e-6f, &dummy, stream).ok());
  EXPECT_TRUE(rmsnorm(nullptr, nullptr, 0, 4, 1e-6f, nullptr, stream).ok());  // nothing to do
  EXPECT_FALSE(silu_mul(&dummy, &dummy, -5, &dummy, stream).ok());
  EXPECT_FALSE(silu_mul(&dummy, nullptr, 5, &dummy, stream).ok());
  EXPECT_TRUE(silu_mul(nullptr, nullptr, 0, nullptr, stream).ok());
  EXPECT_FALSE(read_sweep(&dummy, -1, &dummy, stream).ok());
  EXPECT_FALSE(read_sweep(&dummy, 4, nullptr, stream).ok());

  RopeParams params;
  params.rot_dims = 64;
  int32_t position = 0;
  EXPECT_FALSE(rope(&dummy, &position, 1, 1, 32, params, stream).ok());  // rot_dims > head_dim
  params.rot_dims = 63;
  EXPECT_FALSE(rope(&dummy, &position, 1, 1, 64, params, stream).ok());  // odd
  params.rot_dims = 2 * kMaxRopeDims;
  EXPECT_FALSE(rope(&dummy, &position, 1, 1, 2 * kMaxRopeDims, params, stream).ok());
  params.rot_dims = 64;
  params.theta = 0.0f;
  EXPECT_FALSE(rope(&dummy, &position, 1, 1, 64, params, stream).ok());
  params.theta = 10000.0f;
  EXPECT_FALSE(rope(nullptr, &position, 1, 1, 64, params, stream).ok());
  EXPECT_TRUE(rope(nullptr, nullptr, 0, 1, 64, params, stream).ok());

  Blas no_handle;
  DeviceWeight w{DType::F32, 4, 4, &dummy};
  const Status status = no_handle.matmul(w, &dummy, 1, &dummy, stream);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("handle"), std::string::npos) << status.message();
}

TEST(CudaArguments, ErrorsNameTheOperation) {
  const Stream stream;
  float dummy = 0.0f;
  const Status status = rmsnorm(&dummy, &dummy, -3, 8, 1e-6f, &dummy, stream);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("cuda::rmsnorm"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("-3"), std::string::npos) << status.message();
}

class CudaDevice : public CudaTest {};

TEST_F(CudaDevice, InfoIsPlausible) {
  auto info = cuda_device_info(0);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_FALSE(info->name.empty());
  EXPECT_GT(info->total_memory, 0u);
  EXPECT_LE(info->free_memory, info->total_memory);
  EXPECT_GT(info->sm_count, 0);
  EXPECT_GE(info->cc_major, 7);
  EXPECT_GT(info->runtime_version, 0);
  EXPECT_GT(info->driver_version, 0);
  std::printf("device 0: %s, cc %d.%d, %d SMs, %.1f GiB (%.1f free), L2 %.0f MiB\n",
              info->name.c_str(), info->cc_major, info->cc_minor, info->sm_count,
              info->total_memory / double(1 << 30), info->free_memory / double(1 << 30),
              info->l2_cache_bytes / double(1 << 20));
}

TEST_F(CudaDevice, BuffersRoundTripThroughDeviceCopies) {
  const std::vector<float> host = testing::random_floats(100003, -1.0f, 1.0f, 1);
  DeviceBuffer a = upload(host, stream_);
  auto b = DeviceBuffer::allocate(host.size() * sizeof(float));
  ASSERT_TRUE(b.ok()) << b.error().message;
  ASSERT_TRUE(copy_on_device(b->data(), a.data(), a.size(), stream_).ok());
  DeviceBuffer moved = std::move(b.value());
  EXPECT_EQ(b->data(), nullptr);
  EXPECT_EQ(moved.size(), host.size() * sizeof(float));
  EXPECT_EQ(download<float>(moved.data(), host.size(), stream_), host);

  ASSERT_TRUE(zero_on_device(moved.data(), moved.size(), stream_).ok());
  EXPECT_EQ(download<float>(moved.data(), host.size(), stream_),
            std::vector<float>(host.size(), 0.0f));

  auto empty = DeviceBuffer::allocate(0);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->data(), nullptr);
  EXPECT_EQ(empty->size(), 0u);
}

TEST_F(CudaDevice, FailedAllocationIsAnErrorAndLeavesTheDeviceUsable) {
  auto huge = DeviceBuffer::allocate(size_t(1) << 60);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message.find("cudaMalloc"), std::string::npos) << huge.error().message;
  auto small = DeviceBuffer::allocate(4096);
  EXPECT_TRUE(small.ok()) << small.error().message;
}

TEST_F(CudaDevice, StreamsAndEventsTimeWork) {
  auto stream = Stream::create();
  ASSERT_TRUE(stream.ok()) << stream.error().message;
  EXPECT_NE(stream->handle(), nullptr);
  auto start = Event::create();
  auto end = Event::create();
  ASSERT_TRUE(start.ok() && end.ok());
  auto buffer = DeviceBuffer::allocate(size_t(64) << 20);
  ASSERT_TRUE(buffer.ok());
  ASSERT_TRUE(start->record(*stream).ok());
  ASSERT_TRUE(zero_on_device(buffer->data(), buffer->size(), *stream).ok());
  ASSERT_TRUE(end->record(*stream).ok());
  auto ms = Event::elapsed_ms(*start, *end);
  ASSERT_TRUE(ms.ok()) << ms.error().message;
  EXPECT_GE(*ms, 0.0f);
  EXPECT_TRUE(stream->synchronize().ok());
}

// The benchmark kernel must really read everything: sums of ones are exact in fp32 below 2^24.
TEST_F(CudaDevice, ReadSweepReadsEveryElement) {
  const size_t n = (size_t(1) << 20) + 7;
  DeviceBuffer x = upload(std::vector<float>(n, 1.0f), stream_);
  auto sum = DeviceBuffer::allocate(sizeof(float));
  ASSERT_TRUE(sum.ok());
  ASSERT_TRUE(read_sweep(x.as<float>(), n, sum->as<float>(), stream_).ok());
  EXPECT_EQ(download<float>(sum->data(), 1, stream_)[0], float(n));
  // Offset by one float: not 16-byte aligned, so the scalar path runs.
  ASSERT_TRUE(read_sweep(x.as<float>() + 1, n - 1, sum->as<float>(), stream_).ok());
  EXPECT_EQ(download<float>(sum->data(), 1, stream_)[0], float(n - 1));
}

}  // namespace
}  // namespace dspark::cuda
