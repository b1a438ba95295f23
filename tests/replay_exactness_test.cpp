// tests/replay_exactness_test.cpp — the acceptance test of `spillway replay`
// (issue 20): a single-threaded run recorded with PoolOptions::record_file,
// replayed with its own options and policy, moves exactly the bytes per tier
// pair that its footer says it moved. Two ways to get there (docs/replay.md,
// "Exact replay"): no background moves at all (high_watermark 1.0, no
// prefetches), or the default options with PoolOptions::deterministic_moves,
// which runs proactive spills, prefetches and cascades on the calling thread;
// the second is checked over five recordings of each workload under each
// policy, which must also agree among themselves. No disk quota in either.
#include <gtest/gtest.h>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "spillway/graph/graph.hpp"
#include "src/graph/session_growth.hpp"
#include "src/core/pool_core.hpp"
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

// The default options (proactive band 0.90 / 0.75 on) but for budgets and
// the policy, with deterministic_moves.
PoolOptions deterministic_options(const testing::ScratchDir& dir, const std::string& name, std::size_t device,
                                  std::size_t host, EvictionPolicy policy) {
  PoolOptions o = testing::small_options(dir.path(), device, host);
  o.policy = policy;
  o.deterministic_moves = true;
  o.record_file = dir.path() + "/" + name;
  return o;
}

// A pool workload: buffers of mixed sizes written, read back on both tiers,
// some rewritten, hinted, evicted explicitly and freed, in random order;
// with `prefetch`, some prefetched too.
void plain_workload(Pool& pool, bool prefetch = false) {
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
      if (prefetch && op == 14) live[rng() % live.size()].prefetch(rng() % 2 == 0 ? Tier::Device : Tier::Host);
    }
  }
}

// A sweep over a working set three times the device budget: each buffer is
// pinned in turn while the next two are hinted and prefetched to the
// device; even sweeps rewrite what they pin.
void sweep_workload(Pool& pool) {
  std::vector<Buffer> bufs;
  for (int i = 0; i < 16; ++i) {
    bufs.push_back(pool.allocate(48 * KiB, Tier::Device));
    Pin p = bufs.back().pin(Tier::Device, Access::ReadWrite);
    testing::fill_pattern(p.data(), p.size(), bufs.back().id(), 0);
  }
  std::uint64_t step = 0;
  for (int sweep = 1; sweep <= 6; ++sweep) {
    for (std::size_t i = 0; i < bufs.size(); ++i, ++step) {
      for (std::size_t k = 1; k <= 2; ++k) {
        Buffer& next = bufs[(i + k) % bufs.size()];
        next.hint_next_use(step + k);
        next.prefetch(Tier::Device);
      }
      const Access a = sweep % 2 == 0 ? Access::ReadWrite : Access::Read;
      Pin p = bufs[i].pin(Tier::Device, a);
      if (a == Access::ReadWrite) testing::fill_pattern(p.data(), p.size(), bufs[i].id(), static_cast<unsigned>(sweep));
    }
  }
}

// The session-growth loop on one inter-op thread (the executor prefetches
// the inputs of the next nodes and hints their next use).
void graph_workload(Pool& pool, graph::GrowthMode mode) {
  graph::GrowthOptions go;
  go.epochs = 8;
  go.steps_per_epoch = 3;
  go.samples = 200;
  go.features = 8;
  graph::SessionOptions so;
  so.inter_op_threads = 1;
  graph::Session session(pool, so);
  graph::run_session_growth(session, go, mode);
}

