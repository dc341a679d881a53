// Tests of tests/support against itself: FakeUpstream + HttpConn over real
// loopback sockets, Process, TempDir and free_port.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/upstream.h"

namespace pasture::test {
namespace {

TEST(SupportUpstream, DefaultReplyAndLog) {
  FakeUpstream up("alpha");
  ASSERT_NE(up.port(), 0);
  Response r = http_get(up.port(), "/hello?x=1", {{"X-Test", "yes"}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.reason, "OK");
  EXPECT_EQ(r.header("x-upstream"), "alpha");
  EXPECT_EQ(r.body, "alpha GET /hello?x=1\n");
  EXPECT_FALSE(r.keep_alive);  // we sent Connection: close

  ASSERT_EQ(up.request_count(), 1u);
  RecordedRequest req = up.requests()[0];
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.target, "/hello?x=1");
  EXPECT_EQ(req.header("X-TEST"), "yes");
  EXPECT_EQ(req.header("host"), "127.0.0.1:" + std::to_string(up.port()));
  EXPECT_EQ(req.headers[0].first, "Host");  // wire order kept
  EXPECT_EQ(req.conn_id, 1u);
  EXPECT_EQ(up.connections_accepted(), 1u);
  up.clear();
  EXPECT_EQ(up.request_count(), 0u);
}

TEST(SupportUpstream, KeepAliveReusesOneConnection) {
  FakeUpstream up("ka");
  HttpConn c(up.port());
  ASSERT_TRUE(c.connected()) << c.error();
  for (int i = 0; i < 3; ++i) {
    Response r = c.request("GET", "/" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_TRUE(r.keep_alive);
    EXPECT_EQ(r.body, "ka GET /" + std::to_string(i) + "\n");
  }
  EXPECT_FALSE(c.closed());
  EXPECT_EQ(up.connections_accepted(), 1u);
  auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].conn_id, reqs[2].conn_id);
  EXPECT_EQ(up.open_connections(), 1u);
}

TEST(SupportUpstream, PipelinedRequestsAnsweredInOrder) {
  FakeUpstream up("pipe");
  HttpConn c(up.port());
  ASSERT_TRUE(
      c.send_raw("GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
  Response a = c.read_response();
  Response b = c.read_response();
  ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
  EXPECT_EQ(a.body, "pipe GET /one\n");
  EXPECT_EQ(b.body, "pipe POST /two\n");
  ASSERT_EQ(up.request_count(), 2u);
  EXPECT_EQ(up.requests()[1].body, "abc");
}

TEST(SupportUpstream, ChunkedBothWays) {
  FakeUpstream up("ch");
  up.echo_body(/*chunked=*/true);
  HttpConn c(up.port());
  std::string body = pattern_bytes(40000);  // several 16 KiB chunks
  Response r = c.request("POST", "/echo", {}, body, /*chunked=*/true);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.header("Transfer-Encoding"), "chunked");
  EXPECT_EQ(r.body, body);
  RecordedRequest req = up.requests().at(0);
  EXPECT_TRUE(req.chunked);
  EXPECT_EQ(req.body, body);
  // Same connection still usable after chunked framing.
  up.reset_handler();
  EXPECT_EQ(c.request("GET", "/after").body, "ch GET /after\n");
}

TEST(SupportUpstream, FiveMegabyteBodies) {
  constexpr size_t kSize = 5 * 1024 * 1024;
  FakeUpstream up("big");
  up.echo_body();
  HttpConn c(up.port());
  Response r = c.request_pattern("PUT", "/big", kSize);
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.body.size(), kSize);
  EXPECT_EQ(pattern_mismatch(r.body), std::string_view::npos);

  up.respond_pattern(kSize, /*chunked=*/true);
  r = c.request("GET", "/big");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.body.size(), kSize);
  EXPECT_TRUE(check_pattern(r.body));
  EXPECT_FALSE(check_pattern(r.body.substr(1)));
}

TEST(SupportUpstream, HeadHasNoBody) {
  FakeUpstream up("h");
  HttpConn c(up.port());
  Response r = c.request("HEAD", "/x");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.header("Content-Length"), "10");  // length of "h HEAD /x\n", not sent
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(c.request("GET", "/y").body, "h GET /y\n");
}

TEST(SupportUpstream, AnswerThenCloseAndCloseWithoutAnswer) {
  FakeUpstream up("cl");
  up.answer_then_close();
  HttpConn c(up.port());
  Response r = c.request("GET", "/");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_FALSE(r.keep_alive);
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(c.closed(Millis{2000}));

  up.close_without_answer();
  HttpConn c2(up.port());
  r = c2.request("GET", "/");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(up.request_count(), 2u);  // still recorded
}

TEST(SupportUpstream, RawResponseAndCloseDelimitedBody) {
  FakeUpstream up("raw");
  up.respond_raw("HTTP/1.1 203 Odd\r\nX-A: 1\r\n\r\nuntil-eof", /*close_after=*/true);
  HttpConn c(up.port());
  Response r = c.request("GET", "/");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 203);
  EXPECT_EQ(r.reason, "Odd");
  EXPECT_EQ(r.body, "until-eof");
  EXPECT_FALSE(r.keep_alive);
}

