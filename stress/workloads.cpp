// stress/workloads.cpp — what a stress worker does: the checked operations
// (pin, evict, prefetch, reallocate) and the six workloads built from them.
// See driver.hpp for the locking rules and stress_run.hpp for the contract
// each check enforces.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <thread>

#include "driver.hpp"
#include "pattern.hpp"
#include "tiers/disk/spill_store.hpp"

namespace spillway::stress::detail {

namespace {

std::string describe(const Slot& s, Tier where, bool read_write) {
  return "buffer " + std::to_string(s.buf.id()) + " (" + std::to_string(s.size) + " bytes, version " +
         std::to_string(s.version) + ") pinned " + (read_write ? "ReadWrite" : "Read") + " on " +
         std::string(tier_name(where));
}

}  // namespace

Worker::Worker(Driver& d, unsigned index)
    : rng(d.cfg.seed + index), d_(d), index_(index) {
  activity_ = d_.watchdog->register_thread("worker-" + std::to_string(index));
}

Tier Worker::random_memory_tier() {
  const bool device = d_.pool->tier_enabled(Tier::Device);
  const bool host = d_.pool->tier_enabled(Tier::Host);
  if (device && host) return rng() % 2 ? Tier::Device : Tier::Host;
  return device ? Tier::Device : Tier::Host;
}

std::size_t Worker::random_size() {
  const std::size_t span = d_.cfg.size_max - d_.cfg.size_min;
  return d_.cfg.size_min + (span == 0 ? 0 : static_cast<std::size_t>(rng() % (span + 1)));
}

Slot& Worker::random_slot() { return *d_.slots[rng() % d_.slots.size()]; }

Slot& Worker::zipf_slot() {
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  const auto it = std::lower_bound(d_.zipf_cdf.begin(), d_.zipf_cdf.end(), u);
  const std::size_t rank = std::min<std::size_t>(static_cast<std::size_t>(it - d_.zipf_cdf.begin()),
                                                 d_.slots.size() - 1);
  return *d_.slots[d_.zipf_perm[rank]];
}

// Every pool call (pin, evict, prefetch, allocate, free) ends here: one operation.
void Worker::note_op_time(Clock::time_point start) {
  d_.ops.fetch_add(1, std::memory_order_relaxed);
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  std::int64_t cur = d_.max_op_ns.load(std::memory_order_relaxed);
  while (ns > cur && !d_.max_op_ns.compare_exchange_weak(cur, ns, std::memory_order_relaxed)) {
  }
}

// ---- errors ----------------------------------------------------------------------

void Worker::on_error(Slot* s, std::uint64_t id, std::size_t size, Clock::time_point op_start,
                      const char* call) {
  const std::string where = std::string(call) + " of buffer " + std::to_string(id);
  try {
    throw;
  } catch (const OutOfMemory&) {
    d_.out_of_memory.fetch_add(1, std::memory_order_relaxed);  // documented: a bounded wait ended
  } catch (const CorruptionError& e) {
    // Never wrong bytes: the pool refused them. It must be explained by a
    // flip the injector made inside this buffer's record.
    const std::uint64_t begin = e.record_offset;
    const std::uint64_t end = begin + spillway::detail::SpillStore::record_span(size, d_.direct_io);
    if (e.buffer_id != id) {
      d_.violation(where + ": CorruptionError names buffer " + std::to_string(e.buffer_id) + ": " + e.what());
    } else if (d_.injector->damaged_on_disk(begin, end)) {
      d_.corruption_damaged.fetch_add(1, std::memory_order_relaxed);
      if (s != nullptr) s->damaged = true;
    } else if (d_.injector->claim_read_flip(begin, end)) {
      d_.corruption_read_flip.fetch_add(1, std::memory_order_relaxed);
      if (s != nullptr) s->read_flip_seen = true;
    } else {
      d_.violation(where + ": CorruptionError that no injected bit flip explains: " + e.what());
    }
  } catch (const IoError& e) {
    if (e.code().value() == ETIMEDOUT) {
      d_.violation(where + ": a wait hit io_timeout: " + e.what());
    } else if (!d_.faults_were_on(op_start)) {
      d_.violation(where + ": IoError with faults off: " + e.what());
    } else if (std::string_view(call) == "evict") {
      d_.evict_io_errors.fetch_add(1, std::memory_order_relaxed);  // the write failed; it stayed put
    } else {
      d_.fetch_io_errors.fetch_add(1, std::memory_order_relaxed);
      if (s != nullptr) s->io_error_seen = true;
    }
  } catch (const std::exception& e) {
    d_.violation(where + ": an exception the contract does not name: " + e.what());
  } catch (...) {
    d_.violation(where + ": a non-standard exception");
  }
}

// ---- checks ----------------------------------------------------------------------

bool Worker::verify(Slot& s, const Pin& p, Tier where, const char* when) {
  if (!s.written) return true;  // never written: contents unspecified
  const long long bad = find_mismatch(p.data(), p.size(), s.buf.id(), s.version);
  d_.bytes_verified.fetch_add(p.size(), std::memory_order_relaxed);
  if (bad < 0) return true;
  std::string what = describe(s, where, p.access() == Access::ReadWrite) + ": byte " + std::to_string(bad) +
                     " differs from the pattern " + when;
  if (s.version > 0 && find_mismatch(p.data(), p.size(), s.buf.id(), s.version - 1) < 0) {
    what += " (it holds the previous version: a write was lost)";
  }
  d_.violation(what);
  return false;
}

void Worker::verify_release(Slot& s, Pin& p, Tier where, void* data_at_pin) {
  if (p.data() != data_at_pin) d_.violation(describe(s, where, false) + ": the pin's pointer changed");
  verify(s, p, where, "at the end of the pin");
  Tier now = where;
  try {
    now = s.buf.tier();
  } catch (const std::exception& e) {
    d_.violation(describe(s, where, false) + ": tier() threw " + e.what());
  }
  if (now != where) {
    d_.violation(describe(s, where, false) + ": its primary moved to " + std::string(tier_name(now)) +
                 " while pinned");
  }
  p.release();
}

// ---- operations ------------------------------------------------------------------

Pin Worker::pin_checked(Slot& s, Tier where, bool read_write) {
  const std::uint64_t id = s.buf.id();
  const auto start = Clock::now();
  Pin p;
  try {
    ScopedActivity act(activity_, OpKind::Pin, id, where, read_write, s.size);
    p = s.buf.pin(where, read_write ? Access::ReadWrite : Access::Read);
  } catch (...) {
    note_op_time(start);
    on_error(&s, id, s.size, start, "pin");
    return Pin();
  }
  note_op_time(start);
  d_.pins.fetch_add(1, std::memory_order_relaxed);
  if (p.size() != s.size || p.tier() != where || (s.size > 0 && p.data() == nullptr)) {
    d_.violation(describe(s, where, read_write) + ": the pin has size " + std::to_string(p.size()) +
                 ", tier " + std::string(tier_name(p.tier())) + (p.data() == nullptr ? ", no data" : ""));
  }
  if (s.written) d_.pins_verified.fetch_add(1, std::memory_order_relaxed);
  verify(s, p, where, "at pin");
  if (read_write) {
    fill_pattern(p.data(), p.size(), id, s.version + 1);
    ++s.version;
    s.written = true;
    d_.bytes_written.fetch_add(p.size(), std::memory_order_relaxed);
  }
  return p;
}

void Worker::pin_op(Slot& s, Tier where, bool read_write, unsigned hold_us) {
  std::shared_lock<std::shared_mutex> shared;
  std::unique_lock<std::shared_mutex> exclusive;
  if (read_write) {
    exclusive = std::unique_lock(s.mu, std::try_to_lock);
    if (!exclusive) return void(d_.busy_skips.fetch_add(1, std::memory_order_relaxed));
    if (!s.buf || s.damaged) return refill_locked(s, random_size());
  } else {
    shared = std::shared_lock(s.mu, std::try_to_lock);
    if (!shared) return void(d_.busy_skips.fetch_add(1, std::memory_order_relaxed));
    if (!s.buf) return;
  }
  Pin p = pin_checked(s, where, read_write);
  if (!p) return;
  void* data = p.data();
  if (hold_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(hold_us));
  verify_release(s, p, where, data);
}

void Worker::move_op(Slot& s, Tier where, bool evict) {
  std::shared_lock lk(s.mu, std::try_to_lock);
  if (!lk) return void(d_.busy_skips.fetch_add(1, std::memory_order_relaxed));
  if (!s.buf || (evict && !d_.pool->tier_enabled(where))) return;
  const std::uint64_t id = s.buf.id();
  const auto start = Clock::now();
  try {
    ScopedActivity act(activity_, evict ? OpKind::Evict : OpKind::Prefetch, id, where, false, s.size);
    if (evict) {
      s.buf.evict(where);
    } else {
      s.buf.prefetch(where);
    }
    (evict ? d_.evictions : d_.prefetches).fetch_add(1, std::memory_order_relaxed);
  } catch (...) {
    on_error(&s, id, s.size, start, evict ? "evict" : "prefetch");
  }
  note_op_time(start);
}

void Worker::realloc_op(Slot& s, std::size_t size) {
  std::unique_lock lk(s.mu, std::try_to_lock);
  if (!lk) return void(d_.busy_skips.fetch_add(1, std::memory_order_relaxed));
  refill_locked(s, size);
}

void Worker::refill_locked(Slot& s, std::size_t size) {
  if (s.buf && s.damaged) d_.damaged_replaced.fetch_add(1, std::memory_order_relaxed);
  s.damaged = false;
  if (s.buf) {
    const auto start = Clock::now();
    {
      ScopedActivity act(activity_, OpKind::Free, s.buf.id(), Tier::Host, false, s.size);
      s.buf.reset();
    }
    note_op_time(start);
    d_.frees.fetch_add(1, std::memory_order_relaxed);
  }
  s.written = false;
  s.version = 0;
  s.io_error_seen = false;
  s.read_flip_seen = false;
  s.size = size;
  const Tier preferred = random_memory_tier();
  const auto start = Clock::now();
  try {
    ScopedActivity act(activity_, OpKind::Allocate, 0, preferred, false, size);
    s.buf = d_.pool->allocate(size, preferred, "stress");
  } catch (...) {
    note_op_time(start);
    on_error(&s, 0, size, start, "allocate");
    return;
  }
  note_op_time(start);
  d_.allocations.fetch_add(1, std::memory_order_relaxed);
  // The first version: a ReadWrite pin writes it (nothing to check yet).
  Pin p = pin_checked(s, preferred, true);
  if (p) verify_release(s, p, preferred, p.data());
}

// ---- workloads -------------------------------------------------------------------

void Worker::step_uniform(bool zipf) {
  Slot& s = zipf ? zipf_slot() : random_slot();
  const unsigned r = static_cast<unsigned>(rng() % 100);
  const Tier where = random_memory_tier();
  if (r < 50) {
    pin_op(s, where, false, rng() % 5 == 0 ? static_cast<unsigned>(rng() % 200) : 0);
  } else if (r < 75) {
    pin_op(s, where, true);
  } else if (r < 83) {
    evict_op(s, rng() % 2 ? Tier::Disk : Tier::Host);
  } else if (r < 91) {
    prefetch_op(s, where);
  } else if (r < (zipf ? 93u : 96u)) {
    realloc_op(s, random_size());
  } else {
    pin_op(s, where, false, 1000 + static_cast<unsigned>(rng() % 4000));  // a long read
  }
}

void Worker::step_sweep() {
  // One global cursor: together the threads read the working set in order,
  // each buffer gone from memory long before the sweep comes back to it.
  const std::uint64_t k = d_.cursor.fetch_add(1, std::memory_order_relaxed);
  Slot& s = *d_.slots[k % d_.slots.size()];
  const Tier where = random_memory_tier();
  pin_op(s, where, rng() % 5 == 0);
}

void Worker::step_chain() {
  // Node k reads the outputs of nodes k-1 and k-1-lag and writes its own
  // (buffer k mod N), all pinned at once on one tier, as a graph executor
  // does; it tells the pool when its output is read next.
  const std::size_t n = d_.slots.size();
  const std::uint64_t k = d_.cursor.fetch_add(1, std::memory_order_relaxed) + n;
  const std::uint64_t lag = 1 + rng() % std::min<std::uint64_t>(8, n - 2);
  Slot& out = *d_.slots[k % n];
  Slot* in[2] = {d_.slots[(k - 1) % n].get(), d_.slots[(k - 1 - lag) % n].get()};
  const Tier where = rng() % 5 == 0 ? Tier::Host : random_memory_tier();
  std::unique_lock out_lock(out.mu, std::try_to_lock);
  if (!out_lock) return void(d_.busy_skips.fetch_add(1, std::memory_order_relaxed));
  if (!out.buf || out.damaged) return refill_locked(out, random_size());
  struct Input {
    Slot* slot;
    std::shared_lock<std::shared_mutex> lock;
    Pin pin;
    void* data = nullptr;
  };
  std::vector<Input> inputs;
  for (Slot* s : in) {
    if (s == &out || (!inputs.empty() && inputs.back().slot == s)) continue;
    std::shared_lock lk(s->mu, std::try_to_lock);
    if (!lk) {
      d_.busy_skips.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!s->buf) continue;
    Pin p = pin_checked(*s, where, false);
    if (!p) continue;
    void* data = p.data();
    inputs.push_back({s, std::move(lk), std::move(p), data});
  }
  Pin o = pin_checked(out, where, true);
  if (o) {
    try {
      out.buf.hint_next_use(k + 1);
    } catch (const std::exception& e) {
      d_.violation("hint_next_use of buffer " + std::to_string(out.buf.id()) + " threw " + e.what());
    }
    verify_release(out, o, where, o.data());
  }
  for (auto& i : inputs) verify_release(*i.slot, i.pin, where, i.data);
}

void Worker::step_pinheavy() {
  // Each thread keeps up to its share (85%) of each memory tier pinned; when
  // the next pin would pass it, its oldest pin on that tier goes. Together
  // the threads hold the tiers near full of pins, so every fetch has to find
  // room among the few unpinned buffers or wait for an unpin. A buffer is
  // held by one thread at a time (exclusively): the waits are for room, not
  // for another thread's pin of the same buffer on the other tier.
  const Tier where = random_memory_tier();
  const int ti = tier_index(where);
  auto release_oldest = [this](int tier) {
    for (auto it = held_.begin(); it != held_.end(); ++it) {
      if (tier >= 0 && tier_index(it->tier) != tier) continue;
      Held h = std::move(*it);
      held_.erase(it);
      held_bytes_[tier_index(h.tier)] -= h.bytes;
      verify_release(*h.slot, h.pin, h.tier, h.data);
      return;
    }
  };
  Slot& s = random_slot();
  if (std::any_of(held_.begin(), held_.end(), [&s](const Held& h) { return h.slot == &s; })) return;
  std::unique_lock lk(s.mu, std::try_to_lock);
  if (!lk) return void(d_.busy_skips.fetch_add(1, std::memory_order_relaxed));
  if (!s.buf || s.damaged) return refill_locked(s, random_size());
  const bool holds_on_tier = std::any_of(held_.begin(), held_.end(), [&](const Held& h) { return h.tier == where; });
  if (holds_on_tier && (held_bytes_[ti] + s.size > d_.pinheavy_cap_bytes[ti] || held_.size() >= 64)) {
    lk.unlock();
    release_oldest(ti);
    return;
  }
  Pin p = pin_checked(s, where, rng() % 5 == 0);
  if (!p) {
    release_oldest(-1);  // no room within pressure_wait (or an IO fault): give some back
    return;
  }
  void* data = p.data();
  held_bytes_[ti] += s.size;
  held_.push_back(Held{&s, std::move(lk), std::move(p), s.size, where, data});
}

void Worker::release_held() {
  for (auto& h : held_) verify_release(*h.slot, h.pin, h.tier, h.data);
  held_.clear();
  held_bytes_ = {};
}

void Worker::step_thrash() {
  // Move each buffer on from wherever it is: device -> host or disk,
  // host -> device or disk, disk -> device or host.
  Slot& s = random_slot();
  Tier now;
  {
    std::shared_lock lk(s.mu, std::try_to_lock);
    if (!lk) return void(d_.busy_skips.fetch_add(1, std::memory_order_relaxed));
    if (!s.buf) {
      lk.unlock();
      realloc_op(s, random_size());
      return;
    }
    try {
      now = s.buf.tier();
    } catch (const std::exception& e) {
      d_.violation("tier() of buffer " + std::to_string(s.buf.id()) + " threw " + e.what());
      return;
    }
  }
  const bool device = d_.pool->tier_enabled(Tier::Device);
  const bool coin = rng() % 2 == 0;
  switch (now) {
    case Tier::Device:
      evict_op(s, coin ? Tier::Host : Tier::Disk);
      break;
    case Tier::Host:
      if (coin && device) pin_op(s, Tier::Device, rng() % 3 == 0);
      else evict_op(s, Tier::Disk);
      break;
    case Tier::Disk:
      pin_op(s, coin && device ? Tier::Device : Tier::Host, rng() % 3 == 0);
      break;
  }
}

void Worker::run() {
  // The initial fill: this thread's share of the working set.
  for (std::size_t i = index_; i < d_.slots.size() && !d_.stopping(); i += d_.cfg.threads) {
    if (!d_.take_op()) return;
    realloc_op(*d_.slots[i], random_size());
  }
  while (!d_.stopping() && d_.take_op()) {
    switch (d_.cfg.workload) {
      case Workload::Uniform: step_uniform(false); break;
      case Workload::Zipf: step_uniform(true); break;
      case Workload::Sweep: step_sweep(); break;
      case Workload::Chain: step_chain(); break;
      case Workload::PinHeavy: step_pinheavy(); break;
      case Workload::Thrash: step_thrash(); break;
    }
  }
  release_held();
}

}  // namespace spillway::stress::detail
