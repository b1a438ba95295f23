// tests/access_log_test.cpp — the access log (issue 20, recording): the
// format's encode/decode round trip, what the decoder does with broken
// input, and what a recording pool writes (src/record/access_recorder.hpp).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/wait.h>
// Header-only XXH3 (no link dependency): a test reseals a header by hand.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "spillway/graph/graph.hpp"
#include "spillway/spillway.hpp"
#include "src/record/log_format.hpp"
#include "src/record/log_reader.hpp"
#include "src/record/log_writer.hpp"
#include "test_util.hpp"

namespace spillway {
namespace {

using record::AccessLog;
using record::Event;
using record::EventKind;
using record::LogFormatError;
using testing::ScratchDir;

// A log of `n` random events over `threads` threads, times never decreasing
// (the order a recording's decoder gives back), with markers and a footer.
AccessLog random_log(std::uint64_t seed, std::size_t n, std::uint32_t threads) {
  std::mt19937_64 rng(seed);
  AccessLog log;
  log.program = "random-" + std::to_string(seed);
  log.options.device_bytes = rng() % (1u << 30);
  log.options.host_bytes = rng();
  log.options.disk_bytes = kUnlimited;
  log.options.device_backend = "simulated";
  log.options.policy = EvictionPolicy::Lookahead;
  log.options.high_watermark = 0.8;
  log.options.low_watermark = 0.5;
  log.options.compression = Compression::Lz4;
  log.options.io_threads = 3;
  log.options.deterministic_moves = seed % 2 == 1;
  log.markers = {"clear_session", "epoch", ""};
  std::uint64_t t = rng() % 1000;
  for (std::size_t i = 0; i < n; ++i) {
    Event e;
    e.kind = static_cast<EventKind>(1 + rng() % 8);
    e.tier = static_cast<Tier>(rng() % 3);
    e.access = rng() % 2 ? Access::ReadWrite : Access::Read;
    e.thread = static_cast<std::uint32_t>(rng() % threads);
    t += rng() % 3 == 0 ? 0 : rng() % 100000;  // ties too
    e.time_ns = t;
    e.buffer = e.kind == EventKind::Marker ? 0 : (rng() % 4 == 0 ? rng() : rng() % 50);
    e.value = e.kind == EventKind::Marker ? rng() % log.markers.size() : (rng() % 3 == 0 ? 0 : rng() >> (rng() % 64));
    log.events.push_back(e);
  }
  record::RecordedTotals totals;
  for (int a = 0; a < 3; ++a) {
    for (int b = 0; b < 3; ++b) {
      totals.moved_bytes[a][b] = rng();
      totals.moves[a][b] = rng() % 1000;
    }
  }
  totals.events = n;
  log.totals = totals;
  return log;
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}

// ---- the format ------------------------------------------------------------------------

TEST(AccessLogFormat, RandomLogsRoundTrip) {
  for (std::uint64_t seed = 1; seed <= 30; ++seed) {
    const AccessLog log = random_log(seed, seed * 97, 1 + static_cast<std::uint32_t>(seed % 6));
    for (std::size_t per_block : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
      const AccessLog back = record::decode_access_log(record::encode_access_log(log, per_block));
      EXPECT_EQ(back.program, log.program);
      EXPECT_EQ(back.options, log.options);
      EXPECT_EQ(back.markers, log.markers);
      EXPECT_EQ(back.totals, log.totals);
      ASSERT_EQ(back.events.size(), log.events.size()) << "seed " << seed;
      for (std::size_t i = 0; i < log.events.size(); ++i) {
        ASSERT_EQ(back.events[i], log.events[i]) << "seed " << seed << " event " << i << " of blocks of " << per_block;
      }
    }
  }
}

TEST(AccessLogFormat, ALogWithoutFooterDecodesWithoutTotals) {
  AccessLog log = random_log(7, 100, 2);
  log.totals.reset();
  const AccessLog back = record::decode_access_log(record::encode_access_log(log));
  EXPECT_FALSE(back.totals.has_value());
  EXPECT_EQ(back.events, log.events);
}

TEST(AccessLogFormat, ThreadsMergeByTimeAndKeepTheirOwnOrder) {
  // Thread 1's events come first in the file but later in time; thread 0's
  // own order is kept even where its times go backwards (a crafted file).
  AccessLog log;
  auto ev = [](std::uint32_t thread, std::uint64_t t, std::uint64_t buffer) {
    Event e;
    e.kind = EventKind::Pin;
    e.thread = thread;
    e.time_ns = t;
    e.buffer = buffer;
    return e;
  };
  log.events = {ev(1, 50, 10), ev(1, 60, 11), ev(0, 10, 1), ev(0, 70, 2), ev(0, 20, 3)};
  const AccessLog back = record::decode_access_log(record::encode_access_log(log, 2));
  std::vector<std::uint64_t> order;
  for (const Event& e : back.events) order.push_back(e.buffer);
  EXPECT_EQ(order, (std::vector<std::uint64_t>{1, 10, 11, 2, 3}));
}

TEST(AccessLogFormat, EveryTruncationIsAnErrorOrAShorterLog) {
  const AccessLog log = random_log(3, 40, 3);
  const std::vector<std::byte> bytes = record::encode_access_log(log, 8);
  std::size_t valid = 0;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    try {
      const AccessLog back = record::decode_access_log(std::span(bytes.data(), n));
      // Cut at a block boundary: a log of the whole blocks, without footer.
      EXPECT_FALSE(back.totals.has_value()) << "cut at " << n;
      EXPECT_LE(back.events.size(), log.events.size());
      ++valid;
    } catch (const LogFormatError& e) {
      EXPECT_LE(e.offset(), n) << "cut at " << n << ": " << e.what();
    }
  }
  // The header alone, and after each of the marker block and the 5 event blocks.
  EXPECT_EQ(valid, 7u);
}

TEST(AccessLogFormat, EveryFlippedByteIsCaught) {
  const AccessLog log = random_log(4, 30, 2);
  const std::vector<std::byte> bytes = record::encode_access_log(log, 8);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned bit : {0u, 7u}) {
      std::vector<std::byte> bad = bytes;
      bad[i] ^= static_cast<std::byte>(1u << bit);
      // Every byte is under a checksum (or is the magic): no flip may give a log.
      try {
        record::decode_access_log(bad);
        ADD_FAILURE() << "flipping bit " << bit << " of byte " << i << " went unnoticed";
      } catch (const LogFormatError& e) {
        EXPECT_LT(e.offset(), bytes.size()) << e.what();
      }
    }
  }
}

