// src/offline/replay.hpp — driving a real Pool through a recorded access log
// (`spillway replay`, docs/replay.md).
//
// replay() builds a Pool from the log's RecordedOptions (overridden by the
// ReplayOptions given), then performs every event of the log on it:
// Allocate -> Pool::allocate, Pin -> Buffer::pin, Unpin -> the Pin's
// release, Hint -> hint_next_use, Prefetch -> prefetch, Evict -> evict,
// Free -> the Buffer's reset. The log carries no payloads, so replay makes
// its own: a buffer's bytes are a function of (recorded buffer id, version).
// A ReadWrite pin writes a new version; every pin first checks that the bytes
// it sees are the current version. A word per 4 KiB page and the buffer's
// last word are written and checked, which is cheap enough to replay millions
// of events a second and still catches a page that was lost, misplaced or
// handed to another buffer. A mismatch is a ReplayError naming the buffer,
// the event and the offset: spillway must never lose bytes.
//
// The result is what the pool says it did (PoolStats): bytes moved per tier
// pair, fetches, write-backs, stall time, plus wall time. When the log has a
// footer (the recorded run's own counters), the result says whether the
// bytes moved match; see docs/replay.md for when they must match exactly.
//
// Thread safety: replay() is a free function; concurrent calls on different
// logs are independent. With ReplayOptions::threads > 1 it runs that many
// threads of its own and joins them before it returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include "spillway/options.hpp"
#include "spillway/stats.hpp"
#include "src/record/access_log.hpp"

namespace spillway::offline {

// A log that cannot be replayed (an event on a buffer never allocated, an
// unpin that matches no pin, a pin on the disk tier...), a pool operation
// that failed during the replay, or bytes that did not verify. what() starts
// with "spillway replay: event N" and names the buffer. kNoEvent when the
// problem is not one event's (a bad option).
class ReplayError : public std::runtime_error {
 public:
  static constexpr std::uint64_t kNoEvent = ~std::uint64_t{0};
  ReplayError(std::uint64_t event_index, std::uint64_t buffer, const std::string& what);
  std::uint64_t event_index() const { return event_; }
  std::uint64_t buffer() const { return buffer_; }

 private:
  std::uint64_t event_;
  std::uint64_t buffer_;
};

// "lru" and "clock" both name EvictionPolicy::Lru: its implementation is
// CLOCK (src/core/clock_policy.cpp), least recently pinned first as learnt
// from reference bits. "lookahead" is EvictionPolicy::Lookahead. Throws
// std::invalid_argument naming the text otherwise.
EvictionPolicy parse_policy_name(const std::string& name);
// The name reports print: "lru (clock)" or "lookahead".
const char* policy_display_name(EvictionPolicy p);

struct ReplayOptions {
  // Tier budgets; unset: the recorded ones. 0 turns the tier off.
  std::optional<std::uint64_t> device_bytes;
  std::optional<std::uint64_t> host_bytes;
  // Parent of the pool's spill directory; empty: the pool's default.
  std::string disk_dir;
  // Unset: the recorded policy.
  std::optional<EvictionPolicy> policy;
  // Replay threads: recorded thread t runs on replay thread t % threads, in
  // its own program order; an event whose buffer's previous event (in log
  // order) ran on another replay thread waits for it (per-buffer sequencing).
  unsigned threads = 1;
  // The longest such a wait may last before the replay fails, naming both
  // events (the other thread is stuck or failed).
  std::chrono::milliseconds sequencing_timeout{60000};
  // Waits for the pool to be idle (Pool::quiesce: no move in flight, the
  // proactive spiller done) after every event that may start background
  // work: an allocation, a pin, a prefetch, an eviction. The pool's
  // background work (proactive spilling between the watermarks, prefetches
  // on the IO workers) otherwise races the next events, and two replays of
  // one log can move different bytes; settled, they move the same. It does
  // not make a replay match a recorded run that did not wait (see
  // docs/replay.md). Ignored with threads > 1 (the threads race anyway).
  bool settle = false;
  // PoolOptions::deterministic_moves for the replay's pool; unset: the
  // recorded one. A recording made with it is replayed with it, so that its
  // bytes moved can match exactly (docs/replay.md, "Exact replay").
  std::optional<bool> deterministic;
  // How long a pin or allocation may wait for room (PoolOptions::pressure_wait).
  std::chrono::milliseconds pressure_wait{2000};
  // Test seam: called with each pin's bytes after they were verified (and,
  // for ReadWrite, written), before the pin is kept; a test flips a byte to
  // see the next pin of that buffer catch it. Not for production use.
  std::function<void(std::uint64_t event_index, std::uint64_t buffer, void* data, std::size_t size)>
      after_pin_for_testing;
};

// The pool options a replay of `log` with `options` uses: the recorded
// budgets, policy, watermarks, compression, IO threads and deterministic
// mode, the overrides on top. The device tier is always the simulated backend (or off): replay
// writes and checks payload words with the CPU, and the recorded bytes moved
// do not depend on which backend held the device tier's blocks.
PoolOptions replay_pool_options(const record::AccessLog& log, const ReplayOptions& options);

// Why a replay of `log` with `options` is not expected to reproduce the
// recorded bytes moved exactly, or "" when it is: the log is complete (a
// footer, nothing dropped), the run was single-threaded and recorded with
// deterministic_moves, and the replay runs on one thread with the recorded
// options (budgets, policy, deterministic mode; no disk quota unless the
// compression is None: replay's payloads compress unlike the program's, and
// Adaptive picks codecs by measured speed, so under a quota what fits on
// disk differs). See docs/replay.md, "Exact replay".
std::string exact_replay_obstacle(const record::AccessLog& log, const ReplayOptions& options);

struct ReplayResult {
  PoolStats stats;            // the pool's counters after the last event (quiesced)
  std::uint64_t moved_bytes[3][3] = {};  // [from][to] by tier index: stats' MoveStats::bytes
  std::uint64_t moves[3][3] = {};
  std::uint64_t moved_total = 0;
  std::uint64_t fetches = 0;      // moves up (disk->host, disk->device, host->device)
  std::uint64_t write_backs = 0;  // moves down that wrote bytes (device->host, device->disk, host->disk)
  double stall_seconds = 0;       // PoolStats::stall_seconds
  double wall_seconds = 0;        // from the first event to the last (pool made before, torn down after)
  std::uint64_t events = 0;
  std::uint64_t markers = 0;
  std::uint64_t pins_verified = 0;     // pins whose bytes were checked against a written version
  std::uint64_t pins_left = 0;         // pins still held at the end of the log (released by replay)
  std::uint64_t buffers_left = 0;      // buffers not freed by the log (freed by replay)
  unsigned threads = 1;
  EvictionPolicy policy = EvictionPolicy::Lru;
  // From the log's footer, when it has one.
  std::optional<record::RecordedTotals> recorded;
  // recorded is set and every tier pair's bytes moved equal it.
  bool matches_recorded = false;
  // Whether the replay's pool ran with PoolOptions::deterministic_moves.
  bool deterministic = false;
  // Whether matches_recorded must hold (exact_replay_obstacle() was "");
  // else why not.
  bool exact_expected = false;
  std::string exact_obstacle;

  double events_per_second() const { return wall_seconds > 0 ? static_cast<double>(events) / wall_seconds : 0; }
};

// Replays `log` on a fresh pool. Throws ReplayError for a log that cannot
// be replayed, a pool operation that failed (its message included) and bytes
// that did not verify; std::invalid_argument for bad options.
ReplayResult replay(const record::AccessLog& log, const ReplayOptions& options = {});

}  // namespace spillway::offline
