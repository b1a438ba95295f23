// tools/session_growth_cmd.cpp — `spillway session-growth`: the experiment
// that shows how a TF1-style graph that keeps growing slows every training
// step (re-planning reads every node definition, and the definitions spill
// from the device tier to host and then disk), and how clearing the session
// at each epoch keeps the step time flat. See docs/session-growth.md.
#include "session_growth_cmd.hpp"

#include "plot.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "spillway/graph/graph.hpp"
#include "spillway/spillway.hpp"
#include "src/graph/session_growth.hpp"
#include "src/instrument/chrome_trace.hpp"

namespace spillway::tools {

namespace {

using graph::EpochRecord;
using graph::GrowthMode;

std::string mib(std::uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(b) / (1 << 20));
  return buf;
}

void write_csv(const std::string& path, const std::vector<EpochRecord>& rows) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw IoError(errno, path, 0, "opening the CSV for writing");
  out << "epoch,mode,step_ms,last_step_ms,plan_ms,graph_nodes,loss,accuracy,"
         "device_bytes,host_bytes,disk_bytes,"
         "moved_device_host,moved_device_disk,moved_host_device,moved_host_disk,"
         "moved_disk_device,moved_disk_host,stall_ms\n";
  for (const auto& r : rows) {
    out << r.epoch << ',' << graph::growth_mode_name(r.mode) << ',' << r.step_ms << ','
        << r.last_step_ms << ',' << r.plan_ms << ',' << r.graph_nodes << ',' << r.loss << ','
        << r.accuracy << ',' << r.tier_used[0] << ',' << r.tier_used[1] << ',' << r.tier_used[2]
        << ',' << r.moved[0][1] << ',' << r.moved[0][2] << ',' << r.moved[1][0] << ','
        << r.moved[1][2] << ',' << r.moved[2][0] << ',' << r.moved[2][1] << ',' << r.stall_ms
        << '\n';
  }
  if (!out) throw IoError(errno, path, 0, "writing the CSV");
}

}  // namespace

double least_squares_slope(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  if (n < 2) return 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  const double d = n * sxx - sx * sx;
  return d == 0 ? 0 : (n * sxy - sx * sy) / d;
}

// The plot, drawn by gnuplot from the CSV: step time per epoch for both
// modes, and bytes per tier per epoch.

bool plot_session_growth(const std::string& dir, const std::string& csv, const std::string& title,
                         std::string* why) {
  const std::string script = dir + "/session_growth.gp";
  const std::string image = dir + "/session_growth.svg";
  {
    std::ofstream gp(script, std::ios::trunc);
    if (!gp) throw IoError(errno, script, 0, "opening the gnuplot script for writing");
    gp << "# Made by `spillway session-growth`; redraw with: gnuplot " << script << "\n"
       << "set terminal svg size 1000,760 dynamic font 'sans,12' background '#ffffff'\n"
       << "set output " << gnuplot_quote(image) << "\n"
       << "set termoption noenhanced\n"
       << "set datafile separator ','\n"
       << "set key top left\n"
       << "set grid\n"
       << "set multiplot layout 2,1 title " << gnuplot_quote(title) << "\n"
       << "set xlabel 'epoch'\n"
       << "set ylabel 'mean step time (ms)'\n"
       << "set title 'Step time: leaky graph vs clear_session() every epoch'\n"
       << "plot " << gnuplot_quote(csv) << " using 1:(strcol(2) eq 'leaky' ? $3 : 1/0) with linespoints lw 2 pt 7 ps 0.5 title 'leaky (graph keeps growing)', \\\n"
       << "     " << gnuplot_quote(csv) << " using 1:(strcol(2) eq 'clear' ? $3 : 1/0) with linespoints lw 2 pt 5 ps 0.5 title 'clear (save, clear, rebuild, restore)', \\\n"
       << "     " << gnuplot_quote(csv) << " using 1:(strcol(2) eq 'leaky' ? $5 : 1/0) with lines dt 2 lw 1 title 'leaky: of which re-planning'\n"
       << "set ylabel 'MiB in use at epoch end'\n"
       << "set title 'Where the bytes are (solid: leaky, dashed: clear)'\n"
       << "plot " << gnuplot_quote(csv) << " using 1:(strcol(2) eq 'leaky' ? $9/1048576 : 1/0) with lines lw 2 lc rgb '#1b9e77' title 'device', \\\n"
       << "     " << gnuplot_quote(csv) << " using 1:(strcol(2) eq 'leaky' ? $10/1048576 : 1/0) with lines lw 2 lc rgb '#d95f02' title 'host', \\\n"
       << "     " << gnuplot_quote(csv) << " using 1:(strcol(2) eq 'leaky' ? $11/1048576 : 1/0) with lines lw 2 lc rgb '#7570b3' title 'disk', \\\n"
       << "     " << gnuplot_quote(csv) << " using 1:(strcol(2) eq 'clear' ? $9/1048576 : 1/0) with lines dt 2 lw 2 lc rgb '#1b9e77' notitle, \\\n"
       << "     " << gnuplot_quote(csv) << " using 1:(strcol(2) eq 'clear' ? $10/1048576 : 1/0) with lines dt 2 lw 2 lc rgb '#d95f02' notitle, \\\n"
       << "     " << gnuplot_quote(csv) << " using 1:(strcol(2) eq 'clear' ? $11/1048576 : 1/0) with lines dt 2 lw 2 lc rgb '#7570b3' notitle\n"
       << "unset multiplot\n";
  }
  return run_gnuplot(script, why);
}