TEST(AccessLogFormat, ErrorsNameWhatAndWhere) {
  const AccessLog log = random_log(5, 10, 1);
  const std::vector<std::byte> good = record::encode_access_log(log);
  auto error_of = [](std::vector<std::byte> b) -> std::string {
    try {
      record::decode_access_log(b);
    } catch (const LogFormatError& e) {
      return e.what();
    }
    return "decoded";
  };
  EXPECT_NE(error_of({}).find("not a spillway access log"), std::string::npos);
  std::vector<std::byte> v = good;
  v[8] = std::byte{9};
  EXPECT_NE(error_of(v).find("at byte 8: unknown format version 9"), std::string::npos) << error_of(v);
  // A footer whose event count disagrees with the blocks (re-checksummed, so
  // only the count is wrong).
  AccessLog off = log;
  off.totals->events += 1;
  EXPECT_NE(error_of(record::encode_access_log(off)).find("the footer says 11 events were written, the blocks hold 10"),
            std::string::npos);
  // A block length that overruns the file: no allocation from it, an error.
  const std::size_t header = record::format::encode_header(log.program, log.options).size();
  v = good;
  v[header + 1] = v[header + 2] = v[header + 3] = v[header + 4] = std::byte{0xff};
  EXPECT_NE(error_of(v).find("at byte " + std::to_string(header + 1) + ": a block length of 4294967295 bytes is over"),
            std::string::npos)
      << error_of(v);
  v = good;
  v[header + 3] = std::byte{0x01};  // 64 KiB more than there is
  EXPECT_NE(error_of(v).find("overruns the file"), std::string::npos) << error_of(v);
  // Bytes after the footer.
  v = good;
  v.push_back(std::byte{0});
  EXPECT_NE(error_of(v).find("follow the footer"), std::string::npos) << error_of(v);
}

