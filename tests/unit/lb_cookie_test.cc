// common/sticky_cookie.cc and lb_cookie.cc: signed sticky sessions.
#include "common/sticky_cookie.h"
#include "lb_test_util.h"

namespace pasture::lb {
namespace {

using testing::backup;
using testing::srv;
using testing::TestPool;

const std::vector<std::string> kServers = {"10.0.0.1:80", "10.0.0.2:80", "[::1]:8080"};

TEST(LbCookie, FormatIsIdDotHmac) {
  std::string v = make_sticky_cookie("k", "10.0.0.2:80");
  ASSERT_EQ(v.size(), kStickyCookieLen);
  EXPECT_EQ(v.substr(0, kStickyIdLen), sticky_server_id("10.0.0.2:80"));
  EXPECT_EQ(v[kStickyIdLen], '.');
  EXPECT_EQ(v.find_first_not_of("0123456789abcdef."), std::string::npos);
  EXPECT_EQ(v.find("10.0.0.2"), std::string::npos);  // the address is not revealed
  // RFC 4231 test case 2 shows HMAC-SHA256 under "Jefe"; ours signs the id.
  EXPECT_EQ(make_sticky_cookie("k", "10.0.0.2:80"), v);
  EXPECT_NE(make_sticky_cookie("k2", "10.0.0.2:80"), v);
}

TEST(LbCookie, VerifyAcceptsOnlyGenuineCookies) {
  std::string good = make_sticky_cookie("secret", kServers[1]);
  EXPECT_EQ(verify_sticky_cookie("secret", good, kServers), 1);
  EXPECT_EQ(verify_sticky_cookie("secret", make_sticky_cookie("secret", kServers[2]), kServers), 2);

  std::string tampered_mac = good;
  tampered_mac.back() = tampered_mac.back() == '0' ? '1' : '0';
  EXPECT_EQ(verify_sticky_cookie("secret", tampered_mac, kServers), -1);
  // Another server's id under this server's MAC.
  std::string swapped = sticky_server_id(kServers[0]) + good.substr(kStickyIdLen);
  EXPECT_EQ(verify_sticky_cookie("secret", swapped, kServers), -1);
  // Signed under another secret.
  EXPECT_EQ(verify_sticky_cookie("secret", make_sticky_cookie("other", kServers[1]), kServers), -1);
  // Unsigned: the id alone, or with an empty MAC.
  EXPECT_EQ(verify_sticky_cookie("secret", sticky_server_id(kServers[1]), kServers), -1);
  EXPECT_EQ(verify_sticky_cookie("secret", sticky_server_id(kServers[1]) + ".", kServers), -1);
  EXPECT_EQ(verify_sticky_cookie("secret", "", kServers), -1);
  EXPECT_EQ(verify_sticky_cookie("secret", good + "0", kServers), -1);
  // Stale: the server left the pool.
  EXPECT_EQ(verify_sticky_cookie("secret", make_sticky_cookie("secret", "10.9.9.9:80"), kServers),
            -1);
  // No secret, no trust, even for a cookie "signed" with the empty key.
  EXPECT_EQ(verify_sticky_cookie("", make_sticky_cookie("", kServers[1]), kServers), -1);
}

TEST(LbCookie, IdentitySurvivesReordering) {
  std::string v = make_sticky_cookie("s", "10.0.0.2:80");
  std::vector<std::string> reordered = {"10.0.0.5:80", "10.0.0.2:80", "10.0.0.1:80"};
  EXPECT_EQ(verify_sticky_cookie("s", v, reordered), 1);
}

TEST(LbCookie, EqualCt) {
  EXPECT_TRUE(equal_ct("abc", "abc"));
  EXPECT_FALSE(equal_ct("abc", "abd"));
  EXPECT_FALSE(equal_ct("abc", "ab"));
  EXPECT_TRUE(equal_ct("", ""));
}

PoolParams cookie_params(std::vector<ServerParams> servers, std::string secret = "s3cret") {
  PoolParams p;
  p.method = Method::Cookie;
  p.servers = std::move(servers);
  p.cookie_secret = std::move(secret);
  return p;
}

int pick_with(TestPool& p, std::string_view cookie) {
  RequestView rv;
  rv.sticky_cookie = cookie;
  return p.pick(rv);
}

TEST(LbCookie, ValidCookieSticksWhileItsServerIsUp) {
  TestPool p(cookie_params({srv("a:1"), srv("b:1"), srv("c:1")}));
  std::string to_c = make_sticky_cookie("s3cret", "c:1");
  for (int i = 0; i < 5; i++) ASSERT_EQ(pick_with(p, to_c), 2);
  EXPECT_EQ(sticky_cookie_to_set(p.state, to_c, 2), "");  // already set
  p.set_health_down(2, true);
  int s = pick_with(p, to_c);
  EXPECT_NE(s, 2);
  EXPECT_EQ(sticky_cookie_to_set(p.state, to_c, s),
            make_sticky_cookie("s3cret", p.state.servers[s].id));
  p.set_health_down(2, false);
  EXPECT_EQ(pick_with(p, to_c), 2);
}

TEST(LbCookie, InvalidCookiesAreIgnoredNotTrusted) {
  TestPool p(cookie_params({srv("a:1"), srv("b:1"), srv("c:1")}));
  std::string to_c = make_sticky_cookie("s3cret", "c:1");
  std::string forged = make_sticky_cookie("guess", "c:1");
  std::string tampered = to_c;
  tampered[kStickyIdLen + 5] ^= 1;
  std::string stale = make_sticky_cookie("s3cret", "gone:1");
  std::string unsigned_id = sticky_server_id("c:1");
  // Round robin as if no cookie: a b c a b c ...
  std::string seq;
  for (const std::string& bad :
       {forged, tampered, stale, unsigned_id, std::string("x"), std::string()}) {
    int s = pick_with(p, bad);
    seq += (char)('a' + s);
    EXPECT_EQ(sticky_cookie_to_set(p.state, bad, s), p.state.sticky_values[s]);
  }
  EXPECT_EQ(seq, "abcabc");
}

TEST(LbCookie, FirstAnswerGetsACookieThatThenSticks) {
  TestPool p(cookie_params({srv("a:1"), srv("b:1"), backup("c:1")}));
  for (int client = 0; client < 4; client++) {
    int first = pick_with(p, "");
    std::string set(sticky_cookie_to_set(p.state, "", first));
    ASSERT_FALSE(set.empty());
    for (int i = 0; i < 3; i++) ASSERT_EQ(pick_with(p, set), first);
  }
}

TEST(LbCookie, WithoutASecretNothingIsSetOrTrusted) {
  TestPool p(cookie_params({srv("a:1"), srv("b:1")}, ""));
  EXPECT_TRUE(p.state.sticky_values.empty());
  EXPECT_EQ(p.sequence(4), "a b a b");
  EXPECT_EQ(sticky_cookie_to_set(p.state, "", 0), "");
}

}  // namespace
}  // namespace pasture::lb
