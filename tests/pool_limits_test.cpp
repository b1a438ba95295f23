// tests/pool_limits_test.cpp — what the pool does at its edges: full tiers,
// full quota, failing and corrupting disks, everything pinned, odd sizes,
// disabled tiers, and a pool destroyed before its buffers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "test_util.hpp"

namespace spillway {
namespace {

using namespace std::chrono_literals;
using testing::fill_pattern;
using testing::find_mismatch;
using testing::ScratchDir;
using Clock = std::chrono::steady_clock;

// Host + disk only, small, no proactive spilling.
PoolOptions host_disk(const std::string& dir, std::size_t host = 1 << 20) {
  PoolOptions o = testing::small_options(dir, 0, host);
  o.device.backend = DeviceBackend::None;
  o.high_watermark = 1.0;
  o.low_watermark = 1.0;
  return o;
}

Buffer filled(Pool& pool, std::size_t n, Tier t, std::uint64_t key, const char* label = "data") {
  Buffer b = pool.allocate(n, t, label);
  Pin p = b.pin(t == Tier::Disk ? Tier::Host : t);
  fill_pattern(p.data(), n, key, 0);
  return b;
}

void expect_intact(Buffer& b, std::uint64_t key) {
  Pin p = b.pin(Tier::Host, Access::Read);
  EXPECT_EQ(find_mismatch(p.data(), p.size(), key, 0), -1) << "buffer " << b.id();
}

TEST(PoolLimits, ZeroByteBufferIsValidAndTakesNoSpace) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path()));
  Buffer b = pool.allocate(0, Tier::Device, "empty");
  EXPECT_TRUE(b);
  EXPECT_EQ(b.size(), 0u);
  Pin p = b.pin(Tier::Host);
  EXPECT_EQ(p.size(), 0u);
  EXPECT_EQ(p.data(), nullptr);
  EXPECT_EQ(b.tier(), Tier::Host);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.tier(Tier::Device).used_bytes + s.tier(Tier::Host).used_bytes, 0u);
  EXPECT_EQ(s.live_buffers, 1u);
}

TEST(PoolLimits, LargerThanEveryTierThrowsAtOnce) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  o.disk.capacity_bytes = 4 << 20;
  o.pressure_wait = 5s;
  Pool pool(o);
  const auto t0 = Clock::now();
  try {
    pool.allocate(8 << 20, Tier::Device, "huge");
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    EXPECT_EQ(e.bytes_requested, 8u << 20);
    EXPECT_NE(std::string(e.what()).find("larger than every"), std::string::npos) << e.what();
  }
  EXPECT_LT(Clock::now() - t0, 1s) << "no waiting for a request that can never fit";
  EXPECT_EQ(pool.stats().errors.out_of_memory, 1u);
}

TEST(PoolLimits, AllocationFallsToSlowerTierWhenFasterIsPinned) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path()));
  Buffer a = filled(pool, 1 << 20, Tier::Device, 1);
  Pin hold = a.pin(Tier::Device);
  Buffer b = pool.allocate(4096, Tier::Device, "next");
  EXPECT_EQ(b.tier(), Tier::Host);
}

TEST(PoolLimits, PinOnDisabledOrDiskTierIsRejected) {
  ScratchDir dir;
  Pool pool(host_disk(dir.path()));
  EXPECT_FALSE(pool.tier_enabled(Tier::Device));
  EXPECT_EQ(pool.device_backend_name(), "none");
  Buffer b = pool.allocate(100, Tier::Device);
  EXPECT_EQ(b.tier(), Tier::Host);
  EXPECT_THROW(b.pin(Tier::Device), std::invalid_argument);
  EXPECT_THROW(b.pin(Tier::Disk), std::invalid_argument);
  b.evict(Tier::Disk);
  EXPECT_THROW(b.pin(Tier::Disk), std::invalid_argument) << "a buffer on disk is not pinned there either";
  EXPECT_FALSE(b.try_pin(Tier::Disk)) << "nor by try_pin";
  EXPECT_FALSE(b.try_pin(Tier::Host)) << "try_pin does not fetch";
  EXPECT_EQ(b.tier(), Tier::Disk);
  { Pin p = b.pin(Tier::Host); }
  EXPECT_TRUE(b.try_pin(Tier::Host, Access::Read)) << "resident: pinned at once";
  EXPECT_THROW(b.prefetch(Tier::Device), std::invalid_argument);
  EXPECT_THROW(b.evict(Tier::Device), std::invalid_argument);
  Pool no_disk([&] {
    PoolOptions o = host_disk(dir.path());
    o.disk.enabled = false;
    return o;
  }());
  Buffer c = no_disk.allocate(100, Tier::Host);
  EXPECT_THROW(c.evict(Tier::Disk), std::invalid_argument);
  EXPECT_EQ(no_disk.spill_directory(), "");
}

