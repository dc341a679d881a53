// The request target routing decides on is the one the upstream is sent
// (issue 20 #4, #5): a urlmap prefix cannot be bypassed by spelling the path
// differently (percent-escapes, dot segments, doubled slashes), and an
// absolute-form target's authority is the Host the chosen pool sees. One
// capturing upstream per pool shows which pool got what.
#include <string>
#include <vector>

#include "tests/integration/raw_http.h"

namespace pasture::test {
namespace {

std::string pool(const std::string& name, const FakeUpstream& up) {
  return "[app:" + name + "]\nuse = egg:pasture#balancer\nservers = " + up.address() +
         "\nretries = 0\n\n";
}

std::string get(const std::string& target, const std::string& host = "site.test") {
  return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
}

// `/ = pub`, `/admin = adm`, `/old = old` (Paste's proxy with a base path).
class UrlmapSite {
 public:
  UrlmapSite()
      : srv_("[composite:main]\nuse = egg:Paste#urlmap\n/ = pub\n/admin = adm\n/old = old\n\n" +
                 pool("pub", pub) + pool("adm", adm) + "[app:old]\nuse = egg:Paste#proxy\naddress = http://" +
                 old.address() + "/base/\n",
             1) {}
  PastureServer& srv() { return srv_; }
  void clear() {
    pub.clear();
    adm.clear();
    old.clear();
  }
  size_t total() const { return pub.request_count() + adm.request_count() + old.request_count(); }

  FakeUpstream pub{"pub"}, adm{"adm"}, old{"old"};

