// src/offline/scorecard.cpp — a recorded run's spill traffic beside the bounds.
#include "src/offline/scorecard.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "src/offline/replay.hpp"

namespace spillway::offline {

namespace {

std::string mib(std::uint64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  return b;
}

}  // namespace

std::uint64_t boundary_bytes(const std::uint64_t (&moved)[3][3], Boundary boundary) {
  // Tier indices: 0 device, 1 host, 2 disk.
  const int edge = boundary == Boundary::Device ? 0 : 2;
  std::uint64_t total = 0;
  for (int other = 0; other < 3; ++other) {
    if (other == edge) continue;
    total += moved[edge][other] + moved[other][edge];
  }
  return total;
}

std::string ratio_to(std::uint64_t bytes, std::uint64_t lower_bound) {
  if (lower_bound == 0) return bytes == 0 ? "1.00x" : "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.2fx", static_cast<double>(bytes) / static_cast<double>(lower_bound));
  return b;
}

Scorecard make_scorecard(const record::AccessLog& log, const ScorecardOptions& options) {
  Scorecard card;
  BoundOptions bo = options_from(log.options);
  if (options.device_bytes) bo.device_bytes = *options.device_bytes;
  if (options.host_bytes) bo.host_bytes = *options.host_bytes;
  card.device_capacity = bo.device_bytes;
  card.host_capacity = bo.host_bytes;
  card.bounds = compute_bounds(log, bo);
  const bool recorded_budgets = !options.device_bytes && !options.host_bytes;
  if (options.recorded_row && recorded_budgets && log.totals) {
    PolicyRow row;
    row.name = "recorded run";
    row.device_bytes = boundary_bytes(log.totals->moved_bytes, Boundary::Device);
    row.memory_bytes = boundary_bytes(log.totals->moved_bytes, Boundary::Memory);
    card.rows.push_back(row);
  }
  for (EvictionPolicy p : options.policies) {
    ReplayOptions ro;
    ro.device_bytes = bo.device_bytes;
    ro.host_bytes = bo.host_bytes;
    ro.disk_dir = options.disk_dir;
    ro.policy = p;
    const ReplayResult r = replay(log, ro);
    PolicyRow row;
    row.name = policy_display_name(p);
    row.device_bytes = boundary_bytes(r.moved_bytes, Boundary::Device);
    row.memory_bytes = boundary_bytes(r.moved_bytes, Boundary::Memory);
    row.wall_seconds = r.wall_seconds;
    card.rows.push_back(row);
  }
  return card;
}

std::string format_scorecard(const Scorecard& card) {
  std::ostringstream out;
  for (const BoundaryBound* b : {&card.bounds.device, &card.bounds.memory}) {
    if (!b->present) continue;
    out << (b->boundary == Boundary::Device ? "device boundary" : "memory boundary") << " (capacity "
        << mib(b->capacity_bytes) << ")\n";
    if (!b->feasible) {
      out << "  infeasible: " << mib(b->peak_pinned_bytes) << " pinned at event " << b->peak_pinned_event
          << " exceeds the capacity\n";
      continue;
    }
    char line[160];
    std::snprintf(line, sizeof line, "  %-16s %14s\n", "lower bound", mib(b->lower_bound_bytes).c_str());
    out << line;
    std::snprintf(line, sizeof line, "  %-16s %14s  %s the lower bound\n", "upper bound",
                  mib(b->upper_bound_bytes).c_str(), ratio_to(b->upper_bound_bytes, b->lower_bound_bytes).c_str());
    out << line;
    for (const PolicyRow& r : card.rows) {
      const std::uint64_t bytes = b->boundary == Boundary::Device ? r.device_bytes : r.memory_bytes;
      std::snprintf(line, sizeof line, "  %-16s %14s  %s the lower bound\n", r.name.c_str(), mib(bytes).c_str(),
                    ratio_to(bytes, b->lower_bound_bytes).c_str());
      out << line;
    }
  }
  return out.str();
}

std::string scorecard_json(const Scorecard& card) {
  nlohmann::json j;
  j["device_capacity_bytes"] = card.device_capacity;
  j["host_capacity_bytes"] = card.host_capacity;
  for (const BoundaryBound* b : {&card.bounds.device, &card.bounds.memory}) {
    if (!b->present) continue;
    nlohmann::json e;
    e["capacity_bytes"] = b->capacity_bytes;
    e["feasible"] = b->feasible;
    e["lower_bound_bytes"] = b->lower_bound_bytes;
    e["upper_bound_bytes"] = b->upper_bound_bytes;
    for (const PolicyRow& r : card.rows) {
      const std::uint64_t bytes = b->boundary == Boundary::Device ? r.device_bytes : r.memory_bytes;
      e["policies"][r.name] = {{"bytes_moved", bytes},
                               {"x_lower_bound", b->lower_bound_bytes == 0
                                                     ? nlohmann::json(nullptr)
                                                     : nlohmann::json(static_cast<double>(bytes) /
                                                                      static_cast<double>(b->lower_bound_bytes))}};
    }
    j[b->boundary == Boundary::Device ? "device" : "memory"] = e;
  }
  return j.dump(2);
}

}  // namespace spillway::offline
