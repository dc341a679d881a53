// A real framework under pasture: the Pyramid app of tests/wsgi/pasture_pyramid
// (Debian's python3-pyramid), loaded from tests/wsgi/pyramid.ini through its
// paste.deploy main(), served by pasture in each app mode and by
// `paster3 serve` on the same INI file; the answers must agree.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "tests/integration/wsgi_site.h"

namespace pasture::test {
namespace {

using ::testing::Values;

bool have_pyramid() {
  static const bool yes = system("/usr/bin/python3 -c 'import pyramid' >/dev/null 2>&1") == 0;
  return yes;
}

// pyramid.ini as it is; validated, the app goes behind the test app's
// validator filter ([app:main] renamed to be the pipeline's app).
std::string pyramid_apps(bool validate) {
  std::string ini = read_text(kWsgiDir + "/pyramid.ini");
  if (!validate) return ini;
  size_t at = ini.find("[app:main]");
  if (at == std::string::npos) return ini;
  ini.replace(at, 10, "[app:pyramid]");
  return ini +
         "\n[pipeline:main]\npipeline = validate pyramid\n\n"
         "[filter:validate]\npaste.filter_factory = pasture_testapp:make_validate_filter\n";
}

class WsgiPyramid : public WsgiModes {};
INSTANTIATE_TEST_SUITE_P(Wsgi, WsgiPyramid,
                         Values(kEmbedded1, kEmbedded4, kProcess, HostMode{true, 1, false}), mode_name);

struct PyramidReq {
  std::string method, target, body;
  Headers headers;
  int status;
  bool compare_body = true;  // false: the server's own 500 page
};

std::string stream_body() {
  std::string s;
  for (int i = 0; i < 20; i++) s += "line " + std::to_string(i) + " of the stream\n";
  return s;
}

TEST_P(WsgiPyramid, MatchesPasterServe) {
  if (!have_paster()) GTEST_SKIP() << "paster3 (python3-pastescript) is not installed";
  if (!have_pyramid()) GTEST_SKIP() << "pyramid (python3-pyramid) is not installed";
  WsgiSite& s = site_text(pyramid_apps(mode().validate));
  ASSERT_TRUE(s.start(/*with_paster=*/true)) << s.pasture().output();
  const Headers form = {{"Content-Type", "application/x-www-form-urlencoded"}};
  const std::vector<PyramidReq> reqs = {
      {"GET", "/", "", {}, 200},
      {"GET", "/hello/world?x=1&y=2", "", {}, 200},
      {"GET", "/form", "", {}, 200},
      {"POST", "/form", "a=1&b=two+words&a=%C3%A9t%C3%A9&c=", form, 200},
      {"GET", "/stream", "", {}, 200},
      {"GET", "/redirect", "", {}, 302},
      {"GET", "/missing", "", {}, 404},
      {"GET", "/error", "", {}, 500, false},
      {"HEAD", "/", "", {}, 200},
  };
  for (const PyramidReq& q : reqs) {
    SCOPED_TRACE(q.method + " " + q.target);
    Response a = http_request(s.port(), q.method, q.target, q.headers, q.body);
    Response b = http_request(s.paster_port(), q.method, q.target, q.headers, q.body);
    ASSERT_TRUE(a.ok()) << a.error;
    ASSERT_TRUE(b.ok()) << b.error;
    EXPECT_EQ(a.status, q.status) << a.body;
    EXPECT_EQ(a.status, b.status);
    EXPECT_EQ(normalize_port(a.header("Location"), s.port()), normalize_port(b.header("Location"), s.paster_port()));
    if (!q.compare_body) continue;
    EXPECT_EQ(a.header("Content-Type"), b.header("Content-Type"));
    EXPECT_EQ(normalize_port(a.body, s.port()), normalize_port(b.body, s.paster_port()));
    // Framing: chunked, or a Content-Length that is the body's (HEAD: the
    // GET's), never a body cut short by the close.
    if (!a.chunked && q.method != "HEAD") {
      EXPECT_EQ(a.header("Content-Length"), std::to_string(a.body.size())) << a.body;
    }
  }
  // The fields Pyramid saw, repeated ones in order, percent-decoded.
  Response post = http_request(s.port(), "POST", "/form", form, "a=1&b=two+words&a=%C3%A9t%C3%A9&c=");
  EXPECT_EQ(post.body, R"({"a": ["1", "\u00e9t\u00e9"], "b": ["two words"], "c": [""]})");
  // The stream arrives whole, in the app's order, chunked (no length given).
  Response st = http_get(s.port(), "/stream");
  EXPECT_EQ(st.body, stream_body());
  EXPECT_TRUE(st.chunked || st.header("Content-Length") == std::to_string(stream_body().size()));
  Response redirect = http_get(s.port(), "/redirect");
  EXPECT_EQ(redirect.header("Location"), "http://127.0.0.1:" + std::to_string(s.port()) + "/hello/redirected");
  Response head = http_request(s.port(), "HEAD", "/");
  EXPECT_EQ(head.header("Content-Length"), "19");  // "Hello from Pyramid\n"
  EXPECT_EQ(head.body, "");
  // The validator was there (its frame opens /error's traceback) or not.
  EXPECT_TRUE(wait_for_output(s.pasture(), "Traceback (most recent call last)", Millis{3000}));
  EXPECT_EQ(s.pasture().output().find("wsgiref/validate.py") != std::string::npos, mode().validate);
}

}  // namespace
}  // namespace pasture::test
