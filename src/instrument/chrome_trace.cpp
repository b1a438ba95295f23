// src/instrument/chrome_trace.cpp — see chrome_trace.hpp.
#include "chrome_trace.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <numeric>
#include <set>

#include "recorder.hpp"
#include "spillway/errors.hpp"

namespace spillway::instrument {

namespace {

constexpr int kPid = 1;
constexpr int kStepsTid = 1;
// Recording threads get tid = kThreadTidBase + their index.
constexpr std::uint32_t kThreadTidBase = 10;

std::string tn(Tier t) { return std::string(tier_name(t)); }

const char* reason_name(EvictionReason r) {
  switch (r) {
    case EvictionReason::Pressure: return "pressure";
    case EvictionReason::Proactive: return "proactive";
    case EvictionReason::Explicit: return "explicit";
  }
  return "unknown";
}

bool kept_kind(TraceKind k) {
  switch (k) {
    case TraceKind::SpillEnd:
    case TraceKind::FetchEnd:
    case TraceKind::Evict:
    case TraceKind::OutOfMemory:
    case TraceKind::PinWait:
    case TraceKind::NodeEnd:
    case TraceKind::TierUsage:
      return true;
    default:
      return false;  // begins (the ends carry durations), pins, allocations: counted in stats
  }
}

}  // namespace

ChromeTraceSink::ChromeTraceSink(std::string path, std::size_t max_pool_events, Keep keep)
    : path_(std::move(path)), origin_ns_(steady_now_ns()), max_pool_events_(max_pool_events), keep_(keep) {
  labels_.emplace_back();
  // Fail where the sink is made, not after a long run.
  std::ofstream probe(path_, std::ios::trunc);
  if (!probe) throw IoError(errno, path_, 0, "opening the trace file");
}

ChromeTraceSink::~ChromeTraceSink() {
  if (!written_) {
    try {
      write();
    } catch (...) {
      // Destructors do not throw; callers that care call write().
    }
  }
}

std::uint32_t ChromeTraceSink::intern(const std::string& label) {
  if (label.empty()) return 0;
  auto [it, inserted] = label_ids_.try_emplace(label, static_cast<std::uint32_t>(labels_.size()));
  if (inserted) labels_.push_back(label);
  return it->second;
}

void ChromeTraceSink::record(const TraceEvent& e) {
  detail::MutexLock lk(mu_);
  if (e.kind == TraceKind::Dropped) {
    ring_lost_ += e.bytes;
    return;
  }
  if (!kept_kind(e.kind)) return;
  Kept k{e.time_ns, e.duration_ns, e.buffer_id, e.bytes, e.used_bytes, e.pinned_bytes, e.capacity_bytes,
         intern(e.label), e.thread, e.kind, e.from, e.to, e.reason, e.ok};
  // Tier samples come at most every sample interval: always kept, so the
  // counter tracks cover the whole run even when the slices are capped.
  if (e.kind == TraceKind::TierUsage) {
    samples_.push_back(k);
    return;
  }
  if (kept_.size() >= max_pool_events_) {
    ++over_cap_;
    if (keep_ == Keep::First || kept_.empty()) return;
    kept_.pop_front();  // Keep::Last: the oldest goes
  }
  kept_.push_back(k);
}

void ChromeTraceSink::span(const std::string& name, std::uint64_t start_ns, std::uint64_t duration_ns,
                           const std::string& args_json) {
  detail::MutexLock lk(mu_);
  spans_.push_back(Span{name, start_ns, duration_ns, args_json});
}

std::uint64_t ChromeTraceSink::dropped() const {
  detail::MutexLock lk(mu_);
  return over_cap_ + ring_lost_;
}

std::size_t ChromeTraceSink::events() const {
  detail::MutexLock lk(mu_);
  return kept_.size() + spans_.size();
}

void ChromeTraceSink::write() {
  using nlohmann::json;
  detail::MutexLock lk(mu_);
  auto us = [&](std::uint64_t t_ns) {
    return t_ns <= origin_ns_ ? 0.0 : static_cast<double>(t_ns - origin_ns_) / 1e3;
  };
  auto start_of = [](const Kept& k) { return k.time_ns - std::min(k.time_ns, k.duration_ns); };
  std::vector<const Kept*> all;
  all.reserve(kept_.size() + samples_.size());
  for (const Kept& k : kept_) all.push_back(&k);
  for (const Kept& k : samples_) all.push_back(&k);
  std::vector<std::size_t> order(all.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return start_of(*all[a]) < start_of(*all[b]); });

