// src/core/pins.cpp — the slow path of pin and unpin (moves, waits, zero-byte
// buffers, tracing), stream fences and deferred unpins, and the other
// per-buffer calls: prefetch, hints, explicit eviction, queries.
#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "pool_core.hpp"
#include "src/instrument/nvtx.hpp"

namespace spillway::detail {

// ---- granting and ending pins -------------------------------------------------------

void PoolCore::grant_pin(BufferRecord* r, Access access) {
  const std::uint64_t s = r->state.fetch_add(1, std::memory_order_acq_rel);
  r->note_use();
  book(r, s, s + 1);
  if (r->primary != Tier::Disk) {
    r->pinned_block.store(r->block[static_cast<std::size_t>(tier_index(r->primary))], std::memory_order_relaxed);
  }
  if (access == Access::ReadWrite) invalidate_clean(r);
  ++pins_;
  emit(TraceKind::Pin, r, r->primary, r->primary, EvictionReason::Pressure, true, 0);
}

void PoolCore::invalidate_clean(BufferRecord* r) {
  if (r->copy_fence) {
    r->stale_clean = true;  // the copy in flight still reads the host copy
    return;
  }
  for (Tier t : {Tier::Host, Tier::Disk}) {
    if (r->has_clean(t)) drop_clean(r, t);
  }
}

void PoolCore::unpin_slow(BufferRecord* r) noexcept {
  std::shared_ptr<PoolCore> keep;  // dropped after the lock: it may be the last reference
  {
    Lock lk(mu_);
    unpin_locked(lk, r, &keep);
  }
}

void PoolCore::unpin_locked(Lock& lk, BufferRecord* r, std::shared_ptr<PoolCore>* keep) {
  const std::uint64_t s = r->state.load(std::memory_order_acquire);
  if (state::pins(s) == 0) return;
  const bool closed = closed_.load(std::memory_order_relaxed);
  if (state::pins(s) == 1 && r->copy_fence && !closed) {
    if (!r->copy_fence->done()) {
      // The last pin goes before the stream-ordered copy has finished: hold
      // it until the copy is done, so nothing reuses the blocks under it.
      fenced_.push_back({r, r->copy_fence, true});
      return;
    }
    fence_done(r);
  }
  // A fast pin or unpin may still change the count (when the record is on
  // the fast path): take one off whatever it is now.
  const std::uint64_t before = r->state.fetch_sub(1, std::memory_order_seq_cst);
  book(r, before, before - 1);
  if (state::pins(before) != 1) return;
  emit(TraceKind::Unpin, r, r->primary, r->primary, EvictionReason::Pressure, true, 0);
  if (r->dead && !r->moving && !closed) {
    if (keep != nullptr) *keep = std::move(r->keepalive);
    free_now(r);
    release_deferred(lk);
  }
  if (waiters_.load(std::memory_order_relaxed) > 0) cv_.notify_all();
}

void PoolCore::unpin_after(BufferRecord* r, Tier pinned_on, void* stream) {
  MemoryArena* a = arena(pinned_on);
  std::shared_ptr<Fence> fence;
  if (pinned_on == Tier::Device && a != nullptr) {
    // Throws naming the CUDA call; the pin is then kept (never ended early).
    fence = a->fence_on(stream);
  }
  if (!fence || fence->done()) {
    unpin(r);
    return;
  }
  if (options_.deterministic_moves) {
    // The pin ends on this thread once the stream's work is done, not when
    // a later call happens to poll the fence. Past io_timeout it is left to
    // the fence, as in the default mode (never ended early).
    const auto until = Clock::now() + options_.io_timeout;
    while (!fence->done() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::microseconds(50));
    if (fence->done()) {
      unpin(r);
      return;
    }
  }
  Lock lk(mu_);
  if (closed_.load(std::memory_order_relaxed)) return;  // storage stays while the pin is counted
  fenced_.push_back({r, std::move(fence), true});
}

// ---- stream fences ----------------------------------------------------------------

void PoolCore::fence_done(BufferRecord* r) {
  r->copy_fence.reset();
  std::erase_if(fenced_, [r](const Fenced& f) { return f.record == r && !f.unpin; });
  unlink(r);
  if (r->stale_clean) {
    r->stale_clean = false;
    for (Tier t : {Tier::Host, Tier::Disk}) {
      if (r->has_clean(t)) drop_clean(r, t);
    }
  }
  link(r);
  publish_state(r);
}

bool PoolCore::poll_fences(Lock& lk) {
  if (fenced_.empty()) return false;
  bool changed = false;
  // Unpins may free records; collect first, then apply.
  std::vector<Fenced> ready;
  for (std::size_t i = 0; i < fenced_.size();) {
    if (fenced_[i].fence->done()) {
      ready.push_back(std::move(fenced_[i]));
      fenced_[i] = std::move(fenced_.back());
      fenced_.pop_back();
    } else {
      ++i;
    }
  }
  // Copy fences first: an unpin waiting on the same copy then sees it settled.
  for (auto& f : ready) {
    if (!f.unpin && f.record->copy_fence == f.fence) fence_done(f.record);
  }
  // A deferred unpin may end a record's last pin; its keepalive is not the
  // last reference to the core (whoever called into it holds one).
  std::vector<std::shared_ptr<PoolCore>> keep(ready.size());
  for (std::size_t i = 0; i < ready.size(); ++i) {
    if (ready[i].unpin) unpin_locked(lk, ready[i].record, &keep[i]);
    changed = true;
  }
  if (changed) {
    release_deferred(lk);
    cv_.notify_all();
  }
  return changed;
}

void PoolCore::wait_for_change(Lock& lk, Clock::time_point deadline) {
  // Deterministic mode: moves queued for a caller are a change that only a
  // thread that runs them brings about.
  if (run_caller_moves(lk)) return;
  if (fenced_.empty()) {
    cv_.wait_until(lk.native(), deadline);
  } else {
    cv_.wait_until(lk.native(), std::min(deadline, Clock::now() + std::chrono::microseconds(200)));
  }
  poll_fences(lk);
}

// ---- pin: the slow path -------------------------------------------------------------

void* PoolCore::pin_slow(BufferRecord* r, Tier where, Access access, bool ordered, void* stream) {
  const CallerMoves drain(this);  // the commit of a fetch may start proactive spills
  // Deterministic mode: no copy left in flight, whose end (and what it
  // holds back: a ReadWrite pin's clean copies) the host would see at a
  // time of the device's choosing.
  if (options_.deterministic_moves) ordered = false;
  Lock lk(mu_);
  check_open();
  if (where == Tier::Disk) {
    throw std::invalid_argument("spillway: cannot pin on the disk tier; pin on Device or Host");
  }
  if (!tier_enabled(where)) {
    throw std::invalid_argument("spillway: cannot pin on the " + std::string(tier_name(where)) +
                                " tier: it is turned off in this pool");
  }
  adopt(r);
  if (r->copy_fence) {
    // A stream-ordered copy into the device block may still be running.
    if (r->copy_fence->done()) {
      poll_fences(lk);
    } else if (r->primary == where && !r->moving && ordered) {
      arena(where)->order_after(stream, r->copy_fence);  // the stream waits, not the host
    } else {
      const auto until = Clock::now() + options_.io_timeout;
      while (r->copy_fence) {
        if (Clock::now() >= until) {
          ++errors_.timeouts;
          throw IoError(ETIMEDOUT, "(device tier)", 0,
                        "waiting " + std::to_string(options_.io_timeout.count()) +
                            " ms for a stream-ordered copy into buffer " + std::to_string(r->id));
        }
        wait_for_change(lk, until);
        check_open();
      }
    }
  }
  // Resident and not moving: the fast path's case, here because it was off
  // (tracing), or a ReadWrite pin must drop clean copies, or the record was
  // frozen or claimed for a moment.
  if (r->primary == where && !r->moving && !r->claimed) {
    grant_pin(r, access);
    if (!deferred_release_.empty()) release_deferred(lk);
    return r->block[static_cast<std::size_t>(tier_index(where))];
  }
  if (r->size == 0) {
    // Zero-byte buffers never take the fast path: their pin count changes
    // only here, under the lock.
    if (r->pins() > 0 && r->primary != where) {
      throw std::logic_error("spillway: zero-byte buffer is pinned on another tier");
    }
    --buffers_[static_cast<std::size_t>(tier_index(r->primary))];
    r->primary = where;
    ++buffers_[static_cast<std::size_t>(tier_index(where))];
    grant_pin(r, access);
    return nullptr;
  }
  const auto start = Clock::now();
  const auto deadline = start + options_.pressure_wait;
  ++pin_waits_;
  NvtxRange wait_range("spillway pin wait");
  const PinWaiter counted(waiters_);  // the pins this may wait for wake it when they end
  // Ends (under mu_) however the wait ends: the stall and its trace event.
  struct StallClock {
    PoolCore* core;
    BufferRecord* r;
    Tier from, where;
    Clock::time_point start;
    ~StallClock() SPILLWAY_NO_THREAD_SAFETY_ANALYSIS {
      const auto waited = Clock::now() - start;
      core->stall_seconds_ += std::chrono::duration<double>(waited).count();
      core->emit(TraceKind::PinWait, r, from, where, EvictionReason::Pressure, true,
                 static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count()));
    }
  } stall{this, r, r->primary, where, start};
  for (;;) {
    check_open();
    poll_fences(lk);
    if (r->moving) {
      wait_io(lk, "a move of the buffer being pinned");
      continue;
    }
    if (r->primary == where) {
      grant_pin(r, access);
      release_deferred(lk);
      return r->block[static_cast<std::size_t>(tier_index(where))];
    }
    if (pins_now(r) > 0) {
      // Pinned on another tier: wait for those pins, within pressure_wait.
      if (Clock::now() >= deadline) {
        throw_oom(lk, where, r->size,
                  "buffer " + std::to_string(r->id) + " ('" + r->label + "') is pinned on the " +
                      std::string(tier_name(r->primary)) + " tier by another pin");
      }
      wait_for_change(lk, deadline);
      continue;
    }
    const Tier from = r->primary;
    if (tier_index(where) > tier_index(from) && r->has_clean(where)) {
      // Down to a tier that already holds a clean copy: drop the primary.
      if (try_claim(r)) demote_to_clean(r, where);
      continue;
    }
    void* dst = make_room(lk, where, r->size, deadline, true);
    if (dst == nullptr) {
      throw_oom(lk, where, r->size, "no room could be made within " +
                                        std::to_string(options_.pressure_wait.count()) + " ms");
    }
    if (r->moving || pins_now(r) > 0 || r->primary != from || r->dead || r->has_copy(where)) {
      // The record changed while we waited for room: start over. Its primary
      // may be back on `from` after moving away and back, with a clean copy
      // on `where` now (a move into `where` would orphan that block).
      arena(where)->free(dst);
      continue;
    }
    // The fetch runs on this thread, which would only wait for a worker
    // otherwise (a hand-off costs two thread wake-ups); the lock is released
    // while it copies, and other waiters see the move as in flight.
    auto ticket = std::make_shared<MoveTicket>();
    ticket->wants_pin = true;
    ticket->ordered = ordered;
    ticket->stream = stream;
    if (!launch_move(r, where, dst, std::nullopt, false, EvictionReason::Pressure, ticket, true)) {
      arena(where)->free(dst);  // a pin on `from` came first
      continue;
    }
    {
      Unlocked unlocked(lk, mu_);
      run_move(r, from, where, dst, std::nullopt, false, EvictionReason::Pressure, ticket);
    }
    if (ticket->error) std::rethrow_exception(ticket->error);
    if (ticket->pin_granted) {
      if (access == Access::ReadWrite) {
        invalidate_clean(r);
        release_deferred(lk);
      }
      return r->block[static_cast<std::size_t>(tier_index(where))];
    }
  }
}

