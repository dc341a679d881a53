// HTTP/2 (worker/h2_conn.h): h2c by prior knowledge with curl, h2load with
// many streams, the attacks played by python3-h2 (tests/integration/h2/
// h2client.py), flow control both ways, and GOAWAY across a reload with
// requests in flight.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "tests/integration/pasture_server.h"
#include "tests/integration/raw_http.h"

namespace pasture::test {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

std::string client_script() { return std::string(PASTURE_SOURCE_DIR) + "/tests/integration/h2/h2client.py"; }

bool have_python_h2() {
  return access(kPython, X_OK) == 0 && system("/usr/bin/python3 -c 'import h2, hpack' >/dev/null 2>&1") == 0;
}

// Runs a command; its stdout (and stderr) as text.
std::string run(const std::string& cmd) {
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

// "key=value ..." from the client's last line.
std::map<std::string, std::string> fields(const std::string& out) {
  std::map<std::string, std::string> m;
  std::string last;
  std::istringstream lines(out);
  for (std::string l; std::getline(lines, l);)
    if (l.find('=') != std::string::npos) last = l;
  std::istringstream words(last);
  for (std::string w; words >> w;) {
    size_t eq = w.find('=');
    if (eq != std::string::npos) m[w.substr(0, eq)] = w.substr(eq + 1);
  }
  return m;
}

std::string h2client(uint16_t port, const std::string& args) {
  return run(std::string(kPython) + " " + client_script() + " " + args.substr(0, args.find(' ')) + " " +
             std::to_string(port) + (args.find(' ') == std::string::npos ? "" : args.substr(args.find(' '))));
}

std::string curl_h2(uint16_t port, const std::string& extra) {
  return run("curl -sS --http2-prior-knowledge -o - -w '\\n%{http_version} %{http_code}' " + extra +
             " http://127.0.0.1:" + std::to_string(port));
}

std::string echo_site(const std::string& server_extra = "") {
  return "http2 = on\n" + server_extra + "\n[app:main]\nuse = egg:pasture#echo\nname = e\n";
}

TEST(Http2, CurlPriorKnowledgeAndHttp11OnTheSameListener) {
  FakeUpstream up("u1");
  up.echo_body();
  PastureServer srv("http2 = on\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  // GET over h2c.
  std::string out = curl_h2(srv.port(), "");
  EXPECT_NE(out.find("\n2 200"), std::string::npos) << out;
  // A body of unknown length (chunked upstream) and one of known length.
  out = run("head -c 300000 /dev/zero | tr '\\0' x | curl -sS --http2-prior-knowledge -T - -o /dev/null "
            "-w '%{http_version} %{http_code} %{size_download}' http://127.0.0.1:" +
            std::to_string(srv.port()) + "/up");
  EXPECT_EQ(out, "2 200 300000") << out;
  out = curl_h2(srv.port(), "-d hello -o /dev/null");
  EXPECT_NE(out.find("2 200"), std::string::npos) << out;
  ASSERT_TRUE(up.wait_for_requests(3));
  auto reqs = up.requests();
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].header("host"), "127.0.0.1:" + std::to_string(srv.port()));
  EXPECT_EQ(reqs[1].body.size(), 300000u);
  EXPECT_TRUE(reqs[1].chunked);
  EXPECT_EQ(reqs[2].body, "hello");
  EXPECT_FALSE(reqs[2].chunked);
  // HTTP/1.1 on the same listener.
  HttpConn c(srv.port());
  Response r = c.request("GET", "/one");
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
}

// The access log and a hosted app name the protocol the client spoke, as
// nginx does ("HTTP/2.0"), not the HTTP/1.1 head pasture builds inside.
TEST(Http2, AccessLogSaysHttp2) {
  TempDir dir;
  std::string log = dir.path() + "/access.log";
  PastureServer srv(echo_site("access_log = " + log + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_NE(curl_h2(srv.port(), "-o /dev/null").find("2 200"), std::string::npos);
  HttpConn c(srv.port());
  EXPECT_EQ(c.request("GET", "/one").status, 200);
  std::string text;
  ASSERT_TRUE(wait_until([&] {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
    return text.find("/one") != std::string::npos && text.find("\"GET / ") != std::string::npos;
  })) << text;
  EXPECT_NE(text.find("\"GET / HTTP/2.0\" 200 "), std::string::npos) << text;
  EXPECT_NE(text.find("\"GET /one HTTP/1.1\" 200 "), std::string::npos) << text;
}

// client_body_timeout holds for a stream as for an HTTP/1.1 request: a body
// that stops gets 408 (its upstream request is abandoned), and the other
// streams of the connection go on.
TEST(Http2, StalledRequestBodyTimesOut) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  FakeUpstream up("u1");
  up.echo_body();
  PastureServer srv("http2 = on\nclient_body_timeout = 2\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                        up.address() + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "stallbody"));
  EXPECT_EQ(f["status1"], "408") << srv.output();
  double took = std::stod(f.count("took") ? f["took"] : "0");
  EXPECT_GE(took, 1.5);
  EXPECT_LE(took, 6.0);
  EXPECT_EQ(f["ok3"], "1");
}

// A client's FIN ends the streams whose requests had not ended (they never
// will): their exchanges end and their server is free again at once, not
// at a timeout (found by review: held for good, a max_conns server out of
// service from one vanished connection).
TEST(Http2, ClientFinEndsUnfinishedStreams) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  FakeUpstream up("u1");
  PastureServer srv("http2 = on\nclient_body_timeout = 60\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                        up.address() + " max_conns=2\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "eofhold 2"));
  EXPECT_EQ(f["resets"], "2");
  EXPECT_EQ(f["eof"], "1");
  // Both of the server's two slots are free again.
  HttpConn a(srv.port()), b(srv.port());
  EXPECT_EQ(a.request("GET", "/after1").status, 200);
  EXPECT_EQ(b.request("GET", "/after2").status, 200);
}

// A header block left open (no CONTINUATION) blocks the whole connection:
// it is closed after client_header_timeout.
TEST(Http2, UnfinishedHeaderBlockTimesOut) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  PastureServer srv(echo_site("client_header_timeout = 1\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "openblock"));
  EXPECT_EQ(f["eof"], "1");
  double took = std::stod(f.count("took") ? f["took"] : "99");
  EXPECT_LE(took, 4.0);
}

// Answers without a body need no window: an empty file, an upstream's
// Content-Length: 0 and an empty chunked answer all end (HEADERS with
// END_STREAM) for a client whose window is 0 (found by review: an empty DATA
// frame waited for a window never opened, and no timer ended the stream).
TEST(Http2, EmptyAnswersEndUnderAShutWindow) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  FakeUpstream zero("zero"), chunked("chunked");
  zero.respond_pattern(0);
  chunked.respond_pattern(0, true);
  TempDir dir("pasture-h2empty");
  mkdir((dir.path() + "/www").c_str(), 0755);
  dir.write("www/empty.txt", "");
  PastureServer srv("http2 = on\nsend_timeout = 30\n\n[composite:main]\nuse = egg:Paste#urlmap\n/s = files\n/z = z\n"
                    "/c = c\n\n[app:files]\nuse = egg:pasture#static\ndocument_root = " + dir.path() + "/www\n\n"
                    "[app:z]\nuse = egg:pasture#balancer\nservers = " + zero.address() + "\n\n"
                    "[app:c]\nuse = egg:pasture#balancer\nservers = " + chunked.address() + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "emptyzero /s/empty.txt /z/x /c/x"));
  EXPECT_EQ(f["ended"], "3") << srv.output();
  EXPECT_EQ(f["resets"], "0");
}

