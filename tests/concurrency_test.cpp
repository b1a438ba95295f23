// tests/concurrency_test.cpp — many threads on one pool: pins and unpins of
// resident buffers that skip the pool's lock, allocations and frees from
// thread caches, evictions racing pins, and an interleaving test that makes
// the racy windows wide (yields and sleeps at the race points) and must
// catch a deliberately broken ordering.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "src/core/pool_access.hpp"
#include "test_util.hpp"

namespace spillway {
namespace {

using namespace std::chrono_literals;
using testing::find_mismatch;
using testing::joined;
using testing::fill_pattern;
using testing::ScratchDir;

constexpr std::size_t KiB = 1024;

// ---- the fast path keeps the books exact ------------------------------------------

TEST(ManyThreads, PinsOfOwnBuffersKeepEveryCountExact) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path(), 4 << 20, 8 << 20));
  constexpr int kThreads = 8;
  constexpr int kPerThread = 4;
  constexpr int kRounds = 20000;
  std::vector<std::vector<Buffer>> mine(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      mine[t].push_back(pool.allocate(16 * KiB, i % 2 ? Tier::Device : Tier::Host, "own"));
      Pin p = mine[t].back().pin(i % 2 ? Tier::Device : Tier::Host);
      fill_pattern(p.data(), p.size(), mine[t].back().id(), 0);
    }
  }
  const std::uint64_t pins_before = pool.stats().pins;
  for (int phase = 0; phase < 3; ++phase) {
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int k = 0; k < kRounds; ++k) {
          Buffer& b = mine[t][static_cast<std::size_t>(k % kPerThread)];
          const Tier where = k % kPerThread % 2 ? Tier::Device : Tier::Host;
          Pin p = b.pin(where, k % 3 == 0 ? Access::ReadWrite : Access::Read);
          if (static_cast<const unsigned char*>(p.data())[0] !=
              static_cast<const unsigned char*>(p.data())[0]) {
            ++bad;
          }
          if (k % 997 == 0 && find_mismatch(p.data(), p.size(), b.id(), 0) != -1) ++bad;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0);
    // Between phases: every count adds up, nothing is left pinned.
    EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{}) << "phase " << phase;
    const PoolStats s = pool.stats();
    EXPECT_EQ(s.pins - pins_before, static_cast<std::uint64_t>((phase + 1) * kThreads * kRounds));
    EXPECT_EQ(s.tier(Tier::Device).pinned_bytes, 0u);
    EXPECT_EQ(s.tier(Tier::Host).pinned_bytes, 0u);
  }
}

// A thread's pending records (born on the fast path, not yet in the pool's
// lists) are its newest one and a list of the others. Every order of
// freeing them, before and after the checker adopts them, and a free of a
// pinned one (the slow path: adopted, freed by its last unpin), keeps the
// books exact and every other buffer's bytes.
TEST(ThreadShard, PendingRecordsFreedInAnyOrderKeepTheBooks) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 8 << 20);
  o.disk.enabled = false;
  Pool pool(o);
  std::vector<int> order{0, 1, 2};
  int cases = 0;
  do {
    for (int adopt_first = 0; adopt_first < 2; ++adopt_first) {
      for (int pinned = -1; pinned < 3; ++pinned) {  // which one is freed while pinned, if any
        SCOPED_TRACE(::testing::Message() << "order " << order[0] << order[1] << order[2] << ", adopted first "
                                        << adopt_first << ", pinned " << pinned);
        std::vector<Buffer> bufs;
        for (int i = 0; i < 3; ++i) {
          bufs.push_back(pool.allocate(4 * KiB, Tier::Host, "pending"));
          Pin p = bufs.back().pin(Tier::Host);
          fill_pattern(p.data(), p.size(), bufs.back().id(), 7);
        }
        if (adopt_first) ASSERT_EQ(pool.check_invariants(), std::vector<std::string>{});
        std::vector<bool> gone(3, false);
        for (int k : order) {
          Pin held;
          const std::uint64_t id = bufs[static_cast<std::size_t>(k)].id();
          if (k == pinned) held = bufs[static_cast<std::size_t>(k)].pin(Tier::Host, Access::Read);
          bufs[static_cast<std::size_t>(k)].reset();
          gone[static_cast<std::size_t>(k)] = true;
          ASSERT_EQ(pool.check_invariants(), std::vector<std::string>{}) << "after freeing " << k;
          if (held) {
            EXPECT_EQ(pool.stats().tier(Tier::Host).pinned_bytes, 4 * KiB);
            EXPECT_EQ(find_mismatch(held.data(), held.size(), id, 7), -1) << "a pin that outlived its Buffer";
          }
          held = Pin();  // the last unpin frees it
          ASSERT_EQ(pool.check_invariants(), std::vector<std::string>{}) << "after its last unpin";
          for (int j = 0; j < 3; ++j) {
            if (gone[static_cast<std::size_t>(j)]) continue;
            Buffer& b = bufs[static_cast<std::size_t>(j)];
            Pin p = b.pin(Tier::Host, Access::Read);
            EXPECT_EQ(find_mismatch(p.data(), p.size(), b.id(), 7), -1) << "buffer " << j;
          }
        }
        const PoolStats s = pool.stats();
        EXPECT_EQ(s.live_buffers, 0u);
        EXPECT_EQ(s.tier(Tier::Host).used_bytes, 0u);
        EXPECT_EQ(s.tier(Tier::Host).pinned_bytes, 0u);
        ++cases;
      }
    }
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(cases, 6 * 2 * 4);
}

