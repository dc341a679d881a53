// High availability: faults injected into real upstreams while clients run.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <fstream>
#include <thread>

#include "tests/integration/keepalive_load.h"
#include "tests/integration/pasture_server.h"

namespace pasture::test {
namespace {

// Client threads sending GETs on keep-alive connections as fast as they can.
struct GetLoop {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::map<std::string, int> by_server;
  std::string last_fail;
  std::vector<std::thread> ts;
  GetLoop(uint16_t port, int threads) {
    for (int i = 0; i < threads; i++)
      ts.emplace_back([this, port] {
        HttpConn c(port);
        while (!stop) {
          Response r = c.request("GET", "/loop");
          if (!r.ok() && c.closed()) {  // the server may close a keep-alive connection
            c = HttpConn(port);
            continue;
          }
          std::lock_guard<std::mutex> l(mu);
          if (r.ok() && r.status == 200) {
            ok++;
            by_server[r.header("X-Upstream")]++;
          } else {
            failed++;
            last_fail = r.ok() ? std::to_string(r.status) : r.error;
          }
        }
      });
  }
  void finish() {
    stop = true;
    for (auto& t : ts)
      if (t.joinable()) t.join();
  }
  ~GetLoop() { finish(); }
};

TEST(Failover, KillOneOfThreeUnderLoadLosesNoGet) {
  FakeUpstream a("a"), b("b"), c("c");
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = " + a.address() + " " +
                        b.address() + " " + c.address() + "\n",
                    2);
  ASSERT_TRUE(srv.started()) << srv.output();
  GetLoop loop(srv.port(), 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  b.stop();  // listener and every connection closed: requests in flight die
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  loop.finish();
  EXPECT_GT(loop.ok.load(), 500);
  EXPECT_EQ(loop.failed.load(), 0) << loop.last_fail << "\n" << srv.output();
  RecordProperty("gets", loop.ok.load());
}

// An upstream server as a real process (a pasture echo server, one worker)
// on a fixed port, so that it can die by SIGKILL and come back on that port.
class EchoUpstream {
 public:
  explicit EchoUpstream(std::string name) : name_(std::move(name)), port_(free_port()) {}
  bool start() {
    std::string ini = dir_.write("up.ini", "[server:main]\nuse = egg:pasture#main\nport = " +
                                               std::to_string(port_) +
                                               "\nworkers = 1\n[app:main]\nuse = egg:pasture#echo\n"
                                               "name = " + name_ + "\n");
    proc_ = std::make_unique<Process>(std::vector<std::string>{PASTURE_BINARY, "serve", ini});
    return wait_for_output(*proc_, "serving on") && wait_for_port(port_);
  }
  void kill9() { proc_->signal_group(SIGKILL); proc_->wait_exit(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  TempDir dir_;
  std::string name_;
  uint16_t port_;
  std::unique_ptr<Process> proc_;
};

// Issue 13 §1b: kill -9 of one of two upstreams under keep-alive load (16
// clients that never retry, through 2 workers, retries = 1) costs no
// request: the requests it held, those on its pooled keep-alive connections
// and those whose connect it refuses all go to the other server, the retry
// budget notwithstanding. Twice: a, then (once back) b.
TEST(Failover, UpstreamKilledUnderKeepAliveLoadLosesNothing) {
  EchoUpstream a("a"), b("b");
  ASSERT_TRUE(a.start() && b.start());
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = " + a.address() +
                        " fail_timeout=1s " + b.address() + " fail_timeout=1s\n",
                    2);
  ASSERT_TRUE(srv.started()) << srv.output();
  KeepAliveLoad load(srv.port(), 16);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  a.kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  ASSERT_TRUE(a.start());
  // Back in rotation once fail_timeout has passed: b's pooled connections
  // to a are gone, its own to b are warm.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  int before = load.ok();
  b.kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  load.finish();
  EXPECT_EQ(load.failed(), 0) << load.failures() << srv.output();
  EXPECT_GT(load.ok() - before, 200);  // load ran on through the second kill
  RecordProperty("requests", load.ok());
}

// An upstream that answers every GET with 200 until `armed`: then the first
// request that reaches one of these servers on a connection it already
// answered on (a pooled connection) finds it dead, as after kill -9 - the
// listener closed first, so the port refuses, then that connection closed
// unanswered. One server dies per arming (the flag is taken).
class DyingServer {
 public:
  DyingServer(std::string name, std::atomic<bool>* armed)
      : name_(std::move(name)), armed_(armed), listener_(listen_loopback(0)),
        port_(local_port(listener_.get())), t_([this] { run(); }) {}
  ~DyingServer() {
    stop_ = true;
    t_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  bool died() const { return died_; }

 private:
  struct Conn {
    Fd fd;
    std::string in;
    int answered = 0;
  };
  void run() {
    std::vector<Conn> conns;
    while (!stop_) {
      std::vector<pollfd> fds;
      if (listener_.valid()) fds.push_back({listener_.get(), POLLIN, 0});
      for (Conn& c : conns) fds.push_back({c.fd.get(), POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (listener_.valid() && (fds[0].revents & POLLIN))
        conns.push_back(Conn{Fd(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC)), {}, 0});
      for (Conn& c : conns) {
        IoResult io = recv_some(c.fd.get(), c.in, Millis(0));
        if (io == IoResult::kClosed || io == IoResult::kError) {
          c.fd.reset();
          continue;
        }
        size_t end;
        while (c.fd.valid() && (end = c.in.find("\r\n\r\n")) != std::string::npos) {
          c.in.erase(0, end + 4);
          if (c.answered > 0 && armed_->exchange(false)) {
            listener_.reset();
            c.fd.reset();
            died_ = true;
            break;
          }
          std::string body = name_ + "\n";
          send_all(c.fd.get(), "HTTP/1.1 200 OK\r\nX-Upstream: " + name_ + "\r\nContent-Length: " +
                                   std::to_string(body.size()) + "\r\n\r\n" + body);
          c.answered++;
        }
      }
      std::erase_if(conns, [](const Conn& c) { return !c.fd.valid(); });
    }
  }

  std::string name_;
  std::atomic<bool>* armed_;
  Fd listener_;
  uint16_t port_;
  std::atomic<bool> stop_{false}, died_{false};
  std::thread t_;
};

// A pooled connection to a server that has just died is retried elsewhere,
// and not counted against `retries` (0 here): with round robin at once, with
// ip_hash (affinity) after the same server refused a new connection.
TEST(Failover, StaleConnectionToADeadServerIsRetriedElsewhereUncounted) {
  for (const char* method : {"round_robin", "ip_hash"}) {
    SCOPED_TRACE(method);
    std::atomic<bool> armed{false};
    DyingServer a("a", &armed), b("b", &armed);
    PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = " + a.address() + " " +
                          b.address() + "\nmethod = " + method + "\nretries = 0\n",
                      1);
    ASSERT_TRUE(srv.started()) << srv.output();
    HttpConn c(srv.port());
    for (int i = 0; i < 2; i++) ASSERT_EQ(c.request("GET", "/warm").status, 200);  // pooled
    armed = true;
    Response r = c.request("GET", "/after");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 200) << srv.output();
    EXPECT_TRUE(a.died() || b.died());
    std::string dead = a.died() ? "a" : "b";
    EXPECT_NE(r.header("X-Upstream"), dead);
    EXPECT_NE(srv.output().find("stale keep-alive connection"), std::string::npos) << srv.output();
    // Only ip_hash tried the dead server's address again.
    bool refused = srv.output().find("connection refused; retrying on") != std::string::npos;
    EXPECT_EQ(refused, std::string(method) == "ip_hash") << srv.output();
  }
}

TEST(Failover, FrozenUpstreamTimesOutIsMarkedDownAndComesBack) {
  // The frozen upstream is a real process (a pasture echo server) so that
  // SIGSTOP freezes it the way a hung app server freezes.
  TempDir d;
  uint16_t frozen_port = free_port();
  std::string up_ini = d.write("up.ini", "[server:main]\nuse = egg:pasture#main\nport = " +
                                             std::to_string(frozen_port) +
                                             "\nworkers = 1\n[app:main]\nuse = egg:pasture#echo\n"
                                             "name = frozen\n");
  Process frozen({PASTURE_BINARY, "serve", up_ini});
  ASSERT_TRUE(wait_for_output(frozen, "serving on"));
  FakeUpstream good("good");
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:" +
                        std::to_string(frozen_port) + " slow_start=2 " + good.address() +
                        "\nread_timeout = 300ms\nhealth_check = /health\nhealth_interval = "
                        "200ms\nhealth_timeout = 150ms\nrise = 2\nfall = 2\n",
                    3);
  ASSERT_TRUE(srv.started()) << srv.output();
  ASSERT_TRUE(frozen.signal_group(SIGSTOP));
  auto t0 = std::chrono::steady_clock::now();
  // GETs keep succeeding: a timed-out attempt is retried on the good server.
  int failed = 0;
  for (int i = 0; i < 20; i++) {
    Response r = http_get(srv.port(), "/");
    if (!r.ok() || r.status != 200 || r.header("X-Upstream") != "good") failed++;
  }
  EXPECT_EQ(failed, 0);
  ASSERT_TRUE(wait_for_output(srv.proc(), "down", Millis(3000))) << srv.output();
  auto down_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0).count();
  // Marked down for every worker: 60 quick requests all go to the good one.
  auto quick_start = std::chrono::steady_clock::now();
  for (int i = 0; i < 60; i++) EXPECT_EQ(http_get(srv.port(), "/").header("X-Upstream"), "good");
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - quick_start).count(),
            3000);
  // Thaw: after `rise` good probes it is back, ramping up over slow_start.
  ASSERT_TRUE(frozen.signal_group(SIGCONT));
  bool back = wait_until([&] {
    for (int i = 0; i < 20; i++)
      if (http_get(srv.port(), "/").body.rfind("frozen", 0) == 0) return true;
    return false;
  }, Millis(6000));
  EXPECT_TRUE(back) << srv.output();
  RecordProperty("marked_down_ms", (int)down_ms);
}

