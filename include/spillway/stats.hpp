// spillway/stats.hpp — a snapshot of where the bytes are and what moved.
// Pool::stats() takes it under the pool's lock. Pins, unpins, allocations and
// frees that skip that lock (a resident buffer's pin, a cached block size)
// count in their thread's own counters, which the snapshot adds in: while
// other threads are pinning, pins and pinned bytes may be off by the few
// operations in progress at that instant (never below zero); when they are
// not, every number describes the same instant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "spillway/tier.hpp"

namespace spillway {

// Bytes as people read them: "512 B", "12.0 MiB", "unlimited" (kUnlimited).
std::string format_bytes(std::uint64_t bytes);

struct TierStats {
  bool enabled = false;
  std::uint64_t capacity_bytes = 0;  // disk: the quota (kUnlimited when none)
  std::uint64_t used_bytes = 0;      // bytes allocated on the tier (primaries + clean copies + moves in flight)
  std::uint64_t clean_bytes = 0;     // of used_bytes, held by clean copies
  std::uint64_t pinned_bytes = 0;    // bytes of buffers pinned on this tier
  std::uint64_t peak_bytes = 0;      // highest used_bytes + thread_cached_bytes seen
  std::uint64_t buffers = 0;         // buffers whose primary copy is here
  std::uint64_t largest_free_bytes = 0;  // largest free extent (memory tiers)
  // Free blocks that threads keep for their next allocation, beside
  // used_bytes (used + thread_cached <= capacity): at most
  // min(2 MiB, capacity / 32) per thread, given back before the pool evicts
  // anything to make room.
  std::uint64_t thread_cached_bytes = 0;
  double fragmentation = 0.0;        // 1 - largest free / total free (0 when nothing is free)
};

struct MoveStats {
  std::uint64_t moves = 0;
  std::uint64_t bytes = 0;          // logical buffer bytes moved
  std::uint64_t stored_bytes = 0;   // bytes written to or read from the destination medium
  double seconds = 0.0;             // time spent copying (IO worker time)
};

enum class EvictionReason : std::uint8_t { Pressure = 0, Proactive = 1, Explicit = 2 };
inline constexpr int kEvictionReasonCount = 3;

struct ErrorStats {
  std::uint64_t spill_write_failures = 0;  // failed spills (victim stayed where it was)
  std::uint64_t fetch_failures = 0;        // IoError thrown from pin
  std::uint64_t corruptions = 0;           // CorruptionError thrown from pin
  std::uint64_t out_of_memory = 0;         // OutOfMemory thrown
  std::uint64_t timeouts = 0;              // waits for an in-flight move that hit io_timeout
};

// Upper bounds (seconds) of the move-latency histogram's buckets; one more
// bucket holds everything slower.
inline constexpr std::array<double, 12> kMoveLatencyBounds = {
    1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0};

struct PoolStats {
  std::array<TierStats, kTierCount> tiers{};
  // moves[from][to], indexed by tier_index().
  std::array<std::array<MoveStats, kTierCount>, kTierCount> moves{};
  std::array<std::uint64_t, kEvictionReasonCount> evictions{};
  // Evictions that wrote nothing because a clean copy already existed below.
  std::uint64_t clean_evictions = 0;
  std::uint64_t pins = 0;
  std::uint64_t pin_waits = 0;       // pins that had to wait for bytes to move
  double stall_seconds = 0.0;        // time callers spent waiting inside pin/allocate
  std::uint64_t live_buffers = 0;
  std::uint64_t disk_stored_bytes = 0;  // bytes of records on disk after compression
  std::uint64_t disk_file_bytes = 0;    // current length of the spill file(s)
  bool disk_direct_io = false;          // large records move with O_DIRECT (DiskOptions::io)
  // Records written with their write kept in flight while the IO thread
  // hashed them (io_uring; header block and payload in one write). Stays 0
  // where the kernel refuses io_uring (a container's seccomp filter,
  // kernel.io_uring_disabled): large spills then take the helper-thread path.
  std::uint64_t disk_overlapped_writes = 0;
  ErrorStats errors;
  // Completed moves by duration: move_latency[i] counts moves that took at
  // most kMoveLatencyBounds[i] (and more than the bound before); the last
  // entry counts the rest. Not cumulative.
  std::array<std::uint64_t, kMoveLatencyBounds.size() + 1> move_latency{};
  double move_latency_sum = 0.0;  // seconds, over the same moves

  const TierStats& tier(Tier t) const { return tiers[tier_index(t)]; }
  const MoveStats& move(Tier from, Tier to) const { return moves[tier_index(from)][tier_index(to)]; }
  // A human-readable multi-line summary.
  std::string to_string() const;
  // The snapshot in the Prometheus text exposition format (version 0.0.4):
  // spillway_tier_bytes{tier,state}, spillway_tier_buffers{tier},
  // spillway_tier_fragmentation_ratio{tier}, spillway_moves_total{from,to},
  // spillway_moved_bytes_total{from,to}, spillway_move_seconds_total{from,to},
  // spillway_move_duration_seconds (histogram), spillway_evictions_total{reason},
  // spillway_clean_evictions_total, spillway_pins_total, spillway_pin_waits_total,
  // spillway_stall_seconds_total, spillway_live_buffers, spillway_errors_total{kind}.
  // Disabled tiers are left out.
  std::string to_prometheus() const;
};

}  // namespace spillway
