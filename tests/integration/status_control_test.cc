// Runtime control (issue 14) over real sockets and processes: the commands
// take effect in every worker at once, drain keeps sticky clients, weights
// shift the distribution, what was set survives a reload, clear counters
// zeroes every row, `drain` fails /ready and stops the master, the CSRF
// guard, and the admin socket through `pasture ctl`.
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>

#include "conf/json.h"
#include "tests/integration/raw_http.h"

namespace pasture::test {
namespace {

namespace json = conf::json;

const Headers kCmd = {{"X-Pasture-Command", "1"}};

// Server-section keys first (they follow PastureServer's [server:main]).
std::string control_site(const TempDir& dir, const FakeUpstream& a, const FakeUpstream& b,
                         const std::string& pool_keys = "", const std::string& server_keys = "") {
  return "admin_socket = " + dir.path() + "/admin.sock\n" + server_keys +
         "\n[composite:main]\nuse = egg:Paste#urlmap\n/ = pool\n/status = stat\n\n"
         "[app:stat]\nuse = egg:pasture#status\n\n"
         "[app:pool]\nuse = egg:pasture#balancer\nservers = " + a.address() + " " + b.address() + "\n" + pool_keys;
}

// `pasture ctl CONFIG words`: exit code and stdout+stderr.
std::pair<int, std::string> ctl(const PastureServer& srv, const std::string& words) {
  return run_pasture("ctl " + srv.path() + " " + words);
}

Response post(uint16_t port, const std::string& body, const Headers& h = kCmd) {
  return http_request(port, "POST", "/status/", h, body);
}

int count_to(const FakeUpstream& u) { return (int)u.requests().size(); }

// 4 workers: after `state maint` no request reaches the server, whichever
// worker takes it; back to ready, it serves again.
TEST(StatusControl, MaintTakesEffectInEveryWorker) {
  TempDir dir;
  FakeUpstream a("a"), b("b");
  PastureServer srv(control_site(dir, a, b), 4);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto [rc, out] = ctl(srv, "set server pool/" + a.address() + " state maint");
  ASSERT_EQ(rc, 0) << out;
  int before = count_to(a);
  for (int i = 0; i < 100; i++) ASSERT_EQ(http_get(srv.port(), "/x").status, 200);
  EXPECT_EQ(count_to(a), before);
  EXPECT_EQ(count_to(b), 100);
  EXPECT_NE(ctl(srv, "show servers").second.find("maint"), std::string::npos);
  ASSERT_EQ(post(srv.port(), "cmd=set+server+app%3Apool%2F" + a.address() + "+state+ready").status, 200);
  for (int i = 0; i < 20; i++) ASSERT_EQ(http_get(srv.port(), "/x").status, 200);
  EXPECT_EQ(count_to(a), before + 10);  // round robin over both again
  EXPECT_NE(srv.output().find("admin: set server app:pool/" + a.address() + " state maint (by admin socket, uid"),
            std::string::npos);
}

// Drain: requests whose sticky cookie names the server still reach it; no
// other request does.
TEST(StatusControl, DrainLetsStickyRequestsThrough) {
  TempDir dir;
  FakeUpstream a("a"), b("b");
  PastureServer srv(control_site(dir, a, b, "method = cookie\ncookie_secret = s3cr3t-for-the-test\n"), 4);
  ASSERT_TRUE(srv.started()) << srv.output();
  // A cookie for a: the first answer from a carries it.
  std::string cookie;
  for (int i = 0; i < 4 && cookie.empty(); i++) {
    int na = count_to(a);
    Response r = http_get(srv.port(), "/x");
    if (count_to(a) > na) cookie = r.header("Set-Cookie");
  }
  ASSERT_FALSE(cookie.empty());
  cookie = cookie.substr(0, cookie.find(';'));
  ASSERT_EQ(ctl(srv, "set server pool/" + a.address() + " state drain").first, 0);
  int na = count_to(a);
  for (int i = 0; i < 40; i++) ASSERT_EQ(http_get(srv.port(), "/x").status, 200);
  EXPECT_EQ(count_to(a), na) << "a request without the cookie reached a drained server";
  for (int i = 0; i < 40; i++) ASSERT_EQ(http_get(srv.port(), "/x", {{"Cookie", cookie}}).status, 200);
  EXPECT_EQ(count_to(a), na + 40) << "sticky requests must still reach it";
  ASSERT_EQ(ctl(srv, "set server pool/" + a.address() + " state maint").first, 0);
  for (int i = 0; i < 20; i++) ASSERT_EQ(http_get(srv.port(), "/x", {{"Cookie", cookie}}).status, 200);
  EXPECT_EQ(count_to(a), na + 40) << "maint takes nothing, sticky or not";
}

// set weight N%: the shared round-robin schedule of every worker follows.
TEST(StatusControl, WeightPercentShiftsDistribution) {
  TempDir dir;
  FakeUpstream a("a"), b("b");
  PastureServer srv(control_site(dir, a, b), 4);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto [rc, out] = ctl(srv, "set weight pool/" + a.address() + " 300%");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "weight app:pool/" + a.address() + " 3 (configured 1)\n");
  int na = count_to(a), nb = count_to(b);
  for (int i = 0; i < 400; i++) ASSERT_EQ(http_get(srv.port(), "/x").status, 200);
  double share = double(count_to(a) - na) / 400;
  EXPECT_NEAR(share, 0.75, 0.05) << "a " << count_to(a) - na << ", b " << count_to(b) - nb;
  EXPECT_NE(ctl(srv, "show servers").second.find("3/1"), std::string::npos);
}

// Admin state, forced health and weight survive HUP for a server still there.
TEST(StatusControl, AdminStateSurvivesReload) {
  TempDir dir;
  FakeUpstream a("a"), b("b");
  PastureServer srv(control_site(dir, a, b), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  ASSERT_EQ(ctl(srv, "set server pool/" + a.address() + " state maint").first, 0);
  ASSERT_EQ(ctl(srv, "set weight pool/" + b.address() + " 5").first, 0);
  ASSERT_TRUE(srv.proc().signal(SIGHUP));
  ASSERT_TRUE(wait_for_output(srv.proc(), "reloaded: generation 2")) << srv.output();
  EXPECT_NE(srv.output().find("reload: app:pool/" + a.address() + " keeps state maint"), std::string::npos)
      << srv.output();
  std::string servers = ctl(srv, "show servers").second;
  EXPECT_NE(servers.find("maint"), std::string::npos) << servers;
  EXPECT_NE(servers.find("5/1"), std::string::npos) << servers;
  int na = count_to(a);
  for (int i = 0; i < 50; i++) ASSERT_EQ(http_get(srv.port(), "/x").status, 200);
  EXPECT_EQ(count_to(a), na);
}

uint64_t total_selected(uint16_t port) {
  Response r = http_get(port, "/status?format=json");
  json::Value v = json::parse(r.body);
  uint64_t sum = 0;
  for (const json::Value& p : v.find("pools")->items())
    for (const json::Value& s : p.find("servers")->items()) sum += (uint64_t)s.find("selected")->find("value")->as_number();
  return sum;
}

// clear counters: every worker's row and the retired row (a killed worker's
// counts) go to zero, exactly.
TEST(StatusControl, ClearCountersZeroesEveryRow) {
  TempDir dir;
  FakeUpstream a("a"), b("b");
  PastureServer srv(control_site(dir, a, b), 4);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 40; i++) ASSERT_EQ(http_get(srv.port(), "/x").status, 200);
  std::vector<int> pids = srv.worker_pids();
  ASSERT_FALSE(pids.empty());
  kill(pids[0], SIGKILL);  // its row is folded into the retired row
  ASSERT_TRUE(wait_until([&] { return srv.worker_pids().size() >= 5; })) << srv.output();  // replaced
  ASSERT_TRUE(wait_until([&] { return total_selected(srv.port()) == 40; })) << total_selected(srv.port());
  auto [rc, out] = ctl(srv, "clear counters");
  ASSERT_EQ(rc, 0) << out;
  ASSERT_TRUE(wait_until([&] { return total_selected(srv.port()) == 0; })) << total_selected(srv.port());
  for (int i = 0; i < 7; i++) ASSERT_EQ(http_get(srv.port(), "/x").status, 200);
  ASSERT_TRUE(wait_until([&] { return total_selected(srv.port()) == 7; })) << total_selected(srv.port());
}

// drain: /ready answers 503 in every worker at once, then the master stops
// gracefully (exit 0) after the delay.
TEST(StatusControl, DrainFailsReadyThenStops) {
  TempDir dir;
  FakeUpstream a("a"), b("b");
  PastureServer srv(control_site(dir, a, b), 4);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 8; i++) ASSERT_EQ(http_get(srv.port(), "/status/ready").status, 200);
  Response r = post(srv.port(), "drain 2");
  ASSERT_EQ(r.status, 200) << r.body;
  for (int i = 0; i < 20; i++) EXPECT_EQ(http_get(srv.port(), "/status/ready").status, 503);
  EXPECT_EQ(http_get(srv.port(), "/x").status, 200);  // still serving meanwhile
  EXPECT_TRUE(srv.proc().running());
  std::optional<int> code = srv.proc().wait_exit(Millis(8000));
  ASSERT_TRUE(code.has_value()) << srv.output();
  EXPECT_EQ(*code, 0);
  EXPECT_NE(srv.output().find("drain: the delay is over; graceful shutdown"), std::string::npos);
}