// A tunnel (RFC 8441) whose client never opens its window: after the
// upstream sent its bytes and left, the stream is reset at send_timeout
// (found by review: held for good, the connection too).
TEST(Http2, TunnelStalledByItsWindowIsResetAtSendTimeout) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  FakeUpstream up("ws");
  up.respond_raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" +
                     std::string(100000, 'w'),
                 true);
  PastureServer srv("http2 = on\nsend_timeout = 2\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                        up.address() + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "tunnelstall /chat"));
  EXPECT_EQ(f["status"], "200") << srv.output();
  EXPECT_EQ(f["rst"], "1");
  double took = std::stod(f.count("took") ? f["took"] : "99");
  EXPECT_LE(took, 8.0);
}

// After the client's FIN no WINDOW_UPDATE can come: a stream whose answer
// waits for its window is reset at once and the connection ends, rather
// than holding its buffers and upstream until send_timeout (review 18 F3).
TEST(Http2, WindowStalledStreamsEndAtTheClientsFin) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  FakeUpstream up("u1");
  up.respond_pattern(300000);
  PastureServer srv("http2 = on\nsend_timeout = 30\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                        up.address() + " max_conns=2\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "zerowinfin 2"));
  EXPECT_EQ(f["heads"], "2") << srv.output();
  EXPECT_EQ(f["resets"], "2");
  EXPECT_EQ(f["eof"], "1");
  double took = std::stod(f.count("took") ? f["took"] : "99");
  EXPECT_LE(took, 3.0);
  // The server's two slots are free again.
  HttpConn a(srv.port()), b(srv.port());
  EXPECT_EQ(a.request("GET", "/after1").status, 200);
  EXPECT_EQ(b.request("GET", "/after2").status, 200);
}

