// tools/bound_cmd.cpp — see bound_cmd.hpp.
#include "bound_cmd.hpp"

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <vector>

#include "plot.hpp"
#include "spillway/errors.hpp"
#include "spillway/options.hpp"
#include "spillway/stats.hpp"
#include "src/offline/replay.hpp"
#include "src/offline/scorecard.hpp"
#include "src/record/log_reader.hpp"

namespace spillway::tools {

namespace {

using nlohmann::json;
using offline::Boundary;
using offline::BoundaryBound;

constexpr double kMiB = 1024.0 * 1024.0;

struct CurveRow {
  Boundary boundary;
  std::uint64_t device = 0, host = 0;
  BoundaryBound bound;
  // With --policies: the bytes each policy moved across the boundary when
  // the log was replayed at these budgets (unset: not run, or it failed).
  std::optional<std::uint64_t> lru, lookahead;
};

// Replays `log` at the row's budgets with `policy`; the bytes across the
// row's boundary, or nothing when the replay failed (e.g. OutOfMemory at a
// budget below what the run keeps pinned).
std::optional<std::uint64_t> replayed_bytes(const record::AccessLog& log, const CurveRow& row, EvictionPolicy policy,
                                            const std::string& disk_dir) {
  offline::ReplayOptions ro;
  ro.device_bytes = row.device;
  ro.host_bytes = row.host;
  ro.policy = policy;
  ro.disk_dir = disk_dir;
  try {
    const offline::ReplayResult r = offline::replay(log, ro);
    return offline::boundary_bytes(r.moved_bytes, row.boundary);
  } catch (const offline::ReplayError&) {
    return std::nullopt;
  }
}

std::string ratio(std::uint64_t moved, std::uint64_t lower) {
  if (lower == 0) return moved == 0 ? "= the lower bound (0)" : "(the lower bound is 0)";
  char buf[160];
  std::snprintf(buf, sizeof buf, "= %.2f x the lower bound%s", static_cast<double>(moved) / static_cast<double>(lower),
                moved < lower ? " (below it: the model charged for something this run did not move; see "
                                "docs/bound.md, 'What the bound does not see')"
                              : "");
  return buf;
}

std::string row_text(const BoundaryBound& b) {
  char buf[512];
  if (!b.feasible) {
    std::snprintf(buf, sizeof buf, "%-7s %12s  infeasible: %s pinned at event %llu (the pool would throw OutOfMemory)\n",
                  offline::to_string(b.boundary), format_bytes(b.capacity_bytes).c_str(),
                  format_bytes(b.peak_pinned_bytes).c_str(), static_cast<unsigned long long>(b.peak_pinned_event));
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%-7s %12s %10llu %10llu %12s %12s %12s %12s%s\n", offline::to_string(b.boundary),
                format_bytes(b.capacity_bytes).c_str(), static_cast<unsigned long long>(b.spans),
                static_cast<unsigned long long>(b.intervals), format_bytes(b.compulsory_bytes).c_str(),
                format_bytes(b.lower_bound_bytes).c_str(), format_bytes(b.upper_bound_bytes).c_str(),
                b.min_bytes ? format_bytes(*b.min_bytes).c_str() : "-", b.exact ? "  (exact)" : "");
  std::string s = buf;
  std::snprintf(buf, sizeof buf, "        lower: fetch %s + write-back %s; upper: fetch %s + write-back %s\n",
                format_bytes(b.lower_fetch_bytes).c_str(), format_bytes(b.lower_writeback_bytes).c_str(),
                format_bytes(b.upper_fetch_bytes).c_str(), format_bytes(b.upper_writeback_bytes).c_str());
  s += buf;
  std::snprintf(buf, sizeof buf, "        lower bounds: flow %s, PFOO-L %s\n",
                b.flow_lower_bytes                           ? format_bytes(*b.flow_lower_bytes).c_str()
                : b.pfoo_lower_bytes >= b.upper_bound_bytes ? "(not needed: PFOO-L meets the upper bound)"
                                                              : "(not solved: more intervals than --flow-limit)",
                format_bytes(b.pfoo_lower_bytes).c_str());
  return s + buf;
}

std::uint64_t budget(const std::string& text, std::uint64_t recorded, const char* what) {
  return text.empty() ? recorded : parse_byte_size(text, what);
}

// Capacities for a curve: `points` from `lo` to `hi`, evenly spaced.
std::vector<std::uint64_t> spaced(std::uint64_t lo, std::uint64_t hi, std::size_t points) {
  std::vector<std::uint64_t> out;
  points = std::max<std::size_t>(points, 2);
  for (std::size_t k = 0; k < points; ++k) {
    const long double f = static_cast<long double>(k) / static_cast<long double>(points - 1);
    const auto c = static_cast<std::uint64_t>(static_cast<long double>(lo) + f * static_cast<long double>(hi - lo));
    if (out.empty() || c != out.back()) out.push_back(c);
  }
  return out;
}

void write_curve_csv(const std::string& path, const std::vector<CurveRow>& rows) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw IoError(errno, path, 0, "opening the curve's CSV for writing");
  out << "boundary,device_bytes,host_bytes,capacity_bytes,feasible,lower_bound_bytes,upper_bound_bytes,min_bytes,"
         "lru_bytes,lookahead_bytes\n";
  auto opt = [](const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : std::string(); };
  for (const auto& r : rows) {
    out << offline::to_string(r.boundary) << ',' << r.device << ',' << r.host << ',' << r.bound.capacity_bytes << ','
        << (r.bound.feasible ? 1 : 0) << ',' << r.bound.lower_bound_bytes << ',' << r.bound.upper_bound_bytes << ','
        << opt(r.bound.min_bytes) << ',' << opt(r.lru) << ',' << opt(r.lookahead) << '\n';
  }
  if (!out) throw IoError(errno, path, 0, "writing the curve's CSV");
}

// The picture: bytes moved against the budget, lower and upper bound (and
// MIN where the sizes are equal), one panel per boundary. The policies'
// replayed curves go on the same axes (same CSV columns, more rows).
bool plot_curve(const std::string& svg, const std::string& csv, const std::string& title, bool with_device,
                bool with_policies, std::string* why) {
  std::string base = svg;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".svg") == 0) base.resize(base.size() - 4);
  const std::string script = base + ".gp";
  {
    std::ofstream gp(script, std::ios::trunc);
    if (!gp) throw IoError(errno, script, 0, "opening the gnuplot script for writing");
    const std::string q = gnuplot_quote(csv);
    gp << "# Made by `spillway bound --curve`; redraw with: gnuplot " << script << "\n"
       << "set terminal svg size 1000," << (with_device ? 760 : 420) << " dynamic font 'sans,12' background '#ffffff'\n"
       << "set output " << gnuplot_quote(svg) << "\n"
       << "set termoption noenhanced\n"
       << "set datafile separator ','\n"
       << "set key top right\n"
       << "set grid\n"
       << "set ylabel 'MiB moved across the boundary'\n"
       << "set yrange [0:*]\n";
    if (with_device) gp << "set multiplot layout 2,1 title " << gnuplot_quote(title) << "\n";
    else gp << "set title " << gnuplot_quote(title) << "\n";
    auto panel = [&](const char* boundary, const char* xlabel, int xcol, const char* what) {
      const std::string sel = std::string("(strcol(1) eq '") + boundary + "' && $5 == 1 ? ";
      // x only on this panel's rows, so that the other boundary's budgets do
      // not stretch the axis.
      const std::string x = std::string("(strcol(1) eq '") + boundary + "' ? $" + std::to_string(xcol) + "/" +
                            std::to_string(kMiB) + " : 1/0)";
      gp << "set xlabel '" << xlabel << "'\n";
      if (with_device) gp << "set title '" << what << "'\n";
      gp << "plot " << q << " using " << x << ":" << sel << "$6/" << kMiB
         << " : 1/0) with linespoints lw 2 pt 7 ps 0.5 title 'lower bound (no policy moves less)', \\\n"
         << "     " << q << " using " << x << ":" << sel << "$7/" << kMiB
         << " : 1/0) with linespoints lw 2 pt 5 ps 0.5 title 'upper bound (a feasible offline schedule)', \\\n"
         << "     " << q << " using " << x << ":" << sel << "(strcol(8) eq '' ? 1/0 : $8/" << kMiB
         << ") : 1/0) with lines dt 2 lw 1 title 'Belady MIN (equal sizes)'";
      if (with_policies) {
        for (const auto& [col, name] : {std::pair{9, "LRU (CLOCK), replayed"}, std::pair{10, "Lookahead, replayed"}}) {
          gp << ", \\\n     " << q << " using " << x << ":(strcol(1) eq '" << boundary
             << "' && strcol(" << col << ") ne '' ? $" << col << "/" << kMiB << " : 1/0) with linespoints lw 2 pt "
             << (col == 9 ? 9 : 11) << " ps 0.7 title '" << name << "'";
        }
      }
      gp << "\n";
    };
    panel("memory", "host budget (MiB)", 3, "memory | disk boundary, over the host budget");
    if (with_device) {
      panel("device", "device budget (MiB)", 2, "device | host boundary, over the device budget");
      gp << "unset multiplot\n";
    }
  }
  return run_gnuplot(script, why);
}

}  // namespace


