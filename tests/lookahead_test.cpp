// tests/lookahead_test.cpp — the Lookahead eviction policy: the farthest
// next use goes first, weighed by cost (a victim with a clean copy below is
// free to drop); unhinted buffers count as farthest, except one just
// allocated and not yet used.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace spillway {
namespace {

using testing::ScratchDir;
constexpr std::size_t KiB = 1024;

class Lookahead : public ::testing::Test {
 protected:
  void SetUp() override {
    PoolOptions o = testing::small_options(dir_.path(), 1 << 20, 4 << 20);
    o.policy = EvictionPolicy::Lookahead;
    o.high_watermark = 1.0;  // no proactive spills: only the evictions a test causes
    o.low_watermark = 1.0;
    pool_ = std::make_unique<Pool>(o);
  }
  // A device buffer that has been used once (pinned), then hinted.
  Buffer used(const char* label, std::uint64_t next_use) {
    Buffer b = pool_->allocate(256 * KiB, Tier::Device, label);
    { Pin p = b.pin(Tier::Device); }
    if (next_use != 0) b.hint_next_use(next_use);
    return b;
  }
  ScratchDir dir_;
  std::unique_ptr<Pool> pool_;
};

TEST_F(Lookahead, FarthestNextUseGoesFirst) {
  Buffer a = used("a", 110), b = used("b", 140), c = used("c", 120), d = used("d", 130);
  Buffer e = pool_->allocate(256 * KiB, Tier::Device, "e");  // the device tier is full
  ASSERT_EQ(e.tier(), Tier::Device);
  EXPECT_EQ(b.tier(), Tier::Host) << "the farthest next use was not the victim";
  for (Buffer* k : {&a, &c, &d}) EXPECT_EQ(k->tier(), Tier::Device) << k->label();
}

TEST_F(Lookahead, UsedButUnhintedCountsAsFarthest) {
  Buffer a = used("a", 110), b = used("b", 0), c = used("c", 190), d = used("d", 130);
  Buffer e = pool_->allocate(256 * KiB, Tier::Device, "e");
  EXPECT_EQ(b.tier(), Tier::Host);
  EXPECT_EQ(c.tier(), Tier::Device);
}

TEST_F(Lookahead, AJustAllocatedBufferIsNotTakenForUnhinted) {
  Buffer a = used("a", 110), b = used("b", 150), c = used("c", 120);
  Buffer fresh = pool_->allocate(256 * KiB, Tier::Device, "fresh");  // not pinned or hinted yet
  Buffer e = pool_->allocate(256 * KiB, Tier::Device, "e");
  EXPECT_EQ(fresh.tier(), Tier::Device) << "evicted the buffer its owner was about to use";
  EXPECT_EQ(b.tier(), Tier::Host);
}

TEST_F(Lookahead, ACleanVictimIsPreferredWhenItIsNearlyAsFar) {
  Buffer a = used("a", 110);  // the nearest: distances count from it
  Buffer dirty = used("dirty", 116);
  // `clean` came back from the host with a Read pin: its host copy is still
  // valid, so evicting it writes nothing.
  Buffer clean = used("clean", 0);
  clean.evict(Tier::Host);
  { Pin p = clean.pin(Tier::Device, Access::Read); }
  clean.hint_next_use(114);
  ASSERT_NE(clean.clean_copies() & (1u << tier_index(Tier::Host)), 0u);
  Buffer d = used("d", 111);
  const std::uint64_t clean_before = pool_->stats().clean_evictions;
  Buffer e = pool_->allocate(256 * KiB, Tier::Device, "e");
  // dirty: 116 - 110 + 1 = 7; clean: (114 - 110 + 1) x 2 = 10.
  EXPECT_EQ(clean.tier(), Tier::Host);
  EXPECT_EQ(dirty.tier(), Tier::Device);
  EXPECT_EQ(pool_->stats().clean_evictions, clean_before + 1) << "the eviction wrote bytes";
}

TEST_F(Lookahead, ADirtyVictimMuchFartherStillGoesFirst) {
  Buffer a = used("a", 110);
  Buffer dirty = used("dirty", 150);
  Buffer clean = used("clean", 0);
  clean.evict(Tier::Host);
  { Pin p = clean.pin(Tier::Device, Access::Read); }
  clean.hint_next_use(114);
  Buffer d = used("d", 111);
  Buffer e = pool_->allocate(256 * KiB, Tier::Device, "e");
  EXPECT_EQ(dirty.tier(), Tier::Host);
  EXPECT_EQ(clean.tier(), Tier::Device);
}

}  // namespace
}  // namespace spillway
