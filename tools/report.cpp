// tools/report.cpp — see report.hpp.
#include "report.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "plot.hpp"
#include "session_growth_cmd.hpp"
#include "spillway/errors.hpp"
#include "src/offline/scorecard.hpp"
#include "src/record/log_format.hpp"
#include "src/record/log_reader.hpp"

namespace spillway::tools {

namespace {

using nlohmann::json;

constexpr double kMiB = 1024.0 * 1024.0;

struct Sample {
  double t_us;
  std::uint64_t used, pinned, capacity;
};

const json& events_of(const json& doc) {
  if (!doc.is_object() || !doc.contains("traceEvents") || !doc["traceEvents"].is_array()) {
    throw std::invalid_argument("not a Chrome trace: no \"traceEvents\" array");
  }
  if (!doc.contains("otherData") || doc["otherData"].value("producer", "") != "spillway") {
    throw std::invalid_argument(
        "not a trace spillway recorded: no otherData.producer = \"spillway\" (record one with "
        "SPILLWAY_TRACE=FILE or `spillway session-growth --trace FILE`)");
  }
  return doc["traceEvents"];
}

// Tier samples by tier name, in time order.
std::map<std::string, std::vector<Sample>> tier_samples(const json& events) {
  std::map<std::string, std::vector<Sample>> out;
  for (const auto& e : events) {
    if (e.value("ph", "") != "C") continue;
    std::string name = e.value("name", "");
    const auto sp = name.find(" bytes");
    if (sp == std::string::npos) continue;
    const auto& a = e.at("args");
    out[name.substr(0, sp)].push_back(Sample{e.at("ts").get<double>(), a.value("used", std::uint64_t{0}),
                                             a.value("pinned", std::uint64_t{0}),
                                             a.value("capacity", std::uint64_t{0})});
  }
  for (auto& [tier, v] : out) {
    std::stable_sort(v.begin(), v.end(), [](const Sample& x, const Sample& y) { return x.t_us < y.t_us; });
  }
  return out;
}

// One finished move: the begin's args with the end's time.
struct Move {
  bool spill;
  double start_us, end_us;
  std::uint64_t bytes;
};

// Pairs each async move's begin ("b") with its end ("e"), by category
// (spill, fetch) and id: on_begin(begin) for every begin, on_end(begin, end)
// for every end that has one.
template <class OnBegin, class OnEnd>
void pair_moves(const json& events, OnBegin on_begin, OnEnd on_end) {
  std::map<std::pair<std::string, std::uint64_t>, const json*> open;
  for (const auto& e : events) {
    const std::string ph = e.value("ph", "");
    if (ph != "b" && ph != "e") continue;
    const std::string cat = e.value("cat", "");
    if (cat != "spill" && cat != "fetch") continue;
    const auto key = std::make_pair(cat, e.at("id").get<std::uint64_t>());
    if (ph == "b") {
      open[key] = &e;
      on_begin(e);
      continue;
    }
    auto it = open.find(key);
    if (it == open.end()) continue;
    on_end(*it->second, e);
    open.erase(it);
  }
}

std::vector<Move> moves_of(const json& events) {
  std::vector<Move> out;
  pair_moves(
      events, [](const json&) {},
      [&](const json& b, const json& e) {
        out.push_back(Move{b.value("cat", "") == "spill", b.at("ts").get<double>(), e.at("ts").get<double>(),
                           b.at("args").value("bytes", std::uint64_t{0})});
      });
  return out;
}

std::string fmt_mib(std::uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(b) / kMiB);
  return buf;
}

}  // namespace

