// src/instrument/chrome_trace.hpp — a TraceSink that writes the pool's
// events as Chrome Trace Event JSON, which ui.perfetto.dev (and
// chrome://tracing) open directly. The format is documented, event by
// event, in docs/profiling.md ("What a trace holds"):
//
//   - a counter track per tier: "<tier> bytes" with used, pinned, capacity;
//   - every spill and fetch as an async slice on a track per tier pair
//     ("spill host->disk", "fetch disk->host", ...) whose begin carries the
//     buffer id, label, bytes, from, to, reason, ok and the achieved GB/s;
//     evictions that only dropped a primary (a clean copy below) as async
//     instants ("evict device->host (clean copy below)");
//   - a flow arrow from each eviction of a buffer to its next fetch, so
//     ping-pong shows as arrows going back and forth;
//   - pin waits and executor nodes as slices on the thread that ran them,
//     out-of-memory errors as instants there;
//   - spans the program adds with span() on a "steps" track.
//
// Events are kept in memory, compactly, and written by write() (or the
// destructor). A thrashing pool makes millions of moves: past
// `max_pool_events` the pool's events are counted but not kept — the later
// ones, or with Keep::Last the older ones (spans and
// the tier counters, at most one sample per tier per 10 ms, always are), so
// the file stays small enough for the viewer (about 270 bytes per kept
// event: 54 MB at the default cap). dropped() says how many went; the trace
// ends with an instant saying so.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>

#include "base/sync.hpp"
#include <string>
#include <unordered_map>
#include <vector>

#include "spillway/trace.hpp"

namespace spillway::instrument {

class ChromeTraceSink final : public TraceSink {
 public:
  static constexpr std::size_t kDefaultMaxPoolEvents = 200000;
  // Which pool events a capped trace keeps: the first ones, or the last
  // ones (the end of a run that slows down is often the interesting part).
  enum class Keep { First, Last };
  // Throws IoError when `path` cannot be opened for writing.
  explicit ChromeTraceSink(std::string path, std::size_t max_pool_events = kDefaultMaxPoolEvents,
                           Keep keep = Keep::First);
  ~ChromeTraceSink() override;
  void record(const TraceEvent& event) override;
  // A span on the "steps" track (steady-clock nanoseconds); args_json is an
  // object's JSON text, or "" for none.
  void span(const std::string& name, std::uint64_t start_ns, std::uint64_t duration_ns,
            const std::string& args_json = "");
  // Writes the file (again, with everything so far). Throws IoError when it
  // cannot be written.
  void write();
  std::size_t events() const;     // kept pool events (tier samples aside) and spans
  std::uint64_t dropped() const;  // pool events not kept (the cap) or lost (recorder ring full)
  const std::string& path() const { return path_; }

 private:
  struct Kept {
    std::uint64_t time_ns;
    std::uint64_t duration_ns;
    std::uint64_t buffer_id;
    std::uint64_t bytes;
    std::uint64_t used, pinned, capacity;  // TierUsage
    std::uint32_t label;
    std::uint32_t thread;
    TraceKind kind;
    Tier from, to;
    EvictionReason reason;
    bool ok;
  };
  struct Span {
    std::string name;
    std::uint64_t start_ns, duration_ns;
    std::string args_json;
  };
  std::uint32_t intern(const std::string& label) SPILLWAY_REQUIRES(mu_);

  std::string path_;
  mutable detail::Mutex mu_;
  std::deque<Kept> kept_ SPILLWAY_GUARDED_BY(mu_);      // pool events, at most max_pool_events_
  std::vector<Kept> samples_ SPILLWAY_GUARDED_BY(mu_);  // TierUsage
  std::vector<Span> spans_ SPILLWAY_GUARDED_BY(mu_);
  std::vector<std::string> labels_ SPILLWAY_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::uint32_t> label_ids_ SPILLWAY_GUARDED_BY(mu_);
  std::uint64_t origin_ns_;
  std::size_t max_pool_events_;
  Keep keep_;
  std::uint64_t over_cap_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::uint64_t ring_lost_ SPILLWAY_GUARDED_BY(mu_) = 0;
  bool written_ SPILLWAY_GUARDED_BY(mu_) = false;
};

}  // namespace spillway::instrument
