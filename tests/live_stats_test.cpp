// tests/live_stats_test.cpp — live stats in shared memory: the block carries
// every PoolStats field; another process (the built `spillway top`) reads
// what stats() says while the pool spills and after it settles; the segment
// is 0600, owned by the user and gone with the pool; segments of dead
// processes are cleaned; a reader names what is wrong with a segment it
// cannot use; `spillway top`'s screen shows bars and rates.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "src/instrument/live_stats.hpp"
#include "test_util.hpp"
#include "tools/top_view.hpp"

namespace spillway {
namespace {

using namespace std::chrono_literals;
using instrument::LiveStatsBlock;
using instrument::LiveStatsError;
using instrument::LiveStatsPublisher;
using instrument::LiveStatsReader;
using testing::ScratchDir;

std::string shm_file(const std::string& name) { return std::string(instrument::kShmDirectory) + "/" + name; }

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// A PoolStats whose every number differs from every other.
PoolStats numbered_stats() {
  PoolStats s;
  std::uint64_t n = 1;
  for (auto& t : s.tiers) {
    t.enabled = (n % 2) == 1;
    t.capacity_bytes = n++;
    t.used_bytes = n++;
    t.clean_bytes = n++;
    t.pinned_bytes = n++;
    t.peak_bytes = n++;
    t.buffers = n++;
    t.largest_free_bytes = n++;
    t.fragmentation = 0.01 * static_cast<double>(n++);
    t.thread_cached_bytes = n++;
  }
  s.tiers[1].enabled = false;
  for (auto& row : s.moves) {
    for (auto& m : row) {
      m.moves = n++;
      m.bytes = n++;
      m.stored_bytes = n++;
      m.seconds = 0.001 * static_cast<double>(n++);
    }
  }
  for (auto& e : s.evictions) e = n++;
  s.clean_evictions = n++;
  s.pins = n++;
  s.pin_waits = n++;
  s.stall_seconds = 1.25 + static_cast<double>(n++);
  s.live_buffers = n++;
  s.disk_stored_bytes = n++;
  s.disk_file_bytes = n++;
  s.disk_overlapped_writes = n++;
  s.errors = {n, n + 1, n + 2, n + 3, n + 4};
  n += 5;
  for (auto& b : s.move_latency) b = n++;
  s.move_latency_sum = 0.5 + static_cast<double>(n++);
  return s;
}

// Every field of PoolStats, by name.
void expect_same(const PoolStats& a, const PoolStats& b) {
  for (int t = 0; t < kTierCount; ++t) {
    SCOPED_TRACE("tier " + std::to_string(t));
    EXPECT_EQ(a.tiers[t].enabled, b.tiers[t].enabled);
    EXPECT_EQ(a.tiers[t].capacity_bytes, b.tiers[t].capacity_bytes);
    EXPECT_EQ(a.tiers[t].used_bytes, b.tiers[t].used_bytes);
    EXPECT_EQ(a.tiers[t].clean_bytes, b.tiers[t].clean_bytes);
    EXPECT_EQ(a.tiers[t].pinned_bytes, b.tiers[t].pinned_bytes);
    EXPECT_EQ(a.tiers[t].peak_bytes, b.tiers[t].peak_bytes);
    EXPECT_EQ(a.tiers[t].buffers, b.tiers[t].buffers);
    EXPECT_EQ(a.tiers[t].largest_free_bytes, b.tiers[t].largest_free_bytes);
    EXPECT_EQ(a.tiers[t].fragmentation, b.tiers[t].fragmentation);
    EXPECT_EQ(a.tiers[t].thread_cached_bytes, b.tiers[t].thread_cached_bytes);
  }
  for (int f = 0; f < kTierCount; ++f) {
    for (int t = 0; t < kTierCount; ++t) {
      SCOPED_TRACE("moves " + std::to_string(f) + " -> " + std::to_string(t));
      EXPECT_EQ(a.moves[f][t].moves, b.moves[f][t].moves);
      EXPECT_EQ(a.moves[f][t].bytes, b.moves[f][t].bytes);
      EXPECT_EQ(a.moves[f][t].stored_bytes, b.moves[f][t].stored_bytes);
      EXPECT_EQ(a.moves[f][t].seconds, b.moves[f][t].seconds);
    }
  }
  EXPECT_EQ(a.evictions, b.evictions);
  EXPECT_EQ(a.clean_evictions, b.clean_evictions);
  EXPECT_EQ(a.pins, b.pins);
  EXPECT_EQ(a.pin_waits, b.pin_waits);
  EXPECT_EQ(a.stall_seconds, b.stall_seconds);
  EXPECT_EQ(a.live_buffers, b.live_buffers);
  EXPECT_EQ(a.disk_stored_bytes, b.disk_stored_bytes);
  EXPECT_EQ(a.disk_file_bytes, b.disk_file_bytes);
  EXPECT_EQ(a.disk_overlapped_writes, b.disk_overlapped_writes);
  EXPECT_EQ(a.errors.spill_write_failures, b.errors.spill_write_failures);
  EXPECT_EQ(a.errors.fetch_failures, b.errors.fetch_failures);
  EXPECT_EQ(a.errors.corruptions, b.errors.corruptions);
  EXPECT_EQ(a.errors.out_of_memory, b.errors.out_of_memory);
  EXPECT_EQ(a.errors.timeouts, b.errors.timeouts);
  EXPECT_EQ(a.move_latency, b.move_latency);
  EXPECT_EQ(a.move_latency_sum, b.move_latency_sum);
}

PoolOptions live_options(const std::string& dir) {
  PoolOptions o = testing::small_options(dir, 1 << 20, 2 << 20);
  o.live_stats = true;
  o.live_stats_interval = 10ms;
  return o;
}

// Blocks until the pool of this process has published twice more: the
// second of those snapshots was taken after this call began.
void wait_for_fresh_publish() {
  LiveStatsReader reader(::getpid());
  const std::uint64_t seen = reader.read().publishes;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (reader.read().publishes < seen + 2) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the publisher stopped publishing";
    std::this_thread::sleep_for(2ms);
  }
}

// Runs a command, returns (exit status, stdout and stderr).
std::pair<int, std::string> run(const std::string& cmd) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Writes buffers (spilling older ones down) and reads a third of them back
// (fetching them up), checking their bytes.
struct Written {
  Buffer buffer;
  std::uint64_t key;
};
void spill_round(Pool& pool, std::vector<Written>& bufs, int round) {
  for (int i = 0; i < 4; ++i) {
    const std::uint64_t key = static_cast<std::uint64_t>(round) * 4 + static_cast<std::uint64_t>(i);
    bufs.push_back({pool.allocate(256 << 10, Tier::Device, "live"), key});
    Pin p = bufs.back().buffer.pin(Tier::Device);
    testing::fill_pattern(p.data(), p.size(), key, 0);
  }
  for (std::size_t i = static_cast<std::size_t>(round) % 3; i < bufs.size(); i += 3) {
    Pin p = bufs[i].buffer.pin(Tier::Device, Access::Read);
    ASSERT_EQ(testing::find_mismatch(p.data(), p.size(), bufs[i].key, 0), -1);
  }
}

// A child process that only waits to be killed: a live pid with no pool.
class IdleChild {
 public:
  IdleChild() {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (;;) ::pause();
    }
  }
  ~IdleChild() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

// A pid that is certainly not running: a child that exited and was reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

// A segment made by hand, as a crashed or foreign writer would leave it.
class HandMadeSegment {
 public:
  HandMadeSegment(std::string name, std::size_t bytes) : path_(shm_file(name)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) {
      ADD_FAILURE() << "cannot create " << path_ << ": " << std::strerror(errno);
    }
  }
  ~HandMadeSegment() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  // The header of a live stats block (`sequence` 2: published once).
  void write_header(std::uint64_t magic, std::uint32_t version, std::int64_t pid,
                    std::uint64_t sequence = 2) {
    unsigned char head[40] = {};
    const std::uint32_t bytes = sizeof(LiveStatsBlock);
    std::memcpy(head + 0, &magic, 8);
    std::memcpy(head + 8, &version, 4);
    std::memcpy(head + 12, &bytes, 4);
    std::memcpy(head + 16, &pid, 8);
    std::memcpy(head + 32, &sequence, 8);
    ASSERT_EQ(::pwrite(fd_, head, sizeof head, 0), static_cast<ssize_t>(sizeof head));
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

std::string error_of(std::int64_t pid) {
  try {
    LiveStatsReader::read(pid);
  } catch (const LiveStatsError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(LiveStats, BlockCarriesEveryField) {
  const PoolStats s = numbered_stats();
  instrument::LiveStatsPayload p{};
  instrument::to_block(s, p);
  expect_same(instrument::from_block(p), s);
  // And through shared memory: a publisher and a reader with mappings of their own.
  LiveStatsPublisher pub(1h, [&] { return s; });
  const auto snap = LiveStatsReader::read(::getpid());
  expect_same(snap.stats, s);
  EXPECT_EQ(snap.pid, ::getpid());
  EXPECT_EQ(snap.name, pub.name());
  EXPECT_EQ(snap.publishes, 1u) << "the constructor publishes once";
  EXPECT_LT(snap.age_seconds, 60.0);
  pub.publish_now();
  EXPECT_EQ(LiveStatsReader::read(::getpid()).publishes, 2u);
}

TEST(LiveStats, SecondProcessReadsWhatStatsSaysWhileThePoolSpills) {
#ifndef SPILLWAY_CLI_PATH
  GTEST_SKIP() << "the spillway tool is not built (SPILLWAY_BUILD_TOOLS=OFF)";
#else
  const std::string top = std::string("'") + SPILLWAY_CLI_PATH + "' top " + std::to_string(::getpid());
  ScratchDir dir;
  Pool pool(live_options(dir.path()));
  // `spillway top --prometheus`, again and again, while this process spills:
  // every snapshot it gets must be whole (the histogram counts every move of
  // the same snapshot; a torn copy mixes two).
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::vector<std::string> failures;
  std::thread reader([&] {
    while (!stop.load()) {
      const auto [rc, out] = run(top + " --prometheus");
      if (rc != 0) {
        failures.push_back("exit " + std::to_string(rc) + ": " + out);
        continue;
      }
      const auto m = testing::parse_prometheus(out);
      double moves = 0;
      for (const auto& [key, v] : m) {
        if (key.rfind("spillway_moves_total{", 0) == 0) moves += v;
      }
      const auto count = m.find("spillway_move_duration_seconds_count");
      if (count == m.end() || count->second != moves) {
        failures.push_back("inconsistent snapshot: " + out);
      }
      ++reads;
    }
  });
  std::vector<Written> bufs;
  for (int round = 0; round < 12 || (reads.load() < 3 && round < 2000); ++round) {
    spill_round(pool, bufs, round);
    if (bufs.size() > 40) bufs.erase(bufs.begin(), bufs.begin() + 8);
  }
  stop = true;
  reader.join();
  EXPECT_GE(reads.load(), 3) << "the reader did not get to read while the pool spilled";
  for (const auto& f : failures) ADD_FAILURE() << f;

  // Settled: what another process reads is what stats() says, to the digit.
  pool.quiesce();
  wait_for_fresh_publish();
  const PoolStats s = pool.stats();
  const std::uint64_t spilled = s.move(Tier::Device, Tier::Host).moves + s.move(Tier::Host, Tier::Disk).moves;
  ASSERT_GT(s.move(Tier::Host, Tier::Disk).moves, 0u) << "the workload did not reach the disk";
  ASSERT_GT(spilled, 0u);
  expect_same(LiveStatsReader::read(::getpid()).stats, s);
  const auto [rc, out] = run(top + " --prometheus");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, s.to_prometheus());
  const auto m = testing::parse_prometheus(out);
  EXPECT_EQ(m.at(R"(spillway_tier_bytes{tier="device",state="used"})"), double(s.tier(Tier::Device).used_bytes));
  EXPECT_EQ(m.at(R"(spillway_tier_bytes{tier="disk",state="used"})"), double(s.tier(Tier::Disk).used_bytes));
  EXPECT_EQ(m.at(R"(spillway_moves_total{from="device",to="host"})"), double(s.move(Tier::Device, Tier::Host).moves));
  EXPECT_EQ(m.at(R"(spillway_moved_bytes_total{from="host",to="disk"})"), double(s.move(Tier::Host, Tier::Disk).bytes));
  // The human view says the same numbers.
  const auto [rc2, once] = run(top + " --once");
  ASSERT_EQ(rc2, 0) << once;
  EXPECT_NE(once.find("pid " + std::to_string(::getpid())), std::string::npos) << once;
  EXPECT_NE(once.find("used " + format_bytes(s.tier(Tier::Device).used_bytes)), std::string::npos) << once;
  EXPECT_NE(once.find("buffers    " + std::to_string(s.live_buffers) + " live"), std::string::npos) << once;
  EXPECT_EQ(once.find("per s"), std::string::npos) << "--once shows totals, not rates:\n" << once;
#endif
}

TEST(LiveStats, SegmentIsPrivateAndGoesWithThePool) {
  ScratchDir dir;
  const std::string first = shm_file(instrument::segment_name(::geteuid(), ::getpid(), 0));
  const std::string second = shm_file(instrument::segment_name(::geteuid(), ::getpid(), 1));
  ASSERT_FALSE(exists(first)) << "left over from an earlier test";
  std::optional<Pool> pool(std::in_place, live_options(dir.path()));
  struct stat st {};
  ASSERT_EQ(::lstat(first.c_str(), &st), 0) << first << ": " << std::strerror(errno);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u) << std::oct << (st.st_mode & 07777);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), sizeof(LiveStatsBlock));
  {
    // A second pool in the same process gets the next name; a reader by pid
    // picks the first.
    Pool other(live_options(dir.path()));
    ASSERT_TRUE(exists(second));
    std::vector<unsigned> ours;
    for (const auto& p : LiveStatsReader::list()) {
      if (p.pid == ::getpid()) ours.push_back(p.index);
    }
    EXPECT_EQ(ours, (std::vector<unsigned>{0, 1}));
    EXPECT_EQ(LiveStatsReader(::getpid()).name(), instrument::segment_name(::geteuid(), ::getpid(), 0));
  }
  EXPECT_FALSE(exists(second)) << "the second pool's segment outlived it";
  EXPECT_TRUE(exists(first));