// send_timeout holds for a stream whose client never opens its window
// (nothing is queued on the socket then): the stream is reset and its
// upstream and server are free again (found by review: held for good).
TEST(Http2, StreamStalledByItsWindowIsResetAtSendTimeout) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  FakeUpstream up("u1");
  up.respond_pattern(300000);
  PastureServer srv("http2 = on\nsend_timeout = 2\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                        up.address() + " max_conns=2\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "zerowin 2 10"));
  EXPECT_EQ(f["heads"], "2") << srv.output();
  EXPECT_EQ(f["resets"], "2");
  double took = std::stod(f.count("took") ? f["took"] : "99");
  EXPECT_GE(took, 1.0);
  EXPECT_LE(took, 6.0);
  HttpConn a(srv.port()), b(srv.port());
  EXPECT_EQ(a.request("GET", "/after1").status, 200);
  EXPECT_EQ(b.request("GET", "/after2").status, 200);
}

// client_max_body_size holds for a body without content-length (found by
// review: any size reached the upstream): 413, and nothing past the limit
// is forwarded.
TEST(Http2, BodyOverTheLimitWithoutLengthIs413) {
  FakeUpstream up("u1");
  up.echo_body();
  PastureServer srv("http2 = on\nclient_max_body_size = 10k\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                        up.address() + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  EXPECT_EQ(fields(h2client(srv.port(), "post /big 100000"))["status"], "413") << srv.output();
  EXPECT_EQ(fields(h2client(srv.port(), "post /small 5000"))["status"], "200");
  for (const auto& r : up.requests()) EXPECT_LE(r.body.size(), 10240u) << r.target;
}

// A request head goes upstream when its HEADERS arrive, also over a reused
// upstream connection (found by review: it waited for the first DATA, so
// `Expect: 100-continue` stalled until the client's own timeout).
TEST(Http2, ExpectContinueOverAReusedUpstreamConnection) {
  FakeUpstream up("u1");
  up.echo_body();
  PastureServer srv("http2 = on\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 3; i++) {
    std::string out = run("head -c 2000 /dev/zero | curl -sS --http2-prior-knowledge -H 'Expect: 100-continue' "
                          "--expect100-timeout 6 --data-binary @- -o /dev/null -w '%{http_code} %{time_total}' "
                          "http://127.0.0.1:" + std::to_string(srv.port()) + "/e" + std::to_string(i));
    EXPECT_EQ(out.substr(0, 4), "200 ") << out;
    EXPECT_LT(std::stod(out.size() > 4 ? out.substr(4) : "99"), 3.0) << i << ": " << out;
  }
  EXPECT_EQ(up.connections_accepted(), 1u);
}

// An idle HTTP/2 connection does not keep the buffers of the large answer it
// carried (found by review: ~100 KiB each). nghttp2's own session stays
// (~20 KiB); 200 connections after a 300 KB answer each.
TEST(Http2, IdleConnectionKeepsNoLargeBuffers) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  FakeUpstream up("u1");
  up.respond_pattern(300000);
  PastureServer srv("http2 = on\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "idle 200 /big " + std::to_string(srv.proc().pid())));
  ASSERT_EQ(f["held"], "200");
  EXPECT_LT(std::stod(f.count("per_conn_kib") ? f["per_conn_kib"] : "999"), 45.0);
}

// Streams the server has to reset for the client's protocol errors count
// as the client's resets ("MadeYouReset", CVE-2025-8671; found by review:
// uncounted, each one a balancer pick and an upstream connection).
TEST(Http2, ServerResetsTheClientProvokesCountAsResets) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  FakeUpstream up("u1");
  PastureServer srv("http2 = on\nhttp2_max_resets = 20\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                        up.address() + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "madereset 90"));
  EXPECT_EQ(f["goaway"], "11") << "ENHANCE_YOUR_CALM expected; resets " << f["resets"];
  f = fields(h2client(srv.port(), "madereset 10"));  // under the limit: no GOAWAY
  EXPECT_EQ(f["goaway"], "-1");
}

// A host field naming another host than :authority is malformed (RFC 9113
// 8.3.1), not silently overridden; the same host (any case) is fine.
TEST(Http2, HostDifferentFromAuthorityIs400) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  PastureServer srv(echo_site(), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_EQ(fields(h2client(srv.port(), "hostmismatch evil"))["status"], "400");
  EXPECT_EQ(fields(h2client(srv.port(), "hostmismatch GOOD"))["status"], "200");
}

// The 408 of a stalled stream (and any pasture answer before the request's
// end) lets go of the upstream connection still waiting for the body
// (found by review: it was kept, pointing at the freed exchange, and the
// worker crashed when the upstream finally answered).
TEST(Http2, AnswerBeforeTheBodysEndDropsTheUpstream) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 missing";
  std::atomic<int> closed{0};
  RawUpstream up([&](RawUpstream::Conn& c) {
    if (!c.read_until("\r\n\r\n")) return;
    if (c.got.compare(0, 5, "POST ") != 0) {  // the other requests
      c.send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
      return;
    }
    if (c.eof(Millis(4000))) {
      closed = 1;
      return;
    }
    closed = 2;  // still open: answer late, as an upstream whose own body timeout ran out
    c.send("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  PastureServer srv("http2 = on\nclient_body_timeout = 1\n\n[app:main]\nuse = egg:pasture#balancer\nservers = "
                    "127.0.0.1:" + std::to_string(up.port()) + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "stallbody"));
  EXPECT_EQ(f["status1"], "408");
  EXPECT_TRUE(wait_until([&] { return closed.load() != 0; }, Millis(8000)));
  EXPECT_EQ(closed.load(), 1) << "the upstream connection outlived the 408";
  std::this_thread::sleep_for(Millis(300));
  EXPECT_EQ(srv.output().find("killed by signal"), std::string::npos) << srv.output();
  EXPECT_NE(curl_h2(srv.port(), "-o /dev/null").find("2 "), std::string::npos);
}

TEST(Http2, ListenMarkH2cOnlyThere) {
  uint16_t other = free_port();
  TempDir dir;
  uint16_t h2port = free_port();
  std::string ini = "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(h2port) +
                    " h2c 127.0.0.1:" + std::to_string(other) +
                    "\nworkers = 1\n\n[app:main]\nuse = egg:pasture#echo\nname = e\n";
  Process p({PASTURE_BINARY, "serve", dir.write("site.ini", ini)});
  ASSERT_TRUE(wait_for_output(p, "serving on") && wait_for_port(h2port) && wait_for_port(other)) << p.output();
  EXPECT_NE(curl_h2(h2port, "").find("\n2 200"), std::string::npos);
  // Not h2c there: the preface is a bad HTTP/1.1 request.
  std::string out = curl_h2(other, "");
  EXPECT_EQ(out.find("\n2 200"), std::string::npos) << out;
  std::string check = run(std::string(PASTURE_BINARY) + " check " + dir.path() + "/site.ini");
  EXPECT_NE(check.find("HTTP/2 by prior knowledge (h2c)"), std::string::npos) << check;
}

TEST(Http2, H2loadManyStreams) {
  if (access("/usr/bin/h2load", X_OK) != 0) GTEST_SKIP() << "nghttp2-client is not installed (scripts/setup --test)";
  FakeUpstream up("u1");
  PastureServer srv("http2 = on\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n", 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::string out = run("h2load -n 4000 -c 8 -m 20 http://127.0.0.1:" + std::to_string(srv.port()) + "/x");
  EXPECT_NE(out.find("4000 total, 4000 started, 4000 done, 4000 succeeded, 0 failed, 0 errored"),
            std::string::npos)
      << out;
  EXPECT_EQ(up.request_count(), 4000u);
  EXPECT_LE(up.connections_accepted(), 2u * 8u * 20u);  // streams share the keep-alive pool
}

TEST(Http2, ResponseFlowControlLargeBodies) {
  FakeUpstream up("u1");
  up.respond_pattern(1024 * 1024);
  PastureServer srv("http2 = on\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 is not installed (scripts/setup --test)";
  // Four 1 MB bodies at once through 64 KB windows.
  auto f = fields(h2client(srv.port(), "get /big 4"));
  EXPECT_EQ(f["ok"], "4");
  std::string out = curl_h2(srv.port(), "-o /dev/null -w '%{size_download}'");
  EXPECT_NE(out.find(std::to_string(1024 * 1024)), std::string::npos) << out;
}

// A Prometheus sample's value from the status app ("" if absent).
std::string metric(uint16_t port, const std::string& name) {
  Response r = http_get(port, "/status/metrics");
  size_t at = r.body.find("\n" + name + " ");
  if (at == std::string::npos) return "";
  at += name.size() + 2;
  return r.body.substr(at, r.body.find('\n', at) - at);
}

TEST(Http2, RapidResetEndsTheConnectionCalmly) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 is not installed (scripts/setup --test)";
  PastureServer srv("http2 = on\nhttp2_max_resets = 100\n\n[composite:main]\nuse = egg:Paste#urlmap\n/ = e\n"
                    "/status = stat\n\n[app:stat]\nuse = egg:pasture#status\n\n[app:e]\nuse = egg:pasture#echo\n"
                    "name = e\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "rapid 1000"));
  EXPECT_EQ(f["goaway"], "11") << "ENHANCE_YOUR_CALM expected";  // RFC 9113 7
  // Well under the limit: served.
  f = fields(h2client(srv.port(), "rapid 50"));
  EXPECT_EQ(f["goaway"], "-1");
  EXPECT_NE(curl_h2(srv.port(), "").find("\n2 200"), std::string::npos);
  EXPECT_TRUE(wait_until([&] { return metric(srv.port(), "pasture_http2_abuse_total") == "1"; }))
      << metric(srv.port(), "pasture_http2_abuse_total");
  EXPECT_EQ(metric(srv.port(), "pasture_http2_connections_total"), "3");
  EXPECT_GE(std::stoi("0" + metric(srv.port(), "pasture_http2_streams_total")), 150);
}

TEST(Http2, ContinuationFloodIsRefused) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 is not installed (scripts/setup --test)";
  PastureServer srv(echo_site(), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "continuation 10000"));
  EXPECT_TRUE(f["goaway"] != "-1" || f["eof"] == "1") << "connection not ended";
  EXPECT_NE(curl_h2(srv.port(), "").find("\n2 200"), std::string::npos);
}

TEST(Http2, HpackBombIsRefused) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 is not installed (scripts/setup --test)";
  PastureServer srv(echo_site(), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  // 10000 one-byte references to a 4000-byte entry: 40 MB decoded from 14 KB.
  auto f = fields(h2client(srv.port(), "bomb 10000"));
  EXPECT_EQ(f["goaway"], "11") << "ENHANCE_YOUR_CALM expected";
  // A header list over max_header_bytes but not a bomb: 431 on that stream only.
  f = fields(h2client(srv.port(), "bomb 9"));
  EXPECT_EQ(f["goaway"], "-1");
  EXPECT_EQ(f["answered"], "1");
}

TEST(Http2, TooManyStreamsAreRefused) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 is not installed (scripts/setup --test)";
  FakeUpstream up("u1");
  up.set_delay(Millis(500));
  PastureServer srv("http2 = on\nhttp2_max_concurrent_streams = 20\n\n[app:main]\nuse = egg:pasture#balancer\n"
                    "servers = " + up.address() + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "streams 60"));
  // The first 20 are answered; the rest refused (REFUSED_STREAM, 7) or the
  // connection ended (PROTOCOL_ERROR once the client had the SETTINGS).
  EXPECT_GE(std::stoi(f["answered"]), 20);
  EXPECT_LE(std::stoi(f["answered"]), 20) << "more streams served at once than allowed";
  EXPECT_TRUE(f["refused"] != "0" || f["goaway"] != "-1");
  EXPECT_LE(up.request_count(), 20u);
}

