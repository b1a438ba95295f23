// tests/extent_allocator_test.cpp — spill-file space: 4 KiB extents, best
// fit, coalescing, reuse, tail truncation, exact quota.
#include "tiers/disk/extent_allocator.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace spillway::detail {
namespace {

constexpr std::uint64_t K4 = ExtentAllocator::kExtentUnit;

TEST(ExtentAllocator, RoundsToFourKiBAndAppends) {
  ExtentAllocator a;
  EXPECT_EQ(*a.allocate(1), 0u);
  EXPECT_EQ(*a.allocate(K4 + 1), K4);
  EXPECT_EQ(a.used(), 3 * K4);
  EXPECT_EQ(a.file_end(), 3 * K4);
}

TEST(ExtentAllocator, ReusesTheBestFittingHole) {
  ExtentAllocator a;
  const auto x = *a.allocate(3 * K4);
  const auto keep1 = *a.allocate(K4);
  const auto y = *a.allocate(2 * K4);
  const auto keep2 = *a.allocate(K4);
  (void)keep1;
  (void)keep2;
  a.free(x, 3 * K4);
  a.free(y, 2 * K4);
  EXPECT_EQ(*a.allocate(2 * K4), y) << "the 2-extent hole fits exactly";
  EXPECT_EQ(*a.allocate(K4), x) << "then the 3-extent hole, split";
  EXPECT_EQ(a.stats().free_bytes, 2 * K4);
  EXPECT_EQ(a.file_end(), 7 * K4) << "holes were reused, the file did not grow";
}

TEST(ExtentAllocator, CoalescesAndTruncatesTheTail) {
  ExtentAllocator a;
  const auto x = *a.allocate(K4), y = *a.allocate(K4), z = *a.allocate(K4);
  a.free(y, K4);
  EXPECT_EQ(a.file_end(), 3 * K4);
  EXPECT_EQ(a.stats().free_bytes, K4);
  a.free(z, K4);  // z and the hole before it are at the end: the file shrinks to x
  EXPECT_EQ(a.file_end(), K4);
  EXPECT_EQ(a.stats().free_bytes, 0u);
  a.free(x, K4);
  EXPECT_EQ(a.file_end(), 0u);
  EXPECT_EQ(a.used(), 0u);
}

TEST(ExtentAllocator, ShrinkGivesBackTheTail) {
  ExtentAllocator a;
  const auto x = *a.allocate(10 * K4);
  const auto y = *a.allocate(K4);
  (void)y;
  EXPECT_EQ(a.shrink(x, 10 * K4, 3 * K4 - 5), 3 * K4);
  EXPECT_EQ(a.used(), 4 * K4);
  EXPECT_EQ(a.stats().largest_free_bytes, 7 * K4);
  EXPECT_THROW(a.free(x, 10 * K4), std::invalid_argument) << "the extent is now 3 units long";
  a.free(x, 3 * K4);
  EXPECT_EQ(a.stats().largest_free_bytes, 10 * K4) << "merged back into one hole";
}

TEST(ExtentAllocator, QuotaIsExact) {
  ExtentAllocator a(5 * K4);
  EXPECT_TRUE(a.allocate(3 * K4));
  EXPECT_FALSE(a.allocate(3 * K4)) << "would be 6 units, quota is 5";
  EXPECT_TRUE(a.allocate(2 * K4));
  EXPECT_EQ(a.used(), 5 * K4);
  EXPECT_FALSE(a.allocate(1));
  ExtentAllocator none(K4 - 1);
  EXPECT_FALSE(none.allocate(1)) << "a quota below one extent holds nothing";
}

TEST(ExtentAllocator, RejectsUnknownExtents) {
  ExtentAllocator a;
  const auto x = *a.allocate(K4);
  EXPECT_THROW(a.free(x + K4, K4), std::invalid_argument);
  EXPECT_THROW(a.free(x, 2 * K4), std::invalid_argument);
  a.free(x, K4);
  EXPECT_THROW(a.free(x, K4), std::invalid_argument) << "double free";
}

TEST(ExtentAllocator, BestFitTiesGoToTheLowestOffset) {
  ExtentAllocator a;
  std::uint64_t hole[3], keep[3];
  for (int i = 0; i < 3; ++i) {
    hole[i] = *a.allocate(2 * K4);
    keep[i] = *a.allocate(K4);
  }
  a.free(hole[2], 2 * K4);
  a.free(hole[0], 2 * K4);
  a.free(hole[1], 2 * K4);
  EXPECT_EQ(*a.allocate(K4), hole[0]);
  EXPECT_EQ(*a.allocate(2 * K4), hole[1]) << "an exact fit beats the lower, split hole";
  EXPECT_EQ(*a.allocate(2 * K4), hole[2]);
  EXPECT_EQ(a.file_end(), keep[2] + K4);
}

TEST(ExtentAllocator, CoalescesWithBothNeighbours) {
  ExtentAllocator a;
  const auto x = *a.allocate(K4), y = *a.allocate(2 * K4), z = *a.allocate(3 * K4);
  const auto end_guard = *a.allocate(K4);
  (void)end_guard;
  a.free(x, K4);
  a.free(z, 3 * K4);
  EXPECT_EQ(a.stats().largest_free_bytes, 3 * K4);
  a.free(y, 2 * K4);  // joins x and z into one hole
  const auto s = a.stats();
  EXPECT_EQ(s.free_bytes, 6 * K4);
  EXPECT_EQ(s.largest_free_bytes, 6 * K4);
  EXPECT_EQ(s.fragmentation, 0.0);
  EXPECT_EQ(*a.allocate(6 * K4), x) << "the merged hole holds a 6-extent request";
}

TEST(ExtentAllocator, FragmentationIsOneMinusLargestOverFree) {
  ExtentAllocator a;
  EXPECT_EQ(a.stats().fragmentation, 0.0) << "no free space: no fragmentation";
  const auto x = *a.allocate(K4);
  (void)*a.allocate(K4);
  const auto y = *a.allocate(3 * K4);
  (void)*a.allocate(K4);
  a.free(x, K4);
  a.free(y, 3 * K4);
  const auto s = a.stats();
  EXPECT_EQ(s.free_bytes, 4 * K4);
  EXPECT_EQ(s.largest_free_bytes, 3 * K4);
  EXPECT_DOUBLE_EQ(s.fragmentation, 0.25);
  EXPECT_EQ(s.extents, 2u);
}

TEST(ExtentAllocator, ShrinkingTheLastExtentMovesTheFileEnd) {
  ExtentAllocator a;
  const auto x = *a.allocate(K4);
  const auto y = *a.allocate(8 * K4);
  EXPECT_EQ(a.file_end(), 9 * K4);
  EXPECT_EQ(a.shrink(y, 8 * K4, 1), K4);
  EXPECT_EQ(a.file_end(), x + 2 * K4) << "the freed tail was at the end of the file";
  EXPECT_EQ(a.stats().free_bytes, 0u);
  EXPECT_EQ(a.shrink(y, K4, 5 * K4), K4) << "shrink never grows";
}

TEST(ExtentAllocator, FreedSpaceIsReusedBeforeTheFileGrows) {
  ExtentAllocator a;
  std::vector<std::uint64_t> xs;
  for (int i = 0; i < 8; ++i) xs.push_back(*a.allocate(K4));
  for (int i = 0; i < 8; i += 2) a.free(xs[i], K4);
  const auto end = a.file_end();
  for (int i = 0; i < 4; ++i) EXPECT_LT(*a.allocate(K4), end);
  EXPECT_EQ(a.file_end(), end);
  EXPECT_EQ(*a.allocate(K4), end) << "no hole left: append";
}

TEST(ExtentAllocator, QuotaCountsExtentsNotTheFileLength) {
  ExtentAllocator a(4 * K4);
  const auto x = *a.allocate(2 * K4);
  const auto y = *a.allocate(2 * K4);
  EXPECT_FALSE(a.allocate(1));
  a.free(x, 2 * K4);  // a hole; the file is still 4 extents long
  EXPECT_TRUE(a.allocate(2 * K4)) << "the quota is on extents in use";
  a.shrink(y, 2 * K4, K4);
  EXPECT_TRUE(a.allocate(K4)) << "a shrunk extent returns quota";
  EXPECT_FALSE(a.allocate(1));
  ExtentAllocator unlimited;
  EXPECT_TRUE(unlimited.allocate(std::uint64_t{1} << 50)) << "no quota: only offsets are handed out";
  for (std::uint64_t huge : {~std::uint64_t{0}, ~std::uint64_t{0} - K4, ExtentAllocator::kMaxExtentBytes + 1}) {
    EXPECT_FALSE(unlimited.allocate(huge)) << "no wrap-around on a request of " << huge;
  }
  EXPECT_EQ(unlimited.used(), std::uint64_t{1} << 50);
}

TEST(ExtentAllocator, RandomWorkloadKeepsAccounting) {
  ExtentAllocator a(64 * 1024 * K4);
  std::mt19937 rng(3);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
  std::uint64_t used = 0;
  for (int i = 0; i < 20000; ++i) {
    if (live.empty() || rng() % 2) {
      const std::uint64_t n = 1 + rng() % (40 * K4);
      if (auto off = a.allocate(n)) {
        EXPECT_EQ(*off % K4, 0u);
        live.emplace_back(*off, ExtentAllocator::round_up(n));
        used += ExtentAllocator::round_up(n);
      }
    } else {
      const std::size_t j = rng() % live.size();
      a.free(live[j].first, live[j].second);
      used -= live[j].second;
      live[j] = live.back();
      live.pop_back();
    }
    ASSERT_EQ(a.used(), used);
    const auto s = a.stats();
    ASSERT_EQ(s.used_bytes + s.free_bytes, s.file_bytes) << "every byte of the file is used or free";
  }
  for (auto [off, n] : live) a.free(off, n);
  EXPECT_EQ(a.file_end(), 0u);
}

}  // namespace
}  // namespace spillway::detail
