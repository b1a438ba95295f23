// bench/graph_bench.cpp — the graph executor.
//
//   graph/dispatch/chain:<n>     Session::run of a chain of n Relu nodes on a
//                                one-element tensor, plan cached: the time
//                                per executed node (counter ns_per_node) is
//                                the executor's per-op overhead (pin inputs,
//                                allocate the output in the pool, unpin,
//                                free, hints).
//   graph/mlp/<memory>           one training step (forward, gradients,
//                                gradient-descent updates) of a two-layer
//                                MLP, plan cached:
//                                  fits      device tier holds everything
//                                  lru       device tier = 1/3 of the
//                                            step's device peak, LRU
//                                  lookahead the same budget, Lookahead
//                                            eviction (next-use hints)
//                                  lookahead/recorded  the same, the pool
//                                            recording its access log to a
//                                            temporary file (docs/record-
//                                            format.md): its time beside
//                                            lookahead's is the recording's
//                                            overhead; counter log_bytes_per_step
//                                Counter vs_fits = fits time / this time.
//   graph/branches/threads/<n>   4 independent compute-bound branches (a
//                                chain of 4 MatMuls of 256 x 256 each) summed
//                                at the end, run with n inter-op threads;
//                                counter speedup_vs_1_thread: the same graph
//                                on one thread, timed just before, / this.
//   graph/session_growth/<mode>  the experiment on a reduced setting: the
//                                mean step time of the last epoch
//                                (counter last_epoch_step_ms) and the
//                                least-squares growth of step time per epoch
//                                (growth_ms_per_epoch).
//
// The device tier is the simulated one (host memory): what is measured is
// the pool's policy and the executor's overhead, not PCIe. Sessions use the
// default inter-op threads (the hardware's) unless a name says otherwise;
// run with OPENBLAS_NUM_THREADS=1 (bench.sh does), so that the executor's
// threads are the only parallelism.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <filesystem>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "spillway/graph/graph.hpp"
#include "spillway/spillway.hpp"
#include "src/graph/session_growth.hpp"

namespace {

using namespace spillway;
using namespace spillway::graph;

PoolOptions bench_options(std::size_t device, EvictionPolicy policy, const std::string& record_file = {}) {
  PoolOptions o;
  o.record_file = record_file;
  o.device.backend = DeviceBackend::Simulated;
  o.device.capacity_bytes = device;
  o.host.capacity_bytes = std::size_t{1} << 30;
  o.disk.enabled = false;
  o.policy = policy;
  return o;
}

void BM_Dispatch(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Pool pool(bench_options(std::size_t{64} << 20, EvictionPolicy::Lru));
  Session s(pool);
  Output x = s.constant(1.0f);
  for (int i = 0; i < n; ++i) x = s.relu(x);
  s.run({x});  // plan once
  const auto before = s.stats().nodes_executed;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto out = s.run({x});
    benchmark::DoNotOptimize(out);
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  const double nodes = static_cast<double>(s.stats().nodes_executed - before);
  state.counters["ns_per_node"] = nodes > 0 ? ns / nodes : 0;
}

struct Mlp {
  std::unique_ptr<Pool> pool;
  std::unique_ptr<Session> s;
  Output x, y, loss;
  std::vector<Output> updates;
  Tensor xv, yv;
};

// x [batch, width] -> kLayers x relu(. W + b) [batch, width] -> (. Wout + bout) [batch, 1]:
// many medium tensors, so that one op's inputs and output (at most
// 3 x 256 KiB) fit in a third of the step's peak.
constexpr int kBatch = 128, kWidth = 256, kLayers = 4;

Mlp make_mlp(std::size_t device, EvictionPolicy policy, const std::string& record_file = {}) {
  Mlp m;
  m.pool = std::make_unique<Pool>(bench_options(device, policy, record_file));
  m.s = std::make_unique<Session>(*m.pool);
  Session& s = *m.s;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  auto randv = [&](std::size_t n) {
    std::vector<float> v(n);
    for (auto& f : v) f = nd(rng);
    return v;
  };
  m.x = s.placeholder("x", Shape{{kBatch, kWidth}});
  m.y = s.placeholder("y", Shape{{kBatch, 1}});
  std::vector<Output> vars;
  Output h = m.x;
  for (int l = 0; l < kLayers; ++l) {
    auto w = s.variable("w" + std::to_string(l), Shape{{kWidth, kWidth}}, randv(std::size_t{kWidth} * kWidth));
    auto b = s.variable("b" + std::to_string(l), Shape{{kWidth}}, randv(kWidth));
    h = s.relu(s.bias_add(s.matmul(h, w), b));
    vars.push_back(w);
    vars.push_back(b);
  }
  auto wo = s.variable("wo", Shape{{kWidth, 1}}, randv(kWidth));
  auto bo = s.variable("bo", Shape{{1}}, randv(1));
  vars.push_back(wo);
  vars.push_back(bo);
  auto logits = s.bias_add(s.matmul(h, wo), bo);
  m.loss = s.reduce_mean(s.logistic_loss(logits, m.y));
  auto grads = s.gradients(m.loss, vars);
  auto lr = s.constant(0.01f);
  for (std::size_t i = 0; i < vars.size(); ++i) m.updates.push_back(s.apply_gradient_descent(vars[i], grads[i], lr));
  m.xv = Tensor::from(*m.pool, Shape{{kBatch, kWidth}}, randv(std::size_t{kBatch} * kWidth));
  std::vector<float> labels(kBatch);
  for (int i = 0; i < kBatch; ++i) labels[static_cast<std::size_t>(i)] = static_cast<float>(i % 2);
  m.yv = Tensor::from(*m.pool, Shape{{kBatch, 1}}, labels);
  return m;
}

double step_seconds(Mlp& m, int steps) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) m.s->run({m.loss}, {{m.x, m.xv}, {m.y, m.yv}}, m.updates);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
}

