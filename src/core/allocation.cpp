// src/core/allocation.cpp — allocate and free; the thread block caches; the
// registry of records (adopting those born on the fast path, collecting
// those freed there) and the lists a record's state puts it in.
#include <algorithm>
#include <limits>

#include "pool_core.hpp"

namespace spillway::detail {

namespace {
constexpr std::uint64_t kIdBlock = 1024;  // buffer ids a shard takes at a time
constexpr std::size_t kCacheLimitBytes = std::size_t{2} << 20;
}  // namespace

// ---- records -----------------------------------------------------------------------

[[gnu::always_inline]] inline BufferRecord* PoolCore::new_record(std::size_t bytes, std::size_t footprint,
                                                                 int size_class, std::string_view label,
                                                                 ThreadShard* ids_from) {
  BufferRecord* r;
  if (ids_from != nullptr && ids_from->spares > 0) {
    r = ids_from->spare[static_cast<std::size_t>(--ids_from->spares)];
    r->reuse();
  } else {
    r = new BufferRecord;
  }
  if (ids_from != nullptr) {
    if (ids_from->next_id == ids_from->id_end) [[unlikely]] {
      ids_from->next_id = next_id_.fetch_add(kIdBlock, std::memory_order_relaxed);
      ids_from->id_end = ids_from->next_id + kIdBlock;
    }
    r->id = ids_from->next_id++;
  } else {
    r->id = next_id_.fetch_add(1, std::memory_order_relaxed);
  }
  r->size = bytes;
  r->footprint = footprint;
  r->size_class = static_cast<std::int8_t>(size_class);
  // (A reused record's label is usually empty, as the new one: no call.)
  if (!label.empty() || !r->label.empty()) [[unlikely]] r->label.assign(label);
  return r;
}

void PoolCore::register_record(BufferRecord* r) {
  r->adopted = true;
  all_.push_back(r);
  link(r);
}

void PoolCore::adopt(BufferRecord* r) {
  if (r->adopted) return;
  ThreadShard* home = r->home;
  SpinGuard g(home->lock);
  home->remove_pending(r);
  home->count_backlog();
  register_record(r);
}

void PoolCore::adopt_pending(ThreadShard& s) {
  while (BufferRecord* r = s.pop_pending()) {
    register_record(r);
  }
  s.count_backlog();
}

void PoolCore::collect_garbage(ThreadShard& s) {
  while (BufferRecord* r = s.garbage) {
    s.garbage = r->garbage_next;
    unlink(r);
    all_.remove(r);
    delete r;
  }
  s.garbage_count = 0;
  s.count_backlog();
}

void PoolCore::adopt_all() {
  shards_.for_each([this](ThreadShard& s) SPILLWAY_NO_THREAD_SAFETY_ANALYSIS {
    if (s.backlog.load(std::memory_order_relaxed) == 0) return;
    SpinGuard g(s.lock);
    adopt_pending(s);
    collect_garbage(s);
  });
}

void PoolCore::delete_record(BufferRecord* r) {
  unlink(r);
  all_.remove(r);
  delete r;
}

void PoolCore::link(BufferRecord* r) {
  if (r->moving || r->dead || !r->adopted || closed_.load(std::memory_order_relaxed)) return;
  if (r->size > 0 && r->primary != Tier::Disk) {
    const int ti = tier_index(r->primary);
    rings_[static_cast<std::size_t>(ti)].push_back(r);
    if (r->backed_on < 0 && r->clean_below()) {
      r->backed_on = static_cast<std::int8_t>(ti);
      backed_bytes_[static_cast<std::size_t>(ti)] += r->footprint;
    }
  }
  if (r->copy_fence) return;  // a device copy may still read the host copy
  if (r->has_clean(Tier::Host)) clean_lists_[0].push_back(r);
  if (r->has_clean(Tier::Disk)) clean_lists_[1].push_back(r);
}

void PoolCore::unlink(BufferRecord* r) {
  rings_[0].remove(r);
  rings_[1].remove(r);
  clean_lists_[0].remove(r);
  clean_lists_[1].remove(r);
  uncount_backed(r);
}

void PoolCore::uncount_backed(BufferRecord* r) {
  if (r->backed_on >= 0) {
    backed_bytes_[static_cast<std::size_t>(r->backed_on)] -= r->footprint;
    r->backed_on = -1;
  }
}

// ---- thread block caches --------------------------------------------------------------

void PoolCore::set_cache_limits() {
  for (Tier t : {Tier::Device, Tier::Host}) {
    const MemoryArena* a = arena(t);
    cache_limit_[static_cast<std::size_t>(tier_index(t))] =
        a == nullptr ? 0 : std::min(kCacheLimitBytes, a->capacity() / 32);
  }
}

std::uint64_t PoolCore::cached_bytes(Tier t) const {
  std::uint64_t n = 0;
  shards_.for_each([&](ThreadShard& s) { n += s.cached_bytes[tier_index(t)].load(std::memory_order_relaxed); });
  return n;
}

bool PoolCore::refill(ThreadShard& sh, Tier t, int c) {
  const std::size_t bytes = class_bytes(c);
  const std::size_t limit = cache_limit(t);
  const int ti = tier_index(t);
  Lock lk(mu_);
  if (closed_.load(std::memory_order_relaxed)) return false;
  MemoryArena* a = arena(t);
  SpinGuard g(sh.lock);
  CacheBin& bin = sh.bins[static_cast<std::size_t>(ti)][static_cast<std::size_t>(c)];
  std::uint64_t cached = sh.cached_bytes[static_cast<std::size_t>(ti)].load(std::memory_order_relaxed);
  // Half a bin at a time, within the shard's share of the tier.
  int want = CacheBin::kSlots / 2 - bin.count;
  while (want > 0 && cached + bytes <= limit) {
    void* b = a->allocate(bytes);
    if (b == nullptr) break;
    bin.blocks[static_cast<std::size_t>(bin.count++)] = b;
    cached += bytes;
    --want;
  }
  sh.cached_bytes[static_cast<std::size_t>(ti)].store(cached, std::memory_order_relaxed);
  note_peak(t);
  return bin.count > 0;
}

void PoolCore::spill_bin(ThreadShard& sh, Tier t, int c) {
  const int ti = tier_index(t);
  Lock lk(mu_);
  if (closed_.load(std::memory_order_relaxed)) return;
  SpinGuard g(sh.lock);
  CacheBin& bin = sh.bins[static_cast<std::size_t>(ti)][static_cast<std::size_t>(c)];
  std::uint64_t cached = sh.cached_bytes[static_cast<std::size_t>(ti)].load(std::memory_order_relaxed);
  while (bin.count > CacheBin::kSlots / 2) {
    arena(t)->free(bin.blocks[static_cast<std::size_t>(--bin.count)]);
    cached -= class_bytes(c);
  }
  sh.cached_bytes[static_cast<std::size_t>(ti)].store(cached, std::memory_order_relaxed);
}

void PoolCore::drain_caches(Tier t) {
  const int ti = tier_index(t);
  MemoryArena* a = arena(t);
  shards_.for_each([&](ThreadShard& s) SPILLWAY_NO_THREAD_SAFETY_ANALYSIS {
    if (s.cached_bytes[static_cast<std::size_t>(ti)].load(std::memory_order_relaxed) == 0) return;
    SpinGuard g(s.lock);
    for (CacheBin& bin : s.bins[static_cast<std::size_t>(ti)]) {
      while (bin.count > 0) a->free(bin.blocks[static_cast<std::size_t>(--bin.count)]);
    }
    s.cached_bytes[static_cast<std::size_t>(ti)].store(0, std::memory_order_relaxed);
  });
}

// ---- allocate ------------------------------------------------------------------------

BufferRecord* PoolCore::allocate(std::size_t bytes, Tier preferred, std::string_view label) {
  if (bytes > 0 && fast_mode_.load(std::memory_order_relaxed) != kSlowOnly) {
    if (BufferRecord* r = allocate_fast(bytes, preferred, label)) return r;
  }
  return allocate_slow(bytes, preferred, label);
}

[[gnu::always_inline]] inline BufferRecord* PoolCore::allocate_fast(std::size_t bytes, Tier preferred,
                                                                    std::string_view label) {
  const int t = first_tier_[static_cast<std::size_t>(tier_index(preferred))];
  if (t >= tier_index(Tier::Disk)) return nullptr;
  const std::size_t f = MemoryArena::footprint(bytes);
  const int c = size_class(f);
  if (c < 0) return nullptr;
  ThreadShard* sh = shards_.mine();
  if (sh == nullptr) return nullptr;
  for (int attempt = 0; attempt < 2; ++attempt) {
    BufferRecord* r = nullptr;
    bool batch = false;
    {
      SpinGuard g(sh->lock);
      if (closed_.load(std::memory_order_relaxed)) return nullptr;  // the slow path says so
      CacheBin& bin = sh->bins[static_cast<std::size_t>(t)][static_cast<std::size_t>(c)];
      if (bin.count > 0) {
        r = new_record(bytes, f, c, label, sh);
        r->block[static_cast<std::size_t>(t)] = bin.blocks[static_cast<std::size_t>(--bin.count)];
        sh->add(sh->cached_bytes[static_cast<std::size_t>(t)], -static_cast<std::uint64_t>(class_bytes(c)));
        r->primary = static_cast<Tier>(t);
        r->home = sh;
        r->state.store(state::tier_bits(t), std::memory_order_relaxed);
        r->marks.store(mark::kFresh, std::memory_order_relaxed);
        sh->add_pending(r);
        sh->count_backlog();
        sh->add(sh->buffers[static_cast<std::size_t>(t)], 1);
        sh->add(sh->handles, 1);
        batch = sh->pending_count() >= kAdoptBatch;
      }
    }
    if (r != nullptr) {
      if (batch) {
        Lock lk(mu_);
        SpinGuard g(sh->lock);
        adopt_pending(*sh);
      }
      return r;
    }
    if (attempt == 0 && !refill(*sh, static_cast<Tier>(t), c)) return nullptr;
  }
  return nullptr;
}

BufferRecord* PoolCore::allocate_slow(std::size_t bytes, Tier preferred, std::string_view label) {
  const CallerMoves drain(this);  // deterministic mode: the proactive spills it starts
  Lock lk(mu_);
  check_open();
  // The fastest enabled tier at or below `preferred`.
  std::array<Tier, kTierCount> candidates{};
  std::size_t count = 0;
  for (int t = tier_index(preferred); t < kTierCount; ++t) {
    if (tier_enabled(static_cast<Tier>(t))) candidates[count++] = static_cast<Tier>(t);
  }
  if (count == 0) {
    ++errors_.out_of_memory;
    throw OutOfMemory(preferred, bytes, "no tier at or below it is enabled");
  }
  ThreadShard* sh = shards_.mine();
  const std::size_t footprint = bytes == 0 ? 0 : MemoryArena::footprint(bytes);
  const int c = size_class(footprint);
  std::unique_ptr<BufferRecord> rec;
  if (sh != nullptr) {
    SpinGuard g(sh->lock);
    rec.reset(new_record(bytes, footprint, c, label, sh));
  } else {
    rec.reset(new_record(bytes, footprint, c, label, nullptr));
  }
  BufferRecord* r = rec.get();
  if (bytes == 0) {
    r->primary = candidates.front();
    ++buffers_[static_cast<std::size_t>(tier_index(r->primary))];
    ++handles_;
    register_record(rec.release());
    publish_state(r);
    return r;
  }
  // Fast path: a free extent on the first tier, no eviction, no clock.
  bool placed = false;
  if (MemoryArena* a = arena(candidates[0])) {
    if (void* b = a->allocate(bytes)) {
      r->block[static_cast<std::size_t>(tier_index(candidates[0]))] = b;
      r->primary = candidates[0];
      placed = true;
    }
  }
  const auto start = placed ? Clock::time_point{} : Clock::now();
  const auto deadline = start + options_.pressure_wait;
  bool waited = false;
  std::uint64_t largest_capacity = 0;
  for (std::size_t i = 0; i < count && !placed; ++i) {
    const Tier t = candidates[i];
    const bool last = i + 1 == count;
    largest_capacity = std::max(largest_capacity, tier_capacity(t));
    if (t == Tier::Disk) {
      if (store_->reservation_for(bytes) > store_->capacity()) continue;
      auto e = try_extent(bytes);
      if (!e) continue;
      r->on_disk = true;
      r->disk_zero = true;
      r->extent = *e;
      r->primary = Tier::Disk;
      placed = true;
    } else if (void* b = make_room(lk, t, bytes, deadline, last, &waited)) {
      r->block[static_cast<std::size_t>(tier_index(t))] = b;
      r->primary = t;
      placed = true;
    }
  }
  if (waited) stall_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  if (!placed) {
    const Tier t = candidates[count - 1];
    throw_oom(lk, preferred, bytes,
              bytes > largest_capacity
                  ? "larger than every enabled tier at or below it"
                  : "no room could be made on " + std::string(tier_name(t)) + " within " +
                        std::to_string(options_.pressure_wait.count()) + " ms" +
                        (last_spill_error_.empty() ? "" : "; last spill error: " + last_spill_error_));
  }
  ++buffers_[static_cast<std::size_t>(tier_index(r->primary))];
  ++handles_;
  r->state.store(0, std::memory_order_relaxed);
  r->marks.store(mark::kFresh, std::memory_order_relaxed);
  register_record(rec.release());
  publish_state(r);
  note_peak(r->primary);
  emit(TraceKind::Alloc, r, r->primary, r->primary, EvictionReason::Pressure, true, 0);
  maybe_proactive(r->primary);
  return r;
}

// ---- free ------------------------------------------------------------------------------

void PoolCore::free_now(BufferRecord* r) {
  unlink(r);
  for (Tier t : {Tier::Device, Tier::Host}) {
    if (void* b = r->block[static_cast<std::size_t>(tier_index(t))]) {
      if (r->primary != t) clean_bytes_[static_cast<std::size_t>(tier_index(t))] -= r->footprint;
      arena(t)->free(b);
    }
  }
  if (r->on_disk) {
    if (r->primary != Tier::Disk) clean_bytes_[2] -= r->extent.bytes;
    release_later(r->extent);
  }
  const std::uint64_t s = r->state.load(std::memory_order_acquire);
  book(r, s, s & ~state::kPinMask);  // a record that goes with pins on it takes their bytes along
  --buffers_[static_cast<std::size_t>(tier_index(r->primary))];
  emit(TraceKind::Free, r, r->primary, r->primary, EvictionReason::Explicit, true, 0);
  delete_record(r);
}

void PoolCore::free(BufferRecord* r) noexcept {
  if (fast_mode_.load(std::memory_order_relaxed) != kSlowOnly && free_fast(r)) return;
  std::shared_ptr<PoolCore> last;  // dropped after the lock: it may be the core's last owner
  Lock lk(mu_);
  --handles_;
  if (closed_.load(std::memory_order_relaxed)) {
    // Storage is gone with the pool; a Pin that outlives this Buffer still
    // needs the core it points at.
    if (r->pins() > 0) r->keepalive = shared_from_this();
    if (pool_released_ && live_handles() == 0) last = std::move(self_);
    return;
  }
  adopt(r);
  std::uint64_t s = stop_fast_path(r);  // the pin count is ours from here on
  if ((s & state::kBiasPin) != 0 && unshare(r)) s = r->state.load(std::memory_order_seq_cst);
  if (r->moving || state::pins(s) > 0) {
    r->dead = true;  // freed when the move commits or the last pin ends
    if (state::pins(s) > 0) r->keepalive = shared_from_this();
    unlink(r);
    return;
  }
  free_now(r);
  release_deferred(lk);
  if (waiters_.load(std::memory_order_relaxed) > 0) cv_.notify_all();
}

[[gnu::always_inline]] inline bool PoolCore::free_fast(BufferRecord* r) {
  const int c = r->size_class;
  if (c < 0) return false;
  ThreadShard* sh = shards_.mine();
  if (sh == nullptr) return false;
  // Blocks and garbage go to the record's home shard (whose lock guards a
  // pending record), or to this thread's for a record born on the slow path.
  ThreadShard* h = r->home != nullptr ? r->home : sh;
  if (class_bytes(c) > cache_limit(Tier::Host) && class_bytes(c) > cache_limit(Tier::Device)) return false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool full = false, collect = false;
    int t = 0;
    {
      SpinGuard g(h->lock);
      std::uint64_t s = r->state.load(std::memory_order_acquire);
      if (state::tier_of(s) > tier_index(Tier::Host)) return false;
      t = state::tier_of(s);
      CacheBin& bin = h->bins[static_cast<std::size_t>(t)][static_cast<std::size_t>(c)];
      const std::uint64_t cached = h->cached_bytes[static_cast<std::size_t>(t)].load(std::memory_order_relaxed);
      if (cached + class_bytes(c) > cache_limit(static_cast<Tier>(t))) return false;  // the arena takes it back
      if (bin.count == CacheBin::kSlots) {
        full = true;
      } else {
        race_point(RacePoint::FreeChecked);
        constexpr std::uint64_t refuse =
            state::kSlow | state::kFrozen | state::kCleanBelow | state::kGarbage;
        if (!r->adopted) {
          // Pending, under its home shard's lock: nothing else can reach
          // it (no eviction sees it, the checker and adopt() need this
          // lock, a new pin needs the Buffer being freed), so the state
          // only has to say that no pin is left.
          if (state::pins(s) != 0 || (s & refuse) != 0) return false;
        } else {
          do {
            if (state::pins(s) != 0 || (s & refuse) != 0) return false;
          } while (!r->state.compare_exchange_weak(s, s | state::kSlow | state::kGarbage, std::memory_order_acq_rel,
                                                   std::memory_order_acquire));
        }
        // Claimed: the block is ours to give back.
        bin.blocks[static_cast<std::size_t>(bin.count++)] = r->block[static_cast<std::size_t>(t)];
        h->add(h->cached_bytes[static_cast<std::size_t>(t)], class_bytes(c));
        sh->add(sh->buffers[static_cast<std::size_t>(t)], -1);
        sh->add(sh->handles, -1);
        if (!r->adopted) {
          h->remove_pending(r);  // never seen by the pool's lists
          h->count_backlog();
          if (h->spares < ThreadShard::kSpareRecords) {
            h->spare[static_cast<std::size_t>(h->spares++)] = r;
          } else {
            delete r;
          }
        } else {
          r->garbage_next = h->garbage;
          h->garbage = r;
          collect = ++h->garbage_count >= kAdoptBatch;
          h->count_backlog();
        }
      }
    }
    if (collect) {
      Lock lk(mu_);
      SpinGuard g(h->lock);
      collect_garbage(*h);
    }
    if (!full) return true;
    if (attempt == 0) spill_bin(*h, static_cast<Tier>(t), c);
  }
  return false;
}

}  // namespace spillway::detail
