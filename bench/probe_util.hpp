// bench/probe_util.hpp — what the plain measuring programs (odirect_probe,
// store_probe) share: exiting on a failed call, timing, the spill
// directory, unlinked O_DIRECT files and whole-range positional IO.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
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
