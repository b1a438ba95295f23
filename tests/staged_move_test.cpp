// tests/staged_move_test.cpp — disk <-> device moves through the staging
// rings, for a device arena that is not host accessible (as VRAM is), proven
// without a GPU on the stand-in device of fake_device.hpp whose copies run
// later on a copy-engine thread: every codec and size round-trips, a move
// uses the ring's buffers asynchronously, zero-filled and failing records
// behave as on the host.
#include <gtest/gtest.h>

#include <ostream>

#include "fake_device.hpp"
#include "src/core/pool_core.hpp"
#include "test_util.hpp"

namespace spillway {
namespace {

using testing::FakeAsyncArena;
using testing::FakeQueue;
using testing::fill_pattern;
using testing::find_mismatch;
using testing::ScratchDir;

struct StagedCase {
  Compression codec;
  std::size_t staging_bytes;
  unsigned staging_buffers;
};

void PrintTo(const StagedCase& c, std::ostream* os) {
  *os << "codec " << static_cast<int>(c.codec) << ", " << (c.staging_bytes >> 20) << " MiB x "
      << c.staging_buffers;
}

class StagedMove : public ::testing::TestWithParam<StagedCase> {
 protected:
  void SetUp() override {
    detail::set_simulated_device_arena_factory([this](std::size_t capacity) {
      auto a = std::make_unique<FakeAsyncArena>(capacity, &engine_, /*host_accessible=*/false);
      arena_ = a.get();
      return a;
    });
    PoolOptions o = testing::small_options(dir_.path(), 16 << 20, 1 << 20);
    o.high_watermark = 1.0;
    o.disk.compression = GetParam().codec;
    o.disk.env = env_;
    o.device.staging_buffer_bytes = GetParam().staging_bytes;
    o.device.staging_buffers = GetParam().staging_buffers;
    pool_ = std::make_unique<Pool>(o);
    detail::set_simulated_device_arena_factory(nullptr);
  }

  ScratchDir dir_;
  FakeQueue engine_;  // outlives the pool
  std::shared_ptr<testing::FaultyEnv> env_ = std::make_shared<testing::FaultyEnv>();
  FakeAsyncArena* arena_ = nullptr;
  std::unique_ptr<Pool> pool_;
};

TEST_P(StagedMove, DeviceBuffersRoundTripThroughDisk) {
  std::uint64_t key = 1;
  for (std::size_t n : {std::size_t{1}, std::size_t{4095}, (std::size_t{1} << 20) + 3,
                        (std::size_t{5} << 20) + 17}) {
    for (bool compressible : {false, true}) {
      ++key;
      Buffer b = pool_->allocate(n, Tier::Device, "staged");
      {
        Pin p = b.pin(Tier::Device);
        fill_pattern(p.data(), n, key, 0, compressible);
      }
      const int copies_before = arena_->async_copies.load();
      b.evict(Tier::Disk);
      ASSERT_EQ(b.tier(), Tier::Disk);
      const std::size_t slice = GetParam().staging_bytes;
      EXPECT_GE(arena_->async_copies.load() - copies_before, static_cast<int>((n + slice - 1) / slice))
          << "the device -> disk move did not go through the staging copies";
      Pin p = b.pin(Tier::Device, Access::Read);
      EXPECT_EQ(find_mismatch(p.data(), n, key, 0, compressible), -1)
          << n << " bytes, compressible " << compressible;
    }
  }
  const PoolStats s = pool_->stats();
  EXPECT_EQ(s.move(Tier::Device, Tier::Disk).moves, 8u);
  EXPECT_EQ(s.move(Tier::Disk, Tier::Device).moves, 8u);
  EXPECT_EQ(s.tier(Tier::Host).used_bytes, 0u) << "staging takes no host-tier capacity";
}

TEST_P(StagedMove, ZeroFilledDiskAllocationArrivesAsZeros) {
  const std::size_t n = (3 << 20) + 5;
  Buffer b = pool_->allocate(n, Tier::Disk, "zeros");
  Pin p = b.pin(Tier::Device, Access::Read);
  auto* bytes = static_cast<const unsigned char*>(p.data());
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < n; ++i) nonzero += bytes[i] != 0;
  EXPECT_EQ(nonzero, 0u);
}

TEST_P(StagedMove, FailingAndCorruptReadsLeaveTheBufferOnDisk) {
  const std::size_t n = (4 << 20) + 99;
  Buffer b = pool_->allocate(n, Tier::Device, "fails");
  {
    Pin p = b.pin(Tier::Device);
    fill_pattern(p.data(), n, 77, 0);
  }
  b.evict(Tier::Disk);
  env_->read_errno = EIO;
  EXPECT_THROW(b.pin(Tier::Device, Access::Read), IoError);
  env_->read_errno = 0;
  env_->flip_reads = true;
  EXPECT_THROW(b.pin(Tier::Device, Access::Read), CorruptionError);
  env_->flip_reads = false;
  EXPECT_EQ(b.tier(), Tier::Disk);
  Pin p = b.pin(Tier::Device, Access::Read);
  EXPECT_EQ(find_mismatch(p.data(), n, 77, 0), -1);
}

INSTANTIATE_TEST_SUITE_P(
    Rings, StagedMove,
    ::testing::Values(StagedCase{Compression::None, 1 << 20, 4},
                      StagedCase{Compression::Lz4, 1 << 20, 2},
                      StagedCase{Compression::Adaptive, 2 << 20, 3},
                      StagedCase{Compression::None, 4 << 20, 2}),
    [](const auto& info) {
      const StagedCase& c = info.param;
      const char* codec = c.codec == Compression::None ? "none"
                          : c.codec == Compression::Lz4 ? "lz4"
                                                        : "adaptive";
      return std::string(codec) + "_" + std::to_string(c.staging_bytes >> 20) + "MiBx" +
             std::to_string(c.staging_buffers);
    });

}  // namespace
}  // namespace spillway
