// spillway/options.hpp — how a Pool is configured.
//
// Every field has a default that works on a machine without a GPU: a
// simulated device tier, a host tier of a quarter of physical RAM, and an
// unlimited disk tier in a private directory under $TMPDIR or /var/tmp.
// PoolOptions::from_env() reads the same fields from SPILLWAY_* variables
// (see docs/configuration.md) and throws std::invalid_argument naming the
// variable and value when one cannot be parsed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "spillway/io_env.hpp"

namespace spillway {

inline constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();

enum class DeviceBackend : std::uint8_t {
  Auto,       // Cuda when compiled in and a GPU is present, else Simulated
  Cuda,       // real VRAM; throws at Pool construction if unavailable
  Simulated,  // an arena in host memory that behaves like a device tier
  None,       // no device tier: Tier::Device is off
};

// DeviceOptions::capacity_bytes default: with the CUDA backend, 80% of the
// VRAM free when the pool is created; with the simulated one, 256 MiB.
inline constexpr std::size_t kAutoCapacity = ~std::size_t{0};
inline constexpr std::size_t kDefaultSimulatedDeviceBytes = std::size_t{256} << 20;

struct DeviceOptions {
  std::size_t capacity_bytes = kAutoCapacity;  // 0 turns the device tier off
  DeviceBackend backend = DeviceBackend::Auto;
  int cuda_device = 0;
  // Disk <-> device moves go through a ring of host staging buffers
  // (page-locked with CUDA) so that disk IO, checksumming and DMA overlap:
  // while one slice is copied to or from VRAM the next is read or written.
  // Each move in flight uses one ring; rings are made on demand and kept.
  // The size is the disk tier's IO slice for these moves: a multiple of
  // 1 MiB (the LZ4 chunk), at most 64 MiB; the count is 2 to 64.
  std::size_t staging_buffer_bytes = std::size_t{1} << 20;
  unsigned staging_buffers = 4;
};

struct HostOptions {
  // 0 turns the host tier off. Default: a quarter of physical memory.
  std::size_t capacity_bytes = default_capacity();
  // Page-locked memory when the CUDA backend is active; ignored otherwise.
  bool pinned = true;
  static std::size_t default_capacity();
};

enum class Compression : std::uint8_t {
  Adaptive,  // LZ4 only when the measured gain beats writing raw bytes
  Lz4,       // always LZ4 (raw when LZ4 would not shrink the record)
  None,      // never compress
};

// Records of at least this many bytes are the ones DiskIo applies to.
inline constexpr std::uint64_t kDirectIoMinBytes = std::uint64_t{256} << 10;

// How the disk tier moves large records (kDirectIoMinBytes and up; smaller
// records always go through the page cache, where a write costs microseconds
// instead of a device round trip).
enum class DiskIo : std::uint8_t {
  // O_DIRECT where the spill filesystem supports it, else buffered. Spilled
  // bytes then really leave memory: they are not kept a second time as page
  // cache, which in a memory cgroup is charged to the same limit and has to
  // be reclaimed before the next read (docs/performance.md measures both).
  Auto,
  Direct,    // O_DIRECT; creating the pool throws IoError where unsupported
  Buffered,  // through the page cache: fastest while the machine has memory to spare
};

struct DiskOptions {
  bool enabled = true;
  // Parent of the pool's private spill directory. Empty: $SPILLWAY_SPILL_DIR,
  // else $TMPDIR, else /var/tmp.
  std::string directory;
  // Quota on the bytes of spill-file extents in use (4 KiB granularity).
  std::uint64_t capacity_bytes = kUnlimited;
  Compression compression = Compression::Adaptive;
  DiskIo io = DiskIo::Auto;
  // Free space at the end of the spill file is given back to the filesystem
  // (ftruncate) once it reaches this many bytes (at most a quarter of
  // capacity_bytes). Below that it stays allocated, so a spill at the tail
  // overwrites blocks the file already has: growing the file again costs the
  // filesystem a block allocation per write, which made O_DIRECT spills at
  // the tail run at half speed on the reference machine. 0: truncate at once.
  std::uint64_t tail_slack_bytes = std::uint64_t{64} << 20;
  // The filesystem seam; nullptr means IoEnv::posix(). Tests inject faults here.
  std::shared_ptr<IoEnv> env;
};

enum class EvictionPolicy : std::uint8_t {
  // Least recently pinned first, learnt without a lock on the pin path
  // (CLOCK, "second chance"): a pin marks its buffer, and the eviction scan
  // passes over a marked buffer once (clearing the mark) before it may take
  // it. A buffer pinned since the scan last came by is never taken before
  // one that was not; among those, the earliest to arrive on the tier goes
  // first.
  Lru,
  // Farthest next use first (Buffer::hint_next_use, e.g. from a graph
  // executor's schedule), among the 64 oldest arrivals on the tier,
  // weighed by cost: a victim with a clean copy below (free to drop) counts
  // as twice as far as a dirty one. Buffers used but never hinted count as
  // farthest (in LRU order among themselves); one just allocated and not yet
  // pinned or hinted counts as nearest.
  Lookahead,
};

struct PoolOptions {
  DeviceOptions device;
  HostOptions host;
  DiskOptions disk;
  EvictionPolicy policy = EvictionPolicy::Lru;
  unsigned io_threads = 2;
  // Proactive spilling band: when a tier's use passes high_watermark x
  // capacity, a background worker spills LRU buffers down until it is back
  // under low_watermark. Buffers with a clean copy on a slower tier count as
  // free room (they can go at once, without a write) and are not spilled
  // ahead of need. Set high_watermark to 1.0 to turn it off.
  double high_watermark = 0.90;
  double low_watermark = 0.75;
  // How long allocate/pin may wait for pins to be released before throwing
  // OutOfMemory.
  std::chrono::milliseconds pressure_wait{2000};
  // Deterministic moves: every move the pool would otherwise hand to its IO
  // workers (proactive spills between the watermarks, prefetches, the host
  // spills an eviction cascades into) runs on the calling thread before the
  // call that started it returns, and stream-ordered copies and unpins
  // (Buffer::pin and Pin::release with a Stream) finish on the calling thread
  // too. A single-threaded program's moves are then a function of its
  // sequence of calls alone, not of how fast the workers ran: two runs move
  // the same bytes, and `spillway replay` of its access log moves exactly
  // what it recorded (docs/replay.md, "Exact replay"). The price is overlap:
  // the caller waits for every spill and prefetch it causes, so prefetching
  // no longer hides a fetch and proactive spills add to the call's latency.
  // Every other rule holds (no pin on a moving buffer, no lost bytes, the
  // same errors). $SPILLWAY_DETERMINISTIC=1 turns it on for every pool of a
  // process (as `spillway record --deterministic` does).
  bool deterministic_moves = false;
  // How long a caller waits for one in-flight move (a spill or fetch already
  // under way) before throwing IoError(ETIMEDOUT).
  std::chrono::milliseconds io_timeout{60000};
  // When set, the pool's metrics (PoolStats::to_prometheus) are written to
  // this file every metrics_interval and when the pool is destroyed,
  // atomically (a temporary file renamed over it), for node_exporter's
  // textfile collector. A path that cannot be written makes the Pool
  // constructor throw IoError.
  std::string metrics_file;
  std::chrono::milliseconds metrics_interval{10000};
  // When set, the pool records a trace of its whole life (Pool::set_trace
  // with a Chrome-JSON sink) and writes it to this file when it is
  // destroyed; ui.perfetto.dev opens it. A path that cannot be written makes
  // the Pool constructor throw IoError. See docs/profiling.md.
  std::string trace_file;
  // A trace keeps at most this many pool events (tier samples aside): the
  // first ones, or the last ones with trace_keep_last. The rest are counted
  // and the trace says how many.
  std::size_t trace_max_events = 200000;
  bool trace_keep_last = false;
  // When set, the pool publishes its stats every live_stats_interval (and
  // once more when it is destroyed) in the shared-memory segment
  // /dev/shm/spillway.<uid>.<pid> (mode 0600, removed with the pool), where
  // `spillway top` reads them from another process. Segments left by
  // processes that died are removed when a pool with live stats starts.
  bool live_stats = false;
  std::chrono::milliseconds live_stats_interval{500};
  // When set, the pool records an access log of its whole life to this
  // file: every allocate, free, pin, unpin, hint, prefetch and explicit
  // evict, with the calling thread and the time, and Pool::record_marker's
  // markers; the footer written when the pool is destroyed holds what the
  // pool moved. `spillway record` reads it; `spillway replay` and `spillway
  // bound` use it (docs/record-format.md). Empty: $SPILLWAY_RECORD when it
  // is set, else no log. A second pool of the same process recording to the
  // same path writes path.1, a third path.2, and so on. A path that cannot
  // be created makes the Pool constructor throw IoError. Recording costs
  // each call a few tens of nanoseconds and never blocks on the file (a
  // background thread writes it); see the file's docs for what happens when
  // the disk fills.
  std::string record_file;

