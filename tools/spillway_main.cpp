// tools/spillway_main.cpp — the `spillway` command-line tool.
//
// Subcommands:
//   session-growth  the experiment: a growing graph vs clear_session (main job)
//   report          tables and pictures from a recorded trace or a session-growth CSV
//   stress          a workload under pressure and faults, every byte verified (exit 1 / 3 on failure)
//   demo            spills a working set through all three tiers and prints what moved
//   info            prints the configuration a Pool would get here (from SPILLWAY_*)
//   top             watches a running pool's live stats from another process
//   bound           the bytes any policy must move for a recorded access log (docs/bound.md)
//   replay          drives a real pool through a recorded access log, payloads verified
//   record          runs a program with SPILLWAY_RECORD set and summarises its access log
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <vector>

#include "bound_cmd.hpp"
#include "replay_cmd.hpp"
#include "record_cmd.hpp"
#include "report.hpp"
#include "session_growth_cmd.hpp"
#include "stress_cmd.hpp"
#include "spillway/spillway.hpp"
#include "tiers/device/cuda_backend.hpp"
#include "top_cmd.hpp"

namespace {

using namespace spillway;

std::string mib(std::uint64_t b) {
  if (b == kUnlimited) return "unlimited";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}

void fill(void* p, std::size_t n, std::uint64_t key) {
  std::mt19937_64 rng(key);
  auto* w = static_cast<std::uint64_t*>(p);
  for (std::size_t i = 0; i < n / 8; ++i) w[i] = rng();
}

bool check(const void* p, std::size_t n, std::uint64_t key) {
  std::mt19937_64 rng(key);
  const auto* w = static_cast<const std::uint64_t*>(p);
  for (std::size_t i = 0; i < n / 8; ++i) {
    if (w[i] != rng()) return false;
  }
  return true;
}

int run_demo(std::uint64_t device_bytes, std::uint64_t host_bytes, std::size_t buffers,
             std::size_t buffer_bytes) {
  PoolOptions o = PoolOptions::from_env();
  o.device.backend = DeviceBackend::Simulated;
  o.device.capacity_bytes = device_bytes;
  o.host.capacity_bytes = host_bytes;
  Pool pool(o);
  std::printf("spillway demo: %zu buffers of %s into a %s device tier (%s), %s host tier, disk in %s\n",
              buffers, mib(buffer_bytes).c_str(), mib(device_bytes).c_str(),
              std::string(pool.device_backend_name()).c_str(), mib(host_bytes).c_str(),
              pool.spill_directory().c_str());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Buffer> bufs;
  for (std::size_t i = 0; i < buffers; ++i) {
    Buffer b = pool.allocate(buffer_bytes, Tier::Device, "demo");
    Pin p = b.pin(Tier::Device, Access::ReadWrite);
    fill(p.data(), p.size(), i);
    p.release();
    bufs.push_back(std::move(b));
  }
  pool.quiesce();
  const PoolStats after_write = pool.stats();
  std::printf("\nafter writing (oldest buffers spilled furthest down):\n%s", after_write.to_string().c_str());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < buffers; ++i) {
    Pin p = bufs[i].pin(Tier::Device, Access::Read);
    if (!check(p.data(), p.size(), i)) ++bad;
  }
  pool.quiesce();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const PoolStats s = pool.stats();
  std::printf("\nafter reading every buffer back on the device:\n%s", s.to_string().c_str());
  std::printf("\nwhat moved:\n  %-16s %8s %12s %12s\n", "from -> to", "moves", "bytes", "stored");
  for (Tier from : {Tier::Device, Tier::Host, Tier::Disk}) {
    for (Tier to : {Tier::Device, Tier::Host, Tier::Disk}) {
      const MoveStats& m = s.move(from, to);
      if (m.moves == 0) continue;
      std::printf("  %-6s -> %-6s %8llu %12s %12s\n", std::string(tier_name(from)).c_str(),
                  std::string(tier_name(to)).c_str(), static_cast<unsigned long long>(m.moves),
                  mib(m.bytes).c_str(), mib(m.stored_bytes).c_str());
    }
  }
  std::printf("\n%zu of %zu buffers verified byte for byte in %.2f s%s\n", buffers - bad, buffers,
              secs, bad == 0 ? "" : "  <-- MISMATCH");
  return bad == 0 ? 0 : 1;
}