  // A Buffer that outlives its pool keeps the core, not the segment.
  Buffer survivor = pool->allocate(4096, Tier::Host, "survivor");
  LiveStatsReader reader(::getpid());
  EXPECT_TRUE(reader.pool_alive());
  pool.reset();
  EXPECT_FALSE(exists(first)) << "the segment outlived its pool";
  EXPECT_FALSE(reader.pool_alive());
  EXPECT_EQ(reader.read().stats.live_buffers, 1u) << "the last publish, at destruction, is still readable";
  // The next pool takes the name again, with a segment of its own.
  pool.emplace(live_options(dir.path()));
  EXPECT_TRUE(exists(first));
  EXPECT_FALSE(reader.pool_alive()) << "the reader took the new segment for the one it attached to";
  EXPECT_TRUE(LiveStatsReader(::getpid()).pool_alive());
  pool.reset();
  survivor = Buffer();
  EXPECT_FALSE(exists(first));
}

TEST(LiveStats, LeftoverWithThisProcesssPidIsReplaced) {
  // An earlier process that had this pid died with its pool (pids are
  // reused): its segment has our name but no publisher of ours holds it.
  ScratchDir dir;
  HandMadeSegment leftover(instrument::segment_name(::geteuid(), ::getpid(), 0), 64);
  leftover.write_header(instrument::kLiveStatsMagic, 99, ::getpid());
  Pool pool(live_options(dir.path()));
  struct stat st {};
  ASSERT_EQ(::lstat(leftover.path().c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), sizeof(LiveStatsBlock));
  EXPECT_EQ(LiveStatsReader::read(::getpid()).stats.tier(Tier::Device).capacity_bytes, 1u << 20);
}

