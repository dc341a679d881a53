// Embedded-mode WSGI: what an independent review of worker/wsgi/ found,
// each case seen failing before its fix. The app is
// tests/wsgi/pasture_embedapp (routes listed there).
#include <signal.h>

#include <cstdio>
#include <fstream>

#include "tests/integration/embed_site.h"

namespace pasture::test {
namespace {

class WsgiEmbeddedReview : public ::testing::TestWithParam<int> {};

INSTANTIATE_TEST_SUITE_P(Threads, WsgiEmbeddedReview, ::testing::Values(1, 4),
                         [](const ::testing::TestParamInfo<int>& p) { return "threads" + std::to_string(p.param); });

// write() then a list, or then [] (the old write()-only style): the body is
// everything written and returned, framed so the next answer on the
// connection is the next request's (a Content-Length computed from the
// list alone once cut the body short, sent worker memory, or let written
// bytes pass for the start of the next response).
TEST_P(WsgiEmbeddedReview, WriteThenAListOrNothingKeepsTheFraming) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  int pid = site.worker_pid();
  struct Case {
    std::string target, body;
  };
  for (const Case& k : {Case{"/write_then?w=100&l=10", std::string(100, 'A') + std::string(10, 'B')},
                        Case{"/write_then?w=40&l=0", std::string(40, 'A')},
                        Case{"/write_then?w=8&l=9", std::string(8, 'A') + std::string(9, 'B')},
                        Case{"/write_then?w=7&l=3&cl=10", "AAAAAAABBB"}}) {
    SCOPED_TRACE(k.target);
    RawConn c(site.port());
    c.send("GET " + k.target + kGet + "GET /text" + kGet);
    ASSERT_TRUE(c.read_until("hello\n")) << brief(c.got);
    std::string first = c.got.substr(0, c.got.find("HTTP/1.1 200", 5));
    size_t body_at = first.find("\r\n\r\n") + 4;
    std::string body = first.substr(body_at);
    if (head_has(first.substr(0, body_at), "transfer-encoding: chunked")) body = dechunk(body);
    EXPECT_EQ(body, k.body) << brief(c.got);
    EXPECT_EQ(count_of(c.got, "HTTP/1.1 200"), 2u) << brief(c.got);
  }
  EXPECT_EQ(site.worker_pid(), pid) << "the worker died:\n" << site.log();
}

// A file_wrapper after write() under a Content-Length: the file adds only
// what the length has room for (the rest once went out ahead of the next
// response).
TEST_P(WsgiEmbeddedReview, FileWrapperAfterWriteStopsAtContentLength) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  std::string f = site.rec().write("inject.txt", "HTTP/1.1 200 OK\r\nX-Injected: yes\r\n\r\n");
  RawConn c(site.port());
  c.send("GET /write_file?path=" + f + kGet + "GET /text" + kGet);
  ASSERT_TRUE(c.read_until("hello\n")) << brief(c.got);
  EXPECT_EQ(c.got.find("X-Injected"), kNpos) << brief(c.got);
  EXPECT_NE(c.got.find("\r\n\r\n0123456789HTTP/1.1 200 OK\r\n"), kNpos) << brief(c.got);
}

// write() from a thread of the app's other than the one running the call
// raises (it would reach the connection from outside the event loop: a
// libuv assertion, or a loop stuck in a condition variable).
TEST_P(WsgiEmbeddedReview, WriteFromAnotherThreadIsRefused) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  int pid = site.worker_pid();
  Response r = http_get(site.port(), "/bgwrite");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "ok");
  EXPECT_TRUE(site.wait_record("bgwrite", "RuntimeError")) << site.record("bgwrite");
  EXPECT_EQ(site.worker_pid(), pid);
}

// The status line is checked like a header value: no control bytes.
TEST_P(WsgiEmbeddedReview, StatusWithAControlByteIs500) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  RawConn c(site.port());
  c.send("GET /ctl_status" + kGet);
  ASSERT_TRUE(c.read_until("\r\n\r\n")) << brief(c.got);
  EXPECT_EQ(c.got.rfind("HTTP/1.1 500 ", 0), 0u) << brief(c.got);
  EXPECT_EQ(c.got.find('\0'), kNpos);
}

