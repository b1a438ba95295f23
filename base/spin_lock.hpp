// base/spin_lock.hpp — a lock for critical sections of a few dozen
// instructions that are almost never contended, which clang's thread-safety
// analysis understands (see base/sync.hpp).
//
// lock() is one atomic exchange when the lock is free and unlock() one
// store, against two atomic read-modify-writes for an uncontended
// std::mutex. A waiter spins briefly and then yields the CPU on every try,
// so a holder that was preempted is not starved by its waiters (the machine
// this is written for has two cores). Use it only where the holder never
// blocks: no IO, no condition variable, no other lock that is not always
// taken before this one.
#pragma once

#include <atomic>
#include <thread>

#include "base/sync.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace spillway::detail {

// One CPU hint that the caller is spinning (x86 PAUSE), or nothing.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

class SPILLWAY_CAPABILITY("spin lock") SpinLock {
 public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() SPILLWAY_ACQUIRE() {
    if (!held_.exchange(true, std::memory_order_acquire)) return;
    lock_contended();
  }
  bool try_lock() SPILLWAY_TRY_ACQUIRE(true) {
    return !held_.load(std::memory_order_relaxed) && !held_.exchange(true, std::memory_order_acquire);
  }
  void unlock() SPILLWAY_RELEASE() { held_.store(false, std::memory_order_release); }

 private:
  void lock_contended() {
    for (int spins = 0;; ++spins) {
      if (!held_.load(std::memory_order_relaxed) && !held_.exchange(true, std::memory_order_acquire)) return;
      if (spins < 64) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

  std::atomic<bool> held_{false};
};

// Holds a SpinLock for a scope.
class SPILLWAY_SCOPED_CAPABILITY SpinGuard {
 public:
  explicit SpinGuard(SpinLock& lock) SPILLWAY_ACQUIRE(lock) : lock_(lock) { lock_.lock(); }
  ~SpinGuard() SPILLWAY_RELEASE() { lock_.unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock& lock_;
};

}  // namespace spillway::detail
