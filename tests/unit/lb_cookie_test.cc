// common/sticky_cookie.cc and lb_cookie.cc: signed, expiring sticky sessions.
#include <openssl/sha.h>

#include "common/health_state.h"
#include "common/sticky_cookie.h"
#include "lb_test_util.h"

namespace pasture::lb {
namespace {

using testing::backup;
using testing::ScriptedRandom;
using testing::srv;
using testing::TestPool;

const std::vector<std::string> kServers = {"10.0.0.1:80", "10.0.0.2:80", "[::1]:8080"};
constexpr uint64_t kT = 19675ull * 86400;  // an issue time: 2023-11-14, a whole day
constexpr uint32_t kHour = 3600;

// The pool's wall clock in the tests below.
uint64_t g_now = kT;
uint64_t test_clock() { return g_now; }

// The first 8 bytes of SHA-256(server), hex: the id before it was keyed.
std::string unkeyed_id(const std::string& server) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(server.data()), server.size(), md);
  std::string out;
  char b[3];
  for (int i = 0; i < 8; i++) out.append(b, snprintf(b, sizeof b, "%02x", md[i]));
  return out;
}

TEST(LbCookie, FormatIsIdTimeMac) {
  std::string v = make_sticky_cookie("k", "10.0.0.2:80", kT);
  ASSERT_EQ(v.size(), kStickyCookieLen);
  EXPECT_EQ(v.substr(0, kStickyIdLen), sticky_server_id("k", "10.0.0.2:80"));
  EXPECT_EQ(v[kStickyIdLen], '.');
  EXPECT_EQ(v.substr(kStickyIdLen + 1, kStickyTimeLen), "6552b880");  // kT, hex
  EXPECT_EQ(v[kStickyIdLen + 1 + kStickyTimeLen], '.');
  EXPECT_EQ(v.find_first_not_of("0123456789abcdef."), std::string::npos);
  EXPECT_EQ(make_sticky_cookie("k", "10.0.0.2:80", kT), v);
  EXPECT_NE(make_sticky_cookie("k2", "10.0.0.2:80", kT), v);
  EXPECT_NE(make_sticky_cookie("k", "10.0.0.2:80", kT + 1), v);
}

// Without the secret the id says nothing about the address: it is not the
// unkeyed hash an attacker would compute for each likely host:port, and it
// changes with the secret; with the same secret it is the same everywhere
// (every worker, every reload), so sessions survive.
TEST(LbCookie, IdIsKeyedWithTheSecret) {
  for (const std::string& s : kServers) {
    EXPECT_NE(sticky_server_id("s3cret", s), unkeyed_id(s)) << s;
    EXPECT_NE(sticky_server_id("s3cret", s), sticky_server_id("other", s)) << s;
    EXPECT_EQ(sticky_server_id("s3cret", s), sticky_server_id("s3cret", s)) << s;
    EXPECT_EQ(sticky_server_id("s3cret", s).size(), kStickyIdLen);
  }
  EXPECT_NE(sticky_server_id("s3cret", kServers[0]), sticky_server_id("s3cret", kServers[1]));
  std::string v = make_sticky_cookie("s3cret", "10.0.0.2:80", kT);
  EXPECT_EQ(v.find(unkeyed_id("10.0.0.2:80")), std::string::npos);
}

TEST(LbCookie, VerifyAcceptsOnlyGenuineCookies) {
  auto verify = [](const std::string& secret, std::string_view v) {
    return verify_sticky_cookie(secret, v, kServers, kHour, kT + 10);
  };
  std::string good = make_sticky_cookie("secret", kServers[1], kT);
  EXPECT_EQ(verify("secret", good), 1);
  EXPECT_EQ(verify("secret", make_sticky_cookie("secret", kServers[2], kT)), 2);

  std::string tampered_mac = good;
  tampered_mac.back() = tampered_mac.back() == '0' ? '1' : '0';
  EXPECT_EQ(verify("secret", tampered_mac), -1);
  // A later issue time under the original MAC.
  std::string tampered_time = good;
  tampered_time[kStickyIdLen + kStickyTimeLen] = '9';
  EXPECT_EQ(verify("secret", tampered_time), -1);
  // Another server's id under this server's MAC.
  std::string swapped = sticky_server_id("secret", kServers[0]) + good.substr(kStickyIdLen);
  EXPECT_EQ(verify("secret", swapped), -1);
  // Signed under another secret.
  EXPECT_EQ(verify("secret", make_sticky_cookie("other", kServers[1], kT)), -1);
  // Unsigned: the id alone, or with an empty MAC.
  std::string id = sticky_server_id("secret", kServers[1]);
  EXPECT_EQ(verify("secret", id), -1);
  EXPECT_EQ(verify("secret", good.substr(0, kStickyIdLen + kStickyTimeLen + 2)), -1);
  EXPECT_EQ(verify("secret", ""), -1);
  EXPECT_EQ(verify("secret", good + "0"), -1);
  // Stale: the server left the pool.
  EXPECT_EQ(verify("secret", make_sticky_cookie("secret", "10.9.9.9:80", kT)), -1);
  // No secret, no trust, even for a cookie "signed" with the empty key.
  EXPECT_EQ(verify("", make_sticky_cookie("", kServers[1], kT)), -1);
}

