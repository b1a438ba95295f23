// src/offline/flow_bound.hpp — the tighter lower bound: the linear
// relaxation of "keep a set of intervals that fits at every point", solved
// exactly as a min-cost flow (Berger, Beckmann and Harchol-Balter's FOO,
// with pins and write-backs as in bound.hpp). PFOO-L relaxes the same
// problem further, to one constraint summed over all points, so this bound
// is never below it; on short logs whose pins peak at a few points it is
// much tighter (docs/bound.md, "The flow bound").
//
// Internal to the library (src/offline). Pure function; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "src/offline/access_intervals.hpp"

namespace spillway::offline {

// What the relaxation says no schedule can save (of the benefits given):
// a lower bound on the benefit every schedule loses.
struct FlowLowerBound {
  std::uint64_t unsaved_bytes = 0;            // fetches + write-backs not saved, rounded down
  std::uint64_t unsaved_writeback_bytes = 0;  // the write-back part of it (apportioned), <= unsaved_bytes
  std::size_t arcs = 0;                       // size of the network solved
};

// benefit[i]: what keeping interval i saves (its fetch, plus the write-back
// of the epoch it carries). Intervals that cover no point are always kept
// and left out. Returns nothing when more than `max_intervals` intervals
// cover a point (the network would be too large to solve quickly), and
// REQUIRES that the pins fit the capacity at every point.
std::optional<FlowLowerBound> flow_lower_bound(const IntervalTrace& t, std::span<const std::uint64_t> benefit,
                                               std::uint64_t capacity, std::size_t max_intervals);

}  // namespace spillway::offline