// "Connection: Close" closes, whatever the case.
TEST_P(WsgiEmbeddedReview, ConnectionCloseInAnyCaseCloses) {
  EmbedSite site(GetParam());
  ASSERT_TRUE(site.started()) << site.log();
  RawConn c(site.port());
  c.send("GET /conn_Close" + kGet);
  ASSERT_TRUE(c.read_until("bye\n")) << brief(c.got);
  EXPECT_TRUE(head_has(c.got, "connection: close")) << brief(c.got);
  EXPECT_TRUE(c.closed_within(Millis(2000)));
}

// A worker that exits runs the app's atexit handlers, as a gunicorn or
// paster process does when it ends.
TEST(WsgiEmbeddedReviewLifecycle, AtexitHandlersRunWhenWorkersExit) {
  EmbedSite site(1, 2);
  ASSERT_TRUE(site.started()) << site.log();
  ASSERT_TRUE(site.proc().signal(SIGTERM));
  ASSERT_TRUE(site.proc().wait_exit(Millis(10000)).has_value()) << site.log();
  std::string lines = site.record("atexit");
  EXPECT_EQ(count_of(lines, "\n"), 2u) << lines << site.log();
}

// The write-ahead cap of an inline app's write() (16 MiB) is the whole
// connection's: HTTP/2 streams share it (found by review: per stream, one
// connection of 100 streams held 100 x 16 MiB). Four 6 MiB answers on one
// connection whose client opens no window: a stream is reset long before
// send_timeout.
TEST(WsgiEmbeddedReviewH2, WriteAheadCapIsPerConnection) {
  if (system("/usr/bin/python3 -c 'import hpack' >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3-hpack missing";
  EmbedSite site(1, 1, "http2 = on\nsend_timeout = 60");
  ASSERT_TRUE(site.started()) << site.log();
  std::string cmd = "/usr/bin/python3 " + std::string(PASTURE_SOURCE_DIR) + "/tests/integration/h2/h2client.py zerowin " +
                    std::to_string(site.port()) + " 4 5 '/write_big?size=6291456' 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (f && (n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  if (f) pclose(f);
  size_t r = out.find("resets=");
  ASSERT_NE(r, kNpos) << out;
  EXPECT_GE(atoi(out.c_str() + r + 7), 1) << out;
  EXPECT_NE(site.log().find("ahead of its client"), kNpos) << site.log();
}

// An app that sets SIGPIPE back to SIG_DFL at import does not turn a client
// that goes away mid-answer into a dead worker: the worker ignores SIGPIPE
// again once the app is loaded (review 28).
TEST_P(WsgiEmbeddedReview, AnAppResettingSigpipeDoesNotExposeTheWorker) {
  EmbedSite site(GetParam(), 1, "", {{"EMBEDAPP_SIGPIPE_DFL", "1"}});
  ASSERT_TRUE(site.started()) << site.log();
  int pid = site.worker_pid();
  ASSERT_GT(pid, 0);
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  unsigned long long ign = 0;
  for (std::string line; std::getline(st, line);)
    if (line.rfind("SigIgn:", 0) == 0) ign = std::stoull(line.substr(7), nullptr, 16);
  EXPECT_NE(ign & (1ull << (SIGPIPE - 1)), 0u) << std::hex << ign;
  EXPECT_NE(site.log().find("pasture ignores SIGPIPE again"), kNpos) << site.log();
  for (int i = 0; i < 5; i++) {  // 8 MiB answers, the client gone after the first bytes
    RawConn c(site.port());
    c.send("GET /big?size=8388608" + kGet);
    ASSERT_TRUE(c.read_until("\r\n\r\n")) << brief(c.got);
  }
  EXPECT_EQ(site.worker_pid(), pid) << site.log();
}

}  // namespace
}  // namespace pasture::test
