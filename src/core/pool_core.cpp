// src/core/pool_core.cpp — construction, shutdown, the state word's slow-path
// helpers, tracing and small queries. See pool_core.hpp for the file map.
#include "pool_core.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "src/instrument/chrome_trace.hpp"
#include "src/instrument/live_stats.hpp"
#include "src/instrument/metrics_file.hpp"
#include "src/instrument/nvtx.hpp"
#include "tiers/device/cuda_backend.hpp"
#include "tiers/device/staging_ring.hpp"

namespace spillway::detail {

namespace {
std::mutex& seams_mutex() {
  static std::mutex mu;
  return mu;
}
DeviceArenaFactory& factory_slot() {
  static DeviceArenaFactory factory;
  return factory;
}
struct RaceSeam {
  RaceHook hook = nullptr;
  bool broken = false;
};
RaceSeam& race_seam() {
  static RaceSeam seam;
  return seam;
}
}  // namespace

void set_simulated_device_arena_factory(DeviceArenaFactory factory) {
  std::lock_guard lk(seams_mutex());
  factory_slot() = std::move(factory);
}

void set_race_hook_for_testing(RaceHook hook, bool broken_pin_ordering) {
  std::lock_guard lk(seams_mutex());
  race_seam() = {hook, broken_pin_ordering};
}

// ---- construction ---------------------------------------------------------------

PoolCore::PoolCore(PoolOptions options) : options_(std::move(options)) {
  options_.validate();
  // Like SPILLWAY_RECORD, read by every pool (not only from_env()'s), so
  // that `spillway record --deterministic` reaches any program.
  if (!options_.deterministic_moves) options_.deterministic_moves = deterministic_moves_from_env();
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
        std::lock_guard lk(seams_mutex());
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
  set_cache_limits();
  for (int t = 0; t < kTierCount; ++t) {
    first_tier_[static_cast<std::size_t>(t)] = kTierCount;
    for (int u = t; u < kTierCount; ++u) {
      if (tier_enabled(static_cast<Tier>(u))) {
        first_tier_[static_cast<std::size_t>(t)] = u;
        break;
      }
    }
  }
  policy_ = make_replacement_policy(options_.policy);
  {
    std::lock_guard lk(seams_mutex());
    race_hook_ = race_seam().hook;
    broken_pin_ordering_ = race_seam().broken;
  }
  if (race_hook_ != nullptr) fast_mode_.store(kInstrumented, std::memory_order_relaxed);
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
    start_recording();
  } catch (...) {
    live_.reset();
    metrics_.reset();
    throw;
  }
}

PoolCore::~PoolCore() {
  shutdown();
  // Records of detached Buffers and Pins live until here.
  MutexLock lk(mu_);
  adopt_all();
  while (BufferRecord* r = all_.front()) {
    all_.remove(r);
    delete r;
  }
}

