// src/offline/max_segment_tree.hpp — range add and range maximum over a
// fixed array, each O(log n): the upper bound's occupancy profile (pinned
// bytes plus the intervals kept so far, at every point).
//
// Bottom-up layout (leaves at [n, 2n)): value_[v] is the maximum of v's
// leaves including every add applied to v or below it, pending_[v] the adds
// applied to v as a whole that its children do not show yet. Three words per
// element, no recursion, no allocation after construction.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace spillway::offline {

class MaxSegmentTree {
 public:
  // Leaves start as `initial`.
  explicit MaxSegmentTree(const std::vector<std::int64_t>& initial)
      : n_(initial.size()), value_(2 * initial.size()), pending_(initial.size(), 0) {
    while ((std::size_t{1} << height_) < n_ + 1) ++height_;
    std::copy(initial.begin(), initial.end(), value_.begin() + static_cast<std::ptrdiff_t>(n_));
    for (std::size_t v = n_; v-- > 1;) value_[v] = std::max(value_[2 * v], value_[2 * v + 1]);
  }

  std::size_t size() const { return n_; }

  // Adds `delta` to every element of [l, r).
  void add(std::size_t l, std::size_t r, std::int64_t delta) {
    if (l >= r) return;
    l += n_;
    r += n_;
    const std::size_t l0 = l, r0 = r;
    for (; l < r; l >>= 1, r >>= 1) {
      if (l & 1) apply(l++, delta);
      if (r & 1) apply(--r, delta);
    }
    rebuild(l0);
    rebuild(r0 - 1);
  }

  // Adds `delta` to [l, r) if the maximum there stays at or below `limit`
  // (one descent of pending adds instead of two). True when it added.
  bool add_if_fits(std::size_t l, std::size_t r, std::int64_t delta, std::int64_t limit) {
    if (l >= r) return true;
    if (max(l, r) > limit - delta) return false;
    // max() pushed the pending adds on both edges: the add below only has
    // to rebuild them.
    add(l, r, delta);
    return true;
  }

  // The maximum over [l, r); the lowest int64 when the range is empty.
  std::int64_t max(std::size_t l, std::size_t r) {
    std::int64_t best = std::numeric_limits<std::int64_t>::min();
    if (l >= r) return best;
    l += n_;
    r += n_;
    push(l);
    push(r - 1);
    for (; l < r; l >>= 1, r >>= 1) {
      if (l & 1) best = std::max(best, value_[l++]);
      if (r & 1) best = std::max(best, value_[--r]);
    }
    return best;
  }

 private:
  void apply(std::size_t v, std::int64_t delta) {
    value_[v] += delta;
    if (v < n_) pending_[v] += delta;
  }
  // Recomputes v's ancestors from their children and their own pending adds.
  void rebuild(std::size_t v) {
    while (v > 1) {
      v >>= 1;
      value_[v] = std::max(value_[2 * v], value_[2 * v + 1]) + pending_[v];
    }
  }
  // Hands the pending adds of v's ancestors down to v, top first.
  void push(std::size_t v) {
    for (unsigned s = height_; s > 0; --s) {
      const std::size_t a = v >> s;
      if (a == 0 || a >= n_ || pending_[a] == 0) continue;
      apply(2 * a, pending_[a]);
      apply(2 * a + 1, pending_[a]);
      pending_[a] = 0;
    }
  }

  std::size_t n_;
  unsigned height_ = 0;
  std::vector<std::int64_t> value_;
  std::vector<std::int64_t> pending_;
};

}  // namespace spillway::offline
