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

// Prefetch into a full tier: room that costs no write (a primary with a
// clean copy below) is made for it, but only from buffers the hints say are
// used after the one coming up; unhinted prefetches never evict.
class LookaheadPrefetch : public Lookahead {
 protected:
  // A device primary with a clean copy on host, hinted.
  Buffer clean(const char* label, std::uint64_t next_use) {
    Buffer b = used(label, 0);
    b.evict(Tier::Host);
    { Pin p = b.pin(Tier::Device, Access::Read); }  // fetched up; the host copy stays, clean
    b.hint_next_use(next_use);
    return b;
  }
};

TEST_F(LookaheadPrefetch, DropsACleanBufferUsedLaterAndNothingElse) {
  Buffer far_clean = clean("far_clean", 500), near_clean = clean("near_clean", 150);
  Buffer far_dirty = used("far_dirty", 600), d = used("d", 130);
  ASSERT_GE(far_clean.clean_copies(), 1u);
  Buffer up = pool_->allocate(256 * KiB, Tier::Host, "up");
  up.hint_next_use(200);
  const auto written = pool_->stats().move(Tier::Device, Tier::Host).bytes;
  up.prefetch(Tier::Device);
  pool_->quiesce();
  EXPECT_EQ(up.tier(), Tier::Device);
  EXPECT_EQ(far_clean.tier(), Tier::Host) << "the clean buffer used after the prefetched one makes room";
  for (Buffer* k : {&near_clean, &far_dirty, &d}) EXPECT_EQ(k->tier(), Tier::Device) << k->label();
  EXPECT_EQ(pool_->stats().move(Tier::Device, Tier::Host).bytes, written) << "a prefetch wrote a victim down";
}

TEST_F(LookaheadPrefetch, UnhintedOrNeededSoonerEvictsNothing) {
  Buffer a = clean("a", 150), b = clean("b", 160), c = used("c", 600), d = used("d", 130);
  Buffer unhinted = pool_->allocate(256 * KiB, Tier::Host, "unhinted");
  { Pin p = unhinted.pin(Tier::Host); }  // used, so not fresh; no hint
  unhinted.prefetch(Tier::Device);
  Buffer later = pool_->allocate(256 * KiB, Tier::Host, "later");
  later.hint_next_use(400);  // after every clean buffer on the device
  later.prefetch(Tier::Device);
  pool_->quiesce();
  EXPECT_EQ(unhinted.tier(), Tier::Host);
  EXPECT_EQ(later.tier(), Tier::Host);
  for (Buffer* k : {&a, &b, &c, &d}) EXPECT_EQ(k->tier(), Tier::Device) << k->label();
}

}  // namespace
}  // namespace spillway
