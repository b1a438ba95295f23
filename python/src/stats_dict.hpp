// python/src/stats_dict.hpp — PoolStats as the dict that Pool.stats() returns.
//
// The dict mirrors the C++ struct field for field (docs/python.md shows it):
//   tiers[tier]       -> {enabled, capacity_bytes, used_bytes, clean_bytes, pinned_bytes, peak_bytes,
//                         buffers, largest_free_bytes, thread_cached_bytes, fragmentation}
//   moves[from][to]   -> {moves, bytes, stored_bytes, seconds}, for every pair of different tiers
//   evictions[reason] -> count ("pressure", "proactive", "explicit")
//   errors[kind]      -> count
//   move_latency      -> {bounds_seconds, counts, sum_seconds}
// and the scalar counters under their C++ names. Tiers are keyed "device",
// "host", "disk"; an unlimited capacity (the disk quota by default) is None.
#pragma once

#include <pybind11/pybind11.h>

#include "spillway/stats.hpp"

namespace spillway::python {

pybind11::dict stats_to_dict(const PoolStats& stats);

}  // namespace spillway::python
