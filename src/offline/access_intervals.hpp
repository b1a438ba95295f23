// src/offline/access_intervals.hpp — the offline bound's model of a recorded
// run (docs/bound.md): for one tier boundary, the log becomes
//   * access spans: from the pin that makes a buffer pinned above the
//     boundary to the unpin that leaves it unpinned there; the buffer must
//     be resident above for the whole span (mandatory occupancy);
//   * intervals: from the end of one span (or the buffer's creation above
//     the boundary) to the next span of the same buffer. A schedule either
//     keeps the buffer above for the whole interval ("kept": it occupies its
//     bytes throughout and saves the fetch at the interval's end) or evicts
//     it right after the span (and pays the fetch, and possibly a write-back);
//   * dirty epochs: from a ReadWrite span to the next one; the epoch's
//     write-back is saved only when every interval of the epoch is kept.
// Every schedule in the model is a choice of kept intervals; its cost is
// schedule_cost(). The bounds (bound.hpp) and Belady's MIN choose such sets.
//
// Time is measured in *points*: the events at which occupancy above the
// boundary can grow, i.e. span starts and allocations above it. Between two
// points nothing is added, so a capacity that holds at every point holds at
// every event (the argument is in docs/bound.md; the tests check it by
// simulating every event).
//
// Internal to the library (src/offline); tools and tests include it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "src/record/access_log.hpp"

namespace spillway::offline {

enum class Boundary : std::uint8_t {
  Device = 0,  // device tier | host + disk; capacity = device bytes
  Memory = 1,  // device + host | disk; capacity = device + host bytes
};
const char* to_string(Boundary b);

inline constexpr std::uint32_t kNone = 0xffffffffu;

// One boundary's view of a log. Arrays of structs are split into parallel
// arrays (one per field) so that a 10^7-event log costs a few hundred MB.
struct IntervalTrace {
  Boundary boundary = Boundary::Device;
  std::uint64_t events = 0;  // events in the log

  // Points, in time order: the event index of each.
  std::vector<std::uint32_t> point_event;
  // Mandatory (pinned) room as a difference array over points: the pinned
  // bytes at point p are the prefix sum of mandatory_delta[0..p].
  std::vector<std::int64_t> mandatory_delta;  // points + 1 entries
  // The interval that ends at point p (the span starting there continues it),
  // or kNone.
  std::vector<std::uint32_t> point_incoming;

  // Intervals (index i). A kept interval occupies `bytes` at points
  // [first[i], last[i]]; last < first means it covers no point (it can
  // always be kept). begin_event: the unpin that ended the previous span, or
  // the allocation; end_event: the pin that starts the next span.
  std::vector<std::uint32_t> first, last;
  std::vector<std::uint64_t> bytes;  // what a fetch of it moves (the buffer's size)
  std::vector<std::uint64_t> room;   // what keeping it takes of the tier (its size rounded to the granularity)
  std::vector<std::uint32_t> epoch;   // dirty epoch, or kNone when the buffer is clean
  std::vector<std::uint32_t> buffer;  // dense buffer index (buffer_ids)
  std::vector<std::uint32_t> begin_event, end_event;

  // Dirty epochs whose write-back a schedule can save (those with at least
  // one interval and not ended by a pin below the boundary).
  std::vector<std::uint64_t> epoch_bytes;
  std::vector<std::uint32_t> epoch_intervals;  // intervals in each epoch

  std::uint64_t compulsory_fetch_bytes = 0;      // spans no schedule can find resident
  std::uint64_t compulsory_writeback_bytes = 0;  // dirty data a pin below must find below
  std::uint64_t spans = 0;                        // access spans above the boundary
  std::uint64_t stray_unpins = 0;                 // unpins with no matching pin (ignored)
  std::uint64_t unknown_buffer_events = 0;        // events of buffers the log never allocated

  std::vector<std::uint64_t> buffer_ids;  // dense index -> Buffer::id()
  std::vector<std::uint64_t> buffer_bytes;
  std::vector<std::uint64_t> buffer_room;  // buffer_bytes rounded up to the granularity
  // What a buffer of equal_size takes of the tier.
  std::uint64_t equal_room = 0;
  // All buffers with a span or an interval have this size; 0 when they differ.
  std::uint64_t equal_size = 0;

  std::size_t points() const { return point_event.size(); }
  std::size_t intervals() const { return first.size(); }
  // Points covered by interval i (0 when it covers none).
  std::uint64_t length(std::size_t i) const { return last[i] >= first[i] && last[i] != kNone ? last[i] - first[i] + 1 : 0; }
};

// Builds the model of `log` for one boundary: O(events) time, one pass.
// Throws std::invalid_argument when the log has 2^32 - 1 or more events.
// A buffer of n bytes takes n rounded up to `granularity` (at least one
// granule) of the tier's capacity: what the pool's arenas charge
// (kArenaGranularity); 1 counts bytes as they are.
IntervalTrace build_interval_trace(const record::AccessLog& log, Boundary boundary, std::uint64_t granularity = 1);

// The pool's memory tiers place every block on this granularity
// (tiers/device/sub_allocator.hpp: SubAllocator::kAlignment).
inline constexpr std::uint64_t kArenaGranularity = 256;

// Cost of a schedule (kept[i] for each interval): fetches of every interval
// not kept, plus one write-back per epoch with an interval not kept, plus the
// compulsory bytes.
struct ScheduleCost {
  std::uint64_t fetch_bytes = 0;
  std::uint64_t writeback_bytes = 0;
  std::uint64_t total() const { return fetch_bytes + writeback_bytes; }
};
ScheduleCost schedule_cost(const IntervalTrace& t, std::span<const std::uint8_t> kept);

// The largest mandatory occupancy and the first point where it is reached.
struct PeakPinned {
  std::uint64_t bytes = 0;
  std::uint32_t point = kNone;
};
PeakPinned peak_pinned(const IntervalTrace& t);

// Belady's rule: at every point, while the pinned and resident room is over
// capacity, evict the unpinned resident buffer whose next access is
// farthest. Returns kept[i] per interval: a feasible schedule for any sizes
// (so an upper bound); for equal sizes it is MIN, which keeps the most
// intervals. REQUIRES: the pinned buffers fit at every point.
std::vector<std::uint8_t> belady_min_schedule(const IntervalTrace& t, std::uint64_t capacity);

}  // namespace spillway::offline
