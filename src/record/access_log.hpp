// src/record/access_log.hpp — the access log's events in memory: what a
// recording pool writes (src/record/log_writer), what the decoder gives back
// (src/record/log_reader), what `spillway replay` drives a pool with and
// what `spillway bound` computes the offline bounds on (src/offline/).
//
// The log has no payloads: it says which buffer was allocated, pinned where
// and how, unpinned, hinted, prefetched, evicted and freed, by which thread
// and when. The file format (docs/record-format.md) is a versioned header,
// then checksummed blocks of these events, then an optional footer with
// the pool's own counters at the end of the run, so that a replay can be
// compared with what the recorded run really moved.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spillway/options.hpp"
#include "spillway/tier.hpp"

namespace spillway::record {

enum class EventKind : std::uint8_t {
  Allocate = 1,  // buffer, value = bytes, tier = the preferred tier
  Free = 2,      // buffer (explicit free or the Buffer's destructor)
  Pin = 3,       // buffer, tier, access: a pin granted (try_pin only when it succeeded)
  Unpin = 4,     // buffer, tier, access: the pin released (matches one Pin of the same
                 // buffer, tier and access on any thread, the latest first)
  Hint = 5,      // buffer, value = next-use step (Buffer::hint_next_use)
  Prefetch = 6,  // buffer, tier (Buffer::prefetch)
  Evict = 7,     // buffer, tier (Buffer::evict: an explicit move down)
  Marker = 8,    // value = index into AccessLog::markers ("clear_session", ...)
};

const char* to_string(EventKind k);

struct Event {
  EventKind kind = EventKind::Marker;
  Tier tier = Tier::Host;
  Access access = Access::Read;
  std::uint32_t thread = 0;   // recording thread, numbered from 0 in order of first event
  std::uint64_t time_ns = 0;  // since the recording started (steady clock)
  std::uint64_t buffer = 0;   // Buffer::id(); 0 for Marker
  std::uint64_t value = 0;    // see EventKind
  bool operator==(const Event&) const = default;
};

// What the header keeps of the recorded pool's options: what a replay needs
// to rebuild the same pool and what the bound needs for budgets.
struct RecordedOptions {
  std::uint64_t device_bytes = 0;  // 0: no device tier
  std::uint64_t host_bytes = 0;
  std::uint64_t disk_bytes = 0;    // kUnlimited when no quota
  bool disk_enabled = true;
  std::string device_backend;      // "simulated", "cuda" or "none"
  EvictionPolicy policy = EvictionPolicy::Lru;
  double high_watermark = 0.90;
  double low_watermark = 0.75;
  Compression compression = Compression::Adaptive;
  unsigned io_threads = 2;
  // PoolOptions::deterministic_moves (format version 2; false in a version 1
  // log, which predates the option).
  bool deterministic_moves = false;
  bool operator==(const RecordedOptions&) const = default;
};

// The recorded pool's counters when the recording ended (the footer).
struct RecordedTotals {
  // bytes and moves per tier pair, indexed [from][to] by static_cast<int>(Tier)
  std::uint64_t moved_bytes[3][3] = {};
  std::uint64_t moves[3][3] = {};
  std::uint64_t events = 0;   // events written (a check against truncation)
  std::uint64_t dropped = 0;  // events the writer could not keep up with (0 in a complete log)
  // Why the recording stopped before the pool ended (a write error, a
  // writer that fell behind for longer than io_timeout); "" when it did not.
  std::string stop_reason;
  bool operator==(const RecordedTotals&) const = default;
};

struct AccessLog {
  std::uint32_t version = 2;  // the format version it was read from (the writer writes the newest)
  std::string program;  // argv[0] or the embedder's name, for reports
  RecordedOptions options;
  std::vector<Event> events;  // in recorded order (per thread in program order; across
                              // threads by time)
  std::vector<std::string> markers;
  std::optional<RecordedTotals> totals;  // absent when the program died before the footer
};

}  // namespace spillway::record