CLI::App* add_session_growth_command(CLI::App& app, SessionGrowthArgs& a) {
  auto* c = app.add_subcommand(
      "session-growth",
      "Train a perceptron in a graph that keeps growing (leaky) and with clear_session() every "
      "epoch (clear); write a CSV, a summary table and a plot of the step time and bytes per tier");
  c->add_option("--device", a.device, "device tier budget (simulated device)")->capture_default_str();
  c->add_option("--host", a.host, "host tier budget")->capture_default_str();
  c->add_option("--backend", a.backend,
                "device tier backend: simulated, or cuda (a real GPU; MatMul then runs on cuBLAS)")
      ->capture_default_str()
      ->check(CLI::IsMember({"simulated", "cuda"}));
  c->add_option("--epochs", a.epochs, "epochs per mode")->capture_default_str()->check(CLI::Range(1, 100000));
  c->add_option("--steps", a.steps, "training steps per epoch")->capture_default_str()->check(CLI::Range(1, 100000));
  c->add_option("--samples", a.samples, "synthetic samples")->capture_default_str()->check(CLI::Range(1, 10000000));
  c->add_option("--features", a.features, "features per sample")->capture_default_str()->check(CLI::Range(1, 100000));
  c->add_option("--seed", a.seed, "data seed")->capture_default_str();
  c->add_option("--modes", a.modes, "which modes to run: leaky,clear | leaky | clear")->capture_default_str();
  c->add_option("--out", a.out, "directory for session_growth.csv, .gp and .svg")->capture_default_str();
  c->add_option("--trace", a.trace, "also write a Perfetto-readable trace (Chrome JSON) here");
  c->add_option("--inter-op-threads", a.inter_op_threads,
                "ops run at once by the executor (0: the hardware's threads; 1: one at a time)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 1024u));
  c->add_option("--trace-keep", a.trace_keep,
                "past the trace's cap of pool events, keep the first or the last ones")
      ->capture_default_str()
      ->check(CLI::IsMember({"first", "last"}));
  return c;
}

int run_session_growth_command(const SessionGrowthArgs& a) {
  std::vector<GrowthMode> modes;
  if (a.modes == "leaky,clear" || a.modes == "clear,leaky" || a.modes == "both") {
    modes = {GrowthMode::Leaky, GrowthMode::Clear};
  } else if (a.modes == "leaky") {
    modes = {GrowthMode::Leaky};
  } else if (a.modes == "clear") {
    modes = {GrowthMode::Clear};
  } else {
    throw std::invalid_argument("--modes: expected leaky,clear or leaky or clear, got '" + a.modes + "'");
  }
  graph::GrowthOptions go;
  go.samples = a.samples;
  go.features = a.features;
  go.epochs = a.epochs;
  go.steps_per_epoch = a.steps;
  go.seed = a.seed;

  PoolOptions o = PoolOptions::from_env();
  // The budgets are the point, not a GPU: simulated unless asked.
  o.device.backend = a.backend == "cuda" ? DeviceBackend::Cuda : DeviceBackend::Simulated;
  o.device.capacity_bytes = parse_byte_size(a.device, "--device");
  o.host.capacity_bytes = parse_byte_size(a.host, "--host");
  std::filesystem::create_directories(a.out);
  const std::string csv = a.out + "/session_growth.csv";

  std::unique_ptr<instrument::ChromeTraceSink> trace;
  if (!a.trace.empty()) {
    trace = std::make_unique<instrument::ChromeTraceSink>(
        a.trace, instrument::ChromeTraceSink::kDefaultMaxPoolEvents,
        a.trace_keep == "last" ? instrument::ChromeTraceSink::Keep::Last : instrument::ChromeTraceSink::Keep::First);
  }
  const bool tty = ::isatty(STDERR_FILENO) != 0;

  std::printf("spillway session-growth: %d samples x %d features, %d epochs x %d steps per mode\n",
              go.samples, go.features, go.epochs, go.steps_per_epoch);
  std::printf("executor: %s inter-op threads\n", a.inter_op_threads == 0 ? "as many as the hardware's"
                                                  : std::to_string(a.inter_op_threads).c_str());
  std::printf("tiers: device %s (%s), host %s, disk (spill files under %s)\n\n",
              a.device.c_str(), a.backend.c_str(), a.host.c_str(),
              o.disk.directory.empty() ? "$SPILLWAY_SPILL_DIR, $TMPDIR or /var/tmp" : o.disk.directory.c_str());
  std::vector<EpochRecord> all;
  for (GrowthMode mode : modes) {
    Pool pool(o);  // the same budgets, fresh, for each mode
    if (trace) pool.set_trace(std::shared_ptr<TraceSink>(trace.get(), [](TraceSink*) {}));
    graph::SessionOptions so;
    so.inter_op_threads = a.inter_op_threads;
    graph::Session session(pool, so);
    const char* name = graph::growth_mode_name(mode);
    if (a.backend == "cuda") std::printf("%s: MatMul on %s\n", name, session.matmul_backend().c_str());
    auto on_epoch = [&](const EpochRecord& r) {
      if (tty) {
        std::fprintf(stderr, "\r  %-5s epoch %4d/%d  step %8.2f ms  nodes %7zu  device %s host %s disk %s MiB   ",
                     name, r.epoch + 1, go.epochs, r.step_ms, r.graph_nodes, mib(r.tier_used[0]).c_str(),
                     mib(r.tier_used[1]).c_str(), mib(r.tier_used[2]).c_str());
        std::fflush(stderr);
      }
    };
    auto on_step = [&](const graph::StepRecord& s) {
      if (trace) {
        trace->span(std::string(name) + " step", s.start_ns, s.duration_ns,
                    "{\"epoch\":" + std::to_string(s.epoch) + ",\"step\":" + std::to_string(s.step) +
                        ",\"graph_nodes\":" + std::to_string(s.graph_nodes) + "}");
      }
    };
    auto rows = graph::run_session_growth(session, go, mode, on_epoch, on_step);
    if (tty) std::fprintf(stderr, "\n");
    pool.set_trace(nullptr);
    all.insert(all.end(), rows.begin(), rows.end());
  }
  write_csv(csv, all);

  // Summary.
  std::printf("%-6s %13s %13s %16s %12s %10s %10s %22s %10s %9s\n", "mode", "first step ms",
              "last step ms", "growth ms/epoch", "graph nodes", "final loss", "accuracy",
              "device/host/disk MiB", "moved MiB", "stall ms");
  for (GrowthMode mode : modes) {
    std::vector<double> x, y;
    const EpochRecord* first = nullptr;
    const EpochRecord* last = nullptr;
    std::uint64_t moved = 0;
    double stall = 0;
    for (const auto& r : all) {
      if (r.mode != mode) continue;
      if (!first) first = &r;
      last = &r;
      x.push_back(r.epoch);
      y.push_back(r.step_ms);
      for (auto& row : r.moved) for (auto v : row) moved += v;
      stall += r.stall_ms;
    }
    if (!first) continue;
    const std::string tiers = mib(last->tier_used[0]) + "/" + mib(last->tier_used[1]) + "/" + mib(last->tier_used[2]);
    std::printf("%-6s %13.2f %13.2f %16.3f %12zu %10.4f %9.1f%% %22s %10s %9.1f\n",
                graph::growth_mode_name(mode), first->step_ms, last->step_ms, least_squares_slope(x, y),
                last->graph_nodes, last->loss, 100.0 * last->accuracy, tiers.c_str(),
                mib(moved).c_str(), stall);
  }
  std::printf("\nper-epoch data: %s\n", csv.c_str());
  std::string why;
  if (plot_session_growth(a.out, csv,
                          "spillway session-growth: device " + a.device + ", host " + a.host + ", " +
                              std::to_string(a.epochs) + " epochs x " + std::to_string(a.steps) + " steps",
                          &why)) {
    std::printf("plot:           %s/session_growth.svg\n", a.out.c_str());
  } else {
    std::printf("plot:           not drawn: %s\n", why.c_str());
  }
  if (trace) {
    trace->write();
    std::printf("trace:          %s (%zu events; open it in https://ui.perfetto.dev)\n", a.trace.c_str(),
                trace->events());
    if (trace->dropped() > 0) {
      std::printf("                the %s %zu pool events are in it; %llu %s ones were counted, not kept\n",
                  a.trace_keep.c_str(), instrument::ChromeTraceSink::kDefaultMaxPoolEvents,
                  static_cast<unsigned long long>(trace->dropped()), a.trace_keep == "last" ? "earlier" : "later");
    }
  }
  // The two modes compute the same arithmetic: say so if they did not.
  int mismatches = 0;
  for (const auto& r : all) {
    if (r.mode != GrowthMode::Leaky) continue;
    for (const auto& c : all) {
      if (c.mode == GrowthMode::Clear && c.epoch == r.epoch && c.loss != r.loss) ++mismatches;
    }
  }
  if (mismatches > 0) {
    std::printf("\nWARNING: the two modes' losses differ in %d epochs: clearing lost something\n", mismatches);
    return 1;
  }
  return 0;
}

}  // namespace spillway::tools
