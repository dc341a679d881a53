#include <gtest/gtest.h>

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

}  // namespace
}  // namespace pasture::worker