TEST(PoolLimits, EverythingPinnedEndsInOutOfMemoryNamingThePins) {
  ScratchDir dir;
  PoolOptions o = host_disk(dir.path());
  o.disk.enabled = false;
  o.pressure_wait = 200ms;
  Pool pool(o);
  Buffer a = filled(pool, 512 * 1024, Tier::Host, 1, "activations");
  Buffer b = filled(pool, 512 * 1024, Tier::Host, 2, "weights");
  Pin pa = a.pin(Tier::Host);
  Pin pb = b.pin(Tier::Host);
  const auto t0 = Clock::now();
  try {
    pool.allocate(4096, Tier::Host, "more");
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 190ms);
    EXPECT_LT(waited, 3s);
    EXPECT_EQ(e.tier, Tier::Host);
    ASSERT_EQ(e.pinned_by_label.size(), 2u);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("activations=524288"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weights=524288"), std::string::npos) << msg;
  }
  // Once a pinned buffer goes, the same request succeeds.
  pa.release();
  a.reset();
  Buffer c = pool.allocate(4096, Tier::Host, "more");
  EXPECT_EQ(c.tier(), Tier::Host);
}

TEST(PoolLimits, UnpinDuringPressureWaitLetsTheWaiterThrough) {
  ScratchDir dir;
  PoolOptions o = host_disk(dir.path());
  o.pressure_wait = 5s;
  Pool pool(o);
  Buffer a = filled(pool, 1 << 20, Tier::Host, 1);
  Pin pa = a.pin(Tier::Host);
  std::thread releaser([&] {
    std::this_thread::sleep_for(100ms);
    pa.release();
  });
  const auto t0 = Clock::now();
  // Host is the last memory tier, but disk follows: allocate does not wait
  // on host and places the buffer on disk...
  Buffer b = pool.allocate(1 << 20, Tier::Host, "after");
  EXPECT_EQ(b.tier(), Tier::Disk);
  // ...while a pin must have host: it waits for the unpin, then evicts `a`.
  Pin pb = b.pin(Tier::Host);
  releaser.join();
  EXPECT_GE(Clock::now() - t0, 90ms);
  EXPECT_EQ(a.tier(), Tier::Disk);
  EXPECT_GE(pool.stats().stall_seconds, 0.05);
}

TEST(PoolLimits, CrossTierPinWaitsForOtherPinThenThrows) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  o.pressure_wait = 150ms;
  Pool pool(o);
  Buffer a = filled(pool, 4096, Tier::Host, 1, "shared");
  Pin on_host = a.pin(Tier::Host, Access::Read);
  EXPECT_THROW(a.pin(Tier::Device), OutOfMemory);
  on_host.release();
  Pin on_device = a.pin(Tier::Device, Access::Read);
  EXPECT_EQ(find_mismatch(on_device.data(), 4096, 1, 0), -1);
}

TEST(PoolLimits, DiskQuotaFullThrowsAndLosesNothing) {
  ScratchDir dir;
  PoolOptions o = host_disk(dir.path());
  o.disk.capacity_bytes = 2 << 20;
  o.disk.compression = Compression::None;
  o.device.backend = DeviceBackend::Simulated;  // a place to read into while host and disk are full
  o.device.capacity_bytes = 1 << 20;
  Pool pool(o);
  std::vector<Buffer> bufs;
  bool oom = false;
  for (int i = 0; i < 64 && !oom; ++i) {
    try {
      bufs.push_back(filled(pool, 256 * 1024 - 512, Tier::Host, 500 + i));  // 4 KiB extents: 64 B header fits
    } catch (const OutOfMemory& e) {
      oom = true;
      EXPECT_NE(std::string(e.what()).find("host"), std::string::npos) << e.what();
    }
  }
  ASSERT_TRUE(oom) << "a 2 MiB quota plus 1 MiB of host must fill up";
  const PoolStats s = pool.stats();
  EXPECT_LE(s.tier(Tier::Disk).used_bytes, 2u << 20) << "the quota is exact";
  EXPECT_GE(bufs.size(), 8u);
  // Read pins keep the disk copies clean, so the device can cycle through
  // every buffer without writing anything.
  for (std::size_t i = 0; i < bufs.size(); ++i) {
    Pin p = bufs[i].pin(Tier::Device, Access::Read);
    EXPECT_EQ(find_mismatch(p.data(), p.size(), 500 + i, 0), -1) << "buffer " << i;
  }
  EXPECT_LE(pool.stats().tier(Tier::Disk).used_bytes, 2u << 20);
}