// Version 2 added the header's flags byte (deterministic_moves). A version 1
// header, which has none, still reads, as a run without the mode.
TEST(AccessLogFormat, DeterministicFlagRoundTripsAndVersionOneLogsStillRead) {
  AccessLog log = random_log(2, 10, 1);
  log.options.deterministic_moves = true;
  const std::vector<std::byte> v2 = record::encode_access_log(log);
  EXPECT_EQ(record::format::get_le(v2.data() + 8, 4), 2u);
  const AccessLog back = record::decode_access_log(v2);
  EXPECT_TRUE(back.options.deterministic_moves);
  EXPECT_EQ(back.version, 2u);

  // The same log as version 1 wrote it: no flags byte, the header one byte
  // shorter, its checksum over the bytes before it.
  const std::size_t header = record::format::encode_header(log.program, log.options).size();
  std::vector<std::byte> v1(v2.begin(), v2.begin() + static_cast<std::ptrdiff_t>(header - 9));
  v1[8] = std::byte{1};
  const auto v1_header = static_cast<std::uint32_t>(header - 1);
  for (int i = 0; i < 4; ++i) v1[12 + static_cast<std::size_t>(i)] = static_cast<std::byte>(v1_header >> (8 * i));
  record::format::put_u64(v1, XXH3_64bits(v1.data(), v1.size()));
  v1.insert(v1.end(), v2.begin() + static_cast<std::ptrdiff_t>(header), v2.end());
  const AccessLog old = record::decode_access_log(v1);
  EXPECT_EQ(old.version, 1u);
  EXPECT_FALSE(old.options.deterministic_moves);
  EXPECT_EQ(old.events, log.events);
  EXPECT_EQ(old.totals, log.totals);

  // A flag this build does not know is refused, naming the byte.
  std::vector<std::byte> bad = v2;
  bad[header - 9] = std::byte{0x03};
  std::vector<std::byte> resealed(bad.begin(), bad.begin() + static_cast<std::ptrdiff_t>(header - 8));
  record::format::put_u64(resealed, XXH3_64bits(resealed.data(), resealed.size()));
  resealed.insert(resealed.end(), bad.begin() + static_cast<std::ptrdiff_t>(header), bad.end());
  try {
    record::decode_access_log(resealed);
    ADD_FAILURE() << "an unknown header flag was accepted";
  } catch (const LogFormatError& e) {
    EXPECT_NE(std::string(e.what()).find("at byte " + std::to_string(header - 9) + ": unknown header flags 2"),
              std::string::npos)
        << e.what();
  }
}

TEST(AccessLogFormat, ReadingAMissingFileIsAnIoError) {
  EXPECT_THROW(record::read_access_log("/nonexistent/dir/log.swlog"), IoError);
}

// ---- recording pools ---------------------------------------------------------------------

PoolOptions recording_options(const ScratchDir& dir, const std::string& file) {
  PoolOptions o = testing::small_options(dir.path());
  o.record_file = dir.path() + "/" + file;
  return o;
}

struct Expected {
  EventKind kind;
  std::uint64_t buffer;
  Tier tier;
  Access access;
  std::uint64_t value;
};

