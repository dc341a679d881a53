#include <gtest/gtest.h>

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
  EXPECT_EQ(route(s, "h", "//one//x").handler, 2);  // urlmap collapses slashes
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
