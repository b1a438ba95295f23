// src/core/lookahead_policy.cpp — EvictionPolicy::Lookahead: the farthest
// next use first, weighed by what the eviction costs.
//
// Among the first kWindow records of the ring from the scan's position (the
// oldest arrivals), the victim is the one whose next use (the executor's
// hint, Buffer::hint_next_use) is farthest. A victim with a clean copy below
// costs one copy (the fetch back), a dirty one two (the write now, the fetch
// later), so a clean victim counts as twice as far. Distances are measured
// from the nearest hint in the window (the pool does not know the executor's
// current step). Unhinted buffers (kNoHint) count as farthest, which keeps
// arrival order among them; one just allocated and not yet pinned or hinted
// (kFresh) counts as nearest, so that the proactive spill its allocation may
// start does not take the buffer its owner is about to use.
#include <algorithm>
#include <limits>

#include "replacement_policy.hpp"

namespace spillway::detail {

namespace {

constexpr int kWindow = 64;

class LookaheadPolicy final : public ReplacementPolicy {
 public:
  Victim next(RecordList& ring, BufferRecord* from, VictimScan& scan) override {
    BufferRecord* v = from;
    while (v != nullptr && !scan.exhausted()) {
      ++scan.examined;
      if (candidate(*v, scan)) break;
      v = ring.next(v);
    }
    if (v == nullptr || scan.exhausted()) return {};
    std::uint64_t nearest = kNoHint;
    BufferRecord* c = v;
    for (int i = 0; i < kWindow && c != nullptr; ++i, c = ring.next(c)) {
      if (!candidate(*c, scan) || c->fresh()) continue;
      nearest = std::min(nearest, c->next_use.load(std::memory_order_relaxed));
    }
    auto score = [nearest](const BufferRecord& r) {
      if (r.fresh()) return 0.0;
      const std::uint64_t next_use = r.next_use.load(std::memory_order_relaxed);
      if (next_use == kNoHint) return std::numeric_limits<double>::infinity();
      const double distance = static_cast<double>(next_use - std::min(nearest, next_use) + 1);
      return r.clean_below() ? 2.0 * distance : distance;
    };
    BufferRecord* best = v;
    double best_score = score(*v);
    c = ring.next(v);
    for (int i = 1; i < kWindow && c != nullptr; ++i, c = ring.next(c)) {
      if (!candidate(*c, scan) || !scan.movable(*c)) continue;
      const double sc = score(*c);
      if (sc > best_score) {
        best = c;
        best_score = sc;
      }
    }
    // The window's first record stays where it is when another goes.
    return {best, best == v ? ring.next(v) : v};
  }

 private:
  static bool candidate(const BufferRecord& r, const VictimScan& scan) {
    return !unavailable(r.state.load(std::memory_order_acquire)) && !(scan.dirty_only && r.clean_below());
  }
};

}  // namespace

std::unique_ptr<ReplacementPolicy> make_lookahead_policy() { return std::make_unique<LookaheadPolicy>(); }

}  // namespace spillway::detail
