// src/core/pool_core.hpp — the pool's residency state machine (policy).
//
// PoolCore owns the tier mechanisms (memory arenas, the spill store, the IO
// workers) and decides where every buffer's bytes live. One mutex guards all
// residency state; no copy or file IO ever runs while it is held. A move is
// reserved under the lock (destination room taken, record marked `moving`),
// executed without the lock, and committed under the lock, after which
// waiters are woken through one condition variable. Spills that make room
// (reactive), proactive spills and prefetches execute on the IO workers; a
// fetch for a pin and an explicit eviction execute on the calling thread,
// which would otherwise only sleep until a worker finished them.
//
// Residency of a record:
//   primary       the tier holding the authoritative bytes
//   block[t]      a block on memory tier t (Device, Host): the primary copy
//                 or a clean copy
//   on_disk       a disk record (primary or clean) in `extent`
// Clean copies are always on tiers slower than the primary. A pinned record
// is never moved; a moving record is never pinned (a fetch grants its pin at
// commit) and sits in no eviction list.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io_executor.hpp"
#include "spillway/errors.hpp"
#include "spillway/options.hpp"
#include "spillway/stats.hpp"
#include "spillway/trace.hpp"
#include "src/instrument/recorder.hpp"
#include "base/sync.hpp"
#include "tiers/device/memory_arena.hpp"
#include "tiers/disk/spill_store.hpp"

namespace spillway::instrument {
class MetricsFileWriter;
class LiveStatsPublisher;
class Recorder;
class ChromeTraceSink;
}

namespace spillway::detail {

class StagingRing;

struct BufferRecord;

// An intrusive doubly-linked list of records, one hook per (list kind, tier),
// so linking and unlinking on the pin/unpin path never allocates.
enum ListKind : int { kPrimaryList = 0, kCleanList = 1 };

struct ListHook {
  BufferRecord* prev = nullptr;
  BufferRecord* next = nullptr;
  bool linked = false;
};

class RecordList {
 public:
  RecordList(ListKind kind, int tier) : kind_(kind), tier_(tier) {}
  void push_back(BufferRecord* r);
  void remove(BufferRecord* r);
  BufferRecord* front() const { return head_; }
  static BufferRecord* next(const BufferRecord* r, ListKind kind, int tier);
  bool empty() const { return head_ == nullptr; }

 private:
  ListHook& hook(BufferRecord* r) const;
  ListKind kind_;
  int tier_;
  BufferRecord* head_ = nullptr;
  BufferRecord* tail_ = nullptr;
};

inline constexpr std::uint64_t kNoHint = ~std::uint64_t{0};

struct BufferRecord {
  std::uint64_t id = 0;
  std::size_t size = 0;
  std::size_t footprint = 0;  // bytes the buffer takes in a memory arena
  std::string label;
  Tier primary = Tier::Host;
  std::array<void*, 2> block{};  // Device, Host
  bool on_disk = false;
  bool disk_zero = false;  // disk copy is "all zeros", not yet written
  SpillExtent extent;
  std::uint32_t pins = 0;
  // The block the live pins point at (set when the first pin is granted):
  // check_invariants() verifies that a pinned buffer's bytes never moved.
  void* pinned_block = nullptr;
  bool moving = false;
  bool dead = false;  // the Buffer is gone; free when the move or last pin ends
  // A stream-ordered copy into the device block that may still be running
  // (stream-aware pin). While it is, the record holds a pin (so nothing
  // moves or frees it), stays off the clean lists (the copy reads the host
  // copy) and keeps clean copies that a ReadWrite pin made stale.
  std::shared_ptr<Fence> copy_fence;
  bool stale_clean = false;  // drop the clean copies once copy_fence is done
  std::uint64_t last_use = 0;
  std::uint64_t next_use = kNoHint;
  // Allocated, and neither pinned nor hinted since: its owner is about to
  // use it. Lookahead counts it as nearest, not as unhinted (farthest), so
  // that the proactive spill an allocation may start does not pick the very
  // buffer just allocated.
  bool fresh = true;
  // The tier whose backed_bytes_ counts this record (it is in that tier's
  // eviction list with a clean copy below), or -1.
  std::int8_t backed_on = -1;
  // The label's id in the current trace recorder (interned on first use).
  mutable std::uint32_t trace_label = 0;
  mutable std::uint64_t trace_label_generation = 0;
  std::array<std::array<ListHook, kTierCount>, 2> hooks{};

