// src/offline/bound.cpp — the lower bound (fractional knapsack over the
// space-time left by the pins), the upper bound (the same order, kept only
// where it fits at every point) and Belady's MIN for equal sizes. Why each
// is what it claims: docs/bound.md.
#include "src/offline/bound.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "spillway/options.hpp"
#include "src/offline/flow_bound.hpp"
#include "src/offline/max_segment_tree.hpp"

namespace spillway::offline {

namespace {

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return a > std::numeric_limits<std::uint64_t>::max() - b ? std::numeric_limits<std::uint64_t>::max() : a + b;
}

}  // namespace

BoundOptions options_from(const record::RecordedOptions& recorded) {
  BoundOptions o;
  o.device_bytes = recorded.device_bytes;
  o.host_bytes = recorded.host_bytes;
  o.granularity = kArenaGranularity;
  return o;
}

BoundaryModel::BoundaryModel(const record::AccessLog& log, Boundary boundary, std::uint64_t granularity)
    : trace_(build_interval_trace(log, boundary, granularity)), peak_(peak_pinned(trace_)) {
  const IntervalTrace& t = trace_;
  const std::size_t m = t.intervals();
  const std::size_t n = t.points();

  // The working set: pinned bytes plus every interval kept, at the worst
  // point. At this capacity every interval fits.
  {
    std::vector<std::int64_t> delta(t.mandatory_delta);
    for (std::size_t i = 0; i < m; ++i) {
      if (t.length(i) == 0) continue;
      delta[t.first[i]] += static_cast<std::int64_t>(t.room[i]);
      delta[t.last[i] + 1] -= static_cast<std::int64_t>(t.room[i]);
    }
    std::int64_t run = 0;
    for (std::size_t p = 0; p < n; ++p) {
      run += delta[p];
      working_set_ = std::max(working_set_, static_cast<std::uint64_t>(run));
    }
  }

  // Each savable write-back rides on one interval of its epoch, the one
  // with the most resource: saving the write-back needs that interval kept
  // (and all the others), so crediting it there alone never overstates what
  // a schedule saves, and on the largest interval it lowers that interval's
  // benefit per resource the least.
  std::vector<std::uint32_t> carrier(t.epoch_bytes.size(), kNone);
  for (std::size_t i = 0; i < m; ++i) {
    const std::uint32_t e = t.epoch[i];
    if (e == kNone || t.epoch_bytes[e] == 0) continue;
    if (carrier[e] == kNone || t.length(i) > t.length(carrier[e])) carrier[e] = static_cast<std::uint32_t>(i);
  }
  benefit_.assign(t.bytes.begin(), t.bytes.end());
  carries_epoch_.assign(m, 0);
  for (std::size_t e = 0; e < carrier.size(); ++e) {
    if (carrier[e] == kNone) continue;
    benefit_[carrier[e]] += t.epoch_bytes[e];
    carries_epoch_[carrier[e]] = 1;
    total_writeback_ += t.epoch_bytes[e];
  }
  for (std::size_t i = 0; i < m; ++i) total_fetch_ += t.bytes[i];

  // Best benefit per unit of space-time first; intervals that cover no
  // point cost nothing and come first; ties by index, so that runs repeat.
  // (Sorted as (ratio, index) pairs: an index sort that looks the ratio up
  // misses the cache on every comparison.)
  struct Keyed {
    double ratio;
    std::uint32_t index;
  };
  std::vector<Keyed> keyed(m);
  for (std::size_t i = 0; i < m; ++i) {
    const double resource = static_cast<double>(t.room[i]) * static_cast<double>(t.length(i));
    keyed[i] = Keyed{resource == 0 ? std::numeric_limits<double>::infinity()
                                   : static_cast<double>(benefit_[i]) / resource,
                     static_cast<std::uint32_t>(i)};
  }
  std::sort(keyed.begin(), keyed.end(), [](const Keyed& a, const Keyed& b) {
    return a.ratio != b.ratio ? a.ratio > b.ratio : a.index < b.index;
  });
  order_.resize(m);
  for (std::size_t k = 0; k < m; ++k) order_[k] = keyed[k].index;
}

