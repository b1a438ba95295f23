// tests/stream_pin_test.cpp — stream-aware pins and deferred unpins, proven
// without a GPU: a stand-in device arena whose copies run later on a queue
// of their own, and stand-in "streams" that run queued work in order and
// honour waits on fences, as CUDA streams and events do. The same pool code
// drives the real CUDA arena (tests/cuda).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "fake_device.hpp"
#include "src/core/pool_core.hpp"
#include "test_util.hpp"

namespace spillway {
namespace {

using namespace std::chrono_literals;
using testing::fill_pattern;
using testing::find_mismatch;
using testing::ScratchDir;
using testing::FakeQueue;
using testing::FakeStream;
using testing::FakeAsyncArena;

class StreamPin : public ::testing::Test {
 protected:
  void SetUp() override {
    detail::set_simulated_device_arena_factory([this](std::size_t capacity) {
      return std::make_unique<FakeAsyncArena>(capacity, &engine_);
    });
    PoolOptions o = testing::small_options(dir_.path(), 1 << 20, 1 << 20);
    o.high_watermark = 1.0;  // no proactive spills: keep the layout exact
    pool_ = std::make_unique<Pool>(o);
    detail::set_simulated_device_arena_factory(nullptr);
  }
  void TearDown() override {
    engine_.open_gate();
    stream_.queue.open_gate();
  }
  Buffer on_host(std::size_t n, std::uint64_t key) {
    Buffer b = pool_->allocate(n, Tier::Host, "data");
    Pin p = b.pin(Tier::Host);
    fill_pattern(p.data(), n, key, 0);
    return b;
  }
  std::uint64_t device_pinned() { return pool_->stats().tier(Tier::Device).pinned_bytes; }