// Records `workload` `runs` times with deterministic moves, each run into a
// log of its own; every log replays to exactly its recorded bytes, and all
// the runs moved the same bytes (the program's own moves are a function of
// its calls).
template <class Workload>
void expect_deterministic_runs(const std::string& what, std::size_t device, std::size_t host,
                               EvictionPolicy policy, Workload workload, bool background = true, int runs = 5) {
  SCOPED_TRACE(what + (policy == EvictionPolicy::Lru ? " lru" : " lookahead"));
  std::optional<record::RecordedTotals> first;
  for (int run = 0; run < runs; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    testing::ScratchDir dir;
    const PoolOptions o = deterministic_options(dir, "det.log", device, host, policy);
    {
      Pool pool(o);
      workload(pool);
    }
    const record::AccessLog log = record::read_access_log(o.record_file);
    ASSERT_TRUE(log.totals.has_value());
    EXPECT_TRUE(log.options.deterministic_moves);
    offline::ReplayOptions ro;
    ro.disk_dir = dir.path();
    EXPECT_EQ(offline::exact_replay_obstacle(log, ro), "");
    const offline::ReplayResult r = expect_exact_replay(o.record_file, dir);
    EXPECT_TRUE(r.deterministic);
    EXPECT_TRUE(r.exact_expected) << r.exact_obstacle;
    std::uint64_t prefetches = 0;
    for (const record::Event& e : log.events) prefetches += e.kind == record::EventKind::Prefetch ? 1 : 0;
    const std::uint64_t proactive = r.stats.evictions[static_cast<std::size_t>(EvictionReason::Proactive)];
    // Background work must be in play, or this proves no more than the
    // tests above (without it, the recorded run and its replay race).
    if (background) EXPECT_GT(proactive + prefetches, 0u) << "no proactive spill and no prefetch";
    if (run == 0) {
      first = log.totals;
    } else {
      for (int f = 0; f < kTierCount; ++f) {
        for (int t = 0; t < kTierCount; ++t) {
          EXPECT_EQ(log.totals->moved_bytes[f][t], first->moved_bytes[f][t])
              << "run " << run << " moved other bytes than run 0, " << tier_name(static_cast<Tier>(f)) << "->"
              << tier_name(static_cast<Tier>(t));
        }
      }
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

TEST(ReplayExactness, DeterministicPlainWorkloadWithPrefetchesReplaysExactlyEveryTime) {
  for (EvictionPolicy policy : {EvictionPolicy::Lru, EvictionPolicy::Lookahead}) {
    expect_deterministic_runs("plain", 256 * KiB, 512 * KiB, policy, [](Pool& pool) { plain_workload(pool, true); });
  }
}

TEST(ReplayExactness, DeterministicPrefetchingSweepReplaysExactlyEveryTime) {
  for (EvictionPolicy policy : {EvictionPolicy::Lru, EvictionPolicy::Lookahead}) {
    expect_deterministic_runs("sweep", 256 * KiB, 384 * KiB, policy, sweep_workload);
  }
}

TEST(ReplayExactness, DeterministicGraphRunReplaysExactlyEveryTime) {
  for (EvictionPolicy policy : {EvictionPolicy::Lru, EvictionPolicy::Lookahead}) {
    for (graph::GrowthMode mode : {graph::GrowthMode::Leaky, graph::GrowthMode::Clear}) {
      // The budgets of the test above, the band on (these runs spill under
      // pressure only: the executor computes on the simulated device and
      // does not prefetch there).
      expect_deterministic_runs(graph::growth_mode_name(mode), 64 * KiB, 128 * KiB, policy,
                                [mode](Pool& pool) { graph_workload(pool, mode); }, false);
      // No device tier: the executor computes on the host and prefetches
      // each next node's inputs there; host spills to disk, proactively too.
      expect_deterministic_runs(std::string("host-only ") + graph::growth_mode_name(mode), 0, 16 * KiB, policy,
                                [mode](Pool& pool) { graph_workload(pool, mode); });
    }
  }
}

// What the replay report says about exactness, for logs that do and do not
// qualify.
TEST(ReplayExactness, TheReplaySaysWhenItMustBeExact) {
  record::AccessLog log;
  log.options.device_bytes = 1 << 20;
  log.options.host_bytes = 2 << 20;
  log.options.disk_bytes = kUnlimited;
  log.options.deterministic_moves = true;
  log.events.push_back({.kind = record::EventKind::Allocate, .tier = Tier::Device, .buffer = 1, .value = 4096});
  log.events.push_back({.kind = record::EventKind::Free, .buffer = 1});
  log.totals = record::RecordedTotals{};
  log.totals->events = 2;
  offline::ReplayOptions ro;
  EXPECT_EQ(offline::exact_replay_obstacle(log, ro), "");
  EXPECT_TRUE(offline::replay_pool_options(log, ro).deterministic_moves);
  ro.deterministic = false;
  EXPECT_FALSE(offline::replay_pool_options(log, ro).deterministic_moves);
  EXPECT_NE(offline::exact_replay_obstacle(log, ro).find("turns deterministic_moves off"), std::string::npos);
  ro = {};
  ro.policy = EvictionPolicy::Lookahead;
  EXPECT_NE(offline::exact_replay_obstacle(log, ro).find("policy"), std::string::npos);
  ro = {};
  ro.threads = 2;
  EXPECT_NE(offline::exact_replay_obstacle(log, ro).find("several threads"), std::string::npos);
  ro = {};
  record::AccessLog threaded = log;
  threaded.events[1].thread = 1;
  EXPECT_NE(offline::exact_replay_obstacle(threaded, ro).find("multi-threaded"), std::string::npos);
  record::AccessLog racing = log;
  racing.options.deterministic_moves = false;
  EXPECT_NE(offline::exact_replay_obstacle(racing, ro).find("not recorded with deterministic_moves"),
            std::string::npos);
  EXPECT_FALSE(offline::replay_pool_options(racing, ro).deterministic_moves);
  ro.deterministic = true;  // replaying a racing run deterministically does not make it exact
  EXPECT_NE(offline::exact_replay_obstacle(racing, ro), "");
  record::AccessLog quota = log;
  quota.options.disk_bytes = 64 << 20;
  EXPECT_NE(offline::exact_replay_obstacle(quota, {}).find("disk quota with compression"), std::string::npos);
  quota.options.compression = Compression::Lz4;
  EXPECT_NE(offline::exact_replay_obstacle(quota, {}), "");
  quota.options.compression = Compression::None;
  EXPECT_EQ(offline::exact_replay_obstacle(quota, {}), "");
  record::AccessLog no_footer = log;
  no_footer.totals.reset();
  EXPECT_NE(offline::exact_replay_obstacle(no_footer, {}).find("no footer"), std::string::npos);
}

// The threads that copied bytes for a move (RacePoint::MoveCopying).
std::mutex g_move_threads_mu;
std::vector<std::thread::id> g_move_threads;
void note_move_thread(detail::RacePoint p) {
  if (p != detail::RacePoint::MoveCopying) return;
  std::lock_guard<std::mutex> g(g_move_threads_mu);
  g_move_threads.push_back(std::this_thread::get_id());
}

// Fills the device tier with dirty 64 KiB buffers (a size no thread cache
// serves, so each allocation takes the slow path, which checks the band)
// until an allocation crosses the high watermark. Returns the tier's use
// (less thread caches) right after that allocation returned, and the
// proactive evictions counted by then.
std::pair<double, std::uint64_t> cross_high_watermark(Pool& pool, std::vector<Buffer>& live) {
  const double cap = static_cast<double>(pool.stats().tier(Tier::Device).capacity_bytes);
  for (int i = 0; i < 64; ++i) {
    live.push_back(pool.allocate(64 * KiB, Tier::Device));
    const PoolStats s = pool.stats();
    const TierStats& d = s.tier(Tier::Device);
    const double used = static_cast<double>(d.used_bytes);
    if (s.evictions[static_cast<std::size_t>(EvictionReason::Proactive)] > 0 || used > 0.9 * cap) {
      return {used / cap, s.evictions[static_cast<std::size_t>(EvictionReason::Proactive)]};
    }
    Pin p = live.back().pin(Tier::Device, Access::ReadWrite);
    testing::fill_pattern(p.data(), p.size(), live.back().id(), 0);
  }
  return {1.0, 0};
}

TEST(DeterministicMoves, ProactiveSpillsRunOnTheCallingThreadBeforeTheAllocationReturns) {
  testing::ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 4 << 20);
  o.deterministic_moves = true;
  {
    std::lock_guard<std::mutex> g(g_move_threads_mu);
    g_move_threads.clear();
  }
  detail::set_race_hook_for_testing(&note_move_thread);
  {
    Pool pool(o);
    std::vector<Buffer> live;
    const auto [use, proactive] = cross_high_watermark(pool, live);
    // The allocation that crossed 0.90 returned with the tier already back
    // under 0.75: the spills ran before it returned, not on a worker later.
    EXPECT_GT(proactive, 0u);
    EXPECT_LE(use, 0.75);
    EXPECT_EQ(pool.stats().move(Tier::Device, Tier::Host).moves, proactive);
    for (Buffer& b : live) {
      Pin p = b.pin(Tier::Device, Access::Read);  // nothing lost on the way
    }
    EXPECT_TRUE(pool.check_invariants().empty());
  }
  detail::set_race_hook_for_testing(nullptr);
  std::lock_guard<std::mutex> g(g_move_threads_mu);
  ASSERT_FALSE(g_move_threads.empty());
  for (std::thread::id id : g_move_threads) EXPECT_EQ(id, std::this_thread::get_id()) << "a move ran on an IO worker";
}

// The same without the mode: the allocation returns with the spills still
// to come, and they run on an IO worker (what makes a default-mode run's
// bytes moved depend on timing).
TEST(DeterministicMoves, WithoutItProactiveSpillsRunOnTheIoWorkers) {
  if (std::getenv("SPILLWAY_DETERMINISTIC") != nullptr) {
    GTEST_SKIP() << "SPILLWAY_DETERMINISTIC is set: every pool of this process runs deterministically";
  }
  testing::ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 4 << 20);
  {
    std::lock_guard<std::mutex> g(g_move_threads_mu);
    g_move_threads.clear();
  }
  detail::set_race_hook_for_testing(&note_move_thread);
  {
    Pool pool(o);
    std::vector<Buffer> live;
    cross_high_watermark(pool, live);
    pool.quiesce();
    EXPECT_GT(pool.stats().evictions[static_cast<std::size_t>(EvictionReason::Proactive)], 0u);
  }
  detail::set_race_hook_for_testing(nullptr);
  std::lock_guard<std::mutex> g(g_move_threads_mu);
  ASSERT_FALSE(g_move_threads.empty());
  for (std::thread::id id : g_move_threads) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(DeterministicMoves, TheEnvironmentVariableTurnsItOn) {
  testing::ScratchDir dir;
  ::setenv("SPILLWAY_DETERMINISTIC", "1", 1);
  {
    Pool pool(testing::small_options(dir.path()));
    EXPECT_TRUE(pool.options().deterministic_moves);
    EXPECT_TRUE(PoolOptions::from_env().deterministic_moves);
  }
  ::setenv("SPILLWAY_DETERMINISTIC", "maybe", 1);
  EXPECT_THROW(Pool{testing::small_options(dir.path())}, std::invalid_argument);
  ::unsetenv("SPILLWAY_DETERMINISTIC");
  Pool pool(testing::small_options(dir.path()));
  EXPECT_FALSE(pool.options().deterministic_moves);
}

}  // namespace
}  // namespace spillway