  // Reads SPILLWAY_DEVICE_BYTES, SPILLWAY_DEVICE_BACKEND, SPILLWAY_HOST_BYTES,
  // SPILLWAY_HOST_PINNED, SPILLWAY_DISK, SPILLWAY_DISK_DIR, SPILLWAY_DISK_BYTES,
  // SPILLWAY_COMPRESSION, SPILLWAY_DISK_IO, SPILLWAY_POLICY, SPILLWAY_IO_THREADS,
  // SPILLWAY_HIGH_WATERMARK, SPILLWAY_LOW_WATERMARK, SPILLWAY_PRESSURE_WAIT_MS,
  // SPILLWAY_IO_TIMEOUT_MS, SPILLWAY_STAGING_BUFFER_BYTES, SPILLWAY_STAGING_BUFFERS,
  // SPILLWAY_METRICS_FILE, SPILLWAY_METRICS_INTERVAL_MS, SPILLWAY_TRACE,
  // SPILLWAY_TRACE_MAX_EVENTS, SPILLWAY_TRACE_KEEP (first|last), SPILLWAY_LIVE_STATS,
  // SPILLWAY_LIVE_STATS_INTERVAL_MS, SPILLWAY_RECORD, SPILLWAY_DETERMINISTIC over the
  // defaults (or over `base`).
  static PoolOptions from_env();
  static PoolOptions from_env(PoolOptions base);
  // Throws std::invalid_argument naming the first field that is out of range.
  void validate() const;
};

// Parses "4096", "64K", "64KiB", "1.5G", "2 MiB"... (binary multiples), or
// "unlimited". Throws std::invalid_argument naming `what` on bad input.
std::uint64_t parse_byte_size(const std::string& text, const char* what = "byte size");

}  // namespace spillway
