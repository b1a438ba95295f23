// tools/record_cmd.hpp — the `spillway record` subcommand: runs a program
// with SPILLWAY_RECORD set, so that every spillway Pool it makes writes an
// access log (docs/record-format.md), then summarises the log.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "src/record/access_log.hpp"

namespace spillway::tools {

struct RecordArgs {
  std::string out = "spillway-record.swlog";
  std::vector<std::string> command;  // after `--`
  // Sets SPILLWAY_DETERMINISTIC=1 for the program: its pools run every move
  // on the calling thread (PoolOptions::deterministic_moves), so that a
  // single-threaded program's log replays to exactly its bytes moved.
  bool deterministic = false;
};

CLI::App* add_record_command(CLI::App& app, RecordArgs& args);
// Runs the command and returns its exit status (128 + the signal when a
// signal ended it, 127 when it could not be started); prints the summary
// of each log it wrote to stdout.
int run_record_command(const RecordArgs& args);
// The summary printed for one log: events by kind, threads, buffers, bytes
// allocated, markers, what the pool moved, and the file's size.
std::string summarize_access_log(const record::AccessLog& log, std::uint64_t file_bytes);

}  // namespace spillway::tools
