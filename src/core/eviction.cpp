// src/core/eviction.cpp — room on a tier: dropping clean copies, scanning for
// victims (the order comes from the ReplacementPolicy), clean evictions,
// proactive spilling, and make_room, which evicts and waits as allowed.
#include <algorithm>
#include <limits>

#include "pool_core.hpp"

namespace spillway::detail {

namespace {
// How many records one start_evictions call looks at, at most (the pool's
// lock is held while it does).
constexpr int kMaxVictimScan = 4096;
}  // namespace

// ---- room without waiting -------------------------------------------------------

void PoolCore::drop_clean(BufferRecord* r, Tier t) {
  clean_lists_[t == Tier::Disk ? 1 : 0].remove(r);
  if (t == Tier::Disk) {
    release_later(r->extent);
    r->on_disk = false;
    r->disk_zero = false;
    clean_bytes_[2] -= r->extent.bytes;
    r->extent = {};
  } else {
    arena(t)->free(r->block[static_cast<std::size_t>(tier_index(t))]);
    r->block[static_cast<std::size_t>(tier_index(t))] = nullptr;
    clean_bytes_[static_cast<std::size_t>(tier_index(t))] -= r->footprint;
  }
  if (!r->clean_below()) uncount_backed(r);
  publish_state(r);  // ReadWrite pins may take the fast path again
}

void* PoolCore::try_block(Tier t, std::size_t bytes) {
  MemoryArena* a = arena(t);
  if (a == nullptr) return nullptr;
  if (void* b = a->allocate(bytes)) return b;
  if (t == Tier::Device) return nullptr;  // clean copies only ever sit below the primary
  // Clean copies are the first bytes dropped: they cost no write.
  RecordList& clean = clean_lists_[0];
  while (!clean.empty()) {
    drop_clean(clean.front(), t);
    if (void* b = a->allocate(bytes)) return b;
  }
  return nullptr;
}

void* PoolCore::prefetch_block(Tier t, std::size_t bytes, std::uint64_t next_use) {
  if (void* b = try_block(t, bytes)) return b;
  // Without a hint there is no telling whether a victim is needed sooner.
  if (next_use == kNoHint || t == Tier::Disk || arena(t) == nullptr) return nullptr;
  VictimScan scan;
  scan.limit = kMaxVictimScan;
  RecordList& ring = rings_[static_cast<std::size_t>(tier_index(t))];
  for (BufferRecord* from = ring.front(); from != nullptr;) {
    const Victim v = policy_->next(ring, from, scan);
    if (v.record == nullptr) break;
    from = v.resume;
    // Only free evictions of buffers used later: a prefetch never writes
    // and never takes what is needed before the buffer it brings up.
    if (!v.record->clean_below() || v.record->next_use.load(std::memory_order_relaxed) <= next_use) continue;
    if (evict_one(v.record, EvictionReason::Pressure, nullptr) != EvictOutcome::Evicted) continue;
    if (void* b = arena(t)->allocate(bytes)) return b;
  }
  return nullptr;
}

std::optional<SpillExtent> PoolCore::try_extent(std::size_t bytes) {
  if (!store_) return std::nullopt;
  if (auto e = store_->reserve(bytes)) return e;
  // Dropping clean disk copies frees quota only once their extents are
  // released; that happens outside the lock, so count what would come back.
  RecordList& clean = clean_lists_[1];
  while (!clean.empty()) {
    BufferRecord* r = clean.front();
    SpillExtent e = r->extent;
    drop_clean(r, Tier::Disk);
    deferred_release_.pop_back();
    store_->release(e);  // no file IO happens here unless the tail is truncated
    if (auto got = store_->reserve(bytes)) return got;
  }
  return std::nullopt;
}

void PoolCore::release_deferred(Lock& lk) {
  if (deferred_release_.empty() || !store_) return;
  std::vector<SpillExtent> todo;
  todo.swap(deferred_release_);
  SpillStore* store = store_.get();
  std::uint64_t bytes = 0;
  for (const auto& e : todo) bytes += e.bytes;
  releasing_disk_bytes_ += bytes;  // still in use in the store until released
  {
    Unlocked unlocked(lk, mu_);
    for (const auto& e : todo) store->release(e);
  }
  releasing_disk_bytes_ -= bytes;
}

// ---- eviction ------------------------------------------------------------------

void PoolCore::demote_to_clean(BufferRecord* r, Tier below) {
  const Tier from = r->primary;
  unlink(r);
  arena(from)->free(r->block[static_cast<std::size_t>(tier_index(from))]);
  r->block[static_cast<std::size_t>(tier_index(from))] = nullptr;
  for (int t = tier_index(from) + 1; t < tier_index(below); ++t) {
    if (r->has_copy(static_cast<Tier>(t))) drop_clean(r, static_cast<Tier>(t));
  }
  clean_bytes_[static_cast<std::size_t>(tier_index(below))] -= below == Tier::Disk ? r->extent.bytes : r->footprint;
  --buffers_[static_cast<std::size_t>(tier_index(from))];
  ++buffers_[static_cast<std::size_t>(tier_index(below))];
  r->primary = below;
  link(r);
  release_claim(r);
}

PoolCore::EvictOutcome PoolCore::evict_one(BufferRecord* v, EvictionReason reason,
                                           std::vector<InlineMove>* inline_moves) {
  if (!try_claim(v)) return EvictOutcome::Busy;  // a pin came first
  const Tier from = v->primary;
  // A clean copy below makes the eviction free: drop the primary.
  for (Tier below : {Tier::Host, Tier::Disk}) {
    if (tier_index(below) <= tier_index(from) || !v->has_clean(below)) continue;
    demote_to_clean(v, below);
    ++evictions_[static_cast<std::size_t>(reason)];
    ++clean_evictions_;
    emit(TraceKind::Evict, v, from, below, reason, true, 0);
    return EvictOutcome::Evicted;
  }
  // Otherwise copy it down: device victims to host when host has room now,
  // else straight to disk; host victims to disk.
  const bool on_caller = inline_moves != nullptr;
  if (from == Tier::Device) {
    if (void* b = try_block(Tier::Host, v->size)) {
      launch_move(v, Tier::Host, b, std::nullopt, true, reason, nullptr, on_caller, true);
      if (on_caller) inline_moves->push_back({v, from, Tier::Host, b, std::nullopt, reason, true, nullptr});
      return EvictOutcome::Evicted;
    }
  }
  if (auto e = try_extent(v->size)) {
    launch_move(v, Tier::Disk, nullptr, e, true, reason, nullptr, on_caller, true);
    if (on_caller) inline_moves->push_back({v, from, Tier::Disk, nullptr, e, reason, true, nullptr});
    return EvictOutcome::Evicted;
  }
  release_claim(v);
  if (from == Tier::Device && arena(Tier::Host) != nullptr) {
    // Cascade: make room on host for later; this victim waits for it.
    start_evictions(Tier::Host, arena(Tier::Host)->capacity() - arena(Tier::Host)->used() >= v->footprint
                                    ? 0
                                    : v->footprint,
                    reason);
  }
  return EvictOutcome::NoRoom;
}

bool PoolCore::start_evictions(Tier t, std::uint64_t want, EvictionReason reason,
                               std::vector<InlineMove>* inline_moves) {
  const int ti = tier_index(t);
  if (pending_out_[static_cast<std::size_t>(ti)] >= want) return false;
  adopt_all();  // records born on the fast path are candidates too
  bool changed = false;
  std::uint64_t freed = 0;  // bytes freed at once by clean evictions
  // A victim that has nowhere to go does not stop the scan: a smaller one
  // behind it may fit. Copy-down fails for every size at or above the
  // smallest that failed (best fit: no extent holds it), so those are skipped
  // without trying; the scan is bounded so the lock is not held for long.
  // Proactive spilling leaves buffers with a clean copy below alone (see
  // maybe_proactive): only writes are worth starting ahead of need.
  VictimScan scan;
  scan.dirty_only = reason == EvictionReason::Proactive;
  scan.limit = kMaxVictimScan;
  RecordList& ring = rings_[static_cast<std::size_t>(ti)];
  BufferRecord* from = ring.front();
  while (from != nullptr && pending_out_[static_cast<std::size_t>(ti)] + freed < want) {
    const Victim v = policy_->next(ring, from, scan);
    if (v.record == nullptr) break;
    from = v.resume;
    const std::uint64_t footprint = v.record->footprint;
    const std::uint64_t pending_before = pending_out_[static_cast<std::size_t>(ti)];
    if (!v.record->clean_below() && footprint >= scan.smallest_failed) continue;
    switch (evict_one(v.record, reason, inline_moves)) {
      case EvictOutcome::Busy:
        break;
      case EvictOutcome::NoRoom:
        // Nowhere to put this one now; a later attempt retries it.
        scan.smallest_failed = std::min(scan.smallest_failed, footprint);
        break;
      case EvictOutcome::Evicted:
        changed = true;
        if (pending_out_[static_cast<std::size_t>(ti)] == pending_before) freed += footprint;
        break;
    }
  }
  return changed;
}

void PoolCore::maybe_proactive(Tier t) {
  if (t == Tier::Disk || arena(t) == nullptr || options_.high_watermark >= 1.0 ||
      closed_.load(std::memory_order_relaxed)) {
    return;
  }
  // Proactive spilling writes dirty buffers ahead of need. Primaries with a
  // clean copy below need no write to go (evict_one drops them at once when
  // room is wanted), and thread caches give their blocks back before any
  // eviction: both count as room.
  const double cap = static_cast<double>(arena(t)->capacity());
  const auto used = static_cast<double>(arena(t)->used()) -
                    static_cast<double>(backed_bytes_[static_cast<std::size_t>(tier_index(t))]) -
                    static_cast<double>(cached_bytes(t));
  if (used - static_cast<double>(pending_out_[static_cast<std::size_t>(tier_index(t))]) <= options_.high_watermark * cap) {
    return;
  }
  const auto want = static_cast<std::uint64_t>(used - options_.low_watermark * cap);
  start_evictions(t, want, EvictionReason::Proactive);
}

bool PoolCore::run_caller_moves(Lock& lk) {
  bool ran = false;
  while (!caller_moves_.empty()) {
    std::vector<InlineMove> todo;
    todo.swap(caller_moves_);
    ran = true;
    Unlocked unlocked(lk, mu_);
    // In launch order; what their commits queue runs after them.
    for (auto& m : todo) run_move(m.record, m.from, m.to, m.dst, m.ext, m.is_eviction, m.reason, m.ticket);
  }
  return ran;
}

void PoolCore::finish_caller_moves() noexcept {
  Lock lk(mu_);
  run_caller_moves(lk);
}

void PoolCore::wait_io(Lock& lk, const char* what) {
  // Deterministic mode: the move waited for may be one queued for a caller
  // (this one, or another thread between its launch and its return); run
  // what is queued instead of sleeping. The callers look again either way.
  if (run_caller_moves(lk)) return;
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  const auto status = cv_.wait_for(lk.native(), options_.io_timeout);
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  if (status == std::cv_status::timeout) {
    ++errors_.timeouts;
    throw IoError(ETIMEDOUT, spill_dir_.empty() ? std::string("(memory tiers)") : spill_dir_, 0,
                  std::string("waiting ") + std::to_string(options_.io_timeout.count()) + " ms for " + what);
  }
}

void* PoolCore::make_room(Lock& lk, Tier t, std::size_t bytes, Clock::time_point deadline,
                          bool wait_for_pins, bool* waited) {
  MemoryArena* a = arena(t);
  const std::uint64_t need = MemoryArena::footprint(bytes);
  if (a == nullptr || need > a->capacity()) return nullptr;
  const PinWaiter counted(waiters_);  // an unpin of a victim wakes this thread
  const std::uint64_t failures_at_start = errors_.spill_write_failures;
  for (;;) {
    check_open();  // the pool may have been destroyed while this thread waited
    poll_fences(lk);
    // Blocks idle in thread caches come back before anything is evicted.
    if (cached_bytes(t) > 0) drain_caches(t);
    if (void* b = try_block(t, bytes)) {
      // b belongs to no record until the caller takes it (after the lock
      // was dropped to release extents).
      reserved_bytes_[static_cast<std::size_t>(tier_index(t))] += need;
      release_deferred(lk);
      reserved_bytes_[static_cast<std::size_t>(tier_index(t))] -= need;
      return b;
    }
    if (errors_.spill_write_failures != failures_at_start) {
      // Spills are failing: retry (the victims are still evictable) until
      // the deadline, at a bounded rate; callers that may not wait give up.
      if (!wait_for_pins || Clock::now() >= deadline) return nullptr;
      cv_.wait_for(lk.native(), std::chrono::milliseconds(5));
      check_open();
    }
    const std::uint64_t free_bytes = a->capacity() - a->used();
    std::uint64_t& pending = pending_out_[static_cast<std::size_t>(tier_index(t))];
    // When the free total would hold the request but no extent does
    // (fragmentation), evict one more buffer than is already on its way.
    const std::uint64_t want = free_bytes >= need ? pending + 1 : need - free_bytes;
    // The spills that make this room run on this thread, which would only
    // wait for the IO workers otherwise (each hand-off costs two thread
    // wake-ups); the lock is released while they copy.
    std::vector<InlineMove> mine;
    const bool started = start_evictions(t, want, EvictionReason::Pressure, &mine);
    if (!mine.empty()) {
      if (waited != nullptr) *waited = true;
      {
        Unlocked unlocked(lk, mu_);
        for (auto& m : mine) run_move(m.record, m.from, m.to, m.dst, m.ext, true, m.reason, nullptr);
      }
      continue;
    }
    // Deterministic mode: a cascade (host spills a device victim waits for)
    // queued for this caller.
    if (run_caller_moves(lk)) continue;
    if (started && pending == 0) continue;
    if (pending > 0) {
      if (waited != nullptr) *waited = true;
      wait_io(lk, "a spill that makes room");
      continue;
    }
    // Everything on the tier is pinned (or has nowhere to go).
    if (!wait_for_pins || Clock::now() >= deadline) return nullptr;
    if (waited != nullptr) *waited = true;
    wait_for_change(lk, deadline);
    check_open();
  }
}

}  // namespace spillway::detail
