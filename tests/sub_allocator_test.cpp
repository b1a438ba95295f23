// tests/sub_allocator_test.cpp — best fit, alignment, coalescing, stats.
#include "tiers/device/sub_allocator.hpp"

#include <gtest/gtest.h>

#include <random>

namespace spillway::detail {
namespace {

constexpr std::uintptr_t kBase = 0x10000;

TEST(SubAllocator, RoundsToAlignmentAndTracksUse) {
  SubAllocator a;
  a.add_region(kBase, 4096);
  const auto p = a.allocate(1);
  EXPECT_EQ(p, kBase);
  EXPECT_EQ(a.block_size(p), 256u);
  const auto q = a.allocate(257);
  EXPECT_EQ(q % 256, 0u);
  EXPECT_EQ(a.block_size(q), 512u);
  EXPECT_EQ(a.used(), 768u);
  EXPECT_EQ(a.free_bytes(), 4096u - 768u);
}

TEST(SubAllocator, BestFitPicksSmallestExtentThatHolds) {
  SubAllocator a;
  a.add_region(kBase, 16 * 256);
  std::vector<std::uintptr_t> b;
  for (std::size_t n : {1, 3, 1, 2, 1, 8}) b.push_back(a.allocate(n * 256));
  a.free(b[1]);  // 3-block hole
  a.free(b[3]);  // 2-block hole
  EXPECT_EQ(a.allocate(2 * 256), b[3]) << "the 2-block hole, not the 3-block one";
  EXPECT_EQ(a.allocate(3 * 256), b[1]);
  EXPECT_EQ(a.allocate(256), 0u) << "full";
}

TEST(SubAllocator, CoalescesFreeNeighbours) {
  SubAllocator a;
  a.add_region(kBase, 4 * 256);
  auto x = a.allocate(256), y = a.allocate(256), z = a.allocate(256), w = a.allocate(256);
  a.free(x);
  a.free(z);
  EXPECT_EQ(a.stats().free_extents, 2u);
  EXPECT_DOUBLE_EQ(a.stats().fragmentation, 0.5);
  a.free(y);  // merges with both neighbours
  EXPECT_EQ(a.stats().free_extents, 1u);
  EXPECT_EQ(a.largest_free(), 3u * 256);
  EXPECT_DOUBLE_EQ(a.stats().fragmentation, 0.0);
  a.free(w);
  EXPECT_EQ(a.largest_free(), 4u * 256);
  EXPECT_EQ(a.allocate(4 * 256), kBase);
}

TEST(SubAllocator, NeverMergesAcrossRegions) {
  SubAllocator a;
  a.add_region(kBase, 512);
  a.add_region(kBase + 512, 512);  // adjacent, but a separate region
  EXPECT_EQ(a.capacity(), 1024u);
  EXPECT_EQ(a.allocate(1024), 0u);
  EXPECT_EQ(a.stats().free_extents, 2u);
  EXPECT_NE(a.allocate(512), 0u);
}

TEST(SubAllocator, RejectsBadInput) {
  SubAllocator a;
  EXPECT_THROW(a.add_region(kBase + 1, 512), std::invalid_argument);
  EXPECT_THROW(a.add_region(kBase, 100), std::invalid_argument);
  a.add_region(kBase, 1024);
  EXPECT_THROW(a.add_region(kBase + 512, 1024), std::invalid_argument) << "overlap";
  EXPECT_THROW(a.free(kBase), std::invalid_argument) << "not allocated";
  auto p = a.allocate(10);
  a.free(p);
  EXPECT_THROW(a.free(p), std::invalid_argument) << "double free";
}

TEST(SubAllocator, RandomAllocFreeKeepsInvariants) {
  SubAllocator a;
  a.add_region(kBase, 1 << 20);
  std::mt19937 rng(7);
  std::vector<std::uintptr_t> live;
  std::size_t used = 0;
  for (int i = 0; i < 20000; ++i) {
    if (live.empty() || rng() % 2) {
      const std::size_t n = 1 + rng() % 20000;
      if (auto p = a.allocate(n)) {
        EXPECT_EQ(p % 256, 0u);
        live.push_back(p);
        used += SubAllocator::round_up(n);
      }
    } else {
      const std::size_t i2 = rng() % live.size();
      used -= a.block_size(live[i2]);
      a.free(live[i2]);
      live[i2] = live.back();
      live.pop_back();
    }
    ASSERT_EQ(a.used(), used);
  }
  for (auto p : live) a.free(p);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.stats().free_extents, 1u) << "everything coalesced back";
}

}  // namespace
}  // namespace spillway::detail
