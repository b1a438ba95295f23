// src/offline/scorecard.hpp — a recorded run's spill traffic beside the
// offline bounds: what the run itself moved (the log's footer), what each
// policy moves when the log is replayed on a real pool (src/offline/replay),
// and the lower and upper bounds on what any policy must move
// (src/offline/bound), per tier boundary. `spillway report LOG` prints it;
// `spillway bound LOG --curve --policies` draws it over a range of budgets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spillway/options.hpp"
#include "src/offline/bound.hpp"
#include "src/record/access_log.hpp"

namespace spillway::offline {

// The bytes that crossed a boundary, from per-tier-pair counters
// ([from][to] by tier index): the device boundary is every move into or out
// of the device tier, the memory boundary every move into or out of disk.
std::uint64_t boundary_bytes(const std::uint64_t (&moved)[3][3], Boundary boundary);

struct PolicyRow {
  std::string name;  // "recorded run", "lru (clock)", "lookahead"
  std::uint64_t device_bytes = 0, memory_bytes = 0;  // across each boundary
  double wall_seconds = 0;                           // replays only
};

struct Scorecard {
  std::uint64_t device_capacity = 0, host_capacity = 0;
  BoundResult bounds;
  std::vector<PolicyRow> rows;  // the recorded run first when the log has a footer
};

struct ScorecardOptions {
  std::optional<std::uint64_t> device_bytes, host_bytes;  // unset: the recorded budgets
  std::string disk_dir;                                   // for the replays' spill files
  std::vector<EvictionPolicy> policies{EvictionPolicy::Lru, EvictionPolicy::Lookahead};
  bool recorded_row = true;  // include the footer's bytes (only at the recorded budgets)
};

Scorecard make_scorecard(const record::AccessLog& log, const ScorecardOptions& options);

// "1.23x" (bytes / lower bound), "-" when the lower bound is 0 and bytes > 0,
// "1.00x" when both are 0.
std::string ratio_to(std::uint64_t bytes, std::uint64_t lower_bound);

// The scorecard as a text table (one line per policy and bound, per
// boundary) and as JSON text.
std::string format_scorecard(const Scorecard& card);
std::string scorecard_json(const Scorecard& card);

}  // namespace spillway::offline