TEST(AccessRecording, ASingleThreadRecordsEveryCallInOrder) {
  ScratchDir dir;
  const PoolOptions o = recording_options(dir, "one.swlog");
  std::uint64_t a_id, b_id, late_id;
  Buffer late;  // outlives the pool: its free is not logged
  {
    Pool pool(o);
    Buffer a = pool.allocate(4096, Tier::Device, "a");
    Buffer b = pool.allocate(8192, Tier::Host, "b");
    a_id = a.id();
    b_id = b.id();
    {
      Pin p = a.pin(Tier::Device, Access::ReadWrite);
      Pin q = b.pin(Tier::Host, Access::Read);
    }  // q, then p
    a.hint_next_use(42);
    a.evict(Tier::Host);
    a.prefetch(Tier::Device);
    pool.quiesce();
    Pin t = b.try_pin(Tier::Host, Access::Read);
    ASSERT_TRUE(t);
    Pin none = b.try_pin(Tier::Device, Access::Read);  // not resident there: not granted, not logged
    ASSERT_FALSE(none);
    t.release();
    pool.record_marker("epoch");
    b.reset();
    pool.record_marker("epoch");
    late = pool.allocate(16, Tier::Host);
    late_id = late.id();
  }  // a freed by its destructor, before the pool's
  late.reset();
  const AccessLog log = record::read_access_log(o.record_file);
  const std::vector<Expected> expected = {
      {EventKind::Allocate, a_id, Tier::Device, Access::Read, 4096},
      {EventKind::Allocate, b_id, Tier::Host, Access::Read, 8192},
      {EventKind::Pin, a_id, Tier::Device, Access::ReadWrite, 0},
      {EventKind::Pin, b_id, Tier::Host, Access::Read, 0},
      {EventKind::Unpin, b_id, Tier::Host, Access::Read, 0},
      {EventKind::Unpin, a_id, Tier::Device, Access::ReadWrite, 0},
      {EventKind::Hint, a_id, Tier::Host, Access::Read, 42},
      {EventKind::Evict, a_id, Tier::Host, Access::Read, 0},
      {EventKind::Prefetch, a_id, Tier::Device, Access::Read, 0},
      {EventKind::Pin, b_id, Tier::Host, Access::Read, 0},
      {EventKind::Unpin, b_id, Tier::Host, Access::Read, 0},
      {EventKind::Marker, 0, Tier::Host, Access::Read, 0},
      {EventKind::Free, b_id, Tier::Host, Access::Read, 0},
      {EventKind::Marker, 0, Tier::Host, Access::Read, 0},
      {EventKind::Allocate, late_id, Tier::Host, Access::Read, 16},
      {EventKind::Free, a_id, Tier::Host, Access::Read, 0},
  };
  ASSERT_EQ(log.events.size(), expected.size());
  std::uint64_t last = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const Event& e = log.events[i];
    const Expected& x = expected[i];
    EXPECT_EQ(e.kind, x.kind) << "event " << i << ": " << record::to_string(e.kind);
    EXPECT_EQ(e.buffer, x.buffer) << "event " << i;
    if (x.kind != EventKind::Free && x.kind != EventKind::Hint && x.kind != EventKind::Marker) {
      EXPECT_EQ(e.tier, x.tier) << "event " << i;
    }
    if (x.kind == EventKind::Pin || x.kind == EventKind::Unpin) EXPECT_EQ(e.access, x.access) << "event " << i;
    EXPECT_EQ(e.value, x.value) << "event " << i;
    EXPECT_EQ(e.thread, 0u);
    EXPECT_GE(e.time_ns, last) << "event " << i;
    last = e.time_ns;
  }
  EXPECT_EQ(log.markers, std::vector<std::string>{"epoch"});
  EXPECT_EQ(log.options.device_bytes, o.device.capacity_bytes);
  EXPECT_EQ(log.options.host_bytes, o.host.capacity_bytes);
  EXPECT_EQ(log.options.device_backend, "simulated");
  EXPECT_TRUE(log.options.disk_enabled);
  ASSERT_TRUE(log.totals.has_value());
  EXPECT_EQ(log.totals->events, expected.size());
  EXPECT_EQ(log.totals->dropped, 0u);
  EXPECT_EQ(log.totals->stop_reason, "");
}