// A POST without the command header (what a cross-site form sends) is
// refused and changes nothing; GET never runs a command.
TEST(StatusControl, CsrfGuardAndGetNeverWrites) {
  TempDir dir;
  FakeUpstream a("a"), b("b");
  PastureServer srv(control_site(dir, a, b), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::string cmd = "cmd=set+server+pool%2F" + a.address() + "+state+maint";
  Response r = post(srv.port(), cmd, {{"Content-Type", "application/x-www-form-urlencoded"}, {"Origin", "https://evil.example"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(http_get(srv.port(), "/status/?" + cmd).status, 200);
  EXPECT_EQ(ctl(srv, "show servers").second.find("maint"), std::string::npos);
  int na = count_to(a);
  for (int i = 0; i < 4; i++) ASSERT_EQ(http_get(srv.port(), "/x").status, 200);
  EXPECT_EQ(count_to(a), na + 2);
  // With the header, a browser's word that the request comes from another
  // site still refuses it; this site's own page (same Origin) may.
  std::string self = "http://127.0.0.1:" + std::to_string(srv.port());
  for (const Headers& h : {Headers{{"X-Pasture-Command", "1"}, {"Origin", "https://evil.example"}},
                           Headers{{"X-Pasture-Command", "1"}, {"Origin", self + ".evil.example"}},
                           Headers{{"X-Pasture-Command", "1"}, {"Sec-Fetch-Site", "cross-site"}},
                           Headers{{"X-Pasture-Command", "1"}, {"Sec-Fetch-Site", "same-site"}}}) {
    SCOPED_TRACE(h.back().second);
    EXPECT_EQ(post(srv.port(), cmd, h).status, 403);
  }
  EXPECT_EQ(ctl(srv, "show servers").second.find("maint"), std::string::npos);
  r = post(srv.port(), "cmd=show+info", {{"X-Pasture-Command", "1"}, {"Origin", self}, {"Sec-Fetch-Site", "same-origin"}});
  EXPECT_EQ(r.status, 200) << r.body;
  r = post(srv.port(), cmd);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "server app:pool/" + a.address() + " state maint\n");
  EXPECT_EQ(post(srv.port(), "cmd=set+weight+pool%2Fnope+3").status, 400);
}

// DNS rebinding (found by review): a page whose name resolves to 127.0.0.1
// reaches the status app from an allowed address with its own Host and a
// matching Origin. Only IP literals, localhost and `hosts` names are
// answered; /ready answers any Host.
TEST(StatusControl, ForeignHostIsRefusedAgainstDnsRebinding) {
  TempDir dir;
  FakeUpstream a("a"), b("b");
  PastureServer srv(control_site(dir, a, b), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::string evil = "rebind.attacker.example:" + std::to_string(srv.port());
  std::string cmd = "cmd=set+server+pool%2F" + a.address() + "+state+maint";
  Response r = post(srv.port(), cmd, {{"Host", evil}, {"Origin", "http://" + evil}, {"Sec-Fetch-Site", "same-origin"},
                                      {"X-Pasture-Command", "1"}});
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(ctl(srv, "show servers").second.find("maint"), std::string::npos);
  EXPECT_EQ(http_get(srv.port(), "/status/?format=json", {{"Host", evil}}).status, 403);
  EXPECT_EQ(http_get(srv.port(), "/status/metrics", {{"Host", "REBIND.attacker.example"}}).status, 403);
  EXPECT_EQ(http_get(srv.port(), "/status/ready", {{"Host", evil}}).status, 200);
  for (const char* ok : {"localhost", "localhost:1", "127.0.0.1", "[::1]:80"})
    EXPECT_EQ(http_get(srv.port(), "/status/?format=json", {{"Host", ok}}).status, 200) << ok;
  // `hosts` names the ones an operator serves it under.
  TempDir dir2;
  std::string site = control_site(dir2, a, b);
  site.replace(site.find("use = egg:pasture#status\n"), 25, "use = egg:pasture#status\nhosts = Rebind.Attacker.Example, other\n");
  PastureServer named(site, 1);
  ASSERT_TRUE(named.started()) << named.output();
  EXPECT_EQ(http_get(named.port(), "/status/?format=json", {{"Host", evil}}).status, 200);
  EXPECT_EQ(http_get(named.port(), "/status/?format=json", {{"Host", "third.example"}}).status, 403);
}

// The admin socket: mode 0600 by default (others are refused by the
// kernel), admin_socket_mode; `pasture ctl` round trip and exit codes.
TEST(StatusControl, AdminSocketModeAndCtl) {
  TempDir dir;
  FakeUpstream a("a"), b("b");
  {
    PastureServer srv(control_site(dir, a, b), 2);
    ASSERT_TRUE(srv.started()) << srv.output();
    struct stat st{};
    ASSERT_EQ(stat((dir.path() + "/admin.sock").c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    auto [rc, out] = ctl(srv, "show pools");
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find("app:pool  round_robin  2"), std::string::npos) << out;
    auto [rc2, out2] = ctl(srv, "set server pool/10.9.9.9:1 state maint");
    EXPECT_EQ(rc2, 1);
    EXPECT_EQ(out2, "error: pool app:pool has no server 10.9.9.9:1\n");
    std::string cmd = std::string(PASTURE_BINARY) + " status " + srv.path() + " > " + dir.path() + "/st.txt";
    EXPECT_EQ(system(cmd.c_str()), 0);
  }
  EXPECT_NE(access((dir.path() + "/admin.sock").c_str(), F_OK), 0) << "removed at exit";
  PastureServer srv(control_site(dir, a, b, "", "admin_socket_mode = 0660\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  struct stat st{};
  ASSERT_EQ(stat((dir.path() + "/admin.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

}  // namespace
}  // namespace pasture::test
