// tiers/disk/hash_worker.hpp — checksums a record on a second core while the
// calling thread moves its bytes.
//
// Hashing a record and copying it through the page cache take comparable
// time (XXH3 at tens of GB/s, buffered pwrite/pread at similar speeds), so a
// large record's spill costs about half as much again when one thread does
// both one after the other. A HashWorker owns one helper thread; a Job hands
// it a range of host memory and a count of bytes that are ready to hash (all
// of them when writing, a count that grows slice by slice when reading) and
// returns the XXH3-64 of the range, the same value XXH3_64bits gives.
//
// The worker takes one job at a time: a caller that finds it busy (another
// IO thread's record) hashes inline instead, so concurrent spills never wait
// for each other. A Job's destructor stops the helper and waits until it no
// longer touches the memory, so an exception on the caller's side (a failed
// pread, say) never leaves the helper reading memory that is freed next.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "base/sync.hpp"
#include <system_error>
#include <thread>

namespace spillway::detail {

class HashWorker {
 public:
  // Records smaller than this are hashed inline: waking the helper thread
  // costs tens of microseconds, about what a 1 MiB record takes to hash.
  static constexpr std::size_t kMinBytes = std::size_t{4} << 20;

  HashWorker() = default;
  ~HashWorker();
  HashWorker(const HashWorker&) = delete;
  HashWorker& operator=(const HashWorker&) = delete;

  class Job {
   public:
    Job() = default;
    ~Job();
    Job(const Job&) = delete;
    Job& operator=(const Job&) = delete;
    // True when the helper took the range; false means hash inline.
    explicit operator bool() const { return worker_ != nullptr; }
    // Bytes [0, n) of the range may now be hashed (n only grows).
    void ready(std::size_t n) { ready_.store(n, std::memory_order_release); }
    // Waits for the helper to hash the whole range; its XXH3-64. All bytes
    // must have been marked ready.
    std::uint64_t digest();

   private:
    friend class HashWorker;
    HashWorker* worker_ = nullptr;
    std::atomic<std::size_t> ready_{0};
  };

  // Offers [data, data + bytes) to the helper. Leaves `job` empty (hash
  // inline) when the range is below `min_bytes` or the helper is busy.
  void start(Job& job, const void* data, std::size_t bytes, std::size_t ready_now,
             std::size_t min_bytes = kMinBytes);

 private:
  void run();
  void finish_job();  // stops the helper's work on the current job; waits for it

  detail::Mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  bool busy_ SPILLWAY_GUARDED_BY(mu_) = false;      // a job is assigned (from start until the Job ends)
  bool pending_ SPILLWAY_GUARDED_BY(mu_) = false;   // assigned, and the helper has not picked it up yet
  bool working_ SPILLWAY_GUARDED_BY(mu_) = false;   // the helper is inside the range
  bool has_result_ SPILLWAY_GUARDED_BY(mu_) = false;
  bool stopping_ SPILLWAY_GUARDED_BY(mu_) = false;
  std::atomic<bool> cancel_{false};
  const unsigned char* data_ SPILLWAY_GUARDED_BY(mu_) = nullptr;
  std::size_t bytes_ SPILLWAY_GUARDED_BY(mu_) = 0;
  const std::atomic<std::size_t>* ready_ SPILLWAY_GUARDED_BY(mu_) = nullptr;
  std::uint64_t result_ SPILLWAY_GUARDED_BY(mu_) = 0;
};

}  // namespace spillway::detail
