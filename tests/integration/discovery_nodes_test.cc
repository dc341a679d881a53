// Several pasture nodes in front of one pool (issue 16): three instances on
// their own ports, the same pool listed in different orders or learned from
// DNS, must pick alike for the same key, accept each other's sticky
// cookies, and move only the keys consistent hashing says should move when
// a member leaves.
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/discovery_dns.h"

namespace pasture::test {
namespace {

#define NEED_DNSLIB() \
  if (!have_dnslib()) GTEST_SKIP() << "python3-dnslib missing (scripts/setup --test)"

struct Fleet {
  std::vector<std::unique_ptr<FakeUpstream>> ups;  // on 127.0.0.2.. one port
  std::unique_ptr<DnsServer> dns, dns2;  // nodes 2 and 3's
  std::vector<std::unique_ptr<PastureServer>> nodes;
  std::string port;

  std::string addr(int i) const { return ups[i]->address(); }
  std::vector<std::string> ips(std::vector<int> order) const {
    std::vector<std::string> out;
    for (int i : order) out.push_back(ups[i]->ip());
    return out;
  }
};

// Four upstreams; node 0 lists them a b c d, node 1 d c b a; nodes 2 and 3
// learn them from DNS, node 2 all at once (slots a b c d), node 3 c and a
// first, then b and d (slots a c b d). `keys`: the pool's method settings.
//
// A pool with discovery sizes its Maglev table for all its slots (static +
// max_servers), a static pool for its servers: nodes agree when their
// configurations do, so Maglev picks are compared static node to static
// node and DNS node to DNS node (ring and none do not depend on the size).
void start_fleet(Fleet& f, const std::string& keys) {
  f.ups.push_back(std::make_unique<FakeUpstream>("a", 0, "127.0.0.2"));
  uint16_t p = f.ups[0]->port();
  f.port = std::to_string(p);
  for (int i = 1; i < 4; i++)
    f.ups.push_back(std::make_unique<FakeUpstream>(std::string(1, (char)('a' + i)), p, "127.0.0." + std::to_string(2 + i)));
  f.dns = std::make_unique<DnsServer>(a_zone("app.test", f.ips({1, 3, 0, 2})));
  f.dns2 = std::make_unique<DnsServer>(a_zone("app.test", f.ips({2, 0})));
  ASSERT_TRUE(f.dns->started() && f.dns2->started());
  std::string pool = "[app:main]\nuse = egg:pasture#balancer\n" + keys;
  f.nodes.push_back(std::make_unique<PastureServer>(
      pool + "servers = " + f.addr(0) + " " + f.addr(1) + " " + f.addr(2) + " " + f.addr(3) + "\n", 2));
  f.nodes.push_back(std::make_unique<PastureServer>(
      pool + "servers = " + f.addr(3) + " " + f.addr(2) + " " + f.addr(1) + " " + f.addr(0) + "\n", 2));
  for (DnsServer* d : {f.dns.get(), f.dns2.get()})
    f.nodes.push_back(std::make_unique<PastureServer>(
        pool + "servers = dns:app.test:" + f.port + "\nresolver = " + d->address() +
            "\nresolve_min = 200ms\nresolve_interval = 500ms\n",
        2));
  for (auto& n : f.nodes) ASSERT_TRUE(n->started()) << n->output();
  ASSERT_NE(wait_log(*f.nodes[3], "+127.0.0.2:" + f.port + " +127.0.0.4:" + f.port), std::string::npos)
      << f.nodes[3]->output();
  f.dns2->set_zone(a_zone("app.test", f.ips({3, 1, 2, 0})));
  for (int n : {2, 3})
    ASSERT_NE(wait_log(*f.nodes[n], "+127.0.0.5:" + f.port), std::string::npos) << f.nodes[n]->output();
  std::this_thread::sleep_for(Millis(100));
}

// The server each node picks for /k/<i>?k=<i>, i < n.
std::vector<std::string> picks(PastureServer& node, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; i++) {
    Response r = http_get(node.port(), "/k?k=" + std::to_string(i));
    out.push_back(r.status == 200 ? r.header("X-Upstream") : "status " + std::to_string(r.status));
  }
  return out;
}

TEST(DiscoveryNodes, HashPicksAlikeOnEveryNodeWhateverTheOrder) {
  NEED_DNSLIB();
  for (const char* consistent : {"maglev", "ring", "none"}) {
    Fleet f;
    start_fleet(f, std::string("method = hash\nhash_key = arg:k\nconsistent = ") + consistent + "\n");
    std::vector<std::string> p0 = picks(*f.nodes[0], 300);
    std::map<std::string, int> spread;
    for (const std::string& s : p0) spread[s]++;
    EXPECT_EQ(spread.size(), 4u) << consistent;
    EXPECT_EQ(picks(*f.nodes[1], 300), p0) << consistent;
    std::vector<std::string> p2 = picks(*f.nodes[2], 300);
    EXPECT_EQ(picks(*f.nodes[3], 300), p2) << consistent;
    if (std::string(consistent) != "maglev") {
      EXPECT_EQ(p2, p0) << consistent;
    }
  }
}

// A sticky cookie one node set is honoured by the others (same cookie_secret).
TEST(DiscoveryNodes, StickyCookiesWorkOnEveryNode) {
  NEED_DNSLIB();
  Fleet f;
  start_fleet(f, "method = cookie\ncookie_secret = fleet-secret\n");
  for (int i = 0; i < 8; i++) {
    Response first = http_get(f.nodes[i % 3]->port(), "/");
    ASSERT_EQ(first.status, 200);
    std::string set = first.header("Set-Cookie");
    ASSERT_EQ(set.rfind("pasture_sticky=", 0), 0u) << set;
    std::string cookie = set.substr(0, set.find(';'));
    for (auto& node : f.nodes)
      for (int k = 0; k < 5; k++) {
        Response r = http_get(node->port(), "/", {{"Cookie", cookie}});
        ASSERT_EQ(r.status, 200);
        EXPECT_EQ(r.header("X-Upstream"), first.header("X-Upstream")) << cookie;
      }
  }
}

// One of four members leaves the DNS records: on the DNS node, only about
// a quarter of the keys move (those of the member that left), and the
// static node without it agrees key for key.
TEST(DiscoveryNodes, MaglevMovesOnlyTheLeavingMembersKeys) {
  NEED_DNSLIB();
  Fleet f;
  start_fleet(f, "method = hash\nhash_key = arg:k\n");
  constexpr int kKeys = 800;
  std::vector<std::string> before = picks(*f.nodes[2], kKeys);
  size_t mark = f.nodes[2]->output().size(), mark3 = f.nodes[3]->output().size();
  f.dns->set_zone(a_zone("app.test", f.ips({1, 3, 2})));  // a (127.0.0.2) leaves
  f.dns2->set_zone(a_zone("app.test", f.ips({2, 1, 3})));
  ASSERT_NE(wait_log(*f.nodes[2], "-127.0.0.2:" + f.port, mark), std::string::npos);
  ASSERT_NE(wait_log(*f.nodes[3], "-127.0.0.2:" + f.port, mark3), std::string::npos);
  std::this_thread::sleep_for(Millis(100));
  std::vector<std::string> after = picks(*f.nodes[2], kKeys);
  int moved = 0, others_moved = 0, on_a = 0;
  for (int i = 0; i < kKeys; i++) {
    on_a += before[i] == "a";
    EXPECT_NE(after[i], "a");
    if (before[i] != after[i]) {
      moved++;
      others_moved += before[i] != "a";
    }
  }
  double share = (double)moved / kKeys;
  printf("maglev, 1 of 4 members leaves over DNS: %d of %d keys moved (%.1f%%), %d not on it\n", moved, kKeys,
         share * 100, others_moved);
  RecordProperty("moved_percent", std::to_string(share * 100));
  EXPECT_EQ(moved - others_moved, on_a);
  EXPECT_NEAR(share, 0.25, 0.08);
  EXPECT_LE(others_moved, kKeys / 50);
  // The other DNS node, whose slots differ, agrees key for key.
  EXPECT_EQ(picks(*f.nodes[3], kKeys), after);
}

}  // namespace
}  // namespace pasture::test