TEST(ManyThreads, ReadPinsOfOneBufferCountEveryPin) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path()));
  Buffer shared = pool.allocate(64 * KiB, Tier::Host, "shared");
  {
    Pin p = shared.pin(Tier::Host);
    fill_pattern(p.data(), p.size(), shared.id(), 0);
  }
  constexpr int kThreads = 6;
  std::atomic<bool> go{false};
  std::atomic<int> bad{0};
  std::atomic<std::uint32_t> max_seen{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (!go) std::this_thread::yield();
      for (int k = 0; k < 20000; ++k) {
        Pin p = shared.pin(Tier::Host, Access::Read);
        if (k % 1000 == 0 && find_mismatch(p.data(), p.size(), shared.id(), 0) != -1) ++bad;
      }
    });
  }
  // While they pin, the checker's view stays exact: it holds them still.
  std::thread checker([&] {
    while (!go) std::this_thread::yield();
    for (int i = 0; i < 20; ++i) {
      const auto found = pool.check_invariants();
      if (!found.empty()) {
        ADD_FAILURE() << joined(found);
        break;
      }
      const auto pinned = pool.stats().tier(Tier::Host).pinned_bytes;
      max_seen = std::max<std::uint32_t>(max_seen, static_cast<std::uint32_t>(pinned));
      std::this_thread::sleep_for(1ms);
    }
  });
  go = true;
  for (auto& th : threads) th.join();
  checker.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(max_seen.load(), 64 * KiB) << "pinned bytes counted one buffer twice";
  EXPECT_EQ(pool.stats().tier(Tier::Host).pinned_bytes, 0u);
  EXPECT_TRUE(pool.check_invariants().empty());
}

// Buffers made on one thread and freed on another: the blocks and records
// go back wherever they were born, and nothing is lost or double counted.
TEST(ManyThreads, AllocatedHereFreedThereGivesEveryByteBack) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 8 << 20, 16 << 20);
  o.disk.enabled = false;
  Pool pool(o);
  constexpr int kPairs = 3;
  constexpr int kItems = 5000;
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int pair = 0; pair < kPairs; ++pair) {
    auto queue = std::make_shared<std::vector<Buffer>>();
    auto mu = std::make_shared<std::mutex>();
    auto done = std::make_shared<std::atomic<bool>>(false);
    threads.emplace_back([&, queue, mu, done, pair] {
      std::mt19937 rng(static_cast<unsigned>(pair));
      for (int i = 0; i < kItems; ++i) {
        const std::size_t size = std::size_t{1} << (8 + rng() % 9);  // 256 B .. 64 KiB: cached classes
        Buffer b = pool.allocate(size, i % 2 ? Tier::Device : Tier::Host, "handed");
        {
          Pin p = b.pin(i % 2 ? Tier::Device : Tier::Host);
          fill_pattern(p.data(), p.size(), b.id(), 1);
        }
        for (;;) {  // at most 64 in flight: the consumer frees at its own pace
          std::lock_guard lk(*mu);
          if (queue->size() < 64) {
            queue->push_back(std::move(b));
            break;
          }
          std::this_thread::yield();
        }
      }
      *done = true;
    });
    threads.emplace_back([&, queue, mu, done] {
      for (;;) {
        std::vector<Buffer> got;
        {
          std::lock_guard lk(*mu);
          got.swap(*queue);
        }
        for (Buffer& b : got) {
          Pin p = b.pin(b.tier(), Access::Read);
          if (find_mismatch(p.data(), p.size(), b.id(), 1) != -1) ++bad;
        }
        got.clear();  // freed here, born there
        if (*done) {
          std::lock_guard lk(*mu);
          if (queue->empty()) return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{});
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.live_buffers, 0u);
  EXPECT_EQ(s.tier(Tier::Device).used_bytes, 0u);
  EXPECT_EQ(s.tier(Tier::Host).used_bytes, 0u);
  // What threads still cache is bounded: min(2 MiB, capacity / 32) each.
  EXPECT_LE(s.tier(Tier::Host).thread_cached_bytes, std::uint64_t{2 * kPairs} * ((16u << 20) / 32));
  EXPECT_LE(s.tier(Tier::Device).thread_cached_bytes, std::uint64_t{2 * kPairs} * ((8u << 20) / 32));
}

// Cached blocks are the tier's: an allocation that needs the room gets it
// back from the caches before anything is evicted or placed lower.
TEST(ManyThreads, ThreadCachesGiveTheirBlocksBackBeforeAnEviction) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 4 << 20);
  o.high_watermark = 1.0;
  Pool pool(o);
  std::thread([&] {
    std::vector<Buffer> v;
    for (int i = 0; i < 8; ++i) v.push_back(pool.allocate(4 * KiB, Tier::Device, "cached"));
  }).join();  // that thread's cache keeps their blocks
  const std::uint64_t cached = pool.stats().tier(Tier::Device).thread_cached_bytes;
  ASSERT_GT(cached, 0u);
  ASSERT_LE(cached, (1u << 20) / 32) << "a thread cached more than its share";
  // Only the whole tier holds this: the cached blocks must come back.
  Buffer big = pool.allocate((1 << 20) - cached / 2, Tier::Device, "big");
  const PoolStats s = pool.stats();
  EXPECT_EQ(big.tier(), Tier::Device) << "placed lower while blocks sat in a cache";
  EXPECT_EQ(s.evictions[static_cast<int>(EvictionReason::Pressure)], 0u);
  EXPECT_EQ(s.tier(Tier::Device).thread_cached_bytes, 0u);
  EXPECT_TRUE(pool.check_invariants().empty());
}