// The device peak of one step when everything fits (measured once).
std::size_t fitting_peak() {
  static const std::size_t peak = [] {
    Mlp m = make_mlp(std::size_t{256} << 20, EvictionPolicy::Lru);
    step_seconds(m, 3);
    return static_cast<std::size_t>(m.pool->stats().tier(Tier::Device).peak_bytes);
  }();
  return peak;
}

double fitting_step_seconds() {
  static const double secs = [] {
    Mlp m = make_mlp(std::size_t{256} << 20, EvictionPolicy::Lru);
    step_seconds(m, 3);
    return step_seconds(m, 30);
  }();
  return secs;
}

// mode: 0 fits, 1 lru, 2 lookahead, 3 lookahead recorded.
void BM_Mlp(benchmark::State& state, int mode) {
  const std::size_t budget = mode == 0 ? std::size_t{256} << 20 : fitting_peak() / 3;
  std::string log;
  if (mode == 3) {
    // A name of its own per run: a second pool recording to one path in a
    // process would write path.1.
    static int runs = 0;
    log = (std::filesystem::temp_directory_path() /
           ("spillway-graph-bench-" + std::to_string(::getpid()) + "-" + std::to_string(runs++) + ".swlog"))
              .string();
  }
  Mlp m = make_mlp(budget, mode >= 2 ? EvictionPolicy::Lookahead : EvictionPolicy::Lru, log);
  step_seconds(m, 2);  // plan, warm
  const PoolStats before = m.pool->stats();
  for (auto _ : state) {
    m.s->run({m.loss}, {{m.x, m.xv}, {m.y, m.yv}}, m.updates);
  }
  const PoolStats after = m.pool->stats();
  std::uint64_t moved = 0;
  for (Tier a : {Tier::Device, Tier::Host}) {
    for (Tier b : {Tier::Device, Tier::Host}) {
      if (a != b) moved += after.move(a, b).bytes - before.move(a, b).bytes;
    }
  }
  state.counters["device_budget_MiB"] = static_cast<double>(budget) / (1 << 20);
  state.counters["step_peak_MiB"] = static_cast<double>(fitting_peak()) / (1 << 20);
  state.counters["moved_MiB_per_step"] =
      static_cast<double>(moved) / (1 << 20) / static_cast<double>(state.iterations());
  state.counters["fits_ms"] = fitting_step_seconds() * 1e3;
  state.counters["inter_op_threads"] = m.s->inter_op_threads();
  if (!log.empty()) {
    const double steps = static_cast<double>(state.iterations()) + 2;
    m.s.reset();
    m.pool.reset();  // writes the footer
    state.counters["log_bytes_per_step"] = static_cast<double>(std::filesystem::file_size(log)) / steps;
    std::filesystem::remove(log);
  }
}