TEST(LiveStats, StaleSegmentsOfDeadProcessesAreRemoved) {
  const unsigned uid = ::geteuid();
  const pid_t dead = dead_pid();
  ScratchDir dir;
  HandMadeSegment stale(instrument::segment_name(uid, dead, 0), sizeof(LiveStatsBlock));
  HandMadeSegment stale2(instrument::segment_name(uid, dead, 3), 0);
  IdleChild alive;
  HandMadeSegment living(instrument::segment_name(uid, alive.pid(), 0), sizeof(LiveStatsBlock));
  // A child that exited and is not reaped yet (a zombie) is dead too.
  const pid_t zombie = ::fork();
  if (zombie == 0) ::_exit(0);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(zombie), &info, WEXITED | WNOWAIT), 0);
  HandMadeSegment of_zombie(instrument::segment_name(uid, zombie, 0), sizeof(LiveStatsBlock));
  // A link named like a stale segment is not followed or removed, and neither
  // is its target.
  const std::string target = dir.path() + "/target";
  std::FILE* f = std::fopen(target.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  const std::string link = shm_file(instrument::segment_name(uid, dead, 7));
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0) << std::strerror(errno);

  const std::string why = error_of(dead);
  if (!exists(stale.path()) && why.find("no process") != std::string::npos) {
    // Another test process started a pool with live stats just now and
    // cleaned the segment first.
    std::printf("note: %s was cleaned by another process before it could be read\n", stale.path().c_str());
  } else {
    EXPECT_NE(why.find("process " + std::to_string(dead) + " is gone"), std::string::npos) << why;
    EXPECT_NE(why.find(stale.path()), std::string::npos) << why;
  }
  for (const auto& p : LiveStatsReader::list()) EXPECT_NE(p.pid, dead) << "a dead process is listed";

  {
    Pool pool(live_options(dir.path()));  // cleans on the way up
    EXPECT_FALSE(exists(stale.path()));
    EXPECT_FALSE(exists(stale2.path()));
    EXPECT_FALSE(exists(of_zombie.path())) << "the segment of a zombie process was kept";
    EXPECT_TRUE(exists(living.path())) << "the segment of a live process was removed";
    EXPECT_TRUE(exists(link)) << "a symlink was removed";
    EXPECT_TRUE(exists(target)) << "a symlink's target was removed";
  }
  ::unlink(link.c_str());
  ::waitpid(zombie, nullptr, 0);

  HandMadeSegment again(instrument::segment_name(uid, dead, 0), 64);
  const auto removed = LiveStatsPublisher::clean_stale_segments();
  EXPECT_FALSE(exists(again.path()));
  EXPECT_NE(std::find(removed.begin(), removed.end(), instrument::segment_name(uid, dead, 0)), removed.end())
      << "clean_stale_segments() does not name what it removed";
}

