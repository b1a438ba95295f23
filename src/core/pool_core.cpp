// src/core/pool_core.cpp — residency policy: placement, eviction, moves.
// See pool_core.hpp for the state machine this file implements.
#include "pool_core.hpp"

#include "src/instrument/chrome_trace.hpp"
#include "src/instrument/live_stats.hpp"
#include "src/instrument/metrics_file.hpp"
#include "src/instrument/nvtx.hpp"
#include "tiers/device/cuda_backend.hpp"
#include "tiers/device/staging_ring.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace spillway::detail {

namespace {
// How many eviction candidates one start_evictions call looks at, at most.
constexpr int kMaxVictimScan = 4096;
// How many of the least recently used candidates Lookahead compares.
constexpr int kLookaheadWindow = 64;
}  // namespace

// ---- RecordList ---------------------------------------------------------------

ListHook& RecordList::hook(BufferRecord* r) const { return r->hooks[kind_][tier_]; }

void RecordList::push_back(BufferRecord* r) {
  ListHook& h = hook(r);
  if (h.linked) return;
  h.prev = tail_;
  h.next = nullptr;
  h.linked = true;
  if (tail_ != nullptr) hook(tail_).next = r;
  else head_ = r;
  tail_ = r;
}

void RecordList::remove(BufferRecord* r) {
  ListHook& h = hook(r);
  if (!h.linked) return;
  if (h.prev != nullptr) hook(h.prev).next = h.next;
  else head_ = h.next;
  if (h.next != nullptr) hook(h.next).prev = h.prev;
  else tail_ = h.prev;
  h = ListHook{};
}

BufferRecord* RecordList::next(const BufferRecord* r, ListKind kind, int tier) {
  return r->hooks[kind][tier].next;
}

namespace {
std::mutex& factory_mutex() {
  static std::mutex mu;
  return mu;
}
DeviceArenaFactory& factory_slot() {
  static DeviceArenaFactory factory;
  return factory;
}
}  // namespace

void set_simulated_device_arena_factory(DeviceArenaFactory factory) {
  std::lock_guard lk(factory_mutex());
  factory_slot() = std::move(factory);
}

// ---- construction ---------------------------------------------------------------

PoolCore::PoolCore(PoolOptions options) : options_(std::move(options)) {
  options_.validate();
  // Device tier: CUDA when asked for (or, with Auto, when compiled in and a
  // GPU is present), else the simulated arena in host memory.
  const DeviceOptions& dev = options_.device;
  bool use_cuda = false;
  if (dev.backend != DeviceBackend::None && dev.capacity_bytes > 0) {
    std::string why;
    if (dev.backend == DeviceBackend::Cuda) {
      if (!cuda::device_available(dev.cuda_device, &why)) {
        throw std::invalid_argument("spillway: device.backend = Cuda was requested, but " + why);
      }
      use_cuda = true;
      backend_reason_ = "DeviceBackend::Cuda was requested";
    } else if (dev.backend == DeviceBackend::Auto) {
      use_cuda = cuda::device_available(dev.cuda_device, &why);
      backend_reason_ = use_cuda ? "Auto: a CUDA device is present"
                                 : "Auto: simulated, because " + why;
    } else {
      backend_reason_ = "DeviceBackend::Simulated was requested";
    }
    std::size_t capacity = dev.capacity_bytes;
    if (capacity == kAutoCapacity) {
      capacity = use_cuda ? static_cast<std::size_t>(
                                static_cast<double>(cuda::free_device_memory(dev.cuda_device)) *
                                cuda::kDefaultVramFraction)
                          : kDefaultSimulatedDeviceBytes;
    }
    if (capacity > 0) {
      DeviceArenaFactory factory;
      if (!use_cuda) {
        std::lock_guard lk(factory_mutex());
        factory = factory_slot();
      }
      arenas_[0] = use_cuda  ? cuda::make_device_arena(dev.cuda_device, capacity)
                   : factory ? factory(capacity)
                             : std::make_unique<HostMemoryArena>(capacity, "simulated");
    }
  } else {
    backend_reason_ = dev.backend == DeviceBackend::None ? "DeviceBackend::None was requested"
                                                          : "device.capacity_bytes is 0";
  }
  // Host tier: page-locked when the CUDA backend is active (DMA to and from
  // VRAM), ordinary pages otherwise.
  if (options_.host.capacity_bytes > 0) {
    if (use_cuda && options_.host.pinned) {
      arenas_[1] = cuda::make_pinned_host_arena(dev.cuda_device, options_.host.capacity_bytes);
    } else {
      arenas_[1] = std::make_unique<HostMemoryArena>(options_.host.capacity_bytes, "host");
    }
  }
  if (options_.disk.enabled) {
    store_ = std::make_unique<SpillStore>(options_.disk);
    spill_dir_ = store_->directory();
  }
  if (!arenas_[0] && !arenas_[1] && !store_) {
    throw std::invalid_argument("spillway: PoolOptions: every tier is turned off");
  }
  nvtx_initialize();
  io_ = std::make_unique<IoExecutor>(options_.io_threads);
  // The metrics writer and the live stats publisher call stats() until they
  // are reset: if one of these throws, they go here, while every member
  // they read is still alive.
  try {
    if (!options_.metrics_file.empty()) {
      metrics_ = std::make_unique<instrument::MetricsFileWriter>(
          options_.metrics_file, options_.metrics_interval, [this] { return stats().to_prometheus(); });
    }
    if (options_.live_stats) {
      live_ = std::make_unique<instrument::LiveStatsPublisher>(options_.live_stats_interval,
                                                               [this] { return stats(); });
    }
    if (!options_.trace_file.empty()) {
      trace_file_ = std::make_shared<instrument::ChromeTraceSink>(
          options_.trace_file, options_.trace_max_events,
          options_.trace_keep_last ? instrument::ChromeTraceSink::Keep::Last : instrument::ChromeTraceSink::Keep::First);
      set_trace(trace_file_);
    }
  } catch (...) {
    live_.reset();
    metrics_.reset();
    throw;
  }
}

PoolCore::~PoolCore() { shutdown(); }

