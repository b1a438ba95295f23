// spillway/trace.hpp — the events a Pool reports to a TraceSink.
//
// Pool::set_trace(sink) makes the pool call sink->record() for every event
// below, from whichever thread caused it (foreground or IO worker); a sink
// must therefore be thread-safe and quick. nullptr turns tracing off, and
// then no event is built at all.
#pragma once

#include <cstdint>
#include <string>

#include "spillway/stats.hpp"
#include "spillway/tier.hpp"

namespace spillway {

enum class TraceKind : std::uint8_t {
  Alloc, Free, Pin, PinWait, Unpin, SpillBegin, SpillEnd, FetchBegin, FetchEnd, Evict, OutOfMemory,
};

struct TraceEvent {
  TraceKind kind;
  std::uint64_t time_ns;    // steady clock
  std::uint64_t buffer_id;  // 0 when not about one buffer
  std::uint64_t bytes;
  Tier from;
  Tier to;
  EvictionReason reason;
  bool ok;                  // for *End events: whether the move succeeded
  std::uint64_t duration_ns;  // for *End and PinWait events
  std::string label;
};

class TraceSink {
 public:
  virtual ~TraceSink() = default;
  virtual void record(const TraceEvent& event) = 0;
};

}  // namespace spillway
