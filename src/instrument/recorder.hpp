// src/instrument/recorder.hpp — the pool's event recorder: a bounded ring of
// fixed-size events that any thread appends to without a lock, drained by
// one thread that hands them to a TraceSink.
//
// push() claims a slot with one compare-and-swap and copies 64 bytes; when
// the ring is full the event is dropped and counted (the drain thread then
// reports a Dropped event), so a slow sink never stalls the pool. Labels are
// interned: an event carries a 32-bit id, resolved to the string only on the
// drain thread. Every `sample_interval` the drain thread also asks the pool
// for each tier's used / pinned / capacity bytes (TierUsage events, only
// when a number changed). The destructor delivers everything still in the
// ring, takes a last sample and stops the thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "base/sync.hpp"
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "spillway/trace.hpp"

namespace spillway::instrument {

// One event in the ring (TraceEvent without the string).
struct RawEvent {
  std::uint64_t time_ns;
  std::uint64_t buffer_id;
  std::uint64_t bytes;
  std::uint64_t duration_ns;
  std::uint32_t label;   // Recorder::intern id, 0 for none
  std::uint32_t thread;  // current_thread_index() of the recording thread
  TraceKind kind;
  Tier from;
  Tier to;
  EvictionReason reason;
  bool ok;
};

struct TierSample {
  bool enabled = false;
  std::uint64_t used = 0, pinned = 0, capacity = 0;
};

// A small number that identifies the calling thread in events (1, 2, ...),
// assigned the first time a thread asks.
std::uint32_t current_thread_index();
std::uint64_t steady_now_ns();

class Recorder {
 public:
  static constexpr std::size_t kDefaultCapacity = std::size_t{1} << 16;  // events (4 MiB)
  static constexpr std::chrono::milliseconds kDefaultSampleInterval{10};

  using Sampler = std::function<void(std::array<TierSample, kTierCount>&)>;
  Recorder(std::shared_ptr<TraceSink> sink, Sampler sampler, std::size_t capacity = kDefaultCapacity,
           std::chrono::milliseconds sample_interval = kDefaultSampleInterval);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Appends one event; false (and counted) when the ring is full.
  bool push(const RawEvent& e) noexcept;
  // A stable id for `label` (0 for the empty label).
  std::uint32_t intern(std::string_view label);
  // Distinguishes this recorder's label ids from an earlier recorder's.
  std::uint64_t generation() const { return generation_; }
  // Returns once every event pushed before the call has reached the sink.
  void flush();

  std::uint64_t pushed() const { return pushed_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) Cell {
    std::atomic<std::uint64_t> seq;
    RawEvent event;
  };
  bool pop(RawEvent& e) noexcept;
  void drain();   // on the recorder thread: everything in the ring to the sink
  void sample();  // on the recorder thread: TierUsage events for what changed
  void run();

  std::shared_ptr<TraceSink> sink_;
  Sampler sampler_;
  std::chrono::milliseconds sample_interval_;
  std::uint64_t generation_;
  std::unique_ptr<Cell[]> cells_;
  std::uint64_t mask_;
  alignas(64) std::atomic<std::uint64_t> enqueue_{0};
  alignas(64) std::uint64_t dequeue_ = 0;  // recorder thread only
  std::atomic<std::uint64_t> pushed_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::uint64_t dropped_reported_ = 0;  // recorder thread only

  detail::Mutex labels_mu_;
  std::vector<std::string> labels_ SPILLWAY_GUARDED_BY(labels_mu_);  // by id; [0] is ""
  std::unordered_map<std::string, std::uint32_t> label_ids_ SPILLWAY_GUARDED_BY(labels_mu_);

  std::array<TierSample, kTierCount> last_sample_{};
  bool sampled_ = false;
  TraceEvent out_;  // reused, so that labels do not allocate per event

  detail::Mutex mu_;
  std::condition_variable cv_;        // wakes the recorder thread
  std::condition_variable flushed_;   // wakes flush() callers
  std::uint64_t flush_requests_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::uint64_t delivered_ SPILLWAY_GUARDED_BY(mu_) = 0;  // dequeue_ at the last drain
  bool stopping_ SPILLWAY_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace spillway::instrument
