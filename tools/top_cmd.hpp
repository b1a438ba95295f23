// tools/top_cmd.hpp — the `spillway top` subcommand: a running pool's live
// stats (PoolOptions::live_stats / SPILLWAY_LIVE_STATS=1), read from its
// shared-memory segment by another process.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>

namespace spillway::tools {

struct TopArgs {
  std::int64_t pid = 0;  // 0: the only process of this user with a live pool
  int interval_ms = 1000;
  bool once = false;        // one snapshot (totals, no rates), then exit
  bool prometheus = false;  // one snapshot as PoolStats::to_prometheus(), then exit
};

CLI::App* add_top_command(CLI::App& app, TopArgs& args);
// Throws std::runtime_error (instrument::LiveStatsError) naming what is missing.
int run_top_command(const TopArgs& args);

}  // namespace spillway::tools
