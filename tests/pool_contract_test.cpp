// tests/pool_contract_test.cpp — the contract every device backend must keep
// (residency rules of ARCHITECTURE.md), run once per backend. A backend that
// is not available here (no CUDA build, no GPU) skips with the reason.
#include <gtest/gtest.h>

#include <thread>

#include "test_util.hpp"

namespace spillway {
namespace {

using testing::fill_pattern;
using testing::find_mismatch;
using testing::ScratchDir;

struct BackendParam {
  const char* name;
  DeviceBackend backend;
};

class PoolContract : public ::testing::TestWithParam<BackendParam> {
 protected:
  void SetUp() override {
    options_ = testing::small_options(dir_.path());
    options_.device.backend = GetParam().backend;
    try {
      pool_ = std::make_unique<Pool>(options_);
    } catch (const std::exception& e) {
      GTEST_SKIP() << "device backend '" << GetParam().name << "' is not available here: " << e.what();
    }
  }
  void TearDown() override { pool_.reset(); }
  // A fresh pool with options_ as the test has changed them.
  void reopen() {
    pool_.reset();
    pool_ = std::make_unique<Pool>(options_);
  }

  Buffer make(std::size_t n, Tier where, std::uint64_t key, bool compressible = false) {
    Buffer b = pool_->allocate(n, where, "contract");
    Pin p = b.pin(where == Tier::Disk ? Tier::Host : where, Access::ReadWrite);
    fill_pattern(p.data(), n, key, 0, compressible);
    return b;
  }
  static void expect_bytes(Buffer& b, Tier where, std::uint64_t key, bool compressible = false) {
    Pin p = b.pin(where, Access::Read);
    ASSERT_EQ(p.tier(), where);
    ASSERT_EQ(p.size(), b.size());
    EXPECT_EQ(find_mismatch(p.data(), p.size(), key, 0, compressible), -1)
        << "buffer " << b.id() << " on " << tier_name(where);
  }

