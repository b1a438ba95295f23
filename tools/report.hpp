// tools/report.hpp — `spillway report FILE`: reads a trace that spillway
// recorded (Chrome JSON, from SPILLWAY_TRACE, --trace or a ChromeTraceSink)
// or the session-growth experiment's CSV, prints tables and draws pictures
// with gnuplot.
//
// For a trace: moves per tier pair (count, bytes, time, GB/s, failures);
// per tier the capacity, peak and mean use from the counter track; the
// buffers fetched most often after being evicted (thrash: the flows of the
// trace); stall time in pin waits by buffer label; and two pictures, tier
// occupancy over time and move bandwidth over time.
// For a session-growth CSV: first / last step time and growth per epoch
// per mode, and the step-time picture.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace spillway::tools {

struct RouteSummary {
  std::string from, to;
  std::uint64_t moves = 0, failed = 0, bytes = 0;
  double seconds = 0;  // sum of move durations
};

struct TierSummary {
  std::string tier;
  std::uint64_t capacity = 0, peak_used = 0, peak_pinned = 0;
  double mean_used = 0;  // time-weighted over the trace
  std::size_t samples = 0;
};

struct ThrashEntry {
  std::uint64_t buffer = 0;
  std::string label;
  std::uint64_t bytes = 0;
  std::uint64_t refetches = 0;  // fetches that followed an eviction of this buffer
};

struct StallEntry {
  std::string label;
  std::uint64_t waits = 0;
  double seconds = 0;
};

struct TraceReport {
  double span_seconds = 0;  // first to last event
  std::vector<RouteSummary> routes;  // by bytes, largest first
  std::vector<TierSummary> tiers;    // device, host, disk (those in the trace)
  std::vector<ThrashEntry> thrash;   // most refetched first
  std::vector<StallEntry> stalls;    // longest first
  std::uint64_t clean_evictions = 0;
  std::uint64_t out_of_memory = 0;
  std::uint64_t nodes = 0;           // executor node slices
  std::uint64_t events_not_kept = 0; // from otherData: over the cap or lost
};

// Throws std::invalid_argument naming what is missing when `doc` is not a
// trace spillway wrote.
TraceReport analyze_trace(const nlohmann::json& doc);
std::string format_report(const TraceReport& report, std::size_t top);

// Writes occupancy.{dat,gp,svg} and bandwidth.{dat,gp,svg} into `dir`;
// returns the pictures drawn (none, with *why, when gnuplot failed).
std::vector<std::string> draw_trace_pictures(const nlohmann::json& doc, const std::string& dir,
                                             std::string* why);

struct ReportArgs {
  std::string input;
  std::string out;  // default: <input without extension>-report/
  std::size_t top = 10;
};
CLI::App* add_report_command(CLI::App& app, ReportArgs& args);
int run_report_command(const ReportArgs& args);

}  // namespace spillway::tools