TEST(SupportUpstream, CustomHandlerAndDelay) {
  FakeUpstream up("cu");
  up.set_handler([&up](const RecordedRequest& req) {
    Reply rep = up.default_reply(req);
    rep.status = 404;
    rep.headers.emplace_back("X-Seen", req.header("X-Id"));
    return rep;
  });
  up.set_delay(Millis{100});
  HttpConn c(up.port());
  auto t0 = std::chrono::steady_clock::now();
  Response r = c.request("GET", "/nope", {{"X-Id", "42"}});
  EXPECT_GE(std::chrono::steady_clock::now() - t0, Millis{100});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.reason, "Not Found");
  EXPECT_EQ(r.header("X-Seen"), "42");
}

TEST(SupportUpstream, ClientTimeoutOnSlowUpstream) {
  FakeUpstream up("slow");
  up.set_delay(Millis{5000});
  HttpConn c(up.port(), Millis{200});
  Response r = c.request("GET", "/");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("timeout"), std::string::npos) << r.error;
  // stop() must interrupt the sleeping connection thread promptly.
  auto t0 = std::chrono::steady_clock::now();
  up.stop();
  // SIGINT, then SIGKILL after its 2 s grace: well before `sleep 5` ends.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, Millis{4500});
}

TEST(SupportUpstream, StopRefusesAndRestartServesAgain) {
  FakeUpstream up("dead");
  HttpConn idle(up.port());
  ASSERT_TRUE(idle.connected());
  const uint16_t port = up.port();
  up.stop();
  EXPECT_FALSE(up.running());
  EXPECT_TRUE(idle.closed(Millis{2000}));
  Response r = http_get(port, "/");
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(wait_for_port(port, Millis{50}));
  ASSERT_TRUE(up.restart());
  EXPECT_EQ(up.port(), port);
  r = http_get(port, "/back");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.body, "dead GET /back\n");
}

TEST(SupportUpstream, ExpectContinueAndBadRequest) {
  FakeUpstream up("ex");
  up.echo_body();
  HttpConn c(up.port());
  ASSERT_TRUE(c.send_request("POST", "/", {{"Expect", "100-continue"}, {"Content-Length", "2"}}));
  Response interim = c.read_response();
  ASSERT_TRUE(interim.ok()) << interim.error;
  EXPECT_EQ(interim.status, 100);
  c.send_raw("hi");
  Response r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hi");

  HttpConn bad(up.port());
  bad.send_raw("NOT HTTP\r\n\r\n");
  r = bad.read_response();
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(up.errors().size(), 1u);
}

