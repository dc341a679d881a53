// Active health checks end to end: the real binary, several workers, one
// health-checker process, fake upstreams answering /health.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include "tests/integration/pasture_server.h"

namespace pasture::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string health_ini(const std::vector<const FakeUpstream*>& ups, const std::string& extra) {
  std::string s = "[app:main]\nuse = egg:pasture#balancer\nservers =";
  for (auto* u : ups) s += " " + u->address();
  return s + "\nhealth_check = /health\n" + extra;
}

// /health answers 503; everything else the default 200.
void fail_health(FakeUpstream& up) {
  FakeUpstream* u = &up;
  up.set_handler([u](const RecordedRequest& r) {
    Reply rep = u->default_reply(r);
    if (r.target == "/health") rep.status = 503;
    return rep;
  });
}

size_t health_probes(const FakeUpstream& up) {
  size_t n = 0;
  for (const RecordedRequest& r : up.requests()) n += r.target == "/health";
  return n;
}

// Polls the server's log for `needle`; the time it took, or -1 ms.
Millis wait_log(PastureServer& srv, const std::string& needle, Millis timeout = Millis{10000}) {
  auto t0 = Clock::now();
  while (Clock::now() - t0 < timeout) {
    if (srv.output().find(needle) != std::string::npos)
      return std::chrono::duration_cast<Millis>(Clock::now() - t0);
    std::this_thread::sleep_for(Millis{10});
  }
  return Millis{-1};
}

std::map<std::string, int> spread(uint16_t port, int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; i++) {
    Response r = http_get(port, "/n");
    seen[r.ok() ? r.header("X-Upstream") : "error: " + r.error]++;
  }
  return seen;
}

TEST(HealthActive, FailingEndpointTakesServerOutOfEveryWorkerAndBack) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(health_ini({&a, &b}, "health_interval = 0.2\nhealth_timeout = 1\nfall = 3\nrise = 2\n"),
                    3);
  ASSERT_TRUE(srv.started()) << srv.output();
  // Both serve while healthy.
  auto seen = spread(srv.port(), 20);
  EXPECT_EQ(seen["a"], 10);
  EXPECT_EQ(seen["b"], 10);
  ASSERT_TRUE(b.wait_for_requests(1));
  fail_health(b);
  Millis took = wait_log(srv, "server " + b.address() + " down (health check /health: status 503; 3 consecutive failures)");
  ASSERT_GE(took.count(), 0) << srv.output();
  // fall = 3 probes 200 ms apart: 400-600 ms after the first failing one.
  EXPECT_LE(took.count(), 1500);
  printf("[ measured ] marked down %lld ms after /health began failing (fall 3, interval 200 ms)\n",
         (long long)took.count());
  b.clear();
  seen = spread(srv.port(), 100);
  EXPECT_EQ(seen["a"], 100) << "b got " << seen["b"];
  EXPECT_EQ(b.request_count(), health_probes(b));  // only probes reach b
  // Healthy again: back after `rise` good probes.
  b.reset_handler();
  took = wait_log(srv, "server " + b.address() + " up (health check /health: status 200; 2 consecutive successes)");
  ASSERT_GE(took.count(), 0) << srv.output();
  EXPECT_LE(took.count(), 1500);
  printf("[ measured ] back up %lld ms after /health recovered (rise 2)\n", (long long)took.count());
  seen = spread(srv.port(), 20);
  EXPECT_EQ(seen["a"], 10);
  EXPECT_EQ(seen["b"], 10);
  // Each transition is one line, from the health checker.
  std::string out = srv.output();
  size_t downs = 0, pos = 0;
  while ((pos = out.find(b.address() + " down", pos)) != std::string::npos) downs++, pos++;
  EXPECT_EQ(downs, 1u) << out;
  EXPECT_NE(out.find(" health warn: pool app:main: server " + b.address() + " down"), std::string::npos)
      << out;
}

