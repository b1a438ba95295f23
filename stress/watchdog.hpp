// stress/watchdog.hpp — notices an operation that waits longer than it may.
//
// Each watched thread owns an ActivitySlot and publishes what it is doing
// (operation, buffer id, tier, bytes, start time) before each call into the
// pool, and clears it after. The watchdog's own thread looks at every slot a
// few times per bound; an operation that has run longer than the bound is
// reported once — which thread, what it called, on which buffer, for how
// long — through the callback and in reports(). A hang is a violation: the
// stress harness fails the run when hung() is true.
//
// The watchdog never calls into the pool (whose lock a hang may hold); it
// reads only the slots. Publishing is a few relaxed atomic stores: cheap
// enough for every pool call.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "base/sync.hpp"
#include <string>
#include <thread>
#include <vector>

#include "spillway/tier.hpp"

namespace spillway::stress {

enum class OpKind : std::uint8_t {
  Idle,
  Allocate,
  Pin,
  Evict,
  Prefetch,
  Free,
  Quiesce,
  CheckInvariants,
  Stats,
};

const char* op_name(OpKind k);

// What one thread is doing now. Written by its thread, read by the watchdog.
class ActivitySlot {
 public:
  explicit ActivitySlot(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  void begin(OpKind kind, std::uint64_t buffer = 0, Tier tier = Tier::Host, bool read_write = false,
             std::uint64_t bytes = 0);
  void end();

  struct Snapshot {
    OpKind kind = OpKind::Idle;
    std::uint64_t buffer = 0;
    Tier tier = Tier::Host;
    bool read_write = false;
    std::uint64_t bytes = 0;
    std::int64_t start_ns = 0;
    std::uint64_t seq = 0;  // which operation (each begin() takes a new one)
  };
  // A consistent view (retried while the thread is mid-update).
  Snapshot snapshot() const;

 private:
  std::string name_;
  std::atomic<std::uint64_t> seq_{0};  // odd while an update is being written
  std::atomic<std::uint8_t> kind_{0};
  std::atomic<std::uint64_t> buffer_{0};
  std::atomic<std::uint8_t> tier_{0};
  std::atomic<bool> read_write_{false};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::int64_t> start_ns_{0};
};

// begin() now, end() when the scope ends (also by an exception).
class ScopedActivity {
 public:
  ScopedActivity(ActivitySlot* slot, OpKind kind, std::uint64_t buffer = 0, Tier tier = Tier::Host,
                 bool read_write = false, std::uint64_t bytes = 0)
      : slot_(slot) {
    if (slot_ != nullptr) slot_->begin(kind, buffer, tier, read_write, bytes);
  }
  ~ScopedActivity() {
    if (slot_ != nullptr) slot_->end();
  }
  ScopedActivity(const ScopedActivity&) = delete;
  ScopedActivity& operator=(const ScopedActivity&) = delete;

 private:
  ActivitySlot* slot_;
};

struct HangReport {
  std::string thread;
  OpKind kind = OpKind::Idle;
  std::uint64_t buffer = 0;
  double waited_seconds = 0;
  double bound_seconds = 0;
  std::string text;  // one line saying all of the above
};

class Watchdog {
 public:
  // `on_hang` (optional) runs on the watchdog's thread for each report.
  explicit Watchdog(std::chrono::milliseconds bound,
                    std::function<void(const HangReport&)> on_hang = {});
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // A slot for one thread; valid for the watchdog's life. Register every
  // thread before start() or while running.
  ActivitySlot* register_thread(std::string name);
  void start();
  void stop();

  std::chrono::milliseconds bound() const { return bound_; }
  bool hung() const { return hangs_.load() > 0; }
  std::uint64_t hangs() const { return hangs_.load(); }
  std::vector<HangReport> reports() const;
  // The longest an operation has run so far, among those seen finished or
  // still running at a scan (seconds).
  double longest_seconds() const;
  // Checks every slot once (the thread does this periodically).
  void scan();

 private:
  void run();

  const std::chrono::milliseconds bound_;
  std::function<void(const HangReport&)> on_hang_;
  mutable spillway::detail::Mutex mu_;
  std::condition_variable cv_;
  bool stop_ SPILLWAY_GUARDED_BY(mu_) = false;
  std::deque<ActivitySlot> slots_ SPILLWAY_GUARDED_BY(mu_);  // stable addresses
  std::vector<std::uint64_t> reported_seq_ SPILLWAY_GUARDED_BY(mu_);        // per slot: the op already reported
  std::vector<HangReport> reports_ SPILLWAY_GUARDED_BY(mu_);
  std::atomic<std::uint64_t> hangs_{0};
  std::atomic<std::int64_t> longest_ns_{0};
  std::thread thread_;
};

}  // namespace spillway::stress