TEST(LiveStats, ReaderSaysWhatIsWrongWithASegment) {
  const unsigned uid = ::geteuid();
  IdleChild child;
  const pid_t pid = child.pid();
  std::string why = error_of(pid);
  EXPECT_NE(why.find("pid " + std::to_string(pid)), std::string::npos) << why;
  EXPECT_NE(why.find(shm_file(instrument::segment_name(uid, pid, 0)) + " not found"), std::string::npos) << why;
  EXPECT_NE(why.find("SPILLWAY_LIVE_STATS=1"), std::string::npos) << why;
  {
    HandMadeSegment seg(instrument::segment_name(uid, pid, 0), sizeof(LiveStatsBlock));
    seg.write_header(instrument::kLiveStatsMagic, 99, pid);
    why = error_of(pid);
    EXPECT_NE(why.find("layout version 99"), std::string::npos) << why;
    EXPECT_NE(why.find("reads version " + std::to_string(instrument::kLiveStatsVersion)), std::string::npos) << why;
    EXPECT_NE(why.find(seg.path()), std::string::npos) << why;
  }
  {
    HandMadeSegment seg(instrument::segment_name(uid, pid, 0), sizeof(LiveStatsBlock));
    seg.write_header(0x1234, instrument::kLiveStatsVersion, pid);
    why = error_of(pid);
    EXPECT_NE(why.find("not a spillway live stats block"), std::string::npos) << why;
  }
  {
    // A writer that died mid-update: the sequence stays odd. The reader gives
    // up after its bounded retries instead of hanging.
    HandMadeSegment seg(instrument::segment_name(uid, pid, 0), sizeof(LiveStatsBlock));
    seg.write_header(instrument::kLiveStatsMagic, instrument::kLiveStatsVersion, pid, 7);
    const auto t0 = std::chrono::steady_clock::now();
    why = error_of(pid);
    EXPECT_NE(why.find("mid-update"), std::string::npos) << why;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  }
  {
    // Created but never given a header.
    HandMadeSegment seg(instrument::segment_name(uid, pid, 0), 0);
    why = error_of(pid);
    EXPECT_NE(why.find("still being created"), std::string::npos) << why;
  }
}

