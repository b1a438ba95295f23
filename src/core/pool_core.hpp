// src/core/pool_core.hpp — the pool's residency policy: which buffer's bytes
// live on which tier, and every move between them.
//
// PoolCore owns the tier mechanisms (memory arenas, the spill store, the IO
// workers) and the buffer records. Two paths reach a record:
//   - the fast path (inline below): a pin of a buffer already primary on the
//     asked tier and its unpin, and allocate/free of cached block sizes. It
//     takes no pool-wide lock; see Note [Residency state machine] in
//     buffer_record.hpp and the shard rules in thread_shard.hpp;
//   - the slow path, under mu_: every move, wait, eviction and error. A move
//     is reserved under the lock (destination room taken, record claimed),
//     executed without it, and committed under it, after which waiters are
//     woken through one condition variable. No copy or file IO ever runs
//     while mu_ is held. Spills that make room (reactive), proactive spills
//     and prefetches run on the IO workers; a fetch for a pin and an explicit
//     eviction run on the calling thread, which would otherwise only sleep
//     until a worker finished them. With PoolOptions::deterministic_moves no
//     move goes to the IO workers: those that would are queued in
//     caller_moves_ and run by the calling thread before its call returns
//     (or by any thread that would otherwise wait for one of them).
//
// The implementation is split by role:
//   pool_core.cpp         construction, shutdown, tracing, small queries
//   allocation.cpp        allocate/free, thread caches, adopting and collecting records
//   pins.cpp              the pin and unpin slow paths, stream fences, hints, evict, prefetch
//   eviction.cpp          room on a tier: clean drops, victim scans, proactive spilling
//   moves.cpp             launching, running and committing a move (staging for disk <-> device)
//   accounting.cpp        stats(), the tier sampler, OutOfMemory with what is pinned
//   pool_invariants.cpp   check_invariants()
//   clock_policy.cpp, lookahead_policy.cpp   the eviction policies (replacement_policy.hpp)
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/sync.hpp"
#include "buffer_record.hpp"
#include "io_executor.hpp"
#include "replacement_policy.hpp"
#include "spillway/errors.hpp"
#include "spillway/options.hpp"
#include "spillway/stats.hpp"
#include "spillway/trace.hpp"
#include "src/instrument/recorder.hpp"
#include "src/record/access_recorder.hpp"
#include "thread_shard.hpp"
#include "tiers/device/memory_arena.hpp"
#include "tiers/disk/spill_store.hpp"

namespace spillway::instrument {
class MetricsFileWriter;
class LiveStatsPublisher;
class Recorder;
class ChromeTraceSink;
}  // namespace spillway::instrument

namespace spillway::detail {

class StagingRing;

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

// Test seam for the interleaving tests: the places where an operation on a
// record can meet another thread's operation on the same record. A pool
// made while a hook is set calls it at each of them (its fast paths take an
// instrumented copy of themselves); with `broken_pin_ordering` that copy
// reads the state word, and then counts the pin trusting what it read
// instead of judging the value its increment returns: the ordering bug the
// tests must catch.
// Not for production use.
enum class RacePoint : std::uint8_t {
  PinChecked,     // a fast pin is about to count
  UnpinChecked,   // a fast unpin is about to count
  Claimed,        // the slow path claimed a record (a move or clean eviction starts)
  MoveCopying,    // a move's bytes are being copied (no lock held)
  FreeChecked,    // a fast free read a state word it may claim
};
using RaceHook = void (*)(RacePoint);
void set_race_hook_for_testing(RaceHook hook, bool broken_pin_ordering = false);

// $SPILLWAY_DETERMINISTIC (src/core/options.cpp): whether it turns
// PoolOptions::deterministic_moves on for every pool of the process. Throws
// std::invalid_argument naming the variable when it cannot be parsed.
bool deterministic_moves_from_env();

class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  explicit PoolCore(PoolOptions options);
  ~PoolCore();

  // Stops the workers, frees all storage and detaches every record.
  void shutdown() SPILLWAY_EXCLUDES(mu_);
  // The Pool is gone: the access log (if any) is finished after shutdown,
  // with the pool's final move counters in its footer, and the core lives
  // on while Buffers do.
  // Buffers hold a plain pointer to the core and count themselves in their
  // thread's shard, so that making and dropping one writes no reference
  // count shared by every thread; the last Buffer freed lets the core go.
  static void release_pool(std::shared_ptr<PoolCore> core) SPILLWAY_EXCLUDES(mu_);

  BufferRecord* allocate(std::size_t bytes, Tier preferred, std::string_view label) SPILLWAY_EXCLUDES(mu_);
  void free(BufferRecord* r) noexcept SPILLWAY_EXCLUDES(mu_);