TEST(SupportUpstream, Http10GetsCloseUnlessKeepAlive) {
  FakeUpstream up("old");
  HttpConn c(up.port());
  c.send_raw("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  Response r = c.read_response();
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(r.header("Connection"), "keep-alive");
  c.send_raw("GET /b HTTP/1.0\r\n\r\n");
  r = c.read_response();
  EXPECT_FALSE(r.keep_alive);
  EXPECT_TRUE(c.closed(Millis{2000}));
}

TEST(SupportUpstream, ConcurrentKeepAliveClients) {
  constexpr int kClients = 8, kRequests = 20;
  FakeUpstream up("many");
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      HttpConn c(up.port());
      for (int i = 0; i < kRequests; ++i) {
        std::string target = "/" + std::to_string(t) + "/" + std::to_string(i);
        Response r = c.request("POST", target, {{"X-Empty", ""}}, target);
        if (r.ok() && r.body == "many POST " + target + "\n") ++good;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good, kClients * kRequests);
  EXPECT_EQ(up.request_count(), static_cast<size_t>(kClients * kRequests));
  EXPECT_EQ(up.connections_accepted(), static_cast<size_t>(kClients));
  for (const auto& req : up.requests()) {
    EXPECT_EQ(req.body, req.target);
    EXPECT_EQ(req.header_count("X-Empty"), 1u);
  }
}

// A server that answers before reading the body (like a 413) must not
// deadlock an upload: HttpConn drains the answer while its sends block.
TEST(SupportClient, EarlyAnswerDuringLargeUpload) {
  Fd listener = listen_loopback(0);
  ASSERT_TRUE(listener.valid());
  std::thread server([&] {
    Fd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    std::string got;
    while (got.find("\r\n\r\n") == std::string::npos &&
           recv_some(c.get(), got, Millis{5000}) == IoResult::kOk) {
    }
    send_all(c.get(), "HTTP/1.1 413 Too Big\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    std::this_thread::sleep_for(Millis{300});  // let the client see it before the reset
  });
  HttpConn c(local_port(listener.get()), Millis{5000});
  Response r = c.request_pattern("POST", "/upload", 20 * 1024 * 1024);
  server.join();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(c.error(), "");  // the upload itself was cut short
}

TEST(SupportClient, ConnectRefused) {
  uint16_t port = free_port();
  ASSERT_NE(port, 0);
  HttpConn c(port);
  EXPECT_FALSE(c.connected());
  EXPECT_NE(c.error(), "");
  Response r = c.request("GET", "/");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(c.closed());
}

TEST(SupportProcess, CapturesOutputAndKillsCleanly) {
  auto p = std::make_unique<Process>(
      std::vector<std::string>{"/bin/sh", "-c", "echo hi; echo err >&2; sleep 5"});
  ASSERT_TRUE(wait_for_output(*p, "err", Millis{5000})) << p->output();
  EXPECT_NE(p->output().find("hi\n"), std::string::npos);
  EXPECT_TRUE(p->running());
  const pid_t pid = p->pid();
  EXPECT_EQ(::getpgid(pid), pid);
  auto t0 = std::chrono::steady_clock::now();
  int st = p->kill_and_wait();
  // SIGINT, then SIGKILL after its 2 s grace: well before `sleep 5` ends.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, Millis{4500});
  EXPECT_TRUE(WIFSIGNALED(st) && (WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGKILL))
      << describe_status(st);
  EXPECT_FALSE(p->running());
  std::string log = p->output_path();
  p.reset();
  EXPECT_NE(::access(log.c_str(), F_OK), 0);  // log removed
  EXPECT_NE(::kill(pid, 0), 0);               // gone and reaped
}

TEST(SupportProcess, ExitStatusEnvCwdAndSignals) {
  TempDir dir;
  Process p({"sh", "-c", "echo \"$FOO\" \"$(pwd)\"; exit 3"}, {{"FOO", "bar"}}, dir.path());
  auto st = p.wait_exit(Millis{5000});
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(exited_with(st, 3)) << describe_status(*st);
  EXPECT_EQ(p.output(), "bar " + dir.path() + "\n");

  Process missing({"/nonexistent/binary"});
  EXPECT_TRUE(exited_with(missing.wait_exit(Millis{5000}), 127));
  EXPECT_NE(missing.output().find("execve failed"), std::string::npos);

  Process term(
      {"sh", "-c", "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"});
  ASSERT_TRUE(wait_for_output(term, "ready"));
  EXPECT_TRUE(term.signal(SIGTERM));
  EXPECT_TRUE(exited_with(term.wait_exit(), 0));
  EXPECT_NE(term.output().find("got-term"), std::string::npos);
}

TEST(SupportProcess, DestructorKillsGrandchildren) {
  TempDir dir;
  std::string pidfile = dir.file("child.pid");
  pid_t grandchild = 0;
  {
    Process p({"sh", "-c", "sleep 30 & echo $! > " + pidfile + "; echo started; wait"});
    ASSERT_TRUE(wait_for_output(p, "started"));
    std::ifstream in(pidfile);
    in >> grandchild;
    ASSERT_GT(grandchild, 0);
    EXPECT_EQ(::kill(grandchild, 0), 0);
  }
  // The orphaned grandchild was SIGKILLed; wait for init to reap it.
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = ::kill(grandchild, 0) != 0;
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    std::string s;
    std::getline(stat, s);
    gone = gone || s.find(") Z") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(Millis{10});
  }
  EXPECT_TRUE(gone);
}

TEST(SupportProcess, ChildDoesNotHoldTestSockets) {
  FakeUpstream up("fd");
  const uint16_t port = up.port();
  Process p({"sleep", "5"});
  // Until exec, the forked child holds copies of every fd (CLOEXEC acts at
  // exec): wait for it to be `sleep` before checking it holds none.
  auto exec_done = [&] {
    std::ifstream f("/proc/" + std::to_string(p.pid()) + "/cmdline");
    std::string cmd;
    std::getline(f, cmd, '\0');
    return cmd == "sleep";
  };
  for (int i = 0; i < 500 && !exec_done(); i++) std::this_thread::sleep_for(Millis{2});
  ASSERT_TRUE(exec_done());
  up.stop();
  EXPECT_FALSE(wait_for_port(port, Millis{50}));
  EXPECT_TRUE(p.running());
}

TEST(SupportProcess, FreePortAndWaitForPort) {
  uint16_t port = free_port();
  ASSERT_NE(port, 0);
  EXPECT_FALSE(wait_for_port(port, Millis{50}));
  FakeUpstream up("p", port);
  EXPECT_EQ(up.port(), port);
  EXPECT_TRUE(wait_for_port(port, Millis{1000}));
}

TEST(SupportTempDir, WritesFilesAndRemovesItself) {
  std::string path;
  {
    TempDir d("support");
    path = d.path();
    std::string a = d.write("conf.ini", "[x]\n");
    std::string b = d.write("conf.ini", "[y]\n");
    EXPECT_EQ(a, path + "/conf.ini");
    EXPECT_EQ(b, path + "/conf-2.ini");
    std::ifstream in(b);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), "[y]\n");
  }
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0);

  std::string f = write_temp_file("site.ini", "hello");
  EXPECT_EQ(f, test_temp_dir() + "/site.ini");
  EXPECT_EQ(::stat(f.c_str(), &st), 0);
}

}  // namespace
}  // namespace pasture::test
