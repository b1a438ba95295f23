// bench/pin_bench.cpp — the cost of a pin+unpin of a resident buffer, alone
// and from several threads at once.
//
// A Pin on a buffer that is already primary on the asked tier takes the
// pool's fast path: one compare-and-swap on the buffer's own state word to
// pin, one to unpin, and the calling thread's own counters; no pool lock
// (src/core/buffer_record.hpp). Target: <= 25 ns per pin+unpin, single
// thread; two threads on distinct buffers >= 1.8x one thread's throughput,
// eight threads on this 2-core machine >= 1.5x (no collapse); two threads
// pinning one buffer for reading >= 0.5x.
//
// Baselines, in the same run: two uncontended std::mutex lock/unlock round
// trips plus one std::shared_ptr copy and release (what a pin cost when the
// residency state sat under one mutex and each Pin kept the pool alive), and
// one atomic increment+decrement pair on the thread's own cache line or on
// one line all threads share (the floor of a design that counts pins in the
// buffer, and what sharing that counter costs).
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <unistd.h>

#include "spillway/spillway.hpp"

namespace {

using spillway::Access;
using spillway::Tier;

spillway::PoolOptions pin_options() {
  spillway::PoolOptions o;
  o.device.backend = spillway::DeviceBackend::Simulated;
  o.device.capacity_bytes = std::size_t{64} << 20;
  o.host.capacity_bytes = std::size_t{64} << 20;
  o.disk.enabled = false;
  return o;
}

// One pool per process, shared by every pin benchmark (and by the threads
// of the multi-threaded variant).
spillway::Pool& pool() {
  static spillway::Pool p(pin_options());
  return p;
}

// The measured loop: a 4 KiB buffer made resident on `tier` (written once),
// then pinned and unpinned. False (the benchmark marked skipped) when the
// buffer did not stay on `tier`.
bool pin_loop(benchmark::State& state, spillway::Pool& pool, Tier tier, Access access) {
  spillway::Buffer b = pool.allocate(4096, tier, "pin_bench");
  {
    spillway::Pin p = b.pin(tier, Access::ReadWrite);  // make sure it is resident on `tier`
    static_cast<unsigned char*>(p.data())[0] = 1;
  }
  if (b.tier() != tier) {
    state.SkipWithError("buffer is not resident on the asked tier");
    return false;
  }
  for (auto _ : state) {
    spillway::Pin p = b.pin(tier, access);
    benchmark::DoNotOptimize(p.data());
  }
  return true;
}

void BM_PinUnpin(benchmark::State& state, Tier tier, Access access) {
  if (!pin_loop(state, pool(), tier, access)) return;
  state.SetItemsProcessed(state.iterations());
}

void BM_PinUnpin_Host_Read(benchmark::State& s) { BM_PinUnpin(s, Tier::Host, Access::Read); }
void BM_PinUnpin_Host_ReadWrite(benchmark::State& s) { BM_PinUnpin(s, Tier::Host, Access::ReadWrite); }
void BM_PinUnpin_Device_Read(benchmark::State& s) { BM_PinUnpin(s, Tier::Device, Access::Read); }
void BM_PinUnpin_Device_ReadWrite(benchmark::State& s) {
  BM_PinUnpin(s, Tier::Device, Access::ReadWrite);
}

BENCHMARK(BM_PinUnpin_Host_Read)->MinWarmUpTime(0.1);
BENCHMARK(BM_PinUnpin_Host_ReadWrite)->MinWarmUpTime(0.1);
BENCHMARK(BM_PinUnpin_Device_Read)->MinWarmUpTime(0.1);
BENCHMARK(BM_PinUnpin_Device_ReadWrite)->MinWarmUpTime(0.1);
// Threads, each pinning its own buffer. Google Benchmark divides the wall
// time by the iterations of all threads together: the reported time is the
// inverse of the combined throughput.
BENCHMARK(BM_PinUnpin_Host_Read)->Threads(2)->UseRealTime();
BENCHMARK(BM_PinUnpin_Host_Read)->Threads(8)->UseRealTime();

// Threads pinning one buffer for reading: they share its state word.
spillway::Buffer& shared_buffer() {
  static spillway::Buffer b = [] {
    spillway::Buffer x = pool().allocate(4096, Tier::Host, "pin_bench shared");
    spillway::Pin p = x.pin(Tier::Host, Access::ReadWrite);
    static_cast<unsigned char*>(p.data())[0] = 1;
    return x;
  }();
  return b;
}

void BM_PinUnpin_SharedBuffer_Host_Read(benchmark::State& state) {
  spillway::Buffer& b = shared_buffer();
  for (auto _ : state) {
    spillway::Pin p = b.pin(Tier::Host, Access::Read);
    benchmark::DoNotOptimize(p.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PinUnpin_SharedBuffer_Host_Read)->Threads(1)->UseRealTime();
BENCHMARK(BM_PinUnpin_SharedBuffer_Host_Read)->Threads(2)->UseRealTime();

// ---- with the event recorder on ---------------------------------------------
//
// The same pin+unpin on a pool that records: each iteration records two
// events (Pin, Unpin) into the recorder's ring, which its own thread drains
// into a sink that only counts. (traced - untraced) / 2 is the cost of one
// recorded event; docs/performance.md and docs/profiling.md show it.

class CountingSink final : public spillway::TraceSink {
 public:
  void record(const spillway::TraceEvent&) override { ++events; }
  std::uint64_t events = 0;
};

void BM_PinUnpinTraced(benchmark::State& state, Tier tier, Access access) {
  spillway::Pool pool(pin_options());
  pool.set_trace(std::make_shared<CountingSink>());
  if (pin_loop(state, pool, tier, access)) state.SetItemsProcessed(state.iterations());
  pool.set_trace(nullptr);
}
void BM_PinUnpinTraced_Host_Read(benchmark::State& s) { BM_PinUnpinTraced(s, Tier::Host, Access::Read); }
BENCHMARK(BM_PinUnpinTraced_Host_Read)->MinWarmUpTime(0.1);

// ---- with the access log on ----------------------------------------------------
//
// The same pin+unpin on a pool that records its access log (PoolOptions::
// record_file, docs/record-format.md) to a temporary file: each iteration
// encodes two events into the thread's chunk; (recorded - plain) / 2 is the
// cost of one logged event, and the plain rows beside it the cost of the
// branch when recording is off.
void BM_PinUnpinRecorded(benchmark::State& state, Tier tier, Access access) {
  static int runs = 0;  // a file of its own per run (a second pool on one path writes path.1)
  const std::string log = "/tmp/spillway-pin-bench-" + std::to_string(::getpid()) + "-" + std::to_string(runs++) + ".swlog";
  {
    spillway::PoolOptions o = pin_options();
    o.record_file = log;
    spillway::Pool pool(o);
    if (pin_loop(state, pool, tier, access)) state.SetItemsProcessed(state.iterations());
  }
  ::unlink(log.c_str());
}
void BM_PinUnpinRecorded_Host_Read(benchmark::State& s) { BM_PinUnpinRecorded(s, Tier::Host, Access::Read); }
BENCHMARK(BM_PinUnpinRecorded_Host_Read)->MinWarmUpTime(0.1);

// ---- baseline -------------------------------------------------------------------

struct Floor {
  std::mutex mu;
  unsigned pins = 0;
};

void BM_Baseline_TwoMutexRoundTrips_SharedPtrCopy(benchmark::State& state) {
  static auto floor = std::make_shared<Floor>();
  for (auto _ : state) {
    std::shared_ptr<Floor> lease = floor;  // what a Pin holds
    {
      std::lock_guard lk(lease->mu);  // pin
      ++lease->pins;
    }
    benchmark::DoNotOptimize(lease.get());
    {
      std::lock_guard lk(lease->mu);  // unpin
      --lease->pins;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_TwoMutexRoundTrips_SharedPtrCopy)->MinWarmUpTime(0.1);
BENCHMARK(BM_Baseline_TwoMutexRoundTrips_SharedPtrCopy)->Threads(2)->UseRealTime();

// One atomic increment and decrement (acq_rel), as a pin count needs: on a
// line of the thread's own, or on one line every thread shares.
struct alignas(64) Counter {
  std::atomic<std::uint64_t> n{0};
};
Counter g_shared_counter;
Counter g_own_counters[64];

void BM_Baseline_AtomicPair_OwnLine(benchmark::State& state) {
  Counter& c = g_own_counters[state.thread_index() % 64];
  for (auto _ : state) {
    c.n.fetch_add(1, std::memory_order_acq_rel);
    c.n.fetch_sub(1, std::memory_order_acq_rel);
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_Baseline_AtomicPair_SharedLine(benchmark::State& state) {
  for (auto _ : state) {
    g_shared_counter.n.fetch_add(1, std::memory_order_acq_rel);
    g_shared_counter.n.fetch_sub(1, std::memory_order_acq_rel);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_AtomicPair_OwnLine)->Threads(1)->UseRealTime();
BENCHMARK(BM_Baseline_AtomicPair_OwnLine)->Threads(2)->UseRealTime();
BENCHMARK(BM_Baseline_AtomicPair_SharedLine)->Threads(2)->UseRealTime();

// Information: one hand-off to another thread and back through a mutex and a
// condition variable, the mechanism a pin that must move bytes uses to wait
// for an IO worker. It sets the fixed cost of every spill or fetch.
void BM_Component_CondvarRoundTrip(benchmark::State& state) {
  std::mutex m;
  std::condition_variable cv;
  int turn = 0;
  bool stop = false;
  std::thread peer([&] {
    std::unique_lock lk(m);
    for (;;) {
      cv.wait(lk, [&] { return turn == 1 || stop; });
      if (stop) return;
      turn = 0;
      cv.notify_all();
    }
  });
  for (auto _ : state) {
    std::unique_lock lk(m);
    turn = 1;
    cv.notify_all();
    cv.wait(lk, [&] { return turn == 0; });
  }
  {
    std::lock_guard lk(m);
    stop = true;
  }
  cv.notify_all();
  peer.join();
}
BENCHMARK(BM_Component_CondvarRoundTrip)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