  // Returns the pinned address on `where` (nullptr for a zero-byte buffer).
  // A Read pin of a read-shared buffer may be counted in a reader slot of
  // the calling thread: then *reader is set, and the pin ends with
  // unpin_reader() (Note [Read-shared buffers]).
  void* pin(BufferRecord* r, Tier where, Access access, ReaderSlot** reader) SPILLWAY_EXCLUDES(mu_) {
    void* block;
    if (fast_pin(r, where, access, &block, reader)) return block;
    return pin_slow(r, where, access, false, nullptr);
  }
  // The fast path alone (Buffer::try_pin): false, with nothing changed,
  // where pin() would take the slow path.
  bool try_pin(BufferRecord* r, Tier where, Access access, void** block, ReaderSlot** reader) SPILLWAY_EXCLUDES(mu_) {
    return fast_pin(r, where, access, block, reader);
  }
  // Stream-aware pin (see Buffer::pin(Tier, Access, Stream)): a resident
  // buffer needs no copy, so it takes the same fast path.
  void* pin(BufferRecord* r, Tier where, Access access, void* stream) SPILLWAY_EXCLUDES(mu_) {
    void* block;
    if (fast_pin(r, where, access, &block, nullptr)) return block;
    return pin_slow(r, where, access, where == Tier::Device, stream);
  }
  void unpin(BufferRecord* r) noexcept SPILLWAY_EXCLUDES(mu_) {
    const std::uint8_t mode = fast_mode_.load(std::memory_order_relaxed);
    if (mode == kFast ? try_fast_unpin(r) : mode == kInstrumented && instrumented_unpin(r)) return;
    unpin_slow(r);
  }
  // Ends a pin counted in a reader slot.
  void unpin_reader(BufferRecord* r, ReaderSlot* slot) noexcept SPILLWAY_EXCLUDES(mu_) {
    ThreadShard* sh = shards_.mine();
    if (sh == nullptr) [[unlikely]] {
      // No seq window for a revocation to wait out: count down under mu_.
      end_reader_slow(r, slot);
      return;
    }
    sh->enter_reader();
    // Look before counting down: an orphaned word is finished under mu_
    // with the count still held, which keeps the record alive.
    bool finish = state::orphaned(r->state.load(std::memory_order_seq_cst));
    if (!finish) finish = drop_reader_count(r, slot);
    sh->leave();
    if (finish) [[unlikely]] end_reader_slow(r, slot);
  }
  // Turns a reader-slot pin into a pin in r's count (for Pin::release(Stream)).
  void reader_to_count(BufferRecord* r, ReaderSlot* slot) SPILLWAY_EXCLUDES(mu_);
  // Ends a pin once the work queued on `stream` so far is done.
  void unpin_after(BufferRecord* r, Tier pinned_on, void* stream) SPILLWAY_EXCLUDES(mu_);
  void prefetch(BufferRecord* r, Tier where) SPILLWAY_EXCLUDES(mu_);
  void hint_next_use(BufferRecord* r, std::uint64_t step);
  void evict(BufferRecord* r, Tier where) SPILLWAY_EXCLUDES(mu_);
  Tier tier_of(BufferRecord* r) SPILLWAY_EXCLUDES(mu_);
  unsigned clean_copies(BufferRecord* r) SPILLWAY_EXCLUDES(mu_);
  void quiesce() SPILLWAY_EXCLUDES(mu_);
  // Applies stream-ordered copies and deferred unpins that have completed.
  void poll() SPILLWAY_EXCLUDES(mu_);

  PoolStats stats() const SPILLWAY_EXCLUDES(mu_);
  // Checks the residency state and returns what is wrong (each entry names
  // the tier or buffer id), empty when all is well:
  //   - per memory tier, the arena's used bytes equal the footprints of the
  //     blocks records hold there (primaries and clean copies) plus the
  //     blocks reserved for moves in flight and those in thread caches; on
  //     disk, the store's extents in use equal the records' extents plus
  //     those awaiting release (give or take the extents of spills in
  //     flight, which shrink as they write, and those being released without
  //     the lock);
  //   - clean, pinned and per-tier buffer counts equal what the records say;
  //   - every buffer has its primary copy, no copy above it (two primaries),
  //     no block or extent shared with another buffer;
  //   - a pinned buffer is not moving, and its primary block is the one its
  //     pins were given; each record's state word agrees with its fields;
  //   - the moves in flight are the records marked moving.
  // It takes the pool's lock and every thread shard's lock, freezes every
  // record's fast path (kFrozen) and waits for the pins and unpins already
  // past their count to finish, so its numbers are exact while other
  // threads keep working: they wait for it instead. A debugging and testing
  // aid (the stress harness calls it every 50 ms): O(n log n) in the records.
  std::vector<std::string> check_invariants() SPILLWAY_EXCLUDES(mu_);
  // Test seam: shifts the pinned-bytes counter of tier t by `delta`, so a
  // test can see check_invariants() catch broken accounting.
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
  // The access recorder while the pool records (PoolOptions::record_file or
  // SPILLWAY_RECORD), else nullptr. A relaxed load: the public calls in
  // pool.cpp pay this and one predictable branch when recording is off.
  record::AccessRecorder* access_recorder() const { return access_log_.load(std::memory_order_relaxed); }

