// Limits an operator sets, over real sockets: client_max_body_size (413
// before the body, also instead of 100 Continue), expectations pasture
// cannot meet (417), max_connections (accept pauses, resumes when one
// closes, no busy loop), and the descriptor limit the master raises.
#include <sys/resource.h>

#include <fstream>
#include <sstream>

#include "tests/integration/raw_http.h"

namespace pasture::test {
namespace {

const std::string kPost = "POST /p HTTP/1.1\r\nHost: x\r\n";

// utime + stime of `pid` in clock ticks, -1 if unreadable.
long cpu_ticks(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream in(s.substr(rp + 2));
  std::string field;
  long ut = 0, st = 0;
  for (int i = 3; in >> field; i++) {
    if (i == 14) ut = atol(field.c_str());
    if (i == 15) {
      st = atol(field.c_str());
      return ut + st;
    }
  }
  return -1;
}

// "Max open files" soft and hard limits of `pid`, from /proc/PID/limits.
std::pair<std::string, std::string> nofile_limits(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/limits");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream in(line.substr(14));
    std::string soft, hard;
    in >> soft >> hard;
    return {soft, hard};
  }
  return {};
}

TEST(Limits, ContentLengthPastClientMaxBodySizeIs413BeforeAnyBodyByte) {
  FakeUpstream up("u");
  up.echo_body();
  PastureServer srv(balancer(up.port(), "client_max_body_size = 1k\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  // The head alone: the answer comes without a body byte sent, and closes.
  Exchange ex = exchange(srv.port(), kPost + "Content-Length: 1025\r\n\r\n");
  EXPECT_EQ(ex.status(), 413) << ex.bytes;
  EXPECT_NE(ex.bytes.find("Connection: close"), std::string::npos) << ex.bytes;
  EXPECT_TRUE(ex.closed);
  EXPECT_EQ(up.request_count(), 0u);
  // At the limit: forwarded whole.
  ex = exchange(srv.port(), kPost + "Content-Length: 1024\r\n\r\n" + std::string(1024, 'b'));
  EXPECT_EQ(ex.status(), 200) << ex.bytes;
  EXPECT_EQ(ex.body(), std::string(1024, 'b'));
  ASSERT_EQ(up.request_count(), 1u);
}

TEST(Limits, ExpectContinueGets413InsteadOf100WhenTheBodyIsTooLarge) {
  FakeUpstream up("u");
  up.echo_body();
  up.set_auto_continue(true);
  PastureServer srv(balancer(up.port(), "client_max_body_size = 100\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Exchange ex = exchange(srv.port(), kPost + "Expect: 100-continue\r\nContent-Length: 101\r\n\r\n");
  EXPECT_EQ(ex.status(), 413) << ex.bytes;
  EXPECT_EQ(ex.bytes.find("100 Continue"), std::string::npos) << ex.bytes;
  EXPECT_TRUE(ex.closed);
  // Within the limit the client is told to go on, and its body arrives.
  Fd fd = connect_loopback(srv.port());
  send_all(fd.get(), kPost + "Expect: 100-continue\r\nContent-Length: 100\r\n\r\n");
  Exchange first;
  drain(fd.get(), first, Millis(400));
  EXPECT_EQ(first.status(), 100) << first.bytes;
  send_all(fd.get(), std::string(100, 'c'));
  Exchange rest;
  drain(fd.get(), rest, Millis(400));
  EXPECT_NE(rest.bytes.find("HTTP/1.1 200"), std::string::npos) << rest.bytes;
  EXPECT_EQ(up.request_count(), 1u);
}

TEST(Limits, ChunkedBodyPastTheLimitIs413AndNoWholeRequestReachesTheUpstream) {
  RawUpstream up([](RawUpstream::Conn& c) {
    c.read_until("0\r\n\r\n", Millis(3000));  // a complete body never comes
    c.eof();
  });
  PastureServer srv(balancer(up.port(), "client_max_body_size = 1000\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::string chunk = "258\r\n" + std::string(600, 'd') + "\r\n";  // 0x258 = 600
  // The first chunk streams to the upstream; the second passes the limit.
  Fd fd = connect_loopback(srv.port());
  send_all(fd.get(), kPost + "Transfer-Encoding: chunked\r\n\r\n" + chunk);
  std::this_thread::sleep_for(Millis(300));
  send_all(fd.get(), chunk + "0\r\n\r\n");
  Exchange ex;
  drain(fd.get(), ex, Millis(1000));
  EXPECT_EQ(ex.status(), 413) << ex.bytes;
  EXPECT_TRUE(ex.closed);
  ASSERT_TRUE(up.wait_scripts(1));
  std::string got = up.received(0);
  EXPECT_EQ(got.find("0\r\n\r\n"), std::string::npos) << "the upstream got a terminated body";
  size_t body = got.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos) << got;
  EXPECT_EQ(got.substr(body + 4), chunk) << "nothing past the limit is forwarded";
}

TEST(Limits, EveryHandlerHonoursTheBodyLimit) {
  PastureServer srv("client_max_body_size = 10\n\n[app:main]\nuse = egg:pasture#echo\nname = e\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_EQ(exchange(srv.port(), kPost + "Content-Length: 11\r\n\r\n0123456789a").status(), 413);
  EXPECT_EQ(exchange(srv.port(), kPost + "Content-Length: 10\r\n\r\n0123456789").status(), 200);
  EXPECT_EQ(exchange(srv.port(), kPost + "Transfer-Encoding: chunked\r\n\r\nb\r\n0123456789a\r\n0\r\n\r\n").status(),
            413);
}

TEST(Limits, AnExpectationOtherThan100ContinueIs417) {
  FakeUpstream up("u");
  PastureServer srv(balancer(up.port()), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Exchange ex = exchange(srv.port(), "GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n");
  EXPECT_EQ(ex.status(), 417) << ex.bytes;
  EXPECT_NE(ex.bytes.find("Expectation Failed"), std::string::npos) << ex.bytes;
  ex = exchange(srv.port(), "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue, teapot\r\n\r\n");
  EXPECT_EQ(ex.status(), 417) << ex.bytes;
  EXPECT_EQ(up.request_count(), 0u);
  // HTTP/1.0 has no expectations (RFC 9110 10.1.1): ignored, as nginx does.
  ex = exchange(srv.port(), "GET / HTTP/1.0\r\nHost: x\r\nExpect: teapot\r\n\r\n");
  EXPECT_EQ(ex.status(), 200) << ex.bytes;
  EXPECT_EQ(up.request_count(), 1u);
}

TEST(Limits, MaxConnectionsPausesAcceptWithoutSpinningAndResumes) {
  PastureServer srv("max_connections = 4\n\n[app:main]\nuse = egg:pasture#echo\nname = e\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto pids = srv.worker_pids();
  ASSERT_EQ(pids.size(), 1u) << srv.output();
  std::vector<Fd> held;
  for (int i = 0; i < 4; i++) {
    held.push_back(connect_loopback(srv.port()));
    send_all(held.back().get(), "GET /k HTTP/1.1\r\nHost: x\r\n\r\n");
    Exchange ex;
    drain(held.back().get(), ex, Millis(300));
    ASSERT_EQ(ex.status(), 200) << i << ": " << ex.bytes;
  }
  // The fifth waits in the listen queue: connected, but nobody reads it.
  Fd fifth = connect_loopback(srv.port());
  ASSERT_TRUE(fifth.valid());
  send_all(fifth.get(), "GET /5 HTTP/1.1\r\nHost: x\r\n\r\n");
  long before = cpu_ticks(pids[0]);
  Exchange waiting;
  drain(fifth.get(), waiting, Millis(1500));
  long after = cpu_ticks(pids[0]);
  EXPECT_EQ(waiting.bytes, "") << "answered past max_connections";
  EXPECT_TRUE(wait_for_output(srv.proc(), "max_connections (4) reached")) << srv.output();
  EXPECT_LT(after - before, 30) << "the worker spun while full (" << after - before << " ticks in 1.5 s)";
  // One closes: the fifth is accepted and answered.
  held.erase(held.begin());
  Exchange ex;
  drain(fifth.get(), ex, Millis(1500));
  EXPECT_EQ(ex.status(), 200) << ex.bytes;
  EXPECT_NE(ex.bytes.find("e GET /5"), std::string::npos) << ex.bytes;
}

TEST(Limits, TheMasterRaisesTheDescriptorSoftLimitToTheHardOne) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= 256) GTEST_SKIP() << "hard limit " << rl.rlim_max;
  TempDir dir;
  uint16_t port = free_port();
  std::string ini = dir.write("site.ini", "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " +
                                              std::to_string(port) +
                                              "\nworkers = 1\n\n[app:main]\nuse = egg:pasture#echo\n");
  Process p({"/bin/sh", "-c", "ulimit -Sn 256 && exec \"$0\" serve \"$1\"", PASTURE_BINARY, ini});
  ASSERT_TRUE(wait_for_output(p, "serving on")) << p.output();
  std::string out = p.output();
  size_t at = out.find("started, pid ");
  ASSERT_NE(at, std::string::npos) << out;
  int worker = atoi(out.c_str() + at + 13);
  auto [soft, hard] = nofile_limits(worker);
  std::string want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1u << 20) ? std::to_string(1u << 20)
                                                                               : std::to_string(rl.rlim_max);
  EXPECT_EQ(soft, want) << "hard " << hard;
  EXPECT_EQ(nofile_limits(p.pid()).first, want);
}

}  // namespace
}  // namespace pasture::test