TEST(LiveStats, OptionsFromEnvironment) {
  ::setenv("SPILLWAY_LIVE_STATS", "yes", 1);
  ::setenv("SPILLWAY_LIVE_STATS_INTERVAL_MS", "250", 1);
  const PoolOptions o = PoolOptions::from_env();
  EXPECT_TRUE(o.live_stats);
  EXPECT_EQ(o.live_stats_interval, 250ms);
  ::setenv("SPILLWAY_LIVE_STATS_INTERVAL_MS", "0", 1);
  EXPECT_THROW(PoolOptions::from_env(), std::invalid_argument);
  ::setenv("SPILLWAY_LIVE_STATS", "maybe", 1);
  try {
    PoolOptions::from_env();
    ADD_FAILURE() << "SPILLWAY_LIVE_STATS=maybe accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("SPILLWAY_LIVE_STATS"), std::string::npos) << e.what();
  }
  ::setenv("SPILLWAY_LIVE_STATS", "0", 1);
  EXPECT_FALSE(PoolOptions::from_env().live_stats) << "interval 0 is fine while live stats are off";
  ::unsetenv("SPILLWAY_LIVE_STATS");
  ::unsetenv("SPILLWAY_LIVE_STATS_INTERVAL_MS");
  PoolOptions bad;
  bad.live_stats = true;
  bad.live_stats_interval = 0ms;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
}

