// share_view (common/accept_share.cc): the accept step-aside's reading of
// the workers' slots. The integration tests (tests/integration/
// accept_share_test.cc) show its effects on real workers; these pin the
// cases that decide whether a worker hands a queue over.
#include "common/accept_share.h"

#include <gtest/gtest.h>

namespace pasture::shm {
namespace {

constexpr uint64_t kNow = 10'000;

struct Slots {
  WorkerSlot s[4]{};
  // A live worker with `conns` connections; `waiting`: in epoll_wait, its
  // loop ticked `beat_age` ms ago; `aside`: share_paused.
  void set(int i, uint32_t conns, bool waiting, bool aside, uint64_t beat_age = 50) {
    s[i].pid.store(100 + i);
    s[i].connections.store(conns);
    s[i].waiting.store(waiting);
    s[i].share_paused.store(aside);
    s[i].heartbeat_ms.store(kNow - beat_age);
  }
  ShareView of(int self, int n = 4) { return share_view(s, n, &s[self], s[self].connections.load(), kNow, true); }
};

TEST(AcceptShareView, WithinItsShareAWorkerIsFair) {
  Slots w;
  w.set(0, 12, false, false);
  w.set(1, 10, true, false);
  EXPECT_EQ(w.of(0, 2).share, Share::kFair);  // 11 each, + 2
}

TEST(AcceptShareView, OverItsShareWithAnAcceptingWaiterItCanHandOver) {
  Slots w;
  w.set(0, 16, false, false);
  w.set(1, 8, true, false);
  ShareView v = w.of(0, 2);
  EXPECT_EQ(v.share, Share::kOver);
  EXPECT_TRUE(v.accepting);
  EXPECT_FALSE(v.aside);
}

// Review 54 M-1: blocked in an app call, a worker is not in epoll_wait.
TEST(AcceptShareView, AWorkerBlockedInItsAppTakesNothing) {
  Slots w;
  w.set(0, 16, false, false);
  w.set(1, 1, false, false);
  ShareView v = w.of(0, 2);
  EXPECT_EQ(v.share, Share::kOver);
  EXPECT_FALSE(v.accepting);
  EXPECT_FALSE(v.aside);
}

// The last one accepting hands over to one aside within its share: the
// kick brings it back (Worker::on_kick).
TEST(AcceptShareView, TheLastOneAcceptingCanHandOverToOneAsideWithinItsShare) {
  Slots w;
  w.set(0, 16, false, false);
  w.set(1, 8, true, true);
  ShareView v = w.of(0, 2);
  EXPECT_EQ(v.share, Share::kOverAlone);
  EXPECT_TRUE(v.aside);
}

// Review 55 M-1: 3 workers, one blocked in its app (or draining); the two
// free ones both over their share. One aside over its share ignores the
// kick, so the other must not step aside for it.
TEST(AcceptShareView, OneAsideOverItsShareIsNoTaker) {
  Slots w;
  w.set(0, 20, false, false);
  w.set(1, 20, true, true);
  w.set(2, 1, false, false);  // blocked in its app
  ShareView v = w.of(0, 3);
  EXPECT_EQ(v.share, Share::kOver);  // fair 13 + 2
  EXPECT_FALSE(v.aside);
  EXPECT_FALSE(v.accepting);
  w.set(2, 1, false, true);  // draining: aside, not waiting
  v = w.of(0, 3);
  EXPECT_EQ(v.share, Share::kOverAlone);
  EXPECT_FALSE(v.aside);
}

// Review 55 L-1: a worker stopped in epoll_wait (SIGSTOP) keeps its flag,
// but its loop no longer ticks.
TEST(AcceptShareView, AWaiterWhoseLoopStoppedTickingIsNoTaker) {
  Slots w;
  w.set(0, 16, false, false);
  w.set(1, 8, true, false, kWaitingStaleMs + 1);
  EXPECT_FALSE(w.of(0, 2).accepting);
  w.set(1, 8, true, false, kWaitingStaleMs);
  EXPECT_TRUE(w.of(0, 2).accepting);
  w.s[1].heartbeat_ms.store(0);  // forked, no tick yet
  EXPECT_FALSE(w.of(0, 2).accepting);
}

// An aside worker is a taker up to its share + margin, as on_kick judges
// itself, and only while its loop ticks (review 56 L-2).
TEST(AcceptShareView, AnAsideTakerIsWithinItsShareAndTicking) {
  Slots w;
  w.set(0, 20, false, false);
  w.set(1, 8, true, true);
  w.set(2, 8, false, false);  // blocked in its app
  // fair (20 + 8 + 8) / 3 = 12, margin 2: 14 is within it, 15 is not.
  w.s[1].connections.store(14);
  w.s[2].connections.store(2);
  EXPECT_TRUE(w.of(0, 3).aside);  // (20 + 14 + 2) / 3 = 12
  w.s[1].connections.store(15);
  w.s[2].connections.store(1);
  EXPECT_FALSE(w.of(0, 3).aside);  // (20 + 15 + 1) / 3 = 12
  w.set(1, 8, true, true, kWaitingStaleMs + 1);
  EXPECT_FALSE(w.of(0, 3).aside);
}

// Reaped slots (pid 0) count for nothing, not even toward the share.
TEST(AcceptShareView, ReapedSlotsAreNotCounted) {
  Slots w;
  w.set(0, 16, false, false);
  w.set(1, 8, true, false);
  w.set(2, 0, true, false);
  w.s[2].pid.store(0);
  ShareView v = w.of(0, 3);
  EXPECT_EQ(v.share, Share::kOver);  // fair 12, not 8
  EXPECT_TRUE(v.accepting);
  w.set(1, 8, false, false);  // no other waiter: the reaped one is no taker
  EXPECT_FALSE(w.of(0, 3).accepting);
  w.s[1].pid.store(0);
  EXPECT_EQ(w.of(0, 3).share, Share::kFair);  // alone
}

}  // namespace
}  // namespace pasture::shm