void PoolCore::shutdown() {
  // Both stop after publishing the final numbers (the pool still answers
  // stats()); the live stats segment goes with its publisher.
  live_.reset();
  metrics_.reset();
  set_trace(nullptr);  // delivers what the recorder holds
  if (trace_file_) {
    try {
      trace_file_->write();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "spillway: the trace was not written: %s\n", e.what());
    }
    trace_file_.reset();
  }
  {
    Lock lk(mu_);
    if (closed_) return;
    closed_ = true;
  }
  cv_.notify_all();  // waiters see the pool closed and throw
  io_->shutdown();  // finishes and commits every move queued on the workers
  Lock lk(mu_);
  // Moves that callers run on their own threads (pin fetches, explicit
  // evictions) still read or write the arenas and the spill file: wait for
  // them, within io_timeout. One that outlasts it keeps storage alive; the
  // core, which its Buffer holds, frees it when the last handle goes.
  if (!cv_.wait_for(lk.native(), options_.io_timeout, [this]() SPILLWAY_REQUIRES(mu_) { return moves_in_flight_ == 0; })) {
    ++errors_.timeouts;
    for (auto& [id, r] : records_) unlink(r.get());
    return;
  }
  // Stream-ordered copies and deferred unpins: let the device finish them,
  // within io_timeout; a pin still held keeps the arenas below.
  const auto fences_until = Clock::now() + options_.io_timeout;
  while (!fenced_.empty() && Clock::now() < fences_until) {
    if (!poll_fences(lk)) {
      {
        Unlocked unlocked(lk, mu_);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }
  bool pins_live = false;
  for (auto& [id, r] : records_) {
    unlink(r.get());
    if (r->pins > 0) pins_live = true;
  }
  // Records stay allocated (detached Buffers and Pins still point at them)
  // until the core itself is destroyed. Storage goes now, except memory
  // arenas that live pins still point into.
  store_.reset();
  {
    MutexLock slk(staging_mu_);
    free_rings_.clear();  // before the arena they copy to and from
  }
  if (!pins_live) {
    arenas_[0].reset();
    arenas_[1].reset();
  }
  deferred_release_.clear();
}

void PoolCore::check_open() const {
  if (closed_) {
    throw std::logic_error("spillway: this buffer's Pool has been destroyed");
  }
}

bool PoolCore::tier_enabled(Tier t) const {
  return t == Tier::Disk ? store_ != nullptr : arenas_[tier_index(t)] != nullptr;
}

std::string_view PoolCore::device_backend_name() const {
  return arenas_[0] ? arenas_[0]->backend() : std::string_view("none");
}

std::string_view PoolCore::host_memory_kind() const {
  if (!arenas_[1]) return "none";
  return arenas_[1]->backend() == "pinned" ? "pinned" : "pageable";
}

std::string PoolCore::spill_directory() const { return spill_dir_; }

std::uint64_t PoolCore::tier_capacity(Tier t) const {
  if (t == Tier::Disk) return store_ ? store_->capacity() : 0;
  return arena(t) ? arena(t)->capacity() : 0;
}

// ---- lists ---------------------------------------------------------------------

void PoolCore::link(BufferRecord* r) {
  if (r->moving || r->dead || closed_) return;
  if (r->pins == 0 && r->size > 0 && r->primary != Tier::Disk) {
    const int ti = tier_index(r->primary);
    primary_lists_[ti].push_back(r);
    if (r->backed_on < 0 && r->clean_below()) {
      r->backed_on = static_cast<std::int8_t>(ti);
      backed_bytes_[ti] += r->footprint;
    }
  }
  if (r->copy_fence) return;  // a device copy may still read the host copy
  for (Tier t : {Tier::Host, Tier::Disk}) {
    if (r->has_clean(t)) clean_lists_[tier_index(t)].push_back(r);
  }
}

void PoolCore::unlink(BufferRecord* r) {
  for (int t = 0; t < kTierCount; ++t) {
    primary_lists_[t].remove(r);
    clean_lists_[t].remove(r);
  }
  uncount_backed(r);
}

void PoolCore::uncount_backed(BufferRecord* r) {
  if (r->backed_on >= 0) {
    backed_bytes_[r->backed_on] -= r->footprint;
    r->backed_on = -1;
  }
}

// ---- room without waiting -------------------------------------------------------

void PoolCore::drop_clean(BufferRecord* r, Tier t) {
  clean_lists_[tier_index(t)].remove(r);
  if (t == Tier::Disk) {
    release_later(r->extent);
    r->on_disk = false;
    r->disk_zero = false;
    clean_bytes_[2] -= r->extent.bytes;
    r->extent = {};
  } else {
    arena(t)->free(r->block[tier_index(t)]);
    r->block[tier_index(t)] = nullptr;
    clean_bytes_[tier_index(t)] -= r->footprint;
  }
  if (!r->clean_below()) uncount_backed(r);
}

void* PoolCore::try_block(Tier t, std::size_t bytes) {
  MemoryArena* a = arena(t);
  if (a == nullptr) return nullptr;
  if (void* b = a->allocate(bytes)) return b;
  // Clean copies are the first bytes dropped: they cost no write.
  RecordList& clean = clean_lists_[tier_index(t)];
  while (!clean.empty()) {
    drop_clean(clean.front(), t);
    if (void* b = a->allocate(bytes)) return b;
  }
  return nullptr;
}

std::optional<SpillExtent> PoolCore::try_extent(std::size_t bytes) {
  if (!store_) return std::nullopt;
  if (auto e = store_->reserve(bytes)) return e;
  // Dropping clean disk copies frees quota only once their extents are
  // released; that happens outside the lock, so count what would come back.
  RecordList& clean = clean_lists_[2];
  while (!clean.empty()) {
    BufferRecord* r = clean.front();
    SpillExtent e = r->extent;
    drop_clean(r, Tier::Disk);
    deferred_release_.pop_back();
    store_->release(e);  // no file IO happens here unless the tail is truncated
    if (auto got = store_->reserve(bytes)) return got;
  }
  return std::nullopt;
}

void PoolCore::release_deferred(Lock& lk) {
  if (deferred_release_.empty() || !store_) return;
  std::vector<SpillExtent> todo;
  todo.swap(deferred_release_);
  SpillStore* store = store_.get();
  std::uint64_t bytes = 0;
  for (const auto& e : todo) bytes += e.bytes;
  releasing_disk_bytes_ += bytes;  // still in use in the store until released
  {
    Unlocked unlocked(lk, mu_);
    for (const auto& e : todo) store->release(e);
  }
  releasing_disk_bytes_ -= bytes;
}

// ---- eviction ------------------------------------------------------------------

// Makes the clean copy on `below` the primary and drops the faster copies:
// an eviction that writes nothing.
void PoolCore::demote_to_clean(BufferRecord* r, Tier below) {
  const Tier from = r->primary;
  unlink(r);
  arena(from)->free(r->block[tier_index(from)]);
  r->block[tier_index(from)] = nullptr;
  for (int t = tier_index(from) + 1; t < tier_index(below); ++t) {
    if (r->has_copy(static_cast<Tier>(t))) drop_clean(r, static_cast<Tier>(t));
  }
  clean_bytes_[tier_index(below)] -= below == Tier::Disk ? r->extent.bytes : r->footprint;
  --buffers_[tier_index(from)];
  ++buffers_[tier_index(below)];
  r->primary = below;
  link(r);
}

bool PoolCore::evict_one(BufferRecord* v, EvictionReason reason, std::vector<InlineMove>* inline_moves) {
  const Tier from = v->primary;
  // A clean copy below makes the eviction free: drop the primary.
  for (Tier below : {Tier::Host, Tier::Disk}) {
    if (tier_index(below) <= tier_index(from) || !v->has_clean(below)) continue;
    demote_to_clean(v, below);
    ++evictions_[static_cast<int>(reason)];
    ++clean_evictions_;
    emit(TraceKind::Evict, v, from, below, reason, true, 0);
    return true;
  }
  // Otherwise copy it down: device victims to host when host has room now,
  // else straight to disk; host victims to disk.
  const bool on_caller = inline_moves != nullptr;
  if (from == Tier::Device) {
    if (void* b = try_block(Tier::Host, v->size)) {
      launch_move(v, Tier::Host, b, std::nullopt, true, reason, nullptr, on_caller);
      if (on_caller) inline_moves->push_back({v, from, Tier::Host, b, std::nullopt, reason});
      return true;
    }
  }
  if (auto e = try_extent(v->size)) {
    launch_move(v, Tier::Disk, nullptr, e, true, reason, nullptr, on_caller);
    if (on_caller) inline_moves->push_back({v, from, Tier::Disk, nullptr, e, reason});
    return true;
  }
  if (from == Tier::Device && arena(Tier::Host) != nullptr) {
    // Cascade: make room on host for later; this victim waits for it.
    start_evictions(Tier::Host, arena(Tier::Host)->capacity() - arena(Tier::Host)->used() >=
                                        v->footprint
                                    ? 0
                                    : v->footprint,
                    reason);
  }
  return false;
}

bool PoolCore::start_evictions(Tier t, std::uint64_t want, EvictionReason reason,
                               std::vector<InlineMove>* inline_moves) {
  bool changed = false;
  std::uint64_t freed = 0;  // bytes freed at once by clean evictions
  const int ti = tier_index(t);
  // A victim that has nowhere to go does not stop the scan: a smaller one
  // behind it may fit. Copy-down fails for every size at or above the
  // smallest that failed (best fit: no extent holds it), so those are skipped
  // without trying; the scan is bounded so the lock is not held for long.
  std::uint64_t smallest_failed = std::numeric_limits<std::uint64_t>::max();
  int examined = 0;
  // Proactive spilling leaves buffers with a clean copy below alone (see
  // maybe_proactive): only writes are worth starting ahead of need.
  const bool dirty_only = reason == EvictionReason::Proactive;
  BufferRecord* v = primary_lists_[ti].front();
  while (v != nullptr && pending_out_[ti] + freed < want && ++examined <= kMaxVictimScan) {
    BufferRecord* next = RecordList::next(v, kPrimaryList, ti);
    if (dirty_only && v->clean_below()) {
      v = next;
      continue;
    }
    if (options_.policy == EvictionPolicy::Lookahead) {
      // Among the oldest few, the farthest next use first, weighed by what
      // the eviction costs: a victim with a clean copy below costs one copy
      // (the fetch back), a dirty one two (the write now, the fetch later),
      // so a clean victim counts as twice as far. Distances are measured
      // from the nearest hint in the window (the pool does not know the
      // executor's current step). Unhinted buffers (kNoHint) count as
      // farthest, which keeps LRU order among them.
      std::uint64_t nearest = kNoHint;
      BufferRecord* c = v;
      for (int i = 0; i < kLookaheadWindow && c != nullptr; ++i) {
        if (!c->fresh) nearest = std::min(nearest, c->next_use);
        c = RecordList::next(c, kPrimaryList, ti);
      }
      auto score = [nearest](const BufferRecord* r) {
        if (r->fresh) return 0.0;
        if (r->next_use == kNoHint) return std::numeric_limits<double>::infinity();
        const bool clean = r->clean_below();
        return static_cast<double>(r->next_use - nearest + 1) * (clean ? 2.0 : 1.0);
      };
      BufferRecord* best = v;
      double best_score = score(v);
      c = RecordList::next(v, kPrimaryList, ti);
      for (int i = 1; i < kLookaheadWindow && c != nullptr; ++i) {
        // A dirty candidate must fit where copy-down has not already failed;
        // a clean one always can go, except ahead of need.
        const bool movable = c->clean_below() ? !dirty_only : c->footprint < smallest_failed;
        const double sc = score(c);
        if (movable && sc > best_score) {
          best = c;
          best_score = sc;
        }
        c = RecordList::next(c, kPrimaryList, ti);
      }
      if (best != v) next = v;
      v = best;
    }
    const std::uint64_t footprint = v->footprint;
    const std::uint64_t pending_before = pending_out_[ti];
    const bool clean_below = v->clean_below();
    if (!clean_below && footprint >= smallest_failed) {
      v = next;
      continue;
    }
    if (!evict_one(v, reason, inline_moves)) {
      // Nowhere to put this one now; a later attempt retries it.
      smallest_failed = std::min(smallest_failed, footprint);
      v = next;
      continue;
    }
    changed = true;
    if (pending_out_[ti] == pending_before) freed += footprint;
    v = next;
  }
  return changed;
}

void PoolCore::maybe_proactive(Tier t) {
  if (t == Tier::Disk || arena(t) == nullptr || options_.high_watermark >= 1.0 || closed_) return;
  // Proactive spilling writes dirty buffers ahead of need. Primaries with a
  // clean copy below need no write to go (evict_one drops them at once when
  // room is wanted), so they count as room and stay cached until then.
  const double cap = static_cast<double>(arena(t)->capacity());
  const auto used = static_cast<double>(arena(t)->used()) - static_cast<double>(backed_bytes_[tier_index(t)]);
  if (used - static_cast<double>(pending_out_[tier_index(t)]) <= options_.high_watermark * cap) return;
  const auto want = static_cast<std::uint64_t>(used - options_.low_watermark * cap);
  start_evictions(t, want, EvictionReason::Proactive);
}

void PoolCore::wait_io(Lock& lk, const char* what) {
  ++waiters_;
  const auto status = cv_.wait_for(lk.native(), options_.io_timeout);
  --waiters_;
  if (status == std::cv_status::timeout) {
    ++errors_.timeouts;
    throw IoError(ETIMEDOUT, spill_dir_.empty() ? std::string("(memory tiers)") : spill_dir_, 0,
                  std::string("waiting ") + std::to_string(options_.io_timeout.count()) +
                      " ms for " + what);
  }
}

void* PoolCore::make_room(Lock& lk, Tier t, std::size_t bytes, Clock::time_point deadline,
                          bool wait_for_pins, bool* waited) {
  MemoryArena* a = arena(t);
  const std::uint64_t need = MemoryArena::footprint(bytes);
  if (a == nullptr || need > a->capacity()) return nullptr;
  const std::uint64_t failures_at_start = errors_.spill_write_failures;
  for (;;) {
    check_open();  // the pool may have been destroyed while this thread waited
    poll_fences(lk);
    if (void* b = try_block(t, bytes)) {
      // b belongs to no record until the caller takes it (after the lock
      // was dropped to release extents).
      reserved_bytes_[tier_index(t)] += need;
      release_deferred(lk);
      reserved_bytes_[tier_index(t)] -= need;
      return b;
    }
    if (errors_.spill_write_failures != failures_at_start) {
      // Spills are failing: retry (the victims are still evictable) until
      // the deadline, at a bounded rate; callers that may not wait give up.
      if (!wait_for_pins || Clock::now() >= deadline) return nullptr;
      ++waiters_;
      cv_.wait_for(lk.native(), std::chrono::milliseconds(5));
      --waiters_;
      check_open();
    }
    const std::uint64_t free_bytes = a->capacity() - a->used();
    std::uint64_t& pending = pending_out_[tier_index(t)];
    // When the free total would hold the request but no extent does
    // (fragmentation), evict one more buffer than is already on its way.
    const std::uint64_t want = free_bytes >= need ? pending + 1 : need - free_bytes;
    // The spills that make this room run on this thread, which would only
    // wait for the IO workers otherwise (each hand-off costs two thread
    // wake-ups); the lock is released while they copy.
    std::vector<InlineMove> mine;
    const bool started = start_evictions(t, want, EvictionReason::Pressure, &mine);
    if (!mine.empty()) {
      if (waited != nullptr) *waited = true;
      {
        Unlocked unlocked(lk, mu_);
        for (auto& m : mine) run_move(m.record, m.from, m.to, m.dst, m.ext, true, m.reason, nullptr);
      }
      continue;
    }
    if (started && pending == 0) continue;
    if (pending > 0) {
      if (waited != nullptr) *waited = true;
      wait_io(lk, "a spill that makes room");
      continue;
    }
    // Everything on the tier is pinned (or has nowhere to go).
    if (!wait_for_pins || Clock::now() >= deadline) return nullptr;
    if (waited != nullptr) *waited = true;
    wait_for_change(lk, deadline);
    check_open();
  }
}

// ---- moves ---------------------------------------------------------------------

void PoolCore::launch_move(BufferRecord* r, Tier to, void* dst, std::optional<SpillExtent> ext,
                           bool is_eviction, EvictionReason reason,
                           std::shared_ptr<MoveTicket> ticket, bool on_caller) {
  unlink(r);
  r->moving = true;
  ++moves_in_flight_;
  const Tier from = r->primary;
  if (is_eviction) pending_out_[tier_index(from)] += r->footprint;
  if (dst != nullptr) reserved_bytes_[tier_index(to)] += r->footprint;
  if (ext) reserved_bytes_[2] += ext->bytes;
  if (dst != nullptr) note_peak(to);
  emit(tier_index(to) > tier_index(from) ? TraceKind::SpillBegin : TraceKind::FetchBegin, r, from,
       to, reason, true, 0);
  if (on_caller) return;  // the caller runs run_move itself, after unlocking
  auto self = shared_from_this();
  io_->submit([self, r, from, to, dst, ext, is_eviction, reason, ticket] {
    self->run_move(r, from, to, dst, ext, is_eviction, reason, ticket);
  });
}

namespace {
// Moves between disk and a device tier that is not host accessible go
// through a ring of host staging buffers (outside every tier's budget: a
// disk <-> device move takes no host capacity). Writing to disk, the
// device -> host copies of the next slices run while the store hashes and
// writes the current one; reading, the host -> device copy of a slice runs
// while the store reads and verifies the next.
class StagedSlices final : public SliceIo {
 public:
  StagedSlices(StagingRing& ring, void* block, std::size_t bytes)
      : ring_(ring), block_(static_cast<unsigned char*>(block)), bytes_(bytes) {}
  ~StagedSlices() override { ring_.wait_all_noexcept(); }  // nothing in flight outlives the move
  StagedSlices(const StagedSlices&) = delete;
  StagedSlices& operator=(const StagedSlices&) = delete;

  std::size_t slice_bytes() const override { return ring_.slot_bytes(); }

  const void* source(std::size_t offset, std::size_t) override {
    const std::size_t s = ring_.slot_bytes();
    const std::size_t idx = offset / s;
    if (idx < current_) {
      // The store went back (a compression sample, then the record): start over.
      ring_.wait_all();
      issued_ = idx;
    }
    current_ = idx;
    // Keep every buffer busy: slices before idx are consumed, so their
    // buffers take the slices ahead.
    while (issued_ < idx + ring_.slots() && issued_ * s < bytes_) {
      const unsigned slot = static_cast<unsigned>(issued_ % ring_.slots());
      ring_.wait(slot);
      const std::size_t n = std::min(s, bytes_ - issued_ * s);
      ring_.set_fence(slot, ring_.arena()->copy_to_host_async(ring_.buffer(slot),
                                                              block_ + issued_ * s, n));
      ++issued_;
    }
    const unsigned slot = static_cast<unsigned>(idx % ring_.slots());
    ring_.wait(slot);
    return ring_.buffer(slot) + offset % s;
  }

  void* target(std::size_t offset, std::size_t) override {
    const std::size_t s = ring_.slot_bytes();
    const std::size_t idx = offset / s;
    const unsigned slot = static_cast<unsigned>(idx % ring_.slots());
    if (idx != current_) {
      ring_.wait(slot);  // its previous slice is on the device
      current_ = idx;
    }
    return ring_.buffer(slot) + offset % s;
  }
  void deliver(std::size_t offset, std::size_t n) override {
    const std::size_t s = ring_.slot_bytes();
    const unsigned slot = static_cast<unsigned>((offset / s) % ring_.slots());
    ring_.set_fence(slot, ring_.arena()->copy_from_host_async(block_ + offset,
                                                              ring_.buffer(slot) + offset % s, n));
  }
  // Until every slice delivered is on the device.
  void finish() { ring_.wait_all(); }

 private:
  StagingRing& ring_;
  unsigned char* block_;
  std::size_t bytes_;
  std::size_t issued_ = 0;                 // writing: slices whose copy to the host has started
  std::size_t current_ = ~std::size_t{0};  // the slice last handed out
};
}  // namespace

std::unique_ptr<StagingRing> PoolCore::take_ring(MemoryArena* arena) {
  {
    MutexLock lk(staging_mu_);
    if (!free_rings_.empty()) {
      auto ring = std::move(free_rings_.back());
      free_rings_.pop_back();
      return ring;
    }
  }
  return std::make_unique<StagingRing>(arena, options_.device.staging_buffer_bytes,
                                       options_.device.staging_buffers);
}

void PoolCore::give_ring(std::unique_ptr<StagingRing> ring) {
  ring->wait_all_noexcept();
  MutexLock lk(staging_mu_);
  free_rings_.push_back(std::move(ring));
}

void PoolCore::copy_bytes(BufferRecord* r, Tier from, Tier to, void* dst, SpillExtent* ext,
                          std::uint64_t* stored, MoveTicket* ticket) {
  *stored = r->size;
  // A staging ring for this move, given back when it ends (after every
  // copy through it has finished).
  struct RingLease {
    PoolCore* core;
    std::unique_ptr<StagingRing> ring;
    ~RingLease() {
      if (ring) core->give_ring(std::move(ring));
    }
  };
  if (to == Tier::Disk) {
    MemoryArena* src = arena(from);
    void* block = r->block[tier_index(from)];
    RecordInfo info;
    if (src->host_accessible()) {
      info = store_->write(*ext, r->id, block, r->size);
    } else {
      RingLease lease{this, take_ring(src)};
      StagedSlices io(*lease.ring, block, r->size);
      info = store_->write(*ext, r->id, r->size, io);
    }
    *stored = info.stored_bytes;
    return;
  }
  MemoryArena* dst_arena = arena(to);
  if (from == Tier::Disk) {
    if (dst_arena->host_accessible()) {
      if (r->disk_zero) std::memset(dst, 0, r->size);
      else *stored = store_->read(r->extent, r->id, dst, r->size);
    } else {
      RingLease lease{this, take_ring(dst_arena)};
      StagedSlices io(*lease.ring, dst, r->size);
      if (r->disk_zero) {
        const std::size_t slice = io.slice_bytes();
        for (std::size_t done = 0; done < r->size; done += slice) {
          const std::size_t n = std::min(slice, r->size - done);
          std::memset(io.target(done, n), 0, n);
          io.deliver(done, n);
        }
      } else {
        *stored = store_->read(r->extent, r->id, r->size, io);
      }
      io.finish();
    }
    if (r->disk_zero) *stored = 0;
    return;
  }
  MemoryArena* src_arena = arena(from);
  const void* src = r->block[tier_index(from)];
  if (!src_arena->host_accessible()) {
    src_arena->copy_to_host(dst, src, r->size);
  } else if (ticket != nullptr && ticket->ordered) {
    // Stream-aware pin: left in flight, ordered before the caller's stream.
    ticket->fence = dst_arena->copy_from_host_ordered(dst, src, r->size, ticket->stream);
  } else {
    dst_arena->copy_from_host(dst, src, r->size);
  }
}

void PoolCore::run_move(BufferRecord* r, Tier from, Tier to, void* dst,
                        std::optional<SpillExtent> ext, bool is_eviction, EvictionReason reason,
                        std::shared_ptr<MoveTicket> ticket) {
  std::exception_ptr error;
  std::uint64_t stored = 0;
  SpillExtent extent = ext.value_or(SpillExtent{});
  const auto t0 = Clock::now();
  try {
    NvtxRange range(tier_index(to) > tier_index(from) ? "spillway spill" : "spillway fetch");
    copy_bytes(r, from, to, dst, &extent, &stored, ticket.get());
  } catch (...) {
    error = std::current_exception();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  Lock lk(mu_);
  --moves_in_flight_;
  if (is_eviction) pending_out_[tier_index(from)] -= r->footprint;
  if (dst != nullptr) reserved_bytes_[tier_index(to)] -= r->footprint;
  if (ext) reserved_bytes_[2] -= ext->bytes;
  r->moving = false;
  if (!error) {
    MoveStats& m = moves_[tier_index(from)][tier_index(to)];
    std::size_t bucket = 0;
    while (bucket < kMoveLatencyBounds.size() && seconds > kMoveLatencyBounds[bucket]) ++bucket;
    ++move_latency_[bucket];
    move_latency_sum_ += seconds;
    ++m.moves;
    m.bytes += r->size;
    m.stored_bytes += stored;
    m.seconds += seconds;
    if (to == Tier::Disk) {
      r->on_disk = true;
      r->disk_zero = false;
      r->extent = extent;
    } else {
      r->block[tier_index(to)] = dst;
    }
    --buffers_[tier_index(from)];
    ++buffers_[tier_index(to)];
    r->primary = to;
    if (tier_index(to) > tier_index(from)) {
      // Down: the faster copy goes, and so does any clean copy between
      // (clean copies only ever sit below the primary).
      arena(from)->free(r->block[tier_index(from)]);
      r->block[tier_index(from)] = nullptr;
      for (int t = tier_index(from) + 1; t < tier_index(to); ++t) {
        if (r->has_copy(static_cast<Tier>(t))) drop_clean(r, static_cast<Tier>(t));
      }
      if (is_eviction) ++evictions_[static_cast<int>(reason)];
    } else {
      // Up: the slower copy stays behind as a clean copy.
      clean_bytes_[tier_index(from)] += from == Tier::Disk ? r->extent.bytes : r->footprint;
      if (ticket && ticket->fence && !ticket->fence->done()) {
        r->copy_fence = ticket->fence;  // still reading that copy
        fenced_.push_back({r, ticket->fence, false});
      }
    }
    note_peak(to);
  } else {
    // The bytes stay where they were; give back the reserved room.
    if (dst != nullptr) arena(to)->free(dst);
    if (ext) release_later(extent);
    if (to == Tier::Disk) {
      ++errors_.spill_write_failures;
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        last_spill_error_ = e.what();
      } catch (...) {
        last_spill_error_ = "unknown error";
      }
    } else {
      try {
        std::rethrow_exception(error);
      } catch (const CorruptionError&) {
        ++errors_.corruptions;
      } catch (...) {
        ++errors_.fetch_failures;
      }
    }
  }
  emit(tier_index(to) > tier_index(from) ? TraceKind::SpillEnd : TraceKind::FetchEnd, r, from, to,
       reason, !error, static_cast<std::uint64_t>(seconds * 1e9));
  if (ticket) {
    ticket->done = true;
    ticket->error = error;
    if (!error && ticket->wants_pin && !ticket->abandoned && !r->dead) {
      grant_pin(r, Access::Read);  // the waiter upgrades to ReadWrite if it asked for it
      ticket->pin_granted = true;
    }
  }
  if (r->dead && r->pins == 0 && r->copy_fence) {
    ++r->pins;  // freed by the unpin that follows the copy
    pinned_bytes_[tier_index(r->primary)] += r->footprint;
    r->pinned_block = r->block[tier_index(r->primary)];
    fenced_.push_back({r, r->copy_fence, true});
  } else if (r->dead && r->pins == 0) {
    free_now(r);
  } else {
    link(r);
    if (!error) maybe_proactive(to);
  }
  release_deferred(lk);
  cv_.notify_all();
}

// ---- allocation ------------------------------------------------------------------

BufferRecord* PoolCore::allocate(std::size_t bytes, Tier preferred, std::string_view label) {
  Lock lk(mu_);
  check_open();
  auto rec = std::make_unique<BufferRecord>();
  BufferRecord* r = rec.get();
  r->id = next_id_++;
  r->size = bytes;
  r->footprint = bytes == 0 ? 0 : MemoryArena::footprint(bytes);
  r->label = std::string(label);

  // The fastest enabled tier at or below `preferred`.
  std::array<Tier, kTierCount> candidates{};
  std::size_t count = 0;
  for (int t = tier_index(preferred); t < kTierCount; ++t) {
    if (tier_enabled(static_cast<Tier>(t))) candidates[count++] = static_cast<Tier>(t);
  }
  if (count == 0) {
    ++errors_.out_of_memory;
    throw OutOfMemory(preferred, bytes, "no tier at or below it is enabled");
  }
  if (bytes == 0) {
    r->primary = candidates.front();
    ++buffers_[tier_index(r->primary)];
    records_.emplace(r->id, std::move(rec));
    return r;
  }
  // Fast path: a free extent on the first tier, no eviction, no clock.
  bool placed = false;
  if (MemoryArena* a = arena(candidates[0])) {
    if (void* b = a->allocate(bytes)) {
      r->block[tier_index(candidates[0])] = b;
      r->primary = candidates[0];
      placed = true;
    }
  }
  const auto start = placed ? Clock::time_point{} : Clock::now();
  const auto deadline = start + options_.pressure_wait;
  bool waited = false;
  std::uint64_t largest_capacity = 0;
  for (std::size_t i = 0; i < count && !placed; ++i) {
    const Tier t = candidates[i];
    const bool last = i + 1 == count;
    largest_capacity = std::max(largest_capacity, tier_capacity(t));
    if (t == Tier::Disk) {
      if (store_->reservation_for(bytes) > store_->capacity()) continue;
      auto e = try_extent(bytes);
      if (!e) continue;
      r->on_disk = true;
      r->disk_zero = true;
      r->extent = *e;
      r->primary = Tier::Disk;
      placed = true;
    } else if (void* b = make_room(lk, t, bytes, deadline, last, &waited)) {
      r->block[tier_index(t)] = b;
      r->primary = t;
      placed = true;
    }
  }
  if (waited) stall_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  if (!placed) {
    const Tier t = candidates[count - 1];
    throw_oom(lk, preferred, bytes,
              bytes > largest_capacity
                  ? "larger than every enabled tier at or below it"
                  : "no room could be made on " + std::string(tier_name(t)) + " within " +
                        std::to_string(options_.pressure_wait.count()) + " ms" +
                        (last_spill_error_.empty() ? "" : "; last spill error: " + last_spill_error_));
  }
  ++buffers_[tier_index(r->primary)];
  r->last_use = ++clock_;
  records_.emplace(r->id, std::move(rec));
  link(r);
  note_peak(r->primary);
  emit(TraceKind::Alloc, r, r->primary, r->primary, EvictionReason::Pressure, true, 0);
  maybe_proactive(r->primary);
  return r;
}

void PoolCore::free_now(BufferRecord* r) {
  unlink(r);
  for (Tier t : {Tier::Device, Tier::Host}) {
    if (void* b = r->block[tier_index(t)]) {
      if (r->primary != t) clean_bytes_[tier_index(t)] -= r->footprint;
      arena(t)->free(b);
    }
  }
  if (r->on_disk) {
    if (r->primary != Tier::Disk) clean_bytes_[2] -= r->extent.bytes;
    release_later(r->extent);
  }
  if (r->pins > 0) pinned_bytes_[tier_index(r->primary)] -= r->footprint;
  --buffers_[tier_index(r->primary)];
  emit(TraceKind::Free, r, r->primary, r->primary, EvictionReason::Explicit, true, 0);
  records_.erase(r->id);
}

void PoolCore::free(BufferRecord* r) noexcept {
  Lock lk(mu_);
  if (closed_) return;
  if (r->moving || r->pins > 0) {
    r->dead = true;  // freed when the move commits or the last pin ends
    unlink(r);
    return;
  }
  free_now(r);
  release_deferred(lk);
  if (waiters_ > 0) cv_.notify_all();
}

// ---- pins ----------------------------------------------------------------------

void PoolCore::grant_pin(BufferRecord* r, Access access) {
  r->fresh = false;
  if (r->pins++ == 0) {
    primary_lists_[tier_index(r->primary)].remove(r);
    uncount_backed(r);  // pinned: not evictable, so not room either
    pinned_bytes_[tier_index(r->primary)] += r->footprint;
    r->pinned_block = r->primary == Tier::Disk ? nullptr : r->block[tier_index(r->primary)];
  }
  if (access == Access::ReadWrite) invalidate_clean(r);
  ++pins_;
  emit(TraceKind::Pin, r, r->primary, r->primary, EvictionReason::Pressure, true, 0);
}

void PoolCore::invalidate_clean(BufferRecord* r) {
  if (r->copy_fence) {
    r->stale_clean = true;  // the copy in flight still reads the host copy
    return;
  }
  for (Tier t : {Tier::Host, Tier::Disk}) {
    if (r->has_clean(t)) drop_clean(r, t);
  }
}

void PoolCore::settle(BufferRecord* r) {
  r->copy_fence.reset();
  std::erase_if(fenced_, [r](const Fenced& f) { return f.record == r && !f.unpin; });
  unlink(r);
  if (r->stale_clean) {
    r->stale_clean = false;
    for (Tier t : {Tier::Host, Tier::Disk}) {
      if (r->has_clean(t)) drop_clean(r, t);
    }
  }
  link(r);
}

bool PoolCore::poll_fences(Lock& lk) {
  if (fenced_.empty()) return false;
  bool changed = false;
  // Unpins may free records; collect first, then apply.
  std::vector<Fenced> ready;
  for (std::size_t i = 0; i < fenced_.size();) {
    if (fenced_[i].fence->done()) {
      ready.push_back(std::move(fenced_[i]));
      fenced_[i] = std::move(fenced_.back());
      fenced_.pop_back();
    } else {
      ++i;
    }
  }
  // Copy fences first: an unpin waiting on the same copy then sees it settled.
  for (auto& f : ready) {
    if (!f.unpin && f.record->copy_fence == f.fence) settle(f.record);
  }
  for (auto& f : ready) {
    if (f.unpin) unpin_locked(lk, f.record);
    changed = true;
  }
  if (changed) {
    release_deferred(lk);
    cv_.notify_all();
  }
  return changed;
}

void PoolCore::wait_for_change(Lock& lk, Clock::time_point deadline) {
  ++waiters_;
  if (fenced_.empty()) {
    cv_.wait_until(lk.native(), deadline);
  } else {
    cv_.wait_until(lk.native(), std::min(deadline, Clock::now() + std::chrono::microseconds(200)));
  }
  --waiters_;
  poll_fences(lk);
}

void* PoolCore::pin(BufferRecord* r, Tier where, Access access) {
  return pin_impl(r, where, access, false, nullptr);
}

void* PoolCore::pin(BufferRecord* r, Tier where, Access access, void* stream) {
  return pin_impl(r, where, access, where == Tier::Device, stream);
}

void* PoolCore::pin_impl(BufferRecord* r, Tier where, Access access, bool ordered, void* stream) {
  Lock lk(mu_);
  check_open();
  if (where == Tier::Disk) {
    throw std::invalid_argument("spillway: cannot pin on the disk tier; pin on Device or Host");
  }
  if (!tier_enabled(where)) {
    throw std::invalid_argument("spillway: cannot pin on the " + std::string(tier_name(where)) +
                                " tier: it is turned off in this pool");
  }
  if (r->copy_fence) {
    // A stream-ordered copy into the device block may still be running.
    if (r->copy_fence->done()) {
      poll_fences(lk);
    } else if (r->primary == where && !r->moving && ordered) {
      arena(where)->order_after(stream, r->copy_fence);  // the stream waits, not the host
    } else {
      const auto until = Clock::now() + options_.io_timeout;
      while (r->copy_fence) {
        if (Clock::now() >= until) {
          ++errors_.timeouts;
          throw IoError(ETIMEDOUT, "(device tier)", 0,
                        "waiting " + std::to_string(options_.io_timeout.count()) +
                            " ms for a stream-ordered copy into buffer " + std::to_string(r->id));
        }
        wait_for_change(lk, until);
        check_open();
      }
    }
  }
  // Fast path: resident and not moving.
  if (r->primary == where && !r->moving) {
    grant_pin(r, access);
    if (!deferred_release_.empty()) release_deferred(lk);
    return r->block[tier_index(where)];
  }
  if (r->size == 0) {
    if (r->pins > 0 && r->primary != where) {
      throw std::logic_error("spillway: zero-byte buffer is pinned on another tier");
    }
    --buffers_[tier_index(r->primary)];
    r->primary = where;
    ++buffers_[tier_index(where)];
    grant_pin(r, access);
    return nullptr;
  }
  const auto start = Clock::now();
  const auto deadline = start + options_.pressure_wait;
  ++pin_waits_;
  NvtxRange wait_range("spillway pin wait");
  // Ends (under mu_) however the wait ends: the stall and its trace event.
  struct StallClock {
    PoolCore* core;
    BufferRecord* r;
    Tier from, where;
    Clock::time_point start;
    ~StallClock() {
      const auto waited = Clock::now() - start;
      core->stall_seconds_ += std::chrono::duration<double>(waited).count();
      core->emit(TraceKind::PinWait, r, from, where, EvictionReason::Pressure, true,
                 static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count()));
    }
  } stall{this, r, r->primary, where, start};
  for (;;) {
    check_open();
    poll_fences(lk);
    if (r->moving) {
      wait_io(lk, "a move of the buffer being pinned");
      continue;
    }
    if (r->primary == where) {
      grant_pin(r, access);
      release_deferred(lk);
      return r->block[tier_index(where)];
    }
    if (r->pins > 0) {
      // Pinned on another tier: wait for those pins, within pressure_wait.
      if (Clock::now() >= deadline) {
        throw_oom(lk, where, r->size,
                  "buffer " + std::to_string(r->id) + " ('" + r->label + "') is pinned on the " +
                      std::string(tier_name(r->primary)) + " tier by another pin");
      }
      wait_for_change(lk, deadline);
      continue;
    }
    const Tier from = r->primary;
    if (tier_index(where) > tier_index(from) && r->has_clean(where)) {
      // Down to a tier that already holds a clean copy: drop the primary.
      demote_to_clean(r, where);
      continue;
    }
    void* dst = make_room(lk, where, r->size, deadline, true);
    if (dst == nullptr) {
      throw_oom(lk, where, r->size, "no room could be made within " +
                                        std::to_string(options_.pressure_wait.count()) + " ms");
    }
    if (r->moving || r->pins > 0 || r->primary != from || r->dead || r->has_copy(where)) {
      // The record changed while we waited for room: start over. Its primary
      // may be back on `from` after moving away and back, with a clean copy
      // on `where` now (a move into `where` would orphan that block).
      arena(where)->free(dst);
      continue;
    }
    // The fetch runs on this thread, which would only wait for a worker
    // otherwise (a hand-off costs two thread wake-ups); the lock is released
    // while it copies, and other waiters see the move as in flight.
    auto ticket = std::make_shared<MoveTicket>();
    ticket->wants_pin = true;
    ticket->ordered = ordered;
    ticket->stream = stream;
    launch_move(r, where, dst, std::nullopt, false, EvictionReason::Pressure, ticket, true);
    {
      Unlocked unlocked(lk, mu_);
      run_move(r, from, where, dst, std::nullopt, false, EvictionReason::Pressure, ticket);
    }
    if (ticket->error) std::rethrow_exception(ticket->error);
    if (ticket->pin_granted) {
      if (access == Access::ReadWrite) {
        invalidate_clean(r);
        release_deferred(lk);
      }
      return r->block[tier_index(where)];
    }
  }
}

