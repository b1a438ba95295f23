// src/instrument/chrome_trace.cpp — see chrome_trace.hpp.
#include "chrome_trace.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <fstream>

#include "spillway/errors.hpp"

namespace spillway::instrument {

namespace {
enum Track { kSteps = 1, kSpills = 2, kFetches = 3, kPinWaits = 4, kEvictions = 5 };
const char* track_name(int t) {
  switch (t) {
    case kSteps: return "steps";
    case kSpills: return "spills";
    case kFetches: return "fetches";
    case kPinWaits: return "pin waits";
    default: return "evictions";
  }
}
}  // namespace

std::uint64_t steady_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

ChromeTraceSink::ChromeTraceSink(std::string path, std::size_t max_pool_events)
    : path_(std::move(path)), origin_ns_(steady_now_ns()), max_pool_events_(max_pool_events) {}

ChromeTraceSink::~ChromeTraceSink() {
  if (!written_) {
    try {
      write();
    } catch (...) {
      // Destructors do not throw; write() reported nothing. Callers that care call write().
    }
  }
}

void ChromeTraceSink::record(const TraceEvent& e) {
  using nlohmann::json;
  int track = 0;
  const char* name = nullptr;
  switch (e.kind) {
    case TraceKind::SpillEnd: track = kSpills; name = "spill"; break;
    case TraceKind::FetchEnd: track = kFetches; name = "fetch"; break;
    case TraceKind::Evict: track = kEvictions; name = "evict (clean copy dropped)"; break;
    case TraceKind::OutOfMemory: track = kEvictions; name = "out of memory"; break;
    default: return;  // begin events, pins and allocations: too many to be useful here
  }
  {
    std::lock_guard lk(mu_);
    if (pool_events_ >= max_pool_events_) {
      ++dropped_;
      return;
    }
    ++pool_events_;
  }
  const double end_us = (static_cast<double>(e.time_ns) - static_cast<double>(origin_ns_)) / 1e3;
  json ev = {{"name", name}, {"pid", 1}, {"tid", track},
             {"args", {{"buffer", e.buffer_id}, {"bytes", e.bytes}, {"label", e.label},
                       {"from", std::string(tier_name(e.from))}, {"to", std::string(tier_name(e.to))},
                       {"ok", e.ok}}}};
  if (e.duration_ns > 0) {
    const double dur_us = static_cast<double>(e.duration_ns) / 1e3;
    ev["ph"] = "X";
    ev["ts"] = end_us - dur_us;
    ev["dur"] = dur_us;
  } else {
    ev["ph"] = "i";
    ev["s"] = "t";
    ev["ts"] = end_us;
  }
  std::lock_guard lk(mu_);
  events_.push_back(ev.dump());
}

void ChromeTraceSink::span(const std::string& name, std::uint64_t start_ns, std::uint64_t duration_ns,
                           const std::string& args_json) {
  using nlohmann::json;
  json ev = {{"name", name}, {"ph", "X"}, {"pid", 1}, {"tid", static_cast<int>(kSteps)},
             {"ts", (static_cast<double>(start_ns) - static_cast<double>(origin_ns_)) / 1e3},
             {"dur", static_cast<double>(duration_ns) / 1e3},
             {"args", json::parse(args_json, nullptr, false)}};
  std::lock_guard lk(mu_);
  events_.push_back(ev.dump());
}

std::uint64_t ChromeTraceSink::dropped() const {
  std::lock_guard lk(mu_);
  return dropped_;
}

std::size_t ChromeTraceSink::events() const {
  std::lock_guard lk(mu_);
  return events_.size();
}

void ChromeTraceSink::write() {
  std::lock_guard lk(mu_);
  std::ofstream out(path_, std::ios::trunc);
  if (!out) throw IoError(errno, path_, 0, "opening the trace file");
  out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  out << R"({"name":"process_name","ph":"M","pid":1,"args":{"name":"spillway"}})";
  for (int t = kSteps; t <= kEvictions; ++t) {
    out << ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" << t
        << ",\"args\":{\"name\":\"" << track_name(t) << "\"}}";
  }
  for (const auto& e : events_) out << ",\n" << e;
  if (dropped_ > 0) {
    out << ",\n{\"name\":\"trace full: " << dropped_
        << " later pool events not kept\",\"ph\":\"i\",\"s\":\"g\",\"pid\":1,\"tid\":" << kEvictions
        << ",\"ts\":" << (static_cast<double>(steady_now_ns()) - static_cast<double>(origin_ns_)) / 1e3 << "}";
  }
  out << "\n]}\n";
  out.flush();
  if (!out) throw IoError(errno, path_, 0, "writing the trace file");
  written_ = true;
}

}  // namespace spillway::instrument
