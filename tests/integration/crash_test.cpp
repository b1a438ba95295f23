// tests/integration/crash_test.cpp — a process killed with SIGKILL in the
// middle of spilling leaves no spill file behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../test_util.hpp"

namespace spillway {
namespace {

TEST(Crash, SigkillMidSpillLeavesNoSpillFile) {
  testing::ScratchDir dir;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    PoolOptions o = testing::small_options(dir.path(), 0, 1 << 20);
    o.device.backend = DeviceBackend::None;
    Pool pool(o);
    std::vector<Buffer> bufs;
    for (std::uint64_t i = 0;; ++i) {
      Buffer b = pool.allocate(256 * 1024, Tier::Host, "crash");
      {
        Pin p = b.pin(Tier::Host);
        testing::fill_pattern(p.data(), p.size(), i, 0);
      }
      bufs.push_back(std::move(b));
      if (i == 16) (void)!::write(ready[1], "x", 1);  // spilling is under way
      if (bufs.size() > 200) bufs.erase(bufs.begin());
    }
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::usleep(50 * 1000);
  EXPECT_EQ(dir.regular_files(), 0u) << "spill file visible while the child runs";
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(dir.regular_files(), 0u) << "a spill file survived SIGKILL";
  ::close(ready[0]);
}

}  // namespace
}  // namespace spillway
