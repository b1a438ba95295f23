// src/offline/access_intervals.cpp — see access_intervals.hpp and docs/bound.md.
#include "src/offline/access_intervals.hpp"

#include <algorithm>
#include <stdexcept>

namespace spillway::offline {

namespace {

using record::Event;
using record::EventKind;

// Buffer::id() -> dense index of the live buffer with that id. Open
// addressing with linear probing and tombstones: one array, no allocation
// per insert (the log can hold millions of buffers).
class LiveBufferMap {
 public:
  explicit LiveBufferMap(std::size_t expected) {
    std::size_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
  }

  std::uint32_t find(std::uint64_t id) const {
    for (std::size_t i = hash(id);; i = (i + 1) & (slots_.size() - 1)) {
      const Slot& s = slots_[i];
      if (s.state == kEmpty) return kNone;
      if (s.state == kFull && s.id == id) return s.index;
    }
  }

  void insert(std::uint64_t id, std::uint32_t index) {
    if ((used_ + 1) * 4 > slots_.size() * 3) rehash(slots_.size() * 2);
    std::size_t i = hash(id);
    while (slots_[i].state == kFull) i = (i + 1) & (slots_.size() - 1);
    if (slots_[i].state == kEmpty) ++used_;
    slots_[i] = Slot{id, index, kFull};
  }

  void erase(std::uint64_t id) {
    for (std::size_t i = hash(id);; i = (i + 1) & (slots_.size() - 1)) {
      Slot& s = slots_[i];
      if (s.state == kEmpty) return;
      if (s.state == kFull && s.id == id) {
        s.state = kTombstone;  // still counted in used_: probes must pass it
        return;
      }
    }
  }

 private:
  static constexpr std::uint8_t kEmpty = 0, kFull = 1, kTombstone = 2;
  struct Slot {
    std::uint64_t id = 0;
    std::uint32_t index = 0;
    std::uint8_t state = kEmpty;
  };

  std::size_t hash(std::uint64_t id) const {
    std::uint64_t z = id + 0x9e3779b97f4a7c15ULL;  // splitmix64's finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<std::size_t>(z ^ (z >> 31)) & (slots_.size() - 1);
  }

  void rehash(std::size_t cap) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    used_ = 0;
    for (const Slot& s : old) {
      if (s.state == kFull) insert(s.id, s.index);
    }
  }

  std::vector<Slot> slots_;
  std::size_t used_ = 0;  // full + tombstones
};

// What the sweep keeps per buffer.
struct BufferState {
  std::uint32_t above_pins = 0;  // pins held above the boundary (nested pins count)
  std::uint32_t below_pins = 0;
  std::uint32_t span_point = 0;  // the point where the current span started
  std::uint32_t prev_first = 0;  // the pending interval's first point
  std::uint32_t prev_begin = 0;  // ... and the event that began it
  std::uint32_t epoch = kNone;   // the dirty epoch the buffer is in, kNone when clean
  bool pending = false;          // a span ended (or the buffer was created above): the
                                 // next span continues an interval
  bool written = false;          // the current span holds a ReadWrite pin
  bool touched = false;          // had a span or an interval (for equal_size)
};

bool is_above(Boundary b, Tier t) {
  return b == Boundary::Device ? t == Tier::Device : t != Tier::Disk;
}

}  // namespace

const char* to_string(Boundary b) { return b == Boundary::Device ? "device" : "memory"; }

