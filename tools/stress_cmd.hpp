// tools/stress_cmd.hpp — the `spillway stress` subcommand: options, progress
// on the terminal, the summary, the JSON file and the exit status of a
// stress run (stress/stress_run.hpp does the work).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace spillway::tools {

struct StressArgs {
  std::string workload = "uniform";
  unsigned threads = 4;
  double duration = 10;
  std::uint64_t ops = 0;
  std::string size_min = "64K";
  std::string size_max = "1M";
  std::string device = "16M";
  std::string host = "32M";
  std::string disk = "unlimited";
  double oversub = 0;
  std::uint64_t seed = 1;
  std::string faults = "none";
  double faults_stop = 0;
  unsigned pressure_wait_ms = 1000;
  unsigned io_timeout_ms = 5000;
  unsigned watchdog_ms = 0;
  unsigned io_threads = 2;
  std::string policy = "lru";
  std::string compression = "adaptive";
  std::string spill_dir;
  std::string json;
  bool quiet = false;
};

CLI::App* add_stress_command(CLI::App& app, StressArgs& args);
// Exit status: 0 passed, 1 a violation (wrong bytes, a lost buffer, a
// broken invariant, an undocumented exception), 3 a hang. A run whose
// threads stay stuck ends the process at once (the pool cannot be torn down).
int run_stress_command(const StressArgs& args);

}  // namespace spillway::tools
