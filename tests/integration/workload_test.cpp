// tests/integration/workload_test.cpp — random workloads that verify every
// byte on every pin: one thread at 4x over-subscription, and 8 threads
// pinning and unpinning at random for a bounded time.
#include <gtest/gtest.h>

#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>

#include "../test_util.hpp"

namespace spillway {
namespace {

using namespace std::chrono_literals;
using testing::fill_pattern;
using testing::find_mismatch;

struct Slot {
  Buffer buf;
  std::uint64_t key = 0;
  std::uint64_t version = 0;
  std::shared_mutex mu;  // writers (ReadWrite pins) exclusive, readers shared
};

TEST(Workload, RandomOpsAtFourTimesOversubscriptionVerifyEveryByte) {
  testing::ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 2 << 20);
  Pool pool(o);
  std::mt19937_64 rng(12345);
  std::uniform_int_distribution<std::size_t> size_dist(1, 192 * 1024);
  // 4x the memory tiers together.
  const std::uint64_t target = 4ull * (3 << 20);
  std::vector<std::unique_ptr<Slot>> slots;
  std::uint64_t total = 0, next_key = 1;
  while (total < target) {
    auto s = std::make_unique<Slot>();
    const std::size_t n = size_dist(rng);
    s->key = next_key++;
    s->buf = pool.allocate(n, rng() % 2 ? Tier::Device : Tier::Host, "w");
    Pin p = s->buf.pin(rng() % 2 ? Tier::Device : Tier::Host, Access::ReadWrite);
    fill_pattern(p.data(), n, s->key, 0);
    total += n;
    slots.push_back(std::move(s));
  }
  std::uint64_t verified = 0;
  for (int op = 0; op < 3000; ++op) {
    Slot& s = *slots[rng() % slots.size()];
    const int kind = static_cast<int>(rng() % 10);
    const Tier where = rng() % 2 ? Tier::Device : Tier::Host;
    if (kind < 5) {
      Pin p = s.buf.pin(where, Access::Read);
      ASSERT_EQ(find_mismatch(p.data(), p.size(), s.key, s.version), -1) << "op " << op;
      verified += p.size();
    } else if (kind < 8) {
      Pin p = s.buf.pin(where, Access::ReadWrite);
      ASSERT_EQ(find_mismatch(p.data(), p.size(), s.key, s.version), -1) << "op " << op;
      fill_pattern(p.data(), p.size(), s.key, ++s.version);
      verified += p.size();
    } else if (kind == 8) {
      s.buf.evict(rng() % 2 ? Tier::Host : Tier::Disk);
    } else {
      s.buf.prefetch(where);
    }
  }
  for (auto& s : slots) {
    Pin p = s->buf.pin(Tier::Host, Access::Read);
    ASSERT_EQ(find_mismatch(p.data(), p.size(), s->key, s->version), -1);
  }
  const PoolStats st = pool.stats();
  EXPECT_GT(st.move(Tier::Host, Tier::Disk).moves, 0u);
  EXPECT_GT(st.move(Tier::Disk, Tier::Device).moves + st.move(Tier::Disk, Tier::Host).moves, 0u);
  EXPECT_EQ(st.errors.corruptions + st.errors.fetch_failures + st.errors.spill_write_failures, 0u);
  RecordProperty("bytes_verified", std::to_string(verified));
}

TEST(Workload, EightThreadsPinAndUnpinAtRandom) {
  testing::ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 2 << 20);
  o.pressure_wait = 5s;
  Pool pool(o);
  std::vector<std::unique_ptr<Slot>> slots;
  for (int i = 0; i < 48; ++i) {  // 48 x 128 KiB = 6 MiB, 2x the memory tiers
    auto s = std::make_unique<Slot>();
    s->key = 1000 + i;
    s->buf = pool.allocate(128 * 1024, Tier::Host, "t");
    Pin p = s->buf.pin(Tier::Host);
    fill_pattern(p.data(), p.size(), s->key, 0);
    slots.push_back(std::move(s));
  }
  std::atomic<bool> failed{false};
  std::atomic<std::uint64_t> pins{0};
  const auto stop = std::chrono::steady_clock::now() + 3s;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      while (std::chrono::steady_clock::now() < stop && !failed) {
        Slot& s = *slots[rng() % slots.size()];
        const Tier where = rng() % 2 ? Tier::Device : Tier::Host;
        try {
          if (rng() % 4 == 0) {
            std::unique_lock lk(s.mu);
            Pin p = s.buf.pin(where, Access::ReadWrite);
            if (find_mismatch(p.data(), p.size(), s.key, s.version) != -1) failed = true;
            fill_pattern(p.data(), p.size(), s.key, ++s.version);
          } else {
            std::shared_lock lk(s.mu);
            Pin p = s.buf.pin(where, Access::Read);
            if (find_mismatch(p.data(), p.size(), s.key, s.version) != -1) failed = true;
          }
          ++pins;
        } catch (const OutOfMemory&) {
          // Two threads holding the same buffer on different tiers: a bounded
          // wait that may end here. Anything else is a failure.
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(failed) << "a pin saw wrong bytes";
  EXPECT_GT(pins.load(), 100u);
  for (auto& s : slots) {
    Pin p = s->buf.pin(Tier::Host, Access::Read);
    EXPECT_EQ(find_mismatch(p.data(), p.size(), s->key, s->version), -1);
  }
  const PoolStats st = pool.stats();
  EXPECT_EQ(st.tier(Tier::Device).pinned_bytes + st.tier(Tier::Host).pinned_bytes, 0u)
      << "every pin was released";
}

}  // namespace
}  // namespace spillway
