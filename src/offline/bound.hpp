// src/offline/bound.hpp — how many bytes must ANY spill policy move across
// a tier boundary for a recorded run (an AccessLog)? A lower bound, an
// upper bound from a feasible offline schedule, and for equal-sized buffers
// Belady's MIN; `spillway bound` prints them and `spillway report` compares
// a policy's bytes with them. The model, the algorithms and why the bounds
// hold: docs/bound.md. After Berger, Beckmann and Harchol-Balter, "Practical
// Bounds on Optimal Caching with Variable Object Sizes" (SIGMETRICS 2018):
// the lower bound is the better of their FOO (a min-cost flow,
// flow_bound.hpp, on logs small enough) and PFOO-L, the upper bound the
// better of PFOO-U and Belady's rule, extended with write-backs and pinned
// (mandatory) occupancy.
//
// Pure functions of their arguments; safe to call from several threads.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "src/offline/access_intervals.hpp"
#include "src/record/access_log.hpp"

namespace spillway::offline {

struct BoundOptions {
  std::uint64_t device_bytes = 0;  // 0: no device tier (the device boundary is skipped)
  std::uint64_t host_bytes = 0;
  // Keep, per interval, whether the upper bound's schedule keeps it
  // (BoundaryBound::schedule): for tests and pictures, not for 10^7 events.
  bool keep_schedule = false;
  // Also run Belady's MIN when every buffer has the same size.
  bool equal_size_min = true;
  // What a buffer takes of a tier: its size rounded up to this (at least one
  // granule). 1 counts bytes as they are; options_from() sets the pool's
  // arena granularity (kArenaGranularity), which is what the real tiers
  // charge: a log of many small buffers fills a tier long before their
  // bytes add up to its capacity.
  std::uint64_t granularity = 1;
  // The flow bound (flow_bound.hpp) is solved when at most this many
  // intervals cover a point (0: never), and only where PFOO-L's bound
  // is below the upper one; above the limit the lower bound is PFOO-L's
  // alone. The network simplex takes about 0.1 s on 13,000 intervals and
  // minutes on 250,000 (docs/bound.md).
  std::size_t flow_limit = kDefaultFlowLimit;
  static constexpr std::size_t kDefaultFlowLimit = 50'000;
};
// The budgets the log was recorded with, and the pool's arena granularity.
BoundOptions options_from(const record::RecordedOptions& recorded);

// One kept-or-not choice per interval of the upper bound's schedule, with
// what a checker needs to replay it against the log.
struct ScheduledInterval {
  std::uint64_t buffer = 0;       // Buffer::id()
  std::uint64_t bytes = 0;
  std::uint32_t begin_event = 0;  // the unpin (or allocation) the interval starts after
  std::uint32_t end_event = 0;    // the pin that ends it
  bool kept = false;              // resident above for the whole interval
};

struct BoundaryBound {
  Boundary boundary = Boundary::Device;
  std::uint64_t capacity_bytes = 0;
  bool present = false;  // false: no such boundary (no device tier), nothing below
  // False: the pinned bytes alone exceed the capacity at some event; the
  // recorded pool would have thrown OutOfMemory there. The bounds are 0.
  bool feasible = true;
  std::uint64_t peak_pinned_bytes = 0;
  std::uint64_t peak_pinned_event = 0;  // the first event where the peak is reached

  std::uint64_t lower_bound_bytes = 0;  // no policy moves fewer bytes: the best of the bounds below
  std::uint64_t pfoo_lower_bytes = 0;   // PFOO-L's (space-time knapsack)
  std::optional<std::uint64_t> flow_lower_bytes;  // the flow bound's, when it was solved
  std::uint64_t upper_bound_bytes = 0;  // a feasible schedule moves this many
  std::uint64_t lower_fetch_bytes = 0, lower_writeback_bytes = 0;  // the lower bound's parts
  std::uint64_t upper_fetch_bytes = 0, upper_writeback_bytes = 0;  // the schedule's parts
  std::uint64_t compulsory_bytes = 0;  // fetches and write-backs no policy avoids
  // Belady's MIN (equal-sized buffers only): its bytes, and whether it is
  // the exact optimum (no write-back a schedule could save).
  std::optional<std::uint64_t> min_bytes;
  bool exact = false;  // lower == upper == the optimum

  std::uint64_t spans = 0;      // accesses above the boundary (pins, nested ones merged)
  std::uint64_t intervals = 0;  // gaps between them a schedule may bridge
  std::uint64_t equal_size = 0; // the buffers' one size, 0 when they differ
  std::vector<ScheduledInterval> schedule;  // only with keep_schedule
};

struct BoundResult {
  std::uint64_t events = 0;
  std::uint64_t unknown_buffer_events = 0;  // pins/unpins/frees of buffers never allocated
  std::uint64_t stray_unpins = 0;           // unpins with no pin to match
  BoundaryBound device, memory;
};

BoundResult compute_bounds(const record::AccessLog& log, const BoundOptions& options);

// A log prepared once for one boundary (the model and the schedule order do
// not depend on the capacity), evaluated at many capacities: the curve.
class BoundaryModel {
 public:
  // granularity: see build_interval_trace (BoundOptions::granularity).
  BoundaryModel(const record::AccessLog& log, Boundary boundary, std::uint64_t granularity = 1);
  BoundaryBound evaluate(std::uint64_t capacity, bool keep_schedule = false, bool equal_size_min = true) const;
  // At most how many intervals the flow bound takes on (BoundOptions::flow_limit).
  void set_flow_limit(std::size_t limit) { flow_limit_ = limit; }
  const IntervalTrace& trace() const { return trace_; }
  // The capacity below which the log is infeasible, and the one above which
  // only compulsory bytes move (every buffer fits at once).
  std::uint64_t min_feasible_capacity() const { return peak_.bytes; }
  std::uint64_t working_set_bytes() const { return working_set_; }

 private:
  IntervalTrace trace_;
  PeakPinned peak_;
  std::uint64_t working_set_ = 0;
  std::vector<std::uint32_t> order_;         // intervals, best benefit per resource first
  std::vector<std::uint64_t> benefit_;       // fetch + the write-back assigned to it
  std::vector<std::uint8_t> carries_epoch_;  // 1: this interval carries its epoch's write-back
  std::uint64_t total_fetch_ = 0, total_writeback_ = 0;  // every fetch and write-back possible
  std::size_t flow_limit_ = BoundOptions::kDefaultFlowLimit;
};

struct CurvePoint {
  std::uint64_t capacity_bytes = 0;
  BoundaryBound bound;
};
// Bounds at each capacity (for the device boundary: device bytes; for the
// memory boundary: device + host bytes).
std::vector<CurvePoint> curve(const BoundaryModel& model, std::span<const std::uint64_t> capacities);
// `points` capacities from the smallest feasible one to the working set,
// evenly spaced (at least 2).
std::vector<std::uint64_t> curve_capacities(const BoundaryModel& model, std::size_t points);

}  // namespace spillway::offline
