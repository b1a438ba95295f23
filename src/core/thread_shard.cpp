// src/core/thread_shard.cpp — thread slots and the shard table.
#include "thread_shard.hpp"

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

}  // namespace

__thread int tls_thread_slot __attribute__((tls_model("initial-exec"))) = -1;

namespace {
struct SlotReturn {
  int slot = -1;
  ~SlotReturn() {
    tls_thread_slot = -2;  // anything this thread still does goes the slow path
    if (slot < 0) return;
    SlotRegistry& r = registry();
    std::lock_guard lk(r.mu);
    r.free.push_back(slot);
  }
};
}  // namespace

int take_thread_slot() {
  if (tls_thread_slot == -2) return -1;
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
  tls_thread_slot = slot < 0 ? -2 : slot;
  return slot;
}

ShardTable::ShardTable() : slots_(new std::atomic<ThreadShard*>[kMaxThreadSlots]) {
  for (int i = 0; i < kMaxThreadSlots; ++i) slots_[static_cast<std::size_t>(i)].store(nullptr, std::memory_order_relaxed);
}

ShardTable::~ShardTable() {
  for (int i = 0; i < kMaxThreadSlots; ++i) {
    ThreadShard* s = slots_[static_cast<std::size_t>(i)].load(std::memory_order_relaxed);
    if (s == nullptr) continue;
    for (int k = 0; k < s->spares; ++k) delete s->spare[static_cast<std::size_t>(k)];
    delete s;
  }
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
