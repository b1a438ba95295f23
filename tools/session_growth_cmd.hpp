// tools/session_growth_cmd.hpp — the `spillway session-growth` subcommand.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace spillway::tools {

// Embedded defaults: on a 2-core machine the leaky graph outgrows the device
// budget and then the host budget within about a minute (docs/session-growth.md).
struct SessionGrowthArgs {
  std::string device = "512K";
  std::string host = "1M";
  std::string backend = "simulated";
  int epochs = 100;
  int steps = 10;
  int samples = 1000;
  int features = 32;
  std::uint64_t seed = 42;
  std::string modes = "leaky,clear";
  std::string out = "session-growth-out";
  std::string trace;
  std::string trace_keep = "last";
  unsigned inter_op_threads = 0;  // 0: the hardware's threads
};

CLI::App* add_session_growth_command(CLI::App& app, SessionGrowthArgs& args);
int run_session_growth_command(const SessionGrowthArgs& args);
// Least-squares slope of y over x (0 with fewer than two points).
double least_squares_slope(const std::vector<double>& x, const std::vector<double>& y);
// Draws session_growth.svg (and keeps session_growth.gp) in `dir` from the
// experiment's CSV: step time per epoch for both modes, bytes per tier per
// epoch. False, with *why, when gnuplot could not draw it.
bool plot_session_growth(const std::string& dir, const std::string& csv, const std::string& title,
                         std::string* why);

}  // namespace spillway::tools