json to_json(const BoundaryBound& b) {
  json j = {{"capacity_bytes", b.capacity_bytes},
            {"feasible", b.feasible},
            {"peak_pinned_bytes", b.peak_pinned_bytes},
            {"peak_pinned_event", b.peak_pinned_event},
            {"lower_bound_bytes", b.lower_bound_bytes},
            {"pfoo_lower_bytes", b.pfoo_lower_bytes},
            {"upper_bound_bytes", b.upper_bound_bytes},
            {"lower_fetch_bytes", b.lower_fetch_bytes},
            {"lower_writeback_bytes", b.lower_writeback_bytes},
            {"upper_fetch_bytes", b.upper_fetch_bytes},
            {"upper_writeback_bytes", b.upper_writeback_bytes},
            {"compulsory_bytes", b.compulsory_bytes},
            {"exact", b.exact},
            {"spans", b.spans},
            {"intervals", b.intervals},
            {"equal_size_bytes", b.equal_size}};
  j["min_bytes"] = b.min_bytes ? json(*b.min_bytes) : json(nullptr);
  j["flow_lower_bytes"] = b.flow_lower_bytes ? json(*b.flow_lower_bytes) : json(nullptr);
  return j;
}

CLI::App* add_bound_command(CLI::App& app, BoundArgs& a) {
  auto* c = app.add_subcommand(
      "bound",
      "For a recorded access log: the bytes any spill policy must move across each tier boundary (lower "
      "bound) and what a feasible offline schedule moves (upper bound), beside what the run moved");
  c->add_option("log", a.log, "the access log a recording pool wrote (docs/record-format.md)")->required();
  c->add_option("--device", a.device, "device budget (default: the one the log was recorded with)");
  c->add_option("--host", a.host, "host budget (default: the one the log was recorded with)");
  c->add_flag("--json", a.json, "print JSON instead of the table");
  c->add_flag("--curve", a.curve, "the bounds over a range of host budgets (and device budgets)");
  c->add_option("--points", a.points, "budgets on the curve")->capture_default_str()->check(CLI::Range(2, 1000));
  c->add_option("--svg", a.svg, "with --curve: draw the curve here (a .csv and a .gp are written beside it)");
  c->add_flag("--policies", a.policies,
              "with --curve: also replay the log with LRU (CLOCK) and Lookahead at every budget of the curve");
  c->add_option("--flow-limit", a.flow_limit,
                "solve the flow lower bound when at most this many intervals cover a point (0: PFOO-L only)")
      ->capture_default_str();
  c->add_option("--disk-dir", a.disk_dir, "with --policies: parent of the replays' spill directories");
  return c;
}

