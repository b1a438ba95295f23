// spillway/trace.hpp — the events a Pool records for a TraceSink.
//
// Pool::set_trace(sink) turns the pool's recorder on: every event below is
// written, by whichever thread caused it, into a bounded in-memory ring
// (a few tens of nanoseconds, no lock, no allocation), and one recorder
// thread hands the events to sink->record() — never under the pool's lock,
// one event at a time, roughly in time order (events of different threads
// may interleave out of order by a few microseconds; sort by time_ns when
// it matters). When the sink falls behind and the ring fills, later events
// are dropped, counted, and reported to the sink as one Dropped event.
// set_trace(nullptr) delivers what is in the ring and turns recording off;
// while it is off no event is built at all.
//
// Alternatively PoolOptions::trace_file (SPILLWAY_TRACE=path) makes the pool
// record a Perfetto-readable trace to that file for its whole life.
#pragma once

#include <cstdint>
#include <string>

#include "spillway/stats.hpp"
#include "spillway/tier.hpp"

namespace spillway {

enum class TraceKind : std::uint8_t {
  Alloc,        // a buffer was allocated on `to`
  Free,         // a buffer was freed (it was primary on `from`)
  Pin,          // a pin was granted on `to`
  PinWait,      // a pin had to wait for bytes to move; duration_ns is the wait
  Unpin,        // the last pin of a buffer on `from` was released
  SpillBegin,   // a move down (from -> to) started
  SpillEnd,     // ... and ended; duration_ns is the copy, ok whether it succeeded
  FetchBegin,   // a move up started
  FetchEnd,     // ... and ended
  Evict,        // an eviction that wrote nothing: the primary on `from` was
                // dropped because `to` already held a clean copy
  OutOfMemory,  // OutOfMemory was thrown for tier `from`, `bytes` asked for
  NodeBegin,    // a graph executor node started (label: the node's name)
  NodeEnd,      // ... and ended; duration_ns is its run time
  TierUsage,    // a sample of tier `from`: used, pinned and capacity bytes
  Dropped,      // `bytes` events were lost because the ring was full
};

// "alloc", "free", "pin", "pin_wait", ... (the enumerator in snake case).
const char* trace_kind_name(TraceKind kind);

struct TraceEvent {
  TraceKind kind = TraceKind::Alloc;
  std::uint64_t time_ns = 0;      // steady clock (std::chrono::steady_clock)
  std::uint64_t buffer_id = 0;    // 0 when not about one buffer
  std::uint64_t bytes = 0;        // the buffer's size (OutOfMemory: asked; Dropped: count)
  Tier from = Tier::Host;
  Tier to = Tier::Host;
  EvictionReason reason = EvictionReason::Pressure;
  bool ok = true;                 // for *End events: whether the move succeeded
  std::uint64_t duration_ns = 0;  // for *End, PinWait and NodeEnd events
  std::uint32_t thread = 0;       // the recording thread (see trace_thread_name)
  std::uint64_t used_bytes = 0;   // TierUsage only
  std::uint64_t pinned_bytes = 0;
  std::uint64_t capacity_bytes = 0;
  std::string label;              // the buffer's label, or the node's name
};

// The name of a thread that recorded events: its OS name when it was first
// seen ("spillway-io" for the pool's IO workers), with the index appended.
std::string trace_thread_name(std::uint32_t thread);

class TraceSink {
 public:
  virtual ~TraceSink() = default;
  // Called from the recorder's thread only (never two calls at once).
  virtual void record(const TraceEvent& event) = 0;
};

}  // namespace spillway
