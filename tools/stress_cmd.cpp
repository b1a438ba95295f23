// tools/stress_cmd.cpp — `spillway stress`: parses the options into a
// StressConfig, shows progress on stderr (one line rewritten in place on a
// terminal, a line every 10 s otherwise), prints the summary, writes the
// JSON summary and returns the run's exit status. See docs/reliability.md.
#include "stress_cmd.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "spillway/errors.hpp"
#include "spillway/options.hpp"
#include "stress/stress_run.hpp"

namespace spillway::tools {

CLI::App* add_stress_command(CLI::App& app, StressArgs& a) {
  auto* c = app.add_subcommand(
      "stress",
      "Push a pool into memory pressure under a workload, verify every byte of every pin, inject "
      "faults, check invariants and watch for hangs; exit non-zero on any violation");
  c->add_option("--workload", a.workload, "uniform, zipf, sweep, chain, pinheavy or thrash")
      ->capture_default_str()
      ->check(CLI::IsMember({"uniform", "zipf", "sweep", "chain", "pinheavy", "thrash"}));
  c->add_option("--threads", a.threads, "worker threads")->capture_default_str()->check(CLI::Range(1, 256));
  c->add_option("--duration", a.duration, "seconds to run (unless --ops is given)")->capture_default_str();
  c->add_option("--ops", a.ops, "workload steps to run over all threads, the initial fill included (0: use --duration)")
      ->capture_default_str();
  c->add_option("--size-min", a.size_min, "smallest buffer (e.g. 4K)")->capture_default_str();
  c->add_option("--size-max", a.size_max, "largest buffer (at most half the smallest memory tier)")
      ->capture_default_str();
  c->add_option("--device", a.device, "device tier budget (simulated device; 0 turns it off)")->capture_default_str();
  c->add_option("--host", a.host, "host tier budget")->capture_default_str();
  c->add_option("--disk", a.disk, "disk quota")->capture_default_str();
  c->add_option("--oversub", a.oversub,
                "working set / (device + host); 0: the workload's default (uniform, zipf, sweep 4; chain, "
                "pinheavy 2; thrash 1.5)")
      ->capture_default_str();
  c->add_option("--seed", a.seed, "seed of the workload (thread t uses seed+t) and of the fault decisions")
      ->capture_default_str();
  c->add_option("--faults", a.faults,
                "fault rates: none, default, or NAME=RATE,... with names write-eio, write-enospc, read-eio, "
                "short-write, short-read, latency, write-flip, read-flip, device-alloc and latency-ms=MS "
                "(\"default,read-eio=0.05\" changes one rate of the default mix)")
      ->capture_default_str();
  c->add_option("--faults-stop", a.faults_stop, "turn faults off this many seconds after the start (0: at the end)")
      ->capture_default_str();
  c->add_option("--pressure-wait-ms", a.pressure_wait_ms, "the pool's pressure_wait")->capture_default_str();
  c->add_option("--io-timeout-ms", a.io_timeout_ms, "the pool's io_timeout")->capture_default_str();
  c->add_option("--watchdog-ms", a.watchdog_ms, "longest a pool call may take (0: 2 x io-timeout + pressure-wait)")
      ->capture_default_str();
  c->add_option("--io-threads", a.io_threads, "the pool's IO workers")->capture_default_str()->check(CLI::Range(1, 64));
  c->add_option("--policy", a.policy, "eviction policy: lru or lookahead")
      ->capture_default_str()
      ->check(CLI::IsMember({"lru", "lookahead"}));
  c->add_option("--compression", a.compression, "disk compression: adaptive, lz4 or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"adaptive", "lz4", "none"}));
  c->add_option("--spill-dir", a.spill_dir, "parent of the private spill directory");
  c->add_option("--json", a.json, "write the summary as JSON to this file");
  c->add_flag("--quiet", a.quiet, "no progress line");
  return c;
}

int run_stress_command(const StressArgs& a) {
  stress::StressConfig c;
  c.workload = stress::parse_workload(a.workload);
  c.threads = a.threads;
  c.duration_seconds = a.duration;
  c.ops = a.ops;
  c.size_min = parse_byte_size(a.size_min, "--size-min");
  c.size_max = parse_byte_size(a.size_max, "--size-max");
  c.device_bytes = parse_byte_size(a.device, "--device");
  c.host_bytes = parse_byte_size(a.host, "--host");
  c.disk_bytes = parse_byte_size(a.disk, "--disk");
  c.oversubscription = a.oversub;
  c.seed = a.seed;
  c.faults = stress::FaultRates::parse(a.faults);
  c.faults_stop_seconds = a.faults_stop;
  c.pressure_wait = std::chrono::milliseconds(a.pressure_wait_ms);
  c.io_timeout = std::chrono::milliseconds(a.io_timeout_ms);
  c.watchdog_bound = std::chrono::milliseconds(a.watchdog_ms);
  c.io_threads = a.io_threads;
  c.policy = a.policy == "lookahead" ? EvictionPolicy::Lookahead : EvictionPolicy::Lru;
  c.compression = a.compression == "lz4"    ? Compression::Lz4
                  : a.compression == "none" ? Compression::None
                                            : Compression::Adaptive;
  c.spill_dir = a.spill_dir;
  c.validate();
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  double last_line = -10;
  if (!a.quiet) {
    c.on_progress = [tty, &last_line](const stress::StressProgress& p) {
      if (!tty && p.seconds - last_line < 10) return;
      last_line = p.seconds;
      std::fprintf(stderr, "%s[%6.1f s] %llu ops (%.0f/s), %llu pins verified, %.2f GiB verified, %llu documented "
                           "exceptions, %llu violations, faults %s%s",
                   tty ? "\r" : "", p.seconds, static_cast<unsigned long long>(p.ops),
                   p.seconds > 0 ? static_cast<double>(p.ops) / p.seconds : 0.0,
                   static_cast<unsigned long long>(p.pins_verified), static_cast<double>(p.bytes_verified) / (1 << 30),
                   static_cast<unsigned long long>(p.documented_exceptions),
                   static_cast<unsigned long long>(p.violations), p.faults_on ? "on " : "off", tty ? "" : "\n");
      std::fflush(stderr);
    };
  }
  const stress::StressResult r = stress::run_stress(c);
  if (!a.quiet && tty) std::fprintf(stderr, "\n");
  std::fputs(r.summary().c_str(), stdout);
  std::fflush(stdout);
  if (!a.json.empty()) {
    std::ofstream out(a.json, std::ios::trunc);
    out << r.to_json() << '\n';
    if (!out) throw IoError(errno, a.json, 0, "writing the stress summary (--json)");
  }
  if (r.stuck) {
    // Threads are still inside the pool: it cannot be destroyed. End here.
    std::fflush(nullptr);
    std::_Exit(r.exit_code());
  }
  return r.exit_code();
}

}  // namespace spillway::tools