TEST(HealthActive, ProbesOncePerServerNotPerWorker) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(health_ini({&a, &b}, "health_interval = 0.2\n"), 4);
  ASSERT_TRUE(srv.started()) << srv.output();
  ASSERT_TRUE(a.wait_for_requests(1));
  a.clear();
  b.clear();
  std::this_thread::sleep_for(Millis{2000});
  size_t na = health_probes(a), nb = health_probes(b);
  printf("[ measured ] /health probes in 2 s at interval 200 ms, 4 workers: a %zu, b %zu\n", na, nb);
  // 10 per server (one per interval); per worker it would be 40.
  EXPECT_GE(na, 8u);
  EXPECT_LE(na, 12u);
  EXPECT_GE(nb, 8u);
  EXPECT_LE(nb, 12u);
  for (const RecordedRequest& r : a.requests()) {
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.header("Host"), a.address());
    EXPECT_EQ(r.header("Connection"), "close");
  }
}

TEST(HealthActive, DeadServerIsMarkedDownAndComesBack) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(health_ini({&a, &b}, "health_interval = 0.2\nhealth_timeout = 0.5\nfall = 2\nrise = 1\n"),
                    3);
  ASSERT_TRUE(srv.started()) << srv.output();
  ASSERT_TRUE(b.wait_for_requests(1));
  b.stop();
  Millis took = wait_log(srv, "server " + b.address() + " down (health check /health: connect(): Connection refused; 2 consecutive failures)");
  ASSERT_GE(took.count(), 0) << srv.output();
  EXPECT_LE(took.count(), 1500);
  printf("[ measured ] stopped server marked down after %lld ms (fall 2, interval 200 ms)\n",
         (long long)took.count());
  auto seen = spread(srv.port(), 50);
  EXPECT_EQ(seen["a"], 50);
  ASSERT_TRUE(b.restart());
  took = wait_log(srv, "server " + b.address() + " up (health check /health: status 200; 1 consecutive success)");
  ASSERT_GE(took.count(), 0) << srv.output();
  seen = spread(srv.port(), 20);
  EXPECT_EQ(seen["b"], 10);
}

TEST(HealthActive, SlowEndpointTimesOut) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(health_ini({&a, &b}, "health_interval = 0.2\nhealth_timeout = 100ms\nfall = 1\n"), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  ASSERT_TRUE(b.wait_for_requests(1));
  b.set_delay(Millis{400});
  Millis took = wait_log(srv, "server " + b.address() + " down (health check /health: no status line within 100ms; 1 consecutive failure)");
  ASSERT_GE(took.count(), 0) << srv.output();
  b.set_delay(Millis{0});
}

TEST(HealthActive, CheckerRespawnsAndReloadReplacesIt) {
  FakeUpstream a("a");
  PastureServer srv(health_ini({&a}, "health_interval = 0.1\n"), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto checker_pids = [&] {
    std::vector<int> pids;
    std::string out = srv.output();
    size_t pos = 0;
    while ((pos = out.find("health checker is pid ", pos)) != std::string::npos) {
      pos += 22;
      pids.push_back(atoi(out.c_str() + pos));
    }
    return pids;
  };
  ASSERT_EQ(checker_pids().size(), 1u);
  int first = checker_pids()[0];
  ASSERT_EQ(kill(first, SIGKILL), 0);
  ASSERT_GE(wait_log(srv, "health checker (pid " + std::to_string(first) + ") killed by signal 9; restarting it").count(), 0);
  auto t0 = Clock::now();
  while (checker_pids().size() < 2 && Clock::now() - t0 < Millis{5000}) std::this_thread::sleep_for(Millis{20});
  ASSERT_EQ(checker_pids().size(), 2u) << srv.output();
  // Reload: the old checker stops, a new one starts; still one probe per interval.
  srv.proc().signal(SIGHUP);
  ASSERT_GE(wait_log(srv, "reloaded: generation 2").count(), 0) << srv.output();
  ASSERT_EQ(checker_pids().size(), 3u) << srv.output();
  int second = checker_pids()[1];
  t0 = Clock::now();
  while (kill(second, 0) == 0 && Clock::now() - t0 < Millis{3000}) std::this_thread::sleep_for(Millis{20});
  EXPECT_NE(kill(second, 0), 0) << "the previous generation's checker still runs";
  a.clear();
  std::this_thread::sleep_for(Millis{1000});
  size_t n = health_probes(a);
  EXPECT_GE(n, 8u);
  EXPECT_LE(n, 12u);
}

}  // namespace
}  // namespace pasture::test
