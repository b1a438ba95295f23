// src/instrument/periodic.hpp — a task run every `interval` on a thread of
// its own, for the writers that republish the pool's numbers (the metrics
// file, the live-stats segment). An exception from the task is counted and
// the first one printed to stderr after `what`; the next period tries again.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "base/sync.hpp"

namespace spillway::instrument {

class PeriodicTask {
 public:
  PeriodicTask(std::chrono::milliseconds interval, std::string what, std::function<void()> task)
      : interval_(interval), what_(std::move(what)), task_(std::move(task)) {
    thread_ = std::thread([this] { run(); });
  }
  ~PeriodicTask() { stop(); }
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  // Wakes the thread and joins it (a task already running finishes first).
  void stop() {
    {
      detail::MutexLock lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t failures() const { return failures_.load(); }

 private:
  void run() {
    detail::MutexLock lk(mu_);
    while (!cv_.wait_for(lk.native(), interval_, [this]() SPILLWAY_REQUIRES(mu_) { return stopping_; })) {
      detail::Unlocked unlocked(lk, mu_);
      try {
        task_();
      } catch (const std::exception& e) {
        if (failures_.fetch_add(1) == 0) std::fprintf(stderr, "spillway: %s: %s\n", what_.c_str(), e.what());
      }
    }
  }

  const std::chrono::milliseconds interval_;
  const std::string what_;
  const std::function<void()> task_;
  detail::Mutex mu_;
  std::condition_variable cv_;
  bool stopping_ SPILLWAY_GUARDED_BY(mu_) = false;
  std::atomic<std::uint64_t> failures_{0};
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace spillway::instrument
