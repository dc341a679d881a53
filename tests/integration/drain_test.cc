// Draining workers (reload, TTOU, USR2 upgrade, max_requests) under
// keep-alive clients that never retry: no request is lost (issue 13 §1).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "tests/integration/keepalive_load.h"
#include "tests/integration/pasture_server.h"

namespace pasture::test {
namespace {

using Clock = std::chrono::steady_clock;

long ms_since(Clock::time_point t0) {
  return (long)std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

// Waits until none of `pids` is a child of `parent` any more (exited and
// reaped); milliseconds since `t0`, or -1 after 5 s.
long gone_ms(int parent, const std::vector<int>& pids, Clock::time_point t0) {
  bool gone = wait_until([&] {
    std::vector<int> now = children_of(parent);
    return std::none_of(pids.begin(), pids.end(),
                        [&](int p) { return std::find(now.begin(), now.end(), p) != now.end(); });
  });
  return gone ? ms_since(t0) : -1;
}

// What every old process must beat: the 1 s grace, plus in-flight time (ms
// here), the 100 ms timer tick and a loaded machine's scheduling.
constexpr long kDrainBoundMs = 1000 + 500;

// An idle keep-alive connection of a draining worker stays open through
// drain_idle_grace: a request sent in it is answered with Connection: close;
// one that stays silent is closed when the grace ends, and the worker goes.
TEST(Drain, IdleConnectionIsServedInTheGraceThenClosed) {
  PastureServer srv("drain_idle_grace = 1s\n\n[app:main]\nuse = egg:pasture#echo\nname = g\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn speaks(srv.port()), silent(srv.port()), unused(srv.port());
  for (HttpConn* c : {&speaks, &silent}) {
    Response r = c->request("GET", "/before");
    ASSERT_TRUE(r.ok() && r.keep_alive) << r.error;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // `unused` accepted too
  std::vector<int> old = children_of(srv.proc().pid());
  ASSERT_EQ(old.size(), 1u);
  auto t0 = Clock::now();
  srv.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(srv.proc(), "reloaded: generation 2")) << srv.output();
  std::this_thread::sleep_until(t0 + std::chrono::milliseconds(500));

  EXPECT_FALSE(silent.closed()) << "idle connection closed before the grace ended";
  Response r = speaks.request("GET", "/in-grace");
  ASSERT_TRUE(r.ok()) << r.error << "\n" << srv.output();
  EXPECT_EQ(r.body, "g GET /in-grace\n");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(speaks.closed(Millis(1000)));
  speaks.close();  // the server lingers for our EOF (up to 2 s) before it lets go
  // Never used yet: answered once, then closed (as before the grace existed).
  Response u = unused.request("GET", "/first");
  ASSERT_TRUE(u.ok()) << u.error;
  EXPECT_EQ(u.header("Connection"), "close");
  unused.close();

  ASSERT_TRUE(silent.closed(Millis(3000)));
  long closed_ms = ms_since(t0);
  EXPECT_GE(closed_ms, 900);
  EXPECT_LE(closed_ms, kDrainBoundMs);
  long exit_ms = gone_ms(srv.proc().pid(), old, t0);
  EXPECT_GE(exit_ms, 0) << srv.output();
  EXPECT_LE(exit_ms, kDrainBoundMs);
  EXPECT_EQ(http_get(srv.port(), "/after").status, 200);
  RecordProperty("silent_closed_ms", (int)closed_ms);
  RecordProperty("old_worker_gone_ms", (int)exit_ms);
}

// The promise of issue 13 §1: 4 keep-alive clients that send each request
// the moment the last answer is read and never retry, through 10 reloads,
// 10 TTIN/TTOU pairs and a USR2 upgrade: not one request fails, and every
// old worker (and the old master) is gone within grace + in-flight time.
// Half the clients hit a local echo app, half a pool whose answers take
// 2 ms, so drains meet both idle connections and requests in flight.
TEST(Drain, NoKeepAliveClientNoticesReloadsScalingOrUpgrade) {
  FakeUpstream a("a"), b("b");
  a.set_delay(Millis(2));
  b.set_delay(Millis(2));
  PastureServer srv("[composite:main]\nuse = egg:Paste#urlmap\n/ = echo\n/up = pool\n\n"
                    "[app:echo]\nuse = egg:pasture#echo\nname = e\n\n"
                    "[app:pool]\nuse = egg:pasture#balancer\nservers = " +
                        a.address() + " " + b.address() + "\n",
                    2);
  ASSERT_TRUE(srv.started()) << srv.output();
  const int master = srv.proc().pid();
  KeepAliveLoad load(srv.port(), 4, {"/", "/up/x"}, 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  long worst_ms = 0;
  auto note = [&](long ms, const char* what) {
    EXPECT_GE(ms, 0) << what << ": old process still running\n" << srv.output();
    EXPECT_LE(ms, kDrainBoundMs) << what;
    worst_ms = std::max(worst_ms, ms);
  };

  for (int i = 1; i <= 10; i++) {
    std::vector<int> old = children_of(master);
    auto t0 = Clock::now();
    srv.proc().signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return occurrences(srv.output(), "reloaded: generation") >= i; }))
        << srv.output();
    note(gone_ms(master, old, t0), "HUP");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (int i = 0; i < 10; i++) {
    srv.proc().signal(SIGTTIN);
    ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 3; })) << srv.output();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the third worker takes clients
    auto t0 = Clock::now();
    srv.proc().signal(SIGTTOU);
    ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 2; })) << srv.output();
    note(ms_since(t0), "TTOU");
  }
  // Binary upgrade: a second master serves beside the first, which is then
  // told to quit and drains.
  srv.proc().signal(SIGUSR2);
  ASSERT_TRUE(wait_until([&] { return occurrences(srv.output(), "serving on") >= 2; })) << srv.output();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t0 = Clock::now();
  srv.proc().signal(SIGQUIT);
  ASSERT_TRUE(srv.proc().wait_exit().has_value()) << srv.output();
  note(ms_since(t0), "USR2 + QUIT");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the new master alone
  load.finish();

  EXPECT_EQ(load.failed(), 0) << load.failures() << srv.output();
  EXPECT_GT(load.ok(), 1000);
  EXPECT_GT(load.closes(), 20);  // clients did meet draining workers
  RecordProperty("requests", load.ok());
  RecordProperty("closes", load.closes());
  RecordProperty("worst_drain_ms", (int)worst_ms);
}

// max_requests recycling drains the same way.
TEST(Drain, MaxRequestsRecyclingLosesNothing) {
  PastureServer srv("max_requests = 300\n\n[app:main]\nuse = egg:pasture#echo\nname = m\n", 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  KeepAliveLoad load(srv.port(), 4);
  ASSERT_TRUE(wait_until([&] { return occurrences(srv.output(), "recycling") >= 6; }, Millis(10000)))
      << srv.output();
  load.finish();
  EXPECT_EQ(load.failed(), 0) << load.failures();
  EXPECT_GT(load.ok(), 1800);
}

}  // namespace
}  // namespace pasture::test
