// src/core/thread_shard.cpp — thread slots, size classes, the shard table.
#include "thread_shard.hpp"

#include <bit>
#include <mutex>
#include <vector>

namespace spillway::detail {

namespace {

// The process's free slot indices. Taken when a thread first asks, given
// back when it exits; the mutex is met once per thread, never per operation.
struct SlotRegistry {
  std::mutex mu;
  std::vector<int> free;  // given back, reused first
  int next = 0;           // never given out yet
};

SlotRegistry& registry() {
  static auto* r = new SlotRegistry;  // outlives every thread's exit (never destroyed)
  return *r;
}

// -1: not asked yet; -2: none (the registry is full, or the thread exited).
// initial-exec: one load from the thread pointer, no __tls_get_addr call on
// the pin path (8 bytes of static TLS).
__attribute__((tls_model("initial-exec"))) thread_local int tls_slot = -1;

struct SlotReturn {
  int slot = -1;
  ~SlotReturn() {
    tls_slot = -2;  // anything this thread still does goes the slow path
    if (slot < 0) return;
    SlotRegistry& r = registry();
    std::lock_guard lk(r.mu);
    r.free.push_back(slot);
  }
};

int take_slot() {
  if (tls_slot == -2) return -1;
  thread_local SlotReturn returner;
  SlotRegistry& r = registry();
  int slot = -1;
  {
    std::lock_guard lk(r.mu);
    if (!r.free.empty()) {
      slot = r.free.back();
      r.free.pop_back();
    } else if (r.next < kMaxThreadSlots) {
      slot = r.next++;
    }
  }
  returner.slot = slot;
  tls_slot = slot < 0 ? -2 : slot;
  return slot;
}

}  // namespace

int this_thread_slot() {
  const int s = tls_slot;
  if (s >= 0) return s;
  if (s == -2) return -1;
  return take_slot();
}

int size_class(std::size_t f) {
  if (f < 256 || f > kLargestCachedBlock || f % 256 != 0) return -1;
  if (f < 1024) return static_cast<int>(f / 256) - 1;  // 256, 512, 768
  const int k = std::bit_width(f) - 1;                 // 2^k <= f < 2^(k+1), k >= 10
  const std::size_t quarter = std::size_t{1} << (k - 2);
  if (f % quarter != 0) return -1;
  const int m = static_cast<int>(f / quarter);  // 4..7
  return 3 + (k - 10) * 4 + (m - 4);
}

std::size_t class_bytes(int c) {
  if (c < 3) return static_cast<std::size_t>(c + 1) * 256;
  const int k = 10 + (c - 3) / 4;
  const int m = 4 + (c - 3) % 4;
  return static_cast<std::size_t>(m) << (k - 2);
}

ShardTable::ShardTable() : slots_(new std::atomic<ThreadShard*>[kMaxThreadSlots]) {
  for (int i = 0; i < kMaxThreadSlots; ++i) slots_[static_cast<std::size_t>(i)].store(nullptr, std::memory_order_relaxed);
}

ShardTable::~ShardTable() {
  for (int i = 0; i < kMaxThreadSlots; ++i) delete slots_[static_cast<std::size_t>(i)].load(std::memory_order_relaxed);
}

ThreadShard* ShardTable::make(int slot) {
  auto* fresh = new ThreadShard;
  ThreadShard* expected = nullptr;
  // Only the slot's owner makes its shard, but a thread that inherited the
  // slot may race a reader's for_each: publish with a CAS all the same.
  if (!slots_[static_cast<std::size_t>(slot)].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
    delete fresh;
    return expected;
  }
  int high = high_.load(std::memory_order_relaxed);
  while (high < slot + 1 && !high_.compare_exchange_weak(high, slot + 1, std::memory_order_acq_rel)) {
  }
  return fresh;
}

}  // namespace spillway::detail
