// stress/stress_run.hpp — the stress driver: a Pool under a chosen workload,
// every byte of every pin verified, faults injected, invariants checked and
// hangs watched; a result that says what happened and whether anything
// broke the contract (docs/reliability.md).
//
// run_stress() builds a Pool (simulated device tier, host tier, disk tier in
// a private directory) with a FaultInjector as its disk environment, fills a
// working set of buffers (oversubscription x device+host), and runs
// `threads` workers over it. Each buffer holds a pattern derived from
// (buffer id, version); a ReadWrite pin checks the old version and writes
// the next. Beside the workers a checker thread calls
// Pool::check_invariants() every check_interval, and a Watchdog reports any
// pool call that runs longer than its bound. At the end, faults are turned
// off, every buffer is read back and freed, the invariants are checked once
// more and every tier must be empty.
//
// Violations (each fails the run): a pin that returns wrong bytes, a buffer
// that cannot be read back once faults are off (other than one whose only
// copy a write flip damaged: that ends in CorruptionError, counted as
// "corrupted, reported"), a broken invariant, an exception the contract does
// not name for that call, an unexplained CorruptionError or IoError, a wait
// that hit io_timeout, storage left after everything was freed, and a hang.
//
// Thread-safety: run_stress may be called from one thread at a time per
// process (the device fault seam is process-wide).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fault_injector.hpp"
#include "spillway/options.hpp"
#include "spillway/stats.hpp"

namespace spillway::stress {

enum class Workload : std::uint8_t {
  Uniform,   // random buffers, random pins, evictions, prefetches, reallocations
  Zipf,      // the same over a hot/cold (Zipf, s = 1.1) choice of buffers
  Sweep,     // sequential sweeps over a working set that lives mostly on disk
  Chain,     // producer/consumer chains: node k writes buffer k, later nodes read it
  PinHeavy,  // each thread holds many pins at once, near the tiers' capacity
  Thrash,    // deliberate ping-pong of buffers between the three tiers
};
inline constexpr int kWorkloads = 6;

const char* workload_name(Workload w);
// Throws std::invalid_argument listing the names.
Workload parse_workload(const std::string& name);
// The working set / (device + host) a workload uses unless told otherwise.
double default_oversubscription(Workload w);

struct StressProgress {
  double seconds = 0;
  std::uint64_t ops = 0;
  std::uint64_t pins_verified = 0;
  std::uint64_t bytes_verified = 0;
  std::uint64_t documented_exceptions = 0;
  std::uint64_t violations = 0;
  bool faults_on = false;
};

struct StressConfig {
  Workload workload = Workload::Uniform;
  unsigned threads = 4;
  double duration_seconds = 10;  // used when ops == 0
  std::uint64_t ops = 0;         // workload steps over all threads (the initial fill included)
  std::size_t size_min = std::size_t{64} << 10;
  std::size_t size_max = std::size_t{1} << 20;
  std::size_t device_bytes = std::size_t{16} << 20;  // 0: no device tier
  std::size_t host_bytes = std::size_t{32} << 20;
  std::uint64_t disk_bytes = kUnlimited;
  double oversubscription = 0;  // working set / (device + host); 0: the workload's default
  std::uint64_t seed = 1;
  FaultRates faults;
  double faults_stop_seconds = 0;  // > 0: faults off this long after the start
  std::chrono::milliseconds pressure_wait{1000};
  std::chrono::milliseconds io_timeout{5000};
  std::chrono::milliseconds watchdog_bound{0};  // 0: 2 x io_timeout + pressure_wait
  std::chrono::milliseconds check_interval{50};
  unsigned io_threads = 2;
  EvictionPolicy policy = EvictionPolicy::Lru;
  Compression compression = Compression::Adaptive;
  std::string spill_dir;  // parent of the pool's private spill directory ("" = default)
  // Called about four times a second on the thread that runs run_stress.
  std::function<void(const StressProgress&)> on_progress;

  std::chrono::milliseconds effective_watchdog_bound() const;
  // Throws std::invalid_argument naming the first setting that is wrong.
  void validate() const;
};

struct FaultOutcome {
  std::uint64_t injected = 0;
  std::string outcome;  // how those faults ended, in words with numbers
};

struct StressResult {
  StressConfig config;           // as run (on_progress cleared)
  std::uint64_t working_set_bytes = 0;
  std::uint64_t buffers = 0;     // slots in the working set
  double seconds = 0;            // the workload phase
  double total_seconds = 0;      // including the final check

  std::uint64_t ops = 0;             // pool calls: pin, evict, prefetch, allocate, free
  std::uint64_t pins = 0;
  std::uint64_t pins_verified = 0;   // pins whose bytes were checked (at pin and at release)
  std::uint64_t bytes_verified = 0;
  std::uint64_t bytes_written = 0;   // patterns written by ReadWrite pins
  std::uint64_t allocations = 0;
  std::uint64_t frees = 0;
  std::uint64_t evictions = 0;
  std::uint64_t prefetches = 0;
  std::uint64_t busy_skips = 0;      // ops skipped because another thread held the buffer
  double max_op_seconds = 0;         // the longest pool call
  std::array<std::uint64_t, 2> peak_pinned_bytes{};  // device, host: the most seen pinned at once

  // Documented outcomes seen by the workers.
  std::uint64_t out_of_memory = 0;
  std::uint64_t fetch_io_errors = 0;       // pin threw IoError (an injected read error)
  std::uint64_t evict_io_errors = 0;       // evict threw IoError (an injected write error)
  std::uint64_t corruption_damaged = 0;    // CorruptionError from a record a write flip damaged
  std::uint64_t corruption_read_flip = 0;  // CorruptionError from a flipped read
  std::uint64_t damaged_replaced = 0;      // buffers reported damaged, then freed and replaced

  // The final check, with faults off.
  std::uint64_t final_checked = 0;
  std::uint64_t final_intact = 0;
  std::uint64_t final_corrupted_reported = 0;  // CorruptionError: the only copy was damaged
  std::uint64_t final_io_error_seen = 0;       // buffers checked that had thrown IoError
  std::uint64_t final_io_error_recovered = 0;  // ... and read back intact
  std::uint64_t final_read_flip_seen = 0;      // buffers checked that had thrown CorruptionError on a read flip
  std::uint64_t final_read_flip_recovered = 0; // ... and read back intact
  std::uint64_t leftover_bytes = 0;            // on any tier after everything was freed

  std::array<FaultOutcome, kFaultKinds> faults{};
  double latency_injected_seconds = 0;

  PoolStats pool;  // at the end of the workload phase
  std::uint64_t invariant_checks = 0;
  std::uint64_t hangs = 0;
  double watchdog_bound_seconds = 0;
  double watchdog_longest_seconds = 0;
  bool stuck = false;  // a worker never returned: the pool was leaked, do not exit normally

  std::uint64_t violation_count = 0;
  std::vector<std::string> violations;  // the first 100

  // 0: passed; 1: a violation; 3: a hang (the watchdog fired).
  int exit_code() const;
  std::string summary() const;
  std::string to_json() const;
};

StressResult run_stress(const StressConfig& config);

}  // namespace spillway::stress
