// The status app (egg:pasture#status) over real sockets and processes: the
// counters equal what the test did, across workers, a killed worker and a
// reload; histograms place the latency the upstream imposed; the Prometheus
// text passes prometheus_client's parser; the page renders in Chromium.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <memory>
#include <vector>

#include "conf/json.h"
#include "tests/integration/raw_http.h"

namespace pasture::test {
namespace {

namespace json = conf::json;

std::string status_site(const FakeUpstream& a, const FakeUpstream& b, const std::string& status_keys = "") {
  return "[composite:main]\nuse = egg:Paste#urlmap\n/ = pool\n/status = stat\n\n"
         "[app:stat]\nuse = egg:pasture#status\n" + status_keys + "\n"
         "[app:pool]\nuse = egg:pasture#balancer\nservers = " + a.address() + " " + b.address() + "\n";
}

json::Value status_json(uint16_t port) {
  Response r = http_get(port, "/status?format=json");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  return json::parse(r.body);
}

uint64_t val(const json::Value& v, std::initializer_list<const char*> path) { return typed_value(v, path); }

const json::Value* pool(const json::Value& v, const std::string& name) {
  for (const json::Value& p : v.find("pools")->items())
    if (p.find("name")->as_string() == name) return &p;
  return nullptr;
}

const json::Value* server(const json::Value& pool, const std::string& name) {
  for (const json::Value& s : pool.find("servers")->items())
    if (s.find("name")->as_string() == name) return &s;
  return nullptr;
}

// Runs `script` with /usr/bin/python3; its exit status and output.
std::pair<int, std::string> python(const std::string& script, const std::string& input) {
  TempDir dir;
  std::string py = dir.write("t.py", script), in = dir.write("in.txt", input), out = dir.path() + "/out.txt";
  std::string cmd = "/usr/bin/python3 " + py + " < " + in + " > " + out + " 2>&1";
  int rc = system(cmd.c_str());
  std::ifstream f(out);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, text};
}

TEST(Status, CountersAreExactAcrossFourWorkers) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(status_site(a, b), 4);
  ASSERT_TRUE(srv.started()) << srv.output();
  // New connections spread over the workers; keep-alive ones add requests
  // on connections already counted.
  // The start-up probe's connection (wait_for_port) is accepted whenever a
  // worker gets to it: let it be counted before the first reading.
  std::this_thread::sleep_for(Millis(300));
  json::Value v0 = status_json(srv.port());  // counts itself; its answer counts after
  constexpr int kFresh = 120, kKeepAlive = 40;
  // Each fresh connection stays open: one after the other, closed ones
  // would all go to one worker (a new connection wakes one idle worker,
  // the same one while it is idle), held ones spread (a worker over its
  // share steps aside).
  std::vector<std::unique_ptr<HttpConn>> fresh;
  for (int i = 0; i < kFresh; i++) {
    fresh.push_back(std::make_unique<HttpConn>(srv.port()));
    ASSERT_EQ(fresh.back()->request("GET", "/x").status, 200);
  }
  HttpConn c(srv.port());
  for (int i = 0; i < kKeepAlive; i++) ASSERT_EQ(c.request("GET", "/k").status, 200);
  // The last answer is counted a moment after its bytes went out.
  std::this_thread::sleep_for(Millis(50));
  json::Value v = status_json(srv.port());
  const uint64_t proxied = kFresh + kKeepAlive;
  EXPECT_EQ(val(v, {"requests"}) - val(v0, {"requests"}), proxied + 1);
  EXPECT_EQ(val(v, {"accepted"}) - val(v0, {"accepted"}), kFresh + 2);
  EXPECT_EQ(val(v, {"responses", "2xx"}) - val(v0, {"responses", "2xx"}), proxied + 1);
  const json::Value* p = pool(v, "app:pool");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(val(*p, {"requests"}), proxied);
  uint64_t sa = val(*server(*p, a.address()), {"selected"}), sb = val(*server(*p, b.address()), {"selected"});
  EXPECT_EQ(sa + sb, proxied);
  EXPECT_EQ(sa, a.request_count());
  EXPECT_EQ(sb, b.request_count());
  EXPECT_EQ(val(*server(*p, a.address()), {"responses", "2xx"}), a.request_count());
  EXPECT_EQ(val(*server(*p, a.address()), {"total", "count"}), a.request_count());
  // Per worker: four live workers whose rows add up to the totals.
  const auto& workers = v.find("workers")->items();
  ASSERT_EQ(workers.size(), 4u);
  uint64_t sum = 0, busy = 0;
  for (const json::Value& w : workers) {
    sum += val(w, {"requests"});
    busy += val(w, {"requests"}) > 0;
  }
  EXPECT_EQ(sum, val(v, {"requests"}));
  EXPECT_GE(busy, 2u) << "new connections all went to one worker";
}

