// Runtime control as the balancers see it (ServerSlot::control,
// weight_override, PoolSlot::weights_epoch): admin states, forced health,
// disabled checks and weight overrides, for every method.
#include "common/sticky_cookie.h"
#include "lb_test_util.h"

namespace pasture::lb {
namespace {

using testing::numbered;
using testing::ScriptedRandom;
using testing::shares;
using testing::srv;
using testing::TestPool;

constexpr Method kAll[] = {Method::RoundRobin, Method::LeastConn, Method::Random, Method::Random2,
                           Method::IpHash,     Method::Hash,      Method::Cookie};

void set_admin(TestPool& p, int i, shm::AdminState a) {
  auto& c = p.state.server_slots[i].control;
  c.store((c.load() & ~shm::kAdminStateMask) | (uint32_t)a);
}

void set_forced(TestPool& p, int i, shm::ForcedHealth f) {
  auto& c = p.state.server_slots[i].control;
  c.store((c.load() & ~shm::kForcedHealthMask) | ((uint32_t)f << shm::kForcedHealthShift));
}

void set_weight(TestPool& p, int i, uint32_t w) {
  p.state.server_slots[i].weight_override.store(w);
  p.state.slot->weights_epoch.fetch_add(1);
}

// Maint and drain take nothing from any method (no sticky cookie here).
TEST(LbControl, MaintAndDrainGetNoPicks) {
  for (Method m : kAll) {
    for (shm::AdminState a : {shm::AdminState::Maint, shm::AdminState::Drain}) {
      TestPool p(m, numbered(3));
      set_admin(p, 1, a);
      for (int i = 0; i < 300; i++) {
        RequestView rv;
        std::string key = "k" + std::to_string(i);
        rv.hash_key = key;
        rv.client_addr = "10.1." + std::to_string(i % 250) + ".7";
        int s = p.pick(rv);
        ASSERT_GE(s, 0) << method_name(m);
        ASSERT_NE(s, 1) << method_name(m) << " state " << (int)a;
      }
      set_admin(p, 1, shm::AdminState::Ready);
      bool seen = false;
      for (int i = 0; i < 300 && !seen; i++) {
        RequestView rv;
        std::string key = "k" + std::to_string(i);
        rv.hash_key = key;
        rv.client_addr = "10.1." + std::to_string(i % 250) + ".7";
        seen = p.pick(rv) == 1;
      }
      EXPECT_TRUE(seen) << method_name(m) << ": back to ready, picked again";
    }
  }
}

PoolParams cookie_params() {
  PoolParams p;
  p.method = Method::Cookie;
  p.servers = numbered(3);
  p.cookie_secret = "s3cret";
  return p;
}

// Drain: a valid cookie naming the server still reaches it; maint refuses it.
TEST(LbControl, DrainKeepsStickyClients) {
  TestPool p(cookie_params());
  std::string cookie = make_sticky_cookie("s3cret", "10.0.0.2:80", p.state.unix_clock());
  RequestView rv;
  rv.sticky_cookie = cookie;
  set_admin(p, 1, shm::AdminState::Drain);
  for (int i = 0; i < 20; i++) EXPECT_EQ(p.pick(rv), 1);
  for (int i = 0; i < 20; i++) EXPECT_NE(p.pick(), 1);  // no cookie: never
  set_admin(p, 1, shm::AdminState::Maint);
  for (int i = 0; i < 20; i++) EXPECT_NE(p.pick(rv), 1);
}

TEST(LbControl, ForcedHealthOverridesChecks) {
  TestPool p(Method::RoundRobin, numbered(2));
  p.set_health_down(0, true);
  EXPECT_EQ(p.sequence(4), "b b b b");
  set_forced(p, 0, shm::ForcedHealth::Up);
  EXPECT_EQ(p.sequence(4), "a b a b");
  p.state.server_slots[0].down_until_ms.store(p.now_ms + 10000);  // passive too
  EXPECT_EQ(p.sequence(4), "a b a b");
  set_forced(p, 0, shm::ForcedHealth::None);
  EXPECT_EQ(p.sequence(4), "b b b b");
  p.state.server_slots[0].down_until_ms.store(0);
  p.set_health_down(0, false);
  set_forced(p, 1, shm::ForcedHealth::Down);
  EXPECT_EQ(p.sequence(4), "a a a a");
}

// Disabled checks: the checker's last verdict no longer counts.
TEST(LbControl, DisabledChecksIgnoreHealthDown) {
  TestPool p(Method::RoundRobin, numbered(2));
  p.set_health_down(0, true);
  EXPECT_EQ(p.sequence(4), "b b b b");
  p.state.server_slots[0].control.fetch_or(shm::kChecksDisabled);
  EXPECT_EQ(p.sequence(4), "a b a b");
}

// The round-robin schedule is rebuilt from the override: exact sequence.
TEST(LbControl, WeightOverrideRebuildsSchedule) {
  TestPool p(Method::RoundRobin, numbered(3));
  EXPECT_EQ(p.sequence(6), "a b c a b c");
  set_weight(p, 0, 5);
  p.state.slot->rr_cursor.store(0);
  EXPECT_EQ(p.sequence(7), "a a b a c a a");  // 5,1,1: nginx's smooth WRR
  set_weight(p, 0, 0);  // back to the configured weight
  p.state.slot->rr_cursor.store(0);
  EXPECT_EQ(p.sequence(6), "a b c a b c");
  EXPECT_EQ(p.state.servers[0].weight, 1u);
}

// Every weighted method follows the override (distribution, 3:1).
TEST(LbControl, WeightOverrideShiftsDistribution) {
  for (Method m : {Method::RoundRobin, Method::Random, Method::Random2, Method::Hash, Method::IpHash}) {
    TestPool p(m, numbered(2, 10));
    set_weight(p, 0, 30);
    std::vector<std::string> keys(20000);
    auto sh = shares(2, 20000, [&](int i) {
      RequestView rv;
      keys[i] = "key-" + std::to_string(i);
      rv.hash_key = keys[i];
      std::string addr = "10." + std::to_string(i / 250 % 250) + "." + std::to_string(i % 250) + ".1";
      rv.client_addr = addr;
      return p.pick(rv);
    });
    EXPECT_NEAR(sh[0], 0.75, 0.05) << method_name(m);
    EXPECT_NEAR(sh[1], 0.25, 0.05) << method_name(m);
  }
}

// Tables are only rebuilt when the epoch moves.
TEST(LbControl, NoRebuildWithoutEpoch) {
  TestPool p(Method::RoundRobin, numbered(2));
  p.state.server_slots[0].weight_override.store(3);  // not announced yet
  EXPECT_EQ(p.sequence(4), "a b a b");
  p.state.slot->weights_epoch.fetch_add(1);
  p.state.slot->rr_cursor.store(0);
  EXPECT_EQ(p.sequence(4), "a a b a");
}

}  // namespace
}  // namespace pasture::lb
