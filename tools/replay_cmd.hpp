// tools/replay_cmd.hpp — the `spillway replay` subcommand: a recorded access
// log driven through a real pool with verified payloads (src/offline/replay.hpp,
// docs/replay.md); what moved, printed as a table or JSON.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "src/offline/replay.hpp"

namespace spillway::tools {

struct ReplayArgs {
  std::string log;
  std::string device;  // empty: the recorded budget
  std::string host;
  std::string disk_dir;
  std::string policy;  // empty: the recorded policy
  unsigned threads = 1;
  bool settle = false;
  std::string deterministic;  // "on", "off"; empty: the recorded mode
  bool json = false;
};

CLI::App* add_replay_command(CLI::App& app, ReplayArgs& args);
// Exit status 0 when every event replayed and every pin verified; a
// ReplayError (bad log, failed pool call, bytes that did not verify) is
// thrown for main() to print (exit 2). Not matching the recorded totals is
// reported, not an error: other budgets or another policy move other bytes.
int run_replay_command(const ReplayArgs& args);
// The JSON object `spillway replay --json` prints.
std::string replay_json(const offline::ReplayResult& r);

}  // namespace spillway::tools
