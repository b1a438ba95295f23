// tests/hash_worker_test.cpp — the helper thread that checksums large
// records beside the IO: same digest as XXH3, bytes hashed only once ready,
// one job at a time, and a Job that ends early stops the helper at once.
#include "tiers/disk/hash_worker.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "test_util.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace spillway::detail {
namespace {

std::vector<unsigned char> bytes(std::size_t n, std::uint64_t key) {
  std::vector<unsigned char> v(n);
  spillway::testing::fill_pattern(v.data(), n, key, 0);
  return v;
}

TEST(HashWorker, DigestOfAReadyRangeIsXxh3) {
  HashWorker w;
  for (std::size_t n : {HashWorker::kMinBytes, HashWorker::kMinBytes * 3 + 17}) {
    auto v = bytes(n, n);
    HashWorker::Job job;
    w.start(job, v.data(), n, n);
    ASSERT_TRUE(job) << "an idle worker takes a range of " << n << " bytes";
    EXPECT_EQ(job.digest(), XXH3_64bits(v.data(), n));
  }
}

TEST(HashWorker, HashesOnlyBytesMarkedReady) {
  HashWorker w;
  const std::size_t n = HashWorker::kMinBytes * 2 + 4097;
  auto src = bytes(n, 5);
  std::vector<unsigned char> dst(n, 0);  // filled slice by slice, as a read does
  HashWorker::Job job;
  w.start(job, dst.data(), n, 0);
  ASSERT_TRUE(job);
  const std::size_t slice = 1 << 20;
  for (std::size_t done = 0; done < n; done += slice) {
    const std::size_t k = std::min(slice, n - done);
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // the helper catches up and waits
    std::memcpy(dst.data() + done, src.data() + done, k);
    job.ready(done + k);
  }
  EXPECT_EQ(job.digest(), XXH3_64bits(src.data(), n))
      << "a byte was hashed before it was marked ready";
}

TEST(HashWorker, SmallRangesAndABusyWorkerMeanHashInline) {
  HashWorker w;
  auto v = bytes(HashWorker::kMinBytes, 9);
  HashWorker::Job small;
  w.start(small, v.data(), HashWorker::kMinBytes - 1, HashWorker::kMinBytes - 1);
  EXPECT_FALSE(small);
  HashWorker::Job first;
  w.start(first, v.data(), v.size(), 0);  // holds the worker: nothing is ready
  ASSERT_TRUE(first);
  HashWorker::Job second;
  w.start(second, v.data(), v.size(), v.size());
  EXPECT_FALSE(second) << "one job at a time";
  first.ready(v.size());
  EXPECT_EQ(first.digest(), XXH3_64bits(v.data(), v.size()));
}

TEST(HashWorker, AJobEndedEarlyReleasesTheWorkerAndItsMemory) {
  HashWorker w;
  const std::size_t n = HashWorker::kMinBytes * 4;
  for (int round = 0; round < 20; ++round) {
    auto v = std::make_unique<std::vector<unsigned char>>(bytes(n, round));
    {
      HashWorker::Job job;
      w.start(job, v->data(), n, round % 2 == 0 ? n / 2 : 0);  // a read that fails half way
      ASSERT_TRUE(job) << "round " << round << ": the previous job did not release the worker";
    }  // ends without digest(): the helper must be out of the range now
    v.reset();  // ASan: a helper still reading would touch freed memory
  }
  auto v = bytes(n, 99);
  HashWorker::Job job;
  w.start(job, v.data(), n, n);
  ASSERT_TRUE(job);
  EXPECT_EQ(job.digest(), XXH3_64bits(v.data(), n));
}

}  // namespace
}  // namespace spillway::detail
