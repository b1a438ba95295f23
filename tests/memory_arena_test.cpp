// tests/memory_arena_test.cpp — arenas: the host mapping, growth on demand
// within the budget (the mechanism the CUDA arenas use), backend choice.
#include "tiers/device/memory_arena.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "spillway/spillway.hpp"
#include "test_util.hpp"
#include "tiers/device/cuda_backend.hpp"

namespace spillway::detail {
namespace {

// Grows in 1 MiB chunks of page-aligned heap memory, like the CUDA arenas do
// with cudaMalloc / cudaHostAlloc (whose chunks are page aligned: a chunk
// only 256-aligned would lose up to 3840 bytes before its first 64 KiB
// block, which starts on a 4 KiB boundary).
class GrowingArena final : public MemoryArena {
 public:
  explicit GrowingArena(std::size_t capacity) : MemoryArena(capacity) {}
  ~GrowingArena() override {
    for (void* p : chunks_) std::free(p);
  }
  std::string_view backend() const override { return "test"; }
  bool host_accessible() const override { return true; }
  int grows = 0;

 protected:
  bool grow(std::size_t bytes) override {
    const std::size_t need = SubAllocator::round_up(bytes);
    const std::size_t mapped = alloc_.capacity();
    if (capacity_ - mapped < need) return false;
    const std::size_t chunk = std::min(capacity_ - mapped, std::max<std::size_t>(need, 1 << 20));
    void* p = std::aligned_alloc(SubAllocator::kLargeAlignment, chunk);
    chunks_.push_back(p);
    alloc_.add_region(reinterpret_cast<std::uintptr_t>(p), chunk);
    ++grows;
    return true;
  }

 private:
  std::vector<void*> chunks_;
};

TEST(MemoryArena, GrowsOnDemandWithinItsBudget) {
  GrowingArena a(3 << 20);
  EXPECT_EQ(a.stats().capacity_bytes, 0u) << "nothing mapped before the first allocation";
  void* x = a.allocate(512 * 1024);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(a.grows, 1);
  void* y = a.allocate(512 * 1024);  // fits in the first chunk
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(a.grows, 1);
  void* z = a.allocate(2 << 20);     // needs a second chunk of 2 MiB
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(a.grows, 2);
  EXPECT_EQ(a.allocate(256), nullptr) << "budget of 3 MiB fully mapped and used";
  EXPECT_EQ(a.capacity(), 3u << 20);
  a.free(y);
  EXPECT_NE(a.allocate(256), nullptr);
}

TEST(MemoryArena, HostArenaIsAlignedAndWritable) {
  HostMemoryArena a(1 << 20, "host");
  auto* p = static_cast<unsigned char*>(a.allocate(1000));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 256, 0u);
  for (int i = 0; i < 1000; ++i) p[i] = static_cast<unsigned char>(i);
  unsigned char out[1000];
  a.copy_to_host(out, p, 1000);
  EXPECT_EQ(out[999], static_cast<unsigned char>(999));
  EXPECT_EQ(a.used(), 1024u);
}

TEST(BackendChoice, AutoSaysWhichBackendAndWhy) {
  testing::ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  o.device.backend = DeviceBackend::Auto;
  o.device.capacity_bytes = kAutoCapacity;
  Pool pool(o);
  std::string why;
  const bool gpu = cuda::device_available(0, &why);
  EXPECT_FALSE(pool.device_backend_reason().empty());
  if (cuda::compiled() && gpu) {
    EXPECT_EQ(pool.device_backend_name(), "cuda");
    EXPECT_EQ(pool.host_memory_kind(), "pinned");
  } else {
    EXPECT_EQ(pool.device_backend_name(), "simulated");
    EXPECT_EQ(pool.host_memory_kind(), "pageable");
    EXPECT_NE(pool.device_backend_reason().find(why), std::string::npos)
        << pool.device_backend_reason();
    EXPECT_EQ(pool.stats().tier(Tier::Device).capacity_bytes, kDefaultSimulatedDeviceBytes);
  }
}

TEST(BackendChoice, CudaRequestedWithoutAGpuIsAClearError) {
  std::string why;
  if (cuda::device_available(0, &why)) GTEST_SKIP() << "a GPU is present";
  testing::ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  o.device.backend = DeviceBackend::Cuda;
  try {
    Pool pool(o);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("Cuda was requested"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace spillway::detail
