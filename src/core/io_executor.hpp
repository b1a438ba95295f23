// src/core/io_executor.hpp — the pool's background IO workers.
//
// A fixed set of threads that run queued tasks (spills, fetches) in FIFO
// order. Tasks never wait for other tasks, so the executor cannot deadlock
// on itself. shutdown() drains the queue and joins the threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

#include "base/sync.hpp"
#include <thread>
#include <vector>

namespace spillway::detail {

class IoExecutor {
 public:
  explicit IoExecutor(unsigned threads);
  ~IoExecutor();
  IoExecutor(const IoExecutor&) = delete;
  IoExecutor& operator=(const IoExecutor&) = delete;

  void submit(std::function<void()> task);
  // Runs every queued task, then stops the workers. Idempotent.
  void shutdown();

 private:
  void work();

  detail::Mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_ SPILLWAY_GUARDED_BY(mu_);
  bool stopping_ SPILLWAY_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace spillway::detail
