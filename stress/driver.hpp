// stress/driver.hpp — internals of run_stress shared by stress_run.cpp (the
// run: setup, threads, final check, result) and workloads.cpp (what each
// worker does per operation). Not installed; nothing outside stress/ uses it.
//
// Locking: each Slot's shared_mutex orders the harness's own accesses to a
// buffer (Read pins shared, ReadWrite pins and reallocation exclusive). It
// is only ever taken with try_lock: a worker that finds a buffer busy skips
// it, so the harness adds no waits of its own and every wait the watchdog
// sees is the pool's.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

#include "base/sync.hpp"
#include <random>
#include <shared_mutex>
#include <string>
#include <vector>

#include "fault_injector.hpp"
#include "spillway/pool.hpp"
#include "stress_run.hpp"
#include "watchdog.hpp"

namespace spillway::stress::detail {

using Clock = std::chrono::steady_clock;

struct Slot {
  std::shared_mutex mu;
  // Under mu (exclusive to change):
  Buffer buf;
  std::size_t size = 0;
  std::uint64_t version = 0;  // the pattern version the bytes must hold
  bool written = false;       // a pattern has been written (else contents are unspecified)
  // Set by any thread that sees the outcome; cleared when the buffer is replaced.
  std::atomic<bool> io_error_seen{false};
  std::atomic<bool> read_flip_seen{false};
  // A CorruptionError said its only copy was damaged on disk (a write
  // flip): reported, and replaced by the next exclusive operation.
  std::atomic<bool> damaged{false};
};

class Driver;

// One worker thread's state and the operations the workloads are made of.
class Worker {
 public:
  Worker(Driver& d, unsigned index);
  void run();  // until the driver says stop or the op quota is spent

  // ---- operations (each counts one op) ----
  // A pin on `where`, bytes checked at pin and at release; a ReadWrite pin
  // writes the next version. hold_us: how long to keep it.
  void pin_op(Slot& s, Tier where, bool read_write, unsigned hold_us = 0);
  void evict_op(Slot& s, Tier where) { move_op(s, where, true); }
  void prefetch_op(Slot& s, Tier where) { move_op(s, where, false); }
  // An evict (or a prefetch) of the slot's buffer; the next pin checks its bytes.
  void move_op(Slot& s, Tier where, bool evict);
  // Frees the slot's buffer (if any) and allocates a fresh one of `size`,
  // then writes its first version.
  void realloc_op(Slot& s, std::size_t size);

  // ---- the workloads (one step each) ----
  void step_uniform(bool zipf);
  void step_sweep();
  void step_chain();
  void step_pinheavy();
  void step_thrash();
  void release_held();

  std::mt19937_64 rng;

 private:
  // A pin this thread keeps (pinheavy), with the buffer's lock.
  struct Held {
    Slot* slot;
    std::unique_lock<std::shared_mutex> lock;
    Pin pin;
    std::size_t bytes;
    Tier tier;
    void* data;
  };

  Tier random_memory_tier();
  std::size_t random_size();
  Slot& random_slot();
  Slot& zipf_slot();
  // The pin itself, with its checks; the caller holds the slot's lock.
  // Returns an empty Pin when the call threw (handled and counted).
  Pin pin_checked(Slot& s, Tier where, bool read_write);
  // Checks the bytes a pin shows against the slot's expected version.
  bool verify(Slot& s, const Pin& p, Tier where, const char* when);
  // The end of a pin: bytes still there and the buffer did not move.
  void verify_release(Slot& s, Pin& p, Tier where, void* data_at_pin);
  // Under the slot's exclusive lock: allocate + first write.
  void refill_locked(Slot& s, std::size_t size);
  // Classifies the exception in flight (from a pool call on `s`).
  void on_error(Slot* s, std::uint64_t id, std::size_t size, Clock::time_point op_start, const char* call);
  void note_op_time(Clock::time_point start);

  Driver& d_;
  unsigned index_;
  ActivitySlot* activity_ = nullptr;
  std::vector<Held> held_;
  std::array<std::uint64_t, 2> held_bytes_{};  // per memory tier
};

class Driver {
 public:
  explicit Driver(const StressConfig& config);
  StressResult run();

  void violation(std::string what);
  bool faults_were_on(Clock::time_point op_start) const;
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }
  bool take_op();  // false once the op quota is spent

  const StressConfig cfg;
  std::unique_ptr<Pool> pool;
  bool direct_io = false;  // the pool's spill records of kDirectIoMinBytes+ use the direct layout
  std::shared_ptr<FaultInjector> injector;
  std::vector<std::unique_ptr<Slot>> slots;
  std::vector<double> zipf_cdf;         // over slot ranks
  std::vector<std::uint32_t> zipf_perm; // rank -> slot
  std::unique_ptr<Watchdog> watchdog;
  std::atomic<std::uint64_t> cursor{0};  // sweep position, chain step
  std::array<std::uint64_t, 2> pinheavy_cap_bytes{};  // per thread, per memory tier

  // Counters (relaxed atomics; read for progress and the result).
  std::atomic<std::uint64_t> ops{0}, pins{0}, pins_verified{0}, bytes_verified{0}, bytes_written{0},
      allocations{0}, frees{0}, evictions{0}, prefetches{0}, busy_skips{0}, out_of_memory{0},
      fetch_io_errors{0}, evict_io_errors{0}, corruption_damaged{0}, corruption_read_flip{0}, damaged_replaced{0},
      invariant_checks{0};
  std::atomic<std::int64_t> max_op_ns{0};
  std::array<std::atomic<std::uint64_t>, 2> peak_pinned{};  // per memory tier, sampled by the checker

 private:
  friend class Worker;
  void checker_loop(ActivitySlot* activity);
  void final_check(StressResult& out, ActivitySlot* activity);
  void fill_result(StressResult& out);

  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> op_budget_{0};  // remaining ops when cfg.ops > 0
  std::atomic<std::int64_t> faults_off_ns_{0};  // steady-clock ns when faults were turned off; 0: on
  mutable spillway::detail::Mutex violations_mu_;
  std::vector<std::string> violations_ SPILLWAY_GUARDED_BY(violations_mu_);
  std::atomic<std::uint64_t> violation_count_{0};
};

}  // namespace spillway::stress::detail
