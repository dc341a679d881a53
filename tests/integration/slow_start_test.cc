// Slow start end to end: a server that comes back (active check passes
// again, or a passive mark-down expires) gets its weight ramped from 0 over
// `slow_start=T` (a per-server parameter of `servers =`). The real binary,
// several workers sharing the ramp through shared memory, fake upstreams.
//
// Steady traffic from several clients is bucketed by time since the server
// came back; the test asserts the trend (low share early, near full share at
// the end, rising in between), with bounds loose enough for a loaded box.
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/pasture_server.h"

namespace pasture::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kClients = 4;
constexpr int kBuckets = 5;  // of 500 ms each, over 2.5 s
constexpr Millis kBucket{500};

Millis wait_log(PastureServer& srv, const std::string& needle, Millis timeout = Millis{8000}) {
  auto t0 = Clock::now();
  while (Clock::now() - t0 < timeout) {
    if (srv.output().find(needle) != std::string::npos)
      return std::chrono::duration_cast<Millis>(Clock::now() - t0);
    std::this_thread::sleep_for(Millis{5});
  }
  return Millis{-1};
}

// Answers per time bucket: how many, and how many from the recovering server.
struct Buckets {
  int total[kBuckets] = {};
  int ramping[kBuckets] = {};
  int before = 0;          // answered before t0 (the server was still out)
  int ramping_before = 0;  // ... of which by the recovering server
  int errors = 0;

  double share(int i) const { return total[i] ? (double)ramping[i] / total[i] : -1; }
  std::string str() const {
    std::string s;
    char buf[64];
    for (int i = 0; i < kBuckets; i++) {
      snprintf(buf, sizeof buf, "%s%d-%dms: %d/%d (%.2f)", i ? ", " : "", i * 500, (i + 1) * 500,
               ramping[i], total[i], share(i));
      s += buf;
    }
    return s;
  }
};

// kClients threads send GETs (new connection each: spread over the workers)
// until t0 + kBuckets x kBucket; each answer is put in the bucket of the
// instant it was sent, relative to t0. Paced, 1 ms between a client's
// requests: unpaced, they made ~10,000 connections a second (two TIME_WAIT
// sockets each, client's and upstream's: 82,000 after one run), and a CI
// run saw all four clients stall for 500 ms once the loopback's ports
// were all recently used; a few thousand answers per second are plenty
// for the shares below.
Buckets drive(uint16_t port, Clock::time_point t0, const std::string& ramping_name) {
  Buckets b;
  std::mutex mu;
  auto end = t0 + kBuckets * kBucket;
  std::vector<std::thread> ts;
  for (int c = 0; c < kClients; c++)
    ts.emplace_back([&] {
      while (Clock::now() < end) {
        auto sent = Clock::now();
        Response r = http_get(port, "/");
        {
          std::lock_guard<std::mutex> l(mu);
          if (!r.ok() || r.status != 200) {
            b.errors++;
          } else {
            bool ramp = r.header("X-Upstream") == ramping_name;
            if (sent < t0) {
              b.before++, b.ramping_before += ramp;
            } else if (int i = (int)((sent - t0) / kBucket); i < kBuckets) {
              b.total[i]++, b.ramping[i] += ramp;
            }
          }
        }
        std::this_thread::sleep_for(Millis{1});
      }
    });
  for (auto& t : ts) t.join();
  return b;
}

// The ramp's shape, for a server whose full share is `full`: the first
// 500 ms well below it, the last 500 ms (after the ramp) near it, rising.
void expect_ramp(const Buckets& b, double full) {
  for (int i = 0; i < kBuckets; i++) ASSERT_GE(b.total[i], 20) << "too few answers: " << b.str();
  // Ramp 0 -> 25 % over the first bucket: well under half the full share.
  EXPECT_LT(b.share(0), full * 0.5) << b.str();
  // Ramp over: full share (0.5 of the requests at full weight), loosely.
  EXPECT_GT(b.share(4), full * 0.75) << b.str();
  EXPECT_LT(b.share(4), full * 1.25) << b.str();
  // Gradual, not a step: the middle of the ramp sits between the ends.
  EXPECT_GT(b.share(2), b.share(0)) << b.str();
  EXPECT_LT(b.share(2), b.share(4)) << b.str();
  EXPECT_GT(b.share(2), full * 0.25) << b.str();
  EXPECT_LT(b.share(2), full * 0.95) << b.str();
  // Roughly monotonic, bucket to bucket (sampling noise allowed).
  for (int i = 1; i < kBuckets; i++) EXPECT_GT(b.share(i), b.share(i - 1) - 0.2 * full) << b.str();
}

// round_robin, 3 workers: b fails its health check, is marked down, passes
// again; from the "up" line on, its share of the shared rotation ramps up.
TEST(SlowStart, RoundRobinRampsAfterActiveCheckRecovers) {
  FakeUpstream a("a"), b("b");
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = " + a.address() + " " +
                        b.address() + " slow_start=2s\nhealth_check = /health\n"
                        "health_interval = 100ms\nhealth_timeout = 1s\nfall = 1\nrise = 1\n",
                    3);
  ASSERT_TRUE(srv.started()) << srv.output();
  FakeUpstream* bp = &b;
  b.set_handler([bp](const RecordedRequest& r) {
    Reply rep = bp->default_reply(r);
    if (r.target == "/health") rep.status = 503;
    return rep;
  });
  ASSERT_GE(wait_log(srv, "server " + b.address() + " down (health check").count(), 0) << srv.output();
  b.reset_handler();
  ASSERT_GE(wait_log(srv, "server " + b.address() + " up (health check").count(), 0) << srv.output();
  Buckets got = drive(srv.port(), Clock::now(), "b");
  printf("[ measured ] round_robin, share of b after recovery (slow_start=2s, full 0.50): %s\n",
         got.str().c_str());
  EXPECT_EQ(got.errors, 0);
  expect_ramp(got, 0.5);
}

// least_conn, 3 workers: b is stopped, passive checks mark it down for
// fail_timeout=1s, it is restarted meanwhile; the ramp starts when the
// mark-down expires.
TEST(SlowStart, LeastConnRampsAfterPassiveMarkDownExpires) {
  FakeUpstream a("a"), b("b");
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nmethod = least_conn\nservers = " +
                        a.address() + " " + b.address() +
                        " max_fails=1 fail_timeout=1s slow_start=2s\nretries = 1\n",
                    3);
  ASSERT_TRUE(srv.started()) << srv.output();
  b.stop();
  Clock::time_point down_seen{};
  for (int i = 0; i < 200 && srv.output().find("server " + b.address() + " down for 1s") == std::string::npos;
       i++)
    http_get(srv.port(), "/");
  ASSERT_GE(wait_log(srv, "server " + b.address() + " down for 1s (passive").count(), 0) << srv.output();
  down_seen = Clock::now();
  ASSERT_TRUE(b.restart());
  // The mark-down ends fail_timeout after it began (at most a few ms before
  // we saw its log line): the ramp starts there.
  Buckets got = drive(srv.port(), down_seen + Millis{1000}, "b");
  printf("[ measured ] least_conn, share of b after passive recovery (slow_start=2s, full 0.50): %s; "
         "before: %d/%d\n",
         got.str().c_str(), got.ramping_before, got.before);
  EXPECT_EQ(got.errors, 0);
  EXPECT_LE(got.ramping_before, 2) << "b served while marked down";
  expect_ramp(got, 0.5);
}

}  // namespace
}  // namespace pasture::test
