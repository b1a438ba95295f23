// tests/stress_test.cpp — the stress harness's parts, each against the
// outcome it promises: every kind of injected fault ends as the contract
// says (docs/reliability.md), Pool::check_invariants() passes on a healthy
// pool and names broken accounting, the watchdog reports an operation stuck
// past its bound, and a short run_stress passes (and fails on a hang).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "src/core/pool_access.hpp"
#include "stress/fault_injector.hpp"
#include "stress/pattern.hpp"
#include "stress/stress_run.hpp"
#include "stress/watchdog.hpp"
#include "test_util.hpp"
#include "tiers/disk/spill_store.hpp"

namespace spillway {
namespace {

using namespace std::chrono_literals;
using stress::FaultInjector;
using stress::FaultKind;
using stress::FaultRates;
using testing::ScratchDir;
using Clock = std::chrono::steady_clock;

// Host + disk, no proactive spilling, the injector as the disk's env.
struct FaultyPool {
  explicit FaultyPool(FaultRates rates, bool device = false, Compression codec = Compression::None) {
    injector = std::make_shared<FaultInjector>(IoEnv::posix(), rates, 42);
    injector->set_enabled(false);  // on only around the step under test
    PoolOptions o = testing::small_options(dir.path(), device ? 1 << 20 : 0, 1 << 20);
    if (!device) o.device.backend = DeviceBackend::None;
    o.high_watermark = 1.0;
    o.low_watermark = 1.0;
    o.disk.env = injector;
    o.disk.compression = codec;
    FaultInjector::DeviceSeam seam;
    if (device) seam = FaultInjector::install_device_faults(injector);
    pool = std::make_unique<Pool>(o);
  }
  Buffer filled(std::size_t n, std::uint64_t version = 0) {
    Buffer b = pool->allocate(n, Tier::Host, "stress-test");
    Pin p = b.pin(Tier::Host);
    stress::fill_pattern(p.data(), n, b.id(), version);
    return b;
  }
  bool intact(Buffer& b, Tier where = Tier::Host) {
    Pin p = b.pin(where, Access::Read);
    return stress::find_mismatch(p.data(), p.size(), b.id(), 0) == -1;
  }
  ScratchDir dir;
  std::shared_ptr<FaultInjector> injector;
  std::unique_ptr<Pool> pool;
};

FaultRates only(FaultKind k, double rate = 1.0) {
  FaultRates r;
  r[k] = rate;
  return r;
}

// ---- patterns ------------------------------------------------------------------

TEST(StressPattern, DetectsAFlippedByteAndAnOtherVersion) {
  std::vector<unsigned char> b(1000);
  stress::fill_pattern(b.data(), b.size(), 7, 3);
  EXPECT_EQ(stress::find_mismatch(b.data(), b.size(), 7, 3), -1);
  EXPECT_EQ(stress::find_mismatch(b.data(), b.size(), 7, 2), 0) << "an older version differs at once";
  EXPECT_EQ(stress::find_mismatch(b.data(), b.size(), 8, 3), 0) << "another buffer's pattern differs";
  b[999] ^= 0x01;
  EXPECT_EQ(stress::find_mismatch(b.data(), b.size(), 7, 3), 999);
  b[999] ^= 0x01;
  b[13] ^= 0x80;
  EXPECT_EQ(stress::find_mismatch(b.data(), b.size(), 7, 3), 13);
}

// ---- fault specs ---------------------------------------------------------------

TEST(FaultRatesTest, ParsesNamesDefaultsAndRejectsNonsense) {
  EXPECT_FALSE(FaultRates::parse("none").any());
  EXPECT_FALSE(FaultRates::parse("").any());
  const FaultRates d = FaultRates::parse("default");
  for (int k = 0; k < stress::kFaultKinds; ++k) EXPECT_GT(d.rate[k], 0) << stress::fault_name(static_cast<FaultKind>(k));
  const FaultRates r = FaultRates::parse("write-eio=0.5, read-flip=0.25,latency-ms=7");
  EXPECT_EQ(r[FaultKind::WriteEio], 0.5);
  EXPECT_EQ(r[FaultKind::ReadFlip], 0.25);
  EXPECT_EQ(r[FaultKind::ReadEio], 0.0);
  EXPECT_EQ(r.latency_max, 7ms);
  const FaultRates m = FaultRates::parse("default,read-eio=0.2");
  EXPECT_EQ(m[FaultKind::ReadEio], 0.2);
  EXPECT_EQ(m[FaultKind::WriteEio], d[FaultKind::WriteEio]);
  EXPECT_EQ(FaultRates::parse(r.to_string()).rate, r.rate) << r.to_string();
  for (const char* bad : {"write-eio", "bogus=0.1", "write-eio=2", "write-eio=x", "read-eio=0.1,default", "a=,"}) {
    try {
      FaultRates::parse(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--faults"), std::string::npos) << e.what();
    }
  }
}

// ---- each fault kind and its documented outcome ----------------------------------

TEST(FaultInjectorTest, WriteErrorsFailTheSpillAndTheVictimStaysResident) {
  for (FaultKind k : {FaultKind::WriteEio, FaultKind::WriteEnospc}) {
    FaultyPool f(only(k));
    Buffer b = f.filled(200000);
    f.injector->set_enabled(true);
    try {
      b.evict(Tier::Disk);
      ADD_FAILURE() << "expected IoError";
    } catch (const IoError& e) {
      EXPECT_EQ(e.code().value(), k == FaultKind::WriteEio ? EIO : ENOSPC);
    }
    // Reactive spills fail the same way and are counted: the victim stays.
    std::vector<Buffer> more;
    for (int i = 0; i < 6; ++i) more.push_back(f.pool->allocate(200000, Tier::Host, "more"));
    f.injector->set_enabled(false);
    EXPECT_GE(f.injector->injected(k), 2u);
    EXPECT_GE(f.pool->stats().errors.spill_write_failures, 2u);
    EXPECT_EQ(b.tier(), Tier::Host) << "the victim stayed where it was";
    EXPECT_TRUE(f.intact(b));
    b.evict(Tier::Disk);  // faults off: the same eviction works
    EXPECT_EQ(b.tier(), Tier::Disk);
    EXPECT_TRUE(f.intact(b));
    EXPECT_TRUE(f.pool->check_invariants().empty());
  }
}

TEST(FaultInjectorTest, ReadErrorThrowsIoErrorAndTheBufferReadsLater) {
  FaultyPool f(only(FaultKind::ReadEio));
  Buffer b = f.filled(100000);
  b.evict(Tier::Disk);
  f.injector->set_enabled(true);
  try {
    b.pin(Tier::Host, Access::Read);
    ADD_FAILURE() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(e.code().value(), EIO);
  }
  f.injector->set_enabled(false);
  EXPECT_EQ(f.injector->injected(FaultKind::ReadEio), 1u);
  EXPECT_EQ(b.tier(), Tier::Disk);
  EXPECT_TRUE(f.intact(b));
}

TEST(FaultInjectorTest, ShortReadsAndWritesAreAbsorbed) {
  FaultRates r;
  r[FaultKind::ShortWrite] = 1.0;
  r[FaultKind::ShortRead] = 1.0;
  FaultyPool f(r);
  Buffer b = f.filled(300000);
  f.injector->set_enabled(true);
  b.evict(Tier::Disk);
  EXPECT_TRUE(f.intact(b));
  f.injector->set_enabled(false);
  EXPECT_GE(f.injector->injected(FaultKind::ShortWrite), 2u);
  EXPECT_GE(f.injector->injected(FaultKind::ShortRead), 2u);
  EXPECT_EQ(f.pool->stats().errors.spill_write_failures + f.pool->stats().errors.fetch_failures, 0u);
}

TEST(FaultInjectorTest, LatencySlowsTheCallAndChangesNothingElse) {
  FaultRates r = only(FaultKind::Latency);
  r.latency_max = 40ms;
  FaultyPool f(r);
  Buffer b = f.filled(100000);
  f.injector->set_enabled(true);
  b.evict(Tier::Disk);
  EXPECT_TRUE(f.intact(b));
  f.injector->set_enabled(false);
  EXPECT_GE(f.injector->injected(FaultKind::Latency), 3u) << "header, payload, read";
  EXPECT_GT(f.injector->latency_seconds(), 0.0);
  EXPECT_LE(f.injector->latency_seconds(), 0.040 * static_cast<double>(f.injector->injected(FaultKind::Latency)));
}

TEST(FaultInjectorTest, WriteFlipDamagesTheRecordForGoodAndEveryReadIsCorruption) {
  for (Compression c : {Compression::None, Compression::Lz4}) {
    FaultyPool f(only(FaultKind::WriteFlip), false, c);
    Buffer b = f.filled(150000);
    f.injector->set_enabled(true);
    b.evict(Tier::Disk);  // the write "succeeds"
    f.injector->set_enabled(false);
    EXPECT_GE(f.injector->injected(FaultKind::WriteFlip), 1u);
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        Pin p = b.pin(Tier::Host, Access::Read);
        ADD_FAILURE() << "a damaged record was returned (codec " << static_cast<int>(c) << ")";
      } catch (const CorruptionError& e) {
        EXPECT_EQ(e.buffer_id, b.id());
        const auto end = e.record_offset + detail::SpillStore::record_span(b.size(), f.pool->stats().disk_direct_io);
        EXPECT_TRUE(f.injector->damaged_on_disk(e.record_offset, end)) << e.what();
      }
    }
    EXPECT_EQ(f.pool->stats().errors.corruptions, 2u);
    EXPECT_EQ(b.tier(), Tier::Disk);
    EXPECT_TRUE(f.pool->check_invariants().empty());
  }
}

TEST(FaultInjectorTest, ReadFlipIsCorruptionOnceAndTheNextReadWorks) {
  FaultyPool f(only(FaultKind::ReadFlip));
  Buffer b = f.filled(150000);
  b.evict(Tier::Disk);
  f.injector->set_enabled(true);
  try {
    Pin p = b.pin(Tier::Host, Access::Read);
    ADD_FAILURE() << "a flipped read was returned";
  } catch (const CorruptionError& e) {
    const auto end = e.record_offset + detail::SpillStore::record_span(b.size(), f.pool->stats().disk_direct_io);
    EXPECT_FALSE(f.injector->damaged_on_disk(e.record_offset, end)) << "the disk itself is fine";
    EXPECT_TRUE(f.injector->claim_read_flip(e.record_offset, end));
  }
  f.injector->set_enabled(false);
  EXPECT_TRUE(f.intact(b));
}

TEST(FaultInjectorTest, DeviceAllocationFailureFallsBackOrIsOutOfMemory) {
  FaultyPool f(only(FaultKind::DeviceAlloc), /*device=*/true);
  EXPECT_EQ(f.pool->device_backend_name(), "simulated");
  f.injector->set_enabled(true);
  Buffer b = f.pool->allocate(100000, Tier::Device, "falls");
  EXPECT_EQ(b.tier(), Tier::Host) << "no device block: placed on the next tier";
  EXPECT_THROW(b.pin(Tier::Device), OutOfMemory);
  EXPECT_GE(f.injector->injected(FaultKind::DeviceAlloc), 2u);
  f.injector->set_enabled(false);
  {
    Pin p = b.pin(Tier::Device);
    stress::fill_pattern(p.data(), p.size(), b.id(), 0);
  }
  EXPECT_EQ(b.tier(), Tier::Device);
  EXPECT_TRUE(f.intact(b, Tier::Device));
  EXPECT_TRUE(f.pool->check_invariants().empty());
}

// ---- check_invariants ------------------------------------------------------------

TEST(CheckInvariants, PassesOnAHealthyPoolInEveryState) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path(), 1 << 20, 1 << 20));
  std::vector<Buffer> bufs;
  for (int i = 0; i < 12; ++i) {
    bufs.push_back(pool.allocate(150000 + 1000 * i, i % 2 ? Tier::Device : Tier::Host, "h"));
    Pin p = bufs.back().pin(i % 2 ? Tier::Device : Tier::Host);
    stress::fill_pattern(p.data(), p.size(), bufs.back().id(), 0);
  }
  bufs.push_back(pool.allocate(0, Tier::Device, "empty"));
  bufs.push_back(pool.allocate(5000, Tier::Disk, "zeros"));
  pool.quiesce();
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
  // Read pins leave clean copies below; pins held across the check.
  Pin a = bufs[0].pin(Tier::Device, Access::Read);
  Pin b = bufs[1].pin(Tier::Host, Access::Read);
  pool.quiesce();
  EXPECT_GT(pool.stats().tier(Tier::Host).clean_bytes + pool.stats().tier(Tier::Disk).clean_bytes, 0u);
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
  a.release();
  b.release();
  for (std::size_t i = 0; i < bufs.size(); i += 2) bufs[i].reset();
  pool.quiesce();
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
}

