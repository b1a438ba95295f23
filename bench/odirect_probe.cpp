// bench/odirect_probe.cpp — what O_DIRECT costs on the spill filesystem, with
// no spillway code in the way: the evidence behind two choices of the disk
// tier (docs/performance.md, notes of 2026-12-01).
//
//   odirect_probe [DIR]     (default: $SPILLWAY_SPILL_DIR, $TMPDIR, /var/tmp)
//
// 1. memory: 16 MiB O_DIRECT pwrite and pread from ordinary heap memory
//    (aligned_alloc, a fresh allocation each round, as a program would) and
//    from a 2 MiB-aligned mapping with MADV_HUGEPAGE (as the pool's host
//    arena). A block device takes a bounded number of memory segments per
//    request (/sys/block/*/queue/max_segments), so scattered 4 KiB pages can
//    cap each request below the size the device would take.
// 2. split: one pwrite of a record's payload against what the disk tier does
//    for a direct record hashed beside the IO on a helper thread — the back
//    half of the payload first, then the 4 KiB header block and the front
//    half in one pwritev — and against header block and payload in one
//    pwritev (the write the disk tier keeps in flight with io_uring), at 1,
//    16 and 64 MiB, into one file and into two files.
//
// 3. verify: what checking a record costs after its read: one pread, the
//    same followed by XXH3 of the bytes (what a fetch must do before the pin
//    returns), and followed by XXH3 of each half on its own core (a helper
//    thread woken as the read starts and spinning until the bytes are in,
//    so no wake-up is paid after the read: about the most two cores can
//    give), at 1, 4 and 16 MiB. On a device that completes a request's
//    pieces together, the hash cannot overlap the read it checks.
//
// Prints GB/s (10^9 B/s) per line. Plain POSIX and xxHash: no Google
// Benchmark, no spillway; the files are unlinked as soon as they are open.
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>
#endif

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "probe_util.hpp"

