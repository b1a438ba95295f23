// tests/thread_safety/sync_check.cpp — compiled (never run) by the ctest
// tests thread_safety.*: with SPILLWAY_SYNC_MISUSE=N it breaks rule N of
// those base/sync.hpp exists to enforce, and clang -Wthread-safety must
// reject it with that rule's message; without, the correct uses must
// compile cleanly. This keeps the
// annotations from silently turning into no-ops.
#include <condition_variable>

#ifndef SPILLWAY_SYNC_MISUSE
#define SPILLWAY_SYNC_MISUSE 0
#endif

#include "base/sync.hpp"

namespace {

using spillway::detail::Mutex;
using spillway::detail::MutexLock;
using spillway::detail::Unlocked;

class Counter {
 public:
  void add() SPILLWAY_EXCLUDES(mu_) {
    MutexLock lk(mu_);
    bump();
    {
      Unlocked unlocked(lk, mu_);
#if SPILLWAY_SYNC_MISUSE == 1
      ++value_;  // written while the lock is given up
#endif
    }
    cv_.wait(lk.native(), [this]() SPILLWAY_REQUIRES(mu_) { return value_ > 0; });
  }
#if SPILLWAY_SYNC_MISUSE == 2
  int peek() const { return value_; }  // read without the lock
#elif SPILLWAY_SYNC_MISUSE == 3
  void call_unlocked() { bump(); }  // a REQUIRES function called without it
#elif SPILLWAY_SYNC_MISUSE == 4
  void twice() {
    MutexLock lk(mu_);
    add();  // add() takes mu_ itself: a self-deadlock
  }
#endif

 private:
  void bump() SPILLWAY_REQUIRES(mu_) { ++value_; }

  mutable Mutex mu_;
  std::condition_variable cv_;
  int value_ SPILLWAY_GUARDED_BY(mu_) = 0;
};

}  // namespace

int main() {
  Counter c;
  c.add();
  return 0;
}