TEST(PoolLimits, FailedSpillLeavesVictimResidentAndCounted) {
  ScratchDir dir;
  auto env = std::make_shared<testing::FaultyEnv>();
  PoolOptions o = host_disk(dir.path());
  o.disk.env = env;
  Pool pool(o);
  std::vector<Buffer> bufs;
  for (int i = 0; i < 4; ++i) bufs.push_back(filled(pool, 256 * 1024, Tier::Host, 600 + i));
  env->write_errno = ENOSPC;
  Buffer extra = pool.allocate(256 * 1024, Tier::Host, "extra");
  const PoolStats s = pool.stats();
  EXPECT_GE(s.errors.spill_write_failures, 1u);
  EXPECT_EQ(extra.tier(), Tier::Disk) << "no room on host: placed on disk instead";
  for (auto& b : bufs) EXPECT_EQ(b.tier(), Tier::Host) << "victims stay where they were";
  EXPECT_EQ(s.tier(Tier::Host).buffers, 4u);
  for (int i = 0; i < 4; ++i) expect_intact(bufs[i], 600 + i);
  // Once the disk works again, the same victims spill.
  env->write_errno = 0;
  { Pin p = extra.pin(Tier::Host); }
  EXPECT_EQ(extra.tier(), Tier::Host);
  for (int i = 0; i < 4; ++i) expect_intact(bufs[i], 600 + i);
}

TEST(PoolLimits, BitFlipOnDiskIsCorruptionNeverWrongBytes) {
  ScratchDir dir;
  auto env = std::make_shared<testing::FaultyEnv>();
  PoolOptions o = host_disk(dir.path());
  o.disk.env = env;
  for (Compression c : {Compression::None, Compression::Lz4}) {
    o.disk.compression = c;
    Pool pool(o);
    Buffer b = filled(pool, 100000, Tier::Host, 700);
    b.evict(Tier::Disk);
    env->flip_reads = true;
    EXPECT_THROW(b.pin(Tier::Host), CorruptionError);
    EXPECT_EQ(pool.stats().errors.corruptions, 1u);
    EXPECT_EQ(b.tier(), Tier::Disk);
    env->flip_reads = false;
    expect_intact(b, 700);  // the stored record was never damaged
  }
}

TEST(PoolLimits, FailedFetchThrowsIoErrorAndBufferStaysReadable) {
  ScratchDir dir;
  auto env = std::make_shared<testing::FaultyEnv>();
  PoolOptions o = host_disk(dir.path());
  o.disk.env = env;
  Pool pool(o);
  Buffer b = filled(pool, 50000, Tier::Host, 800);
  b.evict(Tier::Disk);
  env->read_errno = EIO;
  try {
    b.pin(Tier::Host);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(e.code().value(), EIO);
    EXPECT_FALSE(e.file.empty());
  }
  EXPECT_EQ(pool.stats().errors.fetch_failures, 1u);
  env->read_errno = 0;
  expect_intact(b, 800);
}

TEST(PoolLimits, PoolDestroyedWithLiveBuffersDetachesThem) {
  ScratchDir dir;
  auto pool = std::make_unique<Pool>(testing::small_options(dir.path()));
  Buffer a = filled(*pool, 1000, Tier::Host, 1);
  Buffer b = filled(*pool, 1000, Tier::Host, 2);
  b.evict(Tier::Disk);
  Pin held = a.pin(Tier::Host, Access::Read);
  pool.reset();
  // A pin taken before keeps its bytes valid until it is released.
  EXPECT_EQ(find_mismatch(held.data(), 1000, 1, 0), -1);
  EXPECT_EQ(a.size(), 1000u);
  EXPECT_THROW(a.pin(Tier::Host), std::logic_error);
  EXPECT_THROW(b.tier(), std::logic_error);
  held.release();
  a.reset();  // no crash, no double free
  EXPECT_EQ(dir.regular_files(), 0u);
}

