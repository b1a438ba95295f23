// tests/scorecard_test.cpp — a recorded run beside the offline bounds: a
// pool records a loop larger than its host tier, and the scorecard built
// from the log puts the run's own bytes (the footer), each policy's bytes on
// a replay, and the bounds side by side; no policy beats the lower bound.
#include <gtest/gtest.h>

#include <string>

#include "spillway/spillway.hpp"
#include "src/offline/scorecard.hpp"
#include "src/record/log_reader.hpp"
#include "test_util.hpp"

namespace spillway {
namespace {

using spillway::testing::ScratchDir;

// 16 buffers of 64 KiB pinned in a loop through a 256 KiB host tier, hints
// giving each buffer's next use, so Lookahead has something to go on.
std::string record_loop(const std::string& dir, EvictionPolicy policy) {
  const std::string log = dir + "/loop.swlog";
  PoolOptions o = spillway::testing::small_options(dir, 0, 256 << 10);
  o.device.backend = DeviceBackend::None;
  o.high_watermark = 1.0;  // no background spilling: the replay can match the run
  o.policy = policy;
  o.record_file = log;
  Pool pool(o);
  std::vector<Buffer> buffers;
  for (int i = 0; i < 16; ++i) buffers.push_back(pool.allocate(64 << 10, Tier::Host, "loop"));
  std::uint64_t step = 0;
  for (int pass = 0; pass < 4; ++pass) {
    for (int i = 0; i < 16; ++i, ++step) {
      Pin p = buffers[static_cast<std::size_t>(i)].pin(Tier::Host, i % 4 == 0 ? Access::ReadWrite : Access::Read);
      buffers[static_cast<std::size_t>(i)].hint_next_use(step + 16);
    }
  }
  return log;
}

TEST(Scorecard, PoliciesAndTheRecordedRunSitBetweenTheBoundsOrAbove) {
  ScratchDir dir;
  const record::AccessLog log = record::read_access_log(record_loop(dir.path(), EvictionPolicy::Lru));
  ASSERT_TRUE(log.totals.has_value());
  offline::ScorecardOptions so;
  so.disk_dir = dir.path();
  const offline::Scorecard card = offline::make_scorecard(log, so);
  ASSERT_EQ(card.rows.size(), 3u);  // the run, lru, lookahead
  EXPECT_EQ(card.rows[0].name, "recorded run");
  const auto& mem = card.bounds.memory;
  ASSERT_TRUE(mem.present && mem.feasible);
  EXPECT_GT(mem.lower_bound_bytes, 0u) << "the loop does not fit: something must move";
  EXPECT_LE(mem.lower_bound_bytes, mem.upper_bound_bytes);
  for (const auto& row : card.rows) {
    EXPECT_GE(row.memory_bytes, mem.lower_bound_bytes) << row.name << " beat the lower bound";
  }
  // The recorded run and the replay of its own policy moved the same bytes.
  EXPECT_EQ(card.rows[0].memory_bytes, card.rows[1].memory_bytes);
  EXPECT_EQ(card.rows[0].memory_bytes, offline::boundary_bytes(log.totals->moved_bytes, offline::Boundary::Memory));
  // A cyclic loop is LRU's worst case: it moves more than Lookahead.
  EXPECT_GT(card.rows[1].memory_bytes, card.rows[2].memory_bytes);
  const std::string text = offline::format_scorecard(card);
  EXPECT_NE(text.find("memory boundary"), std::string::npos) << text;
  EXPECT_NE(text.find(offline::ratio_to(card.rows[2].memory_bytes, mem.lower_bound_bytes) + " the lower bound"),
            std::string::npos)
      << text;
  EXPECT_NE(offline::scorecard_json(card).find("\"lower_bound_bytes\""), std::string::npos);
}

TEST(Scorecard, BoundaryBytesCountTheMovesThatCrossIt) {
  std::uint64_t moved[3][3] = {};
  moved[0][1] = 1;    // device -> host
  moved[1][0] = 10;   // host -> device
  moved[1][2] = 100;  // host -> disk
  moved[2][1] = 1000; // disk -> host
  moved[0][2] = 10000;
  EXPECT_EQ(offline::boundary_bytes(moved, offline::Boundary::Device), 10011u);
  EXPECT_EQ(offline::boundary_bytes(moved, offline::Boundary::Memory), 11100u);
  EXPECT_EQ(offline::ratio_to(0, 0), "1.00x");
  EXPECT_EQ(offline::ratio_to(5, 0), "-");
  EXPECT_EQ(offline::ratio_to(3, 2), "1.50x");
}

}  // namespace
}  // namespace spillway
