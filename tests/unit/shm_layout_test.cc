// The shared region's layout and the held-count protocol that lets the
// master give back the in-flight counts of a worker that died.
#include "common/shm_layout.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pasture::shm {
namespace {

TEST(ShmLayout, HeldRowsAreCacheLineAlignedAndDisjoint) {
  Region r;
  LayoutSizes sz{.n_pools = 1, .n_servers = 17, .n_workers = 3};
  ASSERT_TRUE(r.create(sz));
  auto* base = reinterpret_cast<char*>(&r.header());
  for (uint32_t w = 0; w < 3; w++) {
    auto* row = reinterpret_cast<char*>(r.held(w));
    EXPECT_EQ((row - base) % 64, 0) << w;
    EXPECT_GE(row, reinterpret_cast<char*>(r.workers() + 3));
    if (w) {
      EXPECT_GE(row, reinterpret_cast<char*>(r.held(w - 1) + 17));
    }
    EXPECT_LE(reinterpret_cast<char*>(r.held(w) + 17), base + sz.total());
    for (uint32_t s = 0; s < 17; s++) EXPECT_EQ(r.held(w)[s].load(), 0);
  }
}

TEST(ShmLayout, TakeAndReleaseKeepHeldAndActiveTogether) {
  Region r;
  ASSERT_TRUE(r.create({.n_pools = 1, .n_servers = 2, .n_workers = 2}));
  take_active(r.servers()[1], r.held(0)[1]);
  take_active(r.servers()[1], r.held(1)[1]);
  EXPECT_EQ(r.servers()[1].active.load(), 2);
  EXPECT_EQ(r.held(0)[1].load(), 1);
  release_active(r.servers()[1], r.held(0)[1]);
  EXPECT_EQ(r.servers()[1].active.load(), 1);
  EXPECT_EQ(r.held(0)[1].load(), 0);
  EXPECT_EQ(r.reclaim_worker(0), 0);
  EXPECT_EQ(r.servers()[1].active.load(), 1);  // worker 1's request stays counted
}

// A worker killed with requests in flight: its process is gone, the master
// reclaims its slot, the counts it held go back, its gauges are cleared.
TEST(ShmLayout, ReclaimReturnsWhatADeadWorkerHeld) {
  Region r;
  ASSERT_TRUE(r.create({.n_pools = 1, .n_servers = 3, .n_workers = 2}));
  take_active(r.servers()[2], r.held(1)[2]);  // the other worker: stays
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    r.workers()[0].pid.store(getpid());
    r.workers()[0].connections.store(5);
    take_active(r.servers()[0], r.held(0)[0]);
    take_active(r.servers()[0], r.held(0)[0]);
    take_active(r.servers()[2], r.held(0)[2]);
    kill(getpid(), SIGKILL);
    _exit(1);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(st));
  EXPECT_EQ(r.servers()[0].active.load(), 2);
  EXPECT_EQ(r.servers()[2].active.load(), 2);
  EXPECT_EQ(r.reclaim_worker(0), 3);
  EXPECT_EQ(r.servers()[0].active.load(), 0);
  EXPECT_EQ(r.servers()[2].active.load(), 1);
  EXPECT_EQ(r.workers()[0].pid.load(), 0);
  EXPECT_EQ(r.workers()[0].connections.load(), 0u);
  EXPECT_EQ(r.held(0)[0].load(), 0);
  EXPECT_EQ(r.reclaim_worker(0), 0);  // idempotent
}

// Killed between its held count and `active` (take) the worker holds one
// more than it added: the master's return and later releases clamp at zero,
// so the count is right again once the server is idle.
TEST(ShmLayout, OverReturnFromAKillMidTakeHealsAtZero) {
  Region r;
  ASSERT_TRUE(r.create({.n_pools = 1, .n_servers = 1, .n_workers = 2}));
  take_active(r.servers()[0], r.held(1)[0]);  // a live worker's request
  r.held(0)[0].fetch_add(1);                   // worker 0 died right here
  EXPECT_EQ(r.reclaim_worker(0), 1);
  EXPECT_EQ(r.servers()[0].active.load(), 0);  // under-counted by one, never negative
  release_active(r.servers()[0], r.held(1)[0]);
  EXPECT_EQ(r.servers()[0].active.load(), 0);
  take_active(r.servers()[0], r.held(1)[0]);
  EXPECT_EQ(r.servers()[0].active.load(), 1);
}

}  // namespace
}  // namespace pasture::shm