void PoolCore::unpin(BufferRecord* r) noexcept {
  Lock lk(mu_);
  unpin_locked(lk, r);
}

void PoolCore::unpin_after(BufferRecord* r, Tier pinned_on, void* stream) {
  MemoryArena* a = arena(pinned_on);
  std::shared_ptr<Fence> fence;
  if (pinned_on == Tier::Device && a != nullptr) {
    // Throws naming the CUDA call; the pin is then kept (never ended early).
    fence = a->fence_on(stream);
  }
  if (!fence || fence->done()) {
    unpin(r);
    return;
  }
  Lock lk(mu_);
  if (closed_) return;  // storage stays while the pin is counted
  fenced_.push_back({r, std::move(fence), true});
}

void PoolCore::unpin_locked(Lock& lk, BufferRecord* r) {
  if (r->pins == 0) return;
  if (r->pins == 1 && r->copy_fence && !closed_) {
    if (!r->copy_fence->done()) {
      // The last pin goes before the stream-ordered copy has finished: hold
      // it until the copy is done, so nothing reuses the blocks under it.
      fenced_.push_back({r, r->copy_fence, true});
      return;
    }
    settle(r);
  }
  if (--r->pins == 0) {
    if (!closed_) pinned_bytes_[tier_index(r->primary)] -= r->footprint;
    emit(TraceKind::Unpin, r, r->primary, r->primary, EvictionReason::Pressure, true, 0);
    if (r->dead && !r->moving && !closed_) {
      free_now(r);
      release_deferred(lk);
    } else {
      r->last_use = ++clock_;
      link(r);
    }
    if (waiters_ > 0) cv_.notify_all();
  }
}

