// src/instrument/chrome_trace.hpp — a TraceSink that writes the pool's
// events as a Chrome JSON trace, which ui.perfetto.dev (and chrome://tracing)
// open directly.
//
// Tracks (threads in the viewer): "steps" for spans the program adds with
// span(), "spills", "fetches" and "pin waits" for the pool's moves and
// stalls, "evictions" for instant events. Events are kept in memory and
// written by write() (or the destructor); a sink is thread-safe.
//
// A thrashing pool makes millions of moves; past `max_pool_events` the
// pool's events are counted but not kept (spans always are), so the file
// stays small enough for the viewer. dropped() says how many went.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "spillway/trace.hpp"

namespace spillway::instrument {

class ChromeTraceSink final : public TraceSink {
 public:
  static constexpr std::size_t kDefaultMaxPoolEvents = 200000;
  explicit ChromeTraceSink(std::string path, std::size_t max_pool_events = kDefaultMaxPoolEvents);
  ~ChromeTraceSink() override;
  void record(const TraceEvent& event) override;
  // A span on the "steps" track (steady-clock nanoseconds).
  void span(const std::string& name, std::uint64_t start_ns, std::uint64_t duration_ns,
            const std::string& args_json = "{}");
  // Writes the file (again, with everything so far). Throws IoError when it
  // cannot be written.
  void write();
  std::size_t events() const;
  std::uint64_t dropped() const;

 private:
  std::string path_;
  mutable std::mutex mu_;
  std::vector<std::string> events_;  // one JSON object each
  std::uint64_t origin_ns_;
  std::size_t max_pool_events_;
  std::size_t pool_events_ = 0;
  std::uint64_t dropped_ = 0;
  bool written_ = false;
};

std::uint64_t steady_now_ns();

}  // namespace spillway::instrument