TEST(Failover, PostIsNotReplayedAfterUpstreamDiesHoldingIt) {
  FakeUpstream a("a"), b("b");
  auto killer = [](const RecordedRequest& r) {
    if (r.method == "POST") return Reply::close_connection();  // dies holding the request
    Reply ok;
    ok.body = "fine\n";
    return ok;
  };
  a.set_handler(killer);
  b.set_handler(killer);
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = " + a.address() + " " +
                        b.address() + "\n",
                    2);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  Response r = c.request("POST", "/order", {}, "buy one");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 502);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(a.request_count() + b.request_count(), 1u) << "the POST reached a second server";
  // A GET that meets the same fault is retried once on the other server.
  a.clear();
  b.clear();
  a.set_handler([](const RecordedRequest&) { return Reply::close_connection(); });
  b.reset_handler();
  int got = 0;
  for (int i = 0; i < 4; i++) got += http_get(srv.port(), "/g").status == 200;
  EXPECT_EQ(got, 4);
}

TEST(Failover, SlowlorisGets408WhileOthersAreServed) {
  FakeUpstream up("u");
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  // Shorten the header timeout through a reload of the server section.
  {
    std::ifstream in(srv.path());
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    all.replace(all.find("workers = 1"), 11, "workers = 1\nclient_header_timeout = 1s");
    std::ofstream(srv.path()) << all;
  }
  srv.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(srv.proc(), "generation 2 serving"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  HttpConn slow(srv.port());
  auto t0 = std::chrono::steady_clock::now();
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
  std::atomic<bool> done{false};
  std::thread dribble([&] {
    for (char ch : head) {
      if (done || !slow.send_raw(std::string(1, ch))) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  // Others are served meanwhile.
  for (int i = 0; i < 20; i++) EXPECT_EQ(http_get(srv.port(), "/").status, 200);
  Response r = slow.read_response();
  done = true;
  dribble.join();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 408);
  EXPECT_GE(ms, 900);
  EXPECT_LT(ms, 2500);
}

}  // namespace
}  // namespace pasture::test

namespace pasture::test {
namespace {

TEST(Failover, UpstreamThatStopsReadingHitsSendTimeout) {
  Fd stuck = listen_loopback(0);  // completes handshakes, never reads a byte
  ASSERT_TRUE(stuck.valid());
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:" +
                        std::to_string(local_port(stuck.get())) +
                        "\nsend_timeout = 500ms\nread_timeout = 30s\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port(), Millis(15000));
  auto t0 = std::chrono::steady_clock::now();
  Response r = c.request_pattern("PUT", "/big", 256u * 1024 * 1024);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 504);
  EXPECT_LT(ms, 10000);
  EXPECT_NE(srv.output().find("send_timeout"), std::string::npos) << srv.output();
}


// A new plain connection sends the request head with its connect
// (UpstreamConn::connect_plain); when the server's handshake is not done
// yet, the head waits for it and the body behind the head, so a POST gets
// through whole. The server's accept queue is full (listen backlog 0, one
// connection queued), so pasture's SYN is dropped and its connect completes
// at the SYN's retransmission, after the test has drained the queue.
TEST(Failover, ARequestWaitsForAConnectStillInProgress) {
  Fd l = listen_loopback(0);
  ASSERT_TRUE(l.valid());
  ASSERT_EQ(::listen(l.get(), 0), 0);
  uint16_t port = local_port(l.get());
  Fd filler = connect_loopback(port, Millis(2000));  // fills the queue of one
  ASSERT_TRUE(filler.valid());
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:" +
                        std::to_string(port) + "\nconnect_timeout = 8s\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  const std::string body = pattern_bytes(3000);
  Response r;
  std::thread client([&] {
    HttpConn c(srv.port(), Millis(15000));
    r = c.request("POST", "/order", {}, body);
  });
  struct Join {
    std::thread& t;
    ~Join() { if (t.joinable()) t.join(); }  // also when an assertion returns early (pasture answers by connect_timeout)
  } join{client};
  // Pasture's connect waits in SYN_SENT (/proc/net/tcp state 02) before the
  // queue is drained: the head was written (and queued: EAGAIN) while the
  // connect was in progress, as connect and head go in the same callback.
  auto syn_sent = [port] {
    std::ifstream f("/proc/net/tcp");
    char want[16];
    snprintf(want, sizeof want, ":%04X 02 ", port);
    for (std::string line; std::getline(f, line);)
      if (line.find(want) != std::string::npos) return true;
    return false;
  };
  for (int i = 0; i < 500 && !syn_sent(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(syn_sent()) << srv.output();
  Fd first(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(first.valid());
  ASSERT_EQ(wait_fd(l.get(), POLLIN, Millis(6000)), IoResult::kOk);
  Fd up(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(up.valid());
  std::string got;
  size_t end = std::string::npos;
  while (end == std::string::npos || got.size() < end + 4 + body.size()) {
    if (recv_some(up.get(), got, Millis(5000)) != IoResult::kOk) break;
    end = got.find("\r\n\r\n");
  }
  ASSERT_NE(end, std::string::npos) << got;
  EXPECT_EQ(got.substr(0, 18), "POST /order HTTP/1") << got;
  EXPECT_EQ(got.substr(end + 4), body);
  ASSERT_EQ(send_all(up.get(), "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes"), IoResult::kOk);
  up.reset();
  first.reset();
  client.join();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200) << srv.output();
  EXPECT_EQ(r.body, "yes");
}

// The connect's error shows at the head's write: a POST whose server
// refuses is retried on the next one with its body (nothing was sent), and
// the log names the refusal, not the broken pipe a second write would see.
TEST(Failover, APostToARefusingServerIsRetriedWithItsBody) {
  uint16_t dead;
  {
    Fd l = listen_loopback(0);
    ASSERT_TRUE(l.valid());
    dead = local_port(l.get());
  }
  FakeUpstream b("b");
  b.echo_body();
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:" +
                        std::to_string(dead) + " " + b.address() + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 4; i++) {
    const std::string body = pattern_bytes(2000 + i, i);
    Response r = http_request(srv.port(), "POST", "/p", {}, body);
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 200) << srv.output();
    EXPECT_EQ(r.body, body);
  }
  EXPECT_NE(srv.output().find("connect() failed: connection refused"), std::string::npos) << srv.output();
  EXPECT_EQ(srv.output().find("broken pipe"), std::string::npos) << srv.output();
}

}  // namespace
}  // namespace pasture::test