void PoolCore::prefetch(BufferRecord* r, Tier where) {
  Lock lk(mu_);
  check_open();
  if (where == Tier::Disk || !tier_enabled(where)) {
    throw std::invalid_argument("spillway: cannot prefetch to the " +
                                std::string(tier_name(where)) + " tier");
  }
  if (r->moving || r->pins > 0 || r->size == 0 || tier_index(where) >= tier_index(r->primary)) {
    return;
  }
  void* dst = try_block(where, r->size);
  if (dst == nullptr) return;
  launch_move(r, where, dst, std::nullopt, false, EvictionReason::Pressure, nullptr);
  release_deferred(lk);
}

void PoolCore::hint_next_use(BufferRecord* r, std::uint64_t step) {
  Lock lk(mu_);
  check_open();
  r->next_use = step;
  r->fresh = false;
}

void PoolCore::evict(BufferRecord* r, Tier where) {
  Lock lk(mu_);
  check_open();
  if (where == Tier::Device || !tier_enabled(where)) {
    throw std::invalid_argument("spillway: cannot evict to the " + std::string(tier_name(where)) +
                                " tier (evict to an enabled Host or Disk tier)");
  }
  const auto deadline = Clock::now() + options_.pressure_wait;
  for (;;) {
    check_open();
    if (r->size == 0 || tier_index(r->primary) >= tier_index(where)) return;
    if (r->moving) {
      wait_io(lk, "a move of the buffer being evicted");
      continue;
    }
    if (r->pins > 0) {
      if (Clock::now() >= deadline) {
        throw_oom(lk, r->primary, r->size,
                  "cannot evict buffer " + std::to_string(r->id) + ": it stays pinned");
      }
      ++waiters_;
      cv_.wait_until(lk.native(), deadline);
      --waiters_;
      continue;
    }
    const Tier from = r->primary;
    if (r->has_clean(where)) {
      demote_to_clean(r, where);
      ++evictions_[static_cast<int>(EvictionReason::Explicit)];
      ++clean_evictions_;
      return;
    }
    void* dst = nullptr;
    std::optional<SpillExtent> ext;
    if (where == Tier::Host) {
      dst = make_room(lk, Tier::Host, r->size, deadline, true);
      if (dst == nullptr) throw_oom(lk, Tier::Host, r->size, "no room for an explicit eviction");
    } else {
      ext = try_extent(r->size);
      if (!ext) throw_oom(lk, Tier::Disk, r->size, "the disk quota is full");
    }
    if (r->moving || r->pins > 0 || r->primary != from || r->dead || r->has_copy(where)) {
      // Changed while make_room had dropped the lock (possibly moved away
      // and back, leaving a clean copy on `where`): start over.
      if (dst != nullptr) arena(where)->free(dst);
      if (ext) store_->release(*ext);
      continue;
    }
    // An explicit eviction blocks its caller, so it runs on the caller's
    // thread (without the lock) rather than waiting for a worker.
    auto ticket = std::make_shared<MoveTicket>();
    launch_move(r, where, dst, ext, true, EvictionReason::Explicit, ticket, true);
    {
      Unlocked unlocked(lk, mu_);
      run_move(r, from, where, dst, ext, true, EvictionReason::Explicit, ticket);
    }
    if (ticket->error) std::rethrow_exception(ticket->error);
  }
}

