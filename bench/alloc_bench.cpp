// bench/alloc_bench.cpp — allocate+free of resident host buffers beside
// glibc malloc, jemalloc and mimalloc of the same sizes, in the same run.
//
// Pool: host tier of 1 GiB, no device tier, no disk tier, proactive spilling
// off, so every allocation is placed on the host arena and never moves.
//
// Fairness: malloc/free of a block nobody touches can be elided or never
// fault a page, so the allocator baselines write one byte of every block.
// The pool's counterpart must pin the buffer to write that byte, so it is
// measured two ways:
//   BM_Pool_AllocTouchFree   allocate, pin(Host, ReadWrite), write 1 byte, unpin, free
//   BM_Pool_AllocFree        allocate, free (a library call the compiler cannot elide)
// and the baselines, each "allocate, write 1 byte, free":
//   BM_Malloc_TouchFree      glibc malloc/free (the process's own allocator)
//   BM_Jemalloc_TouchFree    jemalloc's malloc/free (Debian libjemalloc2)
//   BM_Mimalloc_TouchFree    mi_malloc/mi_free (Debian libmimalloc2.0)
// Sizes 64 B .. 64 MiB; every benchmark also runs on 2 threads
// (/threads:2, wall time over both threads' operations): the threads share
// the one pool, so that variant measures contention on the pool's lock (and,
// for the baselines, whatever their per-thread caches leave shared).
//
// jemalloc and mimalloc are loaded with dlopen(RTLD_LOCAL) at run time, so
// the program builds without them and they never replace the process's
// malloc (the benchmark harness and the pool keep using glibc's). Missing
// libraries make their benchmarks report an error naming the Debian package.
// dlsym() on the library's own handle finds the library's definition first,
// so dlsym(jemalloc, "malloc") is jemalloc's malloc, not glibc's (Debian's
// jemalloc exports its API unprefixed); main() checks that with dladdr() and
// records both libraries in the JSON context.
//
// Debian's libjemalloc.so.2 uses the initial-exec TLS model (2.6 KiB of
// static TLS), more than glibc keeps in reserve for dlopen(): dlopen fails
// with "cannot allocate memory in static TLS block". main() then re-executes
// the program once with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=8192
// added (reserves 8 KiB more static TLS per thread; nothing else changes),
// and records that in the context as static_tls_reexec.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

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

// ---- allocators loaded at run time ------------------------------------------

using MallocFn = void* (*)(std::size_t);
using FreeFn = void (*)(void*);

struct Allocator {
  const char* name;
  const char* soname;
  const char* package;
  const char* malloc_symbol;
  const char* free_symbol;
  MallocFn malloc_fn = nullptr;
  FreeFn free_fn = nullptr;
  std::string error{};     // why it is not usable ("" when it is)
  std::string context{};   // for the JSON context: path and version, or the error
};

Allocator g_jemalloc{"jemalloc", "libjemalloc.so.2", "libjemalloc2", "malloc", "free"};
Allocator g_mimalloc{"mimalloc", "libmimalloc.so.2", "libmimalloc2.0", "mi_malloc", "mi_free"};

constexpr const char* kReexecMarker = "SPILLWAY_ALLOC_BENCH_REEXEC";
constexpr const char* kStaticTlsTunable = "glibc.rtld.optional_static_tls=8192";

// Returns the dlopen error ("" on success).
std::string load(Allocator& a) {
  void* h = dlopen(a.soname, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = dlerror();
    return e ? e : "dlopen failed";
  }
  a.malloc_fn = reinterpret_cast<MallocFn>(dlsym(h, a.malloc_symbol));
  a.free_fn = reinterpret_cast<FreeFn>(dlsym(h, a.free_symbol));
  if (a.malloc_fn == nullptr || a.free_fn == nullptr) {
    a.malloc_fn = nullptr;
    a.free_fn = nullptr;
    return std::string(a.soname) + " has no " + a.malloc_symbol + "/" + a.free_symbol;
  }
  // The symbols must be the library's own, not the process's (glibc's) malloc:
  // dladdr() names the object that defines them, which must be the one dlopen
  // loaded.
  link_map* lm = nullptr;
  Dl_info mi{}, fi{};
  if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || lm == nullptr || lm->l_name == nullptr ||
      dladdr(reinterpret_cast<void*>(a.malloc_fn), &mi) == 0 ||
      dladdr(reinterpret_cast<void*>(a.free_fn), &fi) == 0 || mi.dli_fname == nullptr ||
      fi.dli_fname == nullptr || std::strcmp(mi.dli_fname, lm->l_name) != 0 ||
      std::strcmp(fi.dli_fname, lm->l_name) != 0) {
    a.malloc_fn = nullptr;
    a.free_fn = nullptr;
    return std::string(a.malloc_symbol) + "/" + a.free_symbol + " looked up in " + a.soname +
           " resolve to " + (mi.dli_fname ? mi.dli_fname : "?") + ", not to the library itself";
  }
  a.context = mi.dli_fname;
  if (std::strcmp(a.name, "jemalloc") == 0) {
    using Mallctl = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
    if (auto mallctl = reinterpret_cast<Mallctl>(dlsym(h, "mallctl"))) {
      const char* version = nullptr;
      std::size_t len = sizeof version;
      if (mallctl("version", &version, &len, nullptr, 0) == 0 && version != nullptr)
        a.context += std::string(", version ") + version;
    }
  } else if (auto mi_version = reinterpret_cast<int (*)()>(dlsym(h, "mi_version"))) {
    const int v = mi_version();  // e.g. 209 for 2.0.9
    a.context += ", version " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." +
                 std::to_string(v % 10);
  }
  return "";
}

