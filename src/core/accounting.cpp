// src/core/accounting.cpp — the pool's numbers: stats(), the tier sampler of
// the trace recorder, peaks, and OutOfMemory with what is pinned.
//
// Counters live in two places: the pool's own, under mu_, for everything the
// slow path does, and each thread's ThreadShard for what the fast path did
// (pins, pinned bytes, allocations and frees of cached sizes). A reader adds
// the shards to the pool's counters; see thread_shard.hpp for why the sum is
// exact whenever no fast operation is half done.
#include <algorithm>
#include <map>

#include "pool_core.hpp"

namespace spillway::detail {

namespace {
std::uint64_t non_negative(std::int64_t v) { return v < 0 ? 0 : static_cast<std::uint64_t>(v); }
}  // namespace

std::array<std::uint64_t, 2> PoolCore::pinned_bytes() const {
  std::array<std::int64_t, 2> sum = pinned_bytes_;
  shards_.for_each([&](ThreadShard& s) {
    for (std::size_t t = 0; t < 2; ++t) sum[t] += s.pinned_bytes[t].load(std::memory_order_relaxed);
  });
  // Buffers pinned only by reader slots are not in the counters (their
  // word's reader pin is not booked): count each once from the slots.
  for (const auto& [r, n] : reader_counts()) {
    const std::uint64_t s = r->state.load(std::memory_order_seq_cst);
    const int t = state::tier_of(s);
    if (state::held(s) == 0 && t < 2) sum[static_cast<std::size_t>(t)] += static_cast<std::int64_t>(r->footprint);
  }
  return {non_negative(sum[0]), non_negative(sum[1])};
}

std::int64_t PoolCore::live_handles() const {
  std::int64_t n = handles_;
  shards_.for_each([&](ThreadShard& s) { n += s.handles.load(std::memory_order_relaxed); });
  return n;
}

std::vector<std::pair<std::string, std::size_t>> PoolCore::pinned_by_label(Tier t) {
  adopt_all();
  std::map<std::string, std::size_t> by_label;
  const auto readers = reader_counts();
  for (BufferRecord* r = all_.front(); r != nullptr; r = all_.next(r)) {
    const std::uint64_t s = r->state.load(std::memory_order_acquire);
    const bool pinned = state::held(s) > 0 || readers.contains(r);  // a reader pin alone is no pin
    if ((s & state::kGarbage) == 0 && pinned && r->primary == t) by_label[r->label] += r->footprint;
  }
  std::vector<std::pair<std::string, std::size_t>> out(by_label.begin(), by_label.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (out.size() > 16) out.resize(16);
  return out;
}

void PoolCore::throw_oom(Lock& lk, Tier t, std::size_t bytes, const std::string& detail) {
  ++errors_.out_of_memory;
  auto pinned = pinned_by_label(t);
  emit(TraceKind::OutOfMemory, nullptr, t, t, EvictionReason::Pressure, false, 0, bytes);
  release_deferred(lk);
  throw OutOfMemory(t, bytes, detail, std::move(pinned));
}

void PoolCore::note_peak(Tier t) {
  if (t == Tier::Disk || arena(t) == nullptr) return;  // disk peaks are taken in stats()
  // The arena's use, thread caches included: an allocation from a cache
  // raises used_bytes without meeting the pool's lock, so the peak is taken
  // where blocks leave the arena.
  auto& peak = peak_bytes_[static_cast<std::size_t>(tier_index(t))];
  peak = std::max<std::uint64_t>(peak, arena(t)->used());
}

void PoolCore::skew_pinned_bytes_for_testing(Tier t, std::int64_t delta) {
  Lock lk(mu_);
  pinned_bytes_[static_cast<std::size_t>(tier_index(t))] += delta;
}

void PoolCore::sample_tiers(std::array<instrument::TierSample, kTierCount>& out) const {
  Lock lk(mu_);
  const auto pinned = pinned_bytes();
  for (Tier t : {Tier::Device, Tier::Host}) {
    const MemoryArena* a = arena(t);
    if (a == nullptr) continue;
    auto& s = out[static_cast<std::size_t>(tier_index(t))];
    s.enabled = true;
    s.used = a->used() - std::min<std::uint64_t>(a->used(), cached_bytes(t));
    s.pinned = pinned[static_cast<std::size_t>(tier_index(t))];
    s.capacity = a->capacity();
  }
  if (store_) {
    auto& s = out[static_cast<std::size_t>(tier_index(Tier::Disk))];
    s.enabled = true;
    const SpillStoreStats ds = store_->stats();
    s.used = ds.used_bytes;
    s.pinned = 0;
    s.capacity = ds.capacity_bytes;
  }
}

PoolStats PoolCore::stats() const {
  Lock lk(mu_);
  PoolStats s;
  for (Tier t : {Tier::Device, Tier::Host}) {
    TierStats& ts = s.tiers[static_cast<std::size_t>(tier_index(t))];
    const MemoryArena* a = arena(t);
    if (a == nullptr) continue;
    const SubAllocatorStats as = a->stats();
    ts.enabled = true;
    ts.capacity_bytes = a->capacity();
    ts.thread_cached_bytes = cached_bytes(t);
    ts.used_bytes = as.used_bytes - std::min<std::uint64_t>(as.used_bytes, ts.thread_cached_bytes);
    ts.largest_free_bytes = as.largest_free_bytes;
    ts.fragmentation = as.fragmentation;
  }
  if (store_) {
    const SpillStoreStats ds = store_->stats();
    TierStats& ts = s.tiers[2];
    ts.enabled = true;
    ts.capacity_bytes = ds.capacity_bytes;
    ts.used_bytes = ds.used_bytes;
    ts.largest_free_bytes = ds.largest_free_bytes;
    ts.fragmentation = ds.fragmentation;
    s.disk_stored_bytes = ds.stored_bytes;
    s.disk_file_bytes = ds.file_bytes;
    s.disk_direct_io = ds.direct_io;
    s.disk_overlapped_writes = ds.overlapped_writes;
    peak_bytes_[2] = std::max(peak_bytes_[2], ds.used_bytes);
  }
  std::array<std::int64_t, kTierCount> buffers = buffers_;
  std::uint64_t pins = pins_;
  shards_.for_each([&](ThreadShard& sh) {
    for (std::size_t t = 0; t < kTierCount; ++t) buffers[t] += sh.buffers[t].load(std::memory_order_relaxed);
    pins += sh.pins.load(std::memory_order_relaxed);
  });
  const auto pinned = pinned_bytes();
  for (std::size_t t = 0; t < kTierCount; ++t) {
    s.tiers[t].clean_bytes = clean_bytes_[t];
    s.tiers[t].pinned_bytes = t < 2 ? pinned[t] : 0;
    s.tiers[t].peak_bytes = std::max(peak_bytes_[t], s.tiers[t].used_bytes);
    s.tiers[t].buffers = non_negative(buffers[t]);
    s.live_buffers += s.tiers[t].buffers;
  }
  s.moves = moves_;
  s.evictions = evictions_;
  s.clean_evictions = clean_evictions_;
  s.pins = pins;
  s.pin_waits = pin_waits_;
  s.stall_seconds = stall_seconds_;
  s.move_latency = move_latency_;
  s.move_latency_sum = move_latency_sum_;
  s.errors = errors_;
  return s;
}

}  // namespace spillway::detail
