// stress/fault_injector.hpp — faults for the disk tier (an IoEnvWrapper)
// and the device tier (an arena that refuses allocations), at configurable
// rates, from one seeded stream of decisions.
//
// What each fault does, and what the pool promises about it
// (docs/reliability.md):
//   write-eio, write-enospc  pwrite fails with EIO / ENOSPC: the spill fails,
//                            the victim stays where it was, still evictable
//   read-eio                 pread fails with EIO: pin throws IoError, the
//                            buffer stays on disk and reads correctly later
//   short-write, short-read  pwrite / pread moves fewer bytes than asked:
//                            the store retries the rest; nothing is visible
//   latency                  the call sleeps up to latency_max first
//   write-flip               one bit of the bytes handed to pwrite is flipped
//                            on the way to disk (the caller's memory is left
//                            alone): the record is damaged for good, and
//                            every later read of it throws CorruptionError
//   read-flip                one bit of what pread returns is flipped: that
//                            read throws CorruptionError, the next one works
//   device-alloc             the device arena refuses an allocation: the pool
//                            evicts, falls back to host, or throws OutOfMemory
// Never wrong bytes: a pin that returns must return the buffer's bytes.
//
// Reproducibility: every decision is drawn, in call order, from one
// generator seeded with the seed. The sequence of decisions is fixed by the
// seed; with several threads doing IO, which call gets which decision
// depends on the scheduling.
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "base/sync.hpp"
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "spillway/io_env.hpp"
#include "tiers/device/memory_arena.hpp"

namespace spillway::stress {

enum class FaultKind : std::uint8_t {
  WriteEio,
  WriteEnospc,
  ReadEio,
  ShortWrite,
  ShortRead,
  Latency,
  WriteFlip,
  ReadFlip,
  DeviceAlloc,
};
inline constexpr int kFaultKinds = 9;

// "write-eio", "read-flip"... (the names FaultRates::parse accepts).
const char* fault_name(FaultKind k);

// The probability of each fault per call it applies to (pwrite, pread or
// device allocation), 0 to 1.
struct FaultRates {
  std::array<double, kFaultKinds> rate{};
  std::chrono::milliseconds latency_max{20};

  double& operator[](FaultKind k) { return rate[static_cast<int>(k)]; }
  double operator[](FaultKind k) const { return rate[static_cast<int>(k)]; }
  bool any() const;

  // "none" (or ""), "default" (a mix of every kind at low rates), or a
  // comma-separated list of NAME=RATE and latency-ms=MS, optionally after
  // "default," to change some of its rates, e.g.
  // "write-eio=0.01,read-flip=0.002,latency=0.01,latency-ms=30".
  // Throws std::invalid_argument naming the item that is wrong.
  static FaultRates parse(const std::string& spec);
  static FaultRates defaults();
  // The spec that parse() turns back into these rates.
  std::string to_string() const;
};

class FaultInjector;

// A device arena in host memory (like the Simulated backend) whose
// allocate() refuses a request at the injector's device-alloc rate.
class FaultyDeviceArena final : public detail::MemoryArena {
 public:
  FaultyDeviceArena(std::size_t capacity, std::shared_ptr<FaultInjector> injector);
  ~FaultyDeviceArena() override;
  std::string_view backend() const override { return "simulated"; }
  bool host_accessible() const override { return true; }
  void* allocate(std::size_t bytes) override;

 private:
  std::shared_ptr<FaultInjector> injector_;
  void* base_ = nullptr;
  std::size_t mapped_ = 0;
};

class FaultInjector : public IoEnvWrapper {
 public:
  FaultInjector(std::shared_ptr<IoEnv> target, FaultRates rates, std::uint64_t seed);

  // Faults are injected only while enabled (the default). Turning them off
  // mid-run leaves damage already written on disk (write flips) in place.
  void set_enabled(bool on) { enabled_.store(on); }
  bool enabled() const { return enabled_.load(); }
  const FaultRates& rates() const { return rates_; }

  std::uint64_t injected(FaultKind k) const { return counts_[static_cast<int>(k)].load(); }
  // Total time slept by latency faults.
  double latency_seconds() const { return static_cast<double>(latency_us_.load()) * 1e-6; }

  // Whether a byte in [begin, end) of the spill file was damaged by a write
  // flip and has not been rewritten since.
  bool damaged_on_disk(std::uint64_t begin, std::uint64_t end) const;
  // Whether a read flip hit a byte in [begin, end) and was not yet claimed;
  // claims it (each read flip explains one CorruptionError).
  bool claim_read_flip(std::uint64_t begin, std::uint64_t end);

  // One draw: true with the rate of `k`, when enabled. Counts it.
  bool draw(FaultKind k);

  ssize_t pwrite(int fd, const void* data, std::size_t n, off_t offset) override;
  ssize_t pread(int fd, void* data, std::size_t n, off_t offset) override;
  // Half the calls (at random) decline, so the disk tier takes its helper
  // path; the other half run the caller's work and then write through
  // pwrite above, faults and all, so records written with their checksum
  // in memory meet the same faults as the others.
  ssize_t pwritev_during(int fd, const struct iovec* iov, int count, off_t offset,
                         const std::function<void()>& meanwhile) override;

  // Makes the Pools constructed while the returned guard lives take their
  // Simulated device arena from this injector (FaultyDeviceArena), through
  // detail::set_simulated_device_arena_factory. One at a time per process.
  struct DeviceSeam {
    DeviceSeam() = default;
    DeviceSeam(DeviceSeam&& o) noexcept : active(std::exchange(o.active, false)) {}
    DeviceSeam& operator=(DeviceSeam&& o) noexcept {
      if (this != &o) {
        reset();
        active = std::exchange(o.active, false);
      }
      return *this;
    }
    ~DeviceSeam() { reset(); }
    void reset() noexcept;
    bool active = false;
  };
  [[nodiscard]] static DeviceSeam install_device_faults(std::shared_ptr<FaultInjector> injector);

 private:
  std::uint64_t next_random();
  void maybe_sleep();

  FaultRates rates_;
  std::atomic<bool> enabled_{true};
  spillway::detail::Mutex rng_mu_;
  std::mt19937_64 rng_ SPILLWAY_GUARDED_BY(rng_mu_);
  std::array<std::atomic<std::uint64_t>, kFaultKinds> counts_{};
  std::atomic<std::uint64_t> latency_us_{0};
  mutable spillway::detail::Mutex damage_mu_;
  std::map<std::uint64_t, int> damaged_ SPILLWAY_GUARDED_BY(damage_mu_);          // file offsets of flipped bytes on disk
  std::multimap<std::uint64_t, int> read_flips_ SPILLWAY_GUARDED_BY(damage_mu_);  // file offsets of unclaimed read flips
};

}  // namespace spillway::stress
