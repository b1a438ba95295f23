// bench/sweep_bench.cpp — the out-of-core sweep: a working set several times
// the memory budget, read block by block in a known order, pass after pass.
// Run by scripts/bench_sweep.sh, which puts each mode in a memory cgroup of
// the same budget so that the kernel's page cache is held to it too.
//
//   sweep_bench disk     --dir D --working-set 1G --budget 256M --block 4M
//       cold sequential read bandwidth of a file in D (buffered, O_DIRECT
//       into one reused block, O_DIRECT into memory the size of the budget):
//       the transfer-bound lower bound's denominators
//   sweep_bench mmap     --dir D --working-set 1G --block 4M --passes 4
//       the same data in a file, mmap()ed and left to the kernel's paging
//   sweep_bench spillway --dir D --working-set 1G --budget 256M --block 4M --passes 4
//       the data in spillway buffers (host tier = budget, the rest on disk),
//       read with next-use hints (Lookahead) and prefetch of the next blocks;
//       with --record FILE the pool also records its access log there
//       (docs/record-format.md): the recorded variant, whose time beside the
//       plain run's is recording's overhead
//   sweep_bench stream   --dir D --working-set 1G --budget 256M --block 4M --passes 4 --verify 1
//       a hand-written out-of-core reader, plain POSIX, that knows the order:
//       the budget holds the first blocks for good and a ring of prefetch + 1
//       slots; one IO thread reads the other blocks (O_DIRECT) into the ring
//       up to --prefetch blocks ahead and, with --verify 1, checks each
//       against its XXH3 kept in memory (what spillway does for every fetch)
//       before the reader may use it. What this machine allows a verifying
//       (or, --verify 0, a trusting) streamer; no library in the way.
//
// Every mode reads every byte (a 64-bit sum over the block) so the compute
// is the same. Prints one JSON object: per-pass seconds (the first pass,
// which writes or warms, is reported apart), bytes per pass, and for
// spillway the bytes moved per pass, the IO workers' time spent fetching
// (fetch_io_s: summed over workers), fetches and pins that waited.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>  // the AVX2 variant where there is one, as the disk tier uses
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "probe_util.hpp"
#include "spillway/spillway.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using spillway::probe::HugeMemory;

struct Args {
  std::string mode;
  std::string dir;
  std::uint64_t working_set = std::uint64_t{1} << 30;
  std::uint64_t budget = std::uint64_t{256} << 20;
  std::uint64_t block = std::uint64_t{4} << 20;
  int passes = 4;
  int prefetch = 4;
  int io_threads = 2;
  int verify = 1;
  std::string policy = "lookahead";
  std::string trace;  // spillway mode: a Perfetto trace of the run, when set
  std::string record;  // spillway mode: an access log of the run, when set
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "sweep_bench: %s\n", what.c_str());
  std::exit(2);
}

void check(bool ok, const std::string& what) {
  if (!ok) die(what + ": " + std::strerror(errno));
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Incompressible bytes, the same for every mode: block i from seed i.
void fill_block(void* p, std::size_t n, std::uint64_t i) {
  std::mt19937_64 rng(0x5eed0000 + i);
  auto* w = static_cast<std::uint64_t*>(p);
  for (std::size_t k = 0; k < n / 8; ++k) w[k] = rng();
}

std::uint64_t sum_block(const void* p, std::size_t n) {
  const auto* w = static_cast<const std::uint64_t*>(p);
  std::uint64_t s = 0;
  for (std::size_t k = 0; k < n / 8; ++k) s += w[k];
  return s;
}

// The data file (block i from fill_block(i)), and each block's XXH3 in
// `sums` when asked.
std::string make_file(const Args& a, std::vector<std::uint64_t>* sums = nullptr) {
  const std::string path = a.dir + "/sweep_bench." + std::to_string(::getpid()) + ".dat";
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW, 0600);
  check(fd >= 0, "creating " + path);
  std::vector<char> buf(a.block);
  for (std::uint64_t i = 0; i < a.working_set / a.block; ++i) {
    fill_block(buf.data(), buf.size(), i);
    if (sums != nullptr) sums->push_back(XXH3_64bits(buf.data(), buf.size()));
    check(::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(i * a.block)) ==
              static_cast<ssize_t>(buf.size()),
          "writing " + path);
  }
  check(::fsync(fd) == 0, "fsync " + path);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // start cold
  ::close(fd);
  return path;
}