int run_bound_command(const BoundArgs& a) {
  // Before reading what may be a large log.
  if (!a.svg.empty() && !a.curve) throw std::invalid_argument("--svg draws the curve: add --curve");
  const record::AccessLog log = record::read_access_log(a.log);
  return report_bounds(log, a, std::cout);
}

int report_bounds(const record::AccessLog& log, const BoundArgs& a, std::ostream& out) {
  if (!a.svg.empty() && !a.curve) throw std::invalid_argument("--svg draws the curve: add --curve");
  if (a.policies && !a.curve) throw std::invalid_argument("--policies replays along the curve: add --curve");
  offline::BoundOptions o = offline::options_from(log.options);
  o.device_bytes = budget(a.device, o.device_bytes, "--device");
  o.host_bytes = budget(a.host, o.host_bytes, "--host");
  o.flow_limit = a.flow_limit;
  const offline::BoundResult r = offline::compute_bounds(log, o);
  const bool device_present = r.device.present;

  std::vector<CurveRow> rows;
  if (a.curve) {
    // The memory boundary over host budgets, the device budget fixed; the
    // device boundary over device budgets.
    offline::BoundaryModel memory(log, Boundary::Memory, o.granularity);
    memory.set_flow_limit(o.flow_limit);
    const std::uint64_t lo = std::max(memory.min_feasible_capacity(), o.device_bytes);
    const std::uint64_t hi = std::max(memory.working_set_bytes(), lo + 1);
    for (std::uint64_t c : spaced(lo, hi, a.points)) {
      rows.push_back(CurveRow{Boundary::Memory, o.device_bytes, c - o.device_bytes, memory.evaluate(c), std::nullopt, std::nullopt});
    }
    if (device_present) {
      offline::BoundaryModel device(log, Boundary::Device, o.granularity);
      device.set_flow_limit(o.flow_limit);
      for (std::uint64_t c : offline::curve_capacities(device, a.points)) {
        rows.push_back(CurveRow{Boundary::Device, c, o.host_bytes, device.evaluate(c), std::nullopt, std::nullopt});
      }
    }
  }
  if (a.policies) {
    for (auto& row : rows) {
      if (!row.bound.feasible) continue;
      row.lru = replayed_bytes(log, row, EvictionPolicy::Lru, a.disk_dir);
      row.lookahead = replayed_bytes(log, row, EvictionPolicy::Lookahead, a.disk_dir);
    }
  }
  std::string drawn, why;
  std::string csv;
  if (!a.svg.empty()) {
    csv = a.svg;
    if (csv.size() > 4 && csv.compare(csv.size() - 4, 4, ".svg") == 0) csv.resize(csv.size() - 4);
    csv += ".csv";
    write_curve_csv(csv, rows);
    if (plot_curve(a.svg, csv, "spillway bound: " + a.log + (log.program.empty() ? "" : " (" + log.program + ")"),
                   device_present, a.policies, &why)) {
      drawn = a.svg;
    }
  }

  std::optional<std::uint64_t> moved[2];
  if (log.totals) {
    moved[0] = offline::boundary_bytes(log.totals->moved_bytes, Boundary::Device);
    moved[1] = offline::boundary_bytes(log.totals->moved_bytes, Boundary::Memory);
  }
  if (a.json) {
    json j = {{"log", a.log}, {"program", log.program}, {"events", r.events},
              {"unknown_buffer_events", r.unknown_buffer_events}, {"stray_unpins", r.stray_unpins},
              {"device_bytes", o.device_bytes}, {"host_bytes", o.host_bytes}};
    j["boundaries"]["memory"] = to_json(r.memory);
    if (moved[1]) j["boundaries"]["memory"]["recorded_moved_bytes"] = *moved[1];
    if (device_present) {
      j["boundaries"]["device"] = to_json(r.device);
      if (moved[0]) j["boundaries"]["device"]["recorded_moved_bytes"] = *moved[0];
    }
    if (a.curve) {
      json c = json::array();
      for (const auto& row : rows) {
        json p = to_json(row.bound);
        p["boundary"] = offline::to_string(row.boundary);
        p["device_bytes"] = row.device;
        p["host_bytes"] = row.host;
        if (row.lru) p["lru_bytes"] = *row.lru;
        if (row.lookahead) p["lookahead_bytes"] = *row.lookahead;
        c.push_back(std::move(p));
      }
      j["curve"] = std::move(c);
      if (!csv.empty()) j["curve_csv"] = csv;
      if (!drawn.empty()) j["curve_svg"] = drawn;
    }
    out << j.dump(2) << '\n';
    return 0;
  }

  out << "spillway bound: " << a.log << (log.program.empty() ? "" : " (" + log.program + ")") << ", "
      << r.events << " events; budgets: device " << format_bytes(o.device_bytes) << ", host "
      << format_bytes(o.host_bytes) << "\n";
  if (r.unknown_buffer_events > 0 || r.stray_unpins > 0) {
    out << "note: " << r.unknown_buffer_events << " events of buffers the log never allocated and "
        << r.stray_unpins << " unpins without a pin were left out\n";
  }
  char head[256];
  std::snprintf(head, sizeof head, "\n%-7s %12s %10s %10s %12s %12s %12s %12s\n", "bound.", "capacity", "accesses",
                "intervals", "compulsory", "lower bound", "upper bound", "MIN");
  out << head;
  std::vector<const BoundaryBound*> shown;
  if (device_present) shown.push_back(&r.device);
  shown.push_back(&r.memory);
  for (const BoundaryBound* b : shown) out << row_text(*b);
  if (log.totals) {
    out << "\nwhat the recorded run moved ("
        << (log.options.policy == EvictionPolicy::Lru ? "lru" : "lookahead") << " policy):\n";
    for (const BoundaryBound* b : shown) {
      const std::uint64_t m = *moved[b->boundary == Boundary::Device ? 0 : 1];
      out << "  " << offline::to_string(b->boundary) << " boundary: " << format_bytes(m) << " "
          << (b->feasible ? ratio(m, b->lower_bound_bytes) : "(budget infeasible in the model)") << "\n";
    }
  }
  if (a.curve) {
    char line[256];
    std::snprintf(line, sizeof line, "\ncurve:\n%-7s %12s %12s %12s %12s %12s", "bound.", "device", "host",
                  "lower bound", "upper bound", "MIN");
    out << line << (a.policies ? "          LRU    Lookahead\n" : "\n");
    auto opt = [](const std::optional<std::uint64_t>& v) { return v ? format_bytes(*v) : std::string("-"); };
    for (const auto& row : rows) {
      std::snprintf(line, sizeof line, "%-7s %12s %12s %12s %12s %12s", offline::to_string(row.boundary),
                    format_bytes(row.device).c_str(), format_bytes(row.host).c_str(),
                    row.bound.feasible ? format_bytes(row.bound.lower_bound_bytes).c_str() : "infeasible",
                    row.bound.feasible ? format_bytes(row.bound.upper_bound_bytes).c_str() : "infeasible",
                    row.bound.min_bytes ? format_bytes(*row.bound.min_bytes).c_str() : "-");
      out << line;
      if (a.policies) {
        std::snprintf(line, sizeof line, " %12s %12s", opt(row.lru).c_str(), opt(row.lookahead).c_str());
        out << line;
      }
      out << "\n";
    }
    if (!csv.empty()) out << "data: " << csv << "\n";
    if (!a.svg.empty()) out << "plot: " << (drawn.empty() ? "not drawn: " + why : drawn) << "\n";
  }
  return 0;
}

}  // namespace spillway::tools
