// The status app's health record, worker respawns and shared history (issue
// 14) over real sockets and processes: a health-checked server that goes
// down and comes back, a passive mark-down under concurrent workers, a
// killed worker's slot, and the history ring the page draws from.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

#include "conf/json.h"
#include "tests/integration/raw_http.h"

namespace pasture::test {
namespace {

namespace json = conf::json;
using Clock = std::chrono::steady_clock;

// Server-section keys first (they follow PastureServer's [server:main]).
std::string site(const TempDir& dir, const FakeUpstream& a, const std::string& b_addr, const std::string& pool_keys,
                 const std::string& server_keys = "") {
  return "admin_socket = " + dir.path() + "/admin.sock\n" + server_keys +
         "\n[composite:main]\nuse = egg:Paste#urlmap\n/ = pool\n/status = stat\n\n"
         "[app:stat]\nuse = egg:pasture#status\n\n"
         "[app:pool]\nuse = egg:pasture#balancer\nservers = " + a.address() + " " + b_addr + "\n" + pool_keys;
}

// Right after a HUP a connection may still reach an old worker, whose
// status answers are 503 until it exits (its counters are superseded): the
// next connection gets a new one.
json::Value status_json(uint16_t port) {
  Response r = http_get(port, "/status?format=json");
  for (int i = 0; i < 200 && r.status == 503; i++) {
    std::this_thread::sleep_for(Millis(25));
    r = http_get(port, "/status?format=json");
  }
  EXPECT_EQ(r.status, 200) << r.error;
  return json::parse(r.body);
}

const json::Value* server(const json::Value& v, const std::string& name) {
  for (const json::Value& p : v.find("pools")->items())
    if (p.find("name")->as_string() == "app:pool")
      for (const json::Value& s : p.find("servers")->items())
        if (s.find("name")->as_string() == name) return &s;
  return nullptr;
}

// The typed value of the server's health field `k` (~0 when missing).
uint64_t health(const json::Value& v, const std::string& srv, const char* k) {
  const json::Value* s = server(v, srv);
  const json::Value* h = s ? s->find("health") : nullptr;
  const json::Value* f = h ? h->find(k) : nullptr;
  const json::Value* x = f ? f->find("value") : nullptr;
  return x ? (uint64_t)x->as_number() : ~0ull;
}

std::string health_str(const json::Value& v, const std::string& srv, const char* k) {
  const json::Value* s = server(v, srv);
  const json::Value* h = s ? s->find("health") : nullptr;
  const json::Value* f = h ? h->find(k) : nullptr;
  if (!f) return "<missing>";
  if (f->type() == json::Value::Type::Bool) return f->as_bool() ? "true" : "false";
  return f->as_string();
}

std::string state(const json::Value& v, const std::string& srv) {
  const json::Value* s = server(v, srv);
  return s ? s->find("state")->as_string() : "<missing>";
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

// Polls the status JSON until `pred` holds (10 s at most); the last reading.
template <typename Pred>
json::Value poll_json(uint16_t port, Pred pred, bool* ok) {
  auto t0 = Clock::now();
  json::Value v = status_json(port);
  while (!pred(v) && Clock::now() - t0 < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(Millis(15));
    v = status_json(port);
  }
  *ok = pred(v);
  return v;
}

TEST(StatusHealth, ActiveDownAndBackIsRecorded) {
  FakeUpstream a("a"), b("b");
  TempDir dir;
  PastureServer srv(site(dir, a, b.address(), "health_check = /health\nhealth_interval = 0.25\nfall = 3\nrise = 3\n"),
                    2);
  ASSERT_TRUE(srv.started()) << srv.output();
  const std::string B = b.address();
  bool ok = false;
  json::Value v = poll_json(srv.port(), [&](const json::Value& x) { return health_str(x, B, "check") == "ok"; }, &ok);
  ASSERT_TRUE(ok) << json::dump(*server(v, B));
  EXPECT_EQ(health(v, B, "check_code"), 200u);
  EXPECT_EQ(health_str(v, B, "check_reason"), "status");
  EXPECT_EQ(health(v, B, "rise"), 3u);
  EXPECT_EQ(health(v, B, "fall"), 3u);
  EXPECT_EQ(health(v, B, "transitions"), 0u);
  EXPECT_EQ(health(v, B, "downtime"), 0u);
  EXPECT_EQ(health_str(v, B, "checked"), "true");

  fail_health(b);
  // Fall progress: one failed probe, still up.
  v = poll_json(srv.port(), [&](const json::Value& x) { return health(x, B, "consecutive_fail") == 1; }, &ok);
  ASSERT_TRUE(ok) << json::dump(*server(v, B));
  EXPECT_EQ(state(v, B), "up");
  EXPECT_EQ(health_str(v, B, "check"), "fail");
  EXPECT_EQ(health(v, B, "check_code"), 503u);
  EXPECT_EQ(health(v, B, "consecutive_ok"), 0u);
  v = poll_json(srv.port(), [&](const json::Value& x) { return state(x, B) == "down"; }, &ok);
  ASSERT_TRUE(ok) << json::dump(*server(v, B)) << srv.output();
  auto down_seen = Clock::now();
  EXPECT_EQ(health(v, B, "transitions"), 1u);
  EXPECT_EQ(health_str(v, B, "down"), "true");
  EXPECT_GE(health(v, B, "consecutive_fail"), 3u);
  EXPECT_LE(health(v, B, "last_change"), 1u);
  // The current down period counts before it ends.
  std::this_thread::sleep_for(Millis(2100));
  v = status_json(srv.port());
  EXPECT_GE(health(v, B, "downtime"), 2u);
  EXPECT_GE(health(v, B, "last_change"), 2u);

  b.reset_handler();
  auto healthy_at = Clock::now();
  // Rise progress: one good probe, still down.
  v = poll_json(srv.port(), [&](const json::Value& x) { return health(x, B, "consecutive_ok") == 1; }, &ok);
  ASSERT_TRUE(ok) << json::dump(*server(v, B));
  EXPECT_EQ(state(v, B), "down");
  EXPECT_EQ(health(v, B, "check_code"), 200u);
  v = poll_json(srv.port(), [&](const json::Value& x) { return state(x, B) == "up"; }, &ok);
  ASSERT_TRUE(ok) << json::dump(*server(v, B)) << srv.output();
  uint64_t was_down_s =
      (uint64_t)std::chrono::duration_cast<std::chrono::seconds>(healthy_at - down_seen).count();
  EXPECT_EQ(health(v, B, "transitions"), 1u);
  EXPECT_EQ(health_str(v, B, "down"), "false");
  EXPECT_GE(health(v, B, "downtime"), was_down_s);
  EXPECT_GE(health(v, B, "downtime"), 2u);
  EXPECT_LE(health(v, B, "downtime"), 6u);
  EXPECT_LE(health(v, B, "last_change"), 1u);
  EXPECT_EQ(health(v, a.address(), "transitions"), 0u);
  // Up again: the downtime stops growing.
  uint64_t downtime = health(v, B, "downtime");
  std::this_thread::sleep_for(Millis(1100));
  EXPECT_EQ(health(status_json(srv.port()), B, "downtime"), downtime);

  // The same record in Prometheus text and in `pasture status`.
  Response m = http_get(srv.port(), "/status/metrics?scope=server");
  std::string lb = "{pool=\"app:pool\",server=\"" + B + "\"";
  EXPECT_NE(m.body.find("pasture_server_down_transitions_total" + lb + "} 1\n"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("pasture_server_check_status_code" + lb + "} 200\n"), std::string::npos);
  EXPECT_NE(m.body.find("pasture_server_check_success" + lb + ",reason=\"status\"} 1\n"), std::string::npos);
  EXPECT_NE(m.body.find("pasture_server_check_rise" + lb + "} 3\n"), std::string::npos);
  EXPECT_NE(m.body.find("pasture_server_downtime_seconds_total" + lb + "} " + std::to_string(downtime) + "\n"),
            std::string::npos);
  auto [rc, out] = run_pasture("status " + srv.path());
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("downtime"), std::string::npos) << out;
  size_t row = out.find(B);
  ASSERT_NE(row, std::string::npos) << out;
  std::string line = out.substr(row, out.find('\n', row) - row);
  EXPECT_NE(line.find("ok 200"), std::string::npos) << line;
  EXPECT_NE(line.find(" " + std::to_string(downtime) + "s "), std::string::npos) << line;
  // And on the page.
  Response page = http_get(srv.port(), "/status/");
  EXPECT_NE(page.body.find("data-downs=\"1\""), std::string::npos);
  EXPECT_NE(page.body.find("data-check=\"ok\""), std::string::npos);
}

// Passive mark-downs count too, once per down period however many workers
// see the failures at the same time; a request that succeeds ends it.
TEST(StatusHealth, PassiveDownIsCountedOnceAcrossWorkers) {
  FakeUpstream a("a"), b("b");
  const std::string B = b.address();
  b.stop();
  TempDir dir;
  PastureServer srv(site(dir, a, B + " max_fails=1 fail_timeout=1s", ""), 4);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; t++)
    clients.emplace_back([&] {
      for (int i = 0; i < 10; i++) http_get(srv.port(), "/p");
    });
  for (auto& c : clients) c.join();
  json::Value v = status_json(srv.port());
  EXPECT_EQ(health(v, B, "transitions"), 1u) << json::dump(*server(v, B)) << srv.output();
  EXPECT_EQ(health_str(v, B, "down"), "true");
  EXPECT_EQ(health_str(v, B, "checked"), "false");
  EXPECT_EQ(health_str(v, B, "check"), "");
  // Still failing after fail_timeout: the same down period goes on.
  std::this_thread::sleep_for(Millis(1200));
  for (int i = 0; i < 10; i++) http_get(srv.port(), "/p");
  v = status_json(srv.port());
  EXPECT_EQ(health(v, B, "transitions"), 1u) << json::dump(*server(v, B));
  EXPECT_GE(health(v, B, "downtime"), 1u);
  auto back = Clock::now();
  ASSERT_TRUE(b.restart());
  std::this_thread::sleep_for(Millis(1100));  // past the last mark-down's fail_timeout
  bool ok = false;
  v = poll_json(srv.port(), [&](const json::Value& x) {
    http_get(srv.port(), "/p");
    return health_str(x, B, "down") == "false";
  }, &ok);
  ASSERT_TRUE(ok) << json::dump(*server(v, B)) << srv.output();
  EXPECT_EQ(health(v, B, "transitions"), 1u);
  EXPECT_GE(health(v, B, "downtime"), 2u);
  uint64_t since_back = (uint64_t)std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - back).count();
  EXPECT_LE(health(v, B, "last_change"), since_back + 1);
  EXPECT_GT(b.request_count(), 0u);
  // A reload keeps the record of a server still configured.
  uint64_t downtime = health(v, B, "downtime");
  ASSERT_TRUE(srv.proc().signal(SIGHUP));
  ASSERT_TRUE(wait_for_output(srv.proc(), "reloaded: generation 2")) << srv.output();
  v = poll_json(srv.port(), [](const json::Value& x) { return x.find("generation")->find("value")->as_number() == 2; },
                &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(health(v, B, "transitions"), 1u);
  EXPECT_EQ(health(v, B, "downtime"), downtime);
  EXPECT_EQ(health_str(v, B, "down"), "false");
}

TEST(StatusWorkers, AKilledWorkerShowsItsRespawnAndNewPid) {
  FakeUpstream a("a"), b("b");
  TempDir dir;
  PastureServer srv(site(dir, a, b.address(), ""), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  json::Value v = status_json(srv.port());
  const auto& workers = v.find("workers")->items();
  ASSERT_EQ(workers.size(), 2u);
  int victim = -1;
  for (const json::Value& w : workers) {
    EXPECT_EQ(w.find("respawns")->find("value")->as_number(), 0);
    EXPECT_EQ(w.find("respawns")->find("type")->as_string(), "counter");
    EXPECT_EQ(w.find("generation")->find("value")->as_number(), 1);
    if (w.find("slot")->find("value")->as_number() == 0) victim = (int)w.find("pid")->find("value")->as_number();
  }
  ASSERT_GT(victim, 0);
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  bool ok = false;
  v = poll_json(srv.port(), [&](const json::Value& x) {
    for (const json::Value& w : x.find("workers")->items())
      if (w.find("slot")->find("value")->as_number() == 0 && w.find("pid")->find("value")->as_number() != victim)
        return true;
    return false;
  }, &ok);
  ASSERT_TRUE(ok) << srv.output();
  for (const json::Value& w : v.find("workers")->items()) {
    int slot = (int)w.find("slot")->find("value")->as_number();
    EXPECT_EQ(w.find("respawns")->find("value")->as_number(), slot == 0 ? 1 : 0) << "slot " << slot;
    EXPECT_EQ(w.find("generation")->find("value")->as_number(), 1);
  }
  Response m = http_get(srv.port(), "/status/metrics?scope=worker");
  EXPECT_NE(m.body.find("pasture_worker_respawns_total{worker=\"0\"} 1\n"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("pasture_worker_respawns_total{worker=\"1\"} 0\n"), std::string::npos);
  // A reload forks new workers for generation 2: their slots start over.
  ASSERT_TRUE(srv.proc().signal(SIGHUP));
  ASSERT_TRUE(wait_for_output(srv.proc(), "reloaded: generation 2")) << srv.output();
  // (An old worker may take a connection while it stops accepting.)
  v = poll_json(srv.port(), [](const json::Value& x) { return x.find("generation")->find("value")->as_number() == 2; },
                &ok);
  ASSERT_TRUE(ok);
  for (const json::Value& w : v.find("workers")->items()) {
    EXPECT_EQ(w.find("generation")->find("value")->as_number(), 2);
    EXPECT_EQ(w.find("respawns")->find("value")->as_number(), 0);
  }
}

TEST(StatusHistory, TheRingHasSamplesAndSurvivesAReload) {
  FakeUpstream a("a"), b("b");
  TempDir dir;
  PastureServer srv(site(dir, a, b.address(), "", "status_history_interval = 0.2s\n"), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  constexpr int kRequests = 30;
  for (int i = 0; i < kRequests; i++) ASSERT_EQ(http_get(srv.port(), "/h").status, 200);
  // Every request falls into a sample within two intervals.
  bool ok = false;
  auto pool_sum = [](const json::Value& x, const char* series) {
    uint64_t n = 0;
    for (const json::Value& p : x.find("history")->find("pools")->items())
      for (const json::Value& c : p.find(series)->find("value")->items()) n += (uint64_t)c.as_number();
    return n;
  };
  json::Value v = poll_json(srv.port(), [&](const json::Value& x) {
    return pool_sum(x, "requests") == kRequests && x.find("history")->find("time")->items().size() >= 2;
  }, &ok);
  ASSERT_TRUE(ok) << json::dump(*v.find("history"));
  const json::Value& h = *v.find("history");
  EXPECT_EQ(h.find("interval_ms")->find("value")->as_number(), 200);
  size_t samples = h.find("time")->items().size();
  EXPECT_GE(samples, 2u);
  EXPECT_LE(samples, 119u);
  const json::Value& pool = h.find("pools")->items()[0];
  EXPECT_EQ(pool.find("requests")->find("value")->items().size(), samples);
  uint64_t by_server = 0;
  for (const json::Value& s : pool.find("servers")->items())
    for (const json::Value& c : s.find("requests")->find("value")->items()) by_server += (uint64_t)c.as_number();
  EXPECT_EQ(by_server, (uint64_t)kRequests);
  uint64_t total = 0;
  for (const json::Value& c : h.find("total")->find("requests")->find("value")->items()) total += (uint64_t)c.as_number();
  EXPECT_GE(total, (uint64_t)kRequests);  // + the status requests
  // The page draws the history at once (no script needed).
  Response page = http_get(srv.port(), "/status/");
  EXPECT_NE(page.body.find("class=\"spark hist\""), std::string::npos);
  // A reload keeps the samples (same first time) and goes on sampling.
  double first = h.find("time")->items()[0].as_number();
  ASSERT_TRUE(srv.proc().signal(SIGHUP));
  ASSERT_TRUE(wait_for_output(srv.proc(), "reloaded: generation 2")) << srv.output();
  std::this_thread::sleep_for(Millis(600));
  v = poll_json(srv.port(), [](const json::Value& x) { return x.find("generation")->find("value")->as_number() == 2; },
                &ok);
  const json::Value& h2 = *v.find("history");
  EXPECT_EQ(h2.find("time")->items()[0].as_number(), first);
  EXPECT_GT(h2.find("time")->items().size(), samples);
  EXPECT_EQ(pool_sum(v, "requests"), (uint64_t)kRequests);
}

}  // namespace
}  // namespace pasture::test