TEST(AccessRecording, FooterTotalsAreThePoolsMoveCounters) {
  ScratchDir dir;
  const PoolOptions o = recording_options(dir, "moves.swlog");
  PoolStats last;
  {
    Pool pool(o);
    std::vector<Buffer> bufs;
    // 12 x 256 KiB through a 1 MiB device tier and a 2 MiB host tier: spills
    // to host and disk, then every buffer back on the device.
    for (int i = 0; i < 12; ++i) {
      bufs.push_back(pool.allocate(256 << 10, Tier::Device));
      Pin p = bufs.back().pin(Tier::Device);
    }
    for (Buffer& b : bufs) Pin p = b.pin(Tier::Device, Access::Read);
    pool.quiesce();
    last = pool.stats();
  }
  const AccessLog log = record::read_access_log(o.record_file);
  ASSERT_TRUE(log.totals.has_value());
  std::uint64_t moved = 0;
  for (Tier from : {Tier::Device, Tier::Host, Tier::Disk}) {
    for (Tier to : {Tier::Device, Tier::Host, Tier::Disk}) {
      // The footer is taken when the pool ends, after the last stats() here:
      // at least as much, and nothing moves once the work is done.
      EXPECT_EQ(log.totals->moves[tier_index(from)][tier_index(to)], last.move(from, to).moves);
      EXPECT_EQ(log.totals->moved_bytes[tier_index(from)][tier_index(to)], last.move(from, to).bytes);
      moved += last.move(from, to).moves;
    }
  }
  EXPECT_GT(moved, 0u) << "the scenario should have moved buffers";
  EXPECT_EQ(log.events.size(), 12u * 6);  // allocate, pin, unpin, pin, unpin, free each
}

TEST(AccessRecording, FourThreadsKeepTheirOrderAndEveryEvent) {
  ScratchDir dir;
  const PoolOptions o = recording_options(dir, "threads.swlog");
  constexpr int kThreads = 4, kRounds = 6000;  // several 64 KiB chunks per thread
  std::map<std::uint64_t, int> owner;          // buffer id -> the thread that made it
  {
    Pool pool(o);
    std::vector<std::vector<std::uint64_t>> ids(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kRounds; ++i) {
          Buffer b = pool.allocate(256, Tier::Host);
          ids[static_cast<std::size_t>(t)].push_back(b.id());
          Pin p = b.pin(Tier::Host, Access::ReadWrite);
          b.hint_next_use(static_cast<std::uint64_t>(i) + 1);
        }  // unpin, then free
      });
    }
    for (auto& th : threads) th.join();  // their chunks are handed over as they exit
    for (int t = 0; t < kThreads; ++t) {
      for (std::uint64_t id : ids[static_cast<std::size_t>(t)]) owner[id] = t;
    }
  }
  const AccessLog log = record::read_access_log(o.record_file);
  ASSERT_EQ(log.events.size(), static_cast<std::size_t>(kThreads) * kRounds * 5);
  ASSERT_TRUE(log.totals.has_value());
  EXPECT_EQ(log.totals->events, log.events.size());
  // Per recorded thread: the same thread's buffers, each one's five events
  // in program order, hints counting up.
  std::map<std::uint32_t, std::vector<const Event*>> by_thread;
  std::uint64_t last_time = 0;
  for (const Event& e : log.events) {
    by_thread[e.thread].push_back(&e);
    EXPECT_GE(e.time_ns, last_time) << "merged across threads by time";
    last_time = e.time_ns;
  }
  ASSERT_EQ(by_thread.size(), static_cast<std::size_t>(kThreads));
  const EventKind cycle[5] = {EventKind::Allocate, EventKind::Pin, EventKind::Hint, EventKind::Unpin, EventKind::Free};
  for (const auto& [thread, events] : by_thread) {
    ASSERT_EQ(events.size(), static_cast<std::size_t>(kRounds) * 5);
    const int made_by = owner.at(events[0]->buffer);
    for (std::size_t i = 0; i < events.size(); ++i) {
      const Event& e = *events[i];
      ASSERT_EQ(e.kind, cycle[i % 5]) << "thread " << thread << " event " << i;
      ASSERT_EQ(e.buffer, events[i - i % 5]->buffer) << "thread " << thread << " event " << i;
      ASSERT_EQ(owner.at(e.buffer), made_by) << "thread " << thread << " event " << i;
      if (e.kind == EventKind::Hint) ASSERT_EQ(e.value, i / 5 + 1) << "thread " << thread << " event " << i;
    }
  }
}