BoundaryBound BoundaryModel::evaluate(std::uint64_t capacity, bool keep_schedule, bool equal_size_min) const {
  const IntervalTrace& t = trace_;
  const std::size_t m = t.intervals();
  const std::size_t n = t.points();
  BoundaryBound r;
  r.boundary = t.boundary;
  r.capacity_bytes = capacity;
  r.present = true;
  r.spans = t.spans;
  r.intervals = m;
  r.equal_size = t.equal_size;
  r.peak_pinned_bytes = peak_.bytes;
  r.peak_pinned_event = peak_.point == kNone ? 0 : t.point_event[peak_.point];
  r.compulsory_bytes = t.compulsory_fetch_bytes + t.compulsory_writeback_bytes;
  if (peak_.bytes > capacity) {
    r.feasible = false;
    return r;
  }

  // Lower bound. Every schedule keeps a set of intervals whose bytes x
  // points fit in the space-time the pins leave, sum over points of
  // (capacity - pinned); the fractional knapsack over that one constraint,
  // solved greedily by benefit per resource, saves at least as much.
  long double budget = 0;
  {
    std::int64_t pinned = 0;
    for (std::size_t p = 0; p < n; ++p) {
      pinned += t.mandatory_delta[p];
      budget += static_cast<long double>(capacity - static_cast<std::uint64_t>(pinned));
    }
  }
  std::uint64_t saved_fetch = 0, saved_writeback = 0;
  for (std::uint32_t i : order_) {
    const long double resource = static_cast<long double>(t.room[i]) * static_cast<long double>(t.length(i));
    const std::uint64_t wb = benefit_[i] - t.bytes[i];
    if (resource <= budget) {
      budget -= resource;
      saved_fetch += t.bytes[i];
      saved_writeback += wb;
      continue;
    }
    // The last one, in part. Rounded up: the bound must not overstate.
    const long double part = budget / resource;
    saved_fetch += static_cast<std::uint64_t>(std::ceil(part * static_cast<long double>(t.bytes[i])));
    saved_writeback += static_cast<std::uint64_t>(std::ceil(part * static_cast<long double>(wb)));
    break;
  }
  r.lower_fetch_bytes = t.compulsory_fetch_bytes + total_fetch_ - std::min(saved_fetch, total_fetch_);
  r.lower_writeback_bytes = t.compulsory_writeback_bytes + total_writeback_ - std::min(saved_writeback, total_writeback_);
  r.lower_bound_bytes = r.lower_fetch_bytes + r.lower_writeback_bytes;
  r.pfoo_lower_bytes = r.lower_bound_bytes;

  // Upper bound: the same order, an interval kept only when it fits on top
  // of the pins and the intervals kept before it at every point it covers.
  std::vector<std::uint8_t> kept(m, 0);
  {
    std::vector<std::int64_t> pinned(n);
    std::int64_t run = 0;
    for (std::size_t p = 0; p < n; ++p) pinned[p] = run += t.mandatory_delta[p];
    MaxSegmentTree occupancy(pinned);
    const auto cap = capacity > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                         ? std::numeric_limits<std::int64_t>::max()
                         : static_cast<std::int64_t>(capacity);
    for (std::uint32_t i : order_) {
      if (t.length(i) == 0) {
        kept[i] = 1;
        continue;
      }
      const auto b = static_cast<std::int64_t>(t.room[i]);
      kept[i] = occupancy.add_if_fits(t.first[i], t.last[i] + std::size_t{1}, b, cap) ? 1 : 0;
    }
  }
  ScheduleCost upper = schedule_cost(t, kept);

  // Belady's rule is a feasible schedule for any sizes too, and on logs
  // where buffers come back in a fixed order (a training step) it keeps far
  // more than the greedy above: the upper bound is the better of the two.
  if (equal_size_min) {
    std::vector<std::uint8_t> min_kept = belady_min_schedule(t, capacity);
    const ScheduleCost min_cost = schedule_cost(t, min_kept);
    if (min_cost.total() < upper.total()) {
      upper = min_cost;
      kept.swap(min_kept);
    }
    if (t.equal_size != 0) {
      r.min_bytes = min_cost.total();
      // With no write-back a schedule can save, the cost is the fetches of
      // the intervals not kept, all of one size: MIN keeps the most
      // intervals, so it is the optimum (docs/bound.md).
      if (total_writeback_ == 0) {
        r.exact = true;
        r.lower_fetch_bytes = min_cost.fetch_bytes;
        r.lower_writeback_bytes = min_cost.writeback_bytes;
        r.lower_bound_bytes = min_cost.total();
      }
    }
  }
  r.upper_fetch_bytes = upper.fetch_bytes;
  r.upper_writeback_bytes = upper.writeback_bytes;
  r.upper_bound_bytes = upper.total();
  // The flow bound: the same choice relaxed only to fractions, with the
  // capacity kept at every point. Never below PFOO-L's (up to rounding).
  // Solved only where it can tell more: when PFOO-L leaves a gap below
  // the upper bound.
  if (flow_limit_ > 0 && r.lower_bound_bytes < r.upper_bound_bytes) {
    if (const auto flow = flow_lower_bound(t, benefit_, capacity, flow_limit_)) {
      const std::uint64_t compulsory = t.compulsory_fetch_bytes + t.compulsory_writeback_bytes;
      const std::uint64_t lower = compulsory + flow->unsaved_bytes;
      r.flow_lower_bytes = lower;
      if (lower > r.lower_bound_bytes) {
        r.lower_bound_bytes = lower;
        r.lower_writeback_bytes = t.compulsory_writeback_bytes + flow->unsaved_writeback_bytes;
        r.lower_fetch_bytes = lower - r.lower_writeback_bytes;
      }
    }
  }

  if (r.lower_bound_bytes > r.upper_bound_bytes) {
    // Impossible if the model is right: say so rather than print nonsense.
    throw std::logic_error("spillway bound: the lower bound (" + std::to_string(r.lower_bound_bytes) +
                           " bytes) exceeds the upper bound (" + std::to_string(r.upper_bound_bytes) +
                           ") on the " + to_string(t.boundary) + " boundary at capacity " +
                           std::to_string(capacity) + ": a bug in src/offline");
  }
  if (keep_schedule) {
    r.schedule.resize(m);
    for (std::size_t i = 0; i < m; ++i) {
      r.schedule[i] = ScheduledInterval{t.buffer_ids[t.buffer[i]], t.bytes[i], t.begin_event[i], t.end_event[i],
                                        kept[i] != 0};
    }
  }
  return r;
}