void PoolCore::release_pool(std::shared_ptr<PoolCore> core) {
  core->access_log_.store(nullptr, std::memory_order_relaxed);  // the pool's last event is behind us
  core->shutdown();
  core->finish_recording();
  Lock lk(core->mu_);
  core->pool_released_ = true;
  if (core->live_handles() > 0) core->self_ = core;
}

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
    if (closed_.load(std::memory_order_relaxed)) return;
    // Under every shard's lock, so that no allocation on the fast path
    // begins after this (they check closed_ under their shard's lock), and
    // with every record off the fast path: pins and unpins from here on
    // take the slow path, which knows the pool is closed.
    shards_.for_each([](ThreadShard& s) SPILLWAY_NO_THREAD_SAFETY_ANALYSIS { s.lock.lock(); });
    closed_.store(true, std::memory_order_relaxed);
    fast_mode_.store(kSlowOnly, std::memory_order_relaxed);
    shards_.for_each([this](ThreadShard& s) SPILLWAY_NO_THREAD_SAFETY_ANALYSIS {
      adopt_pending(s);
      collect_garbage(s);
      s.lock.unlock();
    });
    for (BufferRecord* r = all_.front(); r != nullptr; r = all_.next(r)) {
      stop_fast_path(r);
      unshare(r);  // readers left end it later
    }
  }
  cv_.notify_all();  // waiters see the pool closed and throw
  io_->shutdown();  // finishes and commits every move queued on the workers
  Lock lk(mu_);
  // Deterministic mode: moves queued for a caller that has not run them yet
  // (another thread's call still under way) are counted in flight; run them.
  run_caller_moves(lk);
  // Moves that callers run on their own threads (pin fetches, explicit
  // evictions) still read or write the arenas and the spill file: wait for
  // them, within io_timeout. One that outlasts it keeps storage alive; the
  // core, which its Buffer holds, frees it when the last handle goes.
  if (!cv_.wait_for(lk.native(), options_.io_timeout, [this]() SPILLWAY_REQUIRES(mu_) { return moves_in_flight_ == 0; })) {
    ++errors_.timeouts;
    for (BufferRecord* r = all_.front(); r != nullptr; r = all_.next(r)) unlink(r);
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
  for (BufferRecord* r = all_.front(); r != nullptr; r = all_.next(r)) {
    unlink(r);
    if (r->pins() > 0) pins_live = true;
  }
  // Records stay allocated (detached Buffers and Pins still point at them)
  // until the core itself is destroyed. Storage goes now, except memory
  // arenas that live pins still point into (the thread caches' blocks are
  // part of the arenas).
  store_.reset();
  {
    MutexLock slk(staging_mu_);
    free_rings_.clear();  // before the arena they copy to and from
  }
  if (!pins_live) {
    arenas_[0].reset();
    arenas_[1].reset();
    shards_.for_each([](ThreadShard& s) SPILLWAY_NO_THREAD_SAFETY_ANALYSIS {
      SpinGuard g(s.lock);
      for (auto& tier : s.bins) tier.fill(CacheBin{});
      for (auto& b : s.cached_bytes) b.store(0, std::memory_order_relaxed);
    });
  }
  deferred_release_.clear();
}

void PoolCore::start_recording() {
  std::string path = options_.record_file;
  if (path.empty()) {
    const char* v = std::getenv("SPILLWAY_RECORD");
    if (v != nullptr) path = v;
  }
  if (path.empty()) return;
  record::RecordedOptions o;
  o.device_bytes = tier_capacity(Tier::Device);
  o.host_bytes = tier_capacity(Tier::Host);
  o.disk_enabled = store_ != nullptr;
  o.disk_bytes = store_ ? store_->capacity() : 0;
  o.device_backend = std::string(device_backend_name());
  o.policy = options_.policy;
  o.high_watermark = options_.high_watermark;
  o.low_watermark = options_.low_watermark;
  o.compression = options_.disk.compression;
  o.io_threads = options_.io_threads;
  o.deterministic_moves = options_.deterministic_moves;
  access_recorder_ = std::make_unique<record::AccessRecorder>(record::AccessRecorder::claim_path(path),
                                                              program_invocation_name, o, options_.io_timeout);
  access_log_.store(access_recorder_.get(), std::memory_order_relaxed);
}

void PoolCore::finish_recording() {
  access_log_.store(nullptr, std::memory_order_relaxed);
  if (!access_recorder_) return;
  const PoolStats s = stats();
  record::RecordedTotals totals;
  for (int from = 0; from < kTierCount; ++from) {
    for (int to = 0; to < kTierCount; ++to) {
      const MoveStats& m = s.move(static_cast<Tier>(from), static_cast<Tier>(to));
      totals.moved_bytes[from][to] = m.bytes;
      totals.moves[from][to] = m.moves;
    }
  }
  access_recorder_->finish(totals);
}