 private:
  // Starts recording when record_file or SPILLWAY_RECORD names a file.
  void start_recording();
  // Stops recording and writes the footer (after shutdown, so that every
  // move is counted).
  void finish_recording();
  using Lock = MutexLock;
  using Clock = std::chrono::steady_clock;
  // fast_mode_: whether pins, unpins, allocations and frees may skip mu_.
  static constexpr std::uint8_t kFast = 0;          // yes
  static constexpr std::uint8_t kSlowOnly = 1;      // no: tracing records every event under mu_, or closed
  static constexpr std::uint8_t kInstrumented = 2;  // through the race-test copies (set_race_hook_for_testing)
  static constexpr int kAdoptBatch = 64;            // pending or garbage records a shard gathers before a batch

  MemoryArena* arena(Tier t) const { return t == Tier::Disk ? nullptr : arenas_[tier_index(t)].get(); }
  std::uint64_t tier_capacity(Tier t) const;
  void check_open() const SPILLWAY_REQUIRES(mu_);  // throws std::logic_error after shutdown
  void race_point(RacePoint p) const {
    if (race_hook_ != nullptr) race_hook_(p);
  }

  // ---- the fast path (inline: Pin and Buffer call straight into them) ----
  [[gnu::always_inline]] bool fast_pin(BufferRecord* r, Tier where, Access access, void** block, ReaderSlot** reader) {
    // A disk primary's word names the disk tier, but there is no pin there
    // (the slow path says so).
    if (where == Tier::Disk) [[unlikely]] return false;
    const std::uint8_t mode = fast_mode_.load(std::memory_order_relaxed);
    return mode == kFast ? try_fast_pin(r, where, access, block, reader)
                         : mode == kInstrumented && instrumented_pin(r, where, access, block);
  }
  [[gnu::always_inline]] bool try_fast_pin(BufferRecord* r, Tier where, Access access, void** block,
                                           ReaderSlot** reader) {
    ThreadShard* sh = shards_.mine();
    if (sh == nullptr) return false;
    const bool may_share = reader != nullptr && access == Access::Read;
    if (may_share && (r->state.load(std::memory_order_relaxed) & state::kBiased) != 0) {
      if (ReaderSlot* slot = sh->reader_slot(r)) return reader_pin(*sh, r, where, slot, block, reader);
    }
    sh->enter();
    // Count first, then look at what the count landed on: the word as it
    // was at the increment decides (Note [Residency state machine]). One
    // read-modify-write and no read before it, so threads pinning one
    // buffer move its line between them once per pin.
    const std::uint64_t s = r->state.fetch_add(1, std::memory_order_acq_rel);
    if (refuses_pin(s, where, access)) [[unlikely]] {
      book(*sh, r, s, s + 1);
      take_back(*sh, r, 1);
      sh->leave();
      return false;
    }
    *block = finish_pin(*sh, r, where, s);
    // Another pin was there: make the buffer read-shared.
    if (may_share && state::pins(s) != 0 && (s & state::kBiasPin) == 0) [[unlikely]] share(*sh, r, where);
    return true;
  }
  // A Read pin counted in this thread's reader slot for r (the word said
  // read-shared a moment ago).
  bool reader_pin(ThreadShard& sh, BufferRecord* r, Tier where, ReaderSlot* slot, void** block, ReaderSlot** reader) {
    sh.enter_reader();
    slot->count.fetch_add(1, std::memory_order_seq_cst);
    const std::uint64_t s = r->state.load(std::memory_order_seq_cst);
    if ((s & state::kBiased) == 0 || refuses_pin(s, where, Access::Read)) [[unlikely]] {
      // Revoked, frozen, claimed or freed meanwhile: give the count back
      // (finishing the revocation if this was its last reader).
      const bool finish = state::orphaned(s) || drop_reader_count(r, slot);
      sh.leave();
      if (finish) end_reader_slow(r, slot);
      return false;
    }
    r->note_use();
    void* b = r->block[tier_index(where)];
    if (r->pinned_block.load(std::memory_order_relaxed) != b) r->pinned_block.store(b, std::memory_order_relaxed);
    sh.add(sh.pins, 1);
    sh.leave();
    *block = b;
    *reader = slot;
    return true;
  }
  // Counts a reader down inside its seq window; true when the word turned
  // out orphaned, in which case the count is taken back (the caller ends it
  // under mu_ with end_reader_slow).
  static bool drop_reader_count(BufferRecord* r, ReaderSlot* slot) {
    slot->count.fetch_sub(1, std::memory_order_seq_cst);
    if (!state::orphaned(r->state.load(std::memory_order_seq_cst))) return false;
    slot->count.fetch_add(1, std::memory_order_seq_cst);
    return true;
  }
  // One CAS that adds the readers' pin to r's word and marks it read-shared;
  // nothing when the word changed meanwhile.
  static void share(ThreadShard& sh, BufferRecord* r, Tier where) {
    std::uint64_t w = r->state.load(std::memory_order_relaxed);
    constexpr std::uint64_t refuse = state::kSlow | state::kFrozen | state::kGarbage | state::kBiasPin;
    if (state::pins(w) < 2 || (w & refuse) != 0 || state::tier_of(w) != tier_index(where)) return;
    const std::uint64_t to = (w + 1) | state::kBiased | state::kBiasPin;
    if (r->state.compare_exchange_strong(w, to, std::memory_order_seq_cst, std::memory_order_relaxed)) book(sh, r, w, to);
  }
  // Whether a state word refuses a fast pin on `where`.
  static bool refuses_pin(std::uint64_t s, Tier where, Access access) {
    const std::uint64_t refuse =
        state::kSlow | state::kFrozen | (access == Access::ReadWrite ? state::kCleanBelow : 0);
    return (s & refuse) != 0 || (s & state::kTierMask) != state::tier_bits(tier_index(where)) ||
           state::pins(s) >= state::kPinMask - 1;
  }
  // A fast pin that holds (its count returned `s`): the marks of a use, the
  // counters, the block. Ends the thread's seq window.
  [[gnu::always_inline]] static void* finish_pin(ThreadShard& sh, BufferRecord* r, Tier where, std::uint64_t s) {
    r->note_use();
    void* b = r->block[tier_index(where)];
    // Whoever pins sees that it is recorded (a count being taken back can
    // hide which pin was the first).
    if (r->pinned_block.load(std::memory_order_relaxed) != b) r->pinned_block.store(b, std::memory_order_relaxed);
    // book(sh, r, s, s + 1), knowing the word allowed the pin: same tier,
    // a memory tier, the count below its limit.
    if (state::held(s) == 0) {
      sh.add(sh.pinned_bytes[static_cast<std::size_t>(tier_index(where))], static_cast<std::int64_t>(r->footprint));
    }
    sh.add(sh.pins, 1);
    sh.leave();
    return b;
  }
  // Books a fast path's change of r's word in the thread's counters.
  static void book(ThreadShard& sh, const BufferRecord* r, std::uint64_t before, std::uint64_t after) {
    const state::PinnedChange c = state::pinned_change(before, after);
    const auto f = static_cast<std::int64_t>(r->footprint);
    if (c.leaves >= 0) sh.add(sh.pinned_bytes[static_cast<std::size_t>(c.leaves)], -f);
    if (c.joins >= 0) sh.add(sh.pinned_bytes[static_cast<std::size_t>(c.joins)], f);
  }
  [[gnu::always_inline]] bool try_fast_unpin(BufferRecord* r) {
    ThreadShard* sh = shards_.mine();
    if (sh == nullptr) return false;
    sh->enter();
    const std::uint64_t s = r->state.fetch_sub(1, std::memory_order_seq_cst);
    if ((s & (state::kSlow | state::kFrozen)) != 0 || state::pins(s) == 0) [[unlikely]] {
      book(*sh, r, s, s - 1);
      take_back(*sh, r, -1);  // the slow path's business
      sh->leave();
      return false;
    }
    // book(*sh, r, s, s - 1), knowing the word allowed the unpin (a count
    // above 0, no claim): only the last held pin on a memory tier changes
    // the pinned bytes.
    if (state::held(s) == 1 && state::tier_of(s) < 2) {
      sh->add(sh->pinned_bytes[static_cast<std::size_t>(state::tier_of(s))], -static_cast<std::int64_t>(r->footprint));
    }
    sh->leave();
    // A thread waiting for pins to end counted itself in waiters_ before it
    // looked (seq_cst both sides): it saw this unpin, or this sees it.
    if (state::pins(s) == 1 && waiters_.load(std::memory_order_seq_cst) > 0) wake_waiters();
    return true;
  }
  // A fast pin's increment (or unpin's decrement) landed on a word that
  // refuses it: a claim, a freeze, a free, a stream fence. Take it back
  // (still inside the thread's seq window) and let the slow path decide.
  // Nothing acts on the count meanwhile: a claim needs the pins at 0 and
  // fails on the extra one (to be retried), check_invariants() waits for
  // the seq, a pin never races the free of its own buffer (that is a data
  // race in the caller), and an unpin holds a pin, so no claim or free can
  // happen under the missing one.
  // The count and its take-back each book what they changed (pinned
  // bytes), so a slow-path grant or unpin that saw the extra count, or a
  // tier change made under it, still adds up.
  static void take_back(ThreadShard& sh, BufferRecord* r, int delta) {
    const std::uint64_t d = static_cast<std::uint64_t>(static_cast<std::int64_t>(delta));
    const std::uint64_t before = r->state.fetch_sub(d, std::memory_order_acq_rel);
    book(sh, r, before, before - d);
  }
  // The same two with race points, for pools made under a race hook.
  bool instrumented_pin(BufferRecord* r, Tier where, Access access, void** block);
  bool instrumented_unpin(BufferRecord* r);
  void wake_waiters() SPILLWAY_EXCLUDES(mu_);

