// tests/bound_test.cpp — the offline bound (src/offline/bound.hpp) against
// references written here from the model's definition (docs/bound.md), not
// from the library's intervals: an exhaustive search over every eviction
// choice on tiny traces, LRU, and a replay of the upper bound's schedule
// event by event that checks the capacity and recomputes the cost.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "src/offline/bound.hpp"

#if defined(SPILLWAY_TEST_TOOLS)
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tools/bound_cmd.hpp"
#endif
#include "src/offline/max_segment_tree.hpp"
#include "src/record/access_log.hpp"

namespace spillway::offline {
namespace {

using record::AccessLog;
using record::Event;
using record::EventKind;

constexpr std::uint64_t kUnit = 4096;

// Builds an AccessLog in memory, one event per call.
struct LogBuilder {
  AccessLog log;
  void add(EventKind k, std::uint64_t id, Tier tier = Tier::Device, Access a = Access::Read, std::uint64_t v = 0) {
    log.events.push_back(
        Event{.kind = k, .tier = tier, .access = a, .time_ns = log.events.size(), .buffer = id, .value = v});
  }
  void alloc(std::uint64_t id, std::uint64_t bytes, Tier preferred = Tier::Device) {
    add(EventKind::Allocate, id, preferred, Access::Read, bytes);
  }
  void pin(std::uint64_t id, Tier t = Tier::Device, Access a = Access::Read) { add(EventKind::Pin, id, t, a); }
  void unpin(std::uint64_t id, Tier t = Tier::Device, Access a = Access::Read) { add(EventKind::Unpin, id, t, a); }
  void access(std::uint64_t id, Tier t = Tier::Device, Access a = Access::Read) {
    pin(id, t, a);
    unpin(id, t, a);
  }
  void free(std::uint64_t id) { add(EventKind::Free, id); }
  void marker() { add(EventKind::Marker, 0); }
};

bool above(Boundary b, Tier t) { return b == Boundary::Device ? t == Tier::Device : t != Tier::Disk; }

// What the references need to know about the log, computed straight from
// the events: each buffer's size and the events where it is pinned.
struct LogFacts {
  std::map<std::uint64_t, std::uint64_t> bytes;
  std::map<std::uint64_t, std::vector<std::size_t>> pins;  // any tier
  explicit LogFacts(const AccessLog& log) {
    for (std::size_t i = 0; i < log.events.size(); ++i) {
      const Event& e = log.events[i];
      if (e.kind == EventKind::Allocate) bytes[e.buffer] = e.value;
      if (e.kind == EventKind::Pin) pins[e.buffer].push_back(i);
    }
  }
  // Is the buffer pinned (on any tier) at or after event t? Evicting dirty
  // bytes that nobody reads again costs nothing in the model.
  bool needed_from(std::uint64_t id, std::size_t t) const {
    auto it = pins.find(id);
    return it != pins.end() && !it->second.empty() && it->second.back() >= t;
  }
};

struct Cost {
  std::uint64_t fetch = 0, writeback = 0;
  std::uint64_t total() const { return fetch + writeback; }
};

// The optimum of the model by exhaustive search: before every event any
// subset of the unpinned resident buffers may be evicted; an allocation
// above may be placed above or below; the capacity must hold after every
// event. States: (resident set, dirty set). nullopt: no schedule fits.
std::optional<std::uint64_t> brute_force_optimum(const AccessLog& log, Boundary b, std::uint64_t capacity) {
  const LogFacts facts(log);
  std::map<std::uint64_t, int> index;
  std::vector<std::uint64_t> size, ids;
  for (const auto& [id, bytes] : facts.bytes) {
    index[id] = static_cast<int>(size.size());
    size.push_back(bytes);
    ids.push_back(id);
  }
  const int n = static_cast<int>(size.size());
  if (n > 8) throw std::invalid_argument("brute force: too many buffers");
  constexpr std::uint64_t kInf = ~std::uint64_t{0};
  const int states = 1 << n;
  auto idx = [states](int res, int dirty) { return res * states + dirty; };
  std::vector<std::uint64_t> cost(static_cast<std::size_t>(states * states), kInf), next(cost.size());
  cost[idx(0, 0)] = 0;
  std::vector<int> pins_above(static_cast<std::size_t>(n), 0);
  for (std::size_t t = 0; t < log.events.size(); ++t) {
    int pinned = 0;
    for (int x = 0; x < n; ++x) {
      if (pins_above[static_cast<std::size_t>(x)] > 0) pinned |= 1 << x;
    }
    // Evictions of any subset of the unpinned resident buffers.
    std::fill(next.begin(), next.end(), kInf);
    for (int res = 0; res < states; ++res) {
      for (int dirty = res;; dirty = (dirty - 1) & res) {
        const std::uint64_t c = cost[static_cast<std::size_t>(idx(res, dirty))];
        if (c != kInf) {
          const int free_to_go = res & ~pinned;
          for (int s = free_to_go;; s = (s - 1) & free_to_go) {
            std::uint64_t extra = 0;
            for (int x = 0; x < n; ++x) {
              if ((s & (1 << x)) && (dirty & (1 << x))) {
                if (facts.needed_from(ids[static_cast<std::size_t>(x)], t)) extra += size[static_cast<std::size_t>(x)];
              }
            }
            auto& slot = next[static_cast<std::size_t>(idx(res & ~s, dirty & ~s))];
            slot = std::min(slot, c + extra);
            if (s == 0) break;
          }
        }
        if (dirty == 0) break;
      }
    }
    cost.swap(next);
    // The event.
    const Event& e = log.events[t];
    std::fill(next.begin(), next.end(), kInf);
    const int x = index.count(e.buffer) ? index[e.buffer] : -1;
    const int bit = x >= 0 ? 1 << x : 0;
    for (int res = 0; res < states; ++res) {
      for (int dirty = res;; dirty = (dirty - 1) & res) {
        const std::uint64_t c = cost[static_cast<std::size_t>(idx(res, dirty))];
        auto put = [&](int r, int d, std::uint64_t cc) {
          std::uint64_t used = 0;
          for (int y = 0; y < n; ++y) {
            if (r & (1 << y)) used += size[static_cast<std::size_t>(y)];
          }
          if (used > capacity) return;
          auto& slot = next[static_cast<std::size_t>(idx(r, d))];
          slot = std::min(slot, cc);
        };
        if (c != kInf) {
          if (x < 0) {
            put(res, dirty, c);
          } else {
            const auto xs = static_cast<std::size_t>(x);
            switch (e.kind) {
              case EventKind::Allocate:
                put(res & ~bit, dirty & ~bit, c);                // created below
                if (above(b, e.tier)) put(res | bit, dirty & ~bit, c);  // created above, clean
                break;
              case EventKind::Pin:
                if (above(b, e.tier)) {
                  const bool span_start = pins_above[xs] == 0;
                  const std::uint64_t fetch = span_start && !(res & bit) ? size[xs] : 0;
                  const int d = e.access == Access::ReadWrite ? (dirty | bit) : dirty;
                  put(res | bit, d, c + fetch);
                } else if (pins_above[xs] == 0) {
                  // Pinned below: it must leave; dirty bytes go down (they are read now).
                  put(res & ~bit, dirty & ~bit, c + ((dirty & bit) ? size[xs] : 0));
                } else {
                  put(res, dirty, c);
                }
                break;
              case EventKind::Free:
                put(res & ~bit, dirty & ~bit, c);
                break;
              default:
                put(res, dirty, c);
                break;
            }
          }
        }
        if (dirty == 0) break;
      }
    }
    cost.swap(next);
    if (x >= 0) {
      const auto xs = static_cast<std::size_t>(x);
      if (e.kind == EventKind::Pin && above(b, e.tier)) ++pins_above[xs];
      if (e.kind == EventKind::Unpin && above(b, e.tier) && pins_above[xs] > 0) --pins_above[xs];
      if (e.kind == EventKind::Free) pins_above[xs] = 0;
    }
  }
  const std::uint64_t best = *std::min_element(cost.begin(), cost.end());
  if (best == kInf) return std::nullopt;
  return best;
}

// LRU in the same model: keeps everything it can, evicts the least recently
// used unpinned buffer when an access or an allocation needs room; an
// allocation that cannot get room is placed below. nullopt: a pin found no
// room (infeasible).
std::optional<Cost> simulate_lru(const AccessLog& log, Boundary b, std::uint64_t capacity) {
  const LogFacts facts(log);
  struct State {
    bool resident = false, dirty = false;
    int pins = 0;
    std::size_t last_use = 0;
  };
  std::map<std::uint64_t, State> st;
  std::uint64_t used = 0;
  Cost cost;
  auto evict = [&](std::uint64_t id, std::size_t t) {
    State& s = st[id];
    if (s.dirty && facts.needed_from(id, t)) cost.writeback += facts.bytes.at(id);
    s.resident = s.dirty = false;
    used -= facts.bytes.at(id);
  };
  auto make_room = [&](std::uint64_t bytes, std::size_t t) {
    while (used + bytes > capacity) {
      std::uint64_t victim = 0;
      bool found = false;
      std::size_t oldest = 0;
      for (auto& [id, s] : st) {
        if (s.resident && s.pins == 0 && (!found || s.last_use < oldest)) {
          victim = id;
          oldest = s.last_use;
          found = true;
        }
      }
      if (!found) return false;
      evict(victim, t);
    }
    return true;
  };
  for (std::size_t t = 0; t < log.events.size(); ++t) {
    const Event& e = log.events[t];
    if (!facts.bytes.count(e.buffer)) continue;
    const std::uint64_t bytes = facts.bytes.at(e.buffer);
    State& s = st[e.buffer];
    switch (e.kind) {
      case EventKind::Allocate:
        if (above(b, e.tier) && make_room(bytes, t)) {
          s.resident = true;
          used += bytes;
          s.last_use = t;
        }
        break;
      case EventKind::Pin:
        if (above(b, e.tier)) {
          if (s.pins++ == 0 && !s.resident) {
            if (!make_room(bytes, t)) return std::nullopt;
            s.resident = true;
            used += bytes;
            cost.fetch += bytes;
          }
          if (e.access == Access::ReadWrite) s.dirty = true;
          s.last_use = t;
        } else if (s.pins == 0 && s.resident) {
          evict(e.buffer, t);
        }
        break;
      case EventKind::Unpin:
        if (above(b, e.tier) && s.pins > 0) {
          --s.pins;
          s.last_use = t;
        }
        break;
      case EventKind::Free:
        if (s.resident) used -= bytes;
        s = State{};
        break;
      default:
        break;
    }
  }
  return cost;
}

// Replays a schedule (the intervals kept) against the log event by event:
// the capacity must hold after every event, a kept interval must really find
// its buffer resident at its end, and the bytes moved are recomputed.
struct Replay {
  bool ok = true;
  std::string why;
  Cost cost;
};
Replay replay_schedule(const AccessLog& log, Boundary b, std::uint64_t capacity,
                       const std::vector<ScheduledInterval>& schedule) {
  const LogFacts facts(log);
  std::map<std::pair<std::uint64_t, std::uint32_t>, bool> kept_from;  // (buffer, begin event)
  std::map<std::pair<std::uint64_t, std::uint32_t>, bool> kept_until;  // (buffer, end event)
  for (const auto& s : schedule) {
    kept_from[{s.buffer, s.begin_event}] = s.kept;
    kept_until[{s.buffer, s.end_event}] = s.kept;
  }
  struct State {
    bool resident = false, dirty = false;
    int pins = 0;
  };
  std::map<std::uint64_t, State> st;
  std::uint64_t used = 0;
  Replay r;
  auto fail = [&](std::size_t t, const std::string& what) {
    if (r.ok) r.why = "event " + std::to_string(t) + ": " + what;
    r.ok = false;
  };
  auto leave = [&](std::uint64_t id, std::size_t t) {
    State& s = st[id];
    if (!s.resident) return;
    if (s.dirty && facts.needed_from(id, t)) r.cost.writeback += facts.bytes.at(id);
    s.resident = s.dirty = false;
    used -= facts.bytes.at(id);
  };
  for (std::size_t t = 0; t < log.events.size(); ++t) {
    const Event& e = log.events[t];
    if (!facts.bytes.count(e.buffer)) continue;
    const std::uint64_t bytes = facts.bytes.at(e.buffer);
    State& s = st[e.buffer];
    const auto key = std::make_pair(e.buffer, static_cast<std::uint32_t>(t));
    switch (e.kind) {
      case EventKind::Allocate:
        if (above(b, e.tier) && kept_from.count(key) && kept_from[key]) {
          s.resident = true;
          used += bytes;
        }
        break;
      case EventKind::Pin:
        if (above(b, e.tier)) {
          if (s.pins++ == 0) {
            const bool kept = kept_until.count(key) && kept_until[key];
            if (kept && !s.resident) fail(t, "a kept interval ends with its buffer not resident");
            if (!s.resident) {
              s.resident = true;
              used += bytes;
              r.cost.fetch += bytes;
            }
          }
          if (e.access == Access::ReadWrite) s.dirty = true;
        } else if (s.pins == 0) {
          leave(e.buffer, t);
        }
        break;
      case EventKind::Unpin:
        if (above(b, e.tier) && s.pins > 0 && --s.pins == 0) {
          if (!(kept_from.count(key) && kept_from[key])) leave(e.buffer, t);
        }
        break;
      case EventKind::Free:
        if (s.resident) used -= bytes;
        s = State{};
        break;
      default:
        break;
    }
    if (used > capacity) fail(t, std::to_string(used) + " bytes above the boundary, capacity " + std::to_string(capacity));
  }
  return r;
}

struct TraceShape {
  int buffers = 5;
  int accesses = 14;
  bool equal_sizes = true;
  double write_p = 0;       // a pin is ReadWrite
  double host_pin_p = 0.2;  // a pin is on the host tier
  double overlap_p = 0.2;   // two buffers pinned at once
  double nested_p = 0.1;    // the same buffer pinned twice
  double free_p = 0.05;     // a buffer freed after an access
};

AccessLog random_log(std::mt19937_64& rng, const TraceShape& shape) {
  LogBuilder lb;
  auto u = [&rng] { return std::uniform_real_distribution<double>(0, 1)(rng); };
  std::vector<int> state(static_cast<std::size_t>(shape.buffers), 0);  // 0 new, 1 live, 2 freed
  auto id_of = [](int x) { return static_cast<std::uint64_t>(100 + x); };
  auto pick = [&]() -> int {
    std::vector<int> c;
    for (int x = 0; x < shape.buffers; ++x) {
      if (state[static_cast<std::size_t>(x)] != 2) c.push_back(x);
    }
    if (c.empty()) return -1;
    return c[std::uniform_int_distribution<std::size_t>(0, c.size() - 1)(rng)];
  };
  auto ensure = [&](int x) {
    if (state[static_cast<std::size_t>(x)] == 0) {
      const std::uint64_t size = shape.equal_sizes ? kUnit : kUnit * std::uniform_int_distribution<std::uint64_t>(1, 4)(rng);
      lb.alloc(id_of(x), size, u() < 0.7 ? Tier::Device : Tier::Host);
      state[static_cast<std::size_t>(x)] = 1;
    }
  };
  auto tier = [&] { return u() < shape.host_pin_p ? Tier::Host : Tier::Device; };
  auto access = [&] { return u() < shape.write_p ? Access::ReadWrite : Access::Read; };
  for (int k = 0; k < shape.accesses; ++k) {
    const int x = pick();
    if (x < 0) break;
    ensure(x);
    const Tier tx = tier();
    const Access ax = access();
    if (u() < shape.overlap_p) {
      const int y = pick();
      if (y >= 0 && y != x) {
        ensure(y);
        const Tier ty = tier();
        const Access ay = access();
        lb.pin(id_of(x), tx, ax);
        lb.pin(id_of(y), ty, ay);
        lb.unpin(id_of(x), tx, ax);
        lb.unpin(id_of(y), ty, ay);
        ++k;
        continue;
      }
    }
    lb.pin(id_of(x), tx, ax);
    if (u() < shape.nested_p) lb.access(id_of(x), tx, access());
    lb.unpin(id_of(x), tx, ax);
    if (u() < 0.1) lb.marker();
    if (u() < shape.free_p) {
      lb.free(id_of(x));
      state[static_cast<std::size_t>(x)] = 2;
    }
  }
  return lb.log;
}

// A capacity between the pinned peak (sometimes below it) and everything.
std::uint64_t random_capacity(std::mt19937_64& rng, const BoundaryModel& model) {
  const std::uint64_t lo = model.min_feasible_capacity();
  const std::uint64_t hi = std::max(model.working_set_bytes(), lo) + kUnit;
  const std::uint64_t units = std::uniform_int_distribution<std::uint64_t>(lo / kUnit == 0 ? 0 : lo / kUnit - 1, hi / kUnit)(rng);
  return units * kUnit;
}

TEST(MaxSegmentTree, MatchesAPlainArray) {
  std::mt19937_64 rng(7);
  for (std::size_t n : {1u, 2u, 3u, 5u, 8u, 13u, 64u, 100u}) {
    std::vector<std::int64_t> plain(n);
    for (auto& v : plain) v = std::uniform_int_distribution<std::int64_t>(-50, 50)(rng);
    MaxSegmentTree tree(plain);
    for (int k = 0; k < 2000; ++k) {
      std::size_t l = std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
      std::size_t r = std::uniform_int_distribution<std::size_t>(l + 1, n)(rng);
      if (k % 2 == 0) {
        const std::int64_t d = std::uniform_int_distribution<std::int64_t>(-20, 20)(rng);
        tree.add(l, r, d);
        for (std::size_t i = l; i < r; ++i) plain[i] += d;
      } else {
        ASSERT_EQ(tree.max(l, r), *std::max_element(plain.begin() + static_cast<std::ptrdiff_t>(l),
                                                    plain.begin() + static_cast<std::ptrdiff_t>(r)))
            << "n=" << n << " [" << l << "," << r << ")";
      }
    }
  }
}

// One brute-force case: a random log, a boundary and a capacity, the
// exhaustive optimum, and the bound with its schedule.
struct BruteCase {
  int trial = 0;
  Boundary boundary = Boundary::Device;
  std::uint64_t capacity = 0;
  std::uint64_t optimum = 0;
  const BoundaryModel* model = nullptr;
  BoundaryBound bound;  // evaluated with its schedule
  std::string where() const {
    return "trial " + std::to_string(trial) + " " + to_string(boundary) + " cap " + std::to_string(capacity);
  }
};

// 300 random logs of `shape`, both boundaries each: checks that the bound
// calls a budget infeasible exactly when no schedule exists and that the
// upper bound's schedule replays feasible at its cost, and hands every
// feasible case to `check`. Returns how many there were.
template <class Check>
int for_each_brute_force_case(std::uint64_t seed, const TraceShape& shape, Check check) {
  std::mt19937_64 rng(seed);
  int compared = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const AccessLog log = random_log(rng, shape);
    for (Boundary b : {Boundary::Device, Boundary::Memory}) {
      const BoundaryModel model(log, b);
      const std::uint64_t cap = random_capacity(rng, model);
      const auto opt = brute_force_optimum(log, b, cap);
      BruteCase c{trial, b, cap, opt.value_or(0), &model, model.evaluate(cap, true)};
      EXPECT_EQ(c.bound.feasible, opt.has_value()) << c.where();
      if (!opt || !c.bound.feasible) continue;
      ++compared;
      check(c);
      const Replay replay = replay_schedule(log, b, cap, c.bound.schedule);
      EXPECT_TRUE(replay.ok) << c.where() << ": " << replay.why;
      if (!replay.ok) continue;
      EXPECT_EQ(replay.cost.total(), c.bound.upper_bound_bytes) << c.where();
      EXPECT_EQ(replay.cost.fetch, c.bound.upper_fetch_bytes) << c.where();
      EXPECT_EQ(replay.cost.writeback, c.bound.upper_writeback_bytes) << c.where();
    }
  }
  return compared;
}

// Equal sizes, reads only: MIN is the optimum and the bound says so; the
// PFOO-style bounds alone bracket it.
TEST(Bound, EqualSizeReadOnlyEqualsBruteForce) {
  TraceShape shape;
  shape.buffers = 6;
  shape.accesses = 16;
  int flow_solved = 0;
  const int compared = for_each_brute_force_case(11, shape, [&](const BruteCase& c) {
    const BoundaryBound& r = c.bound;
    const std::uint64_t opt = c.optimum;
    EXPECT_TRUE(r.exact) << c.where();
    ASSERT_TRUE(r.min_bytes.has_value()) << c.where();
    EXPECT_EQ(*r.min_bytes, opt) << c.where();
    EXPECT_EQ(r.lower_bound_bytes, opt) << c.where();
    EXPECT_EQ(r.upper_bound_bytes, opt) << c.where();
    const BoundaryBound plain = c.model->evaluate(c.capacity, false, /*equal_size_min=*/false);
    EXPECT_LE(plain.lower_bound_bytes, opt) << c.where();
    EXPECT_GE(plain.upper_bound_bytes, opt) << c.where();
    // Without MIN, the flow bound is solved wherever PFOO-L and PFOO-U
    // differ. One size, no write-back: the relaxation is integral, so it
    // is the optimum.
    if (plain.flow_lower_bytes) {
      ++flow_solved;
      EXPECT_EQ(*plain.flow_lower_bytes, opt) << c.where();
      EXPECT_EQ(plain.lower_bound_bytes, opt) << c.where();
    }
  });
  EXPECT_GT(compared, 400);
  EXPECT_GT(flow_solved, compared / 10);
}

// Variable sizes and writes: lower <= the optimum <= upper, and the bound
// calls a budget infeasible exactly when no schedule exists.
TEST(Bound, VariableSizesWithWritesBracketBruteForce) {
  TraceShape shape;
  shape.buffers = 6;
  shape.accesses = 16;
  shape.equal_sizes = false;
  shape.write_p = 0.4;
  int strict = 0, tighter = 0;
  const int compared = for_each_brute_force_case(12, shape, [&](const BruteCase& c) {
    const BoundaryBound& r = c.bound;
    EXPECT_LE(r.lower_bound_bytes, c.optimum) << c.where();
    EXPECT_GE(r.upper_bound_bytes, c.optimum) << c.where();
    if (r.lower_bound_bytes < r.upper_bound_bytes) ++strict;
    // The flow bound keeps the capacity at every point where PFOO-L sums
    // it over all points: never looser (up to a byte of rounding each).
    // (Solved where PFOO-L is below the upper bound.)
    if (r.flow_lower_bytes) {
      EXPECT_GE(*r.flow_lower_bytes + 2, r.pfoo_lower_bytes) << c.where();
      EXPECT_LE(*r.flow_lower_bytes, c.optimum) << c.where();
      EXPECT_EQ(r.lower_bound_bytes, std::max(*r.flow_lower_bytes, r.pfoo_lower_bytes)) << c.where();
      if (*r.flow_lower_bytes > r.pfoo_lower_bytes + 2) ++tighter;
    } else {
      EXPECT_EQ(r.pfoo_lower_bytes, r.upper_bound_bytes) << c.where();
    }
  });
  EXPECT_GT(compared, 400);
  EXPECT_GT(strict, 0);  // the traces are hard enough for the bounds to differ
  EXPECT_GT(tighter, compared / 10) << "the flow bound should beat PFOO-L often on short traces";
}

// 1,000 larger random traces: the lower bound is below what LRU and MIN
// move, and the upper bound's schedule replays within the capacity.
TEST(Bound, RandomTracesLowerBelowLruAndMinAndScheduleFeasible) {
  std::mt19937_64 rng(13);
  int lru_compared = 0, min_compared = 0;
  for (int trial = 0; trial < 1000; ++trial) {
    TraceShape shape;
    shape.buffers = 12 + trial % 20;
    shape.accesses = 150;
    shape.equal_sizes = trial % 2 == 0;
    shape.write_p = trial % 3 == 0 ? 0.0 : 0.3;
    const AccessLog log = random_log(rng, shape);
    const Boundary b = trial % 4 == 0 ? Boundary::Memory : Boundary::Device;
    const BoundaryModel model(log, b);
    const std::uint64_t cap = random_capacity(rng, model);
    const BoundaryBound r = model.evaluate(cap, true);
    const auto lru = simulate_lru(log, b, cap);
    if (!r.feasible) {
      EXPECT_FALSE(lru.has_value()) << "trial " << trial << ": LRU ran where the pins alone do not fit";
      continue;
    }
    ASSERT_LE(r.lower_bound_bytes, r.upper_bound_bytes) << "trial " << trial;
    EXPECT_GE(r.lower_bound_bytes, r.compulsory_bytes) << "trial " << trial;
    if (lru) {
      ++lru_compared;
      EXPECT_LE(r.lower_bound_bytes, lru->total()) << "trial " << trial << " cap " << cap;
    }
    if (r.min_bytes) {
      ++min_compared;
      EXPECT_LE(r.lower_bound_bytes, *r.min_bytes) << "trial " << trial;
      EXPECT_LE(r.upper_bound_bytes, *r.min_bytes) << "trial " << trial;
    }
    const Replay replay = replay_schedule(log, b, cap, r.schedule);
    ASSERT_TRUE(replay.ok) << "trial " << trial << ": " << replay.why;
    EXPECT_EQ(replay.cost.total(), r.upper_bound_bytes) << "trial " << trial;
  }
  EXPECT_GT(lru_compared, 800);
  EXPECT_GT(min_compared, 400);
}

TEST(Bound, InfeasibleBudgetIsReported) {
  LogBuilder lb;
  lb.alloc(1, 2 * kUnit);
  lb.alloc(2, 2 * kUnit);
  lb.access(1);
  lb.pin(2);  // event 4: both pinned from here
  lb.pin(1);  // event 5
  lb.unpin(1);
  lb.unpin(2);
  BoundOptions o;
  o.device_bytes = 3 * kUnit;
  o.host_bytes = 1 * kUnit;
  const BoundResult r = compute_bounds(lb.log, o);
  EXPECT_FALSE(r.device.feasible);
  EXPECT_EQ(r.device.peak_pinned_bytes, 4 * kUnit);
  EXPECT_EQ(r.device.peak_pinned_event, 5u);
  EXPECT_EQ(r.device.lower_bound_bytes, 0u);
  EXPECT_TRUE(r.memory.feasible);  // device + host = 4 units: it fits
  o.device_bytes = 4 * kUnit;
  EXPECT_TRUE(compute_bounds(lb.log, o).device.feasible);
}

// Eight 16-byte buffers in a loop through 1 KiB: counted as bytes they all
// fit (only the first touches move), but the pool's arenas give each a
// 256-byte block, so only four fit and the loop must fetch.
TEST(Bound, SmallBuffersTakeTheArenasGranularity) {
  LogBuilder lb;
  for (std::uint64_t b = 1; b <= 8; ++b) lb.alloc(b, 16);
  for (int pass = 0; pass < 3; ++pass) {
    for (std::uint64_t b = 1; b <= 8; ++b) lb.access(b);
  }
  BoundOptions o;
  o.device_bytes = 1024;
  o.host_bytes = 1 << 20;
  const BoundResult bytes = compute_bounds(lb.log, o);
  EXPECT_EQ(bytes.device.lower_bound_bytes, 0u);
  o.granularity = kArenaGranularity;
  const BoundResult room = compute_bounds(lb.log, o);
  EXPECT_GT(room.device.lower_bound_bytes, 0u) << "four 256-byte blocks cannot hold eight buffers";
  EXPECT_LE(room.device.lower_bound_bytes, room.device.upper_bound_bytes);
  EXPECT_EQ(options_from(lb.log.options).granularity, kArenaGranularity);
  // Five buffers pinned at once fit 1 KiB as bytes, not as blocks.
  LogBuilder pinned;
  for (std::uint64_t b = 1; b <= 5; ++b) pinned.alloc(b, 16);
  for (std::uint64_t b = 1; b <= 5; ++b) pinned.pin(b);
  EXPECT_TRUE(compute_bounds(pinned.log, BoundOptions{1024, 0}).device.feasible);
  o.host_bytes = 0;
  EXPECT_FALSE(compute_bounds(pinned.log, o).device.feasible);
}

// A buffer pinned across a gap between its uses has no interval there: the
// nested accesses cost nothing, and its bytes take room from the others all
// along. Capacity for two: A (pinned throughout) and one of B, C, which
// alternate, so every access of B and C is a fetch.
TEST(Bound, PinsAreHonoured) {
  LogBuilder lb;
  lb.alloc(1, kUnit, Tier::Host);  // A
  lb.alloc(2, kUnit, Tier::Host);  // B
  lb.alloc(3, kUnit, Tier::Host);  // C
  lb.pin(1);
  for (int k = 0; k < 4; ++k) {
    lb.access(2);
    lb.access(1);  // nested in A's outer pin
    lb.access(3);
  }
  lb.unpin(1);
  BoundOptions o;
  o.device_bytes = 2 * kUnit;
  o.host_bytes = 8 * kUnit;
  o.keep_schedule = true;
  const BoundResult r = compute_bounds(lb.log, o);
  ASSERT_TRUE(r.device.feasible);
  EXPECT_EQ(r.device.spans, 9u);  // A once, B and C four times each
  EXPECT_EQ(r.device.lower_bound_bytes, 9 * kUnit);
  EXPECT_EQ(r.device.upper_bound_bytes, 9 * kUnit);
  // With room for three, only the three first fetches remain.
  o.device_bytes = 3 * kUnit;
  const BoundResult roomy = compute_bounds(lb.log, o);
  EXPECT_EQ(roomy.device.lower_bound_bytes, 3 * kUnit);
  EXPECT_EQ(roomy.device.upper_bound_bytes, 3 * kUnit);
  // And with A's outer pin gone A's accesses compete too (A, B, C in turn,
  // room for two: MIN keeps one of each pair of gaps).
  LogBuilder loose;
  for (std::uint64_t id : {1, 2, 3}) loose.alloc(id, kUnit, Tier::Host);
  for (int k = 0; k < 4; ++k) {
    loose.access(2);
    loose.access(1);
    loose.access(3);
  }
  o.device_bytes = 2 * kUnit;
  const BoundResult lr = compute_bounds(loose.log, o);
  EXPECT_LT(lr.device.upper_bound_bytes, 12 * kUnit);
  EXPECT_EQ(lr.device.spans, 12u);
}

// The dirty-epoch rules on a hand-made trace: a write followed by an
// eviction costs a write-back; a pin on the host (below the device
// boundary) forces the dirty bytes down whatever the schedule; a freed
// buffer's dirty bytes cost nothing.
TEST(Bound, WriteBacksFollowTheEpochs) {
  BoundOptions o;
  o.device_bytes = kUnit;
  o.host_bytes = 8 * kUnit;
  {
    // A written, B written (A must leave, dirty, and is read again), A read.
    LogBuilder lb;
    lb.alloc(1, kUnit);
    lb.alloc(2, kUnit);
    lb.access(1, Tier::Device, Access::ReadWrite);
    lb.access(2, Tier::Device, Access::ReadWrite);
    lb.access(1);
    const BoundResult r = compute_bounds(lb.log, o);
    // A's creation interval kept (free), B created below and fetched, A
    // written back and fetched again.
    EXPECT_EQ(r.device.upper_fetch_bytes, 2 * kUnit);
    EXPECT_EQ(r.device.upper_writeback_bytes, kUnit);
    EXPECT_EQ(r.device.upper_bound_bytes, brute_force_optimum(lb.log, Boundary::Device, kUnit).value());
    EXPECT_FALSE(r.device.exact);  // a write-back a schedule could save
  }
  {
    // Written on the device, then pinned on the host: compulsory.
    LogBuilder lb;
    lb.alloc(1, kUnit);
    lb.access(1, Tier::Device, Access::ReadWrite);
    lb.access(1, Tier::Host);
    lb.access(1, Tier::Device);
    o.device_bytes = 8 * kUnit;
    const BoundResult r = compute_bounds(lb.log, o);
    EXPECT_EQ(r.device.compulsory_bytes, 2 * kUnit);  // down for the host pin, up again
    EXPECT_EQ(r.device.lower_bound_bytes, 2 * kUnit);
    EXPECT_EQ(r.device.upper_bound_bytes, 2 * kUnit);
    EXPECT_EQ(r.memory.upper_bound_bytes, 0u);  // host is above the memory boundary
  }
  {
    // Written and freed under pressure: nothing to write back.
    LogBuilder lb;
    lb.alloc(1, kUnit);
    lb.access(1, Tier::Device, Access::ReadWrite);
    lb.alloc(2, kUnit);
    lb.access(2, Tier::Device, Access::ReadWrite);
    lb.free(1);
    lb.free(2);
    o.device_bytes = kUnit;
    const BoundResult r = compute_bounds(lb.log, o);
    // A leaves dirty for B's creation but is never read again: free. So
    // nothing moves at all.
    EXPECT_EQ(r.device.upper_writeback_bytes, 0u);
    EXPECT_EQ(r.device.upper_bound_bytes, 0u);
    EXPECT_EQ(brute_force_optimum(lb.log, Boundary::Device, kUnit).value(), 0u);
  }
}

TEST(Bound, CurveFallsToTheCompulsoryBytes) {
  std::mt19937_64 rng(21);
  TraceShape shape;
  shape.buffers = 30;
  shape.accesses = 400;
  shape.equal_sizes = false;
  shape.write_p = 0.3;
  const AccessLog log = random_log(rng, shape);
  const BoundaryModel model(log, Boundary::Device);
  const auto caps = curve_capacities(model, 12);
  ASSERT_GE(caps.size(), 2u);
  EXPECT_EQ(caps.front(), model.min_feasible_capacity());
  const auto points = curve(model, caps);
  ASSERT_EQ(points.size(), caps.size());
  for (std::size_t k = 0; k < points.size(); ++k) {
    EXPECT_TRUE(points[k].bound.feasible);
    EXPECT_LE(points[k].bound.lower_bound_bytes, points[k].bound.upper_bound_bytes);
    // More room never raises the lower bound (the knapsack only grows).
    if (k > 0) EXPECT_LE(points[k].bound.lower_bound_bytes, points[k - 1].bound.lower_bound_bytes);
  }
  EXPECT_EQ(points.back().bound.upper_bound_bytes, points.back().bound.compulsory_bytes);
  EXPECT_EQ(points.back().bound.lower_bound_bytes, points.back().bound.compulsory_bytes);
  EXPECT_FALSE(model.evaluate(model.min_feasible_capacity() - 1).feasible);
}

TEST(Bound, UnknownBuffersAndStrayUnpinsAreCountedNotFatal) {
  LogBuilder lb;
  lb.pin(9);
  lb.unpin(9);
  lb.alloc(1, kUnit);
  lb.unpin(1);
  lb.access(1);
  BoundOptions o;
  o.device_bytes = kUnit;
  o.host_bytes = kUnit;
  const BoundResult r = compute_bounds(lb.log, o);
  EXPECT_EQ(r.unknown_buffer_events, 2u);
  EXPECT_EQ(r.stray_unpins, 1u);
  EXPECT_EQ(r.device.upper_bound_bytes, 0u);
}

#if defined(SPILLWAY_TEST_TOOLS)
// `spillway bound` on a log in memory: the JSON names both boundaries with
// their bounds and what the run moved; --curve writes the CSV (and the SVG
// when gnuplot is there).
TEST(BoundCommand, JsonAndCurve) {
  std::mt19937_64 rng(31);
  TraceShape shape;
  shape.buffers = 20;
  shape.accesses = 300;
  shape.write_p = 0.3;
  AccessLog log = random_log(rng, shape);
  log.program = "bound_test";
  log.options.device_bytes = 4 * kUnit;
  log.options.host_bytes = 8 * kUnit;
  record::RecordedTotals totals;
  totals.moved_bytes[0][1] = 10 * kUnit;  // device -> host
  totals.moved_bytes[1][0] = 12 * kUnit;  // host -> device
  totals.moved_bytes[1][2] = 3 * kUnit;   // host -> disk
  log.totals = totals;
  const std::string dir = std::filesystem::temp_directory_path() / ("bound_test." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  tools::BoundArgs args;
  args.log = "memory.log";
  args.json = true;
  args.curve = true;
  args.points = 5;
  args.svg = dir + "/curve.svg";
  std::ostringstream out;
  ASSERT_EQ(tools::report_bounds(log, args, out), 0);
  const auto j = nlohmann::json::parse(out.str());
  const auto& dev = j.at("boundaries").at("device");
  EXPECT_EQ(dev.at("capacity_bytes").get<std::uint64_t>(), 4 * kUnit);
  EXPECT_LE(dev.at("lower_bound_bytes").get<std::uint64_t>(), dev.at("upper_bound_bytes").get<std::uint64_t>());
  // The lower bound is the better of the two that were computed.
  const auto pfoo = dev.at("pfoo_lower_bytes").get<std::uint64_t>();
  const auto& flow = dev.at("flow_lower_bytes");
  EXPECT_EQ(dev.at("lower_bound_bytes").get<std::uint64_t>(),
            flow.is_null() ? pfoo : std::max(pfoo, flow.get<std::uint64_t>()));
  EXPECT_EQ(dev.at("recorded_moved_bytes").get<std::uint64_t>(), 22 * kUnit);
  const auto& mem = j.at("boundaries").at("memory");
  EXPECT_EQ(mem.at("capacity_bytes").get<std::uint64_t>(), 12 * kUnit);
  EXPECT_EQ(mem.at("recorded_moved_bytes").get<std::uint64_t>(), 3 * kUnit);
  ASSERT_GE(j.at("curve").size(), 4u);
  std::ifstream csv(dir + "/curve.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("boundary,device_bytes,host_bytes,capacity_bytes,feasible,lower_bound_bytes", 0), 0u);
  if (j.contains("curve_svg")) {
    std::ifstream svg(dir + "/curve.svg");
    std::stringstream text;
    text << svg.rdbuf();
    EXPECT_NE(text.str().find("<svg"), std::string::npos);
  }
  // The table says how the recorded run compares with the lower bound.
  args.json = false;
  args.curve = false;
  args.svg.clear();
  std::ostringstream table;
  tools::report_bounds(log, args, table);
  EXPECT_NE(table.str().find("x the lower bound"), std::string::npos) << table.str();
  std::filesystem::remove_all(dir);
}
#endif  // SPILLWAY_TEST_TOOLS

}  // namespace
}  // namespace spillway::offline