IntervalTrace build_interval_trace(const record::AccessLog& log, Boundary boundary, std::uint64_t granularity) {
  if (granularity == 0) throw std::invalid_argument("spillway bound: the allocation granularity must be at least 1");
  auto room_of = [granularity](std::uint64_t bytes) {
    return bytes == 0 ? granularity : (bytes + granularity - 1) / granularity * granularity;
  };
  const std::vector<Event>& ev = log.events;
  if (ev.size() >= kNone) {
    throw std::invalid_argument("spillway bound: the log has " + std::to_string(ev.size()) +
                                " events; the bound handles at most " + std::to_string(kNone - 1));
  }
  IntervalTrace t;
  t.boundary = boundary;
  t.events = ev.size();

  // Sizes for the arrays, so that they are allocated once.
  std::size_t allocations = 0, pins_above = 0;
  for (const Event& e : ev) {
    if (e.kind == EventKind::Allocate) ++allocations;
    if (e.kind == EventKind::Pin && is_above(boundary, e.tier)) ++pins_above;
  }
  const std::size_t max_points = allocations + pins_above;
  t.point_event.reserve(max_points);
  t.point_incoming.reserve(max_points);
  t.mandatory_delta.reserve(max_points + 1);
  t.mandatory_delta.push_back(0);
  for (auto* v : {&t.first, &t.last, &t.epoch, &t.buffer, &t.begin_event, &t.end_event}) v->reserve(pins_above);
  t.bytes.reserve(pins_above);
  t.room.reserve(pins_above);
  t.buffer_ids.reserve(allocations);
  t.buffer_bytes.reserve(allocations);
  t.buffer_room.reserve(allocations);

  LiveBufferMap live(allocations);
  std::vector<BufferState> st;
  st.reserve(allocations);

  auto new_point = [&](std::uint32_t event) {
    const auto q = static_cast<std::uint32_t>(t.point_event.size());
    t.point_event.push_back(event);
    t.point_incoming.push_back(kNone);
    t.mandatory_delta.push_back(0);
    return q;
  };
  auto points_now = [&] { return static_cast<std::uint32_t>(t.point_event.size()); };
  // The dense index of a live buffer; kNone (counted) for one the log never
  // allocated or already freed.
  auto known = [&](std::uint64_t id) {
    const std::uint32_t x = live.find(id);
    if (x == kNone) ++t.unknown_buffer_events;
    return x;
  };
  // The span of buffer x ends: its bytes stop being pinned after the last
  // point so far.
  auto end_span = [&](std::uint32_t x) {
    t.mandatory_delta[points_now()] -= static_cast<std::int64_t>(t.buffer_room[x]);
  };

  for (std::uint32_t i = 0; i < ev.size(); ++i) {
    const Event& e = ev[i];
    switch (e.kind) {
      case EventKind::Allocate: {
        if (std::uint32_t old = live.find(e.buffer); old != kNone) {
          // The id came back without a Free (a truncated log): the old
          // buffer ends here, like a free.
          if (st[old].above_pins > 0) end_span(old);
          live.erase(e.buffer);
        }
        const auto x = static_cast<std::uint32_t>(st.size());
        st.push_back(BufferState{});
        t.buffer_ids.push_back(e.buffer);
        t.buffer_bytes.push_back(e.value);
        t.buffer_room.push_back(room_of(e.value));
        live.insert(e.buffer, x);
        if (is_above(boundary, e.tier)) {
          // Created above: a schedule may keep it there until its first
          // access (the creation interval) or create it below, as the pool
          // does when the preferred tier is full. Not a write: nothing in
          // it needs preserving yet (docs/bound.md).
          const std::uint32_t q = new_point(i);
          st[x].pending = true;
          st[x].prev_first = q;
          st[x].prev_begin = i;
        }
        break;
      }
      case EventKind::Pin: {
        const std::uint32_t x = known(e.buffer);
        if (x == kNone) break;
        BufferState& b = st[x];
        if (!is_above(boundary, e.tier)) {
          if (b.above_pins == 0) {
            // A pin below the boundary: the buffer must be there, so it
            // leaves above (if it was there) and the next access above is a
            // fetch. Dirty data has to go down first whatever a schedule did.
            if (b.epoch != kNone) {
              t.compulsory_writeback_bytes += t.epoch_bytes[b.epoch];
              t.epoch_bytes[b.epoch] = 0;  // nothing left for a schedule to save
            }
            b.epoch = kNone;
            b.pending = false;
          }
          ++b.below_pins;
          break;
        }
        if (e.access == Access::ReadWrite) b.written = true;
        if (b.above_pins++ > 0) break;  // nested: the span is already open
        ++t.spans;
        b.touched = true;
        const std::uint32_t q = new_point(i);
        b.span_point = q;
        t.mandatory_delta[q] += static_cast<std::int64_t>(t.buffer_room[x]);
        b.written = e.access == Access::ReadWrite;
        if (b.pending) {
          const auto idx = static_cast<std::uint32_t>(t.first.size());
          t.first.push_back(b.prev_first);
          t.last.push_back(q - 1);  // kNone (wrapped) when q == 0, and then first == 0
          t.bytes.push_back(t.buffer_bytes[x]);
          t.room.push_back(t.buffer_room[x]);
          t.epoch.push_back(b.epoch);
          t.buffer.push_back(x);
          t.begin_event.push_back(b.prev_begin);
          t.end_event.push_back(i);
          t.point_incoming[q] = idx;
          if (b.epoch != kNone) ++t.epoch_intervals[b.epoch];
          b.pending = false;
        } else {
          t.compulsory_fetch_bytes += t.buffer_bytes[x];
        }
        break;
      }
      case EventKind::Unpin: {
        const std::uint32_t x = known(e.buffer);
        if (x == kNone) break;
        BufferState& b = st[x];
        if (!is_above(boundary, e.tier)) {
          if (b.below_pins == 0) ++t.stray_unpins;
          else --b.below_pins;
          break;
        }
        if (b.above_pins == 0) {
          ++t.stray_unpins;
          break;
        }
        if (--b.above_pins > 0) break;
        end_span(x);
        if (b.written) {
          // A new dirty epoch: the bytes above differ from any copy below.
          b.epoch = static_cast<std::uint32_t>(t.epoch_bytes.size());
          t.epoch_bytes.push_back(t.buffer_bytes[x]);
          t.epoch_intervals.push_back(0);
        }
        b.written = false;
        b.pending = true;
        b.prev_first = points_now();
        b.prev_begin = i;
        break;
      }
      case EventKind::Free: {
        const std::uint32_t x = known(e.buffer);
        if (x == kNone) break;
        // A freed buffer leaves for free, dirty or not: its bytes are dead.
        if (st[x].above_pins > 0) end_span(x);
        st[x].above_pins = 0;
        st[x].pending = false;
        st[x].epoch = kNone;
        live.erase(e.buffer);
        break;
      }
      case EventKind::Hint:
      case EventKind::Prefetch:
      case EventKind::Evict:
      case EventKind::Marker:
        // A policy's hints and the program's explicit moves: what a
        // schedule may do, not what it must (docs/bound.md).
        break;
    }
  }
  // Spans still open at the end of the log end with it (end_span's -bytes
  // lands in the last slot, after every point).

  std::uint64_t size = 0;
  bool equal = true;
  for (std::size_t x = 0; x < st.size(); ++x) {
    if (!st[x].touched) continue;
    if (size == 0) size = t.buffer_bytes[x];
    else if (t.buffer_bytes[x] != size) equal = false;
  }
  t.equal_size = equal ? size : 0;
  t.equal_room = equal && size != 0 ? room_of(size) : 0;
  return t;
}