  bool has_copy(Tier t) const {
    return t == Tier::Disk ? on_disk : block[tier_index(t)] != nullptr;
  }
  bool has_clean(Tier t) const { return t != primary && has_copy(t); }
  // A clean copy below the primary: evicting it writes nothing.
  bool clean_below() const { return has_clean(Tier::Host) || has_clean(Tier::Disk); }
};

// One move's outcome, shared by the worker and the thread that waits on it.
struct MoveTicket {
  bool done = false;
  bool wants_pin = false;   // a pin waits for this fetch: grant it at commit
  bool abandoned = false;   // the waiter gave up (timeout): grant nothing
  bool pin_granted = false;
  std::exception_ptr error;
  bool ordered = false;           // stream-aware pin: leave a host -> device copy in flight
  void* stream = nullptr;         // ... ordered before this stream
  std::shared_ptr<Fence> fence;   // the copy left in flight, if any
};

// Test seam: when set, a pool whose device tier is Simulated takes its
// device arena from this factory (given the capacity) instead of host
// memory. The stream-ordering tests use it to stand in a device whose copies
// run later, on a queue of their own. Not for production use.
using DeviceArenaFactory = std::function<std::unique_ptr<MemoryArena>(std::size_t capacity)>;
void set_simulated_device_arena_factory(DeviceArenaFactory factory);

class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  explicit PoolCore(PoolOptions options);
  ~PoolCore();

  // Stops the workers, frees all storage and detaches every record.
  void shutdown() SPILLWAY_EXCLUDES(mu_);

  BufferRecord* allocate(std::size_t bytes, Tier preferred, std::string_view label) SPILLWAY_EXCLUDES(mu_);
  void free(BufferRecord* r) noexcept SPILLWAY_EXCLUDES(mu_);
  // Returns the pinned address on `where` (nullptr for a zero-byte buffer).
  void* pin(BufferRecord* r, Tier where, Access access) SPILLWAY_EXCLUDES(mu_);
  // Stream-aware pin (see Buffer::pin(Tier, Access, Stream)).
  void* pin(BufferRecord* r, Tier where, Access access, void* stream) SPILLWAY_EXCLUDES(mu_);
  void unpin(BufferRecord* r) noexcept SPILLWAY_EXCLUDES(mu_);
  // Ends a pin once the work queued on `stream` so far is done.
  void unpin_after(BufferRecord* r, Tier pinned_on, void* stream) SPILLWAY_EXCLUDES(mu_);
  void prefetch(BufferRecord* r, Tier where) SPILLWAY_EXCLUDES(mu_);
  void hint_next_use(BufferRecord* r, std::uint64_t step) SPILLWAY_EXCLUDES(mu_);
  void evict(BufferRecord* r, Tier where) SPILLWAY_EXCLUDES(mu_);
  Tier tier_of(const BufferRecord* r) const SPILLWAY_EXCLUDES(mu_);
  unsigned clean_copies(const BufferRecord* r) const SPILLWAY_EXCLUDES(mu_);
  void quiesce() SPILLWAY_EXCLUDES(mu_);
  // Applies stream-ordered copies and deferred unpins that have completed.
  void poll() SPILLWAY_EXCLUDES(mu_);

