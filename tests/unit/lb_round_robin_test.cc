// common/lb_round_robin.cc: smooth WRR over one shared cursor.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lb_test_util.h"

namespace pasture::lb {
namespace {

using testing::backup;
using testing::srv;
using testing::TestPool;

TEST(LbRoundRobin, ScheduleIsNginxSmoothWrr) {
  EXPECT_EQ(smooth_wrr_schedule({5, 1, 1}), (std::vector<uint16_t>{0, 0, 1, 0, 2, 0, 0}));
  // Reduced by the gcd: 10,2,2 is the same cycle.
  EXPECT_EQ(smooth_wrr_schedule({10, 2, 2}), smooth_wrr_schedule({5, 1, 1}));
  EXPECT_EQ(smooth_wrr_schedule({1, 1, 1}), (std::vector<uint16_t>{0, 1, 2}));
  EXPECT_EQ(smooth_wrr_schedule({0, 3, 0}), (std::vector<uint16_t>{1}));
  EXPECT_TRUE(smooth_wrr_schedule({0, 0}).empty());
}

TEST(LbRoundRobin, WeightedSequence) {
  TestPool p(Method::RoundRobin, {srv("a:1", 5), srv("b:1"), srv("c:1")});
  EXPECT_EQ(p.sequence(14), "a a b a c a a a a b a c a a");
}

TEST(LbRoundRobin, SkipsDownServerAndKeepsTheRotation) {
  TestPool p(Method::RoundRobin, {srv("a:1", 5), srv("b:1"), srv("c:1")});
  p.set_health_down(1, true);
  // b's turn goes to the next usable server in the schedule, and the cursor
  // moves past it, so each cycle is a a a c a a.
  EXPECT_EQ(p.sequence(12), "a a a c a a a a a c a a");
  p.set_health_down(1, false);
  EXPECT_EQ(p.sequence(7), "a a b a c a a");
}

TEST(LbRoundRobin, ConfigDownAndMaxConns) {
  std::vector<ServerParams> s = {srv("a:1"), srv("b:1"), srv("c:1")};
  s[0].down = true;
  s[2].max_conns = 2;
  TestPool p(Method::RoundRobin, s);
  EXPECT_EQ(p.sequence(4), "b c b c");
  p.set_active(2, 2);
  EXPECT_EQ(p.sequence(3), "b b b");
  p.set_active(2, 1);
  EXPECT_EQ(p.sequence(2), "c b");
}

TEST(LbRoundRobin, BackupsOnlyWhenNoPrimaryIsUsable) {
  TestPool p(Method::RoundRobin, {srv("a:1"), srv("b:1"), backup("c:1"), backup("d:1")});
  EXPECT_EQ(p.sequence(4), "a b a b");
  p.set_health_down(0, true);
  EXPECT_EQ(p.sequence(3), "b b b");
  p.set_health_down(1, true);
  EXPECT_EQ(p.sequence(4), "c d c d");
  p.set_health_down(2, true);
  p.set_health_down(3, true);
  EXPECT_EQ(p.sequence(2), "- -");
}

TEST(LbRoundRobin, ExactSharesOver100kPicks) {
  TestPool p(Method::RoundRobin, {srv("a:1", 5), srv("b:1", 3), srv("c:1", 2)});
  std::vector<int> n(3, 0);
  for (int i = 0; i < 100000; i++) n[p.pick()]++;
  EXPECT_EQ(n, (std::vector<int>{50000, 30000, 20000}));
}

// Two processes pick from one pool in one shm::Region: the shared cursor hands
// out each schedule position once, so the combined counts are exactly those
// of one process making all the picks.
TEST(LbRoundRobin, TwoProcessesShareOneRotation) {
  TestPool p(Method::RoundRobin, {srv("a:1", 5), srv("b:1"), srv("c:1")});
  constexpr int kPicks = 100000;
  void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* child_counts = static_cast<std::atomic<int>*>(mem);
  auto* go = child_counts + 3;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    while (!go->load()) {
    }
    for (int i = 0; i < kPicks; i++) child_counts[p.pick()].fetch_add(1);
    _exit(0);
  }
  std::vector<int> n(3, 0);
  go->store(1);
  for (int i = 0; i < kPicks; i++) n[p.pick()]++;
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int i = 0; i < 3; i++) n[i] += child_counts[i].load();
  munmap(mem, 4096);
  // 200000 = 28571 cycles of a a b a c a a, then a a b.
  EXPECT_EQ(n, (std::vector<int>{28571 * 5 + 2, 28571 + 1, 28571}));
  EXPECT_EQ(p.state.slot->rr_cursor.load(), 2u * kPicks);
}

}  // namespace
}  // namespace pasture::lb
