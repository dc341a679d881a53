// worker/admin_cmd.cc: the runtime-control commands on a real region and a
// loaded site (what every worker and surface runs).
#include "worker/admin_cmd.h"

#include "common/balancer.h"
#include "conf_test_util.h"
#include "worker/worker.h"

namespace pasture::worker {
namespace {

constexpr const char* kSite = R"(
[app:main]
use = egg:pasture#balancer
servers = 127.0.0.1:8001 weight=4  127.0.0.1:8002  127.0.0.1:8003
health_check = /health
[server:main]
use = egg:pasture#main
)";

class AdminCmd : public conf::testing::SiteFixture {
 protected:
  void SetUp() override {
    site_ = load(kSite);
    shm::LayoutSizes sz;
    sz.n_pools = (uint32_t)site_.pools.size();
    for (const conf::Pool& p : site_.pools) {
      first_.push_back(sz.n_servers);
      sz.n_servers += (uint32_t)p.servers.size();
    }
    sz.n_workers = 2;
    ASSERT_TRUE(region_.create(sz));
    src_.site = &site_;
    src_.shm = &region_;
    src_.first_server = &first_;
    src_.now_ms = 100000;
  }
  AdminResult run(std::string_view line) { return execute_admin(src_, line, "test"); }
  shm::ServerSlot& slot(int i) { return region_.servers()[i]; }

