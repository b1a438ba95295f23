// src/instrument/live_stats.hpp — a pool's stats, live, in a named POSIX
// shared-memory segment that another process (`spillway top`) reads.
//
// The segment /dev/shm/spillway.<uid>.<pid> (a second pool in the same
// process gets spillway.<uid>.<pid>.1, and so on) holds one LiveStatsBlock:
// a header written once (magic, layout version, pid, start time) and a flat
// copy of PoolStats that a background thread rewrites every interval under a
// seqlock: the sequence is odd while the payload is being written. The writer
// never waits for readers; a reader copies the payload and keeps it only when
// the sequence was even and unchanged around the copy, retrying a bounded
// number of times. The segment is created 0600 and removed when the publisher
// goes; segments left by processes that died are removed by the next
// publisher (clean_stale_segments()). Linux only (/dev/shm). Boost.Interprocess
// does the shared-memory work, in live_stats.cpp only.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "periodic.hpp"
#include "base/sync.hpp"
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "spillway/stats.hpp"

namespace spillway::instrument {

// The bytes "SPWLIVE\x01" read as a little-endian word. Written last, so a
// reader that sees it sees the rest of the header.
inline constexpr std::uint64_t kLiveStatsMagic = 0x014556494c575053ULL;
// Bump whenever LiveStatsBlock's layout (or the meaning of a field) changes.
inline constexpr std::uint32_t kLiveStatsVersion = 4;
inline constexpr const char* kShmDirectory = "/dev/shm";

// ---- the block in shared memory ------------------------------------------
// The payload is a LiveStatsPayload stored as 64-bit words: every field is 8
// bytes (uint64_t or double), so the struct has no padding, and the seqlock
// copies it word by word with relaxed atomic loads and stores.

struct LiveTierBlock {
  std::uint64_t enabled;
  std::uint64_t capacity_bytes;
  std::uint64_t used_bytes;
  std::uint64_t clean_bytes;
  std::uint64_t pinned_bytes;
  std::uint64_t peak_bytes;
  std::uint64_t buffers;
  std::uint64_t largest_free_bytes;
  double fragmentation;
  std::uint64_t thread_cached_bytes;  // version 4 on
};

struct LiveMoveBlock {
  std::uint64_t moves;
  std::uint64_t bytes;
  std::uint64_t stored_bytes;
  double seconds;
};

struct LiveStatsPayload {
  std::uint64_t updated_unix_ns;  // when the snapshot was taken
  std::uint64_t publishes;        // snapshots published so far, this one included
  std::array<LiveTierBlock, 3> tiers;
  std::array<std::array<LiveMoveBlock, 3>, 3> moves;  // [from][to]
  std::array<std::uint64_t, 3> evictions;             // by EvictionReason
  std::uint64_t clean_evictions;
  std::uint64_t pins;
  std::uint64_t pin_waits;
  double stall_seconds;
  std::uint64_t live_buffers;
  std::uint64_t disk_stored_bytes;
  std::uint64_t disk_file_bytes;
  std::uint64_t disk_direct_io;  // 0 or 1 (version 2 on)
  std::uint64_t disk_overlapped_writes;  // version 3 on
  std::uint64_t spill_write_failures;
  std::uint64_t fetch_failures;
  std::uint64_t corruptions;
  std::uint64_t out_of_memory;
  std::uint64_t timeouts;
  std::array<std::uint64_t, 13> move_latency;
  double move_latency_sum;
};

struct LiveStatsBlock {
  // magic and version keep these offsets in every layout version, so that a
  // reader can always say which version it found.
  std::atomic<std::uint64_t> magic;  // kLiveStatsMagic once the header is complete
  std::uint32_t version;             // kLiveStatsVersion of the writer
  std::uint32_t block_bytes;         // sizeof(LiveStatsBlock) of the writer
  std::int64_t pid;
  std::uint64_t start_unix_ns;       // when the pool (its publisher) started
  std::atomic<std::uint64_t> sequence;  // seqlock: odd while the payload is written
  std::array<std::uint64_t, sizeof(LiveStatsPayload) / 8> payload;  // a LiveStatsPayload
};

static_assert(kTierCount == 3 && kEvictionReasonCount == 3 && kMoveLatencyBounds.size() + 1 == 13,
              "PoolStats changed shape: update LiveStatsPayload and bump kLiveStatsVersion");
static_assert(std::is_trivially_copyable_v<LiveStatsPayload> && std::is_standard_layout_v<LiveStatsPayload>);
static_assert(sizeof(LiveStatsPayload) == 8 * (2 + 3 * 10 + 9 * 4 + 3 + 9 + 5 + 13 + 1),
              "LiveStatsPayload has padding or a field that is not 8 bytes");
static_assert(std::is_standard_layout_v<LiveStatsBlock> && alignof(LiveStatsBlock) == 8);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free &&
                  sizeof(std::atomic<std::uint64_t>) == 8,
              "the seqlock needs address-free 64-bit atomics");
