// End to end: the real binary, several workers, real upstream sockets.
#include <signal.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "tests/integration/pasture_server.h"
#include "tests/support/pattern.h"

namespace pasture::test {
namespace {

std::string balancer_ini(const std::vector<const FakeUpstream*>& ups, const std::string& extra = "") {
  std::string s = "[app:main]\nuse = egg:pasture#balancer\nservers =";
  for (auto* u : ups) s += " " + u->address();
  return s + "\n" + extra;
}

TEST(Serve, EchoAppAnswers) {
  PastureServer srv("[app:main]\nuse = egg:pasture#echo\nname = hello\n", 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = http_get(srv.port(), "/x?y=1");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello GET /x?y=1\n");
}

TEST(Serve, GlobalRoundRobinOverNewConnections) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(balancer_ini({&a, &b}), 3);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::map<std::string, int> seen;
  for (int i = 0; i < 200; i++) {
    Response r = http_get(srv.port(), "/n");
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.status, 200);
    seen[r.header("X-Upstream")]++;
  }
  EXPECT_EQ(seen["a"], 100);
  EXPECT_EQ(seen["b"], 100);
}

}  // namespace
}  // namespace pasture::test

namespace pasture::test {
namespace {

TEST(Serve, UploadsStreamIntactBothFramings) {
  FakeUpstream up("u");
  up.echo_body();
  PastureServer srv(balancer_ini({&up}), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  for (bool chunked : {false, true}) {
    const size_t n = 6 * 1024 * 1024 + 123;
    Response r = c.request_pattern("POST", "/upload", n, chunked);
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body.size(), n);
    EXPECT_TRUE(check_pattern(r.body)) << "first mismatch at " << pattern_mismatch(r.body);
  }
  auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_FALSE(reqs[0].chunked);
  EXPECT_TRUE(reqs[1].chunked);  // chunked framing is passed through
}

TEST(Serve, DownloadsStreamIntactBothFramings) {
  FakeUpstream up("u");
  PastureServer srv(balancer_ini({&up}), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (bool chunked : {false, true}) {
    up.respond_pattern(8 * 1024 * 1024 + 7, chunked);
    HttpConn c(srv.port());
    Response r = c.request("GET", "/big");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.chunked, chunked);
    ASSERT_EQ(r.body.size(), 8u * 1024 * 1024 + 7);
    EXPECT_TRUE(check_pattern(r.body));
    // The connection stays usable afterwards.
    up.reset_handler();
    Response r2 = c.request("GET", "/after");
    ASSERT_TRUE(r2.ok()) << r2.error;
    EXPECT_EQ(r2.body, "u GET /after\n");
  }
}

TEST(Serve, KeepAliveBothSidesAndPipelining) {
  FakeUpstream up("u");
  PastureServer srv(balancer_ini({&up}), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  for (int i = 0; i < 50; i++) {
    Response r = c.request("GET", "/k" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.body, "u GET /k" + std::to_string(i) + "\n");
    ASSERT_TRUE(r.keep_alive);
  }
  EXPECT_LE(up.connections_accepted(), 2u) << "upstream connections are pooled";
  // Three pipelined requests in one write come back in order.
  ASSERT_TRUE(c.send_raw("GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                         "GET /p3 HTTP/1.1\r\nHost: x\r\n\r\n"));
  for (const char* want : {"u GET /p1\n", "u POST /p2\n", "u GET /p3\n"}) {
    Response r = c.read_response();
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.body, want);
  }
}

TEST(Serve, ForwardedHeadersAndHopByHop) {
  FakeUpstream up("u");
  PastureServer srv(balancer_ini({&up}), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  Response r = c.request("GET", "/h",
                         {{"Host", "site.example:8080"},
                          {"X-Forwarded-For", "10.1.2.3"},
                          {"Connection", "keep-alive, X-Secret"},
                          {"X-Secret", "drop me"},
                          {"Keep-Alive", "timeout=5"},
                          {"X-Kept", "yes"}});
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(up.request_count(), 1u);
  RecordedRequest q = up.requests()[0];
  // The peer is not in trusted_proxies: its X-Forwarded-For is not passed
  // on as if true (ForwardedHeaders.* has the trusted case, which appends).
  EXPECT_EQ(q.header("X-Forwarded-For"), "127.0.0.1");
  EXPECT_EQ(q.header("X-Forwarded-Proto"), "http");
  EXPECT_EQ(q.header("X-Forwarded-Host"), "site.example:8080");
  EXPECT_EQ(q.header("Host"), "site.example:8080");
  EXPECT_EQ(q.header("X-Kept"), "yes");
  EXPECT_EQ(q.header_count("X-Secret"), 0u);
  EXPECT_EQ(q.header_count("Keep-Alive"), 0u);
  EXPECT_EQ(q.header_count("Connection"), 0u);
}

TEST(Serve, HopByHopResponseHeadersDropped) {
  FakeUpstream up("u");
  up.respond_raw(
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Private\r\n"
      "X-Private: 1\r\nKeep-Alive: timeout=1\r\nX-Public: 2\r\n\r\nok");
  PastureServer srv(balancer_ini({&up}), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = http_get(srv.port(), "/");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(r.header("X-Public"), "2");
  EXPECT_EQ(r.header_count("X-Private"), 0u);
  EXPECT_EQ(r.header_count("Keep-Alive"), 0u);
}

TEST(Serve, GarbageGets400AndClose) {
  FakeUpstream up("u");
  PastureServer srv(balancer_ini({&up}), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  ASSERT_TRUE(c.send_raw("THIS IS NOT HTTP\r\n\r\n"));
  Response r = c.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(c.closed(Millis(2000)));
  EXPECT_EQ(up.request_count(), 0u);
  // Conflicting framing (request smuggling) is refused too.
  HttpConn c2(srv.port());
  ASSERT_TRUE(c2.send_raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
  EXPECT_EQ(c2.read_response().status, 400);
  // The server still serves.
  EXPECT_EQ(http_get(srv.port(), "/").status, 200);
}

TEST(Serve, OversizedHeadGets431) {
  FakeUpstream up("u");
  PastureServer srv(balancer_ini({&up}), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  Response r = c.request("GET", "/", {{"X-Big", std::string(40000, 'a')}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 431);
  HttpConn c2(srv.port());
  Response r2 = c2.request("GET", "/" + std::string(9000, 'u'));
  EXPECT_EQ(r2.status, 414);
}

TEST(Serve, DeadPoolGives502AndDeadMemberIsSkipped) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(balancer_ini({&a, &b}), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  a.stop();
  for (int i = 0; i < 20; i++) {  // connect failures go to the other server
    Response r = http_get(srv.port(), "/");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("X-Upstream"), "b");
  }
  b.stop();
  // The request that finds the last server dead gets its 502; from then on
  // every server is marked down (max_fails=1, fail_timeout=10s) and the
  // answer is an immediate 503 with Retry-After.
  Response first = http_get(srv.port(), "/");
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(first.status, 502);
  for (int i = 0; i < 5; i++) {
    Response r = http_get(srv.port(), "/");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 503);
    EXPECT_FALSE(r.header("Retry-After").empty());
  }
}

TEST(Serve, DeadSingleUpstreamKeepsGiving502) {
  uint16_t dead = free_port();
  PastureServer srv("[app:main]\nuse = egg:Paste#proxy\naddress = http://127.0.0.1:" +
                        std::to_string(dead) + "\n",
                    2);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 5; i++) {
    Response r = http_get(srv.port(), "/");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 502);  // one server: never marked down (nginx's rule)
  }
}

TEST(Serve, UpstreamTimeoutGives504) {
  FakeUpstream up("u");
  up.set_delay(Millis(3000));
  PastureServer srv(balancer_ini({&up}, "read_timeout = 0.5\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto t0 = std::chrono::steady_clock::now();
  Response r = http_get(srv.port(), "/slow");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 504);
  EXPECT_LT(ms, 2000);
}

TEST(Serve, UrlmapRoutesWholeSegmentsAndProxyKeepsPath) {
  FakeUpstream one("one"), pool_a("pa"), pool_b("pb");
  std::string ini =
      "[composite:main]\nuse = egg:Paste#urlmap\n/one = one\n/ = pool\n\n"
      "[app:one]\nuse = egg:Paste#proxy\naddress = http://" + one.address() + "\n\n"
      "[app:pool]\nuse = egg:pasture#balancer\nservers = " + pool_a.address() + " " +
      pool_b.address() + "\n";
  PastureServer srv(ini, 3);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r1 = http_get(srv.port(), "/one/x?q=1");
  EXPECT_EQ(r1.header("X-Upstream"), "one");
  EXPECT_EQ(r1.body, "one GET /one/x?q=1\n");
  EXPECT_EQ(http_get(srv.port(), "/one").header("X-Upstream"), "one");
  Response r3 = http_get(srv.port(), "/onex");
  EXPECT_NE(r3.header("X-Upstream"), "one");
  // Paste's proxy sends the upstream's address as Host.
  ASSERT_GE(one.request_count(), 1u);
  EXPECT_EQ(one.requests()[0].header("Host"), one.address());
}

TEST(Serve, Http10ClientGetsDechunkedBodyAndClose) {
  FakeUpstream up("u");
  up.respond_pattern(100000, /*chunked=*/true);
  PastureServer srv(balancer_ini({&up}), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  ASSERT_TRUE(c.send_raw("GET /old HTTP/1.0\r\n\r\n"));
  Response r = c.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.chunked);
  EXPECT_EQ(r.body.size(), 100000u);
  EXPECT_TRUE(check_pattern(r.body));
  EXPECT_TRUE(c.closed(Millis(2000)));
}

TEST(Serve, HeadRequestHasNoBody) {
  FakeUpstream up("u");
  PastureServer srv(balancer_ini({&up}), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  ASSERT_TRUE(c.send_request("HEAD", "/h"));
  Response r = c.read_response(/*head_request=*/true);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  Response r2 = c.request("GET", "/g");  // the connection is still in sync
  EXPECT_EQ(r2.body, "u GET /g\n");
}

TEST(Serve, KilledWorkerIsReplacedAndServiceContinues) {
  FakeUpstream up("u");
  PastureServer srv(balancer_ini({&up}), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto pids = srv.worker_pids();
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_EQ(kill(pids[0], SIGKILL), 0);
  for (int i = 0; i < 100; i++) {
    Response r = http_get(srv.port(), "/");
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.status, 200);
  }
  // The master starts a replacement.
  for (int i = 0; i < 50 && srv.worker_pids().size() < 3; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(srv.worker_pids().size(), 3u) << srv.output();
}

TEST(Serve, SigtermStopsCleanly) {
  FakeUpstream up("u");
  PastureServer srv(balancer_ini({&up}), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_EQ(http_get(srv.port(), "/").status, 200);
  srv.proc().signal(SIGTERM);
  auto st = srv.proc().wait_exit(Millis(10000));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(exited_with(st, 0)) << describe_status(*st);
}

TEST(Serve, BrokenConfigNamesFileAndLine) {
  TempDir d;
  std::string path = d.write("bad.ini",
                             "[server:main]\nuse = egg:pasture#main\nport = 1\n\n"
                             "[app:main]\nuse = egg:NoSuchThing#x\n");
  Process p({PASTURE_BINARY, "serve", path});
  auto st = p.wait_exit(Millis(10000));
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(exited_with(st, 0));
  EXPECT_NE(p.output().find("bad.ini:6"), std::string::npos) << p.output();
}

}  // namespace
}  // namespace pasture::test