void PoolCore::check_open() const {
  if (closed_.load(std::memory_order_relaxed)) {
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

// ---- the state word -----------------------------------------------------------------

bool PoolCore::try_claim(BufferRecord* r) {
  std::uint64_t s = r->state.load(std::memory_order_acquire);
  if ((s & (state::kBiasPin | state::kSlow | state::kGarbage)) == state::kBiasPin) {
    if (!unshare(r)) return false;  // still read
    s = r->state.load(std::memory_order_acquire);
  }
  do {
    if (state::pins(s) != 0 || (s & (state::kSlow | state::kGarbage)) != 0) return false;
  } while (!r->state.compare_exchange_weak(s, s | state::kSlow, std::memory_order_seq_cst, std::memory_order_acquire));
  r->claimed = true;
  race_point(RacePoint::Claimed);
  return true;
}

void PoolCore::release_claim(BufferRecord* r) {
  r->claimed = false;
  publish_state(r);
}

void PoolCore::publish_state(BufferRecord* r) {
  const bool slow = r->claimed || r->moving || r->dead || r->copy_fence != nullptr || r->size == 0 ||
                    closed_.load(std::memory_order_relaxed);
  const std::uint64_t tier = r->size == 0 ? state::kNoTier : static_cast<std::uint64_t>(tier_index(r->primary));
  const std::uint64_t set = state::tier_bits(static_cast<int>(tier)) | (slow ? state::kSlow : 0) |
                            (r->clean_below() ? state::kCleanBelow : 0);
  constexpr std::uint64_t kept = ~(state::kTierMask | state::kSlow | state::kCleanBelow);
  std::uint64_t s = r->state.load(std::memory_order_relaxed);
  while (!r->state.compare_exchange_weak(s, (s & kept) | set, std::memory_order_acq_rel, std::memory_order_relaxed)) {
  }
  book(r, s, (s & kept) | set);  // a tier change under a count (one being taken back) moves its bytes
}

// ---- read-shared buffers (Note [Read-shared buffers] in buffer_record.hpp) ----

PoolCore::Sharing PoolCore::revoke_sharing(BufferRecord* r) {
  std::uint64_t s = r->state.load(std::memory_order_seq_cst);
  if ((s & state::kBiasPin) == 0) return Sharing::kNone;
  if ((s & state::kBiased) != 0) r->state.fetch_and(~state::kBiased, std::memory_order_seq_cst);
  // Readers inside their window finish it (those that began it after the
  // line above see the word orphaned and keep their counts).
  wait_for_open_windows();
  if (readers_counted(r)) return Sharing::kReadersLeft;
  s = r->state.fetch_and(~state::kBiasPin, std::memory_order_seq_cst);
  book(r, s, s & ~state::kBiasPin);  // the reader pin is the caller's now
  return Sharing::kGivenBack;
}

void PoolCore::give_back_pin(BufferRecord* r) {
  const std::uint64_t before = r->state.fetch_sub(1, std::memory_order_seq_cst);
  book(r, before, before - 1);
  if (state::pins(before) == 1 && waiters_.load(std::memory_order_relaxed) > 0) cv_.notify_all();
}

bool PoolCore::unshare(BufferRecord* r) {
  switch (revoke_sharing(r)) {
    case Sharing::kGivenBack:
      give_back_pin(r);
      return true;
    case Sharing::kReadersLeft:
      return false;
    case Sharing::kNone:
      break;
  }
  return true;
}

std::uint32_t PoolCore::pins_now(BufferRecord* r) {
  if ((r->state.load(std::memory_order_seq_cst) & (state::kBiasPin | state::kGarbage)) == state::kBiasPin) unshare(r);
  return r->pins();
}

bool PoolCore::readers_counted(const BufferRecord* r) const {
  bool found = false;
  shards_.for_each([&](ThreadShard& sh) {
    for (const ReaderSlot& slot : sh.readers) {
      // The count first: a count seen non-zero was published with its record.
      if (slot.count.load(std::memory_order_seq_cst) != 0 && slot.record.load(std::memory_order_acquire) == r) {
        found = true;
      }
    }
  });
  return found;
}

std::unordered_map<const BufferRecord*, std::uint64_t> PoolCore::reader_counts() const {
  std::unordered_map<const BufferRecord*, std::uint64_t> out;
  shards_.for_each([&](ThreadShard& sh) {
    for (const ReaderSlot& slot : sh.readers) {
      const std::uint32_t n = slot.count.load(std::memory_order_seq_cst);
      if (n != 0) out[slot.record.load(std::memory_order_acquire)] += n;
    }
  });
  return out;
}

void PoolCore::wait_for_open_windows() const {
  // One shard after another: a window that opens after its shard was
  // looked at opened after the caller's change, too. A window is a few
  // instructions; a thread preempted inside one keeps this waiting for its
  // time slice.
  shards_.for_each([](ThreadShard& sh) {
    const std::uint64_t q = sh.seq.load(std::memory_order_seq_cst);
    if ((q & 1) == 0) return;
    while (sh.seq.load(std::memory_order_seq_cst) == q) std::this_thread::yield();
  });
}

void PoolCore::end_reader_slow(BufferRecord* r, ReaderSlot* slot) noexcept {
  std::shared_ptr<PoolCore> keep;  // dropped after the lock: it may be the last reference
  Lock lk(mu_);
  // Revocations run under mu_: until this count goes, the reader pin stays.
  slot->count.fetch_sub(1, std::memory_order_seq_cst);
  if (!state::orphaned(r->state.load(std::memory_order_seq_cst))) return;
  if (revoke_sharing(r) == Sharing::kGivenBack) unpin_locked(lk, r, &keep);  // frees r if it was freed while read
}

void PoolCore::reader_to_count(BufferRecord* r, ReaderSlot* slot) {
  {
    Lock lk(mu_);
    // The reader pin stays while this slot counts: r is pinned, unclaimable.
    const std::uint64_t before = r->state.fetch_add(1, std::memory_order_seq_cst);
    book(r, before, before + 1);
  }
  unpin_reader(r, slot);
}

std::uint64_t PoolCore::stop_fast_path(BufferRecord* r) {
  return r->state.fetch_or(state::kSlow, std::memory_order_acq_rel);
}

void PoolCore::wake_waiters() {
  // Taking the lock orders this after the waiter's check: it is either
  // about to look again, or already waiting for the notification.
  { Lock lk(mu_); }
  cv_.notify_all();
}

// ---- instrumented fast paths (set_race_hook_for_testing) ---------------------------

bool PoolCore::instrumented_pin(BufferRecord* r, Tier where, Access access, void** block) {
  ThreadShard* sh = shards_.mine();
  if (sh == nullptr) return false;
  sh->enter();
  std::uint64_t s;
  if (broken_pin_ordering_) {
    // The bug the interleaving tests must catch: look, then count, and
    // trust the look. A claim can come between them.
    s = r->state.load(std::memory_order_acquire);
    if (refuses_pin(s, where, access)) {
      sh->leave();
      return false;
    }
    race_point(RacePoint::PinChecked);
    s = r->state.fetch_add(1, std::memory_order_acq_rel);
  } else {
    race_point(RacePoint::PinChecked);
    s = r->state.fetch_add(1, std::memory_order_acq_rel);
    if (refuses_pin(s, where, access)) {
      book(*sh, r, s, s + 1);
      take_back(*sh, r, 1);
      sh->leave();
      return false;
    }
  }
  *block = finish_pin(*sh, r, where, s);
  return true;
}

bool PoolCore::instrumented_unpin(BufferRecord* r) {
  ThreadShard* sh = shards_.mine();
  if (sh == nullptr) return false;
  sh->enter();
  race_point(RacePoint::UnpinChecked);
  const std::uint64_t s = r->state.fetch_sub(1, std::memory_order_seq_cst);
  book(*sh, r, s, s - 1);
  if ((s & (state::kSlow | state::kFrozen)) != 0 || state::pins(s) == 0) {
    take_back(*sh, r, -1);
    sh->leave();
    return false;
  }
  sh->leave();
  if (state::pins(s) == 1 && waiters_.load(std::memory_order_seq_cst) > 0) wake_waiters();
  return true;
}

// ---- tracing -----------------------------------------------------------------------

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
    // While recording, every pin, unpin, allocation and free is an event,
    // recorded under mu_: the fast paths stand aside.
    if (!closed_.load(std::memory_order_relaxed) && race_hook_ == nullptr) {
      fast_mode_.store(recorder_ ? kSlowOnly : kFast, std::memory_order_relaxed);
    }
  }
  old.reset();
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

}  // namespace spillway::detail
