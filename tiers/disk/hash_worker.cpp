// tiers/disk/hash_worker.cpp — see hash_worker.hpp.
#include "hash_worker.hpp"

#include <algorithm>
#include <chrono>
#include <new>

#include <xxhash.h>
// Debian's libxxhash exports runtime-dispatched variants (AVX2/AVX-512).
#if defined(__x86_64__) || defined(_M_X64)
#include <xxh_x86dispatch.h>
#endif

namespace spillway::detail {

namespace {
// The helper hashes at most this much between looks at the cancel flag.
constexpr std::size_t kStepBytes = std::size_t{1} << 20;
}  // namespace

HashWorker::~HashWorker() {
  {
    detail::MutexLock lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HashWorker::start(Job& job, const void* data, std::size_t bytes, std::size_t ready_now,
                       std::size_t min_bytes) {
  if (bytes < min_bytes || job.worker_ != nullptr) return;
  detail::MutexLock lk(mu_);
  if (busy_ || stopping_) return;
  if (!thread_.joinable()) {
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error&) {
      return;  // no thread to be had: hash inline
    }
  }
  busy_ = true;
  pending_ = true;
  has_result_ = false;
  cancel_.store(false, std::memory_order_relaxed);
  data_ = static_cast<const unsigned char*>(data);
  bytes_ = bytes;
  job.ready_.store(ready_now, std::memory_order_release);
  ready_ = &job.ready_;
  job.worker_ = this;
  cv_.notify_all();
}

void HashWorker::run() {
  XXH3_state_t* state = XXH3_createState();
  detail::MutexLock lk(mu_);
  for (;;) {
    cv_.wait(lk.native(), [this]() SPILLWAY_REQUIRES(mu_) { return stopping_ || pending_; });
    if (!pending_) break;  // stopping, nothing assigned
    pending_ = false;
    working_ = true;
    const unsigned char* data = data_;
    const std::size_t bytes = bytes_;
    const std::atomic<std::size_t>* ready = ready_;
    std::uint64_t sum = 0;
    {
      detail::Unlocked unlocked(lk, mu_);
      if (state != nullptr) {
        XXH3_64bits_reset(state);
        std::size_t done = 0;
        unsigned idle = 0;
        while (done < bytes && !cancel_.load(std::memory_order_relaxed)) {
          const std::size_t avail = ready->load(std::memory_order_acquire);
          if (avail > done) {
            const std::size_t n = std::min(avail - done, kStepBytes);
            XXH3_64bits_update(state, data + done, n);
            done += n;
            idle = 0;
            continue;
          }
          // The next slice is being read: it usually lands within tens of
          // microseconds, so spin a little before giving the core away.
          if (++idle < 2000) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
          } else if (idle < 2100) {
            std::this_thread::yield();
          } else {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
          }
        }
        sum = XXH3_64bits_digest(state);
      } else {
        // No hashing state (out of memory): hash at the end, in one call.
        while (ready->load(std::memory_order_acquire) < bytes &&
               !cancel_.load(std::memory_order_relaxed)) {
          std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        if (!cancel_.load(std::memory_order_relaxed)) sum = XXH3_64bits(data, bytes);
      }
    }
    working_ = false;
    has_result_ = true;
    result_ = sum;
    cv_.notify_all();
  }
  XXH3_freeState(state);
}

std::uint64_t HashWorker::Job::digest() {
  detail::MutexLock lk(worker_->mu_);
  // The helper is hashing bytes that are all in memory: this wait ends as
  // soon as it has read them (it does no IO and takes no other lock).
  worker_->cv_.wait(lk.native(), [this]() SPILLWAY_REQUIRES(worker_->mu_) { return worker_->has_result_; });
  return worker_->result_;
}

HashWorker::Job::~Job() {
  if (worker_ != nullptr) worker_->finish_job();
}

void HashWorker::finish_job() {
  cancel_.store(true, std::memory_order_relaxed);
  detail::MutexLock lk(mu_);
  pending_ = false;  // not picked up yet: it never will be
  cv_.wait(lk.native(), [this]() SPILLWAY_REQUIRES(mu_) { return !working_; });
  busy_ = false;
  has_result_ = false;
  data_ = nullptr;
  ready_ = nullptr;
}

}  // namespace spillway::detail
