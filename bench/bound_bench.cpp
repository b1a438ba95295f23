// bench/bound_bench.cpp — the offline bound (src/offline/bound.hpp) on a
// synthetic 10^7-event access log built in memory: how long
// compute_bounds() takes for both boundaries (docs/bound.md quotes it).
//
// The log: 200,000 buffers allocated first (70% preferring the device),
// then pin/unpin pairs until the log has the events asked for; a skewed
// choice of buffer (a few are hot), 20% of pins on the host tier, 25%
// ReadWrite, one pair in ten overlapping another buffer's pin. Sizes are
// log-uniform from 4 KiB to 1 MiB, or all 64 KiB (the equal-size case,
// where Belady's MIN runs too). Budgets: device 5% and host 20% of the bytes.
//
//   build/release/bench/bound_bench --benchmark_filter=BM_Bound
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>

#include "src/offline/bound.hpp"
#include "src/record/access_log.hpp"

namespace {

using spillway::Access;
using spillway::Tier;
using spillway::record::AccessLog;
using spillway::record::Event;
using spillway::record::EventKind;

AccessLog synthetic_log(std::size_t events, bool equal_sizes, std::uint64_t* total_bytes) {
  constexpr std::uint64_t kBuffers = 200000;
  std::mt19937_64 rng(20);
  std::uniform_real_distribution<double> u(0, 1);
  AccessLog log;
  log.program = "bound_bench";
  log.events.reserve(events + 4);
  *total_bytes = 0;
  auto push = [&](EventKind k, std::uint64_t id, Tier t, Access a, std::uint64_t v = 0) {
    log.events.push_back(
        Event{.kind = k, .tier = t, .access = a, .time_ns = log.events.size(), .buffer = id, .value = v});
  };
  for (std::uint64_t id = 1; id <= kBuffers; ++id) {
    const std::uint64_t bytes =
        equal_sizes ? 64 * 1024 : static_cast<std::uint64_t>(4096.0 * std::pow(256.0, u(rng)));
    *total_bytes += bytes;
    push(EventKind::Allocate, id, u(rng) < 0.7 ? Tier::Device : Tier::Host, Access::ReadWrite, bytes);
  }
  auto pick = [&] {  // skewed: u^3 puts most accesses on the first buffers
    const double x = u(rng);
    return 1 + static_cast<std::uint64_t>(static_cast<double>(kBuffers - 1) * x * x * x);
  };
  while (log.events.size() + 4 <= events) {
    const std::uint64_t a = pick();
    const Tier ta = u(rng) < 0.2 ? Tier::Host : Tier::Device;
    const Access aa = u(rng) < 0.25 ? Access::ReadWrite : Access::Read;
    if (u(rng) < 0.1) {
      std::uint64_t b = pick();
      if (b == a) b = a % kBuffers + 1;
      push(EventKind::Pin, a, ta, aa);
      push(EventKind::Pin, b, Tier::Device, Access::Read);
      push(EventKind::Unpin, a, ta, aa);
      push(EventKind::Unpin, b, Tier::Device, Access::Read);
    } else {
      push(EventKind::Pin, a, ta, aa);
      push(EventKind::Unpin, a, ta, aa);
    }
  }
  return log;
}

void run(benchmark::State& state, bool equal_sizes) {
  std::uint64_t total = 0;
  const AccessLog log = synthetic_log(static_cast<std::size_t>(state.range(0)), equal_sizes, &total);
  spillway::offline::BoundOptions o;
  o.device_bytes = total / 20;
  o.host_bytes = total / 5;
  spillway::offline::BoundResult r;
  for (auto _ : state) {
    r = spillway::offline::compute_bounds(log, o);
    benchmark::DoNotOptimize(r);
  }
  state.counters["events"] = static_cast<double>(log.events.size());
  state.counters["device_lower_MiB"] = static_cast<double>(r.device.lower_bound_bytes) / (1 << 20);
  state.counters["device_upper_MiB"] = static_cast<double>(r.device.upper_bound_bytes) / (1 << 20);
  state.counters["memory_lower_MiB"] = static_cast<double>(r.memory.lower_bound_bytes) / (1 << 20);
  state.counters["memory_upper_MiB"] = static_cast<double>(r.memory.upper_bound_bytes) / (1 << 20);
  if (r.device.min_bytes) state.counters["device_min_MiB"] = static_cast<double>(*r.device.min_bytes) / (1 << 20);
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(log.events.size()), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_BoundVariableSizes(benchmark::State& state) { run(state, false); }
void BM_BoundEqualSizes(benchmark::State& state) { run(state, true); }

BENCHMARK(BM_BoundVariableSizes)->Arg(1000000)->Arg(10000000)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_BoundEqualSizes)->Arg(10000000)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