namespace {

using namespace spillway::probe;

// A 2 MiB-aligned anonymous mapping with transparent huge pages asked for.
void memory_kinds(const std::string& dir) {
  const std::size_t n = 16 * kMiB;
  const int rounds = 6, ops = 30;
  const int fd = open_direct(dir, "odirect-probe");
  HugeMemory huge_mem(n, 7);
  unsigned char* huge = huge_mem.p;
  all(true, fd, huge, n, 0);
  for (int round = 0; round < rounds; ++round) {
    auto* heap = static_cast<unsigned char*>(std::aligned_alloc(4096, n));
    if (heap == nullptr) die("aligned_alloc");
    std::memset(heap, 7, n);
    for (auto [name, mem] : {std::pair<const char*, unsigned char*>{"heap", heap}, {"huge pages", huge}}) {
      double w = 0, r = 0;
      for (int i = 0; i < ops; ++i) {
        auto t0 = Clock::now();
        all(true, fd, mem, n, 0);
        w += since(t0);
        t0 = Clock::now();
        all(false, fd, mem, n, 0);
        r += since(t0);
      }
      std::printf("memory  round %d  %-10s  16 MiB O_DIRECT pwrite %.2f GB/s  pread %.2f GB/s\n", round, name,
                  static_cast<double>(n) * ops / w / 1e9, static_cast<double>(n) * ops / r / 1e9);
    }
    std::free(heap);
  }
  ::close(fd);
}

void split_writes(const std::string& dir) {
  HugeMemory mem_map(64 * kMiB + kHuge, 7);
  unsigned char* mem = mem_map.p;
  unsigned char* header = mem + 64 * kMiB;  // a 4 KiB block of its own
  for (bool two_files : {false, true}) {
    const int raw_fd = open_direct(dir, "odirect-probe");
    const int rec_fd = two_files ? open_direct(dir, "odirect-probe") : raw_fd;
    for (std::size_t n : {kMiB, 16 * kMiB, 64 * kMiB}) {
      all(true, raw_fd, mem, n + 4096, 0);
      if (two_files) all(true, rec_fd, mem, n + 4096, 0);
      const int ops = n >= 64 * kMiB ? 20 : 200;
      double one = 0, split = 0, joined = 0;
      for (int i = 0; i < ops; ++i) {
        auto t0 = Clock::now();
        all(true, raw_fd, mem, n, 0);
        one += since(t0);
        t0 = Clock::now();
        struct iovec hv[2] = {{header, 4096}, {mem, n}};
        if (::pwritev(rec_fd, hv, 2, 0) != static_cast<ssize_t>(4096 + n)) die("pwritev");
        joined += since(t0);
        t0 = Clock::now();
        const std::size_t front = n / 2;
        all(true, rec_fd, mem + front, n - front, static_cast<off_t>(4096 + front));
        struct iovec v[2] = {{header, 4096}, {mem, front}};
        if (::pwritev(rec_fd, v, 2, 0) != static_cast<ssize_t>(4096 + front)) die("pwritev");
        split += since(t0);
      }
      std::printf("split   %-9s %2zu MiB  one pwrite %.2f GB/s  back half, then header block + front half %.2f GB/s  (%.0f%%)"
                  "  header block + payload in one pwritev %.2f GB/s (%.0f%%)\n",
                  two_files ? "two files" : "one file", n / kMiB, static_cast<double>(n) * ops / one / 1e9,
                  static_cast<double>(n) * ops / split / 1e9, 100.0 * one / split,
                  static_cast<double>(n) * ops / joined / 1e9, 100.0 * one / joined);
    }
    ::close(raw_fd);
    if (two_files) ::close(rec_fd);
  }
}

void verify_reads(const std::string& dir) {
  const int fd = open_direct(dir, "odirect-probe");
  HugeMemory mem_map(16 * kMiB, 7);
  unsigned char* mem = mem_map.p;
  all(true, fd, mem, 16 * kMiB, 0);
  // The helper sleeps while `go` is 0; 2 wakes it to spin (set as the
  // read starts, so the wake-up hides behind the read); 1 makes it hash
  // [job_p, job_p + job_n) into `back` and go back to 0; -1 ends it.
  std::atomic<int> go{0};
  std::atomic<std::uint64_t> back{0};
  const unsigned char* job_p = nullptr;
  std::size_t job_n = 0;
  // Each thread on a core of its own: woken, the helper would otherwise
  // start on the core of the thread that woke it, and spinning there it
  // delays that thread's wake-up when the read completes (measured: the
  // reads ran at less than half speed).
  const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t old_set;
  CPU_ZERO(&old_set);
  ::sched_getaffinity(0, sizeof old_set, &old_set);
  if (cores >= 2) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    ::sched_setaffinity(0, sizeof one, &one);
  }
  std::thread helper([&] {
    if (cores >= 2) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(1, &one);
      ::sched_setaffinity(0, sizeof one, &one);
    }
    for (;;) {
      go.wait(0, std::memory_order_acquire);
      int v;
      while ((v = go.load(std::memory_order_acquire)) == 2) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      }
      if (v < 0) return;
      if (v == 0) continue;
      back.store(XXH3_64bits(job_p, job_n), std::memory_order_relaxed);
      go.store(0, std::memory_order_release);
    }
  });
  std::uint64_t sink = 0;
  for (std::size_t n : {kMiB, 4 * kMiB, 16 * kMiB}) {
    const int ops = n >= 16 * kMiB ? 30 : 100;
    for (int round = 0; round < 3; ++round) {
      double t[3] = {0, 0, 0};
      for (int i = 0; i < ops; ++i) {
        for (int turn = 0; turn < 3; ++turn) {
          const int k = (i + turn) % 3;
          const auto t0 = Clock::now();
          if (k == 2) {
            go.store(2, std::memory_order_release);
            go.notify_one();
          }
          all(false, fd, mem, n, 0);
          if (k == 1) sink ^= XXH3_64bits(mem, n);
          if (k == 2) {
            job_p = mem + n / 2;
            job_n = n - n / 2;
            go.store(1, std::memory_order_release);
            const std::uint64_t front = XXH3_64bits(mem, n / 2);
            while (go.load(std::memory_order_acquire) != 0) {
#if defined(__x86_64__)
              __builtin_ia32_pause();
#endif
            }
            sink ^= front ^ back.load(std::memory_order_relaxed);
          }
          t[k] += since(t0);
        }
      }
      const double bytes = static_cast<double>(n) * ops;
      std::printf("verify  %2zu MiB round %d  pread %.2f GB/s  pread+XXH3 %.2f GB/s (%.0f%%)  "
                  "pread+XXH3 on two cores %.2f GB/s (%.0f%%)\n",
                  n / kMiB, round, bytes / t[0] / 1e9, bytes / t[1] / 1e9, 100.0 * t[0] / t[1],
                  bytes / t[2] / 1e9, 100.0 * t[0] / t[2]);
    }
  }
  go.store(-1, std::memory_order_release);
  go.notify_one();
  helper.join();
  ::sched_setaffinity(0, sizeof old_set, &old_set);
  if (sink == 42) std::printf("(%llu)\n", static_cast<unsigned long long>(sink));  // keeps the hashes
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = spill_dir(argc > 1 ? argv[1] : "");
  std::printf("odirect_probe: directory %s\n", dir.c_str());
  memory_kinds(dir);
  split_writes(dir);
  verify_reads(dir);
  return 0;
}