TEST(LiveStats, TopShowsBarsAndRates) {
  PoolStats prev;
  for (auto& t : prev.tiers) t.enabled = true;
  prev.tiers[1].enabled = false;  // host off
  prev.tiers[0].capacity_bytes = 64 << 20;
  prev.tiers[2].capacity_bytes = kUnlimited;
  PoolStats cur = prev;
  cur.tiers[0].used_bytes = 32 << 20;
  cur.tiers[0].pinned_bytes = 16 << 20;
  cur.tiers[0].buffers = 5;
  cur.tiers[2].used_bytes = 3 << 20;
  prev.moves[0][2] = {10, 10 << 20, 0, 0.5};
  cur.moves[0][2] = {30, 50 << 20, 0, 1.5};
  prev.stall_seconds = 1.0;
  cur.stall_seconds = 2.0;
  prev.pins = 100;
  cur.pins = 300;
  cur.pin_waits = 7;
  cur.errors.fetch_failures = 3;

  const std::string view = tools::render_top(prev, cur, 2.0);
  EXPECT_NE(view.find("device  [########========................]  used 32.0 MiB  pinned 16.0 MiB  cap 64.0 MiB  buffers 5"),
            std::string::npos)
      << view;
  EXPECT_NE(view.find("host    off"), std::string::npos) << view;
  EXPECT_NE(view.find("disk    (no quota)"), std::string::npos) << view;
  // 20 moves and 40 MiB in 2 s.
  EXPECT_TRUE(std::regex_search(view, std::regex(R"(device -> disk +30 +10\.0 +50\.0 MiB +20\.0 MiB/s +1\.500 s)")))
      << view;
  EXPECT_NE(view.find("stall      2.000 s total, 0.500 s per s"), std::string::npos) << view;
  EXPECT_NE(view.find("pins       300 (7 waited), 100.0 per s"), std::string::npos) << view;
  EXPECT_NE(view.find("3 fetch"), std::string::npos) << view;
  EXPECT_EQ(view.find("host ->"), std::string::npos) << "a pair that never moved is listed";

  const std::string totals = tools::render_top(cur, cur, 0);
  EXPECT_EQ(totals.find("per s"), std::string::npos) << totals;
  EXPECT_TRUE(std::regex_search(totals, std::regex(R"(device -> disk +30 +50\.0 MiB +1\.500 s)"))) << totals;

  TierStats full;
  full.capacity_bytes = 100;
  full.used_bytes = 250;  // over capacity (a quota overrun): the bar stays full, no wider
  full.pinned_bytes = 250;
  EXPECT_EQ(tools::tier_bar(full, 8), "[########]");
  EXPECT_EQ(tools::tier_bar(TierStats{}, 4), "[....]");
}

}  // namespace
}  // namespace spillway
