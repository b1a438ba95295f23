// tests/report_test.cpp — `spillway report`: on a trace recorded from a pool
// whose stats() are known, the tables say what the pool counted (moves and
// bytes per tier pair, pin waits, refetches after evictions) and the promised
// pictures are drawn; bad input is a clear error.
#if defined(SPILLWAY_TEST_TOOLS)

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "src/instrument/chrome_trace.hpp"
#include "test_util.hpp"
#include "tools/report.hpp"

namespace spillway {
namespace {

using nlohmann::json;
using testing::ScratchDir;

struct Recorded {
  json doc;
  PoolStats stats;
};

// Spills 12 buffers through a 1 MiB device and host and reads them back
// twice, so buffers are evicted and fetched again.
Recorded record(const std::string& dir) {
  const std::string path = dir + "/trace.json";
  Recorded out;
  {
    Pool pool(testing::small_options(dir, 1 << 20, 1 << 20));
    auto sink = std::make_shared<instrument::ChromeTraceSink>(path);
    pool.set_trace(sink);
    std::vector<Buffer> bufs;
    for (int i = 0; i < 12; ++i) {
      bufs.push_back(pool.allocate(256 << 10, Tier::Device, i % 2 ? "odd" : "even"));
      Pin p = bufs.back().pin(Tier::Device);
      testing::fill_pattern(p.data(), p.size(), static_cast<std::uint64_t>(i), 0);
    }
    for (int round = 0; round < 2; ++round) {
      for (auto& b : bufs) Pin p = b.pin(Tier::Device, Access::Read);
    }
    pool.quiesce();
    out.stats = pool.stats();
    pool.set_trace(nullptr);
    sink->write();
  }
  std::ifstream f(path);
  out.doc = json::parse(f);
  return out;
}

TEST(Report, TablesMatchWhatThePoolCounted) {
  ScratchDir dir;
  const Recorded rec = record(dir.path());
  const tools::TraceReport r = tools::analyze_trace(rec.doc);
  std::uint64_t route_moves = 0;
  for (const auto& route : r.routes) {
    const Tier from = route.from == "device" ? Tier::Device : route.from == "host" ? Tier::Host : Tier::Disk;
    const Tier to = route.to == "device" ? Tier::Device : route.to == "host" ? Tier::Host : Tier::Disk;
    const MoveStats& m = rec.stats.move(from, to);
    EXPECT_EQ(route.moves, m.moves) << route.from << " -> " << route.to;
    EXPECT_EQ(route.bytes, m.bytes) << route.from << " -> " << route.to;
    EXPECT_EQ(route.failed, 0u);
    EXPECT_GT(route.seconds, 0.0);
    route_moves += route.moves;
  }
  std::uint64_t pool_moves = 0;
  for (const auto& row : rec.stats.moves) {
    for (const auto& m : row) pool_moves += m.moves;
  }
  EXPECT_EQ(route_moves, pool_moves) << "a tier pair is missing from the table";
  // Every pin wait is in the stall table, under its buffer's label.
  std::uint64_t waits = 0;
  for (const auto& s : r.stalls) {
    EXPECT_TRUE(s.label == "odd" || s.label == "even") << s.label;
    waits += s.waits;
  }
  EXPECT_EQ(waits, rec.stats.pin_waits);
  // Thrash: the refetches are the trace's flows.
  std::uint64_t flows = 0;
  for (const auto& e : rec.doc["traceEvents"]) flows += e.value("flow_in", false) ? 1 : 0;
  std::uint64_t refetches = 0;
  for (const auto& t : r.thrash) refetches += t.refetches;
  EXPECT_GT(flows, 0u);
  EXPECT_EQ(refetches, flows);
  ASSERT_FALSE(r.thrash.empty());
  EXPECT_EQ(r.thrash.front().bytes, 256u << 10);
  // Tiers: the counter track saw the device fill up to its capacity.
  ASSERT_FALSE(r.tiers.empty());
  EXPECT_EQ(r.tiers.front().tier, "device");
  EXPECT_EQ(r.tiers.front().capacity, rec.stats.tier(Tier::Device).capacity_bytes);
  EXPECT_LE(r.tiers.front().peak_used, rec.stats.tier(Tier::Device).peak_bytes);
  EXPECT_GT(r.tiers.front().peak_used, 0u);
  // The text says the same.
  const std::string text = tools::format_report(r, 5);
  EXPECT_NE(text.find("device -> host"), std::string::npos) << text;
  EXPECT_NE(text.find("thrash"), std::string::npos);
}

TEST(Report, DrawsThePicturesItPromises) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "gnuplot not found (Debian package gnuplot-nox; scripts/setup.sh installs it)";
  }
  ScratchDir dir;
  const Recorded rec = record(dir.path());
  std::string why;
  const auto drawn = tools::draw_trace_pictures(rec.doc, dir.path() + "/report", &why);
  ASSERT_EQ(drawn.size(), 2u) << why;
  for (const auto& f : drawn) {
    std::ifstream in(f);
    std::string head((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(head.find("<svg"), std::string::npos) << f;
  }
  for (const char* f : {"occupancy.dat", "occupancy.gp", "bandwidth.dat", "bandwidth.gp"}) {
    EXPECT_GT(std::filesystem::file_size(dir.path() + "/report/" + f), 0u) << f;
  }
}

TEST(Report, ATraceFromElsewhereIsAClearError) {
  EXPECT_THROW(tools::analyze_trace(json::parse(R"({"foo": 1})")), std::invalid_argument);
  try {
    tools::analyze_trace(json::parse(R"({"traceEvents": []})"));
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("not a trace spillway recorded"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace spillway

#endif  // SPILLWAY_TEST_TOOLS