TEST(Status, LatencyHistogramsPlaceTheUpstreamDelay) {
  FakeUpstream a("a"), b("b");
  a.set_delay(Millis(120));
  b.set_delay(Millis(120));
  PastureServer srv(status_site(a, b), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 10; i++) ASSERT_EQ(http_get(srv.port(), "/slow").status, 200);
  std::this_thread::sleep_for(Millis(50));  // the last answer is counted just after it went out
  json::Value v = status_json(srv.port());
  const json::Value* p = pool(v, "app:pool");
  ASSERT_NE(p, nullptr);
  // 120 ms (and the proxy's own fraction of a millisecond) falls in the
  // (100 ms, 200 ms] bucket, index 10 of the bounds.
  const auto& bounds = p->find("total")->find("bounds_us")->items();
  ASSERT_EQ(bounds[10].as_number(), 200000);
  const auto& buckets = p->find("total")->find("buckets")->find("value")->items();
  EXPECT_EQ(buckets[10].as_number(), 10) << json::dump(*p->find("total"));
  double p50 = p->find("total")->find("p50_ms")->as_number();
  EXPECT_GT(p50, 100);
  EXPECT_LE(p50, 200);
  for (const char* name : {"ttfb", "total"}) {
    uint64_t in_bucket = 0;
    for (const json::Value& s : p->find("servers")->items())
      in_bucket += (uint64_t)s.find(name)->find("buckets")->find("value")->items()[10].as_number();
    EXPECT_EQ(in_bucket, 10u) << name;
  }
  // Connects on loopback take far less than the upstream's delay, but
  // some time: a clock read once per loop turn made each connect finished
  // within its turn 0 µs (review 57).
  uint64_t fast_connects = 0, connects = 0, connect_us = 0;
  for (const json::Value& s : p->find("servers")->items()) {
    const auto& cb = s.find("connect")->find("buckets")->find("value")->items();
    for (int i = 0; i <= 9; i++) fast_connects += (uint64_t)cb[i].as_number();  // <= 100 ms
    connects += val(s, {"connect", "count"});
    connect_us += val(s, {"connect", "sum_us"});
  }
  EXPECT_GE(connects, 2u);
  EXPECT_EQ(fast_connects, connects);
  EXPECT_GT(connect_us, 0u);
}

TEST(Status, PrometheusTextPassesTheReferenceParser) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(status_site(a, b), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 7; i++) ASSERT_EQ(http_get(srv.port(), "/m").status, 200);
  // A request is counted whole once its worker has finished with it, which
  // may be a moment after the client has its answer.
  Response r;
  ASSERT_TRUE(wait_until([&] {
    r = http_get(srv.port(), "/status/metrics?scope=pool");
    return r.body.find("pasture_pool_requests_total{pool=\"app:pool\"} 7\n") != std::string::npos;
  }));
  std::this_thread::sleep_for(Millis(50));
  r = http_get(srv.port(), "/status/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  auto [rc, out] = python(R"(
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
sel = sum(s.value for s in fams['pasture_server_selected'].samples)
hist = fams['pasture_server_response_seconds']
assert hist.type == 'histogram', hist.type
count = sum(s.value for s in hist.samples if s.name.endswith('_count'))
inf = sum(s.value for s in hist.samples if s.name.endswith('_bucket') and s.labels['le'] == '+Inf')
print(int(sel), int(count), int(inf), fams['pasture_requests'].type, sorted(fams['pasture_server_up'].samples[0].labels))
)",
                          r.body);
  ASSERT_EQ(rc, 0) << out << r.body;
  EXPECT_EQ(out, "7 7 7 counter ['pool', 'server']\n");
  // ?scope= keeps only what it names.
  Response pools = http_get(srv.port(), "/status/metrics?scope=pool");
  EXPECT_NE(pools.body.find("pasture_pool_requests_total"), std::string::npos);
  EXPECT_EQ(pools.body.find("pasture_server_"), std::string::npos);
  EXPECT_EQ(pools.body.find("pasture_worker_"), std::string::npos);
  EXPECT_EQ(http_get(srv.port(), "/status/metrics?scope=bogus").status, 400);
}