TEST(LbCookie, IdentitySurvivesReordering) {
  std::string v = make_sticky_cookie("s", "10.0.0.2:80", kT);
  std::vector<std::string> reordered = {"10.0.0.5:80", "10.0.0.2:80", "10.0.0.1:80"};
  EXPECT_EQ(verify_sticky_cookie("s", v, reordered, kHour, kT), 1);
}

TEST(LbCookie, VerifyRejectsExpiredAndFutureCookies) {
  std::string v = make_sticky_cookie("s", kServers[0], kT);
  EXPECT_EQ(verify_sticky_cookie("s", v, kServers, kHour, kT + kHour - 1), 0);
  EXPECT_EQ(verify_sticky_cookie("s", v, kServers, kHour, kT + kHour), -1);
  EXPECT_EQ(verify_sticky_cookie("s", v, kServers, kHour, kT + 100 * kHour), -1);
  EXPECT_EQ(verify_sticky_cookie("s", v, kServers, kHour, kT - kStickyClockSkew), 0);
  EXPECT_EQ(verify_sticky_cookie("s", v, kServers, kHour, kT - kStickyClockSkew - 1), -1);
  // max_age 0 is the default, a day.
  EXPECT_EQ(verify_sticky_cookie("s", v, kServers, 0, kT + kStickyDefaultMaxAge - 1), 0);
  EXPECT_EQ(verify_sticky_cookie("s", v, kServers, 0, kT + kStickyDefaultMaxAge), -1);
}

TEST(LbCookie, EqualCt) {
  EXPECT_TRUE(equal_ct("abc", "abc"));
  EXPECT_FALSE(equal_ct("abc", "abd"));
  EXPECT_FALSE(equal_ct("abc", "ab"));
  EXPECT_TRUE(equal_ct("", ""));
}

PoolParams cookie_params(std::vector<ServerParams> servers, std::string secret = "s3cret",
                         uint32_t max_age = kHour) {
  PoolParams p;
  p.method = Method::Cookie;
  p.servers = std::move(servers);
  p.cookie_secret = std::move(secret);
  p.cookie_max_age = max_age;
  return p;
}

// A cookie pool on the test clock, at kT.
struct CookiePool : TestPool {
  explicit CookiePool(PoolParams p) : TestPool(std::move(p)) {
    g_now = kT;
    state.unix_clock = test_clock;
  }
  int pick_with(std::string_view cookie, Random* rng = nullptr) {
    RequestView rv;
    rv.sticky_cookie = cookie;
    rv.rng = rng;
    return pick(rv);
  }
  // The cookie the worker sends after a pick of `s` for a request carrying
  // `cookie`; empty if none.
  std::string to_set(std::string_view cookie, int s) {
    std::string_view id = sticky_cookie_to_set(state, cookie, s);
    return id.empty() ? "" : sticky_cookie_value(state, id);
  }
  std::string cookie_for(const std::string& server) {
    return make_sticky_cookie("s3cret", server, g_now);
  }
};

