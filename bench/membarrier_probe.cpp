// bench/membarrier_probe.cpp — what an asymmetric lock's slow side would
// cost here: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which makes every
// running thread of the process execute a full barrier, so that a lock's
// owner could mark itself busy with plain stores (docs/performance.md, notes
// of 2026-12-07, on the thread shard's spin lock).
//
//   membarrier_probe [CALLS]     (default 100000)
//
// Prints the time per call with no other thread running, then with one
// other thread spinning (it must be interrupted). Exits 1, saying why, where
// the kernel does not offer the command.
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace {

long membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

double ns_per_call(long calls) {
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < calls; ++i) {
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
      std::fprintf(stderr, "membarrier_probe: MEMBARRIER_CMD_PRIVATE_EXPEDITED failed: %s\n", std::strerror(errno));
      std::exit(1);
    }
  }
  const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
  return took.count() / static_cast<double>(calls);
}

}  // namespace

int main(int argc, char** argv) {
  const long calls = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 100000;
  if (calls <= 0) {
    std::fprintf(stderr, "membarrier_probe: CALLS must be a positive number, got '%s'\n", argv[1]);
    return 2;
  }
  const long offered = membarrier(MEMBARRIER_CMD_QUERY);
  if (offered < 0 || (offered & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
    std::fprintf(stderr, "membarrier_probe: this kernel does not offer MEMBARRIER_CMD_PRIVATE_EXPEDITED\n");
    return 1;
  }
  if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) {
    std::fprintf(stderr, "membarrier_probe: registering failed: %s\n", std::strerror(errno));
    return 1;
  }
  std::printf("membarrier(PRIVATE_EXPEDITED), %ld calls\n", calls);
  std::printf("  no other thread running:   %8.0f ns per call\n", ns_per_call(calls));
  std::atomic<bool> stop{false};
  std::thread spinner([&] {
    while (!stop.load(std::memory_order_relaxed)) {
    }
  });
  std::printf("  one other thread spinning: %8.0f ns per call\n", ns_per_call(calls));
  stop.store(true, std::memory_order_relaxed);
  spinner.join();
  return 0;
}
