#include <gtest/gtest.h>

#include "worker/http_head.h"
#include "worker/router.h"

namespace pasture::worker {
namespace {

// root: urlmap { domain api.example.com /: api, /one: one, /: rest }
conf::Site make_site() {
  conf::Site s;
  conf::Handler map;
  map.kind = conf::HandlerKind::UrlMap;
  map.entries = {{"api.example.com", "", 1, {}}, {"", "/one", 2, {}}, {"", "", 3, {}}};
  s.handlers.push_back(map);
  for (const char* n : {"api", "one", "rest"}) {
    conf::Handler h;
    h.kind = conf::HandlerKind::Echo;
    h.echo_name = n;
    s.handlers.push_back(h);
  }
  s.root = 0;
  return s;
}

TEST(WorkerRouter, WholeSegmentsLongestPrefix) {
  conf::Site s = make_site();
  EXPECT_EQ(route(s, "h", "/one").handler, 2);
  EXPECT_EQ(route(s, "h", "/one/x").handler, 2);
  EXPECT_EQ(route(s, "h", "/one/x").script_name_len, 4u);
  EXPECT_EQ(route(s, "h", "/onex").handler, 3);
  EXPECT_EQ(route(s, "h", "/").handler, 3);
}

// The path route() is given: NormalPath::decoded.
std::string decoded(std::string_view raw) {
  std::string scratch;
  NormalPath np;
  if (!normalize_path(raw, scratch, &np)) return "<400>";
  return std::string(np.decoded);
}
std::string wire(std::string_view raw) {
  std::string scratch;
  NormalPath np;
  if (!normalize_path(raw, scratch, &np)) return "<400>";
  return std::string(np.wire);
}

TEST(WorkerRouter, RoutesOnTheNormalizedPath) {
  conf::Site s = make_site();
  EXPECT_EQ(route(s, "h", decoded("//one//x")).handler, 2);  // urlmap collapses slashes
  EXPECT_EQ(route(s, "h", decoded("//one//x")).script_name_len, 4u);
  EXPECT_EQ(route(s, "h", decoded("/%6fne/x")).handler, 2);
  EXPECT_EQ(route(s, "h", decoded("/%6Fn%65")).handler, 2);
  EXPECT_EQ(route(s, "h", decoded("/x/../one/y")).handler, 2);
  EXPECT_EQ(route(s, "h", decoded("/./one")).handler, 2);
  EXPECT_EQ(route(s, "h", decoded("/x/%2e%2e/one")).handler, 2);
  EXPECT_EQ(route(s, "h", decoded("/x%2F..%2Fone")).handler, 2);  // %2F separates segments
  EXPECT_EQ(route(s, "h", decoded("/one%2Fx")).handler, 2);
  EXPECT_EQ(route(s, "h", decoded("/one/../x")).handler, 3);
  EXPECT_EQ(route(s, "h", decoded("/onex")).handler, 3);
}

TEST(WorkerRouter, HostLongerThanAnyNameMatchesNoDomain) {
  conf::Site s = make_site();
  EXPECT_EQ(route(s, "api.example.com", "/x").handler, 1);
  std::string longer = "api.example.com" + std::string(300, 'a');
  EXPECT_EQ(route(s, longer, "/x").handler, 3);
  s.handlers[0].entries[0].domain = std::string(255, 'a');
  EXPECT_EQ(route(s, std::string(300, 'a'), "/x").handler, 3);  // never a truncated prefix
}

TEST(WorkerNormalizePath, NormalPathsAreReturnedAsIs) {
  for (std::string_view raw : {"/", "/a/b", "/a/b/", "/a;b=c,d/e+f!$&'()*:@~-_.x", "/a.b/..c/...",
                               "/.well-known/x", "*"}) {
    std::string scratch;
    NormalPath np;
    ASSERT_TRUE(normalize_path(raw, scratch, &np)) << raw;
    EXPECT_EQ(np.decoded.data(), raw.data()) << raw;
    EXPECT_EQ(np.wire.data(), raw.data()) << raw;
    EXPECT_TRUE(scratch.empty()) << raw;
  }
}

TEST(WorkerNormalizePath, DecodesMergesSlashesAndRemovesDotSegments) {
  struct Case {
    const char* raw;
    const char* decoded;
    const char* wire;
  };
  const Case cases[] = {
      {"/%61dmin/users", "/admin/users", "/admin/users"},
      {"/x/../admin/users", "/admin/users", "/admin/users"},
      {"//admin//users", "/admin/users", "/admin/users"},
      {"/admin%2Fusers", "/admin/users", "/admin/users"},
      {"/admin%2fusers", "/admin/users", "/admin/users"},
      {"/a/./b/../c", "/a/c", "/a/c"},
      {"/a/b/..", "/a/", "/a/"},
      {"/a/b/.", "/a/b/", "/a/b/"},
      {"/a/..", "/", "/"},
      {"/.", "/", "/"},
      {"//", "/", "/"},
      {"/a/%2E%2e/b", "/b", "/b"},
      {"/a/.%2e", "/", "/"},
      {"/a%20b/%3F%23%25", "/a b/?#%", "/a%20b/%3F%23%25"},
      {"/caf%C3%A9", "/caf\xC3\xA9", "/caf%C3%A9"},
      {"/%7e%2b", "/~+", "/~+"},
      {"/a/..b/.c/c.", "/a/..b/.c/c.", "/a/..b/.c/c."},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.raw);
    EXPECT_EQ(decoded(c.raw), c.decoded);
    EXPECT_EQ(wire(c.raw), c.wire);
    EXPECT_EQ(decoded(wire(c.raw)), c.decoded);  // the upstream decodes what routing saw
    EXPECT_EQ(wire(wire(c.raw)), wire(c.raw));   // idempotent
  }
}

TEST(WorkerNormalizePath, RejectsWhatNginxRejects) {
  for (const char* raw : {"/..", "/../admin", "/a/../..", "/./..", "/%2e%2e/x", "/a/%2E%2E/%2e%2e",
                          "/%", "/%4", "/%zz", "/%4g", "/a%00b", "", "a/b"}) {
    SCOPED_TRACE(raw);
    std::string scratch;
    NormalPath np;
    EXPECT_FALSE(normalize_path(raw, scratch, &np));
  }
}

TEST(WorkerRouter, DomainMatchesHostWithAndWithoutPort) {
  conf::Site s = make_site();
  EXPECT_EQ(route(s, "api.example.com", "/one").handler, 1);
  EXPECT_EQ(route(s, "API.Example.COM:8080", "/x").handler, 1);  // host lower-cased, port split
  EXPECT_EQ(route(s, "other.example.com", "/x").handler, 3);
  s.handlers[0].entries[0].domain = "api.example.com:8080";
  EXPECT_EQ(route(s, "api.example.com:8080", "/x").handler, 1);
  EXPECT_EQ(route(s, "api.example.com", "/x").handler, 3);     // default port 80
  s.handlers[0].entries[0].domain = "api.example.com:80";
  EXPECT_EQ(route(s, "api.example.com", "/x").handler, 1);
}

// A fully qualified name with its trailing dot is the same host to DNS and
// to the app behind (nginx drops the dot too): it cannot dodge a domain rule.
TEST(WorkerRouter, TrailingDotOfTheHostIsNotPartOfTheName) {
  conf::Site s = make_site();
  EXPECT_EQ(route(s, "api.example.com.", "/x").handler, 1);
  EXPECT_EQ(route(s, "API.example.com.:8080", "/x").handler, 1);
  EXPECT_EQ(route(s, "api.example.com..", "/x").handler, 3);
  s.handlers[0].entries[0].domain = "api.example.com:8080";
  EXPECT_EQ(route(s, "api.example.com.:8080", "/x").handler, 1);
  EXPECT_EQ(route(s, "api.example.com.", "/x").handler, 3);
}

TEST(WorkerRouter, NoMatchAndNotFoundApp) {
  conf::Site s = make_site();
  s.handlers[0].entries.pop_back();  // drop "/"
  EXPECT_EQ(route(s, "h", "/nope").handler, -1);
  s.handlers[0].not_found = 3;
  EXPECT_EQ(route(s, "h", "/nope").handler, 3);
}

TEST(WorkerRouter, NestedUrlmapsAccumulatePrefix) {
  conf::Site s = make_site();
  conf::Handler inner;
  inner.kind = conf::HandlerKind::UrlMap;
  inner.entries = {{"", "/v2", 1, {}}};
  s.handlers.push_back(inner);  // index 4
  s.handlers[0].entries[1].handler = 4;  // /one -> inner
  RouteResult r = route(s, "h", "/one/v2/x");
  EXPECT_EQ(r.handler, 1);
  EXPECT_EQ(r.script_name_len, 7u);
}

}  // namespace
}  // namespace pasture::worker