// Loads both allocators; re-executes the program once when jemalloc needs
// more static TLS than glibc reserves (see the top of this file).
void load_allocators(char** argv) {
  for (Allocator* a : {&g_jemalloc, &g_mimalloc}) {
    const std::string e = load(*a);
    if (e.empty()) continue;
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (e.find("static TLS") != std::string::npos && std::getenv(kReexecMarker) == nullptr &&
        (tunables == nullptr || std::strstr(tunables, "optional_static_tls") == nullptr)) {
      std::string t = tunables && *tunables ? std::string(tunables) + ":" : std::string();
      t += kStaticTlsTunable;
      setenv("GLIBC_TUNABLES", t.c_str(), 1);
      setenv(kReexecMarker, "1", 1);
      std::fflush(nullptr);
      execv("/proc/self/exe", argv);
      // execv failed: go on without this allocator.
    }
    a->error = std::string(a->soname) + " not usable (" + e + "); " +
               (e.find("static TLS") != std::string::npos
                    ? std::string("run with GLIBC_TUNABLES=") + kStaticTlsTunable
                    : std::string("install the Debian package ") + a->package);
    a->context = "missing: " + a->error;
  }
}

// ---- the benchmarks ---------------------------------------------------------

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

// The same body through the loaded library's functions.
void touch_free(benchmark::State& state, const Allocator& a) {
  if (a.malloc_fn == nullptr) {
    state.SkipWithError(a.error.c_str());
    return;
  }
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const MallocFn alloc = a.malloc_fn;
  const FreeFn release = a.free_fn;
  for (auto _ : state) {
    void* m = alloc(bytes);
    benchmark::DoNotOptimize(m);
    static_cast<volatile unsigned char*>(m)[0] = 1;
    release(m);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Jemalloc_TouchFree(benchmark::State& state) { touch_free(state, g_jemalloc); }
void BM_Mimalloc_TouchFree(benchmark::State& state) { touch_free(state, g_mimalloc); }

// 64 B .. 64 MiB, 0.2 s per repetition (bench.sh runs 5): 60 benchmarks.
void sizes(benchmark::internal::Benchmark* b) {
  for (long s : {64L, 4L << 10, 64L << 10, 1L << 20, 16L << 20, 64L << 20}) b->Arg(s);
  b->MinTime(0.2);
}
// The same on 2 threads sharing the pool. Google Benchmark divides the wall
// time by the iterations of both threads together, so the reported time is
// the inverse of the combined throughput: an allocator that scales perfectly
// shows half its single-thread time (on 2 otherwise idle cores).
void sizes_2_threads(benchmark::internal::Benchmark* b) {
  sizes(b);
  b->Threads(2)->UseRealTime();
}

BENCHMARK(BM_Pool_AllocTouchFree)->Apply(sizes);
BENCHMARK(BM_Pool_AllocFree)->Apply(sizes);
BENCHMARK(BM_Malloc_TouchFree)->Apply(sizes);
BENCHMARK(BM_Jemalloc_TouchFree)->Apply(sizes);
BENCHMARK(BM_Mimalloc_TouchFree)->Apply(sizes);
BENCHMARK(BM_Pool_AllocTouchFree)->Apply(sizes_2_threads);
BENCHMARK(BM_Pool_AllocFree)->Apply(sizes_2_threads);
BENCHMARK(BM_Malloc_TouchFree)->Apply(sizes_2_threads);
BENCHMARK(BM_Jemalloc_TouchFree)->Apply(sizes_2_threads);
BENCHMARK(BM_Mimalloc_TouchFree)->Apply(sizes_2_threads);

}  // namespace

int main(int argc, char** argv) {
  load_allocators(argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("jemalloc", g_jemalloc.context);
  benchmark::AddCustomContext("mimalloc", g_mimalloc.context);
  benchmark::AddCustomContext("static_tls_reexec",
                              std::getenv(kReexecMarker) ? kStaticTlsTunable : "no");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
