// tests/metrics_test.cpp — Prometheus metrics: PoolStats::to_prometheus
// passes `promtool check metrics` and says what stats() says; the textfile
// writer replaces its file atomically and writes the final numbers when the
// pool goes.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace spillway {
namespace {

using namespace std::chrono_literals;
using testing::ScratchDir;

// A pool that has spilled, fetched, evicted and waited.
PoolStats busy_stats(Pool& pool) {
  std::vector<Buffer> bufs;
  for (int i = 0; i < 12; ++i) {
    bufs.push_back(pool.allocate(256 << 10, Tier::Device, "busy"));
    Pin p = bufs.back().pin(Tier::Device);
    testing::fill_pattern(p.data(), p.size(), static_cast<std::uint64_t>(i), 0);
  }
  for (auto& b : bufs) {
    Pin p = b.pin(Tier::Device, Access::Read);
  }
  pool.quiesce();
  return pool.stats();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Metrics, ExpositionPassesPromtool) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not found (Debian package 'prometheus'; scripts/setup.sh installs it)";
  }
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path(), 1 << 20, 2 << 20));
  const std::string text = busy_stats(pool).to_prometheus();
  const std::string file = dir.path() + "/metrics.prom";
  std::ofstream(file) << text;
  const std::string cmd = "promtool check metrics < '" + file + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int status = ::pclose(p);
  EXPECT_EQ(status, 0) << out << "\n--- the exposition:\n" << text;
  EXPECT_EQ(out, "") << "promtool lint findings";
}

// Records spilled from the host arena (4 KiB-aligned blocks of 256 KiB and
// more) with O_DIRECT are written with the write in flight wherever the
// kernel allows io_uring, and the stats count them.
TEST(Metrics, OverlappedWritesAreCountedWhereIoUringWorks) {
  bool overlaps = false;
  struct iovec none{nullptr, 0};
  (void)IoEnv::posix()->pwritev_during(-1, &none, 1, 0, [&] { overlaps = true; });
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 0, 4 << 20);
  o.disk.io = DiskIo::Auto;
  o.disk.compression = Compression::None;  // a raw record, the path that overlaps
  Pool pool(o);
  if (!pool.stats().disk_direct_io) GTEST_SKIP() << dir.path() << " has no O_DIRECT: large records are buffered";
  Buffer b = pool.allocate(1 << 20, Tier::Host, "spilled");
  {
    Pin p = b.pin(Tier::Host, Access::ReadWrite);
    testing::fill_pattern(p.data(), p.size(), 5, 0);
  }
  b.evict(Tier::Disk);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.disk_overlapped_writes, overlaps ? 1u : 0u)
      << (overlaps ? "io_uring works here: the spill kept its write in flight"
                   : "no io_uring here: the helper path, nothing counted");
  EXPECT_NE(s.to_string().find("written with the write in flight"), std::string::npos) << s.to_string();
  {
    Pin p = b.pin(Tier::Host, Access::Read);
    std::vector<unsigned char> want(p.size());
    testing::fill_pattern(want.data(), want.size(), 5, 0);
    EXPECT_EQ(std::memcmp(p.data(), want.data(), want.size()), 0);
  }
}

TEST(Metrics, ExpositionSaysWhatStatsSays) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path(), 1 << 20, 2 << 20));
  const PoolStats s = busy_stats(pool);
  auto m = testing::parse_prometheus(s.to_prometheus());
  EXPECT_EQ(m.at(R"(spillway_tier_bytes{tier="host",state="used"})"), double(s.tier(Tier::Host).used_bytes));
  EXPECT_EQ(m.at(R"(spillway_tier_bytes{tier="host",state="thread_cached"})"),
            double(s.tier(Tier::Host).thread_cached_bytes));
  EXPECT_EQ(m.count(R"(spillway_tier_bytes{tier="disk",state="thread_cached"})"), 0u);
  EXPECT_EQ(m.at(R"(spillway_tier_bytes{tier="device",state="capacity"})"), double(s.tier(Tier::Device).capacity_bytes));
  EXPECT_EQ(m.count(R"(spillway_tier_bytes{tier="disk",state="capacity"})"), 0u) << "unlimited quota exported";
  EXPECT_EQ(m.at(R"(spillway_moves_total{from="device",to="host"})"), double(s.move(Tier::Device, Tier::Host).moves));
  EXPECT_EQ(m.at(R"(spillway_moved_bytes_total{from="host",to="disk"})"), double(s.move(Tier::Host, Tier::Disk).bytes));
  EXPECT_EQ(m.at(R"(spillway_evictions_total{reason="pressure"})"), double(s.evictions[0]));
  EXPECT_EQ(m.at("spillway_pins_total"), double(s.pins));
  EXPECT_EQ(m.at("spillway_disk_direct_io"), s.disk_direct_io ? 1.0 : 0.0);
  EXPECT_EQ(m.at("spillway_disk_overlapped_writes_total"), double(s.disk_overlapped_writes));
  std::uint64_t moves = 0;
  for (const auto& row : s.moves)
    for (const auto& mv : row) moves += mv.moves;
  ASSERT_GT(moves, 0u);
  EXPECT_EQ(m.at("spillway_move_duration_seconds_count"), double(moves)) << "every completed move is in the histogram";
  EXPECT_EQ(m.at(R"(spillway_move_duration_seconds_bucket{le="+Inf"})"), double(moves));
  double last = 0;
  for (double bound : kMoveLatencyBounds) {
    char key[128];
    std::snprintf(key, sizeof key, "spillway_move_duration_seconds_bucket{le=\"%.17g\"}", bound);
    ASSERT_TRUE(m.count(key)) << key;
    EXPECT_GE(m.at(key), last) << "buckets are cumulative";
    last = m.at(key);
  }
}

TEST(Metrics, TextfileIsReplacedAtomicallyAndHasTheFinalNumbers) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 2 << 20);
  o.metrics_file = dir.path() + "/spillway.prom";
  o.metrics_interval = 20ms;
  {
    Pool pool(o);
    ASSERT_TRUE(std::filesystem::exists(o.metrics_file)) << "no first write at construction";
    Buffer b = pool.allocate(4096, Tier::Host, "x");
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(testing::parse_prometheus(read_file(o.metrics_file)).at("spillway_live_buffers"), 1.0) << "no periodic write";
  }
  // The Buffer went before the pool: the last write says so.
  EXPECT_EQ(testing::parse_prometheus(read_file(o.metrics_file)).at("spillway_live_buffers"), 0.0);
  EXPECT_FALSE(std::filesystem::exists(o.metrics_file + ".tmp")) << "temporary file left behind";
}

TEST(Metrics, UnwritableMetricsPathFailsAtConstruction) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path());
  o.metrics_file = dir.path() + "/no-such-dir/spillway.prom";
  try {
    Pool pool(o);
    FAIL() << "a pool with an unwritable metrics file was built";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-dir"), std::string::npos) << e.what();
  }
  o.metrics_file = dir.path() + "/m.prom";
  o.metrics_interval = 0ms;
  EXPECT_THROW(Pool pool(o), std::invalid_argument);
}

}  // namespace
}  // namespace spillway
