// common/lb_hash.cc, lb_ip_hash.cc, hash_table.cc: key stability, Maglev and
// ring disruption, deterministic fall-through, backups.
#include <map>

#include "lb_test_util.h"

namespace pasture::lb {
namespace {

using testing::backup;
using testing::numbered;
using testing::srv;
using testing::TestPool;

PoolParams hash_params(std::vector<ServerParams> servers, Consistency c = Consistency::Maglev) {
  PoolParams p;
  p.method = Method::Hash;
  p.servers = std::move(servers);
  p.consistent = c;
  return p;
}

std::string key(int i) { return "/user/" + std::to_string(i) + "/profile"; }

// Server id per key, for comparing pools whose indices differ.
std::vector<std::string> owners(TestPool& p, int keys) {
  std::vector<std::string> out;
  for (int i = 0; i < keys; i++) out.push_back(p.state.servers[p.pick_key(key(i))].id);
  return out;
}

double moved(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  int n = 0;
  for (size_t i = 0; i < a.size(); i++) n += a[i] != b[i];
  return (double)n / a.size();
}

TEST(LbHash, Hash64IsFixed) {
  // Routing must not change between runs or builds: pin a few values.
  EXPECT_EQ(hash64(""), hash64(""));
  EXPECT_NE(hash64("a"), hash64("b"));
  EXPECT_NE(hash64("abcdefgh"), hash64("abcdefgh", 1));
  EXPECT_NE(hash64(std::string("ab\0", 3)), hash64("ab"));
  EXPECT_EQ(hash64("pasture"), 0xf0ce03c9d7aa578eull) << std::hex << hash64("pasture");
}

TEST(LbHash, SameKeySameServerInEveryProcessAndOrder) {
  for (Consistency c : {Consistency::Maglev, Consistency::Ring, Consistency::None}) {
    TestPool a(hash_params(numbered(5), c));
    TestPool b(hash_params(numbered(5), c));  // another worker's copy
    std::vector<ServerParams> reversed = numbered(5);
    std::reverse(reversed.begin(), reversed.end());
    TestPool r(hash_params(reversed, c));
    std::vector<std::string> oa = owners(a, 1000);
    EXPECT_EQ(oa, owners(a, 1000));
    EXPECT_EQ(oa, owners(b, 1000));
    if (c != Consistency::None) {
      EXPECT_EQ(oa, owners(r, 1000)) << (int)c;
    }
  }
}

TEST(LbHash, EvenSharesWithin2Percent) {
  for (Consistency c : {Consistency::Maglev, Consistency::Ring, Consistency::None}) {
    TestPool p(hash_params(numbered(4), c));
    auto share = testing::shares(4, 100000, [&](int i) { return p.pick_key(key(i)); });
    // A ring of 160 points per server is coarser than a Maglev table.
    double tol = c == Consistency::Ring ? 0.05 : 0.02;
    for (double s : share) EXPECT_NEAR(s, 0.25, tol) << (int)c;
  }
}

TEST(LbHash, WeightedShares) {
  for (Consistency c : {Consistency::Maglev, Consistency::Ring, Consistency::None}) {
    TestPool p(hash_params({srv("a:1", 5), srv("b:1", 3), srv("c:1", 2)}, c));
    auto share = testing::shares(3, 100000, [&](int i) { return p.pick_key(key(i)); });
    double tol = c == Consistency::Ring ? 0.05 : 0.02;
    EXPECT_NEAR(share[0], 0.5, tol) << (int)c;
    EXPECT_NEAR(share[1], 0.3, tol) << (int)c;
    EXPECT_NEAR(share[2], 0.2, tol) << (int)c;
  }
}

TEST(LbHash, MaglevRemovingOneOfTenMovesAboutATenth) {
  TestPool ten(hash_params(numbered(10)));
  std::vector<ServerParams> nine = numbered(10);
  nine.erase(nine.begin() + 4);
  TestPool less(hash_params(nine));
  std::vector<std::string> before = owners(ten, 10000), after = owners(less, 10000);
  EXPECT_LT(moved(before, after), 0.15);
  EXPECT_GT(moved(before, after), 0.05);  // the removed server's keys did move
  // Adding an eleventh.
  std::vector<ServerParams> eleven = numbered(11);
  TestPool more(hash_params(eleven));
  EXPECT_LT(moved(before, owners(more, 10000)), 0.15);
}

TEST(LbHash, RingRemovingOneOfTenMovesOnlyItsKeys) {
  TestPool ten(hash_params(numbered(10), Consistency::Ring));
  std::vector<ServerParams> nine = numbered(10);
  nine.erase(nine.begin() + 4);
  TestPool less(hash_params(nine, Consistency::Ring));
  std::vector<std::string> before = owners(ten, 10000), after = owners(less, 10000);
  EXPECT_LT(moved(before, after), 0.15);
  for (size_t i = 0; i < before.size(); i++) {
    if (before[i] != "10.0.0.5:80") {
      ASSERT_EQ(before[i], after[i]) << key((int)i);
    }
  }
}

TEST(LbHash, NoneMovesMostKeys) {
  TestPool ten(hash_params(numbered(10), Consistency::None));
  std::vector<ServerParams> nine = numbered(10);
  nine.erase(nine.begin() + 4);
  TestPool less(hash_params(nine, Consistency::None));
  EXPECT_GT(moved(owners(ten, 10000), owners(less, 10000)), 0.5);
}

// A dead server's keys move to other servers, the same ones in every worker;
// no other key moves; when it comes back its keys return.
TEST(LbHash, DownServerFallsThroughDeterministically) {
  for (Consistency c : {Consistency::Maglev, Consistency::Ring, Consistency::None}) {
    TestPool p(hash_params(numbered(5), c));
    TestPool q(hash_params(numbered(5), c));
    std::vector<std::string> before = owners(p, 2000);
    p.set_health_down(2, true);
    q.set_health_down(2, true);
    std::vector<std::string> during = owners(p, 2000);
    EXPECT_EQ(during, owners(q, 2000));
    std::map<std::string, int> spread;
    for (size_t i = 0; i < before.size(); i++) {
      ASSERT_NE(during[i], "10.0.0.3:80");
      if (before[i] != "10.0.0.3:80") {
        ASSERT_EQ(before[i], during[i]) << (int)c;
      } else {
        spread[during[i]]++;
      }
    }
    if (c != Consistency::Ring) {
      EXPECT_EQ(spread.size(), 4u) << (int)c;  // spread, not piled
    }
    p.set_health_down(2, false);
    EXPECT_EQ(before, owners(p, 2000));
  }
}

TEST(LbHash, AllButOneDownStillFindsIt) {
  TestPool p(hash_params(numbered(40)));
  for (int i = 0; i < 40; i++) p.set_health_down(i, i != 17);
  for (int i = 0; i < 200; i++) ASSERT_EQ(p.pick_key(key(i)), 17);
}

TEST(LbHash, BackupsOnlyWhenNoPrimaryIsUsable) {
  std::vector<ServerParams> s = numbered(3);
  s.push_back(backup("10.0.1.1:80"));
  s.push_back(backup("10.0.1.2:80"));
  s[0].max_conns = 1;
  TestPool p(hash_params(s));
  for (int i = 0; i < 500; i++) ASSERT_LT(p.pick_key(key(i)), 3);
  p.set_active(0, 1);
  p.set_health_down(1, true);
  p.set_health_down(2, true);
  std::vector<int> seen(5, 0);
  for (int i = 0; i < 500; i++) seen[p.pick_key(key(i))]++;
  EXPECT_EQ(seen[0] + seen[1] + seen[2], 0);
  EXPECT_GT(seen[3], 150);
  EXPECT_GT(seen[4], 150);
  p.set_health_down(3, true);
  p.set_health_down(4, true);
  EXPECT_EQ(p.pick_key("x"), kNoServer);
}

TEST(LbHash, MissingKeyGoesRoundRobin) {
  TestPool p(hash_params(numbered(3)));
  EXPECT_EQ(p.sequence(6), "a b c a b c");
}

TEST(LbHash, TablesAreSizedForTheServers) {
  TestPool p(hash_params(numbered(10)));
  EXPECT_EQ(p.state.primary.hash.maglev_size(), 8191u);
  EXPECT_TRUE(p.state.backup.hash.empty());
  TestPool r(hash_params(numbered(10), Consistency::Ring));
  EXPECT_EQ(r.state.primary.hash.ring_size(), 1600u);
  // Round robin builds no hash table.
  TestPool rr(Method::RoundRobin, numbered(10));
  EXPECT_EQ(rr.state.primary.hash.maglev_size(), 0u);
}

TEST(LbHash, TransitionalBuildSchedulesServesHashPools) {
  TestPool p(hash_params(numbered(3)));
  // What worker/runtime.cc does today: servers without ids, then build_schedules.
  PoolState fresh;
  fresh.servers = p.state.servers;
  fresh.slot = p.state.slot;
  fresh.server_slots = p.state.server_slots;
  for (ServerParams& s : fresh.servers) s.id.clear();
  build_schedules(fresh);
  p.state = fresh;
  int first = p.pick_key("k");
  ASSERT_GE(first, 0);
  EXPECT_EQ(p.pick_key("k"), first);
  EXPECT_EQ(p.state.primary.schedule.size(), 3u);
}

PoolParams ip_params(bool whole_ip) {
  PoolParams p = hash_params(numbered(8));
  p.method = Method::IpHash;
  p.hash_whole_ip = whole_ip;
  return p;
}

int pick_ip(TestPool& p, std::string_view ip) {
  RequestView rv;
  rv.client_addr = ip;
  return p.pick(rv);
}

TEST(LbIpHash, IPv4CountsByItsSlash24) {
  EXPECT_EQ(ip_hash_key("10.1.2.3", false), ip_hash_key("10.1.2.200", false));
  EXPECT_NE(ip_hash_key("10.1.2.3", false), ip_hash_key("10.1.3.3", false));
  EXPECT_NE(ip_hash_key("10.1.2.3", true), ip_hash_key("10.1.2.200", true));
  EXPECT_EQ(ip_hash_key("::ffff:10.1.2.3", false), ip_hash_key("10.1.2.9", false));
  EXPECT_EQ(ip_hash_key("::ffff:10.1.2.3", true), ip_hash_key("10.1.2.3", true));
  EXPECT_NE(ip_hash_key("2001:db8::1", false), ip_hash_key("2001:db8::2", false));
  EXPECT_EQ(ip_hash_key("2001:db8::1", false), ip_hash_key("2001:0db8:0::1", false));
  EXPECT_EQ(ip_hash_key("not an ip", false), ip_hash_key("not an ip", true));
  // The fast IPv4 parser agrees with inet_pton (via the mapped form).
  for (const char* ip : {"0.0.0.0", "255.255.255.255", "1.2.3.4", "192.168.100.7"}) {
    EXPECT_EQ(ip_hash_key(ip, true), ip_hash_key(std::string("::ffff:") + ip, true)) << ip;
  }
  EXPECT_NE(ip_hash_key("1.2.3.256", true), ip_hash_key("1.2.3.0", true));
  EXPECT_NE(ip_hash_key("1.2.3", false), ip_hash_key("1.2.3.4", false));
  TestPool p(ip_params(false));
  for (int i = 0; i < 256; i++) {
    ASSERT_EQ(pick_ip(p, "192.168.7." + std::to_string(i)), pick_ip(p, "192.168.7.1"));
  }
}

TEST(LbIpHash, WholeIpSpreadsOneSubnet) {
  TestPool p(ip_params(true));
  auto share = testing::shares(8, 256 * 40, [&](int i) {
    return pick_ip(p, "10." + std::to_string(i / 256) + ".0." + std::to_string(i % 256));
  });
  for (double s : share) EXPECT_NEAR(s, 1.0 / 8, 0.02);
}

TEST(LbIpHash, MissingAddressGoesRoundRobin) {
  TestPool p(ip_params(false));
  EXPECT_EQ(p.sequence(3), "a b c");
}

}  // namespace
}  // namespace pasture::lb
