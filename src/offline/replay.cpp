// src/offline/replay.cpp — replay(): a recorded access log driven through a
// real Pool, every pin's bytes verified (see replay.hpp).
//
// Two passes. The first (plan_events) walks the log once without a pool:
// it gives every recorded buffer id a slot, checks that the log makes sense
// (every event names a buffer allocated before it and not freed, every
// unpin matches a pin, pins are on memory tiers) and, for the threaded
// replay, notes each event's replay thread and the previous event on the
// same buffer. A damaged or hand-made log fails there, naming the event,
// before any pool exists. The second pass performs the events; with one
// thread in log order, with N threads each in its own program order, an
// event waiting (bounded) for its buffer's previous event when another
// thread ran it.
//
// Note [Replay payloads]
// The log has no bytes, so replay invents them: the word at the start of
// every 4 KiB page of a buffer, and its last word, are a hash of (recorded
// buffer id, version, position). A ReadWrite pin checks the current version
// and then writes the next one; a Read pin checks. Checking one word per
// page (not every byte) keeps a replay of an in-memory log at millions of
// events a second, and still catches what a pool could plausibly get
// wrong: a page not copied, a copy of another buffer, a stale version (a
// clean copy kept after a write), a block handed to two buffers. A buffer
// not yet written has no version to check (allocation gives unspecified
// bytes, as malloc does).
#include "src/offline/replay.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "spillway/pool.hpp"