// Four independent branches; their sum is fetched.
double branches_seconds(unsigned threads, int runs) {
  Pool pool(bench_options(std::size_t{64} << 20, EvictionPolicy::Lru));
  SessionOptions so;
  so.inter_op_threads = threads;
  Session s(pool, so);
  constexpr int kN = 256;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  std::vector<Output> ends;
  for (int b = 0; b < 4; ++b) {
    std::vector<float> v(std::size_t{kN} * kN);
    for (auto& f : v) f = u(rng);
    Output m = s.constant(Shape{{kN, kN}}, v);
    for (int i = 0; i < 4; ++i) m = s.matmul(m, m);
    ends.push_back(s.reduce_mean(m));
  }
  Output total = s.add(s.add(ends[0], ends[1]), s.add(ends[2], ends[3]));
  s.run({total});  // plan, warm
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) benchmark::DoNotOptimize(s.run({total}));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / runs;
}

// Each iteration times one thread and then `threads` threads back to back
// (the machine may be shared: pairs keep the ratio honest); the time is the
// latter's, the counter the median ratio.
void BM_Branches(benchmark::State& state) {
  const auto threads = static_cast<unsigned>(state.range(0));
  branches_seconds(threads, 2);  // warm: the BLAS, the pool's pages
  std::vector<double> ratios;
  for (auto _ : state) {
    const double one = branches_seconds(1, 5);
    const double many = branches_seconds(threads, 5);
    state.SetIterationTime(many);
    ratios.push_back(one / many);
  }
  std::sort(ratios.begin(), ratios.end());
  state.counters["inter_op_threads"] = threads;
  state.counters["speedup_vs_1_thread"] = ratios.empty() ? 0 : ratios[ratios.size() / 2];
}

void BM_SessionGrowth(benchmark::State& state, GrowthMode mode) {
  GrowthOptions o;
  o.epochs = 40;
  o.steps_per_epoch = 5;
  std::vector<EpochRecord> rows;
  for (auto _ : state) {
    PoolOptions po;
    po.device.backend = DeviceBackend::Simulated;
    po.device.capacity_bytes = 256 << 10;
    po.host.capacity_bytes = 512 << 10;
    Pool pool(po);
    Session s(pool);
    rows = run_session_growth(s, o, mode);
  }
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& r : rows) {
    sx += r.epoch;
    sy += r.step_ms;
    sxx += double(r.epoch) * r.epoch;
    sxy += r.epoch * r.step_ms;
  }
  const double n = static_cast<double>(rows.size());
  state.counters["last_epoch_step_ms"] = rows.empty() ? 0 : rows.back().step_ms;
  state.counters["first_epoch_step_ms"] = rows.empty() ? 0 : rows.front().step_ms;
  state.counters["growth_ms_per_epoch"] = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  state.counters["graph_nodes"] = rows.empty() ? 0 : static_cast<double>(rows.back().graph_nodes);
}

}  // namespace

BENCHMARK(BM_Dispatch)->Name("graph/dispatch/chain")->Arg(1)->Arg(100)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Mlp, fits, 0)->Name("graph/mlp/fits")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Mlp, lru, 1)->Name("graph/mlp/lru")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Mlp, lookahead, 2)->Name("graph/mlp/lookahead")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Mlp, lookahead_recorded, 3)
    ->Name("graph/mlp/lookahead/recorded")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Branches)->Name("graph/branches/threads")->Arg(2)->Iterations(5)->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SessionGrowth, leaky, GrowthMode::Leaky)
    ->Name("graph/session_growth/leaky")->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
BENCHMARK_CAPTURE(BM_SessionGrowth, clear, GrowthMode::Clear)
    ->Name("graph/session_growth/clear")->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();

BENCHMARK_MAIN();
