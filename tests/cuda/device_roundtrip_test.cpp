// tests/cuda/device_roundtrip_test.cpp — on a real GPU: a kernel writes a
// pattern into a pinned device buffer, the buffer is spilled to host and to
// disk and fetched back, and a kernel verifies it on the device. Skips, with
// the runtime's reason, when no GPU is present.
#include <gtest/gtest.h>

#include <string>

#include "kernels.hpp"
#include "spillway/spillway.hpp"
#include "tests/test_util.hpp"
#include "tiers/device/cuda_backend.hpp"

namespace spillway {
namespace {

namespace gpu = testing::gpu;

class CudaDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!detail::cuda::device_available(0, &why)) GTEST_SKIP() << "no GPU: " << why;
    PoolOptions o = testing::small_options(dir_.path(), 8 << 20, 8 << 20);
    o.device.backend = DeviceBackend::Cuda;
    pool_ = std::make_unique<Pool>(o);
    ASSERT_EQ(pool_->device_backend_name(), "cuda");
    ASSERT_EQ(pool_->host_memory_kind(), "pinned");
  }
  unsigned long long mismatches(Buffer& b, unsigned seed) {
    Pin p = b.pin(Tier::Device, Access::Read);
    return gpu::count_mismatches(p.data(), p.size() / 4, seed);
  }

  testing::ScratchDir dir_;
  std::unique_ptr<Pool> pool_;
};

TEST_F(CudaDevice, KernelPatternSurvivesHostAndDiskRoundTrips) {
  Buffer b = pool_->allocate(3 << 20, Tier::Device, "kernel");
  {
    Pin p = b.pin(Tier::Device, Access::ReadWrite);
    ASSERT_EQ(gpu::write_pattern(p.data(), p.size() / 4, 7), 0);
    ASSERT_EQ(gpu::synchronize(), 0);
  }
  EXPECT_EQ(mismatches(b, 7), 0u);
  b.evict(Tier::Host);
  EXPECT_EQ(b.tier(), Tier::Host);
  {
    Pin h = b.pin(Tier::Host, Access::Read);
    EXPECT_EQ(h.as<unsigned>()[12345], gpu::expected(12345, 7));
  }
  EXPECT_EQ(mismatches(b, 7), 0u);
  b.evict(Tier::Disk);
  EXPECT_EQ(b.tier(), Tier::Disk);
  EXPECT_EQ(mismatches(b, 7), 0u);
  const PoolStats s = pool_->stats();
  EXPECT_GE(s.move(Tier::Device, Tier::Host).moves, 1u);
  EXPECT_GE(s.move(Tier::Disk, Tier::Device).moves, 1u);
}

// Stream ordering: work queued on a user stream right after a stream-aware
// pin sees the fetched bytes, with no host-side wait between the pin, the
// kernel and the release; only the final read of the result synchronises.
TEST_F(CudaDevice, StreamAwarePinOrdersTheFetchBeforeTheUsersKernel) {
  Buffer b = pool_->allocate(4 << 20, Tier::Device, "streamed");
  {
    Pin p = b.pin(Tier::Device, Access::ReadWrite);
    ASSERT_EQ(gpu::write_pattern(p.data(), p.size() / 4, 11), 0);
    ASSERT_EQ(gpu::synchronize(), 0);
  }
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  unsigned long long* bad = nullptr;
  ASSERT_EQ(cudaMalloc(&bad, sizeof *bad), cudaSuccess);
  for (int round = 0; round < 4; ++round) {
    b.evict(round % 2 == 0 ? Tier::Host : Tier::Disk);
    ASSERT_EQ(cudaMemsetAsync(bad, 0, sizeof *bad, stream), cudaSuccess);
    Pin p = b.pin(Tier::Device, Access::Read, stream);
    ASSERT_EQ(gpu::count_mismatches_on(p.data(), p.size() / 4, 11, bad, stream), 0);
    p.release(stream);
    unsigned long long host_bad = ~0ull;
    ASSERT_EQ(cudaMemcpyAsync(&host_bad, bad, sizeof host_bad, cudaMemcpyDeviceToHost, stream),
              cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(host_bad, 0u) << "round " << round << ": the kernel ran before the fetch landed";
  }
  EXPECT_EQ(pool_->stats().tier(Tier::Device).pinned_bytes, 0u)
      << "the deferred unpin did not end after the stream finished";
  cudaFree(bad);
  cudaStreamDestroy(stream);
}

TEST_F(CudaDevice, OversubscribedVramSpillsAndEveryBufferVerifies) {
  std::vector<Buffer> bufs;
  for (unsigned i = 0; i < 12; ++i) {  // 12 MiB through an 8 MiB device tier
    bufs.push_back(pool_->allocate(1 << 20, Tier::Device, "over"));
    Pin p = bufs.back().pin(Tier::Device);
    ASSERT_EQ(gpu::write_pattern(p.data(), p.size() / 4, i), 0);
    ASSERT_EQ(gpu::synchronize(), 0);
  }
  for (unsigned i = 0; i < 12; ++i) EXPECT_EQ(mismatches(bufs[i], i), 0u) << "buffer " << i;
  const PoolStats s = pool_->stats();
  EXPECT_GT(s.evictions[0] + s.evictions[1], 0u);
}

}  // namespace
}  // namespace spillway
