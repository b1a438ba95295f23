// tests/read_shared_test.cpp — read-shared buffers (Note [Read-shared
// buffers] in src/core/buffer_record.hpp): a buffer that several Read pins
// hold at once counts further Read pins in per-thread reader slots. These
// tests drive the sharing, its revocation by every slow path that needs the
// buffer's pins (explicit eviction, eviction under pressure, free, shutdown,
// a stream release), and many readers racing evictions, prefetches and
// frees, with the invariant checker watching.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "src/core/pool_access.hpp"
#include "test_util.hpp"

namespace spillway {
namespace {

using namespace std::chrono_literals;
using detail::PoolAccess;
using testing::find_mismatch;
using testing::joined;
using testing::fill_pattern;
using testing::ScratchDir;

constexpr std::size_t KiB = 1024;

Buffer filled(Pool& pool, std::size_t bytes, Tier t, std::uint64_t version = 0) {
  Buffer b = pool.allocate(bytes, t, "shared");
  Pin p = b.pin(t, Access::ReadWrite);
  fill_pattern(p.data(), p.size(), b.id(), version);
  return b;
}

std::uint64_t host_pinned(Pool& pool) { return pool.stats().tier(Tier::Host).pinned_bytes; }

// Two Read pins at once make the buffer read-shared; the third is counted in
// this thread's reader slot. Returns it, with the first two released.
Pin shared_reader_pin(Buffer& b) {
  Pin first = b.pin(Tier::Host, Access::Read);
  Pin second = b.pin(Tier::Host, Access::Read);  // sees the first: shares
  Pin third = b.pin(Tier::Host, Access::Read);   // a reader slot
  return third;
}

TEST(ReadShared, ASecondReaderSharesTheBufferAndItIsCountedOnce) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path()));
  Buffer b = filled(pool, 64 * KiB, Tier::Host);
  Pin first = b.pin(Tier::Host, Access::Read);
  EXPECT_FALSE(PoolAccess::read_shared(b)) << "one reader shares nothing";
  Pin second = b.pin(Tier::Host, Access::Read);
  EXPECT_TRUE(PoolAccess::read_shared(b));
  Pin third = b.pin(Tier::Host, Access::Read);
  EXPECT_EQ(third.data(), first.data());
  EXPECT_EQ(find_mismatch(third.data(), third.size(), b.id(), 0), -1);
  EXPECT_EQ(host_pinned(pool), 64 * KiB);
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
  first.release();
  second.release();
  // Pinned only through the reader slot now.
  EXPECT_EQ(host_pinned(pool), 64 * KiB);
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
  third.release();
  EXPECT_EQ(host_pinned(pool), 0u) << "an idle shared buffer is not pinned";
  EXPECT_TRUE(PoolAccess::read_shared(b));
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
  // A ReadWrite pin of a shared buffer counts in the word as before.
  {
    Pin w = b.pin(Tier::Host, Access::ReadWrite);
    EXPECT_EQ(host_pinned(pool), 64 * KiB);
  }
  EXPECT_EQ(host_pinned(pool), 0u);
}

TEST(ReadShared, AnIdleSharedBufferIsEvictedAtOnce) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path()));
  Buffer b = filled(pool, 64 * KiB, Tier::Host);
  shared_reader_pin(b).release();
  ASSERT_TRUE(PoolAccess::read_shared(b));
  b.evict(Tier::Disk);  // no reader: the sharing is revoked, nothing waits
  EXPECT_EQ(b.tier(), Tier::Disk);
  EXPECT_FALSE(PoolAccess::read_shared(b));
  Pin p = b.pin(Tier::Host, Access::Read);
  EXPECT_EQ(find_mismatch(p.data(), p.size(), b.id(), 0), -1);
  p.release();
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
}

TEST(ReadShared, AnEvictionWaitsForTheLastReaderWhichGivesThePinBack) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  o.pressure_wait = 10s;
  Pool pool(o);
  Buffer b = filled(pool, 64 * KiB, Tier::Host);
  Pin reader = shared_reader_pin(b);
  auto evicted = std::async(std::launch::async, [&] { b.evict(Tier::Disk); });
  EXPECT_EQ(evicted.wait_for(50ms), std::future_status::timeout) << "evicted under a reader's pin";
  EXPECT_EQ(b.tier(), Tier::Host);
  // The pin ends on another thread than the one that made it.
  std::thread([r = std::move(reader)]() mutable { r.release(); }).join();
  ASSERT_EQ(evicted.wait_for(5s), std::future_status::ready);
  evicted.get();
  EXPECT_EQ(b.tier(), Tier::Disk);
  EXPECT_FALSE(PoolAccess::read_shared(b));
  EXPECT_EQ(host_pinned(pool), 0u);
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
}