ScheduleCost schedule_cost(const IntervalTrace& t, std::span<const std::uint8_t> kept) {
  if (kept.size() != t.intervals()) {
    throw std::invalid_argument("schedule_cost: " + std::to_string(kept.size()) + " choices for " +
                                std::to_string(t.intervals()) + " intervals");
  }
  ScheduleCost c;
  c.fetch_bytes = t.compulsory_fetch_bytes;
  c.writeback_bytes = t.compulsory_writeback_bytes;
  std::vector<std::uint8_t> epoch_broken(t.epoch_bytes.size(), 0);
  for (std::size_t i = 0; i < kept.size(); ++i) {
    if (kept[i]) continue;
    c.fetch_bytes += t.bytes[i];
    if (t.epoch[i] != kNone) epoch_broken[t.epoch[i]] = 1;
  }
  for (std::size_t e = 0; e < epoch_broken.size(); ++e) {
    if (epoch_broken[e]) c.writeback_bytes += t.epoch_bytes[e];
  }
  return c;
}

PeakPinned peak_pinned(const IntervalTrace& t) {
  PeakPinned peak;
  std::int64_t m = 0;
  for (std::uint32_t p = 0; p < t.points(); ++p) {
    m += t.mandatory_delta[p];
    if (peak.point == kNone || static_cast<std::uint64_t>(m) > peak.bytes) {
      peak.bytes = static_cast<std::uint64_t>(m);
      peak.point = p;
    }
  }
  return peak;
}

std::vector<std::uint8_t> belady_min_schedule(const IntervalTrace& t, std::uint64_t capacity) {
  const std::size_t m = t.intervals();
  const std::size_t n = t.points();
  // Intervals by first point (counting sort): they join the resident set
  // as the sweep reaches them.
  std::vector<std::uint32_t> start(n + 2, 0), by_first(m);
  for (std::size_t i = 0; i < m; ++i) ++start[t.first[i] + 1];
  for (std::size_t p = 0; p + 1 < start.size(); ++p) start[p + 1] += start[p];
  {
    std::vector<std::uint32_t> fill(start.begin(), start.end() - 1);
    for (std::size_t i = 0; i < m; ++i) by_first[fill[t.first[i]]++] = static_cast<std::uint32_t>(i);
  }
  std::vector<std::uint8_t> kept(m, 0), resident(m, 0);
  // Max-heap of (next access point, interval); entries of intervals that
  // left the resident set are skipped when they surface.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> heap;
  heap.reserve(m);
  std::uint64_t unpinned = 0;  // room of the resident intervals
  std::int64_t pinned_bytes = 0;
  for (std::uint32_t p = 0; p < n; ++p) {
    pinned_bytes += t.mandatory_delta[p];
    for (std::uint32_t k = start[p]; k < start[p + 1]; ++k) {
      const std::uint32_t i = by_first[k];
      resident[i] = 1;
      unpinned += t.room[i];
      heap.emplace_back(t.last[i] + 1, i);  // the point of its next access
      std::push_heap(heap.begin(), heap.end());
    }
    if (const std::uint32_t in = t.point_incoming[p]; in != kNone && resident[in]) {
      resident[in] = 0;  // found resident: the span pins it (counted in pinned_bytes)
      kept[in] = 1;
      unpinned -= t.room[in];
    }
    const auto pinned = static_cast<std::uint64_t>(pinned_bytes);
    while (unpinned > 0 && pinned + unpinned > capacity) {
      std::pop_heap(heap.begin(), heap.end());
      const std::uint32_t victim = heap.back().second;
      heap.pop_back();
      if (!resident[victim]) continue;
      resident[victim] = 0;
      unpinned -= t.room[victim];
    }
  }
  // Intervals that cover no point were kept at their end point above; any
  // interval still resident here ends after the last point (none do).
  return kept;
}

}  // namespace spillway::offline