void print_passes(const char* mode, const Args& a, const std::vector<double>& passes, const std::string& extra) {
  std::printf("{\"mode\":\"%s\",\"working_set\":%llu,\"budget\":%llu,\"block\":%llu,\"first_pass_s\":%.6f,"
              "\"pass_s\":[",
              mode, static_cast<unsigned long long>(a.working_set), static_cast<unsigned long long>(a.budget),
              static_cast<unsigned long long>(a.block), passes.front());
  for (std::size_t i = 1; i < passes.size(); ++i) std::printf("%s%.6f", i > 1 ? "," : "", passes[i]);
  std::printf("]%s}\n", extra.c_str());
}

int run_disk(const Args& a) {
  const std::string path = make_file(a);
  std::vector<double> buffered, direct;
  {
    const int fd = ::open(path.c_str(), O_RDONLY);
    check(fd >= 0, "opening " + path);
    std::vector<char> buf(a.block);
    for (int p = 0; p < 3; ++p) {
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      const auto t0 = Clock::now();
      std::uint64_t s = 0;
      for (std::uint64_t off = 0; off < a.working_set; off += a.block) {
        check(::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off)) == static_cast<ssize_t>(buf.size()),
              "reading " + path);
        s += sum_block(buf.data(), buf.size());
      }
      buffered.push_back(seconds_since(t0));
      if (s == 42) std::puts("");  // keep the sum
    }
    ::close(fd);
  }
  std::vector<double> spread;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT);
    if (fd >= 0) {
      // Memory like the pool's host arena (2 MiB-aligned, transparent huge
      // pages): O_DIRECT from scattered 4 KiB pages runs at a fraction of
      // the speed on disks that take few memory segments per request.
      // First into one block of it, read again and again (what a bare
      // benchmark does); then each block into the next place of a region
      // the size of the budget, as an out-of-core reader must land them
      // (on the reference VM that is 20-30% slower: the block reused stays
      // warm, docs/performance.md).
      const std::uint64_t region = std::max(a.block, a.budget / a.block * a.block);
      HugeMemory mem(region);
      for (int p = 0; p < 3; ++p) {
        auto t0 = Clock::now();
        for (std::uint64_t off = 0; off < a.working_set; off += a.block) {
          check(::pread(fd, mem.p, a.block, static_cast<off_t>(off)) == static_cast<ssize_t>(a.block),
                "reading " + path + " with O_DIRECT");
        }
        direct.push_back(seconds_since(t0));
        t0 = Clock::now();
        std::uint64_t at = 0;
        for (std::uint64_t off = 0; off < a.working_set; off += a.block) {
          check(::pread(fd, mem.p + at, a.block, static_cast<off_t>(off)) == static_cast<ssize_t>(a.block),
                "reading " + path + " with O_DIRECT");
          at = at + a.block >= region ? 0 : at + a.block;
        }
        spread.push_back(seconds_since(t0));
      }
      ::close(fd);
    }
  }
  ::unlink(path.c_str());
  auto best = [&](const std::vector<double>& v) {
    return v.empty() ? 0.0 : static_cast<double>(a.working_set) / *std::min_element(v.begin(), v.end()) / 1e9;
  };
  std::printf("{\"mode\":\"disk\",\"working_set\":%llu,\"budget\":%llu,\"block\":%llu,"
              "\"buffered_read_gbps\":%.4f,\"direct_read_gbps\":%.4f,\"direct_read_spread_gbps\":%.4f}\n",
              static_cast<unsigned long long>(a.working_set), static_cast<unsigned long long>(a.budget),
              static_cast<unsigned long long>(a.block), best(buffered), best(direct), best(spread));
  return 0;
}

int run_mmap(const Args& a) {
  const std::string path = make_file(a);
  const int fd = ::open(path.c_str(), O_RDONLY);
  check(fd >= 0, "opening " + path);
  void* base = ::mmap(nullptr, a.working_set, PROT_READ, MAP_SHARED, fd, 0);
  check(base != MAP_FAILED, "mmap " + path);
  ::unlink(path.c_str());  // the mapping keeps it
  std::vector<double> passes;
  std::uint64_t s = 0;
  for (int p = 0; p < a.passes; ++p) {
    const auto t0 = Clock::now();
    for (std::uint64_t off = 0; off < a.working_set; off += a.block) {
      s += sum_block(static_cast<const char*>(base) + off, a.block);
    }
    passes.push_back(seconds_since(t0));
  }
  if (s == 42) std::puts("");
  ::munmap(base, a.working_set);
  ::close(fd);
  print_passes("mmap", a, passes, "");
  return 0;
}

