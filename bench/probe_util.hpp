// bench/probe_util.hpp — what the plain measuring programs (odirect_probe,
// store_probe) share: exiting on a failed call, timing, the spill
// directory, unlinked O_DIRECT files and whole-range positional IO.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace spillway::probe {

using Clock = std::chrono::steady_clock;
inline constexpr std::size_t kMiB = std::size_t{1} << 20;
inline constexpr std::size_t kHuge = 2 * kMiB;

[[noreturn]] inline void die(const std::string& what) {
  std::perror(what.c_str());
  std::exit(1);
}

inline double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// `given` if not empty, else where the pool puts spill files by default:
// $SPILLWAY_SPILL_DIR, $TMPDIR, /var/tmp.
inline std::string spill_dir(const std::string& given = "") {
  if (!given.empty()) return given;
  for (const char* var : {"SPILLWAY_SPILL_DIR", "TMPDIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/var/tmp";
}

// `bytes` of memory like the pool's host arena: 2 MiB-aligned, transparent
// huge pages asked for (O_DIRECT speed on a virtual disk depends on how
// physically contiguous the memory is), every byte set to `fill` so it is
// faulted in; unmapped when it goes.
class HugeMemory {
 public:
  explicit HugeMemory(std::size_t bytes, unsigned char fill = 0) : map_bytes_(bytes + kHuge) {
    map_ = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map_ == MAP_FAILED) die("mmap");
    p = reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(map_) + kHuge - 1) / kHuge * kHuge);
    (void)::madvise(p, bytes, MADV_HUGEPAGE);
    std::memset(p, fill, bytes);
  }
  ~HugeMemory() { ::munmap(map_, map_bytes_); }
  HugeMemory(const HugeMemory&) = delete;
  HugeMemory& operator=(const HugeMemory&) = delete;

  unsigned char* p = nullptr;

 private:
  void* map_ = nullptr;
  std::size_t map_bytes_;
};

// A new file in `dir` with no name, open with O_DIRECT.
inline int open_direct(const std::string& dir, const std::string& prefix) {
  std::string path = dir + "/" + prefix + "-XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) die("mkstemp in " + dir);
  ::unlink(path.c_str());
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_DIRECT) != 0) die("O_DIRECT on " + dir);
  return fd;
}

// Every byte of [p, p + n) at `off`, or exits.
inline void all(bool write, int fd, unsigned char* p, std::size_t n, off_t off = 0) {
  while (n > 0) {
    const ssize_t r = write ? ::pwrite(fd, p, n, off) : ::pread(fd, p, n, off);
    if (r <= 0) die(write ? "pwrite" : "pread");
    p += r;
    n -= static_cast<std::size_t>(r);
    off += r;
  }
}

}  // namespace spillway::probe
