// tests/replay_test.cpp — spillway::offline::replay on access logs built in
// memory: payloads verified through spills, bad logs named by event, the
// threaded replay's per-buffer sequencing, policies told apart, a corrupted
// payload caught, and the comparison with a log's recorded totals.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>

#include "src/offline/replay.hpp"
#include "test_util.hpp"
#ifdef SPILLWAY_TEST_TOOLS
#include <nlohmann/json.hpp>

#include "tools/replay_cmd.hpp"
#endif

namespace spillway {
namespace {

using offline::ReplayError;
using offline::ReplayOptions;
using offline::ReplayResult;
using record::AccessLog;
using record::Event;
using record::EventKind;

constexpr std::uint64_t KiB = 1024;

// A log written by hand, one event at a time.
class LogBuilder {
 public:
  LogBuilder(std::uint64_t device, std::uint64_t host) {
    log_.program = "replay_test";
    log_.options.device_bytes = device;
    log_.options.host_bytes = host;
    log_.options.disk_bytes = kUnlimited;
    log_.options.device_backend = "simulated";
    log_.options.compression = Compression::None;
    // No proactive spilling: every move is one the events ask for, so two
    // replays of one log move the same bytes (docs/replay.md).
    log_.options.high_watermark = 1.0;
  }
  LogBuilder& add(EventKind k, std::uint64_t buffer, Tier tier = Tier::Host, Access a = Access::Read,
                  std::uint64_t value = 0, std::uint32_t thread = 0) {
    log_.events.push_back(Event{
        .kind = k, .tier = tier, .access = a, .thread = thread, .time_ns = ++now_, .buffer = buffer, .value = value});
    return *this;
  }
  LogBuilder& alloc(std::uint64_t b, std::uint64_t bytes, Tier t = Tier::Device, std::uint32_t th = 0) {
    return add(EventKind::Allocate, b, t, Access::Read, bytes, th);
  }
  LogBuilder& pin(std::uint64_t b, Tier t, Access a, std::uint32_t th = 0) { return add(EventKind::Pin, b, t, a, 0, th); }
  LogBuilder& unpin(std::uint64_t b, Tier t, Access a, std::uint32_t th = 0) {
    return add(EventKind::Unpin, b, t, a, 0, th);
  }
  // A pin and its unpin.
  LogBuilder& use(std::uint64_t b, Tier t, Access a, std::uint32_t th = 0) { return pin(b, t, a, th).unpin(b, t, a, th); }
  LogBuilder& hint(std::uint64_t b, std::uint64_t step) { return add(EventKind::Hint, b, Tier::Host, Access::Read, step); }
  LogBuilder& free(std::uint64_t b, std::uint32_t th = 0) { return add(EventKind::Free, b, Tier::Host, Access::Read, 0, th); }
  LogBuilder& marker(const std::string& name) {
    log_.markers.push_back(name);
    return add(EventKind::Marker, 0, Tier::Host, Access::Read, log_.markers.size() - 1);
  }
  std::size_t size() const { return log_.events.size(); }
  AccessLog& log() { return log_; }

