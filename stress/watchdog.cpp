// stress/watchdog.cpp — see watchdog.hpp.
#include "watchdog.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>

namespace spillway::stress {

namespace {
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

const char* op_name(OpKind k) {
  switch (k) {
    case OpKind::Idle: return "idle";
    case OpKind::Allocate: return "allocate";
    case OpKind::Pin: return "pin";
    case OpKind::Evict: return "evict";
    case OpKind::Prefetch: return "prefetch";
    case OpKind::Free: return "free";
    case OpKind::Quiesce: return "quiesce";
    case OpKind::CheckInvariants: return "check_invariants";
    case OpKind::Stats: return "stats";
  }
  return "unknown";
}

// ---- ActivitySlot ----------------------------------------------------------------

void ActivitySlot::begin(OpKind kind, std::uint64_t buffer, Tier tier, bool read_write,
                         std::uint64_t bytes) {
  const std::uint64_t s = seq_.load(std::memory_order_relaxed);
  seq_.store(s + 1, std::memory_order_relaxed);  // odd: writing
  std::atomic_thread_fence(std::memory_order_release);
  kind_.store(static_cast<std::uint8_t>(kind), std::memory_order_relaxed);
  buffer_.store(buffer, std::memory_order_relaxed);
  tier_.store(static_cast<std::uint8_t>(tier), std::memory_order_relaxed);
  read_write_.store(read_write, std::memory_order_relaxed);
  bytes_.store(bytes, std::memory_order_relaxed);
  start_ns_.store(now_ns(), std::memory_order_relaxed);
  seq_.store(s + 2, std::memory_order_release);
}

void ActivitySlot::end() {
  const std::uint64_t s = seq_.load(std::memory_order_relaxed);
  seq_.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  kind_.store(static_cast<std::uint8_t>(OpKind::Idle), std::memory_order_relaxed);
  seq_.store(s + 2, std::memory_order_release);
}

ActivitySlot::Snapshot ActivitySlot::snapshot() const {
  Snapshot out;
  for (;;) {
    const std::uint64_t s1 = seq_.load(std::memory_order_acquire);
    if (s1 % 2 == 1) {  // mid-update: a few stores away
      std::this_thread::yield();
      continue;
    }
    out.kind = static_cast<OpKind>(kind_.load(std::memory_order_relaxed));
    out.buffer = buffer_.load(std::memory_order_relaxed);
    out.tier = static_cast<Tier>(tier_.load(std::memory_order_relaxed));
    out.read_write = read_write_.load(std::memory_order_relaxed);
    out.bytes = bytes_.load(std::memory_order_relaxed);
    out.start_ns = start_ns_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (seq_.load(std::memory_order_relaxed) == s1) {
      out.seq = s1;
      return out;
    }
  }
}

// ---- Watchdog --------------------------------------------------------------------

Watchdog::Watchdog(std::chrono::milliseconds bound, std::function<void(const HangReport&)> on_hang)
    : bound_(bound), on_hang_(std::move(on_hang)) {}

Watchdog::~Watchdog() { stop(); }

ActivitySlot* Watchdog::register_thread(std::string name) {
  spillway::detail::MutexLock lk(mu_);
  slots_.emplace_back(std::move(name));
  reported_seq_.push_back(~std::uint64_t{0});
  return &slots_.back();
}

void Watchdog::start() {
  spillway::detail::MutexLock lk(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { run(); });
}

void Watchdog::stop() {
  {
    spillway::detail::MutexLock lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::run() {
  // A few looks per bound, at most every 100 ms.
  const auto step = std::clamp<std::chrono::milliseconds>(bound_ / 8, std::chrono::milliseconds(1),
                                                          std::chrono::milliseconds(100));
  spillway::detail::MutexLock lk(mu_);
  while (!stop_) {
    cv_.wait_for(lk.native(), step, [this]() SPILLWAY_REQUIRES(mu_) { return stop_; });
    if (stop_) break;
    {
      spillway::detail::Unlocked unlocked(lk, mu_);
      scan();
    }
  }
}

void Watchdog::scan() {
  const std::int64_t now = now_ns();
  const std::int64_t bound_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(bound_).count();
  std::vector<HangReport> fresh;
  {
    spillway::detail::MutexLock lk(mu_);
    std::size_t i = 0;
    for (const ActivitySlot& slot : slots_) {
      const ActivitySlot::Snapshot s = slot.snapshot();
      const std::size_t idx = i++;
      if (s.kind == OpKind::Idle) continue;
      const std::int64_t ran = now - s.start_ns;
      if (ran > longest_ns_.load(std::memory_order_relaxed)) longest_ns_.store(ran, std::memory_order_relaxed);
      if (ran <= bound_ns || reported_seq_[idx] == s.seq) continue;
      reported_seq_[idx] = s.seq;
      HangReport r;
      r.thread = slot.name();
      r.kind = s.kind;
      r.buffer = s.buffer;
      r.waited_seconds = static_cast<double>(ran) * 1e-9;
      r.bound_seconds = static_cast<double>(bound_ns) * 1e-9;
      char buf[512];
      std::string what = op_name(s.kind);
      switch (s.kind) {
        case OpKind::Pin:
          what += std::string("(") + std::string(tier_name(s.tier)) + (s.read_write ? ", ReadWrite)" : ", Read)");
          break;
        case OpKind::Allocate:
        case OpKind::Evict:
        case OpKind::Prefetch:
          what += "(" + std::string(tier_name(s.tier)) + ")";
          break;
        default:
          break;
      }
      if (s.buffer != 0) what += " of buffer " + std::to_string(s.buffer);
      if (s.bytes != 0) what += " (" + std::to_string(s.bytes) + " bytes)";
      std::snprintf(buf, sizeof buf, "hang: thread %s has been in %s for %.2f s (bound %.2f s)",
                    r.thread.c_str(), what.c_str(), r.waited_seconds, r.bound_seconds);
      r.text = buf;
      reports_.push_back(r);
      fresh.push_back(std::move(r));
    }
  }
  hangs_.fetch_add(fresh.size());
  if (on_hang_) {
    for (const auto& r : fresh) on_hang_(r);
  }
}

std::vector<HangReport> Watchdog::reports() const {
  spillway::detail::MutexLock lk(mu_);
  return reports_;
}

double Watchdog::longest_seconds() const {
  return static_cast<double>(longest_ns_.load(std::memory_order_relaxed)) * 1e-9;
}

}  // namespace spillway::stress