TEST(Http2, ForbiddenFieldResetsOnlyItsStream) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 is not installed (scripts/setup --test)";
  PastureServer srv(echo_site(), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "uppercase"));
  EXPECT_EQ(f["rst1"], "1") << "PROTOCOL_ERROR expected on the stream with an upper-case name";
  EXPECT_EQ(f["ok3"], "1");
  // Connection-specific fields (RFC 9113 8.2.2): refused by curl's peer as well.
  std::string out = curl_h2(srv.port(), "-H 'Connection: keep-alive' -H 'TE: gzip'");
  EXPECT_NE(out.find("\n2 200"), std::string::npos) << out;  // curl drops them itself
}

// Found by review: with `:scheme foo` nghttp2 does not check `:path`, and an
// absolute-form one became an HTTP/1.1 absolute-form target whose host won
// over `:authority` upstream. Only origin-form (or `*`) is taken.
TEST(Http2, AbsoluteFormPathIsRefused) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 is not installed (scripts/setup --test)";
  FakeUpstream up("u");
  PastureServer srv("http2 = on\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto f = fields(h2client(srv.port(), "abspath"));
  EXPECT_EQ(f["status1"], "400");
  EXPECT_EQ(f["ok3"], "1");
  for (const RecordedRequest& r : up.requests()) {
    EXPECT_EQ(r.header("host"), "localhost") << r.target;
    EXPECT_EQ(r.target, "/fine");
  }
  EXPECT_EQ(up.request_count(), 1u);
}

TEST(Http2, GoawayOnReloadFailsNoRequest) {
  if (!have_python_h2()) GTEST_SKIP() << "python3-h2 is not installed (scripts/setup --test)";
  FakeUpstream up("u1");
  up.set_delay(Millis(150));
  PastureServer srv("http2 = on\ndrain_idle_grace = 1s\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                        up.address() + "\n",
                    2);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::string out;
  std::thread client([&] { out = h2client(srv.port(), "load 4 10"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  srv.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(srv.proc(), "reloaded: generation 2")) << srv.output();
  client.join();
  auto f = fields(out);
  EXPECT_EQ(f["failed"], "0") << out;
  EXPECT_GE(std::stoi(f["goaways"]), 1) << out;
  EXPECT_GE(std::stoi(f["connections"]), 2) << out;
  EXPECT_GT(std::stoi(f["ok"]), 50) << out;
}

}  // namespace
}  // namespace pasture::test