// Pins, evictions, prefetches, allocations and frees from many threads at
// four times over-subscription, a checker running beside them; every pin's
// bytes verified, and the books exact between the phases.
TEST(ManyThreads, PinsRaceEvictionsAtFourTimesOversubscription) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 1 << 20);
  o.pressure_wait = 5s;
  Pool pool(o);
  constexpr int kThreads = 8;
  constexpr int kSlots = 32;  // 32 x 256 KiB = 8 MiB = 4 x (device + host)
  struct Slot {
    std::mutex mu;
    Buffer buffer;
    std::uint64_t version = 0;
  };
  std::vector<Slot> slots(kSlots);
  for (auto& s : slots) {
    s.buffer = pool.allocate(256 * KiB, Tier::Host, "slot");
    Pin p = s.buffer.pin(Tier::Host);
    fill_pattern(p.data(), p.size(), s.buffer.id(), 0);
  }
  std::atomic<int> bad{0};
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
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(phase * 100 + t));
        for (int k = 0; k < 300; ++k) {
          Slot& s = slots[rng() % kSlots];
          std::lock_guard lk(s.mu);
          const unsigned op = rng() % 10;
          try {
            if (op < 5) {
              const Tier where = rng() % 2 ? Tier::Device : Tier::Host;
              Pin p = s.buffer.pin(where, op < 2 ? Access::ReadWrite : Access::Read);
              if (find_mismatch(p.data(), p.size(), s.buffer.id(), s.version) != -1) ++bad;
              if (op < 2) fill_pattern(p.data(), p.size(), s.buffer.id(), ++s.version);
            } else if (op < 7) {
              s.buffer.evict(rng() % 2 ? Tier::Host : Tier::Disk);
            } else if (op < 8) {
              s.buffer.prefetch(Tier::Device);
            } else {
              // Free and replace: the size alternates between a cached
              // class and one that is not.
              s.buffer = pool.allocate(rng() % 2 ? 256 * KiB : 200000, Tier::Host, "slot");
              s.version = 0;
              Pin p = s.buffer.pin(Tier::Host);
              fill_pattern(p.data(), p.size(), s.buffer.id(), 0);
            }
          } catch (const OutOfMemory&) {
            // Documented under pins held by the other threads.
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    pool.quiesce();
    EXPECT_EQ(pool.check_invariants(), std::vector<std::string>{}) << "after phase " << phase;
    EXPECT_EQ(pool.stats().tier(Tier::Host).pinned_bytes + pool.stats().tier(Tier::Device).pinned_bytes, 0u);
  }
  stop = true;
  checker.join();
  EXPECT_EQ(bad.load(), 0) << "a pin saw bytes that were not the buffer's";
  for (auto& s : slots) {
    Pin p = s.buffer.pin(Tier::Host, Access::Read);
    EXPECT_EQ(find_mismatch(p.data(), p.size(), s.buffer.id(), s.version), -1);
  }
}

// ---- interleavings at the race points ------------------------------------------------

