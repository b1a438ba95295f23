// tests/test_util.hpp — shared helpers for the pool tests: byte patterns
// derived from (buffer, version), small pool configurations, a scratch
// directory, and a fault-injecting IoEnv.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "spillway/spillway.hpp"
#include "stress/pattern.hpp"

namespace spillway::testing {

// Lines of a list (check_invariants()'s findings), one per line, for a failure message.
inline std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

using spillway::stress::mix64;  // the stress harness's word mixer (splitmix64)

// Fills `n` bytes with a pattern determined by (key, version). When
// `compressible` is set, the pattern repeats short runs (LZ4 shrinks it).
inline void fill_pattern(void* p, std::size_t n, std::uint64_t key, std::uint64_t version,
                         bool compressible = false) {
  auto* b = static_cast<unsigned char*>(p);
  const std::uint64_t seed = mix64(key * 1000003 + version);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = compressible ? mix64(seed + i / 64) & 0x0f0f0f0f0f0f0f0fULL : mix64(seed + i);
    std::memcpy(b + i, &w, 8);
  }
  const std::uint64_t tail = mix64(seed + i);
  for (std::size_t j = 0; i < n; ++i, ++j) b[i] = static_cast<unsigned char>(tail >> (8 * j));
}

// `n` floats uniform in [-scale, scale], seeded.
inline std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Prometheus text exposition as {"name{labels}": value}; comments skipped.
inline std::map<std::string, double> parse_prometheus(const std::string& text) {
  std::map<std::string, double> m;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    m[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return m;
}

// The first offset where `p` differs from the pattern, or -1.
inline long long find_mismatch(const void* p, std::size_t n, std::uint64_t key,
                               std::uint64_t version, bool compressible = false) {
  std::string expect(n, '\0');
  fill_pattern(expect.data(), n, key, version, compressible);
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (b[i] != static_cast<unsigned char>(expect[i])) return static_cast<long long>(i);
  }
  return -1;
}

// A fresh directory for one test, removed (with anything left in it) at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "spillway-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  // Regular files anywhere below the directory.
  std::size_t regular_files() const {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(path_)) {
      if (e.is_regular_file()) ++n;
    }
    return n;
  }
  std::size_t entries() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path_)) ++n;
    return n;
  }

 private:
  std::string path_;
};

// Small tiers so tests reach pressure with a few buffers.
inline PoolOptions small_options(const std::string& spill_parent, std::size_t device = 1 << 20,
                                 std::size_t host = 2 << 20) {
  PoolOptions o;
  o.device.backend = DeviceBackend::Simulated;
  o.device.capacity_bytes = device;
  o.host.capacity_bytes = host;
  o.disk.directory = spill_parent;
  o.pressure_wait = std::chrono::milliseconds(300);
  o.io_timeout = std::chrono::milliseconds(20000);
  return o;
}

// An IoEnv that fails writes, flips bits on reads or fails reads on demand.
class FaultyEnv : public IoEnvWrapper {
 public:
  FaultyEnv() : IoEnvWrapper(IoEnv::posix()) {}
  std::atomic<int> write_errno{0};    // non-zero: every pwrite fails with it
  std::atomic<int> read_errno{0};     // non-zero: every pread fails with it
  std::atomic<bool> flip_reads{false};  // flip one bit in every pread's data
  std::atomic<std::uint64_t> writes{0};
  std::atomic<std::uint64_t> bytes_written{0};

  ssize_t pwrite(int fd, const void* data, std::size_t n, off_t off) override {
    if (const int e = write_errno.load()) {
      errno = e;
      return -1;
    }
    ++writes;
    const ssize_t r = IoEnvWrapper::pwrite(fd, data, n, off);
    if (r > 0) bytes_written += static_cast<std::uint64_t>(r);
    return r;
  }
  ssize_t pread(int fd, void* data, std::size_t n, off_t off) override {
    if (const int e = read_errno.load()) {
      errno = e;
      return -1;
    }
    const ssize_t r = IoEnvWrapper::pread(fd, data, n, off);
    if (r > 0 && flip_reads.load()) static_cast<unsigned char*>(data)[r / 2] ^= 0x10;
    return r;
  }
};

}  // namespace spillway::testing