  // ---- read-shared buffers (Note [Read-shared buffers]) ----
  // Ends a reader-slot pin whose word was orphaned: counts it down under
  // mu_ and gives the word's reader pin back if no reader is left.
  void end_reader_slow(BufferRecord* r, ReaderSlot* slot) noexcept SPILLWAY_EXCLUDES(mu_);
  enum class Sharing { kNone, kGivenBack, kReadersLeft };
  // Revokes r's read sharing: kNone when r was not read-shared; kGivenBack
  // when no reader was counted and the caller now holds the word's reader
  // pin (kBiasPin cleared; end it with unpin_locked or give_back_pin);
  // kReadersLeft when readers remain (r stays pinned; the last of them
  // gives the pin back).
  Sharing revoke_sharing(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // r's pins after revoking a sharing that no reader uses (the pins the
  // slow paths wait for).
  std::uint32_t pins_now(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Ends the reader pin revoke_sharing() handed over, on a live record.
  void give_back_pin(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // revoke_sharing() and, if no reader is left, give_back_pin(): false
  // while readers remain (r stays pinned).
  bool unshare(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Whether any reader slot of any thread counts a pin of r.
  bool readers_counted(const BufferRecord* r) const;
  // Per record, the pins counted in reader slots (under mu_, records with a
  // count are alive).
  std::unordered_map<const BufferRecord*, std::uint64_t> reader_counts() const SPILLWAY_REQUIRES(mu_);
  // Waits until every thread shard's seq window that is open now has closed.
  void wait_for_open_windows() const;

  // ---- slow paths ----
  void* pin_slow(BufferRecord* r, Tier where, Access access, bool ordered, void* stream) SPILLWAY_EXCLUDES(mu_);
  void unpin_slow(BufferRecord* r) noexcept SPILLWAY_EXCLUDES(mu_);
  BufferRecord* allocate_fast(std::size_t bytes, Tier preferred, std::string_view label) SPILLWAY_EXCLUDES(mu_);
  BufferRecord* allocate_slow(std::size_t bytes, Tier preferred, std::string_view label) SPILLWAY_EXCLUDES(mu_);
  bool free_fast(BufferRecord* r) SPILLWAY_EXCLUDES(mu_);
  // A record for `bytes` (arena footprint and size class given, -1 when
  // uncached), from the shard's spares when it has one.
  BufferRecord* new_record(std::size_t bytes, std::size_t footprint, int size_class, std::string_view label,
                           ThreadShard* ids_from);

  // ---- the state word (under mu_) ----
  // Claims r for a change of its primary: false when it is pinned or
  // already claimed (or otherwise off the fast path).
  bool try_claim(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Ends a claim (the record's fields say where it is now).
  void release_claim(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Rewrites tier, kSlow and kCleanBelow from r's fields.
  void publish_state(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Counts a thread in waiters_ while it may wait for a pin to end (before
  // it looks: see try_fast_unpin).
  struct PinWaiter {
    explicit PinWaiter(std::atomic<int>& n) : n_(n) { n_.fetch_add(1, std::memory_order_seq_cst); }
    ~PinWaiter() { n_.fetch_sub(1, std::memory_order_relaxed); }
    PinWaiter(const PinWaiter&) = delete;
    PinWaiter& operator=(const PinWaiter&) = delete;
    std::atomic<int>& n_;
  };
  // Sets kSlow whatever the pins: from here on r's pin count changes only
  // under mu_ (a free, shutdown). Returns the state before.
  std::uint64_t stop_fast_path(BufferRecord* r) SPILLWAY_REQUIRES(mu_);

  // ---- records: the registry and the per-tier rings ----
  // Takes r (allocated on the fast path) from its home shard's pending list
  // into the pool's lists.
  void adopt(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Every shard's pending records in, every freed one unlinked and deleted.
  void adopt_all() SPILLWAY_REQUIRES(mu_);
  void adopt_pending(ThreadShard& s) SPILLWAY_REQUIRES(mu_, s.lock);
  void collect_garbage(ThreadShard& s) SPILLWAY_REQUIRES(mu_, s.lock);
  void register_record(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  void link(BufferRecord* r) SPILLWAY_REQUIRES(mu_);    // into the lists its state calls for
  void unlink(BufferRecord* r) SPILLWAY_REQUIRES(mu_);  // out of every list but `all_`
  void delete_record(BufferRecord* r) SPILLWAY_REQUIRES(mu_);

  // ---- thread block caches ----
  std::size_t cache_limit(Tier t) const {
    return t == Tier::Disk ? 0 : cache_limit_[static_cast<std::size_t>(tier_index(t))];
  }
  // Sets cache_limit_ from the arenas (min(2 MiB, capacity / 32); 0 for a
  // tier without one), once they exist. Left as it is at shutdown: the
  // fast paths are off by then (fast_mode_), and the bins emptied.
  void set_cache_limits();
  // Fills the calling thread's bin of class c on tier t from the arena
  // (never evicting). False when the arena has no such block free.
  bool refill(ThreadShard& sh, Tier t, int size_class) SPILLWAY_EXCLUDES(mu_);
  // Gives half of a full bin back to the arena.
  void spill_bin(ThreadShard& sh, Tier t, int size_class) SPILLWAY_EXCLUDES(mu_);
  // Every thread's cached blocks of tier t back to the arena.
  void drain_caches(Tier t) SPILLWAY_REQUIRES(mu_);
  std::uint64_t cached_bytes(Tier t) const;

  // ---- room on one tier, without waiting (eviction.cpp) ----
  void* try_block(Tier t, std::size_t bytes) SPILLWAY_REQUIRES(mu_);
  // A block for a prefetch: try_block, else room made by dropping primaries
  // that have a clean copy below (no write) and whose next use, by their
  // hints, comes after `next_use`.
  void* prefetch_block(Tier t, std::size_t bytes, std::uint64_t next_use) SPILLWAY_REQUIRES(mu_);
  std::optional<SpillExtent> try_extent(std::size_t bytes) SPILLWAY_REQUIRES(mu_);
  void drop_clean(BufferRecord* r, Tier t) SPILLWAY_REQUIRES(mu_);
  // Takes r out of backed_bytes_ (if it was counted there).
  void uncount_backed(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  void release_later(const SpillExtent& e) SPILLWAY_REQUIRES(mu_) { deferred_release_.push_back(e); }
  void release_deferred(Lock& lk) SPILLWAY_REQUIRES(mu_);

  // A move the caller runs itself after unlocking: a copy-down eviction
  // (see make_room), or in deterministic mode any move launched without a
  // thread of its own (caller_moves_).
  struct InlineMove {
    BufferRecord* record;
    Tier from, to;
    void* dst;
    std::optional<SpillExtent> ext;
    EvictionReason reason;
    bool is_eviction = true;
    std::shared_ptr<MoveTicket> ticket;
  };
  // Deterministic mode (PoolOptions::deterministic_moves): runs the moves
  // queued in caller_moves_ on this thread, the lock released while they
  // copy, until none is left (a commit may queue more: a cascade, the
  // proactive spiller). Returns whether it ran any. Called before every wait
  // for a move, so that a queued move is never waited for without being run.
  bool run_caller_moves(Lock& lk) SPILLWAY_REQUIRES(mu_);
  // Ends a call that may have queued moves (allocate, pin, evict, prefetch):
  // in deterministic mode, runs them before the call returns or throws.
  struct CallerMoves {
    explicit CallerMoves(PoolCore* c) : core(c) {}
    ~CallerMoves() {
      if (core->options_.deterministic_moves) core->finish_caller_moves();
    }
    CallerMoves(const CallerMoves&) = delete;
    CallerMoves& operator=(const CallerMoves&) = delete;
    PoolCore* core;
  };
  void finish_caller_moves() noexcept SPILLWAY_EXCLUDES(mu_);
  enum class EvictOutcome { Evicted, Busy, NoRoom };
  // Starts spills out of `t` until the bytes in flight out of it reach
  // `want`; clean evictions happen at once. Returns whether anything changed.
  // With `inline_moves`, copy-down evictions are not queued on the IO
  // workers but appended there for the caller to run.
  bool start_evictions(Tier t, std::uint64_t want, EvictionReason reason,
                       std::vector<InlineMove>* inline_moves = nullptr) SPILLWAY_REQUIRES(mu_);
  EvictOutcome evict_one(BufferRecord* v, EvictionReason reason, std::vector<InlineMove>* inline_moves = nullptr) SPILLWAY_REQUIRES(mu_);
  // r claimed: makes the clean copy on `below` the primary and drops the
  // faster copies (an eviction that writes nothing), and ends the claim.
  void demote_to_clean(BufferRecord* r, Tier below) SPILLWAY_REQUIRES(mu_);
  void maybe_proactive(Tier t) SPILLWAY_REQUIRES(mu_);
  // Reserves a block on memory tier t, evicting and waiting as allowed.
  // Returns nullptr when no room could be made by `deadline`.
  // Sets *waited when it had to block.
  void* make_room(Lock& lk, Tier t, std::size_t bytes, Clock::time_point deadline,
                  bool wait_for_pins, bool* waited = nullptr) SPILLWAY_REQUIRES(mu_);
  void wait_io(Lock& lk, const char* what) SPILLWAY_REQUIRES(mu_);

  // ---- moves (moves.cpp) ----
  // Claims r and launches a move from its primary to `to`, into `dst` (a
  // block) or `ext` (disk); false, with nothing changed, when r cannot be
  // claimed (a pin came first). The ticket (if any) is completed at commit.
  // With on_caller, nothing is queued: the caller unlocks and calls
  // run_move itself (fetches for a pin, explicit evictions: the caller
  // would only wait for a worker otherwise). With `claimed`, the caller
  // holds the claim already.
  bool launch_move(BufferRecord* r, Tier to, void* dst, std::optional<SpillExtent> ext, bool is_eviction,
                   EvictionReason reason, std::shared_ptr<MoveTicket> ticket, bool on_caller = false,
                   bool claimed = false) SPILLWAY_REQUIRES(mu_);
  void run_move(BufferRecord* r, Tier from, Tier to, void* dst, std::optional<SpillExtent> ext,
                bool is_eviction, EvictionReason reason, std::shared_ptr<MoveTicket> ticket) SPILLWAY_EXCLUDES(mu_);
  void copy_bytes(BufferRecord* r, Tier from, Tier to, void* dst, SpillExtent* ext,
                  std::uint64_t* stored, MoveTicket* ticket) SPILLWAY_EXCLUDES(mu_);
  // Staging rings for disk <-> device moves: one per move in flight, made
  // on demand and kept for reuse.
  std::unique_ptr<StagingRing> take_ring(MemoryArena* arena) SPILLWAY_EXCLUDES(mu_);
  void give_ring(std::unique_ptr<StagingRing> ring) SPILLWAY_EXCLUDES(mu_);

  // ---- pins (pins.cpp) ----
  void grant_pin(BufferRecord* r, Access access) SPILLWAY_REQUIRES(mu_);
  // Ends one pin; a record freed while pinned is freed by its last unpin
  // (its keepalive handed to `keep`, to be dropped after the lock).
  void unpin_locked(Lock& lk, BufferRecord* r, std::shared_ptr<PoolCore>* keep) SPILLWAY_REQUIRES(mu_);
  // ReadWrite: clean copies go now, or when r's copy fence is done.
  void invalidate_clean(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Polls the fences of stream-ordered copies and deferred unpins; applies
  // those that are done. Returns whether any was.
  bool poll_fences(Lock& lk) SPILLWAY_REQUIRES(mu_);
  // r's copy fence is done: drop what it kept.
  void fence_done(BufferRecord* r) SPILLWAY_REQUIRES(mu_);
  // Waits until `deadline` or a change (a move committed, a pin ended);
  // with fences pending, in short steps that poll them.
  void wait_for_change(Lock& lk, Clock::time_point deadline) SPILLWAY_REQUIRES(mu_);
  void free_now(BufferRecord* r) SPILLWAY_REQUIRES(mu_);

  // ---- accounting (accounting.cpp) ----
  // Live Buffer handles: the pool's count plus every shard's.
  std::int64_t live_handles() const SPILLWAY_REQUIRES(mu_);
  [[noreturn]] void throw_oom(Lock& lk, Tier t, std::size_t bytes, const std::string& detail) SPILLWAY_REQUIRES(mu_);
  std::vector<std::pair<std::string, std::size_t>> pinned_by_label(Tier t) SPILLWAY_REQUIRES(mu_);
  // Pinned bytes of each memory tier: the pool's counter plus every shard's.
  std::array<std::uint64_t, 2> pinned_bytes() const SPILLWAY_REQUIRES(mu_);
  // Books a slow path's change of r's word in the pool's counters.
  void book(const BufferRecord* r, std::uint64_t before, std::uint64_t after) SPILLWAY_REQUIRES(mu_) {
    const state::PinnedChange c = state::pinned_change(before, after);
    const auto f = static_cast<std::int64_t>(r->footprint);
    if (c.leaves >= 0) pinned_bytes_[static_cast<std::size_t>(c.leaves)] -= f;
    if (c.joins >= 0) pinned_bytes_[static_cast<std::size_t>(c.joins)] += f;
  }
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
  std::unique_ptr<ReplacementPolicy> policy_;
  // The fastest enabled tier at or below each tier (kTierCount: none).
  std::array<int, kTierCount> first_tier_{};
  std::unique_ptr<IoExecutor> io_;
  std::unique_ptr<instrument::MetricsFileWriter> metrics_;  // when options_.metrics_file is set
  std::unique_ptr<instrument::LiveStatsPublisher> live_;    // when options_.live_stats is set
  Mutex staging_mu_;
  std::vector<std::unique_ptr<StagingRing>> free_rings_ SPILLWAY_GUARDED_BY(staging_mu_);
  RaceHook race_hook_ = nullptr;
  bool broken_pin_ordering_ = false;

  // ---- read by the fast path ----
  std::atomic<std::uint8_t> fast_mode_{kFast};
  std::atomic<record::AccessRecorder*> access_log_{nullptr};  // nullptr: not recording (or finished)
  std::atomic<bool> closed_{false};
  std::atomic<int> waiters_{0};  // threads waiting for a pin to end or a move to commit
  std::atomic<std::uint64_t> next_id_{1};
  // Per memory tier: what a thread's block cache may hold (cache_limit()).
  // Set once at construction.
  std::array<std::size_t, 2> cache_limit_{};
  ShardTable shards_;

  mutable Mutex mu_;
  std::condition_variable cv_;
  // Every adopted record (pending ones are in their home shard). Owns them.
  RecordList all_ SPILLWAY_GUARDED_BY(mu_){kAllList};
  std::array<RecordList, 2> rings_ SPILLWAY_GUARDED_BY(mu_){RecordList(kDeviceRing), RecordList(kHostRing)};
  std::array<RecordList, 2> clean_lists_ SPILLWAY_GUARDED_BY(mu_){RecordList(kCleanHostList),
                                                                  RecordList(kCleanDiskList)};
  std::array<std::uint64_t, kTierCount> pending_out_ SPILLWAY_GUARDED_BY(mu_){};  // bytes being spilled out of a tier
  // Storage taken from a tier but held by no record yet: the destination of
  // a move in flight (block or extent), a block between make_room and its
  // owner. Disk extents being released outside the lock. For check_invariants.
  std::array<std::uint64_t, kTierCount> reserved_bytes_ SPILLWAY_GUARDED_BY(mu_){};
  std::uint64_t releasing_disk_bytes_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::uint64_t moves_in_flight_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::vector<SpillExtent> deferred_release_ SPILLWAY_GUARDED_BY(mu_);
  // Deterministic mode: moves launched for no caller in particular
  // (proactive spills, prefetches, cascades), claimed and counted in
  // moves_in_flight_, that the calling thread runs before its call returns.
  // Always empty otherwise.
  std::vector<InlineMove> caller_moves_ SPILLWAY_GUARDED_BY(mu_);
  struct Fenced {
    BufferRecord* record;
    std::shared_ptr<Fence> fence;
    bool unpin;  // a deferred unpin (else a copy fence to settle)
  };
  std::vector<Fenced> fenced_ SPILLWAY_GUARDED_BY(mu_);
  std::string last_spill_error_ SPILLWAY_GUARDED_BY(mu_);

  // Statistics kept under mu_; the fast path's counterparts are in the
  // shards, and readers add both (accounting.cpp).
  std::array<std::uint64_t, kTierCount> clean_bytes_ SPILLWAY_GUARDED_BY(mu_){};
  // Footprints of the primaries on each tier that have a clean copy below
  // (BufferRecord::backed_on): room the tier can have back with no write,
  // so proactive spilling leaves them where they are.
  std::array<std::uint64_t, kTierCount> backed_bytes_ SPILLWAY_GUARDED_BY(mu_){};
  std::array<std::int64_t, 2> pinned_bytes_ SPILLWAY_GUARDED_BY(mu_){};  // slow-path part
  mutable std::array<std::uint64_t, kTierCount> peak_bytes_ SPILLWAY_GUARDED_BY(mu_){};
  std::array<std::int64_t, kTierCount> buffers_ SPILLWAY_GUARDED_BY(mu_){};  // slow-path part
  std::int64_t handles_ SPILLWAY_GUARDED_BY(mu_) = 0;  // Buffers made - freed on the slow path
  // Set when the Pool is destroyed while Buffers live: the core owns itself
  // until the last of them is freed.
  std::shared_ptr<PoolCore> self_ SPILLWAY_GUARDED_BY(mu_);
  bool pool_released_ SPILLWAY_GUARDED_BY(mu_) = false;
  std::array<std::array<MoveStats, kTierCount>, kTierCount> moves_ SPILLWAY_GUARDED_BY(mu_){};
  std::array<std::uint64_t, kEvictionReasonCount> evictions_ SPILLWAY_GUARDED_BY(mu_){};
  std::uint64_t clean_evictions_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::uint64_t pins_ SPILLWAY_GUARDED_BY(mu_) = 0;  // slow-path part
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

  // The access log (src/record/access_recorder.hpp): owned here, published
  // in access_log_ (beside fast_mode_) while the pool records.
  std::unique_ptr<record::AccessRecorder> access_recorder_;
};

}  // namespace spillway::detail
