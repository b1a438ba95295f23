// stress/fault_injector.cpp — see fault_injector.hpp.
#include "fault_injector.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "src/core/pool_core.hpp"

namespace spillway::stress {

namespace {

constexpr const char* kNames[kFaultKinds] = {"write-eio",  "write-enospc", "read-eio",
                                             "short-write", "short-read",  "latency",
                                             "write-flip", "read-flip",    "device-alloc"};

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

const char* fault_name(FaultKind k) { return kNames[static_cast<int>(k)]; }

bool FaultRates::any() const {
  return std::any_of(rate.begin(), rate.end(), [](double r) { return r > 0; });
}

FaultRates FaultRates::defaults() {
  FaultRates r;
  r[FaultKind::WriteEio] = 0.01;
  r[FaultKind::WriteEnospc] = 0.01;
  r[FaultKind::ReadEio] = 0.005;
  r[FaultKind::ShortWrite] = 0.02;
  r[FaultKind::ShortRead] = 0.02;
  r[FaultKind::Latency] = 0.01;
  r[FaultKind::WriteFlip] = 0.001;
  r[FaultKind::ReadFlip] = 0.003;
  r[FaultKind::DeviceAlloc] = 0.01;
  r.latency_max = std::chrono::milliseconds(20);
  return r;
}

FaultRates FaultRates::parse(const std::string& spec) {
  FaultRates out;
  const std::string all = trim(spec);
  if (all.empty() || all == "none" || all == "off") return out;
  std::size_t pos = 0;
  bool first = true;
  while (pos <= all.size()) {
    const auto comma = all.find(',', pos);
    const std::string item = trim(all.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    pos = comma == std::string::npos ? all.size() + 1 : comma + 1;
    if (item.empty()) throw std::invalid_argument("--faults: empty item in '" + spec + "'");
    if (item == "default") {
      if (!first) throw std::invalid_argument("--faults: 'default' must come first in '" + spec + "'");
      out = defaults();
      first = false;
      continue;
    }
    first = false;
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      throw std::invalid_argument("--faults: '" + item + "' is not NAME=RATE (names: write-eio, "
                                  "write-enospc, read-eio, short-write, short-read, latency, "
                                  "write-flip, read-flip, device-alloc, latency-ms)");
    }
    const std::string name = trim(item.substr(0, eq));
    const std::string value = trim(item.substr(eq + 1));
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || end == nullptr || *end != '\0' || errno != 0) {
      throw std::invalid_argument("--faults: '" + value + "' in '" + item + "' is not a number");
    }
    if (name == "latency-ms") {
      if (v < 0 || v > 10000) throw std::invalid_argument("--faults: latency-ms must be 0..10000, got " + value);
      out.latency_max = std::chrono::milliseconds(static_cast<long long>(v));
      continue;
    }
    int k = 0;
    while (k < kFaultKinds && name != kNames[k]) ++k;
    if (k == kFaultKinds) {
      throw std::invalid_argument("--faults: unknown fault '" + name + "' (names: write-eio, "
                                  "write-enospc, read-eio, short-write, short-read, latency, "
                                  "write-flip, read-flip, device-alloc, latency-ms)");
    }
    if (v < 0 || v > 1) throw std::invalid_argument("--faults: the rate of " + name + " must be 0..1, got " + value);
    out.rate[k] = v;
  }
  return out;
}

std::string FaultRates::to_string() const {
  if (!any()) return "none";
  std::string s;
  char buf[64];
  for (int k = 0; k < kFaultKinds; ++k) {
    if (rate[k] <= 0) continue;
    std::snprintf(buf, sizeof buf, "%s%s=%g", s.empty() ? "" : ",", kNames[k], rate[k]);
    s += buf;
  }
  if (rate[static_cast<int>(FaultKind::Latency)] > 0) {
    s += ",latency-ms=" + std::to_string(latency_max.count());
  }
  return s;
}

// ---- FaultInjector ------------------------------------------------------------

FaultInjector::FaultInjector(std::shared_ptr<IoEnv> target, FaultRates rates, std::uint64_t seed)
    : IoEnvWrapper(target ? std::move(target) : IoEnv::posix()), rates_(rates), rng_(seed ^ 0xfa017ULL) {}

std::uint64_t FaultInjector::next_random() {
  spillway::detail::MutexLock lk(rng_mu_);
  return rng_();
}

bool FaultInjector::draw(FaultKind k) {
  const double r = rates_[k];
  if (r <= 0 || !enabled()) return false;
  const double u = static_cast<double>(next_random() >> 11) * 0x1.0p-53;
  if (u >= r) return false;
  counts_[static_cast<int>(k)].fetch_add(1);
  return true;
}

void FaultInjector::maybe_sleep() {
  if (!draw(FaultKind::Latency)) return;
  const auto max_us = static_cast<std::uint64_t>(rates_.latency_max.count()) * 1000;
  const std::uint64_t us = max_us == 0 ? 0 : next_random() % (max_us + 1);
  latency_us_.fetch_add(us);
  std::this_thread::sleep_for(std::chrono::microseconds(us));
}

ssize_t FaultInjector::pwrite(int fd, const void* data, std::size_t n, off_t offset) {
  maybe_sleep();
  if (draw(FaultKind::WriteEio)) {
    errno = EIO;
    return -1;
  }
  if (draw(FaultKind::WriteEnospc)) {
    errno = ENOSPC;
    return -1;
  }
  std::size_t len = n;
  if (n > 1 && draw(FaultKind::ShortWrite)) len = 1 + next_random() % (n - 1);
  const bool flip = len > 0 && draw(FaultKind::WriteFlip);
  ssize_t w;
  std::uint64_t flipped_at = 0;
  if (flip) {
    // Damage a copy on its way to disk; the caller's bytes stay intact.
    std::vector<unsigned char> copy(static_cast<const unsigned char*>(data),
                                    static_cast<const unsigned char*>(data) + len);
    const std::uint64_t bit = next_random() % (len * 8);
    copy[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    flipped_at = static_cast<std::uint64_t>(offset) + bit / 8;
    w = IoEnvWrapper::pwrite(fd, copy.data(), len, offset);
  } else {
    w = IoEnvWrapper::pwrite(fd, data, len, offset);
  }
  if (w > 0) {
    spillway::detail::MutexLock lk(damage_mu_);
    const auto begin = static_cast<std::uint64_t>(offset);
    damaged_.erase(damaged_.lower_bound(begin), damaged_.lower_bound(begin + static_cast<std::uint64_t>(w)));
    if (flip && flipped_at < begin + static_cast<std::uint64_t>(w)) damaged_[flipped_at] = 1;
  }
  return w;
}

ssize_t FaultInjector::pwritev_during(int fd, const struct iovec* iov, int count, off_t offset,
                                      const std::function<void()>& meanwhile) {
  if ((next_random() & 1) != 0) return IoEnv::pwritev_during(fd, iov, count, offset, meanwhile);
  meanwhile();
  return IoEnv::pwritev(fd, iov, count, offset);  // range by range through pwrite
}

ssize_t FaultInjector::pread(int fd, void* data, std::size_t n, off_t offset) {
  maybe_sleep();
  if (draw(FaultKind::ReadEio)) {
    errno = EIO;
    return -1;
  }
  std::size_t len = n;
  if (n > 1 && draw(FaultKind::ShortRead)) len = 1 + next_random() % (n - 1);
  const ssize_t r = IoEnvWrapper::pread(fd, data, len, offset);
  if (r > 0 && draw(FaultKind::ReadFlip)) {
    const std::uint64_t bit = next_random() % (static_cast<std::uint64_t>(r) * 8);
    static_cast<unsigned char*>(data)[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    spillway::detail::MutexLock lk(damage_mu_);
    read_flips_.emplace(static_cast<std::uint64_t>(offset) + bit / 8, 1);
  }
  return r;
}

bool FaultInjector::damaged_on_disk(std::uint64_t begin, std::uint64_t end) const {
  spillway::detail::MutexLock lk(damage_mu_);
  const auto it = damaged_.lower_bound(begin);
  return it != damaged_.end() && it->first < end;
}

bool FaultInjector::claim_read_flip(std::uint64_t begin, std::uint64_t end) {
  spillway::detail::MutexLock lk(damage_mu_);
  const auto it = read_flips_.lower_bound(begin);
  if (it == read_flips_.end() || it->first >= end) return false;
  read_flips_.erase(it);
  return true;
}

void FaultInjector::DeviceSeam::reset() noexcept {
  if (active) detail::set_simulated_device_arena_factory(nullptr);
  active = false;
}

FaultInjector::DeviceSeam FaultInjector::install_device_faults(std::shared_ptr<FaultInjector> injector) {
  detail::set_simulated_device_arena_factory([injector](std::size_t capacity) {
    return std::make_unique<FaultyDeviceArena>(capacity, injector);
  });
  DeviceSeam seam;
  seam.active = true;
  return seam;
}

// ---- FaultyDeviceArena ----------------------------------------------------------

FaultyDeviceArena::FaultyDeviceArena(std::size_t capacity, std::shared_ptr<FaultInjector> injector)
    : MemoryArena(detail::SubAllocator::round_up(capacity)), injector_(std::move(injector)) {
  mapped_ = capacity_;
  base_ = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base_ == MAP_FAILED) {
    base_ = nullptr;
    throw std::system_error(errno, std::generic_category(),
                            "spillway stress: cannot reserve " + std::to_string(mapped_) +
                                " bytes for the fault-injecting device arena");
  }
  alloc_.add_region(reinterpret_cast<std::uintptr_t>(base_), mapped_);
}

FaultyDeviceArena::~FaultyDeviceArena() {
  if (base_ != nullptr) ::munmap(base_, mapped_);
}

void* FaultyDeviceArena::allocate(std::size_t bytes) {
  if (injector_ && injector_->draw(FaultKind::DeviceAlloc)) return nullptr;
  return MemoryArena::allocate(bytes);
}

}  // namespace spillway::stress
