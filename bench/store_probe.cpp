// bench/store_probe.cpp — the disk tier's own record IO against a bare
// O_DIRECT pwrite/pread of the same size, with no pool around it: where
// spill_bench's pool-level rows lose time, split into what SpillStore costs
// and what the pool adds.
//
//   store_probe [MiB ...]    (default: 1 4 16; spill directory as the pool's:
//                             $SPILLWAY_SPILL_DIR, $TMPDIR, /var/tmp)
//
// One store, on an environment that can switch IoEnv::pwritev_during off:
// on, a record's write stays in flight (io_uring, where the kernel allows
// it) while the IO thread hashes it; off, the helper-thread path, as in a
// container without io_uring. The same store, file and extent serve both,
// so the device's placement of the bytes cannot favour either. Per size, a
// write phase (the store rewrites its record one way, then the other, and
// the bare file takes a pwrite of the same size, in a rotating order) and a
// read phase (SpillStore::read of that record against a bare pread, taking
// turns). Reads and writes are timed in phases of their own: one right
// after the other, a read pays for what the device still owes the write
// before it.
//
// Memory is one 2 MiB-aligned MADV_HUGEPAGE mapping (as the pool's host
// arena); sources and targets alternate between halves of it every
// iteration (how physically contiguous the pages are changes O_DIRECT speed
// on a virtual disk: see odirect_probe). Prints per round the mean time per
// operation and bare/store (1.00 = as fast as the bare call).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "probe_util.hpp"
#include "tiers/disk/spill_store.hpp"

using namespace spillway::probe;

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i) {
    const long mib = std::strtol(argv[i], nullptr, 10);
    if (mib <= 0 || mib > 1024) {
      std::fprintf(stderr, "store_probe: size '%s' is not a whole number of MiB in 1..1024\n", argv[i]);
      return 2;
    }
    sizes.push_back(static_cast<std::size_t>(mib) * kMiB);
  }
  if (sizes.empty()) sizes = {kMiB, 4 * kMiB, 16 * kMiB};
  const std::string dir = spill_dir();

  // Forwards to the default environment; `overlap` off declines
  // pwritev_during (ENOSYS, as the IoEnv default).
  struct Switchable : spillway::IoEnvWrapper {
    bool overlap = true;
    Switchable() : IoEnvWrapper(spillway::IoEnv::posix()) {}
    ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t off) override {
      return target().pwritev(fd, iov, count, off);
    }
    ssize_t preadv(int fd, const struct iovec* iov, int count, off_t off) override {
      return target().preadv(fd, iov, count, off);
    }
    ssize_t pwritev_during(int fd, const struct iovec* iov, int count, off_t off,
                           const std::function<void()>& meanwhile) override {
      if (overlap) return target().pwritev_during(fd, iov, count, off, meanwhile);
      return IoEnv::pwritev_during(fd, iov, count, off, meanwhile);
    }
  };
  auto env = std::make_shared<Switchable>();
  spillway::DiskOptions o;
  o.directory = dir;
  o.capacity_bytes = std::size_t{4} << 30;
  o.compression = spillway::Compression::None;
  o.io = spillway::DiskIo::Direct;
  o.env = env;
  spillway::detail::SpillStore store(o);
  {  // does this kernel let the default environment keep a write in flight?
    bool ran = false;
    struct iovec none{nullptr, 0};
    (void)spillway::IoEnv::posix()->pwritev_during(-1, &none, 1, 0, [&] { ran = true; });
    std::printf("store_probe: io_uring %s\n", ran ? "in use" : "refused here: both ways are the helper path");
  }

  const int fd = open_direct(dir, "store-probe");

  std::printf("store_probe: SpillStore records vs bare O_DIRECT calls, %s\n", dir.c_str());
  for (const std::size_t s : sizes) {
    // Four regions of s bytes, each starting on a huge page: source and
    // target of the store, source and target of the bare calls.
    const std::size_t region = (s + kHuge - 1) / kHuge * kHuge;
    HugeMemory mem_map(4 * region);
    unsigned char* base = mem_map.p;
    for (std::size_t i = 0; i < 4 * region; ++i) base[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
    all(true, fd, base, s);  // the bare file exists at full size

    const int iterations = s >= 16 * kMiB ? 40 : 200;
    auto reserved = store.reserve(s);
    if (!reserved) die("reserve");
    spillway::detail::SpillExtent ext = *reserved;
    // w: [0] store in flight, [1] store helper, [2] bare; r: [0] store, [2] bare.
    auto phase = [&](bool write, double* t) {
      for (int i = 0; i < iterations; ++i) {
        unsigned char* mem = base + (i % 2 == 0 ? 0 : 2 * region) + (write ? 0 : region);
        for (int turn = 0; turn < 3; ++turn) {
          const int who = (i + turn) % 3;
          if (!write && who == 1) continue;
          const auto t0 = Clock::now();
          if (who == 2) {
            all(write, fd, mem, s);
          } else if (write) {
            env->overlap = who == 0;
            store.write(ext, 1, mem, s);
          } else {
            store.read(ext, 1, mem, s);
          }
          t[who] += since(t0);
        }
      }
    };
    for (int round = 0; round < 3; ++round) {
      double w[3] = {0, 0, 0}, r[3] = {0, 0, 0};
      phase(true, w);
      phase(false, r);
      const double n = iterations;
      std::printf("%4zu MiB round %d  write us: in-flight %6.0f helper %6.0f bare %6.0f  bare/store %.2f %.2f   "
                  "read us: store %6.0f bare %6.0f  bare/store %.2f\n",
                  s / kMiB, round, w[0] / n * 1e6, w[1] / n * 1e6, w[2] / n * 1e6, w[2] / w[0], w[2] / w[1],
                  r[0] / n * 1e6, r[2] / n * 1e6, r[2] / r[0]);
    }
    store.release(ext);
  }
  return 0;
}