TEST(CheckInvariants, NamesBrokenPinnedAccounting) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path()));
  Buffer b = pool.allocate(4096, Tier::Host, "x");
  Pin p = b.pin(Tier::Host);
  ASSERT_TRUE(pool.check_invariants().empty());
  detail::PoolCore& core = detail::PoolAccess::core(pool);
  core.skew_pinned_bytes_for_testing(Tier::Host, 256);
  const auto found = pool.check_invariants();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NE(found[0].find("host tier: pinned_bytes is 4352, the pinned buffers add up to 4096"), std::string::npos)
      << found[0];
  core.skew_pinned_bytes_for_testing(Tier::Host, -256);
  EXPECT_TRUE(pool.check_invariants().empty());
}

TEST(CheckInvariants, HoldsUnderConcurrentPressure) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 1 << 20);
  o.pressure_wait = 2s;
  Pool pool(o);
  std::vector<Buffer> bufs;
  for (int i = 0; i < 24; ++i) bufs.push_back(pool.allocate(100000, Tier::Host, "c"));
  std::atomic<bool> stop{false};
  std::vector<std::string> found;
  std::thread checker([&] {
    while (!stop && found.empty()) {
      found = pool.check_invariants();
      std::this_thread::sleep_for(1ms);
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 400; ++i) {
        Buffer& b = bufs[(rng() % 8) * 3 + static_cast<unsigned>(t)];  // each thread its own buffers
        try {
          if (rng() % 4 == 0) {
            b.evict(rng() % 2 ? Tier::Host : Tier::Disk);
          } else {
            Pin p = b.pin(rng() % 2 ? Tier::Device : Tier::Host, rng() % 2 ? Access::Read : Access::ReadWrite);
          }
        } catch (const OutOfMemory&) {
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  stop = true;
  checker.join();
  EXPECT_EQ(found, std::vector<std::string>{});
  pool.quiesce();
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
}

// ---- regressions found by `spillway stress` -------------------------------------------

// Holds the first pwrite after arm() until open(): a test acts while a
// spill is under way on another thread.
class GatedWriteEnv : public IoEnvWrapper {
 public:
  GatedWriteEnv() : IoEnvWrapper(IoEnv::posix()) {}
  void arm() { armed_ = true; }
  void open() { open_ = true; }
  bool holding() const { return holding_; }
  ssize_t pwrite(int fd, const void* data, std::size_t n, off_t off) override {
    if (armed_.exchange(false)) {
      holding_ = true;
      for (int i = 0; i < 10000 && !open_; ++i) std::this_thread::sleep_for(1ms);
    }
    return IoEnvWrapper::pwrite(fd, data, n, off);
  }

 private:
  std::atomic<bool> armed_{false}, open_{false}, holding_{false};
};

// A pin or evict that makes room on host drops the lock while it spills a
// victim. Meanwhile the buffer went to host and back to the device, which
// left a clean copy on host. Moving it to host then must not take a second
// host block (the first one was orphaned: its bytes stayed counted on host
// with no buffer holding them).
TEST(StressRegression, BufferThatMovedAwayAndBackDuringMakeRoomKeepsOneHostBlock) {
  for (bool by_pin : {true, false}) {
    ScratchDir dir;
    auto env = std::make_shared<GatedWriteEnv>();
    PoolOptions o = testing::small_options(dir.path(), 1 << 20, 512 << 10);
    o.high_watermark = 1.0;  // only the moves this test makes
    o.low_watermark = 1.0;
    o.disk.env = env;
    o.pressure_wait = 20s;
    Pool pool(o);
    constexpr std::size_t kSize = 256 << 10;
    Buffer a = pool.allocate(kSize, Tier::Device, "a");
    Buffer h1 = pool.allocate(kSize, Tier::Host, "h1");
    Buffer h2 = pool.allocate(kSize, Tier::Host, "h2");
    {
      Pin p = a.pin(Tier::Device);
      stress::fill_pattern(p.data(), kSize, a.id(), 0);
    }
    { Pin p = h2.pin(Tier::Host, Access::Read); }  // h1 is now the LRU victim on host
    ASSERT_EQ(a.tier(), Tier::Device);
    ASSERT_EQ(pool.stats().tier(Tier::Host).used_bytes, 512u << 10);
    env->arm();
    std::thread t1([&] {
      // Needs host room: spills h1 (held at the gate), then moves a down.
      if (by_pin) {
        Pin p = a.pin(Tier::Host, Access::Read);
        EXPECT_EQ(stress::find_mismatch(p.data(), kSize, a.id(), 0), -1);
      } else {
        a.evict(Tier::Host);
      }
    });
    while (!env->holding()) std::this_thread::sleep_for(1ms);
    h2.reset();          // room on host for the round trip
    a.evict(Tier::Host);  // device -> host
    { Pin p = a.pin(Tier::Device, Access::Read); }  // host -> device: a clean copy stays on host
    ASSERT_EQ(a.tier(), Tier::Device);
    ASSERT_EQ(a.clean_copies() & (1u << tier_index(Tier::Host)), 1u << tier_index(Tier::Host));
    env->open();
    t1.join();
    EXPECT_EQ(a.tier(), Tier::Host);
    EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{}) << (by_pin ? "pin" : "evict");
    a.reset();
    h1.reset();
    pool.quiesce();
    EXPECT_EQ(pool.stats().tier(Tier::Host).used_bytes, 0u) << "a host block outlived its buffer";
  }
}

// ---- watchdog ---------------------------------------------------------------------

TEST(WatchdogTest, ReportsAnOperationStuckPastItsBoundOnce) {
  std::vector<stress::HangReport> seen;
  std::mutex mu;
  stress::Watchdog dog(50ms, [&](const stress::HangReport& r) {
    std::lock_guard lk(mu);
    seen.push_back(r);
  });
  stress::ActivitySlot* quick = dog.register_thread("quick");
  stress::ActivitySlot* slow = dog.register_thread("slow");
  dog.start();
  for (int i = 0; i < 20; ++i) {
    stress::ScopedActivity a(quick, stress::OpKind::Pin, 5, Tier::Host, false, 10);
    std::this_thread::sleep_for(1ms);
  }
  {
    stress::ScopedActivity a(slow, stress::OpKind::Pin, 77, Tier::Device, true, 4096);
    std::this_thread::sleep_for(300ms);
  }
  std::this_thread::sleep_for(60ms);
  dog.stop();
  EXPECT_TRUE(dog.hung());
  ASSERT_EQ(dog.hangs(), 1u) << "reported once, not once per scan; the quick thread never";
  std::lock_guard lk(mu);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].thread, "slow");
  EXPECT_EQ(seen[0].buffer, 77u);
  EXPECT_EQ(seen[0].kind, stress::OpKind::Pin);
  EXPECT_GE(seen[0].waited_seconds, 0.05);
  EXPECT_NE(seen[0].text.find("pin(device, ReadWrite) of buffer 77"), std::string::npos) << seen[0].text;
  EXPECT_EQ(dog.reports().size(), 1u);
}