TEST(Status, OnlyAllowedPeersAndOnlyReads) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(status_site(a, b, "allow = 10.0.0.0/8\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_EQ(http_get(srv.port(), "/status").status, 403);
  EXPECT_EQ(http_get(srv.port(), "/status/metrics").status, 403);
  PastureServer open(status_site(a, b), 1);  // default: loopback
  ASSERT_TRUE(open.started()) << open.output();
  EXPECT_EQ(http_get(open.port(), "/status").status, 200);
  // Writes are POST with the command header (StatusControl.*); the allow
  // list comes first.
  Response denied = http_request(srv.port(), "POST", "/status/", {{"X-Pasture-Command", "1"}}, "show info");
  EXPECT_EQ(denied.status, 403);
  EXPECT_NE(denied.body.find("allow list"), std::string::npos) << denied.body;
  Response post = http_request(open.port(), "POST", "/status", {}, "x");
  EXPECT_EQ(post.status, 403);  // no X-Pasture-Command
  Response put = http_request(open.port(), "PUT", "/status", {}, "x");
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(put.header("Allow"), "GET, HEAD, POST");
  EXPECT_EQ(http_get(open.port(), "/status/nothing").status, 404);
  EXPECT_EQ(http_get(open.port(), "/status/ready").body, "ready\n");
}

// Behind a proxy the peer is the proxy: the allow list judges the client a
// trusted proxy names, and a request forwarded by a proxy pasture does not
// trust is refused (review: a front proxy on loopback opened the page to
// everyone).
TEST(Status, BehindAProxyTheClientIsJudged) {
  FakeUpstream a("a"), b("b");
  PastureServer trusting("trusted_proxies = 127.0.0.1\n" + status_site(a, b), 1);
  ASSERT_TRUE(trusting.started()) << trusting.output();
  EXPECT_EQ(http_get(trusting.port(), "/status/ready", {{"X-Forwarded-For", "192.0.2.9"}}).status, 403);
  EXPECT_EQ(http_get(trusting.port(), "/status/ready", {{"X-Forwarded-For", "192.0.2.9, 127.0.0.1"}}).status, 403);
  EXPECT_EQ(http_get(trusting.port(), "/status/ready", {{"X-Forwarded-For", "127.0.0.1"}}).status, 200);
  EXPECT_EQ(http_get(trusting.port(), "/status/ready", {{"X-Forwarded-For", "not an address"}}).status, 403);
  EXPECT_EQ(http_get(trusting.port(), "/status/ready").status, 200);
  PastureServer plain(status_site(a, b), 1);  // nobody trusted: a forwarded request names no believable client
  ASSERT_TRUE(plain.started()) << plain.output();
  EXPECT_EQ(http_get(plain.port(), "/status/ready", {{"X-Forwarded-For", "127.0.0.1"}}).status, 403);
  EXPECT_EQ(http_get(plain.port(), "/status/ready", {{"Forwarded", "for=127.0.0.1"}}).status, 403);
  EXPECT_EQ(http_get(plain.port(), "/status/ready").status, 200);
  // A head refused before routing is a request too (review: 4xx could
  // outnumber requests).
  json::Value v0 = status_json(plain.port());
  Exchange ex = exchange(plain.port(), "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
  ASSERT_EQ(ex.status(), 400);
  std::this_thread::sleep_for(Millis(50));
  json::Value v1 = status_json(plain.port());
  EXPECT_EQ(val(v1, {"requests"}) - val(v0, {"requests"}), 2u);  // the bad one and v1
  EXPECT_EQ(val(v1, {"responses", "4xx"}) - val(v0, {"responses", "4xx"}), 1u);
}

TEST(Status, CountsSurviveAKilledWorkerAndAReload) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(status_site(a, b), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 30; i++) ASSERT_EQ(http_get(srv.port(), "/before").status, 200);
  auto pids = srv.worker_pids();
  ASSERT_EQ(pids.size(), 2u);
  std::this_thread::sleep_for(Millis(50));  // the last answer is counted just after it went out
  ASSERT_EQ(kill(pids[0], SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return srv.worker_pids().size() == 3; })) << srv.output();
  json::Value v = status_json(srv.port());
  EXPECT_EQ(val(*pool(v, "app:pool"), {"requests"}), 30u);
  uint64_t since = val(v, {"counters_since"});
  ASSERT_TRUE(srv.proc().signal(SIGHUP));
  ASSERT_TRUE(wait_for_output(srv.proc(), "reloaded: generation 2")) << srv.output();
  for (int i = 0; i < 5; i++) ASSERT_EQ(http_get(srv.port(), "/after").status, 200);
  // An old worker may have taken some before it drained: what it counted
  // comes in once it has exited.
  ASSERT_TRUE(wait_until([&] { return children_of(srv.proc().pid()).size() == 2; })) << srv.output();
  std::this_thread::sleep_for(Millis(50));  // the last answer is counted just after it went out
  v = status_json(srv.port());
  EXPECT_EQ(val(v, {"generation"}), 2u);
  EXPECT_EQ(val(v, {"counters_since"}), since) << "the counters did not begin again";
  EXPECT_EQ(val(*pool(v, "app:pool"), {"requests"}), 35u);
  EXPECT_EQ(val(*server(*pool(v, "app:pool"), a.address()), {"selected"}) +
                val(*server(*pool(v, "app:pool"), b.address()), {"selected"}),
            35u);
  EXPECT_EQ(val(v, {"responses", "2xx"}), 35u + 1);  // + the first status request
}

