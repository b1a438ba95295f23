// src/core/clock_policy.cpp — EvictionPolicy::Lru: least recently used
// first, learnt with reference bits (CLOCK, "second chance").
//
// Exact LRU order needs a shared list moved on every unpin: the one write
// that every pinning thread would make to the same cache line. Instead a pin
// sets its record's kRef mark after it counts itself, and the scan walks
// the ring from the front (the oldest arrivals): a record with kRef set is
// given a second chance (the bit cleared, the record moved to the back, as
// if it had just arrived), the first one without it is the victim. A buffer
// pinned since the scan last passed is therefore never taken before one that
// was not; among those that were not, the earliest to arrive goes first.
#include "replacement_policy.hpp"

namespace spillway::detail {

namespace {

class ClockPolicy final : public ReplacementPolicy {
 public:
  Victim next(RecordList& ring, BufferRecord* from, VictimScan& scan) override {
    BufferRecord* r = from;
    while (r != nullptr && !scan.exhausted()) {
      ++scan.examined;
      BufferRecord* next = ring.next(r);
      const std::uint64_t s = r->state.load(std::memory_order_acquire);
      if (unavailable(s) || (scan.dirty_only && r->clean_below())) {
        r = next;
        continue;
      }
      const std::uint8_t m = r->marks.load(std::memory_order_relaxed);
      if ((m & mark::kRef) != 0) {
        // Second chance. A pin racing this sets the mark again, or its
        // mark is lost (it then competes as one not pinned since).
        r->marks.store(m & ~mark::kRef, std::memory_order_relaxed);
        ring.move_to_back(r);
        r = next != nullptr ? next : r;  // the last one comes round at once
        continue;
      }
      return {r, next};
    }
    return {};
  }
};

}  // namespace

std::unique_ptr<ReplacementPolicy> make_clock_policy() { return std::make_unique<ClockPolicy>(); }

}  // namespace spillway::detail
