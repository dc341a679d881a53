// Balancing methods across several workers, over real sockets.
#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include "tests/integration/pasture_server.h"

namespace pasture::test {
namespace {

std::string pool_ini(const std::string& servers, const std::string& extra) {
  return "[app:main]\nuse = egg:pasture#balancer\nservers = " + servers + "\n" + extra;
}

// `threads` clients, each sending `per_thread` requests on new connections.
std::map<std::string, int> spread(uint16_t port, int threads, int per_thread,
                                  const Headers& headers = {}) {
  std::map<std::string, int> seen;
  std::mutex mu;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++)
    ts.emplace_back([&] {
      for (int i = 0; i < per_thread; i++) {
        Response r = http_get(port, "/", headers);
        std::lock_guard<std::mutex> l(mu);
        seen[r.ok() ? r.header("X-Upstream") : "error:" + r.error]++;
      }
    });
  for (auto& t : ts) t.join();
  return seen;
}

TEST(Balance, WeightedRoundRobinExactUnderConcurrency) {
  FakeUpstream a("a"), b("b"), c("c");
  PastureServer srv(pool_ini(a.address() + " weight=5 " + b.address() + " " + c.address() +
                                 " weight=2", ""),
                    3);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto seen = spread(srv.port(), 4, 200);  // 800 = 100 cycles of 8
  EXPECT_EQ(seen["a"], 500);
  EXPECT_EQ(seen["b"], 100);
  EXPECT_EQ(seen["c"], 200);
}

TEST(Balance, LeastConnSteersAwayFromSlowServer) {
  FakeUpstream fast("fast"), slow("slow");
  slow.set_delay(Millis(200));
  PastureServer srv(pool_ini(fast.address() + " " + slow.address(), "method = least_conn\n"), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto seen = spread(srv.port(), 4, 30);
  // Round robin would send half (60) to the slow server; least_conn sends it
  // a request only when it has no more in flight than the fast one (ties
  // are broken at random).
  EXPECT_LT(seen["slow"], 30) << seen["fast"];
  EXPECT_EQ(seen["fast"] + seen["slow"], 120);
}

TEST(Balance, HashOnHeaderKeepsEachKeyOnOneServer) {
  FakeUpstream a("a"), b("b"), c("c");
  PastureServer srv(pool_ini(a.address() + " " + b.address() + " " + c.address(),
                             "method = hash\nhash_key = header:X-User\n"),
                    3);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::map<std::string, int> servers_used;
  for (int u = 0; u < 30; u++) {
    std::string user = "user-" + std::to_string(u);
    auto seen = spread(srv.port(), 1, 10, {{"X-User", user}});
    EXPECT_EQ(seen.size(), 1u) << user;
    servers_used[seen.begin()->first]++;
  }
  EXPECT_EQ(servers_used.size(), 3u);  // keys spread over all servers
}

TEST(Balance, IpHashKeepsClientOnOneServer) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(pool_ini(a.address() + " " + b.address(), "method = ip_hash\n"), 3);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto seen = spread(srv.port(), 2, 30);
  EXPECT_EQ(seen.size(), 1u);
}

std::string cookie_value(const Response& r, const std::string& name) {
  std::string sc = r.header("Set-Cookie");
  if (sc.rfind(name + "=", 0) != 0) return "";
  return sc.substr(name.size() + 1, sc.find(';') - name.size() - 1);
}

TEST(Balance, StickyCookieHoldsAcrossWorkersAndRejectsForgery) {
  FakeUpstream a("a"), b("b"), c("c");
  PastureServer srv(pool_ini(a.address() + " " + b.address() + " " + c.address(),
                             "method = cookie\ncookie_secret = s3cret\ncookie_name = sid\n"),
                    3);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response first = http_get(srv.port(), "/");
  ASSERT_EQ(first.status, 200);
  std::string value = cookie_value(first, "sid");
  ASSERT_FALSE(value.empty()) << first.header("Set-Cookie");
  EXPECT_NE(first.header("Set-Cookie").find("HttpOnly"), std::string::npos);
  EXPECT_EQ(first.header("Set-Cookie").find("Max-Age"), std::string::npos);  // a session cookie
  std::string home = first.header("X-Upstream");
  auto seen = spread(srv.port(), 3, 20, {{"Cookie", "other=1; sid=" + value}});
  EXPECT_EQ(seen[home], 60) << "sticky across workers and connections";
  Response again = http_get(srv.port(), "/", {{"Cookie", "sid=" + value}});
  EXPECT_EQ(again.header_count("Set-Cookie"), 0u);  // already has the right cookie
  // A tampered cookie is ignored: requests rotate and get a fresh cookie.
  std::string forged = value;
  forged.back() = forged.back() == '0' ? '1' : '0';
  auto tampered = spread(srv.port(), 1, 30, {{"Cookie", "sid=" + forged}});
  EXPECT_EQ(tampered.size(), 3u);
  Response r = http_get(srv.port(), "/", {{"Cookie", "sid=" + forged}});
  EXPECT_FALSE(cookie_value(r, "sid").empty());
}

TEST(Balance, StickyCookieCarriesMaxAgeWhenConfigured) {
  FakeUpstream a("a");
  PastureServer srv(pool_ini(a.address(), "method = cookie\ncookie_secret = s3cret\ncookie_max_age = 1h\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = http_get(srv.port(), "/");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.header("Set-Cookie").find("; Max-Age=3600;"), std::string::npos) << r.header("Set-Cookie");
  EXPECT_FALSE(cookie_value(r, "pasture_sticky").empty()) << r.header("Set-Cookie");
}

// A backup serves only while no primary can; its cookie must not keep the
// client there once a primary is back.
TEST(Balance, BackupCookieDoesNotPinWhileAPrimaryIsUp) {
  FakeUpstream a("a"), z("z");
  std::string keys = "method = cookie\ncookie_secret = s3cret\ncookie_name = sid\n";
  // The primary down: the backup answers and sets its cookie, which holds.
  PastureServer down(pool_ini(a.address() + " down " + z.address() + " backup", keys), 1);
  ASSERT_TRUE(down.started()) << down.output();
  Response first = http_get(down.port(), "/");
  ASSERT_EQ(first.header("X-Upstream"), "z");
  std::string to_z = cookie_value(first, "sid");
  ASSERT_FALSE(to_z.empty()) << first.header("Set-Cookie");
  Response again = http_get(down.port(), "/", {{"Cookie", "sid=" + to_z}});
  EXPECT_EQ(again.header("X-Upstream"), "z");
  EXPECT_EQ(again.header_count("Set-Cookie"), 0u);
  // The same secret with the primary up (as after the reload that brings it
  // back): the client moves to the primary and gets the primary's cookie.
  PastureServer up(pool_ini(a.address() + " " + z.address() + " backup", keys), 2);
  ASSERT_TRUE(up.started()) << up.output();
  auto seen = spread(up.port(), 2, 10, {{"Cookie", "sid=" + to_z}});
  EXPECT_EQ(seen["a"], 20);
  Response moved = http_get(up.port(), "/", {{"Cookie", "sid=" + to_z}});
  EXPECT_EQ(moved.header("X-Upstream"), "a");
  std::string to_a = cookie_value(moved, "sid");
  EXPECT_FALSE(to_a.empty());
  EXPECT_NE(to_a, to_z);
}

}  // namespace
}  // namespace pasture::test

namespace pasture::test {
namespace {

TEST(Balance, ServersFromFileIsWatchedAndApplied) {
  FakeUpstream a("a"), b("b");
  TempDir d;
  std::string pool = d.write("pool.yaml", "- " + a.address() + "\n");
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers_from = " + pool + "\n", 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_EQ(http_get(srv.port(), "/").header("X-Upstream"), "a");
  // Replace the member list: applied without a restart.
  std::ofstream(pool + ".tmp") << "- " << b.address() << "\n";
  ASSERT_EQ(rename((pool + ".tmp").c_str(), pool.c_str()), 0);
  bool switched = false;
  for (int i = 0; i < 100 && !switched; i++) {
    switched = http_get(srv.port(), "/").header("X-Upstream") == "b";
    if (!switched) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(switched) << srv.output();
  // A broken file keeps the old members and says where it is broken.
  std::ofstream(pool + ".tmp") << "- " << b.address() << "\n- [unclosed\n";
  ASSERT_EQ(rename((pool + ".tmp").c_str(), pool.c_str()), 0);
  ASSERT_TRUE(wait_for_output(srv.proc(), "reload failed", Millis(4000))) << srv.output();
  EXPECT_NE(srv.output().find("pool.yaml:"), std::string::npos) << srv.output();
  for (int i = 0; i < 10; i++) EXPECT_EQ(http_get(srv.port(), "/").header("X-Upstream"), "b");
}

}  // namespace
}  // namespace pasture::test
