// src/core/pool_invariants.cpp — PoolCore::check_invariants: the residency
// state machine checked against itself and against the tiers' own books.
//
// Everything here runs under mu_ and every thread shard's lock, with every
// record frozen (kFrozen) so that no fast-path pin or unpin runs; it changes
// nothing else (pending records are adopted and freed ones collected first,
// as any slow path may). The books it compares:
//   arena(t)->used()       what the memory tier's sub-allocator handed out
//   store_->stats()        what the spill store's extent allocator handed out
//   clean/pinned/buffers   the pool's counters plus every shard's (what stats() reports)
// against what the records say they hold. Storage the pool holds outside any
// record for a moment (the destination of a move in flight, a block between
// make_room and its owner, extents being released without the lock, free
// blocks in thread caches) is counted in reserved_bytes_ /
// releasing_disk_bytes_ / deferred_release_ / the shards' bins.
#include "pool_core.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace spillway::detail {

namespace {

std::string buffer_name(const BufferRecord& r) {
  std::string s = "buffer " + std::to_string(r.id);
  if (!r.label.empty()) s += " ('" + r.label + "')";
  return s;
}

// One piece of storage a record (or the pool) holds: [start, start + bytes).
struct Span {
  std::uint64_t start;
  std::uint64_t bytes;
  std::uint64_t id;  // buffer id; 0 for extents awaiting release
};

// Overlapping spans on one tier: two owners of the same bytes.
void check_overlaps(std::vector<Span>& spans, std::string_view tier,
                    std::vector<std::string>& out) {
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return std::tie(a.start, a.id) < std::tie(b.start, b.id); });
  for (std::size_t i = 1; i < spans.size(); ++i) {
    const Span& a = spans[i - 1];
    const Span& b = spans[i];
    if (a.start + a.bytes > b.start) {
      auto who = [](const Span& s) {
        return s.id == 0 ? std::string("an extent awaiting release") : "buffer " + std::to_string(s.id);
      };
      out.push_back(std::string(tier) + ": " + who(a) + " and " + who(b) +
                    " hold overlapping storage at " + std::to_string(b.start));
    }
  }
}

}  // namespace