  // Flows: from each eviction of a buffer (a spill, or a drop onto a clean
  // copy) to the next fetch of that buffer.
  std::vector<std::uint64_t> flow_out(all.size(), 0), flow_in(all.size(), 0);
  {
    std::unordered_map<std::uint64_t, std::size_t> last_eviction;  // buffer -> kept index
    std::uint64_t next_flow = 1;
    for (std::size_t i : order) {
      const Kept& k = *all[i];
      if (!k.ok) continue;
      if (k.kind == TraceKind::SpillEnd || k.kind == TraceKind::Evict) {
        last_eviction[k.buffer_id] = i;
      } else if (k.kind == TraceKind::FetchEnd) {
        auto it = last_eviction.find(k.buffer_id);
        if (it == last_eviction.end()) continue;
        flow_out[it->second] = flow_in[i] = next_flow++;
        last_eviction.erase(it);
      }
    }
  }

  std::ofstream out(path_, std::ios::trunc);
  if (!out) throw IoError(errno, path_, 0, "opening the trace file");
  out << "{\"displayTimeUnit\":\"ms\",\"otherData\":"
      << json{{"producer", "spillway"},
              {"pool_events_kept", kept_.size()},
              {"tier_samples_kept", samples_.size()},
              {"kept", keep_ == Keep::First ? "first" : "last"},
              {"pool_events_over_cap", over_cap_},
              {"pool_events_lost_ring_full", ring_lost_},
              {"max_pool_events", max_pool_events_}}
             .dump()
      << ",\"traceEvents\":[\n";
  out << json{{"name", "process_name"}, {"ph", "M"}, {"pid", kPid}, {"args", {{"name", "spillway"}}}}.dump();
  out << ",\n"
      << json{{"name", "thread_name"}, {"ph", "M"}, {"pid", kPid}, {"tid", kStepsTid}, {"args", {{"name", "steps"}}}}
             .dump();
  std::set<std::uint32_t> threads;
  for (const Kept& k : kept_) threads.insert(k.thread);
  for (std::uint32_t t : threads) {
    out << ",\n"
        << json{{"name", "thread_name"}, {"ph", "M"}, {"pid", kPid}, {"tid", kThreadTidBase + t},
                {"args", {{"name", trace_thread_name(t)}}}}
               .dump();
  }
  for (const Span& s : spans_) {
    json ev = {{"name", s.name}, {"cat", "step"}, {"ph", "X"}, {"pid", kPid}, {"tid", kStepsTid},
               {"ts", us(s.start_ns)}, {"dur", static_cast<double>(s.duration_ns) / 1e3}};
    if (!s.args_json.empty()) {
      json args = json::parse(s.args_json, nullptr, false);
      if (!args.is_discarded()) ev["args"] = std::move(args);
    }
    out << ",\n" << ev.dump();
  }
  std::uint64_t async_id = 0;
  for (std::size_t i : order) {
    const Kept& k = *all[i];
    const int tid = static_cast<int>(kThreadTidBase + k.thread);
    const std::string route = tn(k.from) + "->" + tn(k.to);
    switch (k.kind) {
      case TraceKind::SpillEnd:
      case TraceKind::FetchEnd: {
        const bool spill = k.kind == TraceKind::SpillEnd;
        const std::string name = std::string(spill ? "spill " : "fetch ") + route;
        const char* cat = spill ? "spill" : "fetch";
        const double secs = static_cast<double>(k.duration_ns) / 1e9;
        json begin = {{"name", name}, {"cat", cat}, {"ph", "b"}, {"id", ++async_id}, {"pid", kPid},
                      {"tid", tid}, {"ts", us(start_of(k))},
                      {"args", {{"buffer", k.buffer_id}, {"label", labels_[k.label]}, {"bytes", k.bytes},
                                {"from", tn(k.from)}, {"to", tn(k.to)},
                                {"reason", spill ? reason_name(k.reason) : "pin"}, {"ok", k.ok},
                                {"gbps", secs > 0 ? static_cast<double>(k.bytes) / secs / 1e9 : 0.0}}}};
        if (flow_out[i] != 0) {
          begin["bind_id"] = flow_out[i];
          begin["flow_out"] = true;
        }
        if (flow_in[i] != 0) {
          begin["bind_id"] = flow_in[i];
          begin["flow_in"] = true;
        }
        out << ",\n" << begin.dump();
        out << ",\n"
            << json{{"name", name}, {"cat", cat}, {"ph", "e"}, {"id", async_id}, {"pid", kPid}, {"tid", tid},
                    {"ts", us(k.time_ns)}}
                   .dump();
        break;
      }
      case TraceKind::Evict: {
        json ev = {{"name", "evict " + route + " (clean copy below)"}, {"cat", "evict"}, {"ph", "n"},
                   {"id", ++async_id}, {"pid", kPid}, {"tid", tid}, {"ts", us(k.time_ns)},
                   {"args", {{"buffer", k.buffer_id}, {"label", labels_[k.label]}, {"bytes", k.bytes},
                             {"from", tn(k.from)}, {"to", tn(k.to)},
                             {"reason", reason_name(k.reason)}}}};
        if (flow_out[i] != 0) {
          ev["bind_id"] = flow_out[i];
          ev["flow_out"] = true;
        }
        out << ",\n" << ev.dump();
        break;
      }
      case TraceKind::PinWait:
        out << ",\n"
            << json{{"name", "pin wait"}, {"cat", "pin_wait"}, {"ph", "X"}, {"pid", kPid}, {"tid", tid},
                    {"ts", us(start_of(k))}, {"dur", static_cast<double>(k.duration_ns) / 1e3},
                    {"args", {{"buffer", k.buffer_id}, {"label", labels_[k.label]}, {"bytes", k.bytes},
                              {"tier", tn(k.to)}}}}
                   .dump();
        break;
      case TraceKind::NodeEnd:
        out << ",\n"
            << json{{"name", labels_[k.label]}, {"cat", "node"}, {"ph", "X"}, {"pid", kPid}, {"tid", tid},
                    {"ts", us(start_of(k))}, {"dur", static_cast<double>(k.duration_ns) / 1e3}}
                   .dump();
        break;
      case TraceKind::OutOfMemory:
        out << ",\n"
            << json{{"name", "out of memory"}, {"cat", "error"}, {"ph", "i"}, {"s", "t"}, {"pid", kPid},
                    {"tid", tid}, {"ts", us(k.time_ns)},
                    {"args", {{"tier", tn(k.from)}, {"bytes", k.bytes}}}}
                   .dump();
        break;
      case TraceKind::TierUsage:
        out << ",\n"
            << json{{"name", tn(k.from) + " bytes"}, {"cat", "tier"}, {"ph", "C"},
                    {"pid", kPid}, {"ts", us(k.time_ns)},
                    {"args", {{"used", k.used}, {"pinned", k.pinned}, {"capacity", k.capacity}}}}
                   .dump();
        break;
      default:
        break;
    }
  }
  if (over_cap_ + ring_lost_ > 0) {
    out << ",\n"
        << json{{"name", "trace incomplete: " + std::to_string(over_cap_) + " pool events over the cap of " +
                             std::to_string(max_pool_events_) + " (the " +
                             (keep_ == Keep::First ? "first" : "last") + " ones are kept), " +
                             std::to_string(ring_lost_) + " lost to a full recorder ring"},
                {"ph", "i"}, {"s", "g"}, {"pid", kPid}, {"tid", kStepsTid}, {"ts", us(steady_now_ns())}}
               .dump();
  }
  out << "\n]}\n";
  out.flush();
  if (!out) throw IoError(errno, path_, 0, "writing the trace file");
  written_ = true;
}

}  // namespace spillway::instrument
