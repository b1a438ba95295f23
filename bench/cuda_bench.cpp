// bench/cuda_bench.cpp — the CUDA device tier on a real GPU, each beside the
// CUDA runtime doing the same thing directly, in the same run:
//
//   spill_d2h/<size>     Buffer::evict(Tier::Host) of a device buffer (timed);
//                        untimed between iterations: pin(Device, ReadWrite)
//                        brings it back and drops the host copy.
//   fetch_h2d/<size>     pin(Device, Read) of a buffer on host (timed); the
//                        untimed evict(Host) in between is free (clean copy).
//   memcpy_d2h/<size>    cudaMemcpyAsync VRAM -> pinned host + stream sync.
//   memcpy_h2d/<size>    cudaMemcpyAsync pinned host -> VRAM + stream sync.
//   alloc_free/<size>    Pool::allocate on the device tier + free.
//   malloc_async/<size>  cudaMallocAsync + cudaFreeAsync on one stream
//                        (the driver's stream-ordered pool), synchronised
//                        every 64 iterations.
//   spill_and_fetch/<size>  two threads: one spills device -> host while the
//                        other fetches host -> device; bytes/s per thread is
//                        the bandwidth in each direction.
//
// Without the CUDA backend, or without a GPU, it says why and exits 0.
// Run: build/release/bench/cuda_bench (scripts/bench_gpu.sh keeps the output).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "spillway/spillway.hpp"
#include "tiers/device/cuda_backend.hpp"

#if defined(SPILLWAY_HAVE_CUDA)
#include <cuda_runtime.h>

#include <memory>
#include <vector>

namespace {

using namespace spillway;

constexpr std::int64_t kSizes[] = {1 << 20, 16 << 20, 256 << 20};

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "cuda_bench: %s: %s\n", what, cudaGetErrorString(err));
    std::abort();
  }
}

std::unique_ptr<Pool> make_pool(std::size_t device, std::size_t host) {
  PoolOptions o;
  o.device.backend = DeviceBackend::Cuda;
  o.device.capacity_bytes = device;
  o.host.capacity_bytes = host;
  o.disk.enabled = false;
  o.high_watermark = 1.0;
  o.low_watermark = 1.0;
  return std::make_unique<Pool>(o);
}

void BM_SpillDeviceToHost(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto pool = make_pool(2 * n, 2 * n);
  Buffer b = pool->allocate(n, Tier::Device, "bench");
  for (auto _ : state) {
    b.evict(Tier::Host);
    state.PauseTiming();
    { Pin p = b.pin(Tier::Device, Access::ReadWrite); }
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

void BM_FetchHostToDevice(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto pool = make_pool(2 * n, 2 * n);
  Buffer b = pool->allocate(n, Tier::Host, "bench");
  for (auto _ : state) {
    { Pin p = b.pin(Tier::Device, Access::Read); }
    state.PauseTiming();
    b.evict(Tier::Host);  // free: the Read pin kept the host copy clean
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

void BM_MemcpyAsync(benchmark::State& state, cudaMemcpyKind kind) {
  const auto n = static_cast<std::size_t>(state.range(0));
  void* host = nullptr;
  void* dev = nullptr;
  cudaStream_t stream = nullptr;
  check(cudaHostAlloc(&host, n, cudaHostAllocPortable), "cudaHostAlloc");
  check(cudaMalloc(&dev, n), "cudaMalloc");
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  for (auto _ : state) {
    if (kind == cudaMemcpyDeviceToHost) check(cudaMemcpyAsync(host, dev, n, kind, stream), "copy");
    else check(cudaMemcpyAsync(dev, host, n, kind, stream), "copy");
    check(cudaStreamSynchronize(stream), "sync");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
  cudaStreamDestroy(stream);
  cudaFree(dev);
  cudaFreeHost(host);
}
void BM_MemcpyD2H(benchmark::State& s) { BM_MemcpyAsync(s, cudaMemcpyDeviceToHost); }
void BM_MemcpyH2D(benchmark::State& s) { BM_MemcpyAsync(s, cudaMemcpyHostToDevice); }

void BM_DeviceAllocFree(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto pool = make_pool(4 * n, 1 << 20);
  { Buffer warm = pool->allocate(n, Tier::Device); }  // map the first chunk outside timing
  for (auto _ : state) {
    Buffer b = pool->allocate(n, Tier::Device, "bench");
    benchmark::DoNotOptimize(b.id());
  }
}

void BM_MallocAsyncFreeAsync(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  std::int64_t i = 0;
  for (auto _ : state) {
    void* p = nullptr;
    check(cudaMallocAsync(&p, n, stream), "cudaMallocAsync");
    check(cudaFreeAsync(p, stream), "cudaFreeAsync");
    if (++i % 64 == 0) check(cudaStreamSynchronize(stream), "sync");
  }
  check(cudaStreamSynchronize(stream), "sync");
  cudaStreamDestroy(stream);
}

void BM_SpillAndFetch(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  static std::unique_ptr<Pool> pool;
  static std::vector<Buffer> bufs;
  if (state.thread_index() == 0) {
    pool = make_pool(4 * n, 4 * n);
    bufs.clear();
    bufs.push_back(pool->allocate(n, Tier::Device, "spiller"));
    bufs.push_back(pool->allocate(n, Tier::Host, "fetcher"));
  }
  // Google Benchmark starts every thread's loop together after setup.
  for (auto _ : state) {
    if (state.thread_index() == 0) {
      bufs[0].evict(Tier::Host);
      Pin p = bufs[0].pin(Tier::Device, Access::ReadWrite);  // back up, host copy dropped
    } else {
      { Pin p = bufs[1].pin(Tier::Device, Access::ReadWrite); }
      bufs[1].evict(Tier::Host);
    }
  }
  // Per thread and iteration, n bytes go down and n come back up.
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 2 * n));
}

void register_all() {
  for (auto n : kSizes) {
    benchmark::RegisterBenchmark("spill_d2h", BM_SpillDeviceToHost)->Arg(n)->UseRealTime();
    benchmark::RegisterBenchmark("memcpy_d2h", BM_MemcpyD2H)->Arg(n)->UseRealTime();
    benchmark::RegisterBenchmark("fetch_h2d", BM_FetchHostToDevice)->Arg(n)->UseRealTime();
    benchmark::RegisterBenchmark("memcpy_h2d", BM_MemcpyH2D)->Arg(n)->UseRealTime();
    benchmark::RegisterBenchmark("alloc_free", BM_DeviceAllocFree)->Arg(n);
    benchmark::RegisterBenchmark("malloc_async", BM_MallocAsyncFreeAsync)->Arg(n);
    benchmark::RegisterBenchmark("spill_and_fetch", BM_SpillAndFetch)->Arg(n)->Threads(2)->UseRealTime();
  }
}

}  // namespace
#endif

int main(int argc, char** argv) {
  std::string why;
  if (!spillway::detail::cuda::device_available(0, &why)) {
    std::printf("cuda_bench: skipped: %s\n", why.c_str());
    return 0;
  }
#if defined(SPILLWAY_HAVE_CUDA)
  std::printf("cuda_bench: %s\n", spillway::detail::cuda::describe_device(0).c_str());
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
#endif
  return 0;
}