std::vector<std::string> PoolCore::check_invariants() {
  Lock lk(mu_);
  std::vector<std::string> out;
  if (closed_.load(std::memory_order_relaxed)) return out;  // storage is gone; nothing left to check

  // Hold the world still. Every shard's lock: no allocation or free on the
  // fast path begins (their pending and freed records come into the lists
  // first). Every record frozen: no pin or unpin on the fast path begins;
  // those already past their count finish within a few instructions, which
  // each shard's seq tells.
  std::vector<ThreadShard*> shards;
  shards_.for_each([&](ThreadShard& s) SPILLWAY_NO_THREAD_SAFETY_ANALYSIS {
    s.lock.lock();
    adopt_pending(s);
    collect_garbage(s);
    shards.push_back(&s);
  });
  for (BufferRecord* r = all_.front(); r != nullptr; r = all_.next(r)) {
    r->state.fetch_or(state::kFrozen, std::memory_order_seq_cst);
  }
  struct Thaw {
    PoolCore* core;
    std::vector<ThreadShard*>& shards;
    ~Thaw() SPILLWAY_NO_THREAD_SAFETY_ANALYSIS {
      for (BufferRecord* r = core->all_.front(); r != nullptr; r = core->all_.next(r)) {
        r->state.fetch_and(~state::kFrozen, std::memory_order_acq_rel);
      }
      for (ThreadShard* s : shards) s->lock.unlock();
    }
  } thaw{this, shards};
  // A pin or unpin that meets a frozen word takes its count back at once,
  // inside its thread's seq window; one that was past its count when the
  // freeze came finishes within a few instructions. So the states are read
  // when no seq is odd, and read again until no seq moved meanwhile: a read
  // that saw a taken-back count would see that thread's seq move (it
  // synchronises with the count's RMW, which follows the seq's change).
  std::unordered_map<const BufferRecord*, std::uint64_t> states;
  std::array<std::uint64_t, 2> pinned_now{};  // the pinned-bytes counters, read with the states
  std::unordered_map<const BufferRecord*, std::uint64_t> readers;  // pins in reader slots, read with them
  const auto settle_until = Clock::now() + std::chrono::seconds(1);
  auto seqs = [&] {
    std::vector<std::uint64_t> v;
    shards_.for_each([&](ThreadShard& sh) { v.push_back(sh.seq.load(std::memory_order_acquire)); });
    return v;
  };
  for (bool settled = false; !settled;) {
    std::vector<std::uint64_t> before = seqs();
    if (std::any_of(before.begin(), before.end(), [](std::uint64_t q) { return (q & 1) != 0; })) {
      if (Clock::now() >= settle_until) {
        out.push_back("a pin or unpin stayed half done for 1 s: the states below may be off by it");
        break;
      }
      std::this_thread::yield();
      continue;
    }
    states.clear();
    for (const BufferRecord* r = all_.front(); r != nullptr; r = all_.next(r)) {
      states[r] = r->state.load(std::memory_order_acquire);
    }
    // A taken-back count books its bytes and takes them back: the counters
    // too are only as of an instant when no seq moved.
    pinned_now = pinned_bytes();
    readers = reader_counts();
    settled = seqs() == before || Clock::now() >= settle_until;
  }
  std::uint64_t cached[2] = {0, 0};
  std::array<std::int64_t, kTierCount> shard_buffers{};
  for (ThreadShard* sh : shards) {
    for (std::size_t t = 0; t < 2; ++t) {
      std::uint64_t in_bins = 0;
      for (int c = 0; c < kSizeClasses; ++c) {
        in_bins += static_cast<std::uint64_t>(sh->bins[t][static_cast<std::size_t>(c)].count) * class_bytes(c);
      }
      if (in_bins != sh->cached_bytes[t].load(std::memory_order_relaxed)) {
        out.push_back(std::string(tier_name(static_cast<Tier>(t))) + " tier: a thread cache counts " +
                      std::to_string(sh->cached_bytes[t].load(std::memory_order_relaxed)) + " bytes, its bins hold " +
                      std::to_string(in_bins));
      }
      cached[t] += in_bins;
    }
    for (std::size_t t = 0; t < kTierCount; ++t) shard_buffers[t] += sh->buffers[t].load(std::memory_order_relaxed);
  }

  std::array<std::uint64_t, kTierCount> held{};     // bytes records hold per tier
  std::array<std::uint64_t, kTierCount> clean{};    // of which clean copies
  std::array<std::uint64_t, kTierCount> pinned{};   // footprints of pinned primaries
  std::array<std::uint64_t, kTierCount> backed{};   // evictable primaries with a clean copy below
  std::array<std::uint64_t, kTierCount> buffers{};  // primaries per tier
  std::array<std::vector<Span>, kTierCount> spans;
  std::uint64_t moving = 0;
  auto bad = [&out](const BufferRecord& r, const std::string& what) {
    out.push_back(buffer_name(r) + ": " + what);
  };

  // A pin counted in a reader slot is of a live record whose word holds
  // the readers' pin (Note [Read-shared buffers]).
  for (const auto& [rp, n] : readers) {
    const auto it = states.find(rp);
    if (it == states.end()) {
      out.push_back(std::to_string(n) + " pins in reader slots name no live buffer");
    } else if ((it->second & state::kBiasPin) == 0) {
      bad(*rp, std::to_string(n) + " pins in reader slots, but its state word holds no readers' pin");
    }
  }

  for (const BufferRecord* rp = all_.front(); rp != nullptr; rp = all_.next(rp)) {
    const BufferRecord& r = *rp;
    const std::uint64_t st = states[rp];
    const int p = tier_index(r.primary);
    ++buffers[p];
    if (r.moving) ++moving;
    for (Tier t : {Tier::Device, Tier::Host}) {
      const int ti = tier_index(t);
      void* b = r.block[ti];
      if (b == nullptr) continue;
      if (arena(t) == nullptr) {
        bad(r, "holds a block on the " + std::string(tier_name(t)) + " tier, which is off");
        continue;
      }
      held[ti] += r.footprint;
      if (t != r.primary) clean[ti] += r.footprint;
      spans[ti].push_back({reinterpret_cast<std::uintptr_t>(b), r.footprint, r.id});
    }
    if (r.on_disk) {
      held[2] += r.extent.bytes;
      if (r.primary != Tier::Disk) clean[2] += r.extent.bytes;
      spans[2].push_back({r.extent.offset, r.extent.bytes, r.id});
      if (r.extent.bytes == 0) bad(r, "has a disk record in an empty extent");
    } else if (r.disk_zero) {
      bad(r, "is marked all-zeros on disk without a disk extent");
    }
    if (r.size == 0) {
      if (r.footprint != 0 || r.on_disk || r.block[0] != nullptr || r.block[1] != nullptr) {
        bad(r, "is zero bytes long but holds storage");
      }
    } else {
      // Exactly one primary copy, and no copy above it.
      if (!r.has_copy(r.primary)) {
        bad(r, "its primary copy on the " + std::string(tier_name(r.primary)) + " tier is missing");
      }
      for (int t = 0; t < p; ++t) {
        if (r.has_copy(static_cast<Tier>(t))) {
          bad(r, "has a copy on the " + std::string(tier_name(static_cast<Tier>(t))) +
                     " tier above its primary on the " + std::string(tier_name(r.primary)) +
                     " tier (two primaries)");
        }
      }
    }
    if (state::held(st) > 0 || readers.contains(rp)) pinned[p] += r.footprint;
    if (state::pins(st) > 0) {
      if (r.moving) bad(r, "is pinned and moving at once");
      if (r.primary == Tier::Disk && r.size > 0) bad(r, "is pinned on the disk tier");
      if (r.primary != Tier::Disk && r.block[p] != r.pinned_block.load(std::memory_order_relaxed)) {
        bad(r, "its primary block changed while pinned");
      }
    } else if (r.dead && !r.moving) {
      bad(r, "was freed by its owner but still holds storage (neither pinned nor moving)");
    }
    if (r.stale_clean && !r.copy_fence) bad(r, "has stale clean copies but no copy in flight");
    // The state word against the fields: a settled record is on the fast
    // path, on its primary tier; anything else keeps the fast path away.
    const bool settled = !r.claimed && !r.moving && !r.dead && !r.copy_fence && r.size > 0;
    if (settled) {
      if ((st & state::kSlow) != 0) bad(r, "is settled but its state word keeps pins off the fast path");
      if (state::tier_of(st) != p) {
        bad(r, "its state word says the " + std::string(tier_name(static_cast<Tier>(state::tier_of(st) & 3))) +
                   " tier, its primary is on the " + std::string(tier_name(r.primary)) + " tier");
      }
      if (((st & state::kCleanBelow) != 0) != r.clean_below()) {
        bad(r, r.clean_below() ? "has a clean copy below that its state word does not show (a ReadWrite pin would keep it)"
                               : "its state word shows a clean copy below that it does not have");
      }
    } else if ((st & state::kSlow) == 0) {
      bad(r, "is moving, claimed, freed or fenced but its state word lets pins take the fast path");
    }
    if ((st & state::kGarbage) != 0) bad(r, "was freed on the fast path but is still in the pool's lists");
    // Rings: every resident, settled buffer on its primary tier's ring (the
    // only place an eviction looks), counted in backed_bytes when it has a
    // clean copy below.
    const bool ringed = r.size > 0 && r.primary != Tier::Disk && !r.moving && !r.dead;
    bool listed = false;
    for (int t = 0; t < 2; ++t) {
      if (!rings_[static_cast<std::size_t>(t)].contains(&r)) continue;
      listed = true;
      if (t != p) {
        bad(r, "is in the " + std::string(tier_name(static_cast<Tier>(t))) + " ring but its primary is on the " +
                   std::string(tier_name(r.primary)) + " tier");
      }
      if (!ringed) bad(r, "is in a ring while moving or freed");
    }
    if (ringed && !listed) bad(r, "is resident on the " + std::string(tier_name(r.primary)) + " tier but in no ring: no eviction can find it");
    if (listed && r.clean_below() != (r.backed_on == p)) {
      bad(r, r.clean_below() ? "has a clean copy below but is not counted in backed_bytes"
                             : "is counted in backed_bytes without a clean copy below");
    }
    if (r.backed_on >= 0) {
      if (!listed) bad(r, "is counted in backed_bytes but in no ring");
      backed[static_cast<std::size_t>(r.backed_on)] += r.footprint;
    }
    for (Tier t : {Tier::Host, Tier::Disk}) {
      const RecordList& clean = clean_lists_[t == Tier::Disk ? 1 : 0];
      if (clean.contains(&r) && (!r.has_clean(t) || r.moving)) {
        bad(r, "is in the " + std::string(tier_name(t)) + " clean list without a settled clean copy there");
      }
    }
  }

  // Extents released by the pool but not yet given back to the store.
  std::uint64_t deferred = 0;
  for (const auto& e : deferred_release_) {
    deferred += e.bytes;
    spans[2].push_back({e.offset, e.bytes, 0});
  }
  for (int t = 0; t < kTierCount; ++t) {
    check_overlaps(spans[t], tier_name(static_cast<Tier>(t)), out);
  }

  // The tiers' books against the records.
  for (Tier t : {Tier::Device, Tier::Host}) {
    const int ti = tier_index(t);
    const MemoryArena* a = arena(t);
    if (a == nullptr) continue;
    const std::uint64_t expect = held[ti] + reserved_bytes_[ti] + cached[ti];
    if (a->used() != expect) {
      out.push_back(std::string(tier_name(t)) + " tier: the arena has " + std::to_string(a->used()) +
                    " bytes in use, the records hold " + std::to_string(held[ti]) + ", moves in flight " +
                    std::to_string(reserved_bytes_[ti]) + " and thread caches " + std::to_string(cached[ti]) +
                    " (difference " + std::to_string(static_cast<std::int64_t>(a->used() - expect)) + ")");
    }
  }
  if (store_) {
    const std::uint64_t used = store_->stats().used_bytes;
    // Two things change the store's books without the pool's lock, so only
    // a range is known while they run: a spill in flight reserved a whole
    // extent and shrinks it to its record once written, and extents being
    // released (release_deferred) go back one by one.
    const std::uint64_t low = held[2] + deferred;
    const std::uint64_t high = low + releasing_disk_bytes_ + reserved_bytes_[2];
    if (used < low || used > high) {
      out.push_back("disk tier: the spill store has " + std::to_string(used) +
                    " extent bytes in use, the records hold " + std::to_string(held[2]) +
                    ", extents awaiting release " + std::to_string(deferred) + ", being released " +
                    std::to_string(releasing_disk_bytes_) + ", spills in flight up to " +
                    std::to_string(reserved_bytes_[2]));
    }
  }
  for (int t = 0; t < kTierCount; ++t) {
    const std::string name(tier_name(static_cast<Tier>(t)));
    const std::uint64_t pinned_counter = t < 2 ? pinned_now[static_cast<std::size_t>(t)] : 0;
    const std::int64_t buffer_counter = buffers_[static_cast<std::size_t>(t)] + shard_buffers[static_cast<std::size_t>(t)];
    if (clean_bytes_[t] != clean[t]) {
      out.push_back(name + " tier: clean_bytes is " + std::to_string(clean_bytes_[t]) +
                    ", the clean copies add up to " + std::to_string(clean[t]));
    }
    if (pinned_counter != pinned[t]) {
      out.push_back(name + " tier: pinned_bytes is " + std::to_string(pinned_counter) +
                    ", the pinned buffers add up to " + std::to_string(pinned[t]));
    }
    if (backed_bytes_[t] != backed[t]) {
      out.push_back(name + " tier: backed_bytes is " + std::to_string(backed_bytes_[t]) +
                    ", the evictable buffers with a clean copy below add up to " + std::to_string(backed[t]));
    }
    if (buffer_counter != static_cast<std::int64_t>(buffers[t])) {
      out.push_back(name + " tier: the buffer count is " + std::to_string(buffer_counter) + ", " +
                    std::to_string(buffers[t]) + " records have their primary there");
    }
  }
  if (moves_in_flight_ != moving) {
    out.push_back("moves in flight: the counter says " + std::to_string(moves_in_flight_) + ", " +
                  std::to_string(moving) + " records are moving");
  }
  if (moves_in_flight_ == 0) {
    for (int t = 0; t < kTierCount; ++t) {
      if (pending_out_[t] != 0) {
        out.push_back(std::string(tier_name(static_cast<Tier>(t))) + " tier: " +
                      std::to_string(pending_out_[t]) + " bytes counted as spilling with no move in flight");
      }
    }
  }
  return out;
}

}  // namespace spillway::detail