int run_stream(const Args& a) {
  std::vector<std::uint64_t> sums;
  const std::string path = make_file(a, &sums);
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT);
  check(fd >= 0, "opening " + path + " with O_DIRECT");
  ::unlink(path.c_str());
  const std::uint64_t n = a.working_set / a.block;
  const std::uint64_t places = a.budget / a.block;
  const auto ring = static_cast<std::uint64_t>(a.prefetch) + 1;
  if (places <= ring) die("stream: --budget must hold more than --prefetch + 1 blocks");
  const std::uint64_t resident = std::min(n, places - ring);  // blocks 0..resident-1 stay
  HugeMemory mem(places * a.block);
  // Every read, in order, for all passes: the first pass reads every block
  // (the resident ones into their own place), later passes the others.
  struct Job {
    std::uint64_t block;
    unsigned char* dest;
    bool in_ring;
  };
  std::vector<Job> jobs;
  std::uint64_t ring_uses = 0;
  for (int p = 0; p < a.passes; ++p) {
    for (std::uint64_t i = p == 0 ? 0 : resident; i < n; ++i) {
      if (i < resident) {
        jobs.push_back({i, mem.p + i * a.block, false});
      } else {
        jobs.push_back({i, mem.p + (resident + ring_uses % ring) * a.block, true});
        ++ring_uses;
      }
    }
  }
  std::atomic<std::uint64_t> ready{0};     // jobs read (and verified)
  std::atomic<std::uint64_t> released{0};  // ring places the reader is done with
  std::thread io([&] {
    std::uint64_t use = 0;
    for (std::uint64_t q = 0; q < jobs.size(); ++q) {
      const Job& j = jobs[q];
      if (j.in_ring) {
        // The place's previous block must have been used.
        for (std::uint64_t r = released.load(); use >= r + ring; r = released.load()) released.wait(r);
        ++use;
      }
      check(::pread(fd, j.dest, a.block, static_cast<off_t>(j.block * a.block)) ==
                static_cast<ssize_t>(a.block),
            "reading block " + std::to_string(j.block));
      if (a.verify != 0 && XXH3_64bits(j.dest, a.block) != sums[j.block]) {
        die("block " + std::to_string(j.block) + " does not match its checksum");
      }
      ready.store(q + 1);
      ready.notify_one();
    }
  });
  std::vector<double> passes;
  std::uint64_t s = 0;
  std::uint64_t next_job = 0;
  for (int p = 0; p < a.passes; ++p) {
    const auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
      if (p > 0 && i < resident) {
        s += sum_block(mem.p + i * a.block, a.block);
        continue;
      }
      const Job& j = jobs[next_job];
      for (std::uint64_t r = ready.load(); r <= next_job; r = ready.load()) ready.wait(r);
      s += sum_block(j.dest, a.block);
      ++next_job;
      if (j.in_ring) {
        released.fetch_add(1);
        released.notify_one();
      }
    }
    passes.push_back(seconds_since(t0));
  }
  io.join();
  ::close(fd);
  if (s == 42) std::puts("");
  char extra[160];
  std::snprintf(extra, sizeof extra, ",\"verify\":%d,\"prefetch\":%d,\"resident_blocks\":%llu,\"fetched_per_pass\":%llu",
                a.verify, a.prefetch, static_cast<unsigned long long>(resident),
                static_cast<unsigned long long>((n - resident) * a.block));
  print_passes("stream", a, passes, extra);
  return 0;
}