TEST(ReadShared, ARevocationThatTimesOutLeavesTheLastReaderToFinishIt) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  o.pressure_wait = 30ms;
  Pool pool(o);
  Buffer b = filled(pool, 64 * KiB, Tier::Host);
  Pin reader = shared_reader_pin(b);
  try {
    b.evict(Tier::Disk);
    ADD_FAILURE() << "evicted a buffer a reader holds";
  } catch (const OutOfMemory& e) {
    EXPECT_NE(std::string(e.what()).find("stays pinned"), std::string::npos) << e.what();
    ASSERT_EQ(e.pinned_by_label.size(), 1u) << "the reader's buffer is named as pinned";
    EXPECT_EQ(e.pinned_by_label[0].first, "shared");
  }
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{}) << "revoked, one reader left";
  // Readers that come now count in the buffer, not in slots.
  {
    Pin more = b.pin(Tier::Host, Access::Read);
    EXPECT_EQ(host_pinned(pool), 64 * KiB);
  }
  reader.release();  // the last reader: gives the word's pin back
  EXPECT_FALSE(PoolAccess::read_shared(b));
  EXPECT_EQ(host_pinned(pool), 0u);
  b.evict(Tier::Disk);
  EXPECT_EQ(b.tier(), Tier::Disk);
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
}

TEST(ReadShared, PressureEvictsAnIdleSharedBuffer) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path(), 1 << 20, 256 * KiB));
  Buffer b = filled(pool, 128 * KiB, Tier::Host);
  shared_reader_pin(b).release();
  ASSERT_TRUE(PoolAccess::read_shared(b));
  // Needs b's room: the eviction scan revokes the idle sharing.
  Buffer c = filled(pool, 192 * KiB, Tier::Host, 1);
  EXPECT_EQ(b.tier(), Tier::Disk);
  EXPECT_EQ(c.tier(), Tier::Host);
  Pin p = b.pin(Tier::Host, Access::Read);
  EXPECT_EQ(find_mismatch(p.data(), p.size(), b.id(), 0), -1);
}

TEST(ReadShared, AFreeWhileReadersHoldPinsEndsWithTheLastOfThem) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path()));
  Buffer b = filled(pool, 64 * KiB, Tier::Host);
  const std::uint64_t id = b.id();
  Pin reader = shared_reader_pin(b);
  Pin other = b.pin(Tier::Host, Access::Read);  // a second slot pin on this thread
  const void* data = reader.data();
  b.reset();  // freed while read: the bytes stay until the readers are done
  EXPECT_EQ(pool.stats().tier(Tier::Host).buffers, 1u);
  EXPECT_EQ(host_pinned(pool), 64 * KiB);
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
  EXPECT_EQ(find_mismatch(data, 64 * KiB, id, 0), -1);
  other.release();
  EXPECT_EQ(pool.stats().tier(Tier::Host).buffers, 1u);
  std::thread([r = std::move(reader)]() mutable { r.release(); }).join();
  EXPECT_EQ(pool.stats().tier(Tier::Host).buffers, 0u);
  EXPECT_EQ(pool.stats().tier(Tier::Host).used_bytes, 0u);
  EXPECT_EQ(host_pinned(pool), 0u);
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
}

TEST(ReadShared, AStreamReleaseOfAReaderPinEndsItThroughTheBuffersCount) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path()));
  Buffer b = filled(pool, 64 * KiB, Tier::Host);
  Pin reader = shared_reader_pin(b);
  reader.release(Stream{});  // not a device pin: ends now
  EXPECT_EQ(host_pinned(pool), 0u);
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
  b.evict(Tier::Disk);
  EXPECT_EQ(b.tier(), Tier::Disk);
}