TEST(WatchdogTest, QuietWhenEveryOperationEndsInTime) {
  stress::Watchdog dog(200ms);
  stress::ActivitySlot* s = dog.register_thread("t");
  dog.start();
  for (int i = 0; i < 30; ++i) {
    stress::ScopedActivity a(s, stress::OpKind::Evict, static_cast<std::uint64_t>(i));
    std::this_thread::sleep_for(5ms);
  }
  dog.stop();
  EXPECT_FALSE(dog.hung());
}

// ---- the driver --------------------------------------------------------------------

stress::StressConfig small_run(const std::string& dir) {
  stress::StressConfig c;
  c.threads = 3;
  c.duration_seconds = 1.5;
  c.device_bytes = 1 << 20;
  c.host_bytes = 2 << 20;
  c.size_min = 4096;
  c.size_max = 256 * 1024;
  c.spill_dir = dir;
  return c;
}

TEST(RunStress, ShortRunWithFaultsVerifiesAndPasses) {
  ScratchDir dir;
  stress::StressConfig c = small_run(dir.path());
  c.faults = FaultRates::parse("default");
  const stress::StressResult r = stress::run_stress(c);
  EXPECT_EQ(r.exit_code(), 0) << r.summary();
  EXPECT_GT(r.pins_verified, 100u);
  EXPECT_GT(r.bytes_verified, 0u);
  EXPECT_GT(r.invariant_checks, 3u);
  EXPECT_EQ(r.final_checked, r.final_intact + r.final_corrupted_reported) << r.summary();
  EXPECT_EQ(r.leftover_bytes, 0u);
  EXPECT_GT(r.pool.move(Tier::Host, Tier::Disk).moves, 0u);
  EXPECT_NE(r.to_json().find("\"result\": \"pass\""), std::string::npos);
}

