// python/src/stats_dict.cpp — PoolStats -> dict.
#include "stats_dict.hpp"

#include <string>

#include "spillway/options.hpp"

namespace py = pybind11;

namespace spillway::python {

namespace {

constexpr Tier kTiers[] = {Tier::Device, Tier::Host, Tier::Disk};

py::str tier_key(Tier t) { return py::str(std::string(tier_name(t))); }

py::dict tier_dict(const TierStats& t) {
  py::dict d;
  d["enabled"] = t.enabled;
  d["capacity_bytes"] = t.capacity_bytes == kUnlimited ? py::object(py::none()) : py::object(py::int_(t.capacity_bytes));
  d["used_bytes"] = t.used_bytes;
  d["clean_bytes"] = t.clean_bytes;
  d["pinned_bytes"] = t.pinned_bytes;
  d["peak_bytes"] = t.peak_bytes;
  d["buffers"] = t.buffers;
  d["largest_free_bytes"] = t.largest_free_bytes;
  d["thread_cached_bytes"] = t.thread_cached_bytes;
  d["fragmentation"] = t.fragmentation;
  return d;
}

py::dict move_dict(const MoveStats& m) {
  py::dict d;
  d["moves"] = m.moves;
  d["bytes"] = m.bytes;
  d["stored_bytes"] = m.stored_bytes;
  d["seconds"] = m.seconds;
  return d;
}

}  // namespace

py::dict stats_to_dict(const PoolStats& s) {
  py::dict tiers;
  py::dict moves;
  for (Tier t : kTiers) {
    tiers[tier_key(t)] = tier_dict(s.tier(t));
    py::dict to;
    for (Tier u : kTiers) {
      if (u != t) to[tier_key(u)] = move_dict(s.move(t, u));
    }
    moves[tier_key(t)] = to;
  }
  py::dict evictions;
  evictions["pressure"] = s.evictions[static_cast<int>(EvictionReason::Pressure)];
  evictions["proactive"] = s.evictions[static_cast<int>(EvictionReason::Proactive)];
  evictions["explicit"] = s.evictions[static_cast<int>(EvictionReason::Explicit)];

  py::dict errors;
  errors["spill_write_failures"] = s.errors.spill_write_failures;
  errors["fetch_failures"] = s.errors.fetch_failures;
  errors["corruptions"] = s.errors.corruptions;
  errors["out_of_memory"] = s.errors.out_of_memory;
  errors["timeouts"] = s.errors.timeouts;

  py::list bounds;
  for (double b : kMoveLatencyBounds) bounds.append(b);
  py::list counts;
  for (std::uint64_t c : s.move_latency) counts.append(c);
  py::dict latency;
  latency["bounds_seconds"] = bounds;
  latency["counts"] = counts;
  latency["sum_seconds"] = s.move_latency_sum;

  py::dict d;
  d["tiers"] = tiers;
  d["moves"] = moves;
  d["evictions"] = evictions;
  d["clean_evictions"] = s.clean_evictions;
  d["pins"] = s.pins;
  d["pin_waits"] = s.pin_waits;
  d["stall_seconds"] = s.stall_seconds;
  d["live_buffers"] = s.live_buffers;
  d["disk_stored_bytes"] = s.disk_stored_bytes;
  d["disk_file_bytes"] = s.disk_file_bytes;
  d["disk_direct_io"] = s.disk_direct_io;
  d["disk_overlapped_writes"] = s.disk_overlapped_writes;
  d["errors"] = errors;
  d["move_latency"] = latency;
  return d;
}

}  // namespace spillway::python
