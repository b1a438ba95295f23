// src/core/pool_invariants.cpp — PoolCore::check_invariants: the residency
// state machine checked against itself and against the tiers' own books.
//
// Everything here runs under mu_ and only reads. The books it compares:
//   arena(t)->used()       what the memory tier's sub-allocator handed out
//   store_->stats()        what the spill store's extent allocator handed out
//   clean/pinned/buffers_  the pool's counters (what stats() reports)
// against what the records say they hold. Storage the pool holds outside any
// record for a moment (the destination of a move in flight, a block between
// make_room and its owner, extents being released without the lock) is
// counted in reserved_bytes_ / releasing_disk_bytes_ / deferred_release_.
#include "pool_core.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
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

std::vector<std::string> PoolCore::check_invariants() const {
  Lock lk(mu_);
  std::vector<std::string> out;
  if (closed_) return out;  // storage is gone; nothing left to check

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

  for (const auto& [id, rp] : records_) {
    const BufferRecord& r = *rp;
    if (r.id != id) bad(r, "filed under id " + std::to_string(id));
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
    if (r.pins > 0) {
      pinned[p] += r.footprint;
      if (r.moving) bad(r, "is pinned and moving at once");
      if (r.primary == Tier::Disk && r.size > 0) bad(r, "is pinned on the disk tier");
      if (r.primary != Tier::Disk && r.block[p] != r.pinned_block) {
        bad(r, "its primary block changed while pinned");
      }
    } else if (r.dead && !r.moving) {
      bad(r, "was freed by its owner but still holds storage (neither pinned nor moving)");
    }
    if (r.stale_clean && !r.copy_fence) bad(r, "has stale clean copies but no copy in flight");
    // Eviction lists: only unpinned, settled records, on the tier they name;
    // those with a clean copy below counted as room (backed_bytes_).
    bool listed = false;
    for (int t = 0; t < kTierCount; ++t) {
      const Tier tt = static_cast<Tier>(t);
      if (r.hooks[kPrimaryList][t].linked) {
        listed = true;
        if (r.clean_below() != (r.backed_on == t)) {
          bad(r, r.clean_below() ? "has a clean copy below but is not counted in backed_bytes"
                                 : "is counted in backed_bytes without a clean copy below");
        }
        if (r.backed_on == t) backed[t] += r.footprint;
        if (r.moving || r.pins > 0 || r.dead) bad(r, "is in an eviction list while pinned, moving or freed");
        if (t != p) {
          bad(r, "is in the " + std::string(tier_name(tt)) + " eviction list but its primary is on the " +
                     std::string(tier_name(r.primary)) + " tier");
        }
      }
      if (r.hooks[kCleanList][t].linked && (!r.has_clean(tt) || r.moving)) {
        bad(r, "is in the " + std::string(tier_name(tt)) + " clean list without a settled clean copy there");
      }
    }
    if (!listed && r.backed_on >= 0) bad(r, "is counted in backed_bytes but in no eviction list");
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
    const std::uint64_t expect = held[ti] + reserved_bytes_[ti];
    if (a->used() != expect) {
      out.push_back(std::string(tier_name(t)) + " tier: the arena has " + std::to_string(a->used()) +
                    " bytes in use, the records hold " + std::to_string(held[ti]) + " and moves in flight " +
                    std::to_string(reserved_bytes_[ti]) + " (difference " +
                    std::to_string(static_cast<std::int64_t>(a->used() - expect)) + ")");
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
    if (clean_bytes_[t] != clean[t]) {
      out.push_back(name + " tier: clean_bytes is " + std::to_string(clean_bytes_[t]) +
                    ", the clean copies add up to " + std::to_string(clean[t]));
    }
    if (pinned_bytes_[t] != pinned[t]) {
      out.push_back(name + " tier: pinned_bytes is " + std::to_string(pinned_bytes_[t]) +
                    ", the pinned buffers add up to " + std::to_string(pinned[t]));
    }
    if (backed_bytes_[t] != backed[t]) {
      out.push_back(name + " tier: backed_bytes is " + std::to_string(backed_bytes_[t]) +
                    ", the evictable buffers with a clean copy below add up to " + std::to_string(backed[t]));
    }
    if (buffers_[t] != buffers[t]) {
      out.push_back(name + " tier: the buffer count is " + std::to_string(buffers_[t]) + ", " +
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

void PoolCore::skew_pinned_bytes_for_testing(Tier t, std::int64_t delta) {
  Lock lk(mu_);
  pinned_bytes_[tier_index(t)] += static_cast<std::uint64_t>(delta);
}

}  // namespace spillway::detail
