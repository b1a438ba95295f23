// stress/stress_run.cpp — run_stress: the pool and its working set, the
// worker, checker and watchdog threads, the final check with faults off,
// and the result (summary text and JSON). See stress_run.hpp.
#include "stress_run.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "driver.hpp"
#include "pattern.hpp"
#include "tiers/disk/spill_store.hpp"

namespace spillway::stress {

namespace {

constexpr const char* kWorkloadNames[kWorkloads] = {"uniform", "zipf", "sweep", "chain", "pinheavy", "thrash"};
constexpr std::size_t kMaxViolationsKept = 100;
constexpr std::size_t kMaxSlots = 200000;

std::int64_t steady_ns(detail::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::string bytes_text(double b) {
  char buf[32];
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  else if (b >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

std::string u64(std::uint64_t v) { return std::to_string(v); }

}  // namespace

const char* workload_name(Workload w) { return kWorkloadNames[static_cast<int>(w)]; }

Workload parse_workload(const std::string& name) {
  for (int i = 0; i < kWorkloads; ++i) {
    if (name == kWorkloadNames[i]) return static_cast<Workload>(i);
  }
  throw std::invalid_argument("--workload: unknown workload '" + name +
                              "' (uniform, zipf, sweep, chain, pinheavy, thrash)");
}

double default_oversubscription(Workload w) {
  switch (w) {
    case Workload::Uniform: return 4.0;
    case Workload::Zipf: return 4.0;
    case Workload::Sweep: return 4.0;
    case Workload::Chain: return 2.0;
    case Workload::PinHeavy: return 2.0;
    case Workload::Thrash: return 1.5;
  }
  return 4.0;
}

std::chrono::milliseconds StressConfig::effective_watchdog_bound() const {
  return watchdog_bound.count() > 0 ? watchdog_bound : 2 * io_timeout + pressure_wait;
}

void StressConfig::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("spillway stress: " + what); };
  if (threads < 1 || threads > 256) fail("--threads must be 1..256, got " + std::to_string(threads));
  if (ops == 0 && !(duration_seconds > 0)) fail("--duration must be > 0 seconds (or give --ops)");
  if (size_min < 1) fail("--size-min must be at least 1 byte");
  if (size_max < size_min) fail("--size-max (" + u64(size_max) + ") is below --size-min (" + u64(size_min) + ")");
  if (host_bytes == 0 && device_bytes == 0) fail("--device and --host are both 0: nothing to pin on");
  const std::size_t smallest = host_bytes == 0 ? device_bytes : device_bytes == 0 ? host_bytes
                                                                : std::min(device_bytes, host_bytes);
  if (size_max > smallest / 2) {
    fail("--size-max (" + u64(size_max) + ") must be at most half of the smallest memory tier (" +
         u64(smallest) + " bytes), so that buffers can be pinned on either tier");
  }
  if (oversubscription < 0 || oversubscription > 1000) fail("--oversub must be 0..1000");
  if (faults_stop_seconds < 0) fail("--faults-stop must be >= 0");
  if (pressure_wait.count() < 1 || io_timeout.count() < 1) fail("--pressure-wait and --io-timeout must be >= 1 ms");
  if (check_interval.count() < 1) fail("the invariant check interval must be >= 1 ms");
}

int StressResult::exit_code() const {
  if (hangs > 0 || stuck) return 3;
  return violation_count > 0 ? 1 : 0;
}

namespace detail {

// ---- Driver ----------------------------------------------------------------------

Driver::Driver(const StressConfig& config) : cfg(config) {
  cfg.validate();
  injector = std::make_shared<FaultInjector>(IoEnv::posix(), cfg.faults, cfg.seed);
  PoolOptions o;
  o.device.backend = cfg.device_bytes > 0 ? DeviceBackend::Simulated : DeviceBackend::None;
  o.device.capacity_bytes = cfg.device_bytes;
  o.host.capacity_bytes = cfg.host_bytes;
  o.disk.capacity_bytes = cfg.disk_bytes;
  o.disk.directory = cfg.spill_dir;
  o.disk.compression = cfg.compression;
  o.disk.env = injector;
  o.io_threads = cfg.io_threads;
  o.policy = cfg.policy;
  o.pressure_wait = cfg.pressure_wait;
  o.io_timeout = cfg.io_timeout;
  {
    FaultInjector::DeviceSeam seam;
    if (cfg.device_bytes > 0 && cfg.faults[FaultKind::DeviceAlloc] > 0) {
      seam = FaultInjector::install_device_faults(injector);
    }
    pool = std::make_unique<Pool>(o);
    direct_io = pool->stats().disk_direct_io;
  }
  // The working set: oversubscription x the memory tiers, in buffers of
  // sizes drawn from [size_min, size_max].
  const double over = cfg.oversubscription > 0 ? cfg.oversubscription : default_oversubscription(cfg.workload);
  const double working = over * static_cast<double>(cfg.device_bytes + cfg.host_bytes);
  const double mean = (static_cast<double>(cfg.size_min) + static_cast<double>(cfg.size_max)) / 2;
  const auto n = static_cast<std::size_t>(
      std::clamp(std::ceil(working / mean), 10.0, static_cast<double>(kMaxSlots)));
  slots.reserve(n);
  for (std::size_t i = 0; i < n; ++i) slots.push_back(std::make_unique<Slot>());
  // Zipf (s = 1.1) over ranks; ranks mapped to slots in a seeded order.
  zipf_cdf.resize(n);
  double total = 0;
  for (std::size_t r = 0; r < n; ++r) total += std::pow(static_cast<double>(r + 1), -1.1);
  double acc = 0;
  for (std::size_t r = 0; r < n; ++r) {
    acc += std::pow(static_cast<double>(r + 1), -1.1) / total;
    zipf_cdf[r] = acc;
  }
  zipf_perm.resize(n);
  std::iota(zipf_perm.begin(), zipf_perm.end(), 0u);
  std::mt19937_64 perm_rng(cfg.seed ^ 0x21f0ULL);
  std::shuffle(zipf_perm.begin(), zipf_perm.end(), perm_rng);
  pinheavy_cap_bytes = {static_cast<std::uint64_t>(0.85 * static_cast<double>(cfg.device_bytes) / cfg.threads),
                        static_cast<std::uint64_t>(0.85 * static_cast<double>(cfg.host_bytes) / cfg.threads)};
  op_budget_ = static_cast<std::int64_t>(cfg.ops);
  watchdog = std::make_unique<Watchdog>(cfg.effective_watchdog_bound(), [this](const HangReport& r) {
    std::fprintf(stderr, "\nspillway stress: %s\n", r.text.c_str());
    violation(r.text);
  });
}

void Driver::violation(std::string what) {
  violation_count_.fetch_add(1);
  spillway::detail::MutexLock lk(violations_mu_);
  if (violations_.size() < kMaxViolationsKept) violations_.push_back(std::move(what));
}

bool Driver::faults_were_on(Clock::time_point op_start) const {
  const std::int64_t off = faults_off_ns_.load();
  return cfg.faults.any() && (off == 0 || steady_ns(op_start) < off);
}

bool Driver::take_op() {
  if (cfg.ops == 0) return true;
  return op_budget_.fetch_sub(1, std::memory_order_relaxed) > 0;
}

void Driver::checker_loop(ActivitySlot* activity) {
  while (!stopping()) {
    std::vector<std::string> found;
    {
      ScopedActivity act(activity, OpKind::CheckInvariants);
      found = pool->check_invariants();
    }
    invariant_checks.fetch_add(1, std::memory_order_relaxed);
    for (auto& v : found) violation("invariant: " + v);
    PoolStats st;
    {
      ScopedActivity act(activity, OpKind::Stats);
      st = pool->stats();
    }
    for (int t = 0; t < 2; ++t) {
      if (st.tiers[t].pinned_bytes > peak_pinned[t].load()) peak_pinned[t] = st.tiers[t].pinned_bytes;
    }
    std::this_thread::sleep_for(cfg.check_interval);
  }
}

namespace {
// Threads that may never come back (a hang): joined when they finish
// within the time given, detached otherwise.
class Crew {
 public:
  template <class F>
  void spawn(F fn) {
    {
      // Threads spawned earlier may be finishing (and counting down) now.
      spillway::detail::MutexLock lk(mu_);
      ++running_;
    }
    threads_.emplace_back([this, fn = std::move(fn)]() mutable {
      fn();
      spillway::detail::MutexLock lk(mu_);
      --running_;
      cv_.notify_all();
    });
  }
  bool all_done() {
    spillway::detail::MutexLock lk(mu_);
    return running_ == 0;
  }
  // True when every thread finished (and was joined) within `limit`.
  bool join_within(std::chrono::milliseconds limit) {
    bool done = false;
    {
      spillway::detail::MutexLock lk(mu_);
      done = cv_.wait_for(lk.native(), limit, [this]() SPILLWAY_REQUIRES(mu_) { return running_ == 0; });
    }
    for (auto& t : threads_) {
      if (done) t.join();
      else t.detach();
    }
    threads_.clear();
    return done;
  }

