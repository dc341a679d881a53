// common/lb_least_conn.cc: fewest active relative to weight, weighted random ties.
#include "lb_test_util.h"

namespace pasture::lb {
namespace {

using testing::backup;
using testing::ScriptedRandom;
using testing::srv;
using testing::TestPool;

constexpr uint64_t kMax = ~0ull;

TEST(LbLeastConn, FewestActive) {
  TestPool p(Method::LeastConn, {srv("a:1"), srv("b:1"), srv("c:1")});
  ScriptedRandom rng({kMax});
  p.set_active(0, 3);
  p.set_active(1, 1);
  p.set_active(2, 2);
  EXPECT_EQ(p.pick_rng(rng), 1);
  EXPECT_EQ(rng.draws(), 0u);  // no tie, no draw
  p.set_active(1, 5);
  EXPECT_EQ(p.pick_rng(rng), 2);
}

TEST(LbLeastConn, RelativeToWeight) {
  TestPool p(Method::LeastConn, {srv("a:1", 3), srv("b:1", 1)});
  ScriptedRandom rng({kMax});
  p.set_active(0, 5);  // 5/3 < 2/1
  p.set_active(1, 2);
  EXPECT_EQ(p.pick_rng(rng), 0);
  p.set_active(0, 7);  // 7/3 > 2/1
  EXPECT_EQ(p.pick_rng(rng), 1);
}

// Weighted reservoir sampling: the k-th tied server (running tied weight W,
// its weight w) replaces the choice when below(W) < w.
TEST(LbLeastConn, TiesBrokenByTheInjectedRng) {
  TestPool p(Method::LeastConn, {srv("a:1"), srv("b:1"), srv("c:1")});
  ScriptedRandom keep({kMax});  // below(W) = W-1: never replace
  EXPECT_EQ(p.pick_rng(keep), 0);
  EXPECT_EQ(keep.draws(), 2u);
  ScriptedRandom take({0});  // below(W) = 0: always replace
  EXPECT_EQ(p.pick_rng(take), 2);
  ScriptedRandom b({0, kMax});
  EXPECT_EQ(p.pick_rng(b), 1);
  ScriptedRandom c({kMax, 0});
  EXPECT_EQ(p.pick_rng(c), 2);
  // Only tied servers draw: a is busier.
  p.set_active(0, 1);
  ScriptedRandom one({kMax});
  EXPECT_EQ(p.pick_rng(one), 1);
  EXPECT_EQ(one.draws(), 1u);
}

TEST(LbLeastConn, WeightedTieShares) {
  TestPool p(Method::LeastConn, {srv("a:1", 3), srv("b:1", 1)});
  WyRand rng(42);
  auto share = testing::shares(2, 100000, [&](int) { return p.pick_rng(rng); });
  EXPECT_NEAR(share[0], 0.75, 0.02);
  EXPECT_NEAR(share[1], 0.25, 0.02);
}

TEST(LbLeastConn, SkipsUnusableAndUsesBackupsLast) {
  std::vector<ServerParams> s = {srv("a:1"), srv("b:1"), backup("c:1")};
  s[0].max_conns = 1;
  TestPool p(Method::LeastConn, s);
  ScriptedRandom rng({kMax});
  p.set_active(0, 1);  // full
  p.set_active(1, 9);
  EXPECT_EQ(p.pick_rng(rng), 1);  // busy but usable beats an idle backup
  p.set_health_down(1, true);
  EXPECT_EQ(p.pick_rng(rng), 2);
  p.set_health_down(2, true);
  EXPECT_EQ(p.pick_rng(rng), kNoServer);
}

TEST(LbLeastConn, BalancesAsRequestsComeAndGo) {
  TestPool p(Method::LeastConn, {srv("a:1", 2), srv("b:1", 1)});
  WyRand rng(7);
  // Open 300 requests without closing any: active ends proportional to weight.
  for (int i = 0; i < 300; i++) p.state.server_slots[p.pick_rng(rng)].active.fetch_add(1);
  EXPECT_EQ(p.state.server_slots[0].active.load(), 200);
  EXPECT_EQ(p.state.server_slots[1].active.load(), 100);
}

}  // namespace
}  // namespace pasture::lb