  conf::Site site_;
  shm::Region region_;
  std::vector<uint32_t> first_;
  SnapshotSource src_;
};

TEST_F(AdminCmd, SetServerState) {
  AdminResult r = run("set server app:main/127.0.0.1:8002 state maint");
  EXPECT_TRUE(r.ok) << r.text;
  EXPECT_EQ(r.text, "server app:main/127.0.0.1:8002 state maint\n");
  EXPECT_EQ(shm::admin_state(slot(1).control.load()), shm::AdminState::Maint);
  EXPECT_TRUE(run("set server main/127.0.0.1:8002 state drain").ok);  // without "app:"
  EXPECT_EQ(shm::admin_state(slot(1).control.load()), shm::AdminState::Drain);
  EXPECT_TRUE(run("set server main/127.0.0.1:8002 state ready").ok);
  EXPECT_EQ(slot(1).control.load(), 0u);
  EXPECT_FALSE(run("set server main/127.0.0.1:8002 state sleepy").ok);
  EXPECT_FALSE(run("set server main/127.0.0.1:9999 state maint").ok);
  EXPECT_FALSE(run("set server nope/127.0.0.1:8002 state maint").ok);
  EXPECT_FALSE(run("set server 127.0.0.1:8002 state maint").ok);
  for (int i = 0; i < 3; i++) EXPECT_EQ(shm::admin_state(slot(i).control.load()), shm::AdminState::Ready);
}

TEST_F(AdminCmd, SetWeight) {
  uint64_t e0 = region_.pools()[0].weights_epoch.load();
  AdminResult r = run("set weight app:main/127.0.0.1:8001 50%");
  EXPECT_TRUE(r.ok) << r.text;
  EXPECT_EQ(slot(0).weight_override.load(), 2u);  // 50% of 4
  EXPECT_EQ(region_.pools()[0].weights_epoch.load(), e0 + 1);
  EXPECT_TRUE(run("set weight main/127.0.0.1:8002 7").ok);
  EXPECT_EQ(slot(1).weight_override.load(), 7u);
  EXPECT_TRUE(run("set weight main/127.0.0.1:8001 100%").ok);
  EXPECT_EQ(slot(0).weight_override.load(), 0u);  // the configured weight: no override
  EXPECT_TRUE(run("set weight main/127.0.0.1:8003 1%").ok);
  EXPECT_EQ(slot(2).weight_override.load(), 0u);  // rounds to 1, at least 1: configured
  EXPECT_FALSE(run("set weight main/127.0.0.1:8002 0").ok);
  EXPECT_FALSE(run("set weight main/127.0.0.1:8002 x%").ok);
  EXPECT_FALSE(run("set weight main/127.0.0.1:8002 70000").ok);
  EXPECT_EQ(slot(1).weight_override.load(), 7u);

  // A balancer built from the site follows it once the epoch moved.
  lb::PoolState st = build_pool_state(site_.pools[0], &region_.pools()[0], region_.servers());
  st.sync_weights();
  EXPECT_EQ(st.servers[0].weight, 4u);
  EXPECT_EQ(st.servers[1].weight, 7u);
}

TEST_F(AdminCmd, HealthAndChecks) {
  EXPECT_TRUE(run("set health main/127.0.0.1:8001 down").ok);
  EXPECT_EQ(shm::forced_health(slot(0).control.load()), shm::ForcedHealth::Down);
  EXPECT_TRUE(run("set health main/127.0.0.1:8001 up").ok);
  EXPECT_EQ(shm::forced_health(slot(0).control.load()), shm::ForcedHealth::Up);
  EXPECT_TRUE(run("set server main/127.0.0.1:8001 state drain").ok);  // fields apart
  EXPECT_TRUE(run("set health main/127.0.0.1:8001 auto").ok);
  EXPECT_EQ(shm::forced_health(slot(0).control.load()), shm::ForcedHealth::None);
  EXPECT_EQ(shm::admin_state(slot(0).control.load()), shm::AdminState::Drain);
  EXPECT_TRUE(run("disable health main/127.0.0.1:8003").ok);
  EXPECT_TRUE(slot(2).control.load() & shm::kChecksDisabled);
  EXPECT_NE(run("show servers").text.find("checks off"), std::string::npos);
  EXPECT_TRUE(run("enable health main/127.0.0.1:8003").ok);
  EXPECT_FALSE(slot(2).control.load() & shm::kChecksDisabled);
  EXPECT_FALSE(run("set health main/127.0.0.1:8001 sideways").ok);
}

TEST_F(AdminCmd, ClearCountersAndDrain) {
  region_.stats_row(0).server(1).selected.add(5);
  slot(1).requests.store(9);
  uint64_t e = region_.header().clear_epoch.load();
  EXPECT_TRUE(run("clear counters").ok);
  EXPECT_EQ(region_.header().clear_epoch.load(), e + 1);
  EXPECT_EQ(slot(1).requests.load(), 0u);

  EXPECT_EQ(region_.header().drain_at_ms.load(), 0u);
  AdminResult r = run("drain 2");
  EXPECT_TRUE(r.ok) << r.text;
  EXPECT_EQ(region_.header().drain_at_ms.load(), 102000u);
  EXPECT_EQ(run("drain").text, "already draining\n");
  EXPECT_EQ(region_.header().drain_at_ms.load(), 102000u);
  EXPECT_FALSE(run("drain soon").ok);
}

TEST_F(AdminCmd, ShowTables) {
  region_.workers()[0].pid.store(101);  // live workers: their rows count
  region_.workers()[1].pid.store(102);
  region_.stats_row(0).server(0).selected.add(3);
  region_.stats_row(1).server(0).selected.add(4);
  run("set server main/127.0.0.1:8002 state maint");
  std::string servers = run("show servers").text;
  EXPECT_NE(servers.find("app:main  127.0.0.1:8001"), std::string::npos) << servers;
  EXPECT_NE(servers.find("maint"), std::string::npos) << servers;
  EXPECT_NE(servers.find(" 7 "), std::string::npos) << servers;  // 3 + 4 summed across rows
  std::string stat = run("show stat").text;
  EXPECT_EQ(stat.rfind("# pool,server,state,admin,", 0), 0u) << stat;
  EXPECT_NE(stat.find("app:main,127.0.0.1:8001,up,ready,4,4,0,7,"), std::string::npos) << stat;
  EXPECT_NE(stat.find("app:main,127.0.0.1:8002,up,maint,"), std::string::npos) << stat;
  EXPECT_NE(run("show pools").text.find("round_robin"), std::string::npos);
  EXPECT_NE(run("show info").text.find("generation:"), std::string::npos);
  EXPECT_EQ(run("show stat json").text.front(), '{');
  EXPECT_FALSE(run("show everything").ok);
  EXPECT_FALSE(run("frobnicate").ok);
  EXPECT_TRUE(run("help").ok);
  EXPECT_FALSE(admin_command_writes("show servers"));
  EXPECT_TRUE(admin_command_writes("clear counters"));
}

}  // namespace
}  // namespace pasture::worker