 private:
  spillway::detail::Mutex mu_;
  std::condition_variable cv_;
  unsigned running_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;
};
}  // namespace

StressResult Driver::run() {
  StressResult out;
  out.config = cfg;
  out.config.on_progress = nullptr;
  out.buffers = slots.size();
  const auto start = Clock::now();
  auto elapsed = [&start] { return std::chrono::duration<double>(Clock::now() - start).count(); };

  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < cfg.threads; ++i) workers.push_back(std::make_unique<Worker>(*this, i));
  ActivitySlot* checker_activity = watchdog->register_thread("checker");
  ActivitySlot* main_activity = watchdog->register_thread("driver");
  watchdog->start();
  // The Crews are leaked (with this Driver) when a thread never returns.
  auto* workers_crew = new Crew;
  auto* checker_crew = new Crew;
  for (auto& w : workers) workers_crew->spawn([w = w.get()] { w->run(); });
  checker_crew->spawn([this, checker_activity] { checker_loop(checker_activity); });

  auto progress = [&] {
    if (!cfg.on_progress) return;
    StressProgress p;
    p.seconds = elapsed();
    p.ops = ops.load();
    p.pins_verified = pins_verified.load();
    p.bytes_verified = bytes_verified.load();
    p.documented_exceptions = out_of_memory.load() + fetch_io_errors.load() + evict_io_errors.load() +
                              corruption_damaged.load() + corruption_read_flip.load();
    p.violations = violation_count_.load();
    p.faults_on = cfg.faults.any() && injector->enabled();
    cfg.on_progress(p);
  };
  unsigned tick = 0;
  while (!workers_crew->all_done()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const double t = elapsed();
    if (cfg.faults_stop_seconds > 0 && t >= cfg.faults_stop_seconds && injector->enabled()) {
      faults_off_ns_ = steady_ns(Clock::now());
      injector->set_enabled(false);
    }
    if (cfg.ops == 0 && t >= cfg.duration_seconds) stop_ = true;
    if (watchdog->hung() && !stop_) {
      // The run has failed; stop injecting so that the threads come back.
      stop_ = true;
      faults_off_ns_ = steady_ns(Clock::now());
      injector->set_enabled(false);
    }
    if (++tick % 5 == 0) progress();
  }
  stop_ = true;
  // Workers end their current operation, each bounded by the watchdog's bound.
  const auto grace = 2 * cfg.effective_watchdog_bound() + std::chrono::seconds(10);
  if (!workers_crew->join_within(grace)) {
    violation("hang: " + std::string("worker threads did not return within ") +
              std::to_string(grace.count()) + " ms of being told to stop");
    out.stuck = true;
  }
  out.seconds = elapsed();
  progress();
  if (!checker_crew->join_within(grace)) {
    violation("hang: the invariant checker did not return within " + std::to_string(grace.count()) + " ms");
    out.stuck = true;
  }
  if (out.stuck) {
    // Leave the pool and everything the stuck threads touch alive.
    for (auto& w : workers) (void)w.release();
    watchdog->stop();
    fill_result(out);
    out.total_seconds = elapsed();
    return out;
  }
  delete workers_crew;
  delete checker_crew;
  workers.clear();
  {
    ScopedActivity act(main_activity, OpKind::Stats);
    out.pool = pool->stats();
  }
  // Faults off for the final check.
  if (injector->enabled()) {
    faults_off_ns_ = steady_ns(Clock::now());
    injector->set_enabled(false);
  }
  final_check(out, main_activity);
  watchdog->stop();
  fill_result(out);
  out.total_seconds = elapsed();
  return out;
}

void Driver::final_check(StressResult& out, ActivitySlot* activity) {
  auto quiesce = [&](const char* when) {
    try {
      ScopedActivity act(activity, OpKind::Quiesce);
      pool->quiesce();
    } catch (const std::exception& e) {
      violation(std::string("quiesce ") + when + " threw: " + e.what());
    }
    std::vector<std::string> found;
    {
      ScopedActivity act(activity, OpKind::CheckInvariants);
      found = pool->check_invariants();
    }
    invariant_checks.fetch_add(1);
    for (auto& v : found) violation(std::string("invariant (") + when + "): " + v);
  };
  quiesce("after the workload");
  const Tier read_on = pool->tier_enabled(Tier::Host) ? Tier::Host : Tier::Device;
  // Reads one buffer back where it is (from disk: on host, else device),
  // verifies it and frees it. With every tier full (a disk quota), a buffer
  // on disk may find no room until others are freed: then it waits for a
  // second pass (unless `last_chance`).
  auto check = [&](Slot& s, Tier first, bool last_chance) {
    const std::uint64_t id = s.buf.id();
    const std::string name = "buffer " + u64(id) + " (" + u64(s.size) + " bytes, version " + u64(s.version) + ")";
    bool intact = false;
    std::string no_room;
    for (Tier where : {first, first == Tier::Host ? Tier::Device : Tier::Host}) {
      if (!pool->tier_enabled(where)) continue;
      try {
        ScopedActivity act(activity, OpKind::Pin, id, where, false, s.size);
        Pin p = s.buf.pin(where, Access::Read);
        if (s.written) {
          const long long bad = find_mismatch(p.data(), p.size(), id, s.version);
          bytes_verified.fetch_add(p.size());
          if (bad >= 0) {
            violation("final check: " + name + " read on " + std::string(tier_name(where)) + ": byte " +
                      std::to_string(bad) + " differs from the pattern");
            break;
          }
        }
        intact = true;
        break;
      } catch (const CorruptionError& e) {
        const std::uint64_t begin = e.record_offset;
        const std::uint64_t end = begin + spillway::detail::SpillStore::record_span(s.size, direct_io);
        if (e.buffer_id == id && injector->damaged_on_disk(begin, end)) {
          ++out.final_corrupted_reported;  // its only copy was damaged by a write flip
        } else {
          violation("final check: " + name + ": CorruptionError with faults off that no injected flip explains: " +
                    e.what());
        }
        break;
      } catch (const OutOfMemory& e) {
        no_room = e.what();  // try the other memory tier
      } catch (const std::exception& e) {
        violation("final check: " + name + " is lost: " + e.what());
        break;
      }
    }
    if (!intact && !no_room.empty()) {
      if (!last_chance) return false;
      violation("final check: " + name + " could not be read back, even with every other buffer freed: " + no_room);
    }
    ++out.final_checked;
    if (s.io_error_seen) ++out.final_io_error_seen;
    if (s.read_flip_seen) ++out.final_read_flip_seen;
    if (intact) {
      ++out.final_intact;
      if (s.io_error_seen) ++out.final_io_error_recovered;
      if (s.read_flip_seen) ++out.final_read_flip_recovered;
    }
    ScopedActivity act(activity, OpKind::Free, id);
    s.buf.reset();
    return true;
  };
  // Buffers already in memory first, pinned where they are: reading them
  // moves nothing, and freeing them makes room for those on disk.
  std::vector<std::pair<Slot*, Tier>> order, on_disk, later;
  for (auto& sp : slots) {
    if (!sp->buf) continue;
    Tier t = Tier::Disk;
    try {
      t = sp->buf.tier();
    } catch (const std::exception& e) {
      violation("final check: tier() of buffer " + u64(sp->buf.id()) + " threw " + e.what());
    }
    if (t == Tier::Disk) on_disk.emplace_back(sp.get(), read_on);
    else order.emplace_back(sp.get(), t);
  }
  order.insert(order.end(), on_disk.begin(), on_disk.end());
  for (auto [s, t] : order) {
    if (!check(*s, t, false)) later.emplace_back(s, read_on);
  }
  for (auto [s, t] : later) check(*s, t, true);
  quiesce("after freeing every buffer");
  PoolStats st;
  {
    ScopedActivity act(activity, OpKind::Stats);
    st = pool->stats();
  }
  std::string left;
  for (Tier t : {Tier::Device, Tier::Host, Tier::Disk}) {
    const auto& ts = st.tier(t);
    out.leftover_bytes += ts.used_bytes;
    if (ts.used_bytes != 0 || ts.pinned_bytes != 0 || ts.buffers != 0) {
      left.append(" ").append(tier_name(t)).append(": ").append(u64(ts.used_bytes));
      left.append(" bytes used, ").append(u64(ts.pinned_bytes)).append(" pinned, ");
      left.append(u64(ts.buffers)).append(" buffers;");
    }
  }
  if (st.live_buffers != 0) left.append(" ").append(u64(st.live_buffers)).append(" live buffers;");
  if (!left.empty()) violation("storage left after every buffer was freed:" + left);
}

void Driver::fill_result(StressResult& out) {
  const double over = cfg.oversubscription > 0 ? cfg.oversubscription : default_oversubscription(cfg.workload);
  out.config.oversubscription = over;
  out.working_set_bytes = static_cast<std::uint64_t>(over * static_cast<double>(cfg.device_bytes + cfg.host_bytes));
  out.ops = ops.load();
  out.pins = pins.load();
  out.pins_verified = pins_verified.load();
  out.bytes_verified = bytes_verified.load();
  out.bytes_written = bytes_written.load();
  out.allocations = allocations.load();
  out.frees = frees.load();
  out.evictions = evictions.load();
  out.prefetches = prefetches.load();
  out.busy_skips = busy_skips.load();
  out.max_op_seconds = static_cast<double>(max_op_ns.load()) * 1e-9;
  out.peak_pinned_bytes = {peak_pinned[0].load(), peak_pinned[1].load()};
  out.out_of_memory = out_of_memory.load();
  out.fetch_io_errors = fetch_io_errors.load();
  out.evict_io_errors = evict_io_errors.load();
  out.corruption_damaged = corruption_damaged.load();
  out.corruption_read_flip = corruption_read_flip.load();
  out.damaged_replaced = damaged_replaced.load();
  out.invariant_checks = invariant_checks.load();
  out.hangs = watchdog->hangs();
  out.watchdog_bound_seconds = std::chrono::duration<double>(watchdog->bound()).count();
  out.watchdog_longest_seconds = std::max(watchdog->longest_seconds(), out.max_op_seconds);
  out.latency_injected_seconds = injector->latency_seconds();
  const ErrorStats& e = out.pool.errors;
  auto n = [this](FaultKind k) { return injector->injected(k); };
  auto set = [&out, &n](FaultKind k, std::string text) {
    out.faults[static_cast<int>(k)] = {n(k), std::move(text)};
  };
  const std::string spill = "spill write failed, the victim stayed where it was: the pool counted " +
                            u64(e.spill_write_failures) + " failed spill writes (EIO and ENOSPC together); " +
                            "evict() threw IoError " + u64(out.evict_io_errors) + " times";
  set(FaultKind::WriteEio, spill);
  set(FaultKind::WriteEnospc, spill);
  set(FaultKind::ReadEio, "fetch failed: pin threw IoError " + u64(out.fetch_io_errors) +
                              " times (the pool counted " + u64(e.fetch_failures) +
                              " failed fetches, prefetches included); at the end " +
                              u64(out.final_io_error_recovered) + " of the " + u64(out.final_io_error_seen) +
                              " buffers still there that had thrown it read back intact");
  set(FaultKind::ShortWrite, "absorbed: the store wrote the rest");
  set(FaultKind::ShortRead, "absorbed: the store read the rest");
  char lat[160];
  std::snprintf(lat, sizeof lat, "%.2f s slept in IO calls; the longest pool call took %.3f s (watchdog bound %.1f s)",
                out.latency_injected_seconds, out.max_op_seconds, out.watchdog_bound_seconds);
  set(FaultKind::Latency, lat);
  set(FaultKind::WriteFlip, "records damaged on disk: pin threw CorruptionError " + u64(out.corruption_damaged) +
                                " times on damaged records (never wrong bytes); " + u64(out.damaged_replaced) +
                                " damaged buffers reported during the run were freed and replaced, " +
                                u64(out.final_corrupted_reported) +
                                " were still damaged at the end: corrupted, reported");
  set(FaultKind::ReadFlip, "pin threw CorruptionError " + u64(out.corruption_read_flip) +
                               " times (the pool counted " + u64(e.corruptions) +
                               " corruptions, prefetches and damaged records included); at the end " +
                               u64(out.final_read_flip_recovered) + " of the " + u64(out.final_read_flip_seen) +
                               " buffers still there that had thrown it read back intact");
  set(FaultKind::DeviceAlloc, "absorbed by evicting, retrying or falling back to host; OutOfMemory " +
                                  u64(out.out_of_memory) + " times in all (any cause)");
  out.violation_count = violation_count_.load();
  spillway::detail::MutexLock lk(violations_mu_);
  out.violations = violations_;
}

}  // namespace detail

StressResult run_stress(const StressConfig& config) {
  auto* driver = new detail::Driver(config);
  StressResult result = driver->run();
  // A stuck run leaves the driver (and its pool) to the threads that still use it.
  if (!result.stuck) delete driver;
  return result;
}

// ---- the result in words and in JSON -----------------------------------------------

std::string StressResult::summary() const {
  std::string s;
  char line[512];
  auto add = [&s, &line](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    s += line;
  };
  add("spillway stress: workload %s, %u threads, %.1f s, seed %llu\n", workload_name(config.workload),
      config.threads, seconds, static_cast<unsigned long long>(config.seed));
  add("  tiers: device %s, host %s, disk %s; working set %s in %llu buffers of %s..%s (%.1fx device+host)\n",
      bytes_text(static_cast<double>(config.device_bytes)).c_str(), bytes_text(static_cast<double>(config.host_bytes)).c_str(),
      config.disk_bytes == kUnlimited ? "unlimited" : bytes_text(static_cast<double>(config.disk_bytes)).c_str(),
      bytes_text(static_cast<double>(working_set_bytes)).c_str(), static_cast<unsigned long long>(buffers),
      bytes_text(static_cast<double>(config.size_min)).c_str(), bytes_text(static_cast<double>(config.size_max)).c_str(),
      config.oversubscription);
  char stop[48] = "";
  if (config.faults.any() && config.faults_stop_seconds > 0) {
    std::snprintf(stop, sizeof stop, " (off after %.1f s)", config.faults_stop_seconds);
  }
  add("  faults: %s%s\n", config.faults.to_string().c_str(), stop);
  add("operations   %llu (%.0f/s): %llu pins, %llu verified at pin and at release, %s verified, %s written\n",
      static_cast<unsigned long long>(ops), seconds > 0 ? static_cast<double>(ops) / seconds : 0.0,
      static_cast<unsigned long long>(pins), static_cast<unsigned long long>(pins_verified),
      bytes_text(static_cast<double>(bytes_verified)).c_str(), bytes_text(static_cast<double>(bytes_written)).c_str());
  add("             %llu allocations, %llu frees, %llu evictions, %llu prefetches, %llu skipped (buffer busy)\n",
      static_cast<unsigned long long>(allocations), static_cast<unsigned long long>(frees),
      static_cast<unsigned long long>(evictions), static_cast<unsigned long long>(prefetches),
      static_cast<unsigned long long>(busy_skips));
  s += "moved        from -> to          moves        bytes\n";
  for (Tier from : {Tier::Device, Tier::Host, Tier::Disk}) {
    for (Tier to : {Tier::Device, Tier::Host, Tier::Disk}) {
      const MoveStats& m = pool.move(from, to);
      if (m.moves == 0) continue;
      add("             %-6s -> %-6s %10llu %12s\n", std::string(tier_name(from)).c_str(),
          std::string(tier_name(to)).c_str(), static_cast<unsigned long long>(m.moves),
          bytes_text(static_cast<double>(m.bytes)).c_str());
    }
  }
  add("stalls       %.2f s waiting inside pin/allocate (%llu pins waited); longest pool call %.3f s\n",
      pool.stall_seconds, static_cast<unsigned long long>(pool.pin_waits), max_op_seconds);
  add("pinned peak  device %s (%.0f%% of it), host %s (%.0f%%), sampled every check\n",
      bytes_text(static_cast<double>(peak_pinned_bytes[0])).c_str(),
      config.device_bytes > 0 ? 100.0 * static_cast<double>(peak_pinned_bytes[0]) / static_cast<double>(config.device_bytes) : 0.0,
      bytes_text(static_cast<double>(peak_pinned_bytes[1])).c_str(),
      config.host_bytes > 0 ? 100.0 * static_cast<double>(peak_pinned_bytes[1]) / static_cast<double>(config.host_bytes) : 0.0);
  add("outcomes     OutOfMemory %llu, IoError from pin %llu, IoError from evict %llu, CorruptionError %llu "
      "(%llu damaged records, %llu read flips) — all documented\n",
      static_cast<unsigned long long>(out_of_memory), static_cast<unsigned long long>(fetch_io_errors),
      static_cast<unsigned long long>(evict_io_errors),
      static_cast<unsigned long long>(corruption_damaged + corruption_read_flip),
      static_cast<unsigned long long>(corruption_damaged), static_cast<unsigned long long>(corruption_read_flip));
  if (config.faults.any()) {
    s += "faults injected:\n";
    for (int k = 0; k < kFaultKinds; ++k) {
      if (config.faults.rate[k] <= 0) continue;
      add("  %-13s %8llu  -> %s\n", fault_name(static_cast<FaultKind>(k)),
          static_cast<unsigned long long>(faults[k].injected), faults[k].outcome.c_str());
    }
  }
  add("final check  (faults off) %llu buffers read back: %llu intact, %llu corrupted (reported: "
      "CorruptionError), %llu lost; %llu bytes left on the tiers after freeing all\n",
      static_cast<unsigned long long>(final_checked), static_cast<unsigned long long>(final_intact),
      static_cast<unsigned long long>(final_corrupted_reported),
      static_cast<unsigned long long>(final_checked - final_intact - final_corrupted_reported),
      static_cast<unsigned long long>(leftover_bytes));
  add("invariants   %llu checks\n", static_cast<unsigned long long>(invariant_checks));
  add("watchdog     bound %.1f s, %llu hangs%s\n", watchdog_bound_seconds, static_cast<unsigned long long>(hangs),
      stuck ? " (threads stuck: the pool was left running)" : "");
  add("violations   %llu\n", static_cast<unsigned long long>(violation_count));
  for (const auto& v : violations) s += "  " + v + "\n";
  if (violation_count > violations.size()) {
    add("  ... and %llu more\n", static_cast<unsigned long long>(violation_count - violations.size()));
  }
  add("RESULT: %s\n", exit_code() == 0 ? "PASS" : exit_code() == 3 ? "FAIL (hang)" : "FAIL (violation)");
  return s;
}

std::string StressResult::to_json() const {
  using nlohmann::json;
  json j;
  j["workload"] = workload_name(config.workload);
  j["threads"] = config.threads;
  j["seed"] = config.seed;
  j["duration_seconds"] = config.duration_seconds;
  j["ops_requested"] = config.ops;
  j["size_min"] = config.size_min;
  j["size_max"] = config.size_max;
  j["device_bytes"] = config.device_bytes;
  j["host_bytes"] = config.host_bytes;
  j["disk_bytes"] = config.disk_bytes == kUnlimited ? json("unlimited") : json(config.disk_bytes);
  j["oversubscription"] = config.oversubscription;
  j["faults"] = config.faults.to_string();
  j["faults_stop_seconds"] = config.faults_stop_seconds;
  j["working_set_bytes"] = working_set_bytes;
  j["buffers"] = buffers;
  j["seconds"] = seconds;
  j["total_seconds"] = total_seconds;
  j["ops"] = ops;
  j["ops_per_second"] = seconds > 0 ? static_cast<double>(ops) / seconds : 0.0;
  j["pins"] = pins;
  j["pins_verified"] = pins_verified;
  j["bytes_verified"] = bytes_verified;
  j["bytes_written"] = bytes_written;
  j["allocations"] = allocations;
  j["frees"] = frees;
  j["evictions"] = evictions;
  j["prefetches"] = prefetches;
  j["busy_skips"] = busy_skips;
  j["max_op_seconds"] = max_op_seconds;
  j["peak_pinned_bytes"] = {{"device", peak_pinned_bytes[0]}, {"host", peak_pinned_bytes[1]}};
  j["stall_seconds"] = pool.stall_seconds;
  j["pin_waits"] = pool.pin_waits;
  json moved = json::array();
  for (Tier from : {Tier::Device, Tier::Host, Tier::Disk}) {
    for (Tier to : {Tier::Device, Tier::Host, Tier::Disk}) {
      const MoveStats& m = pool.move(from, to);
      if (m.moves == 0) continue;
      moved.push_back({{"from", tier_name(from)}, {"to", tier_name(to)}, {"moves", m.moves},
                       {"bytes", m.bytes}, {"stored_bytes", m.stored_bytes}, {"seconds", m.seconds}});
    }
  }
  j["moved"] = moved;
  j["pool_errors"] = {{"spill_write_failures", pool.errors.spill_write_failures},
                      {"fetch_failures", pool.errors.fetch_failures},
                      {"corruptions", pool.errors.corruptions},
                      {"out_of_memory", pool.errors.out_of_memory},
                      {"timeouts", pool.errors.timeouts}};
  j["outcomes"] = {{"out_of_memory", out_of_memory},
                   {"fetch_io_errors", fetch_io_errors},
                   {"evict_io_errors", evict_io_errors},
                   {"corruption_damaged", corruption_damaged},
                   {"corruption_read_flip", corruption_read_flip},
                   {"damaged_replaced", damaged_replaced}};
  json faults_json = json::object();
  for (int k = 0; k < kFaultKinds; ++k) {
    if (config.faults.rate[k] <= 0) continue;
    faults_json[fault_name(static_cast<FaultKind>(k))] = {
        {"rate", config.faults.rate[k]}, {"injected", faults[k].injected}, {"outcome", faults[k].outcome}};
  }
  j["faults_injected"] = faults_json;
  j["latency_injected_seconds"] = latency_injected_seconds;
  j["final"] = {{"checked", final_checked},
                {"intact", final_intact},
                {"corrupted_reported", final_corrupted_reported},
                {"lost", final_checked - final_intact - final_corrupted_reported},
                {"io_error_seen", final_io_error_seen},
                {"io_error_recovered", final_io_error_recovered},
                {"read_flip_seen", final_read_flip_seen},
                {"read_flip_recovered", final_read_flip_recovered},
                {"leftover_bytes", leftover_bytes}};
  j["invariant_checks"] = invariant_checks;
  j["watchdog"] = {{"bound_seconds", watchdog_bound_seconds}, {"hangs", hangs}, {"stuck", stuck}};
  j["violation_count"] = violation_count;
  j["violations"] = violations;
  j["exit_code"] = exit_code();
  j["result"] = exit_code() == 0 ? "pass" : exit_code() == 3 ? "hang" : "violation";
  return j.dump(2);
}

}  // namespace spillway::stress