int run_info() {
  const PoolOptions o = PoolOptions::from_env();
  Pool pool(o);
  const PoolStats s = pool.stats();
  std::printf("device backend : %s (%s)\n", std::string(pool.device_backend_name()).c_str(),
              pool.device_backend_reason().c_str());
  if (pool.device_backend_name() == "cuda") {
    std::printf("device         : %s\n",
                spillway::detail::cuda::describe_device(o.device.cuda_device).c_str());
  }
  std::printf("host memory    : %s\n", std::string(pool.host_memory_kind()).c_str());
  for (Tier t : {Tier::Device, Tier::Host, Tier::Disk}) {
    std::printf("%-6s tier    : %s\n", std::string(tier_name(t)).c_str(),
                pool.tier_enabled(t) ? mib(s.tier(t).capacity_bytes).c_str() : "off");
  }
  std::printf("spill dir      : %s\n", pool.spill_directory().c_str());
  std::printf("io threads     : %u\n", o.io_threads);
  std::printf("watermarks     : %.2f / %.2f\n", o.high_watermark, o.low_watermark);
  std::printf("pressure wait  : %lld ms\n", static_cast<long long>(o.pressure_wait.count()));
  std::printf("deterministic  : %s\n", pool.options().deterministic_moves
                                            ? "yes (every move on the calling thread)"
                                            : "no (spills and prefetches on the IO workers)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"spillway — tiered device/host/disk memory pool"};
  app.require_subcommand(1);
  std::string device = "4M", host = "8M", size = "1M";
  std::size_t count = 24;
  auto* demo = app.add_subcommand("demo", "Spill a working set through all three tiers and print what moved");
  demo->add_option("--device", device, "device tier budget")->capture_default_str();
  demo->add_option("--host", host, "host tier budget")->capture_default_str();
  demo->add_option("--buffers", count, "number of buffers")->capture_default_str()->check(CLI::Range(1, 100000));
  demo->add_option("--size", size, "bytes per buffer")->capture_default_str();
  auto* info = app.add_subcommand("info", "Print the pool configuration taken from SPILLWAY_* variables");
  spillway::tools::SessionGrowthArgs growth;
  auto* growth_cmd = spillway::tools::add_session_growth_command(app, growth);
  spillway::tools::ReportArgs report;
  auto* report_cmd = spillway::tools::add_report_command(app, report);
  spillway::tools::TopArgs top;
  auto* top_cmd = spillway::tools::add_top_command(app, top);
  spillway::tools::StressArgs stress;
  auto* stress_cmd = spillway::tools::add_stress_command(app, stress);
  spillway::tools::BoundArgs bound;
  auto* bound_cmd = spillway::tools::add_bound_command(app, bound);
  spillway::tools::ReplayArgs replay;
  auto* replay_cmd = spillway::tools::add_replay_command(app, replay);
  spillway::tools::RecordArgs record;
  auto* record_cmd = spillway::tools::add_record_command(app, record);
  CLI11_PARSE(app, argc, argv);
  try {
    if (growth_cmd->parsed()) return spillway::tools::run_session_growth_command(growth);
    if (report_cmd->parsed()) return spillway::tools::run_report_command(report);
    if (bound_cmd->parsed()) return spillway::tools::run_bound_command(bound);
    if (stress_cmd->parsed()) return spillway::tools::run_stress_command(stress);
    if (replay_cmd->parsed()) return spillway::tools::run_replay_command(replay);
    if (record_cmd->parsed()) return spillway::tools::run_record_command(record);
    if (demo->parsed()) {
      return run_demo(parse_byte_size(device, "--device"), parse_byte_size(host, "--host"), count,
                      parse_byte_size(size, "--size"));
    }
    if (info->parsed()) return run_info();
    if (top_cmd->parsed()) return spillway::tools::run_top_command(top);
  } catch (const std::exception& e) {
    // The library's messages already start with "spillway"; others get it.
    const bool prefixed = std::strncmp(e.what(), "spillway", 8) == 0;
    std::fprintf(stderr, "%s%s\n", prefixed ? "" : "spillway: ", e.what());
    return 2;
  }
  return 0;
}
