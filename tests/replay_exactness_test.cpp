// NOT YET BUILT: needs rec20 (PoolOptions::record_file and the real decoder). After rec20 is
// merged, move this file to tests/replay_exactness_test.cpp (CMake globs tests/*_test.cpp).
// tests/replay_exactness_test.cpp — the acceptance test of `spillway replay`
// (issue 20): a single-threaded run recorded with PoolOptions::record_file,
// replayed with its own options and policy, moves exactly the bytes per tier
// pair that its footer says it moved. Under the conditions docs/replay.md
// gives: no proactive spilling (high_watermark 1.0), no prefetches, no disk
// quota. One plain pool workload, and the graph executor's session-growth
// loop on one inter-op thread under budgets that make it spill.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "spillway/graph/graph.hpp"
#include "src/graph/session_growth.hpp"
#include "src/offline/replay.hpp"
#include "src/record/log_reader.hpp"
#include "test_util.hpp"

namespace spillway {
namespace {

constexpr std::size_t KiB = 1024;

PoolOptions recording_options(const testing::ScratchDir& dir, const std::string& name, std::size_t device,
                              std::size_t host, EvictionPolicy policy) {
  PoolOptions o = testing::small_options(dir.path(), device, host);
  o.high_watermark = 1.0;  // condition 1: no proactive spilling
  o.policy = policy;
  o.record_file = dir.path() + "/" + name;
  return o;
}

// Replays the log at `path` with its own options; expects its footer's bytes.
offline::ReplayResult expect_exact_replay(const std::string& path, const testing::ScratchDir& dir) {
  const record::AccessLog log = record::read_access_log(path);
  EXPECT_TRUE(log.totals.has_value()) << path << " has no footer";
  if (log.totals) {
    EXPECT_EQ(log.totals->dropped, 0u);
    EXPECT_EQ(log.totals->events, log.events.size());
  }
  offline::ReplayOptions ro;
  ro.disk_dir = dir.path();
  const offline::ReplayResult r = offline::replay(log, ro);
  EXPECT_GT(r.moved_total, 0u) << "the recorded run did not spill: the test proves nothing";
  for (int f = 0; f < kTierCount; ++f) {
    for (int t = 0; t < kTierCount; ++t) {
      if (log.totals) {
        EXPECT_EQ(r.moved_bytes[f][t], log.totals->moved_bytes[f][t])
            << tier_name(static_cast<Tier>(f)) << "->" << tier_name(static_cast<Tier>(t));
        EXPECT_EQ(r.moves[f][t], log.totals->moves[f][t])
            << tier_name(static_cast<Tier>(f)) << "->" << tier_name(static_cast<Tier>(t));
      }
    }
  }
  EXPECT_TRUE(r.matches_recorded);
  return r;
}

// A pool workload: buffers of mixed sizes written, read back on both tiers,
// some rewritten, hinted, evicted explicitly and freed, in random order.
void plain_workload(Pool& pool) {
  std::mt19937_64 rng(11);
  std::vector<Buffer> live;
  for (int i = 0; i < 3000; ++i) {
    const unsigned op = rng() % 16;
    if (live.size() < 8 || op < 3) {
      Buffer b = pool.allocate(4 * KiB * (1 + rng() % 24), rng() % 4 == 0 ? Tier::Host : Tier::Device);
      {
        Pin p = b.pin(Tier::Device, Access::ReadWrite);
        testing::fill_pattern(p.data(), p.size(), b.id(), 0);
      }
      live.push_back(std::move(b));
    } else if (op < 4 && live.size() > 8) {
      const std::size_t k = rng() % live.size();
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    } else if (op < 5) {
      live[rng() % live.size()].evict(rng() % 2 == 0 ? Tier::Host : Tier::Disk);
    } else {
      Buffer& b = live[rng() % live.size()];
      const Tier t = rng() % 3 == 0 ? Tier::Host : Tier::Device;
      Pin p = b.pin(t, rng() % 4 == 0 ? Access::ReadWrite : Access::Read);
      if (op == 15) b.hint_next_use(static_cast<std::uint64_t>(i) + rng() % 50);
    }
  }
}

TEST(ReplayExactness, RecordedPoolWorkloadReplaysToItsRecordedBytes) {
  for (EvictionPolicy policy : {EvictionPolicy::Lru, EvictionPolicy::Lookahead}) {
    SCOPED_TRACE(policy == EvictionPolicy::Lru ? "lru" : "lookahead");
    testing::ScratchDir dir;
    const PoolOptions o = recording_options(dir, "plain.log", 256 * KiB, 512 * KiB, policy);
    {
      Pool pool(o);
      plain_workload(pool);
    }
    expect_exact_replay(o.record_file, dir);
  }
}

TEST(ReplayExactness, RecordedSingleThreadedGraphRunReplaysToItsRecordedBytes) {
  for (graph::GrowthMode mode : {graph::GrowthMode::Leaky, graph::GrowthMode::Clear}) {
    SCOPED_TRACE(graph::growth_mode_name(mode));
    testing::ScratchDir dir;
    // The budgets of the cli.session_growth test: the leaky graph's node
    // definitions spill to host and disk within a few epochs.
    const PoolOptions o = recording_options(dir, "graph.log", 64 * KiB, 128 * KiB, EvictionPolicy::Lru);
    graph::GrowthOptions go;
    go.epochs = 8;
    go.steps_per_epoch = 3;
    go.samples = 200;
    go.features = 8;
    {
      Pool pool(o);
      graph::SessionOptions so;
      so.inter_op_threads = 1;  // condition 4: one thread
      graph::Session session(pool, so);
      graph::run_session_growth(session, go, mode);
    }
    const offline::ReplayResult r = expect_exact_replay(o.record_file, dir);
    EXPECT_GT(r.pins_verified, 0u);
  }
}

}  // namespace
}  // namespace spillway