TraceReport analyze_trace(const json& doc) {
  const json& events = events_of(doc);
  TraceReport r;
  std::map<std::pair<std::string, std::string>, RouteSummary> routes;
  std::map<std::uint64_t, ThrashEntry> thrash;
  std::map<std::string, StallEntry> stalls;
  double first = 0, last = 0;
  bool any = false;
  for (const auto& e : events) {
    const std::string ph = e.value("ph", "");
    if (ph == "M") continue;
    const double ts = e.value("ts", 0.0);
    const double end = ts + e.value("dur", 0.0);
    if (!any || ts < first) first = ts;
    if (!any || end > last) last = end;
    any = true;
    const std::string cat = e.value("cat", "");
    if (ph == "n" && cat == "evict") {
      ++r.clean_evictions;
    } else if (ph == "X" && cat == "pin_wait") {
      const std::string label = e.at("args").value("label", "");
      StallEntry& s = stalls[label];
      s.label = label.empty() ? "(no label)" : label;
      ++s.waits;
      s.seconds += e.value("dur", 0.0) / 1e6;
    } else if (ph == "X" && cat == "node") {
      ++r.nodes;
    } else if (ph == "i" && cat == "error") {
      ++r.out_of_memory;
    }
  }
  pair_moves(
      events,
      [&](const json& e) {
        if (!e.value("flow_in", false)) return;  // thrash: the moves marked flow_in
        const auto& a = e.at("args");
        ThrashEntry& t = thrash[a.at("buffer").get<std::uint64_t>()];
        t.buffer = a.at("buffer").get<std::uint64_t>();
        t.label = a.value("label", "");
        t.bytes = a.value("bytes", std::uint64_t{0});
        ++t.refetches;
      },
      [&](const json& b, const json& e) {
        const auto& a = b.at("args");
        RouteSummary& rs = routes[{a.at("from").get<std::string>(), a.at("to").get<std::string>()}];
        rs.from = a.at("from").get<std::string>();
        rs.to = a.at("to").get<std::string>();
        ++rs.moves;
        if (!a.value("ok", true)) ++rs.failed;
        rs.bytes += a.value("bytes", std::uint64_t{0});
        rs.seconds += (e.value("ts", 0.0) - b.at("ts").get<double>()) / 1e6;
      });
  r.span_seconds = any ? (last - first) / 1e6 : 0;
  for (auto& [k, v] : routes) r.routes.push_back(v);
  std::sort(r.routes.begin(), r.routes.end(), [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  for (auto& [k, v] : thrash) r.thrash.push_back(v);
  std::stable_sort(r.thrash.begin(), r.thrash.end(),
                   [](const auto& a, const auto& b) { return a.refetches > b.refetches; });
  for (auto& [k, v] : stalls) r.stalls.push_back(v);
  std::stable_sort(r.stalls.begin(), r.stalls.end(),
                   [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
  const auto samples = tier_samples(events);
  for (const char* tier : {"device", "host", "disk"}) {
    auto it = samples.find(tier);
    if (it == samples.end() || it->second.empty()) continue;
    const auto& v = it->second;
    TierSummary t;
    t.tier = tier;
    t.samples = v.size();
    double weighted = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      t.capacity = std::max(t.capacity, v[i].capacity);
      t.peak_used = std::max(t.peak_used, v[i].used);
      t.peak_pinned = std::max(t.peak_pinned, v[i].pinned);
      const double until = i + 1 < v.size() ? v[i + 1].t_us : std::max(last, v[i].t_us);
      weighted += static_cast<double>(v[i].used) * (until - v[i].t_us);
    }
    const double covered = std::max(last, v.back().t_us) - v.front().t_us;
    t.mean_used = covered > 0 ? weighted / covered : static_cast<double>(v.back().used);
    r.tiers.push_back(t);
  }
  if (doc.contains("otherData")) {
    const auto& o = doc["otherData"];
    r.events_not_kept = o.value("pool_events_over_cap", std::uint64_t{0}) +
                        o.value("pool_events_lost_ring_full", std::uint64_t{0});
  }
  return r;
}

std::string format_report(const TraceReport& r, std::size_t top) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "trace spans %.3f s; %llu executor nodes; %llu out-of-memory errors\n",
                r.span_seconds, static_cast<unsigned long long>(r.nodes),
                static_cast<unsigned long long>(r.out_of_memory));
  out << line;
  if (r.events_not_kept > 0) {
    out << "NOTE: " << r.events_not_kept
        << " pool events were not kept in this trace (its cap, or a full recorder ring): the tables "
           "cover the part that was.\n";
  }
  out << "\ntiers (from the counter track)\n";
  std::snprintf(line, sizeof line, "  %-7s %14s %14s %14s %16s %8s\n", "tier", "capacity MiB", "peak used MiB",
                "mean used MiB", "peak pinned MiB", "samples");
  out << line;
  for (const auto& t : r.tiers) {
    std::snprintf(line, sizeof line, "  %-7s %14s %14s %14.2f %16s %8zu\n", t.tier.c_str(),
                  t.capacity == ~std::uint64_t{0} ? "unlimited" : fmt_mib(t.capacity).c_str(),
                  fmt_mib(t.peak_used).c_str(), t.mean_used / kMiB, fmt_mib(t.peak_pinned).c_str(), t.samples);
    out << line;
  }
  out << "\nmoves by tier pair\n";
  std::snprintf(line, sizeof line, "  %-14s %8s %8s %12s %10s %9s\n", "from -> to", "moves", "failed", "MiB",
                "seconds", "GB/s");
  out << line;
  for (const auto& m : r.routes) {
    std::snprintf(line, sizeof line, "  %-14s %8llu %8llu %12s %10.4f %9.2f\n",
                  (m.from + " -> " + m.to).c_str(), static_cast<unsigned long long>(m.moves),
                  static_cast<unsigned long long>(m.failed), fmt_mib(m.bytes).c_str(), m.seconds,
                  m.seconds > 0 ? static_cast<double>(m.bytes) / m.seconds / 1e9 : 0.0);
    out << line;
  }
  std::snprintf(line, sizeof line, "  evictions onto a clean copy (nothing written): %llu\n",
                static_cast<unsigned long long>(r.clean_evictions));
  out << line;
  out << "\nthrash: buffers fetched back most often after an eviction\n";
  if (r.thrash.empty()) out << "  none\n";
  std::snprintf(line, sizeof line, "  %10s %-28s %10s %10s\n", "buffer", "label", "MiB", "refetches");
  if (!r.thrash.empty()) out << line;
  for (std::size_t i = 0; i < r.thrash.size() && i < top; ++i) {
    const auto& t = r.thrash[i];
    std::snprintf(line, sizeof line, "  %10llu %-28s %10s %10llu\n", static_cast<unsigned long long>(t.buffer),
                  t.label.substr(0, 28).c_str(), fmt_mib(t.bytes).c_str(),
                  static_cast<unsigned long long>(t.refetches));
    out << line;
  }
  out << "\nstall: time spent waiting in pin, by buffer label\n";
  if (r.stalls.empty()) out << "  none\n";
  std::snprintf(line, sizeof line, "  %-32s %8s %12s\n", "label", "waits", "ms");
  if (!r.stalls.empty()) out << line;
  for (std::size_t i = 0; i < r.stalls.size() && i < top; ++i) {
    const auto& s = r.stalls[i];
    std::snprintf(line, sizeof line, "  %-32s %8llu %12.3f\n", s.label.substr(0, 32).c_str(),
                  static_cast<unsigned long long>(s.waits), s.seconds * 1e3);
    out << line;
  }
  return out.str();
}

std::vector<std::string> draw_trace_pictures(const json& doc, const std::string& dir, std::string* why) {
  const json& events = events_of(doc);
  std::filesystem::create_directories(dir);
  auto open_out = [](const std::string& path) {
    std::ofstream f(path, std::ios::trunc);
    if (!f) throw IoError(errno, path, 0, "opening a report file for writing");
    return f;
  };
  // Occupancy: one data block per tier, one panel per tier.
  const auto samples = tier_samples(events);
  std::vector<std::string> tiers;
  {
    std::ofstream dat = open_out(dir + "/occupancy.dat");
    dat << "# spillway report: tier occupancy; one block per tier\n"
        << "# seconds used_MiB pinned_MiB capacity_MiB\n";
    for (const char* tier : {"device", "host", "disk"}) {
      auto it = samples.find(tier);
      if (it == samples.end()) continue;
      if (!tiers.empty()) dat << "\n\n";
      dat << "# " << tier << "\n";
      for (const Sample& s : it->second) {
        dat << s.t_us / 1e6 << ' ' << static_cast<double>(s.used) / kMiB << ' '
            << static_cast<double>(s.pinned) / kMiB << ' '
            << (s.capacity == ~std::uint64_t{0} ? 0.0 / 0.0 : static_cast<double>(s.capacity) / kMiB) << '\n';
      }
      tiers.push_back(tier);
    }
  }
  {
    std::ofstream gp = open_out(dir + "/occupancy.gp");
    gp << "# Made by `spillway report`; redraw with: gnuplot occupancy.gp (in this directory)\n"
       << "set terminal svg size 1000," << 220 + 220 * std::max<std::size_t>(tiers.size(), 1)
       << " dynamic font 'sans,12' background '#ffffff'\n"
       << "set output " << gnuplot_quote(dir + "/occupancy.svg") << "\n"
       << "set termoption noenhanced\nset grid\nset key outside right top\nset xlabel 'seconds into the trace'\n"
       << "set ylabel 'MiB'\n";
    if (tiers.empty()) {
      gp << "set title 'no tier samples in this trace'\nplot 0 notitle\n";
    } else {
      gp << "set multiplot layout " << tiers.size() << ",1 title 'Tier occupancy'\n";
      for (std::size_t i = 0; i < tiers.size(); ++i) {
        const std::string data = gnuplot_quote(dir + "/occupancy.dat");
        gp << "set title '" << tiers[i] << "'\n"
           << "plot " << data << " index " << i << " using 1:2 with steps lw 2 lc rgb '#1b9e77' title 'used', \\\n"
           << "     " << data << " index " << i << " using 1:3 with steps lw 2 lc rgb '#d95f02' title 'pinned', \\\n"
           << "     " << data << " index " << i << " using 1:4 with steps dt 2 lw 1 lc rgb '#555555' title 'capacity'\n";
      }
      gp << "unset multiplot\n";
    }
  }
  // Bandwidth: bytes of moves that ended in each bucket.
  const auto moves = moves_of(events);
  double t0 = 0, t1 = 0;
  for (std::size_t i = 0; i < moves.size(); ++i) {
    if (i == 0 || moves[i].start_us < t0) t0 = moves[i].start_us;
    if (i == 0 || moves[i].end_us > t1) t1 = moves[i].end_us;
  }
  const double bucket_us = std::max((t1 - t0) / 200.0, 1000.0);
  const std::size_t n = moves.empty() ? 0 : static_cast<std::size_t>((t1 - t0) / bucket_us) + 1;
  std::vector<double> down(n, 0), up(n, 0);
  for (const Move& m : moves) {
    const auto i = static_cast<std::size_t>((m.end_us - t0) / bucket_us);
    (m.spill ? down : up)[std::min(i, n - 1)] += static_cast<double>(m.bytes);
  }
  {
    std::ofstream dat = open_out(dir + "/bandwidth.dat");
    dat << "# spillway report: bytes of the moves that ended in each " << bucket_us / 1e3 << " ms, as MB/s\n"
        << "# seconds spill_MBps fetch_MBps\n";
    for (std::size_t i = 0; i < n; ++i) {
      const double secs = bucket_us / 1e6;
      dat << (t0 + static_cast<double>(i) * bucket_us) / 1e6 << ' ' << down[i] / secs / 1e6 << ' '
          << up[i] / secs / 1e6 << '\n';
    }
  }
  char bucket_label[32];
  std::snprintf(bucket_label, sizeof bucket_label, "%.3g ms", bucket_us / 1e3);
  {
    std::ofstream gp = open_out(dir + "/bandwidth.gp");
    const std::string data = gnuplot_quote(dir + "/bandwidth.dat");
    gp << "# Made by `spillway report`; redraw with: gnuplot bandwidth.gp (in this directory)\n"
       << "set terminal svg size 1000,420 dynamic font 'sans,12' background '#ffffff'\n"
       << "set output " << gnuplot_quote(dir + "/bandwidth.svg") << "\n"
       << "set termoption noenhanced\nset grid\nset key outside right top\n"
       << "set xlabel 'seconds into the trace'\nset ylabel 'MB/s'\n"
       << "set title 'Move bandwidth: bytes of the moves that ended in each " << bucket_label
       << " interval'\n";
    if (n == 0) {
      gp << "set title 'no moves in this trace'\nplot 0 notitle\n";
    } else {
      gp << "plot " << data << " using 1:2 with steps lw 2 lc rgb '#7570b3' title 'spill (down)', \\\n"
         << "     " << data << " using 1:3 with steps lw 2 lc rgb '#e7298a' title 'fetch (up)'\n";
    }
  }
  std::vector<std::string> drawn;
  for (const char* name : {"occupancy", "bandwidth"}) {
    if (!run_gnuplot(dir + "/" + name + ".gp", why)) return {};
    drawn.push_back(dir + "/" + name + ".svg");
  }
  return drawn;
}

CLI::App* add_report_command(CLI::App& app, ReportArgs& a) {
  auto* c = app.add_subcommand(
      "report",
      "Summarize a recorded trace (tiers, moves, thrash, stalls; occupancy and bandwidth pictures), "
      "a session-growth CSV (step-time table and picture), or an access log (what the run and each "
      "policy moved against the offline bounds)");
  c->add_option("file", a.input,
                "trace JSON (SPILLWAY_TRACE, --trace), session_growth.csv, or an access log (SPILLWAY_RECORD)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--out", a.out, "directory for the pictures (default: FILE without extension + -report)");
  c->add_option("--top", a.top, "rows in the thrash and stall tables")->capture_default_str()->check(CLI::Range(1, 100000));
  return c;
}

namespace {

// Whether the file starts with the access log's magic (docs/record-format.md).
bool is_access_log(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[sizeof record::format::kMagic] = {};
  return in.read(magic, sizeof magic) && std::equal(std::begin(magic), std::end(magic), std::begin(record::format::kMagic));
}

// An access log: the recorded run's bytes moved per boundary, each policy's
// on a replay at the recorded budgets, and the offline bounds.
int report_access_log(const ReportArgs& a) {
  const record::AccessLog log = record::read_access_log(a.input);
  offline::ScorecardOptions so;
  const offline::Scorecard card = offline::make_scorecard(log, so);
  std::printf("spillway report: %s (access log of %s, %zu events)\n\n%s", a.input.c_str(),
              log.program.empty() ? "?" : log.program.c_str(), log.events.size(),
              offline::format_scorecard(card).c_str());
  if (!log.totals) std::printf("\n(the log has no footer: the program ended before its pool)\n");
  std::printf("\nbytes moved across each boundary: fetches and write-backs; the policies replayed on a real pool "
              "(spillway replay), the bounds from spillway bound (docs/bound.md)\n");
  return 0;
}

int report_session_growth_csv(const ReportArgs& a, const std::string& out) {
  std::ifstream in(a.input);
  if (!in) throw IoError(errno, a.input, 0, "opening the CSV");
  std::string header;
  std::getline(in, header);
  std::vector<std::string> cols;
  {
    std::stringstream ss(header);
    std::string c;
    while (std::getline(ss, c, ',')) cols.push_back(c);
  }
  auto col = [&](const char* name) {
    auto it = std::find(cols.begin(), cols.end(), name);
    if (it == cols.end()) {
      throw std::invalid_argument(a.input + ": not a session-growth CSV: no '" + name + "' column");
    }
    return static_cast<std::size_t>(it - cols.begin());
  };
  const std::size_t c_epoch = col("epoch"), c_mode = col("mode"), c_step = col("step_ms"),
                    c_nodes = col("graph_nodes");
  std::map<std::string, std::vector<std::vector<std::string>>> by_mode;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string v;
    while (std::getline(ss, v, ',')) f.push_back(v);
    if (f.size() != cols.size()) throw std::invalid_argument(a.input + ": a row has the wrong number of fields: " + line);
    by_mode[f[c_mode]].push_back(std::move(f));
  }
  std::printf("%-6s %8s %13s %13s %16s %12s\n", "mode", "epochs", "first step ms", "last step ms",
              "growth ms/epoch", "graph nodes");
  for (const auto& [mode, rows] : by_mode) {
    std::vector<double> x, y;
    for (const auto& r : rows) {
      x.push_back(std::stod(r[c_epoch]));
      y.push_back(std::stod(r[c_step]));
    }
    std::printf("%-6s %8zu %13.3f %13.3f %16.4f %12s\n", mode.c_str(), rows.size(), y.front(), y.back(),
                least_squares_slope(x, y), rows.back()[c_nodes].c_str());
  }
  std::filesystem::create_directories(out);
  std::string why;
  if (!plot_session_growth(out, std::filesystem::absolute(a.input).string(), "session-growth: " + a.input, &why)) {
    std::fprintf(stderr, "spillway report: no picture: %s\n", why.c_str());
    return 1;
  }
  std::printf("\npicture: %s/session_growth.svg\n", out.c_str());
  return 0;
}

}  // namespace

int run_report_command(const ReportArgs& a) {
  if (is_access_log(a.input)) return report_access_log(a);
  std::string out = a.out;
  if (out.empty()) {
    std::filesystem::path p(a.input);
    out = (p.parent_path() / (p.stem().string() + "-report")).string();
  }
  if (std::filesystem::path(a.input).extension() == ".csv") return report_session_growth_csv(a, out);
  std::ifstream in(a.input);
  if (!in) throw IoError(errno, a.input, 0, "opening the trace");
  json doc = json::parse(in, nullptr, false);
  if (doc.is_discarded()) throw std::invalid_argument(a.input + ": not valid JSON");
  TraceReport r;
  try {
    r = analyze_trace(doc);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(a.input + ": " + e.what());
  }
  std::printf("spillway report: %s\n\n%s", a.input.c_str(), format_report(r, a.top).c_str());
  std::string why;
  const auto drawn = draw_trace_pictures(doc, out, &why);
  if (drawn.empty()) {
    std::fprintf(stderr, "spillway report: no pictures: %s\n", why.c_str());
    return 1;
  }
  std::printf("\npictures:\n");
  for (const auto& f : drawn) std::printf("  %s\n", f.c_str());
  return 0;
}

}  // namespace spillway::tools