TEST(LbCookie, ValidCookieSticksWhileItsServerIsUp) {
  CookiePool p(cookie_params({srv("a:1"), srv("b:1"), srv("c:1")}));
  std::string to_c = p.cookie_for("c:1");
  for (int i = 0; i < 5; i++) ASSERT_EQ(p.pick_with(to_c), 2);
  EXPECT_EQ(p.to_set(to_c, 2), "");  // already set
  p.set_health_down(2, true);
  int s = p.pick_with(to_c);
  EXPECT_NE(s, 2);
  EXPECT_EQ(p.to_set(to_c, s), make_sticky_cookie("s3cret", p.state.servers[s].id, kT));
  p.set_health_down(2, false);
  EXPECT_EQ(p.pick_with(to_c), 2);
}

TEST(LbCookie, InvalidCookiesAreIgnoredNotTrusted) {
  CookiePool p(cookie_params({srv("a:1"), srv("b:1"), srv("c:1")}));
  std::string to_c = p.cookie_for("c:1");
  std::string forged = make_sticky_cookie("guess", "c:1", kT);
  std::string tampered = to_c;
  tampered[kStickyIdLen + kStickyTimeLen + 5] ^= 1;
  std::string stale = p.cookie_for("gone:1");
  std::string unsigned_id = sticky_server_id("s3cret", "c:1");
  // Round robin as if no cookie: a b c a b c ...
  std::string seq;
  for (const std::string& bad :
       {forged, tampered, stale, unsigned_id, std::string("x"), std::string()}) {
    int s = p.pick_with(bad);
    seq += (char)('a' + s);
    EXPECT_EQ(p.to_set(bad, s), p.cookie_for(p.state.servers[s].id));
  }
  EXPECT_EQ(seq, "abcabc");
  // Forged values of other issue times share the cache; the genuine one
  // still verifies.
  for (uint64_t t = kT - 600; t <= kT + 60; t += 7) {
    std::string f = make_sticky_cookie("guess", "c:1", t);
    f.replace(0, kStickyIdLen, sticky_server_id("s3cret", "c:1"));
    ASSERT_NE(p.pick_with(f), -1);
    ASSERT_EQ(p.to_set(f, 2), to_c);
  }
  EXPECT_EQ(p.pick_with(to_c), 2);
}

TEST(LbCookie, FirstAnswerGetsACookieThatThenSticks) {
  CookiePool p(cookie_params({srv("a:1"), srv("b:1"), backup("c:1")}));
  for (int client = 0; client < 4; client++) {
    int first = p.pick_with("");
    std::string set = p.to_set("", first);
    ASSERT_EQ(set, p.cookie_for(p.state.servers[first].id));
    for (int i = 0; i < 3; i++) ASSERT_EQ(p.pick_with(set), first);
  }
}

// Another worker (its own copy of the pool state) issues the same values.
TEST(LbCookie, WorkersAgree) {
  CookiePool w1(cookie_params({srv("a:1"), srv("b:1")}));
  CookiePool w2(cookie_params({srv("b:1"), srv("a:1")}));  // after a reload that reordered
  std::string set = w1.to_set("", 1);
  EXPECT_EQ(w2.pick_with(set), 0);
  EXPECT_EQ(w2.to_set(set, 0), "");
}

TEST(LbCookie, WithoutASecretNothingIsSetOrTrusted) {
  CookiePool p(cookie_params({srv("a:1"), srv("b:1")}, ""));
  EXPECT_FALSE(p.state.sticky.enabled());
  EXPECT_EQ(p.sequence(4), "a b a b");
  EXPECT_EQ(sticky_cookie_to_set(p.state, "", 0), "");
  std::string unsigned_b = make_sticky_cookie("", "b:1", kT);
  EXPECT_EQ(p.pick_with(unsigned_b), 0);
  EXPECT_EQ(p.pick_with(unsigned_b), 1);
}