TEST(AccessRecording, ThreadsThatOutliveTheirWorkAndThreadsStillAliveAreBothFlushed) {
  ScratchDir dir;
  const PoolOptions o = recording_options(dir, "alive.swlog");
  std::atomic<bool> done{false}, go_on{false};
  std::thread idle;
  {
    Pool pool(o);
    // One thread records and then stays alive past the pool; one exits early.
    idle = std::thread([&] {
      Buffer b = pool.allocate(100, Tier::Host);
      b.reset();
      done = true;
      while (!go_on) std::this_thread::yield();
    });
    std::thread([&] { pool.allocate(200, Tier::Host).reset(); }).join();
    while (!done) std::this_thread::yield();
  }
  go_on = true;
  idle.join();
  const AccessLog log = record::read_access_log(o.record_file);
  EXPECT_EQ(log.events.size(), 4u);
  ASSERT_TRUE(log.totals.has_value());
  EXPECT_EQ(log.totals->events, 4u);
}

TEST(AccessRecording, EnvironmentVariableRecordsAndLaterPoolsGetNumberedFiles) {
  ScratchDir dir;
  const std::string path = dir.path() + "/env.swlog";
  ::setenv("SPILLWAY_RECORD", path.c_str(), 1);
  {
    Pool first(testing::small_options(dir.path()));
    Pool second(testing::small_options(dir.path()));
    first.allocate(64, Tier::Host).reset();
    for (int i = 0; i < 3; ++i) second.allocate(64, Tier::Host).reset();
  }
  EXPECT_EQ(PoolOptions::from_env().record_file, path);
  ::unsetenv("SPILLWAY_RECORD");
  EXPECT_EQ(record::read_access_log(path).events.size(), 2u);
  EXPECT_EQ(record::read_access_log(path + ".1").events.size(), 6u);
  Pool quiet(testing::small_options(dir.path()));
  quiet.allocate(64, Tier::Host).reset();
  EXPECT_FALSE(std::filesystem::exists(path + ".2")) << "no SPILLWAY_RECORD, no log";
}

TEST(AccessRecording, AnUnwritablePathFailsTheConstructor) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  o.record_file = dir.path() + "/no/such/dir/log.swlog";
  try {
    Pool pool(o);
    FAIL() << "a pool recording to a path it cannot create was made";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/log.swlog"), std::string::npos) << e.what();
  }
}

TEST(AccessRecording, TheLogIsPrivateAndASymlinkAtItsPathIsRefused) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  o.record_file = dir.path() + "/private.swlog";
  { Pool pool(o); }
  struct stat st {};
  ASSERT_EQ(::stat(o.record_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A link planted where the log goes, pointing at a file of the user's:
  // the pool refuses it and the file is untouched.
  const std::string victim = dir.path() + "/victim.txt";
  std::ofstream(victim) << "keep me";
  const std::string link = dir.path() + "/planted.swlog";
  ASSERT_EQ(::symlink(victim.c_str(), link.c_str()), 0);
  o.record_file = link;
  EXPECT_THROW(Pool pool(o), IoError);
  std::ifstream in(victim);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "keep me");
}

TEST(AccessRecording, AFullDiskStopsTheRecordingAndSaysSoInTheFooter) {
  // /dev/full: every write fails with ENOSPC — the header already.
  PoolOptions o;
  o.device.backend = DeviceBackend::None;
  o.host.capacity_bytes = 1 << 20;
  o.disk.enabled = false;
  o.record_file = "/dev/full";
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  EXPECT_THROW(Pool pool(o), IoError);
}