  ScratchDir dir_;
  PoolOptions options_;
  std::unique_ptr<Pool> pool_;
};

TEST_P(PoolContract, AllocatePinWriteRead) {
  Buffer b = pool_->allocate(10000, Tier::Device, "weights");
  EXPECT_EQ(b.size(), 10000u);
  EXPECT_EQ(b.label(), "weights");
  EXPECT_EQ(b.tier(), Tier::Device);
  {
    Pin p = b.pin(Tier::Device);
    ASSERT_NE(p.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p.data()) % 256, 0u) << "256-byte alignment";
    fill_pattern(p.data(), p.size(), 1, 0);
    EXPECT_EQ(pool_->stats().tier(Tier::Device).pinned_bytes, 10240u);
  }
  EXPECT_EQ(pool_->stats().tier(Tier::Device).pinned_bytes, 0u);
  expect_bytes(b, Tier::Device, 1);
  EXPECT_EQ(pool_->stats().live_buffers, 1u);
  b.reset();
  EXPECT_EQ(pool_->stats().live_buffers, 0u);
  EXPECT_EQ(pool_->stats().tier(Tier::Device).used_bytes, 0u);
}

// Every path between tiers, on incompressible and compressible bytes, with
// each compression setting.
TEST_P(PoolContract, RoundTripsEveryPath) {
  for (Compression c : {Compression::None, Compression::Lz4, Compression::Adaptive}) {
    for (bool compressible : {false, true}) {
      options_.disk.compression = c;
      reopen();
      SCOPED_TRACE(::testing::Message() << "compression " << static_cast<int>(c)
                                      << (compressible ? " compressible" : " random"));
      const std::size_t n = 300 * 1000 + 7;
      // device -> host -> device
      Buffer a = make(n, Tier::Device, 11, compressible);
      a.evict(Tier::Host);
      EXPECT_EQ(a.tier(), Tier::Host);
      expect_bytes(a, Tier::Host, 11, compressible);
      expect_bytes(a, Tier::Device, 11, compressible);
      // device -> disk -> device
      Buffer b = make(n, Tier::Device, 12, compressible);
      b.evict(Tier::Disk);
      EXPECT_EQ(b.tier(), Tier::Disk);
      expect_bytes(b, Tier::Device, 12, compressible);
      // host -> disk -> host, then host -> device
      Buffer h = make(n, Tier::Host, 13, compressible);
      h.evict(Tier::Disk);
      EXPECT_EQ(h.tier(), Tier::Disk);
      expect_bytes(h, Tier::Host, 13, compressible);
      expect_bytes(h, Tier::Device, 13, compressible);
      // device -> host by pin (a downward pin moves the primary)
      expect_bytes(h, Tier::Host, 13, compressible);
      const PoolStats s = pool_->stats();
      for (auto [from, to] : {std::pair{Tier::Device, Tier::Host}, {Tier::Host, Tier::Device},
                              {Tier::Device, Tier::Disk}, {Tier::Disk, Tier::Device},
                              {Tier::Host, Tier::Disk}, {Tier::Disk, Tier::Host}}) {
        EXPECT_GE(s.move(from, to).moves, 1u) << tier_name(from) << " -> " << tier_name(to);
      }
      EXPECT_EQ(s.errors.corruptions + s.errors.fetch_failures + s.errors.spill_write_failures, 0u);
    }
  }
}

TEST_P(PoolContract, DiskAllocationReadsAsZeros) {
  Buffer b = pool_->allocate(5000, Tier::Disk, "zeros");
  EXPECT_EQ(b.tier(), Tier::Disk);
  Pin p = b.pin(Tier::Host, Access::Read);
  for (unsigned char c : p.as<unsigned char>()) ASSERT_EQ(c, 0);
}

// A Read pin keeps the clean copy below, so the next eviction writes nothing.
TEST_P(PoolContract, ReadPinnedBufferReEvictsWithoutWriting) {
  Buffer b = make(200000, Tier::Device, 21);
  b.evict(Tier::Disk);
  const PoolStats s1 = pool_->stats();
  const auto written = s1.move(Tier::Device, Tier::Disk).bytes + s1.move(Tier::Host, Tier::Disk).bytes;
  expect_bytes(b, Tier::Host, 21);  // Read pin: disk copy stays clean
  EXPECT_EQ(b.clean_copies(), 1u << tier_index(Tier::Disk));
  b.evict(Tier::Disk);
  PoolStats s2 = pool_->stats();
  EXPECT_EQ(s2.move(Tier::Device, Tier::Disk).bytes + s2.move(Tier::Host, Tier::Disk).bytes, written);
  EXPECT_EQ(s2.clean_evictions, s1.clean_evictions + 1);
  EXPECT_EQ(b.tier(), Tier::Disk);

  // Same on device -> host.
  expect_bytes(b, Tier::Host, 21);
  expect_bytes(b, Tier::Device, 21);
  EXPECT_NE(b.clean_copies() & (1u << tier_index(Tier::Host)), 0u);
  const auto dev_to_host = pool_->stats().move(Tier::Device, Tier::Host).bytes;
  b.evict(Tier::Host);
  EXPECT_EQ(pool_->stats().move(Tier::Device, Tier::Host).bytes, dev_to_host);
  expect_bytes(b, Tier::Host, 21);
}

// Clean copies only ever sit below the primary: evicting to disk past a
// clean host copy drops it too.
TEST_P(PoolContract, CleanCopiesStayBelowThePrimary) {
  Buffer b = make(100000, Tier::Host, 24);
  b.evict(Tier::Disk);
  expect_bytes(b, Tier::Host, 24);
  expect_bytes(b, Tier::Device, 24);
  EXPECT_EQ(b.clean_copies(), (1u << tier_index(Tier::Host)) | (1u << tier_index(Tier::Disk)));
  b.evict(Tier::Disk);
  EXPECT_EQ(b.tier(), Tier::Disk);
  EXPECT_EQ(b.clean_copies(), 0u);
  const PoolStats s = pool_->stats();
  EXPECT_EQ(s.tier(Tier::Host).used_bytes + s.tier(Tier::Device).used_bytes, 0u);
  EXPECT_EQ(s.tier(Tier::Host).clean_bytes + s.tier(Tier::Disk).clean_bytes, 0u);
  expect_bytes(b, Tier::Device, 24);
}

// A ReadWrite pin invalidates clean copies: the next eviction writes again.
TEST_P(PoolContract, ReadWritePinInvalidatesCleanCopies) {
  Buffer b = make(200000, Tier::Host, 22);
  b.evict(Tier::Disk);
  {
    Pin p = b.pin(Tier::Host, Access::ReadWrite);
    EXPECT_EQ(b.clean_copies(), 0u);
    fill_pattern(p.data(), p.size(), 23, 0);
  }
  const auto written = pool_->stats().move(Tier::Host, Tier::Disk).bytes;
  b.evict(Tier::Disk);
  EXPECT_EQ(pool_->stats().move(Tier::Host, Tier::Disk).bytes, written + 200000);
  expect_bytes(b, Tier::Host, 23);
}

// Pressure on the device cascades down: device -> host -> disk, and every
// buffer still reads back.
TEST_P(PoolContract, EvictionCascadesDownUnderPressure) {
  std::vector<Buffer> bufs;
  const std::size_t n = 256 * 1024;
  for (int i = 0; i < 16; ++i) bufs.push_back(make(n, Tier::Device, 100 + i));  // 4 MiB > 1 + 2
  pool_->quiesce();
  PoolStats s = pool_->stats();
  EXPECT_LE(s.tier(Tier::Device).used_bytes, s.tier(Tier::Device).capacity_bytes);
  EXPECT_GT(s.move(Tier::Device, Tier::Host).moves + s.move(Tier::Device, Tier::Disk).moves, 0u);
  EXPECT_GT(s.tier(Tier::Disk).buffers, 0u);
  EXPECT_EQ(s.tier(Tier::Device).buffers + s.tier(Tier::Host).buffers + s.tier(Tier::Disk).buffers, 16u);
  // The oldest buffers went furthest down (LRU).
  EXPECT_NE(bufs.front().tier(), Tier::Device);
  for (int i = 0; i < 16; ++i) expect_bytes(bufs[i], Tier::Device, 100 + i);
}

// Above the high watermark a background worker spills down to the low one.
TEST_P(PoolContract, ProactiveSpillingKeepsTierUnderHighWatermark) {
  options_.high_watermark = 0.5;
  options_.low_watermark = 0.25;
  reopen();
  std::vector<Buffer> bufs;
  for (int i = 0; i < 3; ++i) bufs.push_back(make(256 * 1024, Tier::Device, 200 + i));  // 75%
  pool_->quiesce();
  const PoolStats s = pool_->stats();
  EXPECT_GE(s.evictions[static_cast<int>(EvictionReason::Proactive)], 1u);
  EXPECT_LE(s.tier(Tier::Device).used_bytes, (1u << 20) / 2);
  for (int i = 0; i < 3; ++i) expect_bytes(bufs[i], Tier::Host, 200 + i);
}

// A buffer with a clean copy below costs no write to evict, so proactive
// spilling counts it as room and leaves it cached; only dirty buffers are
// spilled ahead of need.
TEST_P(PoolContract, ProactiveSpillingLeavesBuffersWithACleanCopyCached) {
  options_.high_watermark = 0.3;
  options_.low_watermark = 0.1;
  reopen();
  std::vector<Buffer> cached;
  for (int i = 0; i < 2; ++i) {
    cached.push_back(make(256 * 1024, Tier::Host, 220 + i));
    cached.back().prefetch(Tier::Device);  // up to the device; the host copy stays, clean
  }
  pool_->quiesce();
  PoolStats s = pool_->stats();
  const auto proactive = [](const PoolStats& st) { return st.evictions[static_cast<int>(EvictionReason::Proactive)]; };
  EXPECT_EQ(proactive(s), 0u) << "50% of the device is in use, all of it with a clean copy below";
  for (auto& b : cached) EXPECT_EQ(b.tier(), Tier::Device);
  std::vector<Buffer> dirty;
  for (int i = 0; i < 2; ++i) dirty.push_back(make(192 * 1024, Tier::Device, 230 + i));  // 37.5% dirty
  pool_->quiesce();
  s = pool_->stats();
  EXPECT_GE(proactive(s), 1u);
  for (auto& b : cached) EXPECT_EQ(b.tier(), Tier::Device) << "buffer " << b.id() << " was spilled though clean";
  EXPECT_TRUE(dirty[0].tier() != Tier::Device || dirty[1].tier() != Tier::Device);
  // Every proactive eviction wrote one dirty buffer (off the device, then
  // off the host, which has watermarks of its own).
  EXPECT_EQ(s.move(Tier::Device, Tier::Host).bytes + s.move(Tier::Device, Tier::Disk).bytes +
                s.move(Tier::Host, Tier::Disk).bytes,
            proactive(s) * 192 * 1024)
      << "only the dirty buffers were written";
  for (int i = 0; i < 2; ++i) expect_bytes(cached[i], Tier::Device, 220 + i);
  for (int i = 0; i < 2; ++i) expect_bytes(dirty[i], Tier::Host, 230 + i);
}

// A request that fits in the free total but in no single extent evicts more.
TEST_P(PoolContract, FragmentedTierEvictsUntilAnExtentFits) {
  options_.high_watermark = 1.0;  // no proactive spilling: keep the layout
  reopen();
  std::vector<Buffer> bufs;
  for (int i = 0; i < 8; ++i) bufs.push_back(make(128 * 1024, Tier::Device, 300 + i));
  for (int i = 0; i < 8; i += 2) bufs[i].reset();  // free every other block: 512 KiB free, 128 KiB extents
  PoolStats s = pool_->stats();
  EXPECT_EQ(s.tier(Tier::Device).largest_free_bytes, 128u * 1024);
  EXPECT_NEAR(s.tier(Tier::Device).fragmentation, 0.75, 1e-9);
  Buffer big = make(384 * 1024, Tier::Device, 399);
  EXPECT_EQ(big.tier(), Tier::Device);
  s = pool_->stats();
  EXPECT_GE(s.evictions[static_cast<int>(EvictionReason::Pressure)], 1u);
  expect_bytes(big, Tier::Device, 399);
  for (int i = 1; i < 8; i += 2) expect_bytes(bufs[i], Tier::Host, 300 + i);
}

TEST_P(PoolContract, PrefetchBringsBytesUpWithoutAPin) {
  Buffer b = make(100000, Tier::Host, 31);
  b.evict(Tier::Disk);
  b.prefetch(Tier::Device);
  pool_->quiesce();
  EXPECT_EQ(b.tier(), Tier::Device);
  const auto waits = pool_->stats().pin_waits;
  expect_bytes(b, Tier::Device, 31);
  EXPECT_EQ(pool_->stats().pin_waits, waits) << "the pin found the bytes already there";
}

TEST_P(PoolContract, StatsAccountEveryByte) {
  Buffer a = make(1000, Tier::Device, 41);   // 1024 bytes in the arena
  Buffer b = make(70000, Tier::Host, 42);    // 70144
  Buffer c = make(5000, Tier::Host, 43);
  c.evict(Tier::Disk);
  const PoolStats s = pool_->stats();
  EXPECT_EQ(s.tier(Tier::Device).used_bytes, 1024u);
  EXPECT_EQ(s.tier(Tier::Host).used_bytes, 70144u);
  EXPECT_EQ(s.tier(Tier::Disk).used_bytes % 4096, 0u);
  EXPECT_GE(s.tier(Tier::Disk).used_bytes, 5000u);
  EXPECT_EQ(s.tier(Tier::Device).buffers, 1u);
  EXPECT_EQ(s.tier(Tier::Host).buffers, 1u);
  EXPECT_EQ(s.tier(Tier::Disk).buffers, 1u);
  EXPECT_EQ(s.tier(Tier::Device).capacity_bytes, 1u << 20);
  EXPECT_GE(s.tier(Tier::Host).peak_bytes, 70144u + 5120u);
  EXPECT_EQ(s.evictions[static_cast<int>(EvictionReason::Explicit)], 1u);
  EXPECT_EQ(s.live_buffers, 3u);
  EXPECT_FALSE(s.to_string().empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, PoolContract,
                         ::testing::Values(BackendParam{"simulated", DeviceBackend::Simulated},
                                           BackendParam{"cuda", DeviceBackend::Cuda}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace spillway
