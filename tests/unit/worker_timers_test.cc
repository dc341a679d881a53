#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

#include "worker/timers.h"

namespace pasture::worker {
namespace {

struct Owner {
  TimerNode node;
  std::vector<int>* log;
  int id;
};

void fire(TimerNode* n) {
  auto* o = static_cast<Owner*>(n->owner);
  o->log->push_back(o->id);
}

TEST(WorkerTimers, FifoPerDurationAndRearm) {
  std::vector<int> log;
  Owner a{{}, &log, 1}, b{{}, &log, 2}, c{{}, &log, 3};
  for (Owner* o : {&a, &b, &c}) {
    o->node.owner = o;
    o->node.fire = fire;
  }
  Timers t;
  t.arm(&a.node, 100, 0);
  t.arm(&b.node, 100, 10);
  t.arm(&c.node, 50, 20);  // another list
  t.arm(&a.node, 100, 30); // activity: a moves behind b
  t.expire(69);
  EXPECT_TRUE(log.empty());
  t.expire(70);
  EXPECT_EQ(log, (std::vector<int>{3}));
  t.expire(110);
  EXPECT_EQ(log, (std::vector<int>{3, 2}));
  timer_disarm(&a.node);
  t.expire(1000);
  EXPECT_EQ(log, (std::vector<int>{3, 2}));
  EXPECT_FALSE(a.node.armed());
}

// A node whose callback counts its firings and runs `then`.
struct Counted {
  TimerNode node;
  int fired = 0;
  std::function<void(Counted&)> then;
  Counted() {
    node.owner = this;
    node.fire = [](TimerNode* n) {
      auto* c = static_cast<Counted*>(n->owner);
      c->fired++;
      if (c->then) c->then(*c);
    };
  }
};

// Issue 19 item 1: a callback arming durations not seen before grows the
// list of lists under the walk (a 408's linger timer, a first upstream read
// timeout). Every due node must still fire once, the new ones later.
TEST(WorkerTimers, CallbackArmsNewDurationsDuringTheWalk) {
  Timers t;
  Counted first, same_list, later_list[3];
  std::vector<std::unique_ptr<Counted>> born;  // armed from inside the walk
  first.then = [&](Counted& self) {
    if (self.fired > 1) return;
    for (uint32_t ms = 1000; ms < 1200; ms += 10) {  // 20 new lists: the vector must grow
      born.push_back(std::make_unique<Counted>());
      t.arm(&born.back()->node, ms, 300);
    }
    t.arm(&self.node, 100, 300);  // re-armed: due at 400, not in this walk
  };
  t.arm(&first.node, 100, 0);
  t.arm(&same_list.node, 100, 0);
  for (int i = 0; i < 3; i++) t.arm(&later_list[i].node, 200 + 10 * i, 0);

  t.expire(300);
  EXPECT_EQ(first.fired, 1);
  EXPECT_EQ(same_list.fired, 1);
  for (Counted& c : later_list) EXPECT_EQ(c.fired, 1);
  ASSERT_EQ(born.size(), 20u);
  for (auto& b : born) EXPECT_EQ(b->fired, 0);
  EXPECT_TRUE(first.node.armed());

  t.expire(400);
  EXPECT_EQ(first.fired, 2);
  t.expire(1300);
  EXPECT_EQ(born[0]->fired, 1);
  EXPECT_EQ(born[1]->fired, 0);
  t.expire(1300 + 190);  // the last one was armed at 300 for 1190 ms
  for (size_t i = 0; i < born.size(); i++) EXPECT_EQ(born[i]->fired, 1) << i;
  for (Counted& c : later_list) EXPECT_EQ(c.fired, 1);
  EXPECT_EQ(same_list.fired, 1);
}

// A node re-armed from its own callback, even with a zero timeout, waits for
// the next walk instead of firing again in this one (or forever).
TEST(WorkerTimers, ZeroTimeoutRearmedInCallbackWaitsForTheNextWalk) {
  Timers t;
  Counted z, other;
  uint64_t now = 10;
  z.then = [&](Counted& self) {
    if (self.fired < 1000) t.arm(&self.node, 0, now);
    if (self.fired == 1) t.arm(&other.node, 0, now);  // another node, same list
  };
  t.arm(&z.node, 0, now);
  now = 50;
  t.expire(now);
  EXPECT_EQ(z.fired, 1);
  EXPECT_EQ(other.fired, 0);
  now = 51;
  t.expire(now);
  EXPECT_EQ(z.fired, 2);
  EXPECT_EQ(other.fired, 1);
}

}  // namespace
}  // namespace pasture::worker