int run_spillway(const Args& a) {
  using namespace spillway;
  PoolOptions o;
  o.device.backend = DeviceBackend::None;
  o.host.capacity_bytes = a.budget;
  o.disk.directory = a.dir;
  o.disk.compression = Compression::None;  // the data is incompressible
  o.policy = a.policy == "lru" ? EvictionPolicy::Lru : EvictionPolicy::Lookahead;
  o.io_threads = static_cast<unsigned>(a.io_threads);
  o.trace_file = a.trace;
  o.record_file = a.record;
  Pool pool(o);
  const std::uint64_t n = a.working_set / a.block;
  std::vector<Buffer> bufs;
  bufs.reserve(n);
  std::vector<double> passes;
  // Pass 0: write the data (what the file modes do in make_file, untimed
  // there; timed here but reported apart).
  auto t0 = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    bufs.push_back(pool.allocate(a.block, Tier::Host, "sweep"));
    Pin p = bufs.back().pin(Tier::Host, Access::ReadWrite);
    fill_block(p.data(), p.size(), i);
    p.release();
    bufs.back().hint_next_use(n + i);  // read in pass 1 at position i
  }
  pool.quiesce();
  passes.push_back(seconds_since(t0));
  const PoolStats before = pool.stats();
  std::uint64_t s = 0;
  for (int p = 1; p < a.passes; ++p) {
    t0 = Clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
      for (int k = 1; k <= a.prefetch; ++k) {
        const std::uint64_t j = (i + static_cast<std::uint64_t>(k)) % n;
        bufs[j].prefetch(Tier::Host);
      }
      {
        Pin pin = bufs[i].pin(Tier::Host, Access::Read);
        s += sum_block(pin.data(), pin.size());
      }
      bufs[i].hint_next_use(static_cast<std::uint64_t>(p + 1) * n + i);  // the next pass
    }
    passes.push_back(seconds_since(t0));
  }
  if (s == 42) std::puts("");
  pool.quiesce();
  const PoolStats after = pool.stats();
  const std::uint64_t fetched = after.move(Tier::Disk, Tier::Host).bytes - before.move(Tier::Disk, Tier::Host).bytes;
  const std::uint64_t spilled = after.move(Tier::Host, Tier::Disk).bytes - before.move(Tier::Host, Tier::Disk).bytes;
  const double timed = static_cast<double>(a.passes - 1);
  char extra[320];
  std::snprintf(extra, sizeof extra,
                ",\"recorded\":%s,\"policy\":\"%s\",\"prefetch\":%d,\"fetched_per_pass\":%.0f,\"spilled_per_pass\":%.0f,"
                "\"stall_s\":%.6f,\"fetch_io_s\":%.6f,\"fetches\":%llu,\"pin_waits\":%llu",
                a.record.empty() ? "false" : "true", a.policy.c_str(), a.prefetch, static_cast<double>(fetched) / timed,
                static_cast<double>(spilled) / timed, after.stall_seconds - before.stall_seconds,
                after.move(Tier::Disk, Tier::Host).seconds - before.move(Tier::Disk, Tier::Host).seconds,
                static_cast<unsigned long long>(after.move(Tier::Disk, Tier::Host).moves -
                                                before.move(Tier::Disk, Tier::Host).moves),
                static_cast<unsigned long long>(after.pin_waits - before.pin_waits));
  print_passes("spillway", a, passes, extra);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (argc < 2) die("usage: sweep_bench disk|mmap|stream|spillway [--dir D] [--working-set B] [--budget B] [--block B] "
                    "[--passes N] [--prefetch K] [--io-threads N] [--policy lookahead|lru] [--verify 0|1] [--trace FILE] [--record FILE]");
  a.mode = argv[1];
  const char* env_dir = std::getenv("SPILLWAY_SPILL_DIR");
  a.dir = env_dir != nullptr ? env_dir : "/var/tmp";
  try {
    for (int i = 2; i < argc; ++i) {
      const std::string k = argv[i];
      if (i + 1 >= argc) die("missing value after " + k);
      const std::string v = argv[++i];
      if (k == "--dir") a.dir = v;
      else if (k == "--working-set") a.working_set = spillway::parse_byte_size(v, "--working-set");
      else if (k == "--budget") a.budget = spillway::parse_byte_size(v, "--budget");
      else if (k == "--block") a.block = spillway::parse_byte_size(v, "--block");
      else if (k == "--passes") a.passes = std::stoi(v);
      else if (k == "--prefetch") a.prefetch = std::stoi(v);
      else if (k == "--io-threads") a.io_threads = std::stoi(v);
      else if (k == "--policy") a.policy = v;
      else if (k == "--verify") a.verify = std::stoi(v);
      else if (k == "--trace") a.trace = v;
      else if (k == "--record") a.record = v;
      else die("unknown option " + k);
    }
    if (a.block == 0 || a.block % 4096 != 0 || a.working_set % a.block != 0) {
      die("--block must be a positive multiple of 4 KiB that divides --working-set");
    }
    if (a.passes < 2) die("--passes must be at least 2 (the first one writes)");
    if (a.io_threads < 1 || a.io_threads > 64) die("--io-threads must be 1..64");
    if (a.policy != "lookahead" && a.policy != "lru") die("--policy: lookahead or lru, got " + a.policy);
    if (a.mode == "disk") return run_disk(a);
    if (a.mode == "mmap") return run_mmap(a);
    if (a.verify != 0 && a.verify != 1) die("--verify: 0 or 1");
    if (a.prefetch < 0 || a.prefetch > 1024) die("--prefetch must be 0..1024");
    if (a.mode == "spillway") return run_spillway(a);
    if (a.mode == "stream") return run_stream(a);
    die("unknown mode '" + a.mode + "' (disk, mmap, stream or spillway)");
  } catch (const std::exception& e) {
    die(e.what());
  }
}
