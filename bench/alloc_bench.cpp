// bench/alloc_bench.cpp — allocate+free of resident host buffers beside
// glibc malloc/free of the same sizes, in the same run.
//
// Pool: host tier of 1 GiB, no device tier, no disk tier, proactive spilling
// off, so every allocation is placed on the host arena and never moves.
//
// Fairness: malloc/free of a block nobody touches can be elided or never
// fault a page, so the malloc baseline writes one byte of every block. The
// pool's counterpart must pin the buffer to write that byte, so it is
// measured two ways:
//   BM_Pool_AllocTouchFree   allocate, pin(Host, ReadWrite), write 1 byte, unpin, free
//   BM_Pool_AllocFree        allocate, free (a library call the compiler cannot elide)
// and the malloc baseline:
//   BM_Malloc_TouchFree      malloc, write 1 byte, free
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "spillway/spillway.hpp"

namespace {

using spillway::Access;
using spillway::Tier;

spillway::Pool& pool() {
  static spillway::Pool p([] {
    spillway::PoolOptions o;
    o.device.backend = spillway::DeviceBackend::None;
    o.host.capacity_bytes = std::size_t{1} << 30;
    o.disk.enabled = false;
    o.high_watermark = 1.0;  // no proactive spilling (there is nowhere to spill anyway)
    o.low_watermark = 0.75;
    return o;
  }());
  return p;
}

void BM_Pool_AllocTouchFree(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  spillway::Pool& p = pool();
  for (auto _ : state) {
    spillway::Buffer b = p.allocate(bytes, Tier::Host);
    {
      spillway::Pin pin = b.pin(Tier::Host, Access::ReadWrite);
      static_cast<volatile unsigned char*>(pin.data())[0] = 1;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Pool_AllocFree(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  spillway::Pool& p = pool();
  for (auto _ : state) {
    spillway::Buffer b = p.allocate(bytes, Tier::Host);
    benchmark::DoNotOptimize(b.id());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Malloc_TouchFree(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* m = std::malloc(bytes);
    benchmark::DoNotOptimize(m);
    static_cast<volatile unsigned char*>(m)[0] = 1;
    std::free(m);
  }
  state.SetItemsProcessed(state.iterations());
}

void sizes(benchmark::internal::Benchmark* b) {
  for (long s : {4L << 10, 64L << 10, 1L << 20, 16L << 20}) b->Arg(s);
}

BENCHMARK(BM_Pool_AllocTouchFree)->Apply(sizes);
BENCHMARK(BM_Pool_AllocFree)->Apply(sizes);
BENCHMARK(BM_Malloc_TouchFree)->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
