// common/lb_random.cc and lb_random2.cc: weighted random and two choices.
#include "lb_test_util.h"

namespace pasture::lb {
namespace {

using testing::backup;
using testing::draw_for;
using testing::ScriptedRandom;
using testing::srv;
using testing::TestPool;

TEST(LbRandom, ScriptedDrawsMapToWeightRanges) {
  // Weights 5,3,2: draws 0-4 -> a, 5-7 -> b, 8-9 -> c.
  TestPool p(Method::Random, {srv("a:1", 5), srv("b:1", 3), srv("c:1", 2)});
  ScriptedRandom rng({draw_for(0, 10), draw_for(4, 10), draw_for(5, 10), draw_for(7, 10),
                      draw_for(8, 10), draw_for(9, 10)});
  std::string seq;
  for (int i = 0; i < 6; i++) seq += (char)('a' + p.pick_rng(rng));
  EXPECT_EQ(seq, "aabbcc");
}

TEST(LbRandom, RedrawsPastUnusableServers) {
  TestPool p(Method::Random, {srv("a:1", 5), srv("b:1", 3), srv("c:1", 2)});
  p.set_health_down(0, true);
  ScriptedRandom rng({draw_for(1, 10), draw_for(2, 10), draw_for(6, 10)});
  EXPECT_EQ(p.pick_rng(rng), 1);
  EXPECT_EQ(rng.draws(), 3u);
  // Nothing but a drawn: after the last try, the scan from a finds b.
  ScriptedRandom only_a({draw_for(0, 10)});
  EXPECT_EQ(p.pick_rng(only_a), 1);
}

TEST(LbRandom, WeightedSharesWithin2Percent) {
  TestPool p(Method::Random, {srv("a:1", 5), srv("b:1", 3), srv("c:1", 2)});
  WyRand rng(1);
  auto share = testing::shares(3, 100000, [&](int) { return p.pick_rng(rng); });
  EXPECT_NEAR(share[0], 0.5, 0.02);
  EXPECT_NEAR(share[1], 0.3, 0.02);
  EXPECT_NEAR(share[2], 0.2, 0.02);
  // A dead server's share spreads in proportion to the others' weights.
  p.set_health_down(1, true);
  share = testing::shares(3, 100000, [&](int) { return p.pick_rng(rng); });
  EXPECT_NEAR(share[0], 5.0 / 7, 0.02);
  EXPECT_EQ(share[1], 0);
  EXPECT_NEAR(share[2], 2.0 / 7, 0.02);
}

TEST(LbRandom, BackupsOnlyWhenNoPrimaryIsUsable) {
  std::vector<ServerParams> s = {srv("a:1"), backup("b:1")};
  s[0].max_conns = 1;
  TestPool p(Method::Random, s);
  WyRand rng(3);
  for (int i = 0; i < 100; i++) ASSERT_EQ(p.pick_rng(rng), 0);
  p.set_active(0, 1);
  EXPECT_EQ(p.pick_rng(rng), 1);
  p.set_health_down(1, true);
  EXPECT_EQ(p.pick_rng(rng), kNoServer);
}

TEST(LbRandom, DefaultRngWhenNoneIsGiven) {
  TestPool p(Method::Random, {srv("a:1"), srv("b:1")});
  auto share = testing::shares(2, 10000, [&](int) { return p.pick(); });
  EXPECT_NEAR(share[0], 0.5, 0.03);
}

TEST(LbRandom2, LessLoadedOfTwoDraws) {
  TestPool p(Method::Random2, {srv("a:1"), srv("b:1"), srv("c:1")});
  p.set_active(0, 5);
  p.set_active(1, 1);
  p.set_active(2, 3);
  ScriptedRandom ab({draw_for(0, 3), draw_for(1, 3)});
  EXPECT_EQ(p.pick_rng(ab), 1);
  ScriptedRandom ca({draw_for(2, 3), draw_for(0, 3)});
  EXPECT_EQ(p.pick_rng(ca), 2);
  EXPECT_EQ(ca.draws(), 2u);
  p.set_active(0, 3);  // a and c tie: the first draw wins
  ScriptedRandom ac({draw_for(0, 3), draw_for(2, 3)});
  EXPECT_EQ(p.pick_rng(ac), 0);
  ScriptedRandom ca2({draw_for(2, 3), draw_for(0, 3)});
  EXPECT_EQ(p.pick_rng(ca2), 2);
}

TEST(LbRandom2, LoadIsRelativeToWeight) {
  TestPool p(Method::Random2, {srv("a:1", 4), srv("b:1", 1)});
  p.set_active(0, 6);  // 6/4 < 2/1
  p.set_active(1, 2);
  ScriptedRandom ba({draw_for(4, 5), draw_for(0, 5)});
  EXPECT_EQ(p.pick_rng(ba), 0);
}

TEST(LbRandom2, IdleSharesFollowWeights) {
  TestPool p(Method::Random2, {srv("a:1", 5), srv("b:1", 3), srv("c:1", 2)});
  WyRand rng(9);
  auto share = testing::shares(3, 100000, [&](int) { return p.pick_rng(rng); });
  EXPECT_NEAR(share[0], 0.5, 0.02);
  EXPECT_NEAR(share[1], 0.3, 0.02);
  EXPECT_NEAR(share[2], 0.2, 0.02);
}

TEST(LbRandom2, SteersAwayFromABusyServer) {
  TestPool p(Method::Random2, {srv("a:1"), srv("b:1"), srv("c:1")});
  p.set_active(0, 100);
  WyRand rng(5);
  auto share = testing::shares(3, 100000, [&](int) { return p.pick_rng(rng); });
  // a wins only when drawn twice: 1/9.
  EXPECT_NEAR(share[0], 1.0 / 9, 0.02);
}

}  // namespace
}  // namespace pasture::lb