  PoolStats stats() const SPILLWAY_EXCLUDES(mu_);
  // Checks the residency state under the lock and returns what is wrong
  // (each entry names the tier or buffer id), empty when all is well:
  //   - per memory tier, the arena's used bytes equal the footprints of the
  //     blocks records hold there (primaries and clean copies) plus the
  //     blocks reserved for moves in flight; on disk, the store's extents in
  //     use equal the records' extents plus those awaiting release (give or
  //     take the extents of spills in flight, which shrink as they write,
  //     and those being released without the lock);
  //   - clean, pinned and per-tier buffer counts equal what the records say;
  //   - every buffer has its primary copy, no copy above it (two primaries),
  //     no block or extent shared with another buffer;
  //   - a pinned buffer is not moving, sits in no eviction list, and its
  //     primary block is the one its pins were given;
  //   - the moves in flight are the records marked moving.
  // A debugging and testing aid (the stress harness calls it every 50 ms):
  // it walks every record, O(n log n), while holding the pool's lock.
  std::vector<std::string> check_invariants() const SPILLWAY_EXCLUDES(mu_);
  // Test seam: shifts the pinned-bytes counter of tier t by `delta`, so a
  // test can see check_invariants() catch broken accounting. Not for
  // production use.
  void skew_pinned_bytes_for_testing(Tier t, std::int64_t delta) SPILLWAY_EXCLUDES(mu_);
  void set_trace(std::shared_ptr<TraceSink> sink) SPILLWAY_EXCLUDES(mu_);
  bool tracing() const { return tracing_.load(std::memory_order_relaxed); }
  void record_span(std::string_view name, std::uint64_t start_ns, std::uint64_t duration_ns) SPILLWAY_EXCLUDES(mu_);
  const PoolOptions& options() const { return options_; }
  bool tier_enabled(Tier t) const;
  std::string_view device_backend_name() const;
  const std::string& device_backend_reason() const { return backend_reason_; }
  std::string_view host_memory_kind() const;
  std::string spill_directory() const;
  void check_open() const SPILLWAY_REQUIRES(mu_);  // throws std::logic_error after shutdown

 private:
  using Lock = MutexLock;
  using Clock = std::chrono::steady_clock;

  MemoryArena* arena(Tier t) const { return t == Tier::Disk ? nullptr : arenas_[tier_index(t)].get(); }
  std::uint64_t tier_capacity(Tier t) const;

  // List maintenance.
  void link(BufferRecord* r) SPILLWAY_REQUIRES(mu_);    // into the lists its state calls for
  void unlink(BufferRecord* r) SPILLWAY_REQUIRES(mu_);  // out of every list