namespace spillway::offline {

ReplayError::ReplayError(std::uint64_t event_index, std::uint64_t buffer, const std::string& what)
    : std::runtime_error(event_index == kNoEvent
                             ? "spillway replay: " + what
                             : "spillway replay: event " + std::to_string(event_index) + ": " + what),
      event_(event_index),
      buffer_(buffer) {}

EvictionPolicy parse_policy_name(const std::string& name) {
  if (name == "lru" || name == "clock") return EvictionPolicy::Lru;
  if (name == "lookahead") return EvictionPolicy::Lookahead;
  throw std::invalid_argument("replay policy: expected lru, clock or lookahead, got '" + name + "'");
}

const char* policy_display_name(EvictionPolicy p) {
  return p == EvictionPolicy::Lookahead ? "lookahead" : "lru (clock)";
}

PoolOptions replay_pool_options(const record::AccessLog& log, const ReplayOptions& ro) {
  const record::RecordedOptions& rec = log.options;
  PoolOptions o;  // not from_env(): a replay must not depend on the caller's environment
  const std::uint64_t device = ro.device_bytes.value_or(rec.device_bytes);
  o.device.backend = device > 0 ? DeviceBackend::Simulated : DeviceBackend::None;
  o.device.capacity_bytes = static_cast<std::size_t>(device);
  o.host.capacity_bytes = static_cast<std::size_t>(ro.host_bytes.value_or(rec.host_bytes));
  o.host.pinned = false;
  o.disk.enabled = rec.disk_enabled;
  o.disk.capacity_bytes = rec.disk_bytes;
  o.disk.compression = rec.compression;
  o.disk.directory = ro.disk_dir;
  o.policy = ro.policy.value_or(rec.policy);
  o.io_threads = rec.io_threads;
  o.high_watermark = rec.high_watermark;
  o.low_watermark = rec.low_watermark;
  o.deterministic_moves = ro.deterministic.value_or(rec.deterministic_moves);
  o.pressure_wait = ro.pressure_wait;
  o.validate();
  return o;
}

std::string exact_replay_obstacle(const record::AccessLog& log, const ReplayOptions& ro) {
  const record::RecordedOptions& rec = log.options;
  if (!log.totals) return "the log has no footer (no recorded totals)";
  if (log.totals->dropped > 0) return "the recorder dropped events";
  if (!log.totals->stop_reason.empty()) return "the recording stopped early: " + log.totals->stop_reason;
  if (!rec.deterministic_moves) {
    return "the run was not recorded with deterministic_moves: its background moves raced its calls";
  }
  if (!ro.deterministic.value_or(true)) return "the replay turns deterministic_moves off";
  for (const record::Event& e : log.events) {
    if (e.thread != 0) return "the run was multi-threaded (its threads' calls interleaved by timing)";
  }
  if (ro.threads != 1) return "the replay runs on several threads";
  if (ro.device_bytes && *ro.device_bytes != rec.device_bytes) return "the replay changes the device budget";
  if (ro.host_bytes && *ro.host_bytes != rec.host_bytes) return "the replay changes the host budget";
  if (ro.policy && *ro.policy != rec.policy) return "the replay changes the policy";
  if (rec.disk_enabled && rec.disk_bytes != kUnlimited && rec.compression != Compression::None) {
    // Replay's payloads compress unlike the program's (and Adaptive decides
    // by measured speed): under a quota, what fits on disk differs.
    return "a disk quota with compression (replay's payloads compress unlike the program's, so what fits differs)";
  }
  return "";
}

namespace {

using record::Event;
using record::EventKind;

constexpr std::uint32_t kNone = ~std::uint32_t{0};
constexpr std::size_t kPage = 4096;
constexpr std::uint64_t kTailSlot = ~std::uint64_t{0};

std::uint64_t mix64(std::uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t payload_word(std::uint64_t key, std::uint64_t version, std::uint64_t slot) {
  return mix64(key ^ mix64(version * 0x100000001b3ULL + slot));
}

// Calls f(offset, length, slot) for the words replay writes in a buffer of
// n bytes: the first (up to) 8 bytes of every 4 KiB page, and the last 8
// bytes when they do not overlap the last page's word.
template <class F>
void for_each_word(std::size_t n, F&& f) {
  for (std::size_t off = 0; off < n; off += kPage) f(off, std::min<std::size_t>(8, n - off), off / kPage);
  if (n >= 16) {
    const std::size_t last_page = (n - 1) / kPage * kPage;
    if (n - 8 >= last_page + 8) f(n - 8, std::size_t{8}, kTailSlot);
  }
}

std::string tier_str(Tier t) { return std::string(tier_name(t)); }
const char* access_str(Access a) { return a == Access::Read ? "read" : "read-write"; }

// What the first pass learnt about one event.
struct Step {
  std::uint32_t slot = kNone;    // the buffer's slot (kNone for a marker)
  std::uint32_t prev = kNone;    // the previous event on the same slot, in log order
  std::uint32_t thread = 0;      // replay thread
  bool notify = false;           // the next event on this slot runs on another replay thread
};

struct HeldPin {
  Tier tier;
  Access access;
  Pin pin;
};

// One recorded buffer id. Touched by one replay thread at a time: the
// per-buffer sequencing orders every event on it.
struct Slot {
  std::uint64_t id = 0;      // the recorded Buffer::id()
  Buffer buffer;
  std::uint64_t version = 0;  // 0: never written (nothing to check)
  bool free_pending = false;  // freed while pinned: the last unpin frees it (as the pool does)
  std::vector<HeldPin> pins;
};

struct Plan {
  std::vector<Step> steps;
  std::vector<std::uint64_t> slot_ids;
  std::vector<std::vector<std::uint32_t>> by_thread;  // each replay thread's events, in log order
};

// The first pass: slots, validity, sequencing (see the file's comment).
Plan plan_events(const record::AccessLog& log, unsigned threads) {
  if (log.events.size() >= kNone) {
    throw ReplayError(ReplayError::kNoEvent, 0, "the log has " + std::to_string(log.events.size()) +
                                                    " events, more than replay can index");
  }
  struct Seen {
    std::uint32_t slot = kNone;
    bool live = false;
    bool free_pending = false;
    std::uint32_t allocated_at = kNone;
    std::vector<std::pair<Tier, Access>> pins;
    std::uint32_t last = kNone;  // last event on the slot
  };
  Plan plan;
  plan.steps.resize(log.events.size());
  plan.by_thread.resize(threads);
  std::unordered_map<std::uint64_t, Seen> seen;
  seen.reserve(1024);
  for (std::uint32_t i = 0; i < log.events.size(); ++i) {
    const Event& e = log.events[i];
    Step& st = plan.steps[i];
    st.thread = e.thread % threads;
    plan.by_thread[st.thread].push_back(i);
    if (e.kind == EventKind::Marker) continue;
    const auto err = [&](const std::string& what) {
      return ReplayError(i, e.buffer, std::string(record::to_string(e.kind)) + " of buffer " +
                                          std::to_string(e.buffer) + ": " + what);
    };
    if (e.kind < EventKind::Allocate || e.kind > EventKind::Marker) {
      throw ReplayError(i, e.buffer, "unknown event kind " + std::to_string(static_cast<int>(e.kind)));
    }
    auto it = seen.find(e.buffer);
    if (e.kind == EventKind::Allocate) {
      if (it == seen.end()) {
        Seen fresh;
        fresh.slot = static_cast<std::uint32_t>(plan.slot_ids.size());
        it = seen.emplace(e.buffer, std::move(fresh)).first;
        plan.slot_ids.push_back(e.buffer);
      } else if (it->second.live || it->second.free_pending) {
        throw err("the buffer is already live (allocated at event " + std::to_string(it->second.allocated_at) + ")");
      }
      it->second.live = true;
      it->second.allocated_at = i;
    } else if (it == seen.end()) {
      throw err("no event before it allocates this buffer");
    }
    Seen& s = it->second;
    switch (e.kind) {
      case EventKind::Allocate:
        break;
      case EventKind::Free:
        if (!s.live) throw err("the buffer was already freed");
        s.live = false;
        s.free_pending = !s.pins.empty();
        break;
      case EventKind::Pin:
        if (!s.live) throw err("the buffer was freed before it");
        if (e.tier == Tier::Disk) throw err("a pin on the disk tier (pins are on device or host)");
        s.pins.emplace_back(e.tier, e.access);
        break;
      case EventKind::Unpin: {
        auto p = std::find(s.pins.rbegin(), s.pins.rend(), std::pair<Tier, Access>{e.tier, e.access});
        if (p == s.pins.rend()) {
          throw err("no live pin on " + tier_str(e.tier) + " for " + access_str(e.access) +
                    " matches it (" + std::to_string(s.pins.size()) + " other pin(s) live)");
        }
        s.pins.erase(std::next(p).base());
        if (s.pins.empty()) s.free_pending = false;
        break;
      }
      case EventKind::Hint:
        if (!s.live) throw err("the buffer was freed before it");
        break;
      case EventKind::Prefetch:
        if (!s.live) throw err("the buffer was freed before it");
        if (e.tier == Tier::Disk) throw err("a prefetch to the disk tier (prefetch brings bytes up to device or host)");
        break;
      case EventKind::Evict:
        if (!s.live) throw err("the buffer was freed before it");
        if (e.tier == Tier::Device) throw err("an eviction to the device tier (evict moves bytes down to host or disk)");
        break;
      case EventKind::Marker:
        break;
    }
    st.slot = s.slot;
    st.prev = s.last;
    if (s.last != kNone && plan.steps[s.last].thread != st.thread) plan.steps[s.last].notify = true;
    s.last = i;
  }
  return plan;
}

// The second pass's shared state.
class Replayer {
 public:
  Replayer(const record::AccessLog& log, const ReplayOptions& ro, Plan plan, Pool& pool)
      : log_(log), ro_(ro), plan_(std::move(plan)), pool_(pool), slots_(plan_.slot_ids.size()),
        done_(ro.threads > 1 ? log.events.size() : 0) {
    for (std::size_t i = 0; i < slots_.size(); ++i) slots_[i].id = plan_.slot_ids[i];
  }

  struct Counts {
    std::uint64_t markers = 0;
    std::uint64_t verified = 0;
  };

  // Performs replay thread `me`'s events in order; returns early when
  // another thread failed.
  void run(unsigned me, Counts& counts) {
    const bool threaded = ro_.threads > 1;
    for (const std::uint32_t i : plan_.by_thread[me]) {
      const Step& st = plan_.steps[i];
      if (threaded) {
        if (failed_.load(std::memory_order_relaxed)) return;
        if (st.prev != kNone && plan_.steps[st.prev].thread != me && !wait_for(st.prev, i)) return;
      }
      apply(i, counts);
      if (threaded && st.notify) {
        done_[i].store(1, std::memory_order_release);
        std::lock_guard<std::mutex> g(mu_);
        cv_.notify_all();
      }
    }
  }

  // Called by a thread whose run() threw: wakes the others, which stop.
  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> g(mu_);
    if (!error_) error_ = e;
    failed_.store(true, std::memory_order_relaxed);
    cv_.notify_all();
  }
  std::exception_ptr error() {
    std::lock_guard<std::mutex> g(mu_);
    return error_;
  }

  // Releases the pins the log left held and frees the buffers it left live.
  void finish(std::uint64_t* pins_left, std::uint64_t* buffers_left) {
    for (Slot& s : slots_) {
      *pins_left += s.pins.size();
      s.pins.clear();
      if (s.buffer) ++*buffers_left;
      s.buffer.reset();
    }
  }

 private:
  // Waits until event `prev` (another replay thread's) is done.
  bool wait_for(std::uint32_t prev, std::uint32_t i) {
    if (done_[prev].load(std::memory_order_acquire) != 0) return true;
    const auto deadline = std::chrono::steady_clock::now() + ro_.sequencing_timeout;
    std::unique_lock<std::mutex> lk(mu_);
    while (done_[prev].load(std::memory_order_acquire) == 0) {
      if (failed_.load(std::memory_order_relaxed)) return false;
      if (cv_.wait_until(lk, deadline) == std::cv_status::timeout &&
          done_[prev].load(std::memory_order_acquire) == 0 && !failed_.load(std::memory_order_relaxed)) {
        const Event& e = log_.events[i];
        throw ReplayError(i, e.buffer,
                          std::string(record::to_string(e.kind)) + " of buffer " + std::to_string(e.buffer) +
                              " (replay thread " + std::to_string(plan_.steps[i].thread) + ") waited " +
                              std::to_string(ro_.sequencing_timeout.count()) + " ms for event " +
                              std::to_string(prev) + " on the same buffer (replay thread " +
                              std::to_string(plan_.steps[prev].thread) + "), which did not finish");
      }
    }
    return true;
  }

  void apply(std::uint32_t i, Counts& counts) {
    const Event& e = log_.events[i];
    if (e.kind == EventKind::Marker) {
      ++counts.markers;
      return;
    }
    Slot& s = slots_[plan_.steps[i].slot];
    try {
      switch (e.kind) {
        case EventKind::Allocate:
          s.buffer = pool_.allocate(static_cast<std::size_t>(e.value), e.tier, "replay");
          s.version = 0;
          s.free_pending = false;
          break;
        case EventKind::Free:
          // Freed while pinned: the pool frees such a buffer at its last
          // unpin; replay does the same (a Pin must not outlive its Buffer).
          if (s.pins.empty()) {
            s.buffer.reset();
          } else {
            s.free_pending = true;
          }
          break;
        case EventKind::Pin: {
          Pin p = s.buffer.pin(e.tier, e.access);
          if (s.version != 0) {
            verify(i, s, p);
            ++counts.verified;
          }
          if (e.access == Access::ReadWrite) write(s, p);
          if (ro_.after_pin_for_testing && p.data() != nullptr) {
            ro_.after_pin_for_testing(i, s.id, p.data(), p.size());
          }
          s.pins.push_back({e.tier, e.access, std::move(p)});
          break;
        }
        case EventKind::Unpin: {
          auto it = std::find_if(s.pins.rbegin(), s.pins.rend(),
                                 [&](const HeldPin& h) { return h.tier == e.tier && h.access == e.access; });
          if (it == s.pins.rend()) {  // plan_events rules this out; kept for a log changed under us
            throw ReplayError(i, e.buffer, "unpin of buffer " + std::to_string(e.buffer) + " matches no live pin");
          }
          s.pins.erase(std::next(it).base());
          if (s.free_pending && s.pins.empty()) {
            s.buffer.reset();
            s.free_pending = false;
          }
          break;
        }
        case EventKind::Hint:
          s.buffer.hint_next_use(e.value);
          break;
        case EventKind::Prefetch:
          s.buffer.prefetch(e.tier);
          break;
        case EventKind::Evict:
          s.buffer.evict(e.tier);
          break;
        case EventKind::Marker:
          break;
      }
      if (settle_ && (e.kind == EventKind::Allocate || e.kind == EventKind::Pin ||
                      e.kind == EventKind::Prefetch || e.kind == EventKind::Evict)) {
        pool_.quiesce();
      }
    } catch (const ReplayError&) {
      throw;
    } catch (const std::exception& x) {
      throw ReplayError(i, e.buffer, std::string(record::to_string(e.kind)) + " of buffer " +
                                         std::to_string(e.buffer) + " failed: " + x.what());
    }
  }

  static void write(Slot& s, Pin& p) {
    ++s.version;
    auto* b = static_cast<unsigned char*>(p.data());
    for_each_word(p.size(), [&](std::size_t off, std::size_t len, std::uint64_t slot) {
      const std::uint64_t w = payload_word(s.id, s.version, slot);
      std::memcpy(b + off, &w, len);
    });
  }

  void verify(std::uint32_t i, const Slot& s, const Pin& p) const {
    const auto* b = static_cast<const unsigned char*>(p.data());
    for_each_word(p.size(), [&](std::size_t off, std::size_t len, std::uint64_t slot) {
      const std::uint64_t w = payload_word(s.id, s.version, slot);
      if (std::memcmp(b + off, &w, len) == 0) return;
      std::size_t k = 0;
      while (b[off + k] == reinterpret_cast<const unsigned char*>(&w)[k]) ++k;
      char got[24], want[24];
      std::uint64_t g = 0;
      std::memcpy(&g, b + off, len);
      std::snprintf(got, sizeof got, "0x%016llx", static_cast<unsigned long long>(g));
      std::snprintf(want, sizeof want, "0x%016llx", static_cast<unsigned long long>(w));
      throw ReplayError(i, s.id,
                        "buffer " + std::to_string(s.id) + " pinned on " + tier_str(p.tier()) +
                            ": byte offset " + std::to_string(off + k) + " does not hold version " +
                            std::to_string(s.version) + " of its payload (word at offset " +
                            std::to_string(off) + " is " + got + ", expected " + want +
                            "): the pool lost or mixed up this buffer's bytes");
    });
  }

  const record::AccessLog& log_;
  const ReplayOptions& ro_;
  Plan plan_;
  Pool& pool_;
  const bool settle_ = ro_.settle && ro_.threads == 1;
  std::vector<Slot> slots_;
  std::vector<std::atomic<std::uint8_t>> done_;  // threaded replay: event i has been performed
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

}  // namespace

ReplayResult replay(const record::AccessLog& log, const ReplayOptions& ro) {
  if (ro.threads == 0 || ro.threads > 1024) {
    throw std::invalid_argument("replay threads: expected 1 to 1024, got " + std::to_string(ro.threads));
  }
  Plan plan = plan_events(log, ro.threads);
  const PoolOptions po = replay_pool_options(log, ro);
  ReplayResult out;
  out.threads = ro.threads;
  out.policy = po.policy;
  out.events = log.events.size();
  out.exact_obstacle = exact_replay_obstacle(log, ro);
  out.exact_expected = out.exact_obstacle.empty();
  Pool pool(po);
  // The pool's own options: SPILLWAY_DETERMINISTIC may have turned it on.
  out.deterministic = pool.options().deterministic_moves;
  Replayer rp(log, ro, std::move(plan), pool);
  std::vector<Replayer::Counts> counts(ro.threads);
  const auto t0 = std::chrono::steady_clock::now();
  if (ro.threads == 1) {
    try {
      rp.run(0, counts[0]);
    } catch (...) {
      rp.fail(std::current_exception());
    }
  } else {
    std::vector<std::thread> workers;
    workers.reserve(ro.threads);
    for (unsigned t = 0; t < ro.threads; ++t) {
      workers.emplace_back([&rp, &counts, t] {
        try {
          rp.run(t, counts[t]);
        } catch (...) {
          rp.fail(std::current_exception());
        }
      });
    }
    for (auto& w : workers) w.join();
  }
  // Pins and buffers go before the pool, error or not.
  rp.finish(&out.pins_left, &out.buffers_left);
  if (std::exception_ptr e = rp.error()) std::rethrow_exception(e);
  pool.quiesce();  // prefetches still in flight count in the totals
  out.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.stats = pool.stats();
  for (const auto& c : counts) {
    out.markers += c.markers;
    out.pins_verified += c.verified;
  }
  for (int from = 0; from < kTierCount; ++from) {
    for (int to = 0; to < kTierCount; ++to) {
      const MoveStats& m = out.stats.moves[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)];
      out.moved_bytes[from][to] = m.bytes;
      out.moves[from][to] = m.moves;
      out.moved_total += m.bytes;
      if (from > to) out.fetches += m.moves;
      if (from < to) out.write_backs += m.moves;
    }
  }
  out.stall_seconds = out.stats.stall_seconds;
  out.recorded = log.totals;
  if (log.totals) {
    out.matches_recorded = true;
    for (int from = 0; from < kTierCount; ++from) {
      for (int to = 0; to < kTierCount; ++to) {
        if (log.totals->moved_bytes[from][to] != out.moved_bytes[from][to]) out.matches_recorded = false;
      }
    }
  }
  return out;
}

}  // namespace spillway::offline