// A victim that has nowhere to go must not stop the pool from evicting a
// later, smaller victim that does fit.
TEST(PoolLimits, UnmovableLruVictimDoesNotBlockASmallerOne) {
  constexpr std::size_t KiB = 1024;
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 1 << 20);
  o.disk.enabled = false;
  o.high_watermark = 1.0;  // no proactive spills: keep the layout exact
  Pool pool(o);
  Buffer h = pool.allocate(512 * KiB, Tier::Host, "host-pinned");
  Pin hp = h.pin(Tier::Host);
  Buffer c = pool.allocate(256 * KiB, Tier::Host, "c");
  Buffer x = pool.allocate(768 * KiB, Tier::Device, "x-big-lru");
  Buffer w = pool.allocate(256 * KiB, Tier::Device, "w-small");
  ASSERT_EQ(x.tier(), Tier::Device);
  ASSERT_EQ(w.tier(), Tier::Device);
  ASSERT_EQ(c.tier(), Tier::Host);
  // Host has 256 KiB free: w fits there, x (older) does not. Evicting w
  // makes room on the device for c.
  Pin cp;
  ASSERT_NO_THROW(cp = c.pin(Tier::Device));
  EXPECT_EQ(c.tier(), Tier::Device);
  EXPECT_EQ(w.tier(), Tier::Host);
  EXPECT_EQ(x.tier(), Tier::Device);
}

// Reads stall while `slow` is set, so a test can act during a fetch.
class SlowReadEnv : public IoEnvWrapper {
 public:
  SlowReadEnv() : IoEnvWrapper(IoEnv::posix()) {}
  std::atomic<bool> slow{false};
  std::atomic<bool> in_read{false};
  ssize_t pread(int fd, void* data, std::size_t n, off_t off) override {
    if (slow.load()) {
      in_read = true;
      std::this_thread::sleep_for(200ms);
    }
    return IoEnvWrapper::pread(fd, data, n, off);
  }
};

// The Pool destroyed while another thread's pin fetches on that thread: the
// fetch finishes into valid memory (storage is not torn down under it) or
// pin throws logic_error; never a crash or wrong bytes.
TEST(PoolLimits, PoolDestroyedDuringACallerRunFetch) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  auto env = std::make_shared<SlowReadEnv>();
  o.disk.env = env;
  auto pool = std::make_unique<Pool>(o);
  Buffer b = filled(*pool, 256 * 1024, Tier::Host, 7);
  b.evict(Tier::Disk);
  ASSERT_EQ(b.tier(), Tier::Disk);
  env->slow = true;
  std::atomic<int> outcome{0};  // 1 pinned and intact, 2 logic_error, 3 other error, 4 bad bytes
  std::thread t([&] {
    try {
      Pin p = b.pin(Tier::Host, Access::Read);
      outcome = find_mismatch(p.data(), p.size(), 7, 0) == -1 ? 1 : 4;
    } catch (const std::logic_error&) {
      outcome = 2;
    } catch (...) {
      outcome = 3;
    }
  });
  while (!env->in_read) std::this_thread::sleep_for(1ms);
  pool.reset();  // while the fetch runs on t
  t.join();
  EXPECT_TRUE(outcome == 1 || outcome == 2) << "outcome " << outcome;
  b.reset();
  EXPECT_EQ(dir.regular_files(), 0u);
}

TEST(PoolLimits, SpillDirectoryIsPrivateAndLeavesNothingBehind) {
  ScratchDir dir;
  std::string spill;
  {
    Pool pool(host_disk(dir.path()));
    spill = pool.spill_directory();
    ASSERT_FALSE(spill.empty());
    EXPECT_EQ(spill.rfind(dir.path(), 0), 0u) << spill;
    struct stat st{};
    ASSERT_EQ(::lstat(spill.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    std::vector<Buffer> bufs;
    for (int i = 0; i < 8; ++i) bufs.push_back(filled(pool, 256 * 1024, Tier::Host, i));
    pool.quiesce();
    EXPECT_GT(pool.stats().tier(Tier::Disk).used_bytes, 0u);
    EXPECT_EQ(dir.regular_files(), 0u) << "spill files are unlinked while in use";
  }
  EXPECT_EQ(dir.entries(), 0u) << "the private directory is removed with the pool";
}

}  // namespace
}  // namespace spillway