  // Room on one tier, without waiting.
  void* try_block(Tier t, std::size_t bytes) SPILLWAY_REQUIRES(mu_);
  std::optional<SpillExtent> try_extent(std::size_t bytes) SPILLWAY_REQUIRES(mu_);
  void drop_clean(BufferRecord* r, Tier t) SPILLWAY_REQUIRES(mu_);
  // Takes r out of backed_bytes_ (if it was counted there).
  void uncount_backed(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  void release_later(const SpillExtent& e) SPILLWAY_REQUIRES(mu_) { deferred_release_.push_back(e); }
  void release_deferred(Lock& lk) SPILLWAY_REQUIRES(mu_);

  // Starts spills out of `t` until the bytes in flight out of it reach
  // `want`; clean evictions happen at once. Returns whether anything changed.
  // A move the caller runs itself after unlocking (see make_room).
  struct InlineMove {
    BufferRecord* record;
    Tier from, to;
    void* dst;
    std::optional<SpillExtent> ext;
    EvictionReason reason;
  };
  // With `inline_moves`, copy-down evictions are not queued on the IO
  // workers but appended there for the caller to run.
  bool start_evictions(Tier t, std::uint64_t want, EvictionReason reason,
                       std::vector<InlineMove>* inline_moves = nullptr) SPILLWAY_REQUIRES(mu_);
  bool evict_one(BufferRecord* v, EvictionReason reason, std::vector<InlineMove>* inline_moves = nullptr) SPILLWAY_REQUIRES(mu_);
  void demote_to_clean(BufferRecord* r, Tier below) SPILLWAY_REQUIRES(mu_);
  void maybe_proactive(Tier t) SPILLWAY_REQUIRES(mu_);
  // Reserves a block on memory tier t, evicting and waiting as allowed.
  // Returns nullptr when no room could be made by `deadline`.
  // Sets *waited when it had to block.
  void* make_room(Lock& lk, Tier t, std::size_t bytes, Clock::time_point deadline,
                  bool wait_for_pins, bool* waited = nullptr) SPILLWAY_REQUIRES(mu_);
  void wait_io(Lock& lk, const char* what) SPILLWAY_REQUIRES(mu_);

  // Launches a move of r from its primary to `to`, into `dst` (a block) or
  // `ext` (disk). The ticket (if any) is completed at commit.
  // With on_caller, nothing is queued: the caller unlocks and calls
  // run_move itself (fetches for a pin, explicit evictions: the caller would
  // only wait for a worker otherwise).
  void launch_move(BufferRecord* r, Tier to, void* dst, std::optional<SpillExtent> ext,
                   bool is_eviction, EvictionReason reason, std::shared_ptr<MoveTicket> ticket,
                   bool on_caller = false) SPILLWAY_REQUIRES(mu_);
  void run_move(BufferRecord* r, Tier from, Tier to, void* dst, std::optional<SpillExtent> ext,
                bool is_eviction, EvictionReason reason, std::shared_ptr<MoveTicket> ticket) SPILLWAY_EXCLUDES(mu_);
  void copy_bytes(BufferRecord* r, Tier from, Tier to, void* dst, SpillExtent* ext,
                  std::uint64_t* stored, MoveTicket* ticket) SPILLWAY_EXCLUDES(mu_);

  void* pin_impl(BufferRecord* r, Tier where, Access access, bool ordered, void* stream) SPILLWAY_EXCLUDES(mu_);
  // Staging rings for disk <-> device moves: one per move in flight, made
  // on demand and kept for reuse.
  std::unique_ptr<StagingRing> take_ring(MemoryArena* arena) SPILLWAY_EXCLUDES(mu_);
  void give_ring(std::unique_ptr<StagingRing> ring) SPILLWAY_EXCLUDES(mu_);

  void grant_pin(BufferRecord* r, Access access) SPILLWAY_REQUIRES(mu_);
  void unpin_locked(Lock& lk, BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // ReadWrite: clean copies go now, or when r's copy fence is done.
  void invalidate_clean(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Polls the fences of stream-ordered copies and deferred unpins; applies
  // those that are done. Returns whether any was.
  bool poll_fences(Lock& lk) SPILLWAY_REQUIRES(mu_);
  // r's copy fence is done: drop what it kept.
  void settle(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Waits until `deadline` or a change; with fences pending, in short steps
  // that poll them.
  void wait_for_change(Lock& lk, Clock::time_point deadline) SPILLWAY_REQUIRES(mu_);
  void free_now(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  [[noreturn]] void throw_oom(Lock& lk, Tier t, std::size_t bytes, const std::string& detail) SPILLWAY_REQUIRES(mu_);
  std::vector<std::pair<std::string, std::size_t>> pinned_by_label(Tier t) const SPILLWAY_REQUIRES(mu_);
  // Records an event when tracing is on (under mu_). `bytes` is used when
  // there is no record.
  void emit(TraceKind kind, const BufferRecord* r, Tier from, Tier to, EvictionReason reason,
            bool ok, std::uint64_t duration_ns, std::uint64_t bytes = 0) SPILLWAY_REQUIRES(mu_) {
    if (recorder_) record_event(kind, r, from, to, reason, ok, duration_ns, bytes);  // off: one test
  }
  void record_event(TraceKind kind, const BufferRecord* r, Tier from, Tier to, EvictionReason reason,
                    bool ok, std::uint64_t duration_ns, std::uint64_t bytes) SPILLWAY_REQUIRES(mu_);
  void sample_tiers(std::array<instrument::TierSample, kTierCount>& out) const SPILLWAY_EXCLUDES(mu_);
  void note_peak(Tier t) SPILLWAY_REQUIRES(mu_);

  PoolOptions options_;
  std::array<std::unique_ptr<MemoryArena>, 2> arenas_;
  std::unique_ptr<SpillStore> store_;
  std::string spill_dir_;
  std::string backend_reason_;
  std::unique_ptr<IoExecutor> io_;
  std::unique_ptr<instrument::MetricsFileWriter> metrics_;  // when options_.metrics_file is set
  std::unique_ptr<instrument::LiveStatsPublisher> live_;    // when options_.live_stats is set
  Mutex staging_mu_;
  std::vector<std::unique_ptr<StagingRing>> free_rings_ SPILLWAY_GUARDED_BY(staging_mu_);

  mutable Mutex mu_;
  std::condition_variable cv_;
  int waiters_ SPILLWAY_GUARDED_BY(mu_) = 0;
  bool closed_ SPILLWAY_GUARDED_BY(mu_) = false;
  std::uint64_t next_id_ SPILLWAY_GUARDED_BY(mu_) = 1;
  std::uint64_t clock_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::unordered_map<std::uint64_t, std::unique_ptr<BufferRecord>> records_ SPILLWAY_GUARDED_BY(mu_);
  std::array<RecordList, kTierCount> primary_lists_ SPILLWAY_GUARDED_BY(mu_){RecordList(kPrimaryList, 0),
                                                    RecordList(kPrimaryList, 1),
                                                    RecordList(kPrimaryList, 2)};
  std::array<RecordList, kTierCount> clean_lists_ SPILLWAY_GUARDED_BY(mu_){RecordList(kCleanList, 0),
                                                  RecordList(kCleanList, 1),
                                                  RecordList(kCleanList, 2)};
  std::array<std::uint64_t, kTierCount> pending_out_ SPILLWAY_GUARDED_BY(mu_){};  // bytes being spilled out of a tier
  // Storage taken from a tier but held by no record yet: the destination of
  // a move in flight (block or extent), a block between make_room and its
  // owner. Disk extents being released outside the lock. For check_invariants.
  std::array<std::uint64_t, kTierCount> reserved_bytes_ SPILLWAY_GUARDED_BY(mu_){};
  std::uint64_t releasing_disk_bytes_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::uint64_t moves_in_flight_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::vector<SpillExtent> deferred_release_ SPILLWAY_GUARDED_BY(mu_);
  struct Fenced {
    BufferRecord* record;
    std::shared_ptr<Fence> fence;
    bool unpin;  // a deferred unpin (else a copy fence to settle)
  };
  std::vector<Fenced> fenced_ SPILLWAY_GUARDED_BY(mu_);
  std::string last_spill_error_ SPILLWAY_GUARDED_BY(mu_);

  // Statistics (under mu_).
  std::array<std::uint64_t, kTierCount> clean_bytes_ SPILLWAY_GUARDED_BY(mu_){};
  // Footprints of the evictable primaries on each tier that have a clean
  // copy below (BufferRecord::backed_on): room the tier can have back at
  // once, with no write, so proactive spilling leaves them where they are.
  std::array<std::uint64_t, kTierCount> backed_bytes_ SPILLWAY_GUARDED_BY(mu_){};
  std::array<std::uint64_t, kTierCount> pinned_bytes_ SPILLWAY_GUARDED_BY(mu_){};
  mutable std::array<std::uint64_t, kTierCount> peak_bytes_ SPILLWAY_GUARDED_BY(mu_){};
  std::array<std::uint64_t, kTierCount> buffers_ SPILLWAY_GUARDED_BY(mu_){};
  std::array<std::array<MoveStats, kTierCount>, kTierCount> moves_ SPILLWAY_GUARDED_BY(mu_){};
  std::array<std::uint64_t, kEvictionReasonCount> evictions_ SPILLWAY_GUARDED_BY(mu_){};
  std::uint64_t clean_evictions_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::uint64_t pins_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::uint64_t pin_waits_ SPILLWAY_GUARDED_BY(mu_) = 0;
  double stall_seconds_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::array<std::uint64_t, kMoveLatencyBounds.size() + 1> move_latency_ SPILLWAY_GUARDED_BY(mu_){};
  double move_latency_sum_ SPILLWAY_GUARDED_BY(mu_) = 0;
  ErrorStats errors_ SPILLWAY_GUARDED_BY(mu_);

  // Tracing: the recorder (swapped under mu_), and the trace file's sink
  // when options_.trace_file is set.
  std::unique_ptr<instrument::Recorder> recorder_ SPILLWAY_GUARDED_BY(mu_);
  std::atomic<bool> tracing_{false};
  std::shared_ptr<instrument::ChromeTraceSink> trace_file_;
};

}  // namespace spillway::detail