// A pool call that takes longer than the watchdog's bound (IO that sleeps
// up to 1 s; the bound is 300 ms) fails the run as a hang.
TEST(RunStress, AnOperationPastTheWatchdogBoundFailsTheRun) {
  ScratchDir dir;
  stress::StressConfig c = small_run(dir.path());
  c.duration_seconds = 1;
  c.faults = FaultRates::parse("latency=1,latency-ms=1000");
  c.watchdog_bound = 300ms;
  const stress::StressResult r = stress::run_stress(c);
  EXPECT_EQ(r.exit_code(), 3) << r.summary();
  EXPECT_GE(r.hangs, 1u);
  EXPECT_FALSE(r.stuck) << "the sleeps end: the threads come back";
  EXPECT_TRUE(std::any_of(r.violations.begin(), r.violations.end(),
                          [](const std::string& v) { return v.find("hang: thread") == 0; }))
      << r.summary();
}

TEST(RunStress, RejectsSettingsThatCannotWork) {
  stress::StressConfig c;
  c.size_max = 32 << 20;  // more than half of a 16 MiB device tier
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = stress::StressConfig{};
  c.threads = 0;
  EXPECT_THROW(c.validate(), std::invalid_argument);
  EXPECT_THROW(stress::parse_workload("bogus"), std::invalid_argument);
  EXPECT_EQ(stress::parse_workload("pinheavy"), stress::Workload::PinHeavy);
}

}  // namespace
}  // namespace spillway
