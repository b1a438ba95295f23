// tools/bound_cmd.hpp — `spillway bound LOG`: for a recorded access log,
// the bytes any spill policy must move across each tier boundary (a lower
// bound) and the bytes a feasible offline schedule moves (an upper bound),
// beside what the recorded run moved; --curve: the bounds over a range of
// budgets, as a table, CSV and an SVG drawn by gnuplot. docs/bound.md.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <ostream>
#include <string>

#include "src/offline/bound.hpp"
#include "src/record/access_log.hpp"

namespace spillway::tools {

struct BoundArgs {
  std::string log;
  std::string device;  // empty: the budget the log was recorded with
  std::string host;
  bool json = false;   // JSON on stdout instead of the table
  bool curve = false;
  std::size_t points = 16;
  std::string svg;     // with --curve: draw here (and write .csv and .gp beside it)
  // With --curve: also replay the log with each policy at every budget of
  // the curve (spillway replay), spill files under disk_dir.
  bool policies = false;
  std::string disk_dir;
  // Solve the flow bound up to this many intervals (0: PFOO-L only).
  std::size_t flow_limit = spillway::offline::BoundOptions::kDefaultFlowLimit;
};

CLI::App* add_bound_command(CLI::App& app, BoundArgs& args);
int run_bound_command(const BoundArgs& args);

// The work of the command on a log already in memory (tests call it).
// Writes the table or the JSON to `out`; returns the exit status.
int report_bounds(const record::AccessLog& log, const BoundArgs& args, std::ostream& out);

nlohmann::json to_json(const offline::BoundaryBound& b);

}  // namespace spillway::tools
