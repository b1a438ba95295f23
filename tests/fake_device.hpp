// tests/fake_device.hpp — a stand-in for a GPU, for testing stream
// ordering and staged disk <-> device moves without one: a "device" arena in
// host memory whose copies run later, in order, on a copy-engine thread, and
// "streams" that run queued work in order and honour waits on fences, as
// CUDA streams and events do.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "spillway/pool.hpp"
#include "tiers/device/memory_arena.hpp"

namespace spillway::testing {

using namespace std::chrono_literals;

class FakeFence final : public detail::Fence {
 public:
  bool done() override { return done_.load(); }
  std::atomic<bool> done_{false};
};

// Runs queued work in order on its own thread; a closed gate holds it.
class FakeQueue {
 public:
  FakeQueue() : thread_([this] { run(); }) {}
  ~FakeQueue() {
    open_gate();
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void push(std::function<void()> fn) {
    {
      std::lock_guard lk(mu_);
      work_.push_back(std::move(fn));
    }
    cv_.notify_all();
  }
  // Later work waits for `fence` (cudaStreamWaitEvent).
  void wait_for(std::shared_ptr<detail::Fence> fence) {
    push([fence] {
      while (!fence->done()) std::this_thread::sleep_for(50us);
    });
  }
  std::shared_ptr<FakeFence> record() {
    auto f = std::make_shared<FakeFence>();
    push([f] { f->done_ = true; });
    return f;
  }
  void close_gate() { gate_ = false; }
  void open_gate() { gate_ = true; }
  void synchronize() {
    auto f = record();
    for (int i = 0; i < 20000 && !f->done(); ++i) std::this_thread::sleep_for(100us);
    ASSERT_TRUE(f->done()) << "queue did not drain within 2 s";
  }

 private:
  void run() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return stop_ || !work_.empty(); });
      if (work_.empty()) return;
      auto fn = std::move(work_.front());
      work_.pop_front();
      lk.unlock();
      while (!gate_.load()) std::this_thread::sleep_for(50us);
      fn();
      lk.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> work_;
  bool stop_ = false;
  std::atomic<bool> gate_{true};
  std::thread thread_;
};

// A user's stream: what the tests pass as spillway::Stream.
struct FakeStream {
  FakeQueue queue;
  Stream handle() { return reinterpret_cast<Stream>(this); }
  static FakeStream* from(void* s) { return static_cast<FakeStream*>(s); }
};

// Device memory in host memory, with copies in from the host queued on a
// copy engine that runs them later.
class FakeAsyncArena final : public detail::MemoryArena {
 public:
  // host_accessible = false: disk moves go through the staging rings, whose
  // copies run on the engine too.
  FakeAsyncArena(std::size_t capacity, FakeQueue* copy_engine, bool host_accessible = true)
      : MemoryArena(capacity), storage_(capacity + 256), engine_(copy_engine),
        host_accessible_(host_accessible) {
    auto base = reinterpret_cast<std::uintptr_t>(storage_.data());
    base = (base + 255) / 256 * 256;
    alloc_.add_region(base, capacity / 256 * 256);
  }
  std::string_view backend() const override { return "fake-async"; }
  bool host_accessible() const override { return host_accessible_; }
  std::shared_ptr<detail::Fence> copy_to_host_async(void* dst, const void* src,
                                                    std::size_t n) override {
    return queue_copy(dst, src, n);
  }
  std::shared_ptr<detail::Fence> copy_from_host_async(void* dst, const void* src,
                                                      std::size_t n) override {
    return queue_copy(dst, src, n);
  }
  std::atomic<int> async_copies{0};
  std::shared_ptr<detail::Fence> copy_from_host_ordered(void* dst, const void* src, std::size_t n,
                                                        void* stream) override {
    auto f = std::make_shared<FakeFence>();
    engine_->push([dst, src, n, f] {
      std::memcpy(dst, src, n);
      f->done_ = true;
    });
    FakeStream::from(stream)->queue.wait_for(f);
    return f;
  }
  void order_after(void* stream, const std::shared_ptr<detail::Fence>& fence) override {
    FakeStream::from(stream)->queue.wait_for(fence);
  }
  std::shared_ptr<detail::Fence> fence_on(void* stream) override {
    return FakeStream::from(stream)->queue.record();
  }

 private:
  std::shared_ptr<detail::Fence> queue_copy(void* dst, const void* src, std::size_t n) {
    ++async_copies;
    auto f = std::make_shared<FakeFence>();
    engine_->push([dst, src, n, f] {
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // a copy takes a while
      std::memcpy(dst, src, n);
      f->done_ = true;
    });
    return f;
  }
  std::vector<unsigned char> storage_;
  FakeQueue* engine_;
  bool host_accessible_;
};

}  // namespace spillway::testing
