// src/core/replacement_policy.hpp — which resident buffer leaves a tier
// first: the interface every eviction policy implements, and its factory.
//
// The pool keeps, per memory tier, a *ring* of the records whose primary is
// there and that are not moving, in the order they arrived (allocation, or
// a move onto the tier). An eviction scan (PoolCore::start_evictions) walks
// the ring from the front and asks the policy, again and again, for the next
// victim at or after a position. The policy may reorder the ring (CLOCK
// moves a record it gives a second chance to the back); it never unlinks a
// record and never claims one: the pool claims the victim with a CAS on its
// state word, which fails if a pin came first (buffer_record.hpp).
//
// Policies learn recency without a lock on the pin path: a pin sets the
// record's kRef mark (BufferRecord::marks) right after the increment that
// counts it, and Lookahead reads the
// next-use hint (BufferRecord::next_use) that Buffer::hint_next_use stores.
//
// Called under PoolCore::mu_ only. One file per policy:
//   clock_policy.cpp      EvictionPolicy::Lru   (CLOCK: LRU with reference bits)
//   lookahead_policy.cpp  EvictionPolicy::Lookahead
#pragma once

#include <cstdint>
#include <limits>
#include <memory>

#include "buffer_record.hpp"
#include "spillway/options.hpp"

namespace spillway::detail {

// What one scan is looking for, and how far it has looked.
struct VictimScan {
  // Skip records with a clean copy below (proactive spilling only writes).
  bool dirty_only = false;
  // Copy-down failed for a record this large: larger dirty ones would too.
  std::uint64_t smallest_failed = std::numeric_limits<std::uint64_t>::max();
  // Records looked at so far, and the bound (the pool's lock is held).
  int examined = 0;
  int limit = 4096;

  bool exhausted() const { return examined >= limit; }
  // Whether evicting r now could succeed: a clean copy below always can
  // (except ahead of need), a dirty one where copy-down has not failed yet.
  bool movable(const BufferRecord& r) const {
    return r.clean_below() ? !dirty_only : r.footprint < smallest_failed;
  }
};

// A candidate, and where the scan goes on after it (nullptr: the end).
struct Victim {
  BufferRecord* record = nullptr;
  BufferRecord* resume = nullptr;
};

class ReplacementPolicy {
 public:
  virtual ~ReplacementPolicy() = default;
  // The next victim at or after `from` in `ring` (nullptr `from`: the scan
  // is over), or {nullptr, nullptr}. `resume` must be a record still in the
  // ring after the victim leaves it, or nullptr.
  virtual Victim next(RecordList& ring, BufferRecord* from, VictimScan& scan) = 0;
};

std::unique_ptr<ReplacementPolicy> make_clock_policy();      // clock_policy.cpp
std::unique_ptr<ReplacementPolicy> make_lookahead_policy();  // lookahead_policy.cpp

inline std::unique_ptr<ReplacementPolicy> make_replacement_policy(EvictionPolicy policy) {
  return policy == EvictionPolicy::Lookahead ? make_lookahead_policy() : make_clock_policy();
}

// A record the scan passes over where it is: pinned now, freed and waiting
// to be unlinked, or already claimed. A read-shared one with no pin of its
// own is a candidate: claiming it revokes the sharing, and fails if a
// reader slot still counts a pin (Note [Read-shared buffers]).
inline bool unavailable(std::uint64_t state) {
  return state::held(state) > 0 || (state & (state::kGarbage | state::kSlow)) != 0;
}

}  // namespace spillway::detail
