// bench/store_probe.cpp — the disk tier's own record IO against a bare
// O_DIRECT pwrite/pread of the same size, with no pool around it: where
// spill_bench's pool-level rows lose time, split into what SpillStore costs
// and what the pool adds.
//
//   store_probe [MiB ...]    (default: 1 4 16; spill directory as the pool's:
//                             $SPILLWAY_SPILL_DIR, $TMPDIR, /var/tmp)
//
// Each iteration writes one record with SpillStore::write (raw, O_DIRECT
// layout) and reads it back with SpillStore::read, and does a bare pwrite
// and pread of the same size on a second unlinked O_DIRECT file in the same
// directory. Memory is one 2 MiB-aligned MADV_HUGEPAGE mapping (as the
// pool's host arena); the store and the bare calls swap halves of it every
// iteration, so neither side keeps memory the other lacks (how physically
// contiguous the pages are changes O_DIRECT speed on a virtual disk: see
// odirect_probe). Prints per round the mean time per operation and
// bare/store (1.00 = as fast as the bare call).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tiers/disk/spill_store.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kHuge = 2 * kMiB;

[[noreturn]] void die(const std::string& what) {
  std::perror(what.c_str());
  std::exit(1);
}

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string spill_dir() {
  for (const char* var : {"SPILLWAY_SPILL_DIR", "TMPDIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/var/tmp";
}

void all(bool write, int fd, unsigned char* p, std::size_t n) {
  off_t off = 0;
  while (n > 0) {
    const ssize_t r = write ? ::pwrite(fd, p, n, off) : ::pread(fd, p, n, off);
    if (r <= 0) die(write ? "pwrite" : "pread");
    p += r;
    n -= static_cast<std::size_t>(r);
    off += r;
  }
}

}  // namespace

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

  spillway::DiskOptions o;
  o.directory = dir;
  o.capacity_bytes = std::size_t{4} << 30;
  o.compression = spillway::Compression::None;
  o.io = spillway::DiskIo::Direct;
  spillway::detail::SpillStore store(o);

  std::string path = dir + "/store-probe-XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) die("mkstemp in " + dir);
  ::unlink(path.c_str());
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_DIRECT) != 0) die("O_DIRECT on " + dir);

  std::printf("store_probe: SpillStore record vs bare O_DIRECT call, %s\n", dir.c_str());
  for (const std::size_t s : sizes) {
    // Four regions of s bytes, each starting on a huge page: source and
    // target of the store, source and target of the bare calls.
    const std::size_t region = (s + kHuge - 1) / kHuge * kHuge;
    void* m = ::mmap(nullptr, 4 * region + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("mmap");
    auto* base = reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(m) + kHuge - 1) & ~(kHuge - 1));
    ::madvise(base, 4 * region, MADV_HUGEPAGE);
    for (std::size_t i = 0; i < 4 * region; ++i) base[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
    all(true, fd, base, s);  // the bare file exists at full size

    const int iterations = s >= 16 * kMiB ? 40 : 200;
    for (int round = 0; round < 3; ++round) {
      double store_w = 0, store_r = 0, bare_w = 0, bare_r = 0;
      for (int i = 0; i < iterations; ++i) {
        unsigned char* store_mem = base + (i % 2 == 0 ? 0 : 2 * region);
        unsigned char* bare_mem = base + (i % 2 == 0 ? 2 * region : 0);
        auto t0 = Clock::now();
        all(true, fd, bare_mem, s);
        bare_w += since(t0);
        auto ext = store.reserve(s);
        if (!ext) die("reserve");
        t0 = Clock::now();
        store.write(*ext, 1, store_mem, s);
        store_w += since(t0);
        t0 = Clock::now();
        all(false, fd, bare_mem + region, s);
        bare_r += since(t0);
        t0 = Clock::now();
        store.read(*ext, 1, store_mem + region, s);
        store_r += since(t0);
        store.release(*ext);
      }
      const double n = iterations;
      std::printf("%4zu MiB round %d  write: store %7.0f us  bare %7.0f us  bare/store %.2f   "
                  "read: store %7.0f us  bare %7.0f us  bare/store %.2f\n",
                  s / kMiB, round, store_w / n * 1e6, bare_w / n * 1e6, bare_w / store_w,
                  store_r / n * 1e6, bare_r / n * 1e6, bare_r / store_r);
    }
    ::munmap(m, 4 * region + kHuge);
  }
  return 0;
}