 private:
  PastureServer srv_;
};

TEST(RequestTarget, PrefixCannotBeBypassedBySpellingThePathDifferently) {
  UrlmapSite site;
  ASSERT_TRUE(site.srv().started()) << site.srv().output();
  for (const std::string target :
       {"/admin/users", "/%61dmin/users", "/%61%64%6D%69%6E/users", "/x/../admin/users",
        "/./admin/users", "//admin/users", "/admin//users", "/admin%2Fusers", "/x%2F..%2Fadmin/users",
        "/x/%2e%2e/admin/users", "/admin/x/../users"}) {
    SCOPED_TRACE(target);
    site.clear();
    Exchange ex = exchange(site.srv().port(), get(target));
    EXPECT_EQ(ex.status(), 200) << ex.bytes;
    EXPECT_EQ(ex.body(), "adm GET /admin/users\n");
    ASSERT_EQ(site.adm.request_count(), 1u);
    EXPECT_EQ(site.adm.requests()[0].target, "/admin/users");  // what was routed on
    EXPECT_EQ(site.pub.request_count(), 0u);
  }
  // The other way round: a path that only looks like it is under /admin.
  for (const std::string target : {"/admin/../public", "/admin/%2e%2e/public", "/admin%2F..%2Fpublic"}) {
    SCOPED_TRACE(target);
    site.clear();
    Exchange ex = exchange(site.srv().port(), get(target));
    EXPECT_EQ(ex.body(), "pub GET /public\n") << ex.bytes;
    EXPECT_EQ(site.adm.request_count(), 0u);
  }
}

TEST(RequestTarget, NormalPathsAndQueriesAreForwardedByteForByte) {
  UrlmapSite site;
  ASSERT_TRUE(site.srv().started()) << site.srv().output();
  for (const std::string target :
       {"/", "/a/b/", "/a;p=1,2/b+c!$&'()*:@~-_.x", "/admin?next=/../%2F..", "/q?a=%zz&b=%00", "/.well-known/x",
        "/a.b/..c/..."}) {
    SCOPED_TRACE(target);
    site.clear();
    Exchange ex = exchange(site.srv().port(), get(target));
    EXPECT_EQ(ex.status(), 200) << ex.bytes;
    ASSERT_EQ(site.total(), 1u);
    std::vector<RecordedRequest> got = site.pub.request_count() ? site.pub.requests() : site.adm.requests();
    EXPECT_EQ(got[0].target, target);
  }
  // Escapes are decoded and the path sent re-escaped only where needed.
  site.clear();
  EXPECT_EQ(exchange(site.srv().port(), get("/a%20b/%7e%41%3F%23%25?x=%41")).status(), 200);
  ASSERT_EQ(site.pub.request_count(), 1u);
  EXPECT_EQ(site.pub.requests()[0].target, "/a%20b/~A%3F%23%25?x=%41");
}

// nginx: dot segments above the root, a broken escape and %00 are 400 and
// reach no upstream.
TEST(RequestTarget, UnresolvablePathsAre400) {
  UrlmapSite site;
  ASSERT_TRUE(site.srv().started()) << site.srv().output();
  for (const std::string target : {"/..", "/../admin/users", "/admin/../../x", "/%2e%2e/admin", "/a%2F..%2F..%2Fx",
                                   "/%zz", "/a%4", "/a%00b", "http://site.test/../admin", "*"}) {
    SCOPED_TRACE(target);
    site.clear();
    Exchange ex = exchange(site.srv().port(), get(target));
    EXPECT_EQ(ex.status(), 400) << ex.bytes;
    EXPECT_EQ(site.total(), 0u);
  }
  // The asterisk form is for OPTIONS only (RFC 9112 3.2.4), as in nginx.
  site.clear();
  EXPECT_EQ(exchange(site.srv().port(), "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status(),
            200);
  ASSERT_EQ(site.pub.request_count(), 1u);
  EXPECT_EQ(site.pub.requests()[0].target, "*");
}

// Paste's proxy joins its address path and the request path: a path that
// climbs out of the urlmap prefix cannot climb out of the base path either.
TEST(RequestTarget, PasteProxyBasePathCannotBeEscaped) {
  UrlmapSite site;
  ASSERT_TRUE(site.srv().started()) << site.srv().output();
  site.clear();
  EXPECT_EQ(exchange(site.srv().port(), get("/old/x")).status(), 200);
  ASSERT_EQ(site.old.request_count(), 1u);
  EXPECT_EQ(site.old.requests()[0].target, "/base/old/x");
  for (const std::string target : {"/old/%2e%2e/%2e%2e/secret", "/old/..%2F..%2F..%2Fsecret"}) {
    SCOPED_TRACE(target);
    site.clear();
    EXPECT_EQ(exchange(site.srv().port(), get(target)).status(), 400);
    EXPECT_EQ(site.total(), 0u);
  }
  site.clear();
  EXPECT_EQ(exchange(site.srv().port(), get("/old/%2e%2e/secret")).status(), 200);
  EXPECT_EQ(site.old.request_count(), 0u);
  ASSERT_EQ(site.pub.request_count(), 1u);
  EXPECT_EQ(site.pub.requests()[0].target, "/secret");
}

// Issue 20 #5, RFC 9112 3.2.2: the authority of an absolute-form target
// replaces Host, for routing and for what the pool is sent.
TEST(RequestTarget, AbsoluteFormAuthorityIsTheHost) {
  FakeUpstream shop("shop"), other("other");
  PastureServer srv("[composite:main]\nuse = egg:Paste#urlmap\ndomain shop.example.com / = shop\n/ = other\n\n" +
                        pool("shop", shop) + pool("other", other),
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Exchange ex = exchange(srv.port(), get("http://shop.example.com/reset?u=1", "evil.com"));
  EXPECT_EQ(ex.status(), 200) << ex.bytes;
  ASSERT_EQ(shop.request_count(), 1u);
  EXPECT_EQ(other.request_count(), 0u);
  RecordedRequest r = shop.requests()[0];
  EXPECT_EQ(r.target, "/reset?u=1");
  EXPECT_EQ(r.header_count("host"), 1u);
  EXPECT_EQ(r.header("host"), "shop.example.com");
  EXPECT_EQ(r.header("x-forwarded-host"), "shop.example.com");
  // And the other way: Host names the shop, the target another authority.
  EXPECT_EQ(exchange(srv.port(), get("http://evil.com/reset", "shop.example.com")).status(), 200);
  ASSERT_EQ(other.request_count(), 1u);
  EXPECT_EQ(other.requests()[0].header("host"), "evil.com");
  EXPECT_EQ(other.requests()[0].header("x-forwarded-host"), "evil.com");
  EXPECT_EQ(shop.request_count(), 1u);
  // A trailing dot names the same host (nginx drops it): same pool.
  EXPECT_EQ(exchange(srv.port(), get("/dot", "Shop.Example.Com.")).body(), "shop GET /dot\n");
  EXPECT_EQ(exchange(srv.port(), get("http://shop.example.com.:80/dot", "x")).body(), "shop GET /dot\n");
  EXPECT_EQ(shop.request_count(), 3u);
  // The authority is validated like Host, and userinfo is refused (nginx).
  for (const std::string target : {"http://user@shop.example.com/", "http://shop..example.com/",
                                   "http://a@evil.com@shop.example.com/"}) {
    SCOPED_TRACE(target);
    Exchange bad = exchange(srv.port(), get(target, "shop.example.com"));
    EXPECT_EQ(bad.status(), 400) << bad.bytes;
  }
  EXPECT_EQ(shop.request_count() + other.request_count(), 4u);
}

// Balancing by path or uri looks at the request as forwarded, so spellings
// of one resource (escapes, dot segments, absolute form) hash alike.
TEST(RequestTarget, HashKeysUseTheForwardedTarget) {
  FakeUpstream a("a"), b("b");
  for (const char* key : {"path", "uri"}) {
    SCOPED_TRACE(key);
    PastureServer srv(std::string("[app:main]\nuse = egg:pasture#balancer\nservers = ") + a.address() + " " +
                          b.address() + "\nmethod = hash\nhash_key = " + key + "\nretries = 0\n",
                      1);
    ASSERT_TRUE(srv.started()) << srv.output();
    for (int i = 0; i < 16; i++) {
      std::string n = std::to_string(i);
      std::string first;
      for (const std::string& target : {"/p" + n + "?q", "/%70" + n + "?q", "/x/../p" + n + "?q",
                                       "http://site.test/p" + n + "?q"}) {
        Exchange ex = exchange(srv.port(), get(target));
        std::string body = ex.body();
        EXPECT_EQ(body.substr(1), " GET /p" + n + "?q\n") << target;
        if (first.empty()) first = body;
        EXPECT_EQ(body, first) << target << " went elsewhere than /p" << n;
      }
    }
  }
}

}  // namespace
}  // namespace pasture::test