  ScratchDir dir_;
  FakeQueue engine_;  // declared before the pool: outlives it
  FakeStream stream_;
  std::unique_ptr<Pool> pool_;
};

TEST_F(StreamPin, ReturnsBeforeTheCopyAndTheStreamSeesTheBytes) {
  Buffer b = on_host(256 << 10, 1);
  engine_.close_gate();  // the copy cannot run yet
  Pin p = b.pin(Tier::Device, Access::Read, stream_.handle());
  ASSERT_TRUE(p) << "the pin waited for a copy that cannot run: it blocked the host";
  EXPECT_EQ(b.tier(), Tier::Device);
  std::atomic<int> seen{-2};  // the "kernel": checks the bytes when it runs
  stream_.queue.push([&] { seen = static_cast<int>(find_mismatch(p.data(), p.size(), 1, 0)); });
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(seen.load(), -2) << "work on the stream ran before the copy it must follow";
  engine_.open_gate();
  stream_.queue.synchronize();
  EXPECT_EQ(seen.load(), -1) << "the stream saw the bytes before they landed";
}

TEST_F(StreamPin, ResidentBufferWithACopyInFlightOrdersTheNextStreamToo) {
  Buffer b = on_host(64 << 10, 2);
  engine_.close_gate();
  Pin first = b.pin(Tier::Device, Access::Read, stream_.handle());
  FakeStream other;
  Pin second = b.pin(Tier::Device, Access::Read, other.handle());
  std::atomic<int> seen{-2};
  other.queue.push([&] { seen = static_cast<int>(find_mismatch(second.data(), second.size(), 2, 0)); });
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(seen.load(), -2);
  engine_.open_gate();
  other.queue.synchronize();
  EXPECT_EQ(seen.load(), -1);
  // A plain pin waits on the host for the copy instead.
  Pin plain = b.pin(Tier::Device, Access::Read);
  EXPECT_EQ(find_mismatch(plain.data(), plain.size(), 2, 0), -1);
}

TEST_F(StreamPin, CopySourceOutlivesAReadWritePinUntilTheCopyEnds) {
  Buffer b = on_host(512 << 10, 3);
  engine_.close_gate();
  Pin p = b.pin(Tier::Device, Access::ReadWrite, stream_.handle());
  EXPECT_EQ(b.clean_copies(), 0u) << "a ReadWrite pin invalidates the clean copies at once";
  // Fill the host tier with other bytes: the host copy the DMA still reads
  // must not be handed out (or dropped as a clean copy) meanwhile.
  std::vector<Buffer> others;
  std::vector<Pin> held;
  int on_host_count = 0;
  for (int i = 0; i < 6; ++i) {
    others.push_back(pool_->allocate(128 << 10, Tier::Host, "other"));
    if (others.back().tier() != Tier::Host) continue;
    ++on_host_count;
    held.push_back(others.back().pin(Tier::Host));
    fill_pattern(held.back().data(), held.back().size(), 100 + i, 0);
  }
  EXPECT_EQ(on_host_count, 4) << "only the 512 KiB beside the copy's source are free";
  engine_.open_gate();
  stream_.queue.synchronize();
  EXPECT_EQ(find_mismatch(p.data(), p.size(), 3, 0), -1) << "the copy read reused memory";
  p.release();
  held.clear();
  // The finished copy is applied: the stale clean copy goes, the others stay.
  EXPECT_EQ(pool_->stats().tier(Tier::Host).used_bytes, std::uint64_t{512} << 10);
  EXPECT_EQ(b.clean_copies(), 0u);
}

TEST_F(StreamPin, ReleaseOnAStreamKeepsThePinUntilTheStreamIsDone) {
  Buffer b = on_host(256 << 10, 4);
  Pin p = b.pin(Tier::Device, Access::ReadWrite, stream_.handle());
  stream_.queue.close_gate();  // the user's kernel is still running
  p.release(stream_.handle());
  EXPECT_FALSE(p);
  EXPECT_EQ(device_pinned(), std::uint64_t{256} << 10) << "released before the stream finished";
  EXPECT_THROW(b.evict(Tier::Host), OutOfMemory) << "a buffer still in use on the stream moved";
  stream_.queue.open_gate();
  stream_.queue.synchronize();
  EXPECT_EQ(device_pinned(), 0u);
  b.evict(Tier::Host);
  Pin h = b.pin(Tier::Host, Access::Read);
  EXPECT_EQ(find_mismatch(h.data(), h.size(), 4, 0), -1);
}

TEST_F(StreamPin, PlainReleaseBeforeTheCopyEndsHoldsThePinUntilIt) {
  Buffer b = on_host(256 << 10, 5);
  engine_.close_gate();
  Pin p = b.pin(Tier::Device, Access::Read, stream_.handle());
  p.release();
  EXPECT_EQ(device_pinned(), std::uint64_t{256} << 10) << "the device block could move mid-copy";
  engine_.open_gate();
  stream_.queue.synchronize();
  EXPECT_EQ(device_pinned(), 0u);
  Pin h = b.pin(Tier::Host, Access::Read);
  EXPECT_EQ(find_mismatch(h.data(), h.size(), 5, 0), -1);
}

TEST_F(StreamPin, BufferFreedWhileItsCopyRunsIsFreedAfterIt) {
  Buffer b = on_host(512 << 10, 6);
  engine_.close_gate();
  {
    Pin p = b.pin(Tier::Device, Access::Read, stream_.handle());
  }
  b.reset();
  EXPECT_GT(pool_->stats().tier(Tier::Host).used_bytes, 0u) << "the copy's source was freed";
  engine_.open_gate();
  stream_.queue.synchronize();
  const PoolStats s = pool_->stats();
  EXPECT_EQ(s.tier(Tier::Device).used_bytes + s.tier(Tier::Host).used_bytes, 0u);
}

TEST_F(StreamPin, PoolDestroyedWithACopyInFlightWaitsForIt) {
  Buffer b = on_host(256 << 10, 7);
  engine_.close_gate();
  Pin p = b.pin(Tier::Device, Access::Read, stream_.handle());
  std::thread opener([this] {
    std::this_thread::sleep_for(30ms);
    engine_.open_gate();
  });
  pool_.reset();  // waits for the copy (within io_timeout) before tearing down
  opener.join();
  EXPECT_EQ(find_mismatch(p.data(), p.size(), 7, 0), -1);
}

TEST(StreamPinSimulated, WithoutDeviceQueuesItIsAPlainPin) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path()));
  Buffer b = pool.allocate(4096, Tier::Host, "x");
  {
    Pin p = b.pin(Tier::Host);
    fill_pattern(p.data(), p.size(), 8, 0);
  }
  Pin p = b.pin(Tier::Device, Access::Read, nullptr);
  EXPECT_EQ(find_mismatch(p.data(), p.size(), 8, 0), -1) << "the bytes are there on return";
  p.release(nullptr);
  EXPECT_EQ(pool.stats().tier(Tier::Device).pinned_bytes, 0u) << "nothing to wait for: ends now";
}

}  // namespace
}  // namespace spillway