BoundResult compute_bounds(const record::AccessLog& log, const BoundOptions& options) {
  BoundResult result;
  result.events = log.events.size();
  {
    BoundaryModel memory(log, Boundary::Memory, options.granularity);
    memory.set_flow_limit(options.flow_limit);
    result.memory = memory.evaluate(saturating_add(options.device_bytes, options.host_bytes), options.keep_schedule,
                                    options.equal_size_min);
    result.unknown_buffer_events = memory.trace().unknown_buffer_events;
    result.stray_unpins = memory.trace().stray_unpins;
  }
  BoundaryModel device(log, Boundary::Device, options.granularity);
  device.set_flow_limit(options.flow_limit);
  if (options.device_bytes > 0 || device.trace().spans > 0) {
    result.device = device.evaluate(options.device_bytes, options.keep_schedule, options.equal_size_min);
  } else {
    result.device.boundary = Boundary::Device;  // no device tier and no device pins
  }
  return result;
}

std::vector<CurvePoint> curve(const BoundaryModel& model, std::span<const std::uint64_t> capacities) {
  std::vector<CurvePoint> out;
  out.reserve(capacities.size());
  for (std::uint64_t c : capacities) out.push_back(CurvePoint{c, model.evaluate(c)});
  return out;
}

std::vector<std::uint64_t> curve_capacities(const BoundaryModel& model, std::size_t points) {
  points = std::max<std::size_t>(points, 2);
  const std::uint64_t lo = std::max<std::uint64_t>(model.min_feasible_capacity(), 1);
  const std::uint64_t hi = std::max(model.working_set_bytes(), lo);
  std::vector<std::uint64_t> out;
  for (std::size_t k = 0; k < points; ++k) {
    const long double f = static_cast<long double>(k) / static_cast<long double>(points - 1);
    const auto c = static_cast<std::uint64_t>(static_cast<long double>(lo) + f * static_cast<long double>(hi - lo));
    if (out.empty() || c != out.back()) out.push_back(c);
  }
  return out;
}

}  // namespace spillway::offline