Tier PoolCore::tier_of(const BufferRecord* r) const {
  Lock lk(mu_);
  check_open();
  return r->primary;
}

unsigned PoolCore::clean_copies(const BufferRecord* r) const {
  Lock lk(mu_);
  check_open();
  unsigned mask = 0;
  if (r->stale_clean) return mask;  // invalidated; dropped once the copy ends
  for (Tier t : {Tier::Device, Tier::Host, Tier::Disk}) {
    if (r->has_clean(t)) mask |= 1u << tier_index(t);
  }
  return mask;
}

void PoolCore::poll() {
  Lock lk(mu_);
  poll_fences(lk);
}

void PoolCore::quiesce() {
  Lock lk(mu_);
  while (moves_in_flight_ > 0) wait_io(lk, "moves in flight to finish");
  poll_fences(lk);
}

// ---- errors, stats, trace ---------------------------------------------------------

std::vector<std::pair<std::string, std::size_t>> PoolCore::pinned_by_label(Tier t) const {
  std::map<std::string, std::size_t> by_label;
  for (const auto& [id, r] : records_) {
    if (r->pins > 0 && r->primary == t) by_label[r->label] += r->footprint;
  }
  std::vector<std::pair<std::string, std::size_t>> out(by_label.begin(), by_label.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (out.size() > 16) out.resize(16);
  return out;
}

void PoolCore::throw_oom(Lock& lk, Tier t, std::size_t bytes, const std::string& detail) {
  ++errors_.out_of_memory;
  auto pinned = pinned_by_label(t);
  emit(TraceKind::OutOfMemory, nullptr, t, t, EvictionReason::Pressure, false, 0, bytes);
  release_deferred(lk);
  throw OutOfMemory(t, bytes, detail, std::move(pinned));
}

void PoolCore::note_peak(Tier t) {
  if (t == Tier::Disk || arena(t) == nullptr) return;  // disk peaks are taken in stats()
  peak_bytes_[tier_index(t)] = std::max<std::uint64_t>(peak_bytes_[tier_index(t)], arena(t)->used());
}

void PoolCore::set_trace(std::shared_ptr<TraceSink> sink) {
  // The new recorder's thread samples the tiers under mu_, and the old one
  // takes a last sample when it stops: neither is made or joined under mu_.
  std::unique_ptr<instrument::Recorder> fresh;
  if (sink) {
    fresh = std::make_unique<instrument::Recorder>(
        std::move(sink), [this](std::array<instrument::TierSample, kTierCount>& out) { sample_tiers(out); });
  }
  std::unique_ptr<instrument::Recorder> old;
  {
    Lock lk(mu_);
    old = std::move(recorder_);
    recorder_ = std::move(fresh);
    tracing_.store(recorder_ != nullptr, std::memory_order_relaxed);
  }
  old.reset();
}

void PoolCore::sample_tiers(std::array<instrument::TierSample, kTierCount>& out) const {
  Lock lk(mu_);
  for (Tier t : {Tier::Device, Tier::Host}) {
    const MemoryArena* a = arena(t);
    if (a == nullptr) continue;
    auto& s = out[tier_index(t)];
    s.enabled = true;
    s.used = a->used();
    s.pinned = pinned_bytes_[tier_index(t)];
    s.capacity = a->capacity();
  }
  if (store_) {
    auto& s = out[tier_index(Tier::Disk)];
    s.enabled = true;
    const SpillStoreStats ds = store_->stats();
    s.used = ds.used_bytes;
    s.pinned = 0;
    s.capacity = ds.capacity_bytes;
  }
}

void PoolCore::record_event(TraceKind kind, const BufferRecord* r, Tier from, Tier to,
                            EvictionReason reason, bool ok, std::uint64_t duration_ns, std::uint64_t bytes) {
  instrument::Recorder* rec = recorder_.get();
  std::uint32_t label = 0;
  if (r != nullptr && !r->label.empty()) {
    if (r->trace_label_generation != rec->generation()) {
      r->trace_label = rec->intern(r->label);
      r->trace_label_generation = rec->generation();
    }
    label = r->trace_label;
  }
  rec->push(instrument::RawEvent{instrument::steady_now_ns(), r != nullptr ? r->id : 0,
                                 r != nullptr ? r->size : bytes, duration_ns, label,
                                 instrument::current_thread_index(), kind, from, to, reason, ok});
}

void PoolCore::record_span(std::string_view name, std::uint64_t start_ns, std::uint64_t duration_ns) {
  Lock lk(mu_);
  instrument::Recorder* rec = recorder_.get();
  if (rec == nullptr) return;
  const std::uint32_t label = rec->intern(name);
  const std::uint32_t thread = instrument::current_thread_index();
  rec->push(instrument::RawEvent{start_ns, 0, 0, 0, label, thread, TraceKind::NodeBegin, Tier::Host,
                                 Tier::Host, EvictionReason::Pressure, true});
  rec->push(instrument::RawEvent{start_ns + duration_ns, 0, 0, duration_ns, label, thread, TraceKind::NodeEnd,
                                 Tier::Host, Tier::Host, EvictionReason::Pressure, true});
}

PoolStats PoolCore::stats() const {
  Lock lk(mu_);
  PoolStats s;
  for (Tier t : {Tier::Device, Tier::Host}) {
    TierStats& ts = s.tiers[tier_index(t)];
    const MemoryArena* a = arena(t);
    if (a == nullptr) continue;
    const SubAllocatorStats as = a->stats();
    ts.enabled = true;
    ts.capacity_bytes = a->capacity();
    ts.used_bytes = as.used_bytes;
    ts.largest_free_bytes = as.largest_free_bytes;
    ts.fragmentation = as.fragmentation;
  }
  if (store_) {
    const SpillStoreStats ds = store_->stats();
    TierStats& ts = s.tiers[2];
    ts.enabled = true;
    ts.capacity_bytes = ds.capacity_bytes;
    ts.used_bytes = ds.used_bytes;
    ts.largest_free_bytes = ds.largest_free_bytes;
    ts.fragmentation = ds.fragmentation;
    s.disk_stored_bytes = ds.stored_bytes;
    s.disk_file_bytes = ds.file_bytes;
    s.disk_direct_io = ds.direct_io;
    s.disk_overlapped_writes = ds.overlapped_writes;
    peak_bytes_[2] = std::max(peak_bytes_[2], ds.used_bytes);
  }
  for (int t = 0; t < kTierCount; ++t) {
    s.tiers[t].clean_bytes = clean_bytes_[t];
    s.tiers[t].pinned_bytes = pinned_bytes_[t];
    s.tiers[t].peak_bytes = std::max(peak_bytes_[t], s.tiers[t].used_bytes);
    s.tiers[t].buffers = buffers_[t];
  }
  s.moves = moves_;
  s.evictions = evictions_;
  s.clean_evictions = clean_evictions_;
  s.pins = pins_;
  s.pin_waits = pin_waits_;
  s.stall_seconds = stall_seconds_;
  s.move_latency = move_latency_;
  s.move_latency_sum = move_latency_sum_;
  s.live_buffers = records_.size();
  s.errors = errors_;
  return s;
}

}  // namespace spillway::detail
