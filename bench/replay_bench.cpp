// bench/replay_bench.cpp — how fast `spillway replay` drives a pool through
// an access log (src/offline/replay.hpp), on synthetic logs built in memory.
//
// Target: >= 10^6 events/s for a log whose buffers fit in memory (every pin
// a hit on the pool's fast path), with every pin's payload written or
// verified (a word per 4 KiB page and the last word, Note [Replay payloads]).
// The log: 256 buffers of 16 KiB on a 64 MiB simulated device, then pin and
// unpin pairs of random buffers (a quarter of them ReadWrite), a next-use
// hint every 8 pins and a marker every 4096 events. items_per_second counts
// events, pool construction and teardown included; the "replay_events_per_s"
// counter is the replay's own measure (first event to last, quiesced).
//
// BM_ReplaySpilling is the same log over a device tier a quarter of the
// working set and a host tier half of it: most pins fetch, many spill to
// disk. It measures the pool's moves more than replay, for comparison.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "src/offline/replay.hpp"

namespace {

using spillway::Access;
using spillway::Tier;
using spillway::record::AccessLog;
using spillway::record::Event;
using spillway::record::EventKind;

AccessLog synthetic_log(std::size_t events, std::size_t buffers, std::size_t bytes, unsigned threads,
                        std::uint64_t device, std::uint64_t host) {
  AccessLog log;
  log.program = "replay_bench";
  log.options.device_bytes = device;
  log.options.host_bytes = host;
  log.options.disk_bytes = spillway::kUnlimited;
  log.options.device_backend = "simulated";
  log.options.compression = spillway::Compression::None;
  log.markers.push_back("epoch");
  std::mt19937_64 rng(42);
  std::uint64_t t = 0;
  auto add = [&](EventKind k, std::uint64_t b, Tier tier, Access a, std::uint64_t value, std::uint32_t th) {
    log.events.push_back(
        Event{.kind = k, .tier = tier, .access = a, .thread = th, .time_ns = ++t, .buffer = b, .value = value});
  };
  log.events.reserve(events + 2 * buffers);
  for (std::size_t b = 1; b <= buffers; ++b) {
    const auto th = static_cast<std::uint32_t>(b % threads);
    add(EventKind::Allocate, b, Tier::Device, Access::Read, bytes, th);
    add(EventKind::Pin, b, Tier::Device, Access::ReadWrite, 0, th);
    add(EventKind::Unpin, b, Tier::Device, Access::ReadWrite, 0, th);
  }
  std::uint64_t step = 0;
  while (log.events.size() < events) {
    // Buffers stay with one recorded thread, as a program's would.
    const std::uint64_t b = 1 + rng() % buffers;
    const auto th = static_cast<std::uint32_t>(b % threads);
    const Access a = (rng() & 3) == 0 ? Access::ReadWrite : Access::Read;
    add(EventKind::Pin, b, Tier::Device, a, 0, th);
    add(EventKind::Unpin, b, Tier::Device, a, 0, th);
    if (++step % 8 == 0) add(EventKind::Hint, b, Tier::Host, Access::Read, step + rng() % 64, th);
    if (log.events.size() % 4096 < 3) add(EventKind::Marker, 0, Tier::Host, Access::Read, 0, th);
  }
  return log;
}

void run(benchmark::State& state, const AccessLog& log) {
  spillway::offline::ReplayOptions o;
  o.threads = static_cast<unsigned>(state.range(0));
  double events_per_s = 0;
  for (auto _ : state) {
    const auto r = spillway::offline::replay(log, o);
    events_per_s = r.events_per_second();
    benchmark::DoNotOptimize(r.moved_total);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * log.events.size()));
  state.counters["replay_events_per_s"] = events_per_s;
}

void BM_ReplayInMemory(benchmark::State& state) {
  static const AccessLog log = synthetic_log(1'000'000, 256, 16 << 10, 2, std::uint64_t{64} << 20,
                                             std::uint64_t{64} << 20);
  run(state, log);
}
BENCHMARK(BM_ReplayInMemory)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ReplaySpilling(benchmark::State& state) {
  // 256 x 16 KiB = 4 MiB working set: 1 MiB device, 2 MiB host.
  static const AccessLog log = synthetic_log(200'000, 256, 16 << 10, 2, std::uint64_t{1} << 20,
                                             std::uint64_t{2} << 20);
  run(state, log);
}
BENCHMARK(BM_ReplaySpilling)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