TEST(AccessRecording, AWriteErrorMidRunStopsTheRecordingAndTheProgramGoesOn) {
  // RLIMIT_FSIZE makes writes past 200 KiB fail (EFBIG; SIGXFSZ ignored):
  // the log's fourth 64 KiB block cannot be written. The pool keeps
  // working; the log keeps its whole blocks and its footer says why it
  // stopped and how many events it could not keep.
  ScratchDir dir;
  PoolOptions o = recording_options(dir, "full.swlog");
  o.disk.enabled = false;
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  struct sigaction ignore {}, old_action {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
  struct rlimit small = old;
  small.rlim_cur = 200 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  constexpr std::uint64_t kRounds = 30000;  // 90 000 events, some 500 KiB of log
  ::testing::internal::CaptureStderr();
  {
    Pool pool(o);
    Buffer b = pool.allocate(4096, Tier::Host);
    for (std::uint64_t i = 0; i < kRounds; ++i) {
      Pin p = b.pin(Tier::Host, Access::ReadWrite);
      p.as<std::uint64_t>()[0] = i;
      b.hint_next_use(i + 1);
    }
    Pin p = b.pin(Tier::Host, Access::Read);
    EXPECT_EQ(p.as<std::uint64_t>()[0], kRounds - 1) << "the pool works on after the log stopped";
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);
  EXPECT_NE(err.find("recording to " + o.record_file + " stopped"), std::string::npos) << err;
  EXPECT_EQ(err.find("stopped", err.find("stopped") + 1), std::string::npos) << "said once: " << err;
  const AccessLog log = record::read_access_log(o.record_file);
  ASSERT_TRUE(log.totals.has_value()) << "the footer fits under the limit";
  const std::uint64_t all = 1 + 3 * kRounds + 3;  // allocate, 3 per round, pin + unpin + free at the end
  EXPECT_GT(log.totals->dropped, 0u);
  EXPECT_EQ(log.totals->events, log.events.size());
  EXPECT_EQ(log.totals->events + log.totals->dropped, all) << "every event is either kept or counted";
  EXPECT_NE(log.totals->stop_reason.find("File too large"), std::string::npos) << log.totals->stop_reason;
  // What was kept is the run's beginning, in order.
  ASSERT_GT(log.events.size(), 1000u);
  EXPECT_EQ(log.events[0].kind, EventKind::Allocate);
  for (std::size_t i = 1; i < log.events.size(); ++i) {
    const EventKind expect[3] = {EventKind::Pin, EventKind::Hint, EventKind::Unpin};
    ASSERT_EQ(log.events[i].kind, expect[(i - 1) % 3]) << "event " << i;
  }
}

TEST(AccessRecording, ClearSessionLeavesAMarker) {
  ScratchDir dir;
  const PoolOptions o = recording_options(dir, "graph.swlog");
  {
    Pool pool(o);
    graph::Session s(pool);
    const std::vector<float> values{1, 2};
    auto x = s.constant(graph::Shape{{2}}, values);
    auto y = s.add(x, x);
    s.run({y});
    s.clear_session();
  }
  const AccessLog log = record::read_access_log(o.record_file);
  ASSERT_EQ(log.markers, std::vector<std::string>{"clear_session"});
  std::size_t marker_at = log.events.size(), frees_after = 0;
  for (std::size_t i = 0; i < log.events.size(); ++i) {
    if (log.events[i].kind == EventKind::Marker) marker_at = i;
    if (i > marker_at && log.events[i].kind == EventKind::Free) ++frees_after;
  }
  ASSERT_LT(marker_at, log.events.size());
  EXPECT_GT(frees_after, 0u) << "the clear frees the graph's buffers after its marker";
}

#ifdef SPILLWAY_CLI_PATH
TEST(AccessRecording, TheRecordCommandRecordsAProgramAndSummarisesIt) {
  ScratchDir dir;
  const std::string out = dir.path() + "/demo.swlog";
  const std::string cmd = std::string("'") + SPILLWAY_CLI_PATH + "' record --out '" + out + "' -- '" +
                          SPILLWAY_CLI_PATH + "' demo --device 1M --host 2M --buffers 6 --size 256K 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string text;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) text += buf;
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << text;
  const AccessLog log = record::read_access_log(out);
  std::map<EventKind, std::size_t> kinds;
  for (const Event& e : log.events) ++kinds[e.kind];
  EXPECT_EQ(kinds[EventKind::Allocate], 6u);
  EXPECT_EQ(kinds[EventKind::Pin], 12u);  // written, then read back
  EXPECT_EQ(kinds[EventKind::Unpin], 12u);
  EXPECT_NE(text.find("12 pin"), std::string::npos) << text;
  EXPECT_NE(text.find("6 allocate"), std::string::npos) << text;
  // The command's own exit status is the program's.
  const std::string failing = std::string("'") + SPILLWAY_CLI_PATH + "' record --out '" + out + "' -- sh -c 'exit 3' 2>&1";
  const int st = std::system(failing.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 3);
}
#endif

}  // namespace
}  // namespace spillway