TEST(ReadShared, AClosedPoolLetsReadersFinish) {
  ScratchDir dir;
  auto pool = std::make_unique<Pool>(testing::small_options(dir.path()));
  Buffer idle = filled(*pool, 64 * KiB, Tier::Host);
  Buffer read = filled(*pool, 64 * KiB, Tier::Host, 1);
  shared_reader_pin(idle).release();
  Pin reader = shared_reader_pin(read);
  pool.reset();  // the pool goes first; the Buffers and the Pin outlive it
  EXPECT_EQ(find_mismatch(reader.data(), reader.size(), read.id(), 1), -1);
  reader.release();
}

// Readers on several threads share buffers while other threads evict,
// prefetch, write and replace them; the checker runs all along.
TEST(ReadShared, ReadersRacingEvictionsPrefetchesWritesAndFreesKeepEveryRule) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 512 * KiB, 512 * KiB);
  o.pressure_wait = 5s;
  Pool pool(o);
  constexpr int kBuffers = 6;  // 6 x 128 KiB: 3 x the host tier, 1.5 x device + host
  constexpr int kReaders = 5;
  struct Slot {
    std::shared_mutex mu;  // shared: pins; exclusive: writes and replacement
    Buffer buffer;
    std::uint64_t version = 0;
  };
  std::vector<Slot> slots(kBuffers);
  for (auto& s : slots) s.buffer = filled(pool, 128 * KiB, Tier::Host);
  std::atomic<int> bad{0};
  std::atomic<int> shared_seen{0};
  std::atomic<bool> stop{false};
  std::thread checker([&] {
    while (!stop) {
      const auto found = pool.check_invariants();
      if (!found.empty()) {
        ADD_FAILURE() << joined(found);
        return;
      }
      std::this_thread::sleep_for(2ms);
    }
  });
  for (int phase = 0; phase < 3; ++phase) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kReaders; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(phase * 100 + t));
        for (int k = 0; k < 1500; ++k) {
          Slot& s = slots[rng() % kBuffers];
          std::shared_lock lk(s.mu);
          try {
            // Two pins at a time from one thread (the second may land in a
            // slot), held over a verification.
            Pin a = s.buffer.pin(Tier::Host, Access::Read);
            Pin b = s.buffer.pin(Tier::Host, Access::Read);
            if (a.data() != b.data()) ++bad;
            if (PoolAccess::read_shared(s.buffer)) ++shared_seen;
            if (k % 8 == 0 && find_mismatch(b.data(), b.size(), s.buffer.id(), s.version) != -1) ++bad;
          } catch (const OutOfMemory&) {
            // Documented when every buffer's room is pinned by the others.
          }
        }
      });
    }
    threads.emplace_back([&] {  // evictions, prefetches
      std::mt19937 rng(static_cast<unsigned>(phase));
      for (int k = 0; k < 400; ++k) {
        Slot& s = slots[rng() % kBuffers];
        std::shared_lock lk(s.mu);
        try {
          if (k % 3 == 2) {
            s.buffer.prefetch(Tier::Device);
          } else {
            s.buffer.evict(k % 3 == 0 ? Tier::Disk : Tier::Host);
          }
        } catch (const OutOfMemory&) {
        }
      }
    });
    threads.emplace_back([&] {  // writes and replacements
      std::mt19937 rng(static_cast<unsigned>(phase + 50));
      for (int k = 0; k < 150; ++k) {
        Slot& s = slots[rng() % kBuffers];
        std::unique_lock lk(s.mu);
        try {
          if (k % 2 == 0) {
            Pin w = s.buffer.pin(Tier::Host, Access::ReadWrite);
            fill_pattern(w.data(), w.size(), s.buffer.id(), ++s.version);
          } else {
            s.buffer = filled(pool, 128 * KiB, Tier::Host);
            s.version = 0;
          }
        } catch (const OutOfMemory&) {
        }
      }
    });
    for (auto& th : threads) th.join();
    pool.quiesce();
    EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{}) << "after phase " << phase;
    EXPECT_EQ(host_pinned(pool) + pool.stats().tier(Tier::Device).pinned_bytes, 0u) << "after phase " << phase;
  }
  stop = true;
  checker.join();
  EXPECT_EQ(bad.load(), 0) << "a reader saw bytes that were not the buffer's";
  EXPECT_GT(shared_seen.load(), 0) << "no buffer was ever read-shared: the test did not exercise the slots";
  for (auto& s : slots) {
    Pin p = s.buffer.pin(Tier::Host, Access::Read);
    EXPECT_EQ(find_mismatch(p.data(), p.size(), s.buffer.id(), s.version), -1);
  }
}

}  // namespace
}  // namespace spillway
