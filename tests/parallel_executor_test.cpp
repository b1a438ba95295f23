// tests/parallel_executor_test.cpp — the graph executor running independent
// ops on several threads: results identical for any thread count (variable
// updates included, under memory pressure and Lookahead hints), branches
// really spread over the threads, and a failing op ends the run with its
// error and leaves the session usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <set>

#include "spillway/graph/graph.hpp"
#include "src/graph/session_growth.hpp"
#include "test_util.hpp"

namespace spillway::graph {
namespace {

using spillway::testing::ScratchDir;

std::vector<float> random_values(std::size_t n, std::uint64_t seed, float scale = 0.1f) {
  return spillway::testing::random_floats(n, seed, scale);
}

PoolOptions tight(const std::string& dir, std::size_t device, EvictionPolicy policy) {
  PoolOptions o = spillway::testing::small_options(dir, device, 4 << 20);
  o.policy = policy;
  o.pressure_wait = std::chrono::milliseconds(5000);
  return o;
}

struct Trained {
  std::vector<float> losses;
  Checkpoint weights;
};

// A two-branch MLP (the branches share the input and meet at the loss)
// trained for a few steps; every float of every loss and weight is kept.
Trained train(Pool& pool, unsigned threads, int steps) {
  SessionOptions so;
  so.inter_op_threads = threads;
  Session s(pool, so);
  constexpr int kBatch = 32, kIn = 48, kHidden = 64;
  auto x = s.placeholder("x", Shape{{kBatch, kIn}});
  auto y = s.placeholder("y", Shape{{kBatch, 1}});
  std::vector<Output> vars;
  std::vector<Output> heads;
  for (int b = 0; b < 2; ++b) {
    const std::string n = std::to_string(b);
    auto w1 = s.variable("w1_" + n, Shape{{kIn, kHidden}}, random_values(kIn * kHidden, 10 + b));
    auto b1 = s.variable("b1_" + n, Shape{{kHidden}}, random_values(kHidden, 20 + b));
    auto w2 = s.variable("w2_" + n, Shape{{kHidden, 1}}, random_values(kHidden, 30 + b));
    heads.push_back(s.matmul(s.relu(s.bias_add(s.matmul(x, w1), b1)), w2));
    for (auto v : {w1, b1, w2}) vars.push_back(v);
  }
  auto loss = s.reduce_mean(s.logistic_loss(s.add(heads[0], heads[1]), y));
  auto grads = s.gradients(loss, vars);
  auto lr = s.constant(0.5f);
  std::vector<Output> updates;
  for (std::size_t i = 0; i < vars.size(); ++i) updates.push_back(s.apply_gradient_descent(vars[i], grads[i], lr));
  auto xv = Tensor::from(pool, Shape{{kBatch, kIn}}, random_values(kBatch * kIn, 1, 1.0f));
  std::vector<float> labels(kBatch);
  for (int i = 0; i < kBatch; ++i) labels[static_cast<std::size_t>(i)] = static_cast<float>(i % 3 == 0);
  auto yv = Tensor::from(pool, Shape{{kBatch, 1}}, labels);
  Trained t;
  for (int i = 0; i < steps; ++i) {
    // The loss is read in the same run as the updates: the update of a
    // variable must wait for every read of it that comes first.
    t.losses.push_back(s.run({loss}, {{x, xv}, {y, yv}}, updates)[0].item());
  }
  t.weights = s.save();
  return t;
}

TEST(ParallelExecutor, ResultsAreTheSameForAnyThreadCount) {
  ScratchDir dir;
  Trained one, two, four;
  {
    Pool pool(tight(dir.path(), 64 << 20, EvictionPolicy::Lru));
    one = train(pool, 1, 12);
  }
  for (unsigned threads : {2u, 4u}) {
    Pool pool(tight(dir.path(), 64 << 20, EvictionPolicy::Lru));
    Trained t = train(pool, threads, 12);
    EXPECT_EQ(t.losses, one.losses) << threads << " threads";
    EXPECT_EQ(t.weights, one.weights) << threads << " threads";
    if (threads == 2) two = std::move(t);
  }
  EXPECT_LT(one.losses.back(), one.losses.front()) << "the model did not learn";
}

// Under a device budget smaller than one step's working set, with the
// Lookahead policy reading the executor's next-use hints while several ops
// run: the same floats, and bytes really moved.
TEST(ParallelExecutor, HintsAndEvictionsUnderPressureChangeNothing) {
  ScratchDir dir;
  Trained base;
  {
    Pool pool(tight(dir.path(), 64 << 20, EvictionPolicy::Lookahead));
    base = train(pool, 1, 6);
  }
  for (EvictionPolicy policy : {EvictionPolicy::Lookahead, EvictionPolicy::Lru}) {
    Pool pool(tight(dir.path(), 96 << 10, policy));
    Trained t = train(pool, 2, 6);
    EXPECT_EQ(t.losses, base.losses);
    EXPECT_EQ(t.weights, base.weights);
    EXPECT_GT(pool.stats().move(Tier::Device, Tier::Host).moves, 0u) << "no pressure: the test tests nothing";
    EXPECT_TRUE(pool.check_invariants().empty());
  }
}

// Every NodeBegin event's thread, from a pool's trace.
class ThreadsSink final : public TraceSink {
 public:
  void record(const TraceEvent& e) override {
    if (e.kind != TraceKind::NodeBegin) return;
    std::lock_guard lk(mu);
    threads.insert(e.thread);
    names += e.label + "@" + std::to_string(e.thread) + " ";
  }
  std::mutex mu;
  std::set<std::uint32_t> threads;
  std::string names;
};

TEST(ParallelExecutor, IndependentBranchesRunOnSeveralThreads) {
  ScratchDir dir;
  PoolOptions o = spillway::testing::small_options(dir.path(), 64 << 20, 64 << 20);
  for (unsigned threads : {1u, 2u}) {
    Pool pool(o);
    auto sink = std::make_shared<ThreadsSink>();
    pool.set_trace(sink);
    SessionOptions so;
    so.inter_op_threads = threads;
    Session s(pool, so);
    constexpr int kN = 192;
    std::vector<Output> branches;
    for (int b = 0; b < 4; ++b) {
      Output m = s.constant(Shape{{kN, kN}}, random_values(kN * kN, 100 + b));
      for (int i = 0; i < 6; ++i) m = s.matmul(m, m);
      branches.push_back(s.reduce_mean(m));
    }
    Output total = s.add(s.add(branches[0], branches[1]), s.add(branches[2], branches[3]));
    // Three runs: a worker that the machine did not schedule during one run
    // (it is shared) does not fail the test; one that never takes a branch does.
    float first = 0;
    for (int run = 0; run < 3; ++run) {
      const float v = s.run({total})[0].item();
      if (run == 0) first = v;
      EXPECT_EQ(v, first);
    }
    pool.set_trace(nullptr);  // delivers every event
    EXPECT_EQ(sink->threads.size(), threads) << "ops ran on " << sink->threads.size() << " threads: " << sink->names;
  }
}

TEST(ParallelExecutor, AFailingOpEndsTheRunWithItsErrorAndTheSessionGoesOn) {
  ScratchDir dir;
  PoolOptions o = spillway::testing::small_options(dir.path(), 256 << 10, 256 << 10);
  o.disk.enabled = false;
  o.pressure_wait = std::chrono::milliseconds(50);
  Pool pool(o);
  SessionOptions so;
  so.inter_op_threads = 2;
  Session s(pool, so);
  auto small = s.constant(Shape{{4}}, std::vector<float>{1, 2, 3, 4});
  std::vector<Output> ok;
  for (int i = 0; i < 6; ++i) ok.push_back(s.relu(small));
  // Two 2 KiB feeds whose product (1 MiB) no tier can hold.
  auto col = s.placeholder("col", Shape{{512, 1}});
  auto row = s.placeholder("row", Shape{{1, 512}});
  auto too_big = s.matmul(col, row);
  std::vector<float> ones(512, 1.0f);
  auto colv = Tensor::from(pool, Shape{{512, 1}}, ones);
  auto rowv = Tensor::from(pool, Shape{{1, 512}}, ones);
  std::vector<Output> fetches = ok;
  fetches.push_back(too_big);
  EXPECT_THROW(s.run(fetches, {{col, colv}, {row, rowv}}), OutOfMemory);
  // Nothing of the failed run is left behind, and the session still runs.
  const auto out = s.run(ok);
  for (const auto& t : out) EXPECT_EQ(t.values(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_THROW(s.run({too_big}, {{col, colv}, {row, rowv}}), OutOfMemory);
  EXPECT_TRUE(pool.check_invariants().empty());
  EXPECT_EQ(pool.stats().tier(Tier::Device).pinned_bytes + pool.stats().tier(Tier::Host).pinned_bytes, 0u);
}

// Four independent chains of 128x128 MatMuls (64 KiB each): every op pins
// 192 KiB (two inputs and its output) of a 512 KiB device tier, so two fit
// at once and three do not. Only equal-sized buffers, so the arena cannot
// fragment below one tensor.
struct Chains {
  Session& s;
  std::vector<Output> ends;
  explicit Chains(Session& session) : s(session) {
    for (int b = 0; b < 4; ++b) {
      const std::string n = std::to_string(b);
      Output c = s.variable("c" + n, Shape{{128, 128}}, random_values(128 * 128, 40 + b, 0.05f));
      Output d = s.variable("d" + n, Shape{{128, 128}}, random_values(128 * 128, 50 + b, 0.05f));
      Output m = s.matmul(c, d);
      for (int i = 0; i < 3; ++i) m = s.matmul(m, c);
      ends.push_back(m);
    }
  }
  std::vector<std::vector<float>> run() {
    std::vector<std::vector<float>> out;
    for (const auto& t : s.run(ends)) out.push_back(t.values());
    return out;
  }
};

std::vector<std::vector<float>> chains_on_one_thread(const std::string& dir) {
  Pool pool(spillway::testing::small_options(dir, 64 << 20, 64 << 20));
  SessionOptions so;
  so.inter_op_threads = 1;
  Session s(pool, so);
  return Chains(s).run();
}

// Every op's span (start, end), from a pool's trace.
class SpansSink final : public TraceSink {
 public:
  void record(const TraceEvent& e) override {
    if (e.kind != TraceKind::NodeEnd) return;
    std::lock_guard lk(mu);
    spans.emplace_back(e.time_ns - e.duration_ns, e.time_ns);
  }
  // The most spans open at one time.
  std::size_t most_at_once() {
    std::lock_guard lk(mu);
    std::vector<std::pair<std::uint64_t, int>> edges;
    for (auto [a, b] : spans) {
      edges.emplace_back(a, 1);
      edges.emplace_back(b, -1);
    }
    std::sort(edges.begin(), edges.end());  // an end before a start at the same time
    std::size_t open = 0, most = 0;
    for (auto [t, d] : edges) {
      open = static_cast<std::size_t>(static_cast<long>(open) + d);
      most = std::max(most, open);
    }
    return most;
  }
  std::mutex mu;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
};

// Four threads and four ready ops, but only two ops' pins fit the device
// tier together: never more than two run at once (without admission all
// four start, each pins part of what it needs, and they can wait on each
// other's room until pressure_wait ends in OutOfMemory).
TEST(ParallelExecutor, OpsThatDoNotFitTogetherTakeTurns) {
  ScratchDir dir;
  const auto expected = chains_on_one_thread(dir.path());
  PoolOptions o = spillway::testing::small_options(dir.path(), 512 << 10, 16 << 20);
  o.pressure_wait = std::chrono::milliseconds(10000);
  Pool pool(o);
  auto sink = std::make_shared<SpansSink>();
  pool.set_trace(sink);
  SessionOptions so;
  so.inter_op_threads = 4;
  Session s(pool, so);
  Chains chains(s);
  for (int run = 0; run < 3; ++run) EXPECT_EQ(chains.run(), expected) << "run " << run;
  pool.set_trace(nullptr);  // delivers every event
  EXPECT_EQ(sink->spans.size(), 3u * 16u);
  EXPECT_LE(sink->most_at_once(), 2u);
  EXPECT_EQ(pool.stats().errors.out_of_memory, 0u) << "an op waited for room another op held";
  EXPECT_GT(pool.stats().move(Tier::Device, Tier::Host).moves, 0u) << "no pressure: the test tests nothing";
  EXPECT_TRUE(pool.check_invariants().empty());
}

// Room the executor does not know of (a buffer pinned beside the session)
// lets it admit two ops that then cannot both get their pins: the one that
// runs out of room runs again alone, and the run still succeeds.
TEST(ParallelExecutor, AnOpOutOfRoomBesideAnotherRunsAgainAlone) {
  ScratchDir dir;
  const auto expected = chains_on_one_thread(dir.path());
  PoolOptions o = spillway::testing::small_options(dir.path(), 512 << 10, 16 << 20);
  o.pressure_wait = std::chrono::milliseconds(100);
  Pool pool(o);
  Buffer outside = pool.allocate(192 << 10, Tier::Device, "held beside the session");
  Pin held = outside.pin(Tier::Device, Access::ReadWrite);
  SessionOptions so;
  so.inter_op_threads = 2;
  Session s(pool, so);
  Chains chains(s);
  for (int run = 0; run < 3; ++run) EXPECT_EQ(chains.run(), expected) << "run " << run;
  EXPECT_TRUE(pool.check_invariants().empty());
}

TEST(ParallelExecutor, TheSessionGrowthLoopGivesTheSameLossesOnOneThreadAndOnTwo) {
  ScratchDir dir;
  GrowthOptions g;
  g.samples = 64;
  g.features = 8;
  g.epochs = 4;
  g.steps_per_epoch = 5;
  std::vector<EpochRecord> rows[2];
  for (unsigned threads : {1u, 2u}) {
    Pool pool(spillway::testing::small_options(dir.path(), 32 << 10, 64 << 10));
    SessionOptions so;
    so.inter_op_threads = threads;
    Session s(pool, so);
    rows[threads - 1] = run_session_growth(s, g, GrowthMode::Leaky);
  }
  ASSERT_EQ(rows[0].size(), rows[1].size());
  for (std::size_t e = 0; e < rows[0].size(); ++e) EXPECT_EQ(rows[0][e].loss, rows[1][e].loss) << "epoch " << e;
}

}  // namespace
}  // namespace spillway::graph