 private:
  AccessLog log_;
  std::uint64_t now_ = 0;
};

// 24 buffers of 64 KiB through a 256 KiB device and a 512 KiB host tier:
// written on the device, read back on the device twice, then on the host.
LogBuilder spilling_log() {
  LogBuilder b(256 * KiB, 512 * KiB);
  b.marker("write");
  for (std::uint64_t id = 1; id <= 24; ++id) b.alloc(id, 64 * KiB).use(id, Tier::Device, Access::ReadWrite);
  b.marker("read");
  for (int round = 0; round < 2; ++round) {
    for (std::uint64_t id = 1; id <= 24; ++id) b.use(id, Tier::Device, round == 0 ? Access::Read : Access::ReadWrite);
  }
  for (std::uint64_t id = 1; id <= 24; ++id) b.use(id, Tier::Host, Access::Read);
  for (std::uint64_t id = 1; id <= 24; ++id) b.free(id);
  return b;
}

ReplayOptions in_dir(const testing::ScratchDir& dir) {
  ReplayOptions o;
  o.disk_dir = dir.path();
  return o;
}

std::uint64_t moved(const ReplayResult& r, Tier from, Tier to) {
  return r.moved_bytes[tier_index(from)][tier_index(to)];
}

TEST(Replay, SpillingLogMovesBytesThroughEveryTierAndVerifiesEveryPin) {
  testing::ScratchDir dir;
  LogBuilder b = spilling_log();
  const ReplayResult r = offline::replay(b.log(), in_dir(dir));
  EXPECT_EQ(r.events, b.size());
  EXPECT_EQ(r.markers, 2u);
  // Every pin after the first write of its buffer was checked: 24 x 3 reads.
  EXPECT_EQ(r.pins_verified, 24u * 3);
  EXPECT_GT(moved(r, Tier::Device, Tier::Host) + moved(r, Tier::Device, Tier::Disk), 0u);
  EXPECT_GT(moved(r, Tier::Host, Tier::Disk) + moved(r, Tier::Device, Tier::Disk), 0u);
  EXPECT_GT(moved(r, Tier::Disk, Tier::Device) + moved(r, Tier::Disk, Tier::Host), 0u);
  EXPECT_GT(r.fetches, 0u);
  EXPECT_GT(r.write_backs, 0u);
  std::uint64_t total = 0;
  for (auto& row : r.moved_bytes) {
    for (std::uint64_t x : row) total += x;
  }
  EXPECT_EQ(r.moved_total, total);
  EXPECT_EQ(r.pins_left, 0u);
  EXPECT_EQ(r.buffers_left, 0u);
  EXPECT_EQ(r.stats.live_buffers, 0u);
  EXPECT_FALSE(r.recorded.has_value());
  EXPECT_FALSE(r.matches_recorded);
}

TEST(Replay, PinsAndBuffersTheLogLeavesAreReleasedAndCounted) {
  testing::ScratchDir dir;
  LogBuilder b(256 * KiB, 512 * KiB);
  b.alloc(1, 8 * KiB).pin(1, Tier::Device, Access::ReadWrite).alloc(2, 8 * KiB).use(2, Tier::Host, Access::ReadWrite);
  const ReplayResult r = offline::replay(b.log(), in_dir(dir));
  EXPECT_EQ(r.pins_left, 1u);
  EXPECT_EQ(r.buffers_left, 2u);
}

TEST(Replay, BufferFreedWhilePinnedIsFreedAtItsLastUnpin) {
  testing::ScratchDir dir;
  LogBuilder b(256 * KiB, 512 * KiB);
  b.alloc(1, 8 * KiB).pin(1, Tier::Host, Access::ReadWrite).free(1).unpin(1, Tier::Host, Access::ReadWrite);
  const ReplayResult r = offline::replay(b.log(), in_dir(dir));
  EXPECT_EQ(r.buffers_left, 0u);
  EXPECT_EQ(r.stats.live_buffers, 0u);
}

// Expects replay of `log` to fail at event `index`, naming it and `buffer`.
void expect_error_at(AccessLog& log, std::uint64_t index, std::uint64_t buffer, const std::string& words) {
  testing::ScratchDir dir;
  try {
    offline::replay(log, in_dir(dir));
    FAIL() << "replay accepted a log it should refuse at event " << index;
  } catch (const ReplayError& e) {
    EXPECT_EQ(e.event_index(), index) << e.what();
    EXPECT_EQ(e.buffer(), buffer) << e.what();
    const std::string what = e.what();
    EXPECT_NE(what.find("event " + std::to_string(index) + ":"), std::string::npos) << what;
    EXPECT_NE(what.find("buffer " + std::to_string(buffer)), std::string::npos) << what;
    EXPECT_NE(what.find(words), std::string::npos) << what;
  }
}

TEST(Replay, EventOnABufferNeverAllocatedIsAnErrorNamingTheEvent) {
  LogBuilder b(256 * KiB, 512 * KiB);
  b.alloc(1, 4 * KiB).use(1, Tier::Host, Access::ReadWrite).pin(99, Tier::Host, Access::Read);
  expect_error_at(b.log(), 3, 99, "no event before it allocates this buffer");
}

TEST(Replay, EventOnAFreedBufferIsAnErrorNamingTheEvent) {
  LogBuilder b(256 * KiB, 512 * KiB);
  b.alloc(7, 4 * KiB).free(7).hint(7, 3);
  expect_error_at(b.log(), 2, 7, "freed before it");
}

TEST(Replay, UnpinThatMatchesNoPinIsAnErrorNamingTheEvent) {
  {
    LogBuilder b(256 * KiB, 512 * KiB);
    b.alloc(1, 4 * KiB).unpin(1, Tier::Host, Access::Read);
    expect_error_at(b.log(), 1, 1, "no live pin on host for read matches it");
  }
  {
    // Pinned for read, unpinned as if for read-write: a different pin.
    LogBuilder b(256 * KiB, 512 * KiB);
    b.alloc(1, 4 * KiB).pin(1, Tier::Host, Access::Read).unpin(1, Tier::Host, Access::ReadWrite);
    expect_error_at(b.log(), 2, 1, "no live pin on host for read-write matches it (1 other pin(s) live)");
  }
  {
    // The same pin released twice.
    LogBuilder b(256 * KiB, 512 * KiB);
    b.alloc(2, 4 * KiB).use(2, Tier::Device, Access::Read).unpin(2, Tier::Device, Access::Read);
    expect_error_at(b.log(), 3, 2, "no live pin on device for read matches it");
  }
}

TEST(Replay, PinOnTheDiskTierIsAnErrorNamingTheEvent) {
  LogBuilder b(256 * KiB, 512 * KiB);
  b.alloc(4, 4 * KiB).pin(4, Tier::Disk, Access::Read);
  expect_error_at(b.log(), 1, 4, "a pin on the disk tier");
}

TEST(Replay, PoolFailureDuringReplayNamesTheEvent) {
  // Recorded on a bigger device: three pinned 128 KiB buffers cannot all be
  // on a 256 KiB device tier at once.
  LogBuilder b(1024 * KiB, 512 * KiB);
  b.alloc(1, 128 * KiB).pin(1, Tier::Device, Access::ReadWrite);
  b.alloc(2, 128 * KiB).pin(2, Tier::Device, Access::ReadWrite);
  b.alloc(3, 128 * KiB, Tier::Host).pin(3, Tier::Device, Access::ReadWrite);
  testing::ScratchDir dir;
  ReplayOptions o = in_dir(dir);
  o.device_bytes = 256 * KiB;
  o.pressure_wait = std::chrono::milliseconds(50);
  try {
    offline::replay(b.log(), o);
    FAIL() << "three 128 KiB pins fitted a 256 KiB device tier";
  } catch (const ReplayError& e) {
    EXPECT_EQ(e.event_index(), 5u) << e.what();
    EXPECT_NE(std::string(e.what()).find("pin of buffer 3 failed"), std::string::npos) << e.what();
  }
}

// Corrupts one payload word of buffer `victim` right after its pin at event
// `at`: the next pin of that buffer must catch it, wherever the bytes went
// in between.
TEST(Replay, CorruptedPayloadIsCaughtNamingBufferEventAndOffset) {
  LogBuilder b = spilling_log();
  // Event 2 is buffer 1's first pin (marker, allocate, pin): the write.
  ASSERT_EQ(b.log().events[2].kind, EventKind::Pin);
  ASSERT_EQ(b.log().events[2].buffer, 1u);
  testing::ScratchDir dir;
  ReplayOptions o = in_dir(dir);
  std::atomic<int> corrupted{0};
  o.after_pin_for_testing = [&](std::uint64_t event, std::uint64_t buffer, void* data, std::size_t size) {
    if (event == 2 && buffer == 1 && size > 2 * 4096) {
      static_cast<unsigned char*>(data)[2 * 4096 + 3] ^= 0x40;
      ++corrupted;
    }
  };
  // The next pin of buffer 1 after event 2: the first one of the "read" round.
  std::uint64_t next = 0;
  for (std::uint64_t i = 3; i < b.size(); ++i) {
    if (b.log().events[i].kind == EventKind::Pin && b.log().events[i].buffer == 1) {
      next = i;
      break;
    }
  }
  try {
    offline::replay(b.log(), o);
    FAIL() << "a flipped byte in buffer 1 went unnoticed";
  } catch (const ReplayError& e) {
    EXPECT_EQ(corrupted.load(), 1);
    EXPECT_EQ(e.event_index(), next) << e.what();
    EXPECT_EQ(e.buffer(), 1u);
    const std::string what = e.what();
    EXPECT_NE(what.find("byte offset 8195"), std::string::npos) << what;
    EXPECT_NE(what.find("lost or mixed up"), std::string::npos) << what;
  }
}

// Without the seam the same log verifies: the corruption test fails for
// the flipped byte, not for the log.
TEST(Replay, SameLogWithoutCorruptionVerifies) {
  testing::ScratchDir dir;
  LogBuilder b = spilling_log();
  EXPECT_NO_THROW(offline::replay(b.log(), in_dir(dir)));
}

// Two recorded threads: each writes and reads its own buffers, and hands one
// buffer to the other (thread 0 writes it, thread 1 reads it and writes it
// again, thread 0 reads it back), under pressure.
LogBuilder two_thread_log() {
  LogBuilder b(256 * KiB, 512 * KiB);
  b.alloc(100, 32 * KiB, Tier::Device, 0).use(100, Tier::Device, Access::ReadWrite, 0);
  for (std::uint32_t th = 0; th < 2; ++th) {
    for (std::uint64_t k = 0; k < 8; ++k) b.alloc(th * 10 + k + 1, 48 * KiB, Tier::Device, th);
  }
  for (int round = 0; round < 3; ++round) {
    for (std::uint64_t k = 0; k < 8; ++k) {
      for (std::uint32_t th = 0; th < 2; ++th) b.use(th * 10 + k + 1, Tier::Device, Access::ReadWrite, th);
    }
    b.use(100, Tier::Host, Access::Read, 1).use(100, Tier::Device, Access::ReadWrite, 1);
    b.use(100, Tier::Device, Access::Read, 0);
  }
  for (std::uint32_t th = 0; th < 2; ++th) {
    for (std::uint64_t k = 0; k < 8; ++k) b.free(th * 10 + k + 1, th);
  }
  b.free(100, 1);
  return b;
}

TEST(Replay, TwoThreadsReplayEachRecordedThreadWithPerBufferSequencing) {
  testing::ScratchDir dir;
  LogBuilder b = two_thread_log();
  ReplayOptions o = in_dir(dir);
  const ReplayResult one = offline::replay(b.log(), o);
  o.threads = 2;
  for (int rep = 0; rep < 5; ++rep) {
    const ReplayResult two = offline::replay(b.log(), o);
    EXPECT_EQ(two.threads, 2u);
    EXPECT_EQ(two.events, b.size());
    // Every pin of a written buffer verified, as with one thread: buffer
    // 100 was read by thread 1 only after thread 0 wrote it.
    EXPECT_EQ(two.pins_verified, one.pins_verified);
    EXPECT_EQ(two.buffers_left, 0u);
    EXPECT_GT(two.moved_total, 0u);
  }
  // Thread 1 frees buffer 100, which thread 0 allocated: without sequencing
  // it would be freed (or pinned) before it exists.
  EXPECT_EQ(one.pins_verified, 2u * 8 * 2 + 3u * 3);
}

TEST(Replay, ThreadedErrorInOneThreadStopsTheOthers) {
  // Replayed without a host tier, thread 1's first host pin of buffer 100
  // fails; thread 0, which waits for thread 1's events on that buffer,
  // stops instead of waiting out its timeout.
  LogBuilder b = two_thread_log();
  testing::ScratchDir dir;
  ReplayOptions o = in_dir(dir);
  o.threads = 2;
  o.pressure_wait = std::chrono::milliseconds(50);
  o.host_bytes = 0;
  o.sequencing_timeout = std::chrono::milliseconds(30000);
  try {
    offline::replay(b.log(), o);
    FAIL() << "host pins succeeded without a host tier";
  } catch (const ReplayError& e) {
    EXPECT_NE(std::string(e.what()).find("pin of buffer 100 failed"), std::string::npos) << e.what();
  }
}

// A loop over 10 buffers through a device tier that holds 4, with hints
// naming each buffer's next use: LRU (CLOCK) misses on every pin, Lookahead
// keeps the buffers used soonest and fetches far less.
LogBuilder loop_log() {
  LogBuilder b(4 * 64 * KiB + 4 * KiB, 16 * 64 * KiB);
  constexpr std::uint64_t kBuffers = 10;
  std::uint64_t step = 0;
  for (std::uint64_t id = 1; id <= kBuffers; ++id) {
    b.alloc(id, 64 * KiB, Tier::Host).use(id, Tier::Host, Access::ReadWrite).hint(id, id - 1);
  }
  for (int round = 0; round < 6; ++round) {
    for (std::uint64_t id = 1; id <= kBuffers; ++id, ++step) {
      b.use(id, Tier::Device, Access::Read).hint(id, step + kBuffers);
    }
  }
  return b;
}

TEST(Replay, LookaheadMovesFewerBytesThanLruOnAHintedLoopLargerThanTheTier) {
  testing::ScratchDir dir;
  LogBuilder b = loop_log();
  ReplayOptions o = in_dir(dir);
  o.policy = EvictionPolicy::Lru;
  const ReplayResult lru = offline::replay(b.log(), o);
  o.policy = offline::parse_policy_name("clock");
  const ReplayResult clock = offline::replay(b.log(), o);
  o.policy = EvictionPolicy::Lookahead;
  const ReplayResult ahead = offline::replay(b.log(), o);
  EXPECT_EQ(lru.policy, EvictionPolicy::Lru);
  EXPECT_EQ(ahead.policy, EvictionPolicy::Lookahead);
  // "lru" and "clock" are one policy.
  EXPECT_EQ(clock.moved_total, lru.moved_total);
  // LRU on a cyclic loop over more buffers than fit fetches on every pin.
  EXPECT_EQ(moved(lru, Tier::Host, Tier::Device), 60u * 64 * KiB);
  EXPECT_LT(moved(ahead, Tier::Host, Tier::Device), moved(lru, Tier::Host, Tier::Device) * 3 / 4)
      << "lookahead " << ahead.moved_total << " vs lru " << lru.moved_total;
}

TEST(Replay, PolicyNames) {
  EXPECT_EQ(offline::parse_policy_name("lru"), EvictionPolicy::Lru);
  EXPECT_EQ(offline::parse_policy_name("clock"), EvictionPolicy::Lru);
  EXPECT_EQ(offline::parse_policy_name("lookahead"), EvictionPolicy::Lookahead);
  EXPECT_THROW(offline::parse_policy_name("mru"), std::invalid_argument);
}

TEST(Replay, PoolOptionsComeFromTheLogWithOverrides) {
  LogBuilder b(256 * KiB, 512 * KiB);
  b.log().options.policy = EvictionPolicy::Lookahead;
  b.log().options.disk_bytes = 8 << 20;
  b.log().options.io_threads = 3;
  ReplayOptions o;
  PoolOptions p = offline::replay_pool_options(b.log(), o);
  EXPECT_EQ(p.device.capacity_bytes, 256 * KiB);
  EXPECT_EQ(p.device.backend, DeviceBackend::Simulated);
  EXPECT_EQ(p.host.capacity_bytes, 512 * KiB);
  EXPECT_EQ(p.disk.capacity_bytes, 8u << 20);
  EXPECT_EQ(p.policy, EvictionPolicy::Lookahead);
  EXPECT_EQ(p.io_threads, 3u);
  EXPECT_EQ(p.high_watermark, 1.0);
  o.device_bytes = 0;
  o.host_bytes = 1 << 20;
  o.policy = EvictionPolicy::Lru;
  p = offline::replay_pool_options(b.log(), o);
  EXPECT_EQ(p.device.backend, DeviceBackend::None);
  EXPECT_EQ(p.host.capacity_bytes, 1u << 20);
  EXPECT_EQ(p.policy, EvictionPolicy::Lru);
}

// Two replays of one log with its own options move the same bytes (no
// proactive spilling, one thread), and the footer comparison says so; a
// footer that differs in one tier pair does not match.
TEST(Replay, SameLogSameBytesAndTheFooterComparison) {
  testing::ScratchDir dir;
  LogBuilder b = spilling_log();
  const ReplayResult first = offline::replay(b.log(), in_dir(dir));
  record::RecordedTotals totals;
  for (int f = 0; f < 3; ++f) {
    for (int t = 0; t < 3; ++t) {
      totals.moved_bytes[f][t] = first.moved_bytes[f][t];
      totals.moves[f][t] = first.moves[f][t];
    }
  }
  totals.events = b.size();
  b.log().totals = totals;
  const ReplayResult second = offline::replay(b.log(), in_dir(dir));
  EXPECT_TRUE(second.matches_recorded);
  for (int f = 0; f < 3; ++f) {
    for (int t = 0; t < 3; ++t) EXPECT_EQ(second.moved_bytes[f][t], first.moved_bytes[f][t]) << f << "->" << t;
  }
  b.log().totals->moved_bytes[1][2] += 4096;
  EXPECT_FALSE(offline::replay(b.log(), in_dir(dir)).matches_recorded);
}

// 64 buffers of 4 to 192 KiB (about 6 MiB) through a 512 KiB device and
// 1 MiB host tier: random pins on both tiers, hints, and prefetches to the
// device among them.
LogBuilder random_log_with_prefetches() {
  LogBuilder b(512 * KiB, 1024 * KiB);
  std::mt19937_64 rng(7);
  constexpr std::uint64_t kBuffers = 64;
  for (std::uint64_t id = 1; id <= kBuffers; ++id) b.alloc(id, 4 * KiB * (1 + rng() % 48)).use(id, Tier::Device, Access::ReadWrite);
  for (int i = 0; i < 3000; ++i) {
    const std::uint64_t id = 1 + rng() % kBuffers;
    const Tier t = rng() % 3 == 0 ? Tier::Host : Tier::Device;
    const Access a = rng() % 4 == 0 ? Access::ReadWrite : Access::Read;
    if (rng() % 4 == 0) b.add(EventKind::Prefetch, 1 + rng() % kBuffers, Tier::Device);
    b.use(id, t, a);
    if (rng() % 8 == 0) b.hint(id, static_cast<std::uint64_t>(i) + rng() % 100);
  }
  return b;
}

// A prefetch runs on an IO worker and races the events after it (which
// victims are free to take, when the bytes arrive in the device's ring), so
// replays of a log with prefetches move different bytes each time (12 of 12
// differed when this was written). Settled, the pool is idle before each
// next event, and every replay moves the same bytes.
TEST(Replay, SettledReplaysOfALogWithPrefetchesMoveTheSameBytes) {
  testing::ScratchDir dir;
  LogBuilder b = random_log_with_prefetches();
  ReplayOptions o = in_dir(dir);
  o.settle = true;
  const ReplayResult first = offline::replay(b.log(), o);
  EXPECT_GT(first.moved_total, 0u);
  for (int rep = 0; rep < 4; ++rep) {
    const ReplayResult again = offline::replay(b.log(), o);
    for (int f = 0; f < 3; ++f) {
      for (int t = 0; t < 3; ++t) {
        EXPECT_EQ(again.moved_bytes[f][t], first.moved_bytes[f][t]) << "replay " << rep << ", " << f << "->" << t;
      }
    }
  }
}

#ifdef SPILLWAY_TEST_TOOLS
TEST(Replay, JsonNamesEveryTierPairAndTheRecordedTotals) {
  testing::ScratchDir dir;
  LogBuilder b = spilling_log();
  ReplayResult r = offline::replay(b.log(), in_dir(dir));
  auto j = nlohmann::json::parse(tools::replay_json(r));
  EXPECT_EQ(j["bytes_moved"]["total"].get<std::uint64_t>(), r.moved_total);
  EXPECT_EQ(j["bytes_moved"]["device->host"].get<std::uint64_t>(), moved(r, Tier::Device, Tier::Host));
  EXPECT_EQ(j["bytes_moved"]["disk->device"].get<std::uint64_t>(), moved(r, Tier::Disk, Tier::Device));
  EXPECT_EQ(j["fetches"].get<std::uint64_t>(), r.fetches);
  EXPECT_EQ(j["write_backs"].get<std::uint64_t>(), r.write_backs);
  EXPECT_EQ(j["events"].get<std::uint64_t>(), b.size());
  EXPECT_TRUE(j.contains("stall_seconds"));
  EXPECT_TRUE(j.contains("wall_seconds"));
  EXPECT_FALSE(j.contains("recorded_bytes_moved"));
  EXPECT_FALSE(j["matches_recorded"].get<bool>());
  r.recorded = record::RecordedTotals{};
  r.recorded->moved_bytes[0][1] = 12345;
  j = nlohmann::json::parse(tools::replay_json(r));
  EXPECT_EQ(j["recorded_bytes_moved"]["device->host"].get<std::uint64_t>(), 12345u);
}
#endif

}  // namespace
}  // namespace spillway
