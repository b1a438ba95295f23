// tools/replay_cmd.cpp — `spillway replay LOG`: drives a real pool through a
// recorded access log (src/offline/replay.hpp) and prints what moved, with
// the recorded run's own totals beside it when the log has a footer.
#include "replay_cmd.hpp"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "spillway/options.hpp"
#include "spillway/stats.hpp"
#include "src/record/log_reader.hpp"

namespace spillway::tools {

namespace {

std::string pair_name(int from, int to) {
  return std::string(tier_name(static_cast<Tier>(from))) + "->" + std::string(tier_name(static_cast<Tier>(to)));
}

nlohmann::json moved_json(const std::uint64_t (&bytes)[3][3]) {
  nlohmann::json j = nlohmann::json::object();
  std::uint64_t total = 0;
  for (int from = 0; from < kTierCount; ++from) {
    for (int to = 0; to < kTierCount; ++to) {
      if (from == to) continue;
      j[pair_name(from, to)] = bytes[from][to];
      total += bytes[from][to];
    }
  }
  j["total"] = total;
  return j;
}

}  // namespace

std::string replay_json(const offline::ReplayResult& r) {
  nlohmann::json j;
  j["bytes_moved"] = moved_json(r.moved_bytes);
  j["fetches"] = r.fetches;
  j["write_backs"] = r.write_backs;
  j["stall_seconds"] = r.stall_seconds;
  j["wall_seconds"] = r.wall_seconds;
  j["events"] = r.events;
  j["events_per_second"] = r.events_per_second();
  j["markers"] = r.markers;
  j["pins_verified"] = r.pins_verified;
  j["pins_left"] = r.pins_left;
  j["buffers_left"] = r.buffers_left;
  j["threads"] = r.threads;
  j["policy"] = r.policy == EvictionPolicy::Lookahead ? "lookahead" : "lru";
  j["has_footer"] = r.recorded.has_value();
  if (r.recorded) j["recorded_bytes_moved"] = moved_json(r.recorded->moved_bytes);
  j["matches_recorded"] = r.matches_recorded;  // false when there is no footer
  j["deterministic"] = r.deterministic;
  j["exact_expected"] = r.exact_expected;  // then matches_recorded must be true
  if (!r.exact_expected) j["exact_obstacle"] = r.exact_obstacle;
  return j.dump(2);
}

CLI::App* add_replay_command(CLI::App& app, ReplayArgs& a) {
  auto* c = app.add_subcommand(
      "replay",
      "Drive a real pool through a recorded access log with synthetic, verified payloads; print the "
      "bytes moved per tier pair, fetches, write-backs, stall and wall time (docs/replay.md)");
  c->add_option("log", a.log, "the access log (PoolOptions::record_file / SPILLWAY_RECORD)")->required();
  c->add_option("--device", a.device, "device tier budget (default: the recorded one; 0: off)");
  c->add_option("--host", a.host, "host tier budget (default: the recorded one; 0: off)");
  c->add_option("--disk-dir", a.disk_dir, "parent of the spill directory (default: the pool's)");
  c->add_option("--policy", a.policy,
                "eviction policy (default: the recorded one): lru and clock are the same policy, "
                "EvictionPolicy::Lru, implemented with CLOCK; lookahead uses the log's hints")
      ->check(CLI::IsMember({"lru", "clock", "lookahead"}));
  c->add_option("--threads", a.threads,
                "replay threads: recorded thread t runs on thread t % N, events on one buffer in log order")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
  c->add_flag("--settle", a.settle,
              "wait for the pool to be idle after each allocation, pin, prefetch and eviction, so that "
              "prefetches do not race the next events (repeatable numbers; one thread only)");
  c->add_option("--deterministic", a.deterministic,
                "PoolOptions::deterministic_moves for the replay (default: the recorded one): every move on "
                "the replaying thread, so that a deterministic single-threaded recording replays exactly")
      ->check(CLI::IsMember({"on", "off"}));
  c->add_flag("--json", a.json, "print the result as JSON");
  return c;
}

int run_replay_command(const ReplayArgs& a) {
  const record::AccessLog log = record::read_access_log(a.log);
  offline::ReplayOptions ro;
  if (!a.device.empty()) ro.device_bytes = parse_byte_size(a.device, "--device");
  if (!a.host.empty()) ro.host_bytes = parse_byte_size(a.host, "--host");
  ro.disk_dir = a.disk_dir;
  if (!a.policy.empty()) ro.policy = offline::parse_policy_name(a.policy);
  ro.threads = a.threads;
  ro.settle = a.settle;
  if (!a.deterministic.empty()) ro.deterministic = a.deterministic == "on";
  if (log.totals && log.totals->dropped > 0) {
    std::fprintf(stderr, "spillway replay: warning: the recorder dropped %llu events; the log is incomplete\n",
                 static_cast<unsigned long long>(log.totals->dropped));
  }
  const PoolOptions po = offline::replay_pool_options(log, ro);
  const offline::ReplayResult r = offline::replay(log, ro);
  if (a.json) {
    std::cout << replay_json(r) << '\n';
    return 0;
  }
  std::printf("spillway replay: %s (%s, %llu events, %llu markers)\n", a.log.c_str(),
              log.program.empty() ? "unnamed program" : log.program.c_str(),
              static_cast<unsigned long long>(r.events), static_cast<unsigned long long>(r.markers));
  std::printf("pool: device %s, host %s, disk %s, policy %s, %u replay thread(s)%s\n",
              po.device.capacity_bytes == 0 ? "off" : format_bytes(po.device.capacity_bytes).c_str(),
              po.host.capacity_bytes == 0 ? "off" : format_bytes(po.host.capacity_bytes).c_str(),
              po.disk.enabled ? format_bytes(po.disk.capacity_bytes).c_str() : "off", offline::policy_display_name(r.policy),
              r.threads, r.deterministic ? ", deterministic moves" : "");
  std::printf("\n  %-16s %8s %14s %14s\n", "from -> to", "moves", "bytes", "recorded");
  for (int from = 0; from < kTierCount; ++from) {
    for (int to = 0; to < kTierCount; ++to) {
      if (from == to) continue;
      const std::uint64_t rec = r.recorded ? r.recorded->moved_bytes[from][to] : 0;
      if (r.moves[from][to] == 0 && rec == 0) continue;
      std::printf("  %-16s %8llu %14llu %14s%s\n", pair_name(from, to).c_str(),
                  static_cast<unsigned long long>(r.moves[from][to]),
                  static_cast<unsigned long long>(r.moved_bytes[from][to]),
                  r.recorded ? std::to_string(rec).c_str() : "-",
                  r.recorded && rec != r.moved_bytes[from][to] ? "  <- differs" : "");
    }
  }
  std::printf("\nbytes moved     %llu (%s)\n", static_cast<unsigned long long>(r.moved_total),
              format_bytes(r.moved_total).c_str());
  std::printf("fetches         %llu\nwrite-backs     %llu\n", static_cast<unsigned long long>(r.fetches),
              static_cast<unsigned long long>(r.write_backs));
  std::printf("stall           %.6f s\nwall            %.6f s (%.0f events/s)\n", r.stall_seconds, r.wall_seconds,
              r.events_per_second());
  std::printf("verified pins   %llu (every pin of a written buffer; no byte lost)\n",
              static_cast<unsigned long long>(r.pins_verified));
  if (r.pins_left > 0 || r.buffers_left > 0) {
    std::printf("left by the log %llu pin(s) released, %llu buffer(s) freed at its end\n",
                static_cast<unsigned long long>(r.pins_left), static_cast<unsigned long long>(r.buffers_left));
  }
  if (!r.recorded) {
    std::printf("recorded totals none (the log has no footer)\n");
  } else {
    std::printf("recorded totals %s\n", r.matches_recorded ? "match: every tier pair moved the recorded bytes"
                                                           : "differ (see docs/replay.md, \"Exact replay\")");
  }
  if (r.exact_expected) {
    std::printf("exact replay    expected (a deterministic single-threaded recording, its own options and policy): %s\n",
                r.matches_recorded ? "matched" : "NOT MATCHED: a bug in spillway (docs/replay.md, \"Exact replay\")");
  } else {
    std::printf("exact replay    not expected: %s\n", r.exact_obstacle.c_str());
  }
  return 0;
}

}  // namespace spillway::tools
