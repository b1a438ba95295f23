// src/instrument/recorder.cpp — see recorder.hpp.
//
// The ring is the classic bounded queue with a sequence number per cell:
// a cell whose sequence equals the producer's position is free to claim;
// the producer publishes it by setting the sequence to position + 1, and
// the single consumer frees it for the next lap with position + capacity.
#include "recorder.hpp"

#include <pthread.h>

#include <array>
#include <cstdio>
#include <map>

namespace spillway {

const char* trace_kind_name(TraceKind kind) {
  switch (kind) {
    case TraceKind::Alloc: return "alloc";
    case TraceKind::Free: return "free";
    case TraceKind::Pin: return "pin";
    case TraceKind::PinWait: return "pin_wait";
    case TraceKind::Unpin: return "unpin";
    case TraceKind::SpillBegin: return "spill_begin";
    case TraceKind::SpillEnd: return "spill_end";
    case TraceKind::FetchBegin: return "fetch_begin";
    case TraceKind::FetchEnd: return "fetch_end";
    case TraceKind::Evict: return "evict";
    case TraceKind::OutOfMemory: return "out_of_memory";
    case TraceKind::NodeBegin: return "node_begin";
    case TraceKind::NodeEnd: return "node_end";
    case TraceKind::TierUsage: return "tier_usage";
    case TraceKind::Dropped: return "dropped";
  }
  return "unknown";
}

namespace {
std::mutex& thread_names_mu() {
  static std::mutex mu;
  return mu;
}
std::map<std::uint32_t, std::string>& thread_names() {
  static std::map<std::uint32_t, std::string> names;
  return names;
}
std::uint32_t register_thread() {
  static std::atomic<std::uint32_t> next{1};
  const std::uint32_t index = next.fetch_add(1);
  char os_name[32] = {};
  if (pthread_getname_np(pthread_self(), os_name, sizeof os_name) != 0 || os_name[0] == '\0') {
    std::snprintf(os_name, sizeof os_name, "thread");
  }
  std::lock_guard lk(thread_names_mu());
  thread_names()[index] = std::string(os_name) + " " + std::to_string(index);
  return index;
}
}  // namespace

std::string trace_thread_name(std::uint32_t thread) {
  std::lock_guard lk(thread_names_mu());
  auto it = thread_names().find(thread);
  return it != thread_names().end() ? it->second : "thread " + std::to_string(thread);
}

}  // namespace spillway