// A cookie max_age old is ignored: a fresh pick and a new cookie. Past half
// its age it is still honoured, and re-issued so an active client keeps its
// server.
TEST(LbCookie, ExpiredCookieIsIgnoredAndOldOneReissued) {
  CookiePool p(cookie_params({srv("a:1"), srv("b:1"), srv("c:1")}, "s3cret", kHour));
  std::string to_c = p.cookie_for("c:1");
  g_now = kT + kHour / 2 - 1;
  EXPECT_EQ(p.pick_with(to_c), 2);
  EXPECT_EQ(p.to_set(to_c, 2), "");
  g_now = kT + kHour / 2 + 100;
  EXPECT_EQ(p.pick_with(to_c), 2);
  std::string renewed = p.to_set(to_c, 2);
  EXPECT_EQ(renewed, make_sticky_cookie("s3cret", "c:1", kT + kHour / 2));
  EXPECT_EQ(p.pick_with(renewed), 2);
  EXPECT_EQ(p.to_set(renewed, 2), "");
  g_now = kT + kHour - 1;
  EXPECT_EQ(p.pick_with(to_c), 2);
  g_now = kT + kHour;
  std::string seq;
  for (int i = 0; i < 6; i++) {
    int s = p.pick_with(to_c);
    seq += (char)('a' + s);
    EXPECT_EQ(p.to_set(to_c, s), p.cookie_for(p.state.servers[s].id));
  }
  EXPECT_EQ(seq, "abcabc");  // round robin, as without a cookie
  // The renewed cookie lives on: issued at half-life plus 100 s, rounded
  // down to the step (max_age / 16), it lasts from half-life to max_age more.
  EXPECT_EQ(p.pick_with(renewed), 2);
  g_now = kT + kHour / 2 + kHour - 1;
  EXPECT_EQ(p.pick_with(renewed), 2);
  g_now = kT + kHour / 2 + kHour;
  EXPECT_EQ(p.to_set(renewed, 2), p.cookie_for("c:1"));  // expired: a new one
}

// A backup server serves only while no primary can: its cookie pins the
// client there only while every primary is unusable.
TEST(LbCookie, BackupCookieYieldsToUsablePrimaries) {
  CookiePool p(cookie_params({srv("a:1"), srv("b:1"), backup("z:1")}));
  std::string to_z = p.cookie_for("z:1");
  std::string seq;
  for (int i = 0; i < 4; i++) {
    int s = p.pick_with(to_z);
    seq += (char)('a' + s);
    EXPECT_EQ(p.to_set(to_z, s), p.cookie_for(p.state.servers[s].id));
  }
  EXPECT_EQ(seq, "abab");
  p.set_health_down(0, true);
  EXPECT_EQ(p.pick_with(to_z), 1);  // one primary is enough
  p.set_health_down(1, true);
  for (int i = 0; i < 3; i++) EXPECT_EQ(p.pick_with(to_z), 2);
  EXPECT_EQ(p.to_set(to_z, 2), "");
  p.set_health_down(0, false);
  EXPECT_EQ(p.pick_with(to_z), 0);
}

// A server in slow start takes a request with its cookie with probability
// ramp (the other methods' admission), so the clients still pinned to it
// come back gradually, not all at once.
TEST(LbCookie, SlowStartAdmitsCookieTrafficByTheRamp) {
  ServerParams b = srv("b:1");
  b.slow_start_ms = 10000;
  CookiePool p(cookie_params({srv("a:1"), b}));
  std::string to_b = p.cookie_for("b:1");
  p.now_ms = 100000;
  p.state.server_slots[1].recovered_at_ms.store(p.now_ms);  // ramp 0: admits none
  for (int i = 0; i < 10; i++) ASSERT_EQ(p.pick_with(to_b), 0);
  EXPECT_FALSE(p.to_set(to_b, 0).empty());  // the client moves, with a cookie for a

  p.now_ms += 5000;  // ramp 1/2: the coin decides
  ScriptedRandom low({0}), high({~uint64_t{0}});
  EXPECT_EQ(p.pick_with(to_b, &low), 1);
  EXPECT_EQ(low.draws(), 1u);
  int b_picks = 0;
  for (int i = 0; i < 20; i++) b_picks += p.pick_with(to_b, &high) == 1;
  EXPECT_EQ(high.draws(), 20u);
  EXPECT_LT(b_picks, 20);  // only the round robin fallback's own share

  p.now_ms -= 2500;  // ramp 1/4: b gets 25% by cookie, plus 20% of the rest by round robin
  WyRand rng(7);
  std::vector<double> sh = testing::shares(2, 20000, [&](int) { return p.pick_with(to_b, &rng); });
  EXPECT_NEAR(sh[1], 0.25 + 0.75 * 0.2, 0.02);

  p.now_ms += 10000;  // ramp over: always b, whatever the coin
  for (int i = 0; i < 5; i++) ASSERT_EQ(p.pick_with(to_b, &high), 1);
}

}  // namespace
}  // namespace pasture::lb
