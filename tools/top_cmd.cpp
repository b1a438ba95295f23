// tools/top_cmd.cpp — see top_cmd.hpp. The screen itself is top_view.cpp.
#include "top_cmd.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include "src/instrument/live_stats.hpp"
#include "top_view.hpp"

namespace spillway::tools {

namespace {

using instrument::LiveSnapshot;
using instrument::LiveStatsReader;

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) { g_stop = 1; }

std::string duration_text(double s) {
  char buf[64];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0f s", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm %02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh %02dm", int(s) / 3600, int(s) / 60 % 60);
  return buf;
}

double unix_now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string header(const LiveSnapshot& s, const TopArgs& args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "spillway top: pid %lld (%s/%s), up %s, updated %.1f s ago%s\n\n",
                static_cast<long long>(s.pid), instrument::kShmDirectory, s.name.c_str(),
                duration_text(unix_now_seconds() - static_cast<double>(s.start_unix_ns) / 1e9).c_str(),
                s.age_seconds,
                args.once ? ""
                          : (", every " + std::to_string(args.interval_ms) + " ms, Ctrl-C quits").c_str());
  return buf;
}

// The pool to show: that of args.pid, else the only process with one.
LiveStatsReader attach(const TopArgs& args) {
  if (args.pid > 0) return LiveStatsReader(args.pid);
  const auto pools = LiveStatsReader::list();
  if (pools.empty()) {
    throw std::runtime_error(
        "no running spillway pool found (a pool publishes live stats when "
        "PoolOptions::live_stats or SPILLWAY_LIVE_STATS=1 is set)");
  }
  std::set<std::int64_t> pids;
  for (const auto& p : pools) pids.insert(p.pid);
  if (pids.size() == 1) return LiveStatsReader::attach(pools.front());
  std::string msg = "several processes have spillway pools; pick one with `spillway top PID`:";
  for (const auto& p : pools) {
    msg += "\n  " + std::to_string(p.pid) + "  (" + instrument::kShmDirectory + "/" + p.name + ")";
  }
  throw std::runtime_error(msg);
}

void show(const std::string& frame, bool tty) {
  if (tty) std::fputs("\033[H\033[2J", stdout);  // home, clear screen
  std::fputs(frame.c_str(), stdout);
  if (!tty) std::fputs("\n", stdout);
  std::fflush(stdout);
}

}  // namespace

CLI::App* add_top_command(CLI::App& app, TopArgs& args) {
  auto* cmd = app.add_subcommand(
      "top", "Watch a running pool: per-tier use, move rates, stall time and errors, live");
  cmd->add_option("pid", args.pid,
                  "process whose pool to show (default: the only one of this user publishing "
                  "live stats)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--interval", args.interval_ms, "refresh every this many milliseconds")
      ->capture_default_str()
      ->check(CLI::Range(50, 3600 * 1000));
  cmd->add_flag("--once", args.once, "print one snapshot (totals, no rates) and exit");
  cmd->add_flag("--prometheus", args.prometheus,
                "print one snapshot in the Prometheus text format and exit");
  cmd->footer(
      "The pool must publish live stats: PoolOptions::live_stats = true or SPILLWAY_LIVE_STATS=1 "
      "in its environment. It writes them to /dev/shm/spillway.<uid>.<pid> every "
      "live_stats_interval (SPILLWAY_LIVE_STATS_INTERVAL_MS, default 500).");
  return cmd;
}

int run_top_command(const TopArgs& args) {
  LiveStatsReader reader = attach(args);
  if (args.prometheus) {
    std::fputs(reader.read().stats.to_prometheus().c_str(), stdout);
    return 0;
  }
  if (args.once) {
    const LiveSnapshot s = reader.read();
    std::fputs((header(s, args) + render_top(s.stats, s.stats, 0)).c_str(), stdout);
    return 0;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  // Rates come from the last two distinct publishes, so a refresh faster
  // than the pool publishes does not show zeros in between.
  LiveSnapshot base = reader.read();
  LiveSnapshot last = base;
  for (;;) {
    const double seconds = static_cast<double>(last.updated_unix_ns - base.updated_unix_ns) / 1e9;
    show(header(last, args) + render_top(base.stats, last.stats, seconds), tty);
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(args.interval_ms);
    while (!g_stop && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (g_stop) return 0;
    const bool alive = reader.pool_alive();
    // Still mapped after the segment is removed: the last numbers the pool
    // published when it went.
    LiveSnapshot cur = reader.read();
    if (cur.publishes != last.publishes) {
      base = std::move(last);
      last = std::move(cur);
    }
    if (!alive) {
      const double s = static_cast<double>(last.updated_unix_ns - base.updated_unix_ns) / 1e9;
      show(header(last, args) + render_top(base.stats, last.stats, s), tty);
      std::printf("spillway top: the pool of pid %lld is gone (above: the last numbers it published)\n",
                  static_cast<long long>(reader.pid()));
      return 0;
    }
  }
}

}  // namespace spillway::tools