static_assert(sizeof(LiveStatsBlock) == 40 + sizeof(LiveStatsPayload) &&
              offsetof(LiveStatsBlock, version) == 8 && offsetof(LiveStatsBlock, payload) == 40);

// PoolStats <-> payload (updated_unix_ns and publishes are left alone).
void to_block(const PoolStats& s, LiveStatsPayload& out);
PoolStats from_block(const LiveStatsPayload& in);

// ---- names --------------------------------------------------------------

// "spillway.<uid>.<pid>" for index 0, "spillway.<uid>.<pid>.<index>" after.
std::string segment_name(unsigned uid, std::int64_t pid, unsigned index);

struct LiveSegment {
  std::int64_t pid = 0;
  unsigned index = 0;  // 0 for a process's first pool
  std::string name;    // the shared-memory name; the file is /dev/shm/<name>
};

// ---- writer ---------------------------------------------------------------

class LiveStatsPublisher {
 public:
  // Removes stale segments, creates this process's segment (mode 0600),
  // writes the header and a first snapshot, then republishes every
  // `interval` on a thread of its own. Throws IoError naming the segment
  // when it cannot be created or mapped.
  LiveStatsPublisher(std::chrono::milliseconds interval, std::function<PoolStats()> snapshot);
  ~LiveStatsPublisher();  // stops the thread after one last publish, removes the segment
  LiveStatsPublisher(const LiveStatsPublisher&) = delete;
  LiveStatsPublisher& operator=(const LiveStatsPublisher&) = delete;

  const std::string& name() const { return name_; }
  // Takes a snapshot and publishes it now, on the calling thread.
  void publish_now();
  std::uint64_t publishes() const { return publishes_.load(); }
  std::uint64_t failures() const { return periodic_->failures(); }

  // Removes every /dev/shm/spillway.<uid>.* of this user (a regular file,
  // not a link) whose process no longer exists; returns the names removed.
  static std::vector<std::string> clean_stale_segments();

 private:
  struct Mapping;

  std::chrono::milliseconds interval_;
  std::function<PoolStats()> snapshot_;
  std::string name_;
  std::int64_t owner_pid_ = 0;
  std::unique_ptr<Mapping> map_;
  LiveStatsBlock* block_ = nullptr;
  detail::Mutex publish_mu_;  // one writer at a time (the thread or publish_now)
  std::atomic<std::uint64_t> publishes_{0};
  std::unique_ptr<PeriodicTask> periodic_;  // calls publish_now every interval_
};

// ---- reader ---------------------------------------------------------------

// What went wrong attaching to or reading a segment; the message names the
// pid and the /dev/shm path.
struct LiveStatsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct LiveSnapshot {
  PoolStats stats;
  std::int64_t pid = 0;
  std::string name;
  std::uint64_t start_unix_ns = 0;
  std::uint64_t updated_unix_ns = 0;
  std::uint64_t publishes = 0;
  double age_seconds = 0.0;  // now - updated
};

class LiveStatsReader {
 public:
  // Attaches (read-only) to the first pool of process `pid` of this user.
  // Throws LiveStatsError when there is none, when the segment is not a
  // spillway block or has another layout version.
  explicit LiveStatsReader(std::int64_t pid);
  // Attaches to the segment of that name.
  static LiveStatsReader attach(const LiveSegment& segment);
  ~LiveStatsReader();
  LiveStatsReader(LiveStatsReader&&) noexcept;
  LiveStatsReader& operator=(LiveStatsReader&&) noexcept;

  // A consistent snapshot. Throws LiveStatsError when the writer kept the
  // block mid-update for every one of the bounded retries.
  LiveSnapshot read() const;
  // False once the segment was removed (its pool is gone) or its process died.
  bool pool_alive() const;
  std::int64_t pid() const { return pid_; }
  const std::string& name() const { return name_; }

  // The live pools of this user, by pid then index (segments of processes
  // that died are left out).
  static std::vector<LiveSegment> list();
  // One consistent snapshot of the first pool of process `pid`.
  static LiveSnapshot read(std::int64_t pid);

 private:
  struct Mapping;
  LiveStatsReader(std::int64_t pid, std::string name);

  std::int64_t pid_ = 0;
  std::string name_;
  std::unique_ptr<Mapping> map_;
  const LiveStatsBlock* block_ = nullptr;
  std::uint64_t inode_ = 0;
};

}  // namespace spillway::instrument