namespace spillway::instrument {

std::uint32_t current_thread_index() {
  thread_local const std::uint32_t index = register_thread();
  return index;
}

std::uint64_t steady_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

namespace {
std::uint64_t round_up_pow2(std::size_t n) {
  std::uint64_t c = 2;
  while (c < n) c <<= 1;
  return c;
}
std::atomic<std::uint64_t> next_generation{1};
}  // namespace

Recorder::Recorder(std::shared_ptr<TraceSink> sink, Sampler sampler, std::size_t capacity,
                   std::chrono::milliseconds sample_interval)
    : sink_(std::move(sink)),
      sampler_(std::move(sampler)),
      sample_interval_(sample_interval),
      generation_(next_generation.fetch_add(1)) {
  const std::uint64_t n = round_up_pow2(capacity);
  cells_ = std::make_unique<Cell[]>(n);
  for (std::uint64_t i = 0; i < n; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  mask_ = n - 1;
  labels_.emplace_back();
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "spillway-trace");
}

Recorder::~Recorder() {
  {
    detail::MutexLock lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Recorder::push(const RawEvent& e) noexcept {
  std::uint64_t pos = enqueue_.load(std::memory_order_relaxed);
  Cell* cell = nullptr;
  for (;;) {
    cell = &cells_[pos & mask_];
    const std::uint64_t seq = cell->seq.load(std::memory_order_acquire);
    const auto diff = static_cast<std::int64_t>(seq - pos);
    if (diff == 0) {
      if (enqueue_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
    } else if (diff < 0) {
      dropped_.fetch_add(1, std::memory_order_relaxed);  // full: the consumer is a lap behind
      return false;
    } else {
      pos = enqueue_.load(std::memory_order_relaxed);
    }
  }
  cell->event = e;
  cell->seq.store(pos + 1, std::memory_order_release);
  pushed_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool Recorder::pop(RawEvent& e) noexcept {
  Cell& cell = cells_[dequeue_ & mask_];
  const std::uint64_t seq = cell.seq.load(std::memory_order_acquire);
  if (seq != dequeue_ + 1) return false;  // empty, or claimed but not yet written
  e = cell.event;
  cell.seq.store(dequeue_ + mask_ + 1, std::memory_order_release);
  ++dequeue_;
  return true;
}

std::uint32_t Recorder::intern(std::string_view label) {
  if (label.empty()) return 0;
  detail::MutexLock lk(labels_mu_);
  auto [it, inserted] = label_ids_.try_emplace(std::string(label), static_cast<std::uint32_t>(labels_.size()));
  if (inserted) labels_.emplace_back(label);
  return it->second;
}

void Recorder::drain() {
  RawEvent e{};
  for (;;) {
    if (!pop(e)) {
      // A producer may have claimed the next cell and not written it yet:
      // wait for it only when the position says something is there.
      if (enqueue_.load(std::memory_order_acquire) == dequeue_) break;
      std::this_thread::yield();
      continue;
    }
    out_.kind = e.kind;
    out_.time_ns = e.time_ns;
    out_.buffer_id = e.buffer_id;
    out_.bytes = e.bytes;
    out_.from = e.from;
    out_.to = e.to;
    out_.reason = e.reason;
    out_.ok = e.ok;
    out_.duration_ns = e.duration_ns;
    out_.thread = e.thread;
    out_.used_bytes = out_.pinned_bytes = out_.capacity_bytes = 0;
    if (e.label == 0) {
      out_.label.clear();
    } else {
      detail::MutexLock lk(labels_mu_);
      out_.label.assign(labels_[e.label]);
    }
    sink_->record(out_);
  }
  const std::uint64_t lost = dropped_.load(std::memory_order_relaxed);
  if (lost != dropped_reported_) {
    TraceEvent d;
    d.kind = TraceKind::Dropped;
    d.time_ns = steady_now_ns();
    d.bytes = lost - dropped_reported_;
    d.thread = current_thread_index();
    dropped_reported_ = lost;
    sink_->record(d);
  }
}

void Recorder::sample() {
  if (!sampler_) return;
  std::array<TierSample, kTierCount> now{};
  sampler_(now);
  const std::uint64_t t = steady_now_ns();
  for (Tier tier : {Tier::Device, Tier::Host, Tier::Disk}) {
    const TierSample& s = now[tier_index(tier)];
    const TierSample& last = last_sample_[tier_index(tier)];
    if (!s.enabled) continue;
    if (sampled_ && s.used == last.used && s.pinned == last.pinned && s.capacity == last.capacity) continue;
    TraceEvent u;
    u.kind = TraceKind::TierUsage;
    u.time_ns = t;
    u.from = u.to = tier;
    u.thread = current_thread_index();
    u.used_bytes = s.used;
    u.pinned_bytes = s.pinned;
    u.capacity_bytes = s.capacity;
    sink_->record(u);
  }
  last_sample_ = now;
  sampled_ = true;
}

void Recorder::flush() {
  detail::MutexLock lk(mu_);
  const std::uint64_t target = enqueue_.load(std::memory_order_acquire);
  ++flush_requests_;
  cv_.notify_all();
  // Bounded only by the sink's speed: the recorder thread never waits on
  // the pool, and a producer holds a claimed cell for a few instructions.
  flushed_.wait(lk.native(), [&]() SPILLWAY_REQUIRES(mu_) { return delivered_ >= target || stopping_; });
}

void Recorder::run() {
  auto next_sample = std::chrono::steady_clock::now();
  detail::MutexLock lk(mu_);
  for (;;) {
    const bool stopping = stopping_;
    const std::uint64_t requests = flush_requests_;
    {
      detail::Unlocked unlocked(lk, mu_);
      drain();
      if (std::chrono::steady_clock::now() >= next_sample || stopping) {
        sample();
        next_sample = std::chrono::steady_clock::now() + sample_interval_;
      }
    }
    delivered_ = dequeue_;
    flushed_.notify_all();
    if (stopping) {
      // Events pushed after the last drain (a racing producer) are not
      // lost: drain once more before leaving.
      {
        detail::Unlocked unlocked(lk, mu_);
        drain();
      }
      delivered_ = dequeue_;
      flushed_.notify_all();
      return;
    }
    if (flush_requests_ == requests) {
      cv_.wait_for(lk.native(), std::chrono::milliseconds(2), [&]() SPILLWAY_REQUIRES(mu_) { return stopping_ || flush_requests_ != requests; });
    }
  }
}

}  // namespace spillway::instrument