// The hook widens the windows: at each race point a thread yields, or
// sleeps for tens of microseconds, at random.
std::atomic<std::uint64_t> g_chaos_seed{1};
void chaos(detail::RacePoint) {
  thread_local std::mt19937_64 rng(g_chaos_seed.fetch_add(1));
  const auto r = rng() % 16;
  if (r < 6) {
    std::this_thread::yield();
  } else if (r < 8) {
    std::this_thread::sleep_for(std::chrono::microseconds(20 + rng() % 80));
  }
}

struct RaceOutcome {
  int pins = 0;
  int pins_off_tier = 0;  // a pin returned while the bytes were elsewhere (or moving)
  int bad_bytes = 0;
  std::vector<std::string> invariants;
};

// Readers pin buffers on the host while evictors push the same buffers to
// disk and others allocate and free beside them; each pin checks that the
// buffer is on the tier it was pinned on and holds its bytes.
RaceOutcome race_pins_against_moves(bool broken) {
  detail::set_race_hook_for_testing(&chaos, broken);
  RaceOutcome out;
  {
    ScratchDir dir;
    PoolOptions o = testing::small_options(dir.path(), 0, 4 << 20);
    o.device.backend = DeviceBackend::None;
    o.high_watermark = 1.0;
    o.pressure_wait = 5s;
    Pool pool(o);
    constexpr int kBuffers = 4;
    std::vector<Buffer> bufs;
    for (int i = 0; i < kBuffers; ++i) {
      bufs.push_back(pool.allocate(64 * KiB, Tier::Host, "raced"));
      Pin p = bufs.back().pin(Tier::Host);
      fill_pattern(p.data(), p.size(), bufs.back().id(), 0);
    }
    std::atomic<bool> stop{false};
    std::atomic<int> pins{0}, off{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        for (int k = 0; !stop; ++k) {
          Buffer& b = bufs[static_cast<std::size_t>((k + t) % kBuffers)];
          try {
            Pin p = b.pin(Tier::Host, Access::Read);
            ++pins;
            // The pin must keep the bytes where it got them, for as long
            // as it lives. (A pin granted to a buffer that moved away may
            // not even have an address.)
            if (p.data() == nullptr || b.tier() != Tier::Host) {
              ++off;
              continue;
            }
            if (find_mismatch(p.data(), p.size(), b.id(), 0) != -1) ++bad;
            std::this_thread::sleep_for(std::chrono::microseconds(50));
            if (b.tier() != Tier::Host) ++off;
          } catch (const std::exception&) {
            ++bad;
          }
        }
      });
    }
    threads.emplace_back([&] {
      for (int k = 0; !stop; ++k) {
        try {
          bufs[static_cast<std::size_t>(k % kBuffers)].evict(Tier::Disk);
        } catch (const OutOfMemory&) {
          // Pinned for the whole wait: documented.
        }
      }
    });
    threads.emplace_back([&] {
      // Allocations and frees beside them (the fast free races the claim).
      for (int k = 0; !stop; ++k) {
        Buffer x = pool.allocate(4 * KiB, Tier::Host, "beside");
        Pin p = x.pin(Tier::Host);
        fill_pattern(p.data(), p.size(), x.id(), 0);
      }
    });
    // The checker sees a pin counted on a record being moved.
    std::vector<std::string> seen;
    const auto until = std::chrono::steady_clock::now() + 1500ms;
    while (std::chrono::steady_clock::now() < until && off.load() == 0 && seen.empty()) {
      seen = pool.check_invariants();
      std::this_thread::sleep_for(1ms);
    }
    stop = true;
    for (auto& th : threads) th.join();
    out.pins = pins;
    out.pins_off_tier = off;
    out.bad_bytes = bad;
    out.invariants = seen.empty() ? pool.check_invariants() : seen;
  }
  detail::set_race_hook_for_testing(nullptr);
  return out;
}

TEST(RaceInterleaving, PinAgainstEvictMoveAndFreeKeepsEveryRule) {
  const RaceOutcome r = race_pins_against_moves(false);
  EXPECT_GT(r.pins, 100);
  EXPECT_EQ(r.pins_off_tier, 0) << "a pin was granted to a buffer being moved";
  EXPECT_EQ(r.bad_bytes, 0);
  EXPECT_EQ(r.invariants, std::vector<std::string>{});
}

// The same race with the pin's check and count as two steps: the test above
// must be able to fail.
TEST(RaceInterleaving, CatchesAPinThatChecksThenCountsInTwoSteps) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the broken ordering is a data race by design; ThreadSanitizer would stop the run on it";
#endif
  const RaceOutcome r = race_pins_against_moves(true);
  EXPECT_GT(r.pins_off_tier + r.bad_bytes + static_cast<int>(r.invariants.size()), 0)
      << "the broken ordering went unnoticed in " << r.pins << " pins";
}

}  // namespace
}  // namespace spillway