// ---- the other per-buffer calls -------------------------------------------------------

void PoolCore::prefetch(BufferRecord* r, Tier where) {
  const CallerMoves drain(this);  // deterministic mode: the prefetch itself
  Lock lk(mu_);
  check_open();
  if (where == Tier::Disk || !tier_enabled(where)) {
    throw std::invalid_argument("spillway: cannot prefetch to the " + std::string(tier_name(where)) + " tier");
  }
  adopt(r);
  if (r->moving || pins_now(r) > 0 || r->size == 0 || tier_index(where) >= tier_index(r->primary)) return;
  void* dst = prefetch_block(where, r->size, r->next_use.load(std::memory_order_relaxed));
  if (dst == nullptr) return;
  if (!launch_move(r, where, dst, std::nullopt, false, EvictionReason::Pressure, nullptr)) {
    arena(where)->free(dst);  // pinned meanwhile: nothing to bring up
    return;
  }
  release_deferred(lk);
}

void PoolCore::hint_next_use(BufferRecord* r, std::uint64_t step) {
  if (closed_.load(std::memory_order_relaxed)) {
    throw std::logic_error("spillway: this buffer's Pool has been destroyed");
  }
  // No lock: Lookahead reads the hint when it next scans.
  r->next_use.store(step, std::memory_order_relaxed);
  const std::uint8_t m = r->marks.load(std::memory_order_relaxed);
  if ((m & mark::kFresh) != 0) r->marks.store(m & ~mark::kFresh, std::memory_order_relaxed);
}

