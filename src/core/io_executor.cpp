// src/core/io_executor.cpp — see io_executor.hpp.
#include "io_executor.hpp"

#include <pthread.h>

namespace spillway::detail {

IoExecutor::IoExecutor(unsigned threads) {
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { work(); });
    pthread_setname_np(threads_.back().native_handle(), "spillway-io");
  }
}

IoExecutor::~IoExecutor() { shutdown(); }

void IoExecutor::submit(std::function<void()> task) {
  {
    detail::MutexLock lk(mu_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void IoExecutor::shutdown() {
  {
    detail::MutexLock lk(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void IoExecutor::work() {
  for (;;) {
    std::function<void()> task;
    {
      detail::MutexLock lk(mu_);
      cv_.wait(lk.native(), [this]() SPILLWAY_REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace spillway::detail