// Found by review: during a reload's overlap, old workers (counting into
// the old region) and new ones (the carried totals, plus their own) took
// turns answering, and `requests` went 73432 -> 67330 -> 73495. Readings
// under load through a HUP must never go back; an old worker answers 503.
TEST(Status, TotalsNeverGoBackAcrossAReload) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(status_site(a, b), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::atomic<bool> stop{false};
  std::vector<std::thread> load;
  for (int i = 0; i < 2; i++)
    load.emplace_back([&] {
      while (!stop) http_get(srv.port(), "/x");
    });
  std::vector<std::pair<uint64_t, uint64_t>> seen;  // (generation, requests)
  int refused = 0;
  std::thread poll([&] {
    while (!stop) {
      Response r = http_get(srv.port(), "/status?format=json");
      if (r.status == 503) {
        refused++;
      } else if (r.status == 200) {
        json::Value v = json::parse(r.body);
        seen.emplace_back(val(v, {"generation"}), val(v, {"requests"}));
      }
      std::this_thread::sleep_for(Millis(3));
    }
  });
  std::this_thread::sleep_for(Millis(400));
  ASSERT_TRUE(srv.proc().signal(SIGHUP));
  bool reloaded = wait_for_output(srv.proc(), "reloaded: generation 2");
  std::this_thread::sleep_for(Millis(800));
  stop = true;
  for (auto& t : load) t.join();
  poll.join();
  ASSERT_TRUE(reloaded) << srv.output();
  size_t after = 0;
  for (size_t i = 1; i < seen.size(); i++) {
    EXPECT_GE(seen[i].second, seen[i - 1].second)
        << "reading " << i << ": generation " << seen[i - 1].first << " -> " << seen[i].first;
    after += seen[i].first == 2;
  }
  EXPECT_GT(after, 10u) << "too few readings after the reload (" << refused << " refused)";
}

TEST(Status, ReadyFailsWhileTheWorkerDrains) {
  FakeUpstream a("a"), b("b");
  PastureServer srv("drain_idle_grace = 3s\n" + status_site(a, b), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  Response r = c.request("GET", "/status/ready");
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(srv.proc().signal(SIGTERM));
  ASSERT_TRUE(wait_for_output(srv.proc(), "graceful shutdown")) << srv.output();
  std::this_thread::sleep_for(Millis(200));
  r = c.request("GET", "/status/ready");
  EXPECT_EQ(r.status, 503) << r.body << srv.output();
  EXPECT_EQ(r.body, "draining\n");
}

TEST(Status, PageRendersInAHeadlessBrowser) {
  if (access("/usr/bin/chromium", X_OK) != 0) GTEST_SKIP() << "chromium is not installed (scripts/setup --test)";
  FakeUpstream a("a"), b("b");
  b.stop();  // one server down: its state shows (for a minute: fail_timeout)
  std::string site = status_site(a, b);
  site.insert(site.size() - 1, " fail_timeout=60s");
  PastureServer srv(site, 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 12; i++) http_get(srv.port(), "/p");
  TempDir dir;
  std::string shot = dir.path() + "/status.png", dom = dir.path() + "/dom.html";
  std::string url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/status/";
  std::string flags = "--headless --no-sandbox --disable-gpu --user-data-dir=" + dir.path() +
                      "/profile --window-size=1400,800 --virtual-time-budget=3000 ";
  ASSERT_EQ(system(("timeout 60 chromium " + flags + "--screenshot=" + shot + " " + url + " >/dev/null 2>&1").c_str()), 0);
  std::ifstream png(shot, std::ios::binary);
  std::string head(8, '\0');
  png.read(head.data(), 8);
  EXPECT_EQ(head, "\x89PNG\r\n\x1a\n");
  ASSERT_EQ(system(("timeout 60 chromium " + flags + "--dump-dom " + url + " > " + dom + " 2>/dev/null").c_str()), 0);
  std::ifstream f(dom);
  std::string html((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("data-pool=\"app:pool\""), std::string::npos) << html;
  EXPECT_NE(html.find("data-server=\"" + a.address() + "\""), std::string::npos);
  EXPECT_NE(html.find("class=\"st st-up\""), std::string::npos);
  EXPECT_NE(html.find("class=\"st st-failing\""), std::string::npos) << "the stopped server shows as failing";
  // The script ran: rates are numbers now, and a sparkline has points.
  EXPECT_NE(html.find("/s</td>"), std::string::npos);
}

}  // namespace
}  // namespace pasture::test