void PoolCore::evict(BufferRecord* r, Tier where) {
  const CallerMoves drain(this);  // the commit may start proactive spills
  Lock lk(mu_);
  check_open();
  if (where == Tier::Device || !tier_enabled(where)) {
    throw std::invalid_argument("spillway: cannot evict to the " + std::string(tier_name(where)) +
                                " tier (evict to an enabled Host or Disk tier)");
  }
  adopt(r);
  const auto deadline = Clock::now() + options_.pressure_wait;
  const PinWaiter counted(waiters_);
  for (;;) {
    check_open();
    if (r->size == 0 || tier_index(r->primary) >= tier_index(where)) return;
    if (r->moving) {
      wait_io(lk, "a move of the buffer being evicted");
      continue;
    }
    if (pins_now(r) > 0) {
      if (Clock::now() >= deadline) {
        throw_oom(lk, r->primary, r->size, "cannot evict buffer " + std::to_string(r->id) + ": it stays pinned");
      }
      cv_.wait_until(lk.native(), deadline);
      continue;
    }
    const Tier from = r->primary;
    if (r->has_clean(where)) {
      if (!try_claim(r)) continue;  // pinned meanwhile
      demote_to_clean(r, where);
      ++evictions_[static_cast<std::size_t>(EvictionReason::Explicit)];
      ++clean_evictions_;
      return;
    }
    void* dst = nullptr;
    std::optional<SpillExtent> ext;
    if (where == Tier::Host) {
      dst = make_room(lk, Tier::Host, r->size, deadline, true);
      if (dst == nullptr) throw_oom(lk, Tier::Host, r->size, "no room for an explicit eviction");
    } else {
      ext = try_extent(r->size);
      if (!ext) throw_oom(lk, Tier::Disk, r->size, "the disk quota is full");
    }
    auto give_back = [&]() SPILLWAY_REQUIRES(mu_) {
      if (dst != nullptr) arena(where)->free(dst);
      if (ext) store_->release(*ext);
    };
    if (r->moving || pins_now(r) > 0 || r->primary != from || r->dead || r->has_copy(where)) {
      // Changed while make_room had dropped the lock (possibly moved away
      // and back, leaving a clean copy on `where`): start over.
      give_back();
      continue;
    }
    // An explicit eviction blocks its caller, so it runs on the caller's
    // thread (without the lock) rather than waiting for a worker.
    auto ticket = std::make_shared<MoveTicket>();
    if (!launch_move(r, where, dst, ext, true, EvictionReason::Explicit, ticket, true)) {
      give_back();  // a pin came first: wait for it
      continue;
    }
    {
      Unlocked unlocked(lk, mu_);
      run_move(r, from, where, dst, ext, true, EvictionReason::Explicit, ticket);
    }
    if (ticket->error) std::rethrow_exception(ticket->error);
  }
}

Tier PoolCore::tier_of(BufferRecord* r) {
  Lock lk(mu_);
  check_open();
  adopt(r);
  return r->primary;
}

unsigned PoolCore::clean_copies(BufferRecord* r) {
  Lock lk(mu_);
  check_open();
  adopt(r);
  unsigned mask = 0;
  if (r->stale_clean) return mask;  // invalidated; dropped once the copy ends
  for (Tier t : {Tier::Device, Tier::Host, Tier::Disk}) {
    if (r->has_clean(t)) mask |= 1u << tier_index(t);
  }
  return mask;
}

void PoolCore::poll() {
  Lock lk(mu_);
  poll_fences(lk);
}

void PoolCore::quiesce() {
  Lock lk(mu_);
  while (moves_in_flight_ > 0) wait_io(lk, "moves in flight to finish");
  poll_fences(lk);
}

}  // namespace spillway::detail
