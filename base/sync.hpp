// base/sync.hpp — a mutex and its locks that clang's thread-safety
// analysis understands.
//
// std::mutex carries no capability attributes in libstdc++, so a member
// marked SPILLWAY_GUARDED_BY(mu_) would be checked against nothing. Mutex
// below is a std::mutex with the attributes; MutexLock holds it for a scope
// (a std::unique_lock inside, so condition variables can wait on it) and
// Unlocked gives it up for a nested scope, the pattern the pool uses to copy
// bytes without its lock:
//
//   MutexLock lk(mu_);
//   ... touch guarded state ...
//   { Unlocked u(lk, mu_); copy(...); }   // guarded state is off limits here
//   ... the lock is held again ...
//
// `clang++ -Wthread-safety` (the `thread-safety` preset, run by .ci/run)
// then rejects reading or writing a guarded member without its mutex and
// calling a SPILLWAY_REQUIRES function from a path that does not hold it.
// With GCC the macros expand to nothing and the types cost what std::mutex
// and std::unique_lock cost. Used by src/, tiers/ and stress/ alike: it is
// a primitive, not policy. base/ is the lowest layer: nothing in it
// includes anything else of the project's, and tiers/ and src/ build on it.
#pragma once

#include <condition_variable>
#include <exception>
#include <mutex>

#if defined(__clang__)
#define SPILLWAY_TSA(x) __attribute__((x))
#else
#define SPILLWAY_TSA(x)
#endif

#define SPILLWAY_CAPABILITY(name) SPILLWAY_TSA(capability(name))
#define SPILLWAY_SCOPED_CAPABILITY SPILLWAY_TSA(scoped_lockable)
#define SPILLWAY_GUARDED_BY(mu) SPILLWAY_TSA(guarded_by(mu))
#define SPILLWAY_PT_GUARDED_BY(mu) SPILLWAY_TSA(pt_guarded_by(mu))
#define SPILLWAY_REQUIRES(...) SPILLWAY_TSA(requires_capability(__VA_ARGS__))
#define SPILLWAY_ACQUIRE(...) SPILLWAY_TSA(acquire_capability(__VA_ARGS__))
#define SPILLWAY_RELEASE(...) SPILLWAY_TSA(release_capability(__VA_ARGS__))
#define SPILLWAY_TRY_ACQUIRE(...) SPILLWAY_TSA(try_acquire_capability(__VA_ARGS__))
#define SPILLWAY_EXCLUDES(...) SPILLWAY_TSA(locks_excluded(__VA_ARGS__))
#define SPILLWAY_RETURN_CAPABILITY(x) SPILLWAY_TSA(lock_returned(x))
#define SPILLWAY_NO_THREAD_SAFETY_ANALYSIS SPILLWAY_TSA(no_thread_safety_analysis)

namespace spillway::detail {

class SPILLWAY_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() SPILLWAY_ACQUIRE() { mu_.lock(); }
  void unlock() SPILLWAY_RELEASE() { mu_.unlock(); }
  bool try_lock() SPILLWAY_TRY_ACQUIRE(true) { return mu_.try_lock(); }

  // For MutexLock only; code that locks through it escapes the analysis.
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// Holds `mu` from construction to destruction.
class SPILLWAY_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) SPILLWAY_ACQUIRE(mu) : lock_(mu.native()) {}
  ~MutexLock() SPILLWAY_RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // What a std::condition_variable waits on. A wait gives the mutex up and
  // takes it back before it returns, so the analysis's view (held) is true
  // again whenever the caller's code runs.
  std::unique_lock<std::mutex>& native() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

// Gives up the mutex a MutexLock holds for the Unlocked's scope and takes it
// back at the scope's end.
class SPILLWAY_SCOPED_CAPABILITY Unlocked {
 public:
  // `mu` must be the mutex `lock` holds (named for the analysis; checked).
  Unlocked(MutexLock& lock, Mutex& mu) SPILLWAY_RELEASE(mu) : lock_(lock.native()) {
    if (lock_.mutex() != &mu.native()) std::terminate();
    lock_.unlock();
  }
  ~Unlocked() SPILLWAY_RELEASE() { lock_.lock(); }
  Unlocked(const Unlocked&) = delete;
  Unlocked& operator=(const Unlocked&) = delete;

 private:
  std::unique_lock<std::mutex>& lock_;
};

}  // namespace spillway::detail
