// conf/: native filters (gzip, prefix, translogger) resolved from pipelines,
// filter-with and filter-app into Handler::filters; the YAML form; and the
// worker's pure filter helpers (worker/filter_sink.h, worker/router.h).
#include <gtest/gtest.h>

#include <fstream>

#include "conf/describe.h"
#include "conf/yaml_writer.h"
#include "conf_test_util.h"
#include "worker/filter_sink.h"
#include "worker/router.h"

namespace pasture::conf {
namespace {

// The server section goes last, so that the lines errors name stay the test's.
class ConfFilters : public testing::SiteFixture {
 protected:
  Site site(const std::string& t) { return load(t + "[server:main]\nuse = egg:pasture#main\n"); }
  std::string err(const std::string& t) { return error(t + "[server:main]\nuse = egg:pasture#main\n"); }
};

const char* kPool = "[app:web]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:9001\n";
const char* kFilters =
    "[filter:gz]\nuse = egg:Paste#gzip\ncompress_level = 9\n"
    "[filter:pfx]\nuse = egg:PasteDeploy#prefix\nprefix = /app/\nforce_port = \nscheme = https\n"
    "[filter:tl]\nuse = egg:Paste#translogger\nsetup_console_handler = false\n";

TEST_F(ConfFilters, PipelineInFrontOfAPoolIsNative) {
  Site s = site(std::string("[pipeline:main]\npipeline = tl pfx gz web\n") + kFilters + kPool);
  EXPECT_TRUE(s.python_apps.empty());
  const Handler& h = s.handlers[s.root];
  EXPECT_EQ(h.kind, HandlerKind::Proxy);
  ASSERT_EQ(h.filters.size(), 3u);
  EXPECT_EQ(h.filters[0].kind, FilterKind::TransLogger);
  EXPECT_FALSE(h.filters[0].setup_console_handler);
  EXPECT_EQ(h.filters[1].kind, FilterKind::Prefix);
  EXPECT_EQ(h.filters[1].prefix, "/app");
  EXPECT_TRUE(h.filters[1].has_force_port);
  EXPECT_EQ(h.filters[1].force_port, "");
  EXPECT_EQ(h.filters[1].scheme, "https");
  EXPECT_EQ(h.filters[2].kind, FilterKind::Gzip);
  EXPECT_EQ(h.filters[2].compress_level, 9);
  EXPECT_EQ(h.filters[2].name, "filter:gz");
}

TEST_F(ConfFilters, FilterWithAndFilterAppInFrontOfNativeApps) {
  Site s = site(std::string("[composite:main]\nuse = egg:Paste#urlmap\n/ = web\n/e = e\n/f = fa\n") + kFilters +
                "[app:web]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:9001\nfilter-with = gz\n"
                "[app:e]\nuse = egg:pasture#echo\n"
                "[filter-app:fa]\nuse = egg:PasteDeploy#prefix\nprefix = /x\nnext = e\n");
  EXPECT_TRUE(s.python_apps.empty());
  const Handler& m = s.handlers[s.root];
  ASSERT_EQ(m.entries.size(), 3u);
  for (const UrlMapEntry& e : m.entries) {
    const Handler& h = s.handlers[e.handler];
    if (e.path == "") {
      ASSERT_EQ(h.filters.size(), 1u);
      EXPECT_EQ(h.filters[0].kind, FilterKind::Gzip);
      EXPECT_EQ(h.kind, HandlerKind::Proxy);
    } else if (e.path == "/f") {
      ASSERT_EQ(h.filters.size(), 1u);
      EXPECT_EQ(h.filters[0].prefix, "/x");
      EXPECT_EQ(h.kind, HandlerKind::Echo);
    } else {
      EXPECT_TRUE(h.filters.empty());  // the echo app itself stays unfiltered
    }
  }
}

TEST_F(ConfFilters, NativeFiltersInFrontOfPythonLoadTheRest) {
  Site s = site(std::string("[pipeline:main]\npipeline = gz tl myfilter app\n") + kFilters +
                "[filter:myfilter]\nuse = egg:Paste#cowbell\n[app:app]\nuse = call:mod:app\n");
  ASSERT_EQ(s.python_apps.size(), 1u);
  EXPECT_EQ(s.python_apps[0].skip_filters, 2);
  EXPECT_EQ(s.python_apps[0].pipeline, (std::vector<std::string>{"myfilter", "app"}));
  EXPECT_EQ(s.handlers[s.root].filters.size(), 2u);
  // A Python filter first: the whole pipeline is Python, as under paster.
  Site p = site(std::string("[pipeline:main]\npipeline = myfilter gz app\n") + kFilters +
                "[filter:myfilter]\nuse = egg:Paste#cowbell\n[app:app]\nuse = call:mod:app\n");
  ASSERT_EQ(p.python_apps.size(), 1u);
  EXPECT_EQ(p.python_apps[0].skip_filters, 0);
  EXPECT_TRUE(p.handlers[p.root].filters.empty());
}

TEST_F(ConfFilters, BalancerFilterAfterNativeFilters) {
  Site s = site(std::string("[pipeline:main]\npipeline = gz bal app\n") + kFilters +
                "[filter:bal]\nuse = egg:pasture#balancer\nmethod = round_robin\n[app:app]\nuse = call:mod:app\n");
  ASSERT_EQ(s.python_apps.size(), 1u);
  EXPECT_EQ(s.python_apps[0].pipeline, (std::vector<std::string>{"app"}));
  EXPECT_EQ(s.handlers[s.root].filters.size(), 1u);
}

TEST_F(ConfFilters, BadKeysAreErrors) {
  EXPECT_EQ(err("[pipeline:main]\npipeline = gz web\n[filter:gz]\nuse = egg:Paste#gzip\nlevel = 3\n" +
                  std::string(kPool)),
            "5: [filter:gz] egg:Paste#gzip takes no argument 'level' (Paste's factory would raise TypeError)");
  EXPECT_EQ(err("[pipeline:main]\npipeline = gz web\n[filter:gz]\nuse = egg:Paste#gzip\ncompress_level = 11\n" +
                  std::string(kPool)),
            "5: compress_level: expected a whole number from 0 to 9, got '11'");
  std::string e = err("[pipeline:main]\npipeline = p web\n[filter:p]\nuse = egg:PasteDeploy#prefix\nprefix = /a(b)\n" +
                        std::string(kPool));
  EXPECT_NE(e.find("5: prefix '/a(b)'"), std::string::npos) << e;
  e = err("[pipeline:main]\npipeline = t web\n[filter:t]\nuse = egg:Paste#translogger\nformat = %%(nope)s\n" +
            std::string(kPool));
  EXPECT_NE(e.find("unknown key 'nope'"), std::string::npos) << e;
}

TEST_F(ConfFilters, YamlRoundTrip) {
  Site a = site(std::string("[pipeline:main]\npipeline = tl pfx gz web\n") + kFilters + kPool);
  std::string text = site_to_yaml(a);
  EXPECT_NE(text.find("filters:"), std::string::npos) << text;
  std::string y = dir_.write("site.yaml", text);
  LoadOptions o;
  o.config = y;
  Site b = load_site(o);
  EXPECT_EQ(json::dump(site_to_json(a)), json::dump(site_to_json(b))) << text;
}

}  // namespace
}  // namespace pasture::conf

namespace pasture::worker {
namespace {

TEST(FilterHelpers, AcceptsGzip) {
  EXPECT_TRUE(filters::accepts_gzip("gzip"));
  EXPECT_TRUE(filters::accepts_gzip("deflate, gzip;q=0.5"));
  EXPECT_TRUE(filters::accepts_gzip("x-gzip"));
  EXPECT_FALSE(filters::accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(filters::accepts_gzip("gzip; q=0.000, br"));
  EXPECT_FALSE(filters::accepts_gzip("br, deflate"));
  EXPECT_FALSE(filters::accepts_gzip(""));
}

TEST(FilterHelpers, HeadFields) {
  std::string t = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"a\"\r\nAccept-Ranges: bytes\r\n";
  std::string_view v;
  ASSERT_TRUE(filters::find_field(t, "content-type", &v));
  EXPECT_EQ(v, "text/plain");
  filters::remove_field(t, "accept-ranges");
  EXPECT_EQ(t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"a\"\r\n");
  EXPECT_FALSE(filters::find_field(t, "accept-ranges", &v));
}

TEST(FilterHelpers, QuoteAsPython) {
  std::string o;
  filters::append_quoted(o, "/a b/\xe9~x?y");
  EXPECT_EQ(o, "/a%20b/%C3%A9~x%3Fy");  // urllib.parse.quote('/a b/é~x?y')
}

TEST(FilterHelpers, TransLoggerLine) {
  TransLogEntry e;
  e.remote_addr = "10.0.0.1";
  e.method = "GET";
  e.request_uri = "/x?y=1";
  e.http_version = "HTTP/1.1";
  e.time = "01/Dec/2026:10:00:00 +0000";
  e.referer = "-";
  e.user_agent = "curl";
  EXPECT_EQ(filters::translogger_line("", e, "200", "12"),
            "10.0.0.1 - - [01/Dec/2026:10:00:00 +0000] \"GET /x?y=1 HTTP/1.1\" 200 12 \"-\" \"curl\"");
  EXPECT_EQ(filters::translogger_line("%(status)5s|%(bytes)-3s|%%", e, "200", "-"), "  200|-  |%");
}

TEST(FilterHelpers, StripPrefixAsPasteRegex) {
  EXPECT_EQ(strip_prefix("/james/x", "/james"), "/x");
  EXPECT_EQ(strip_prefix("/james", "/james"), "/");
  EXPECT_EQ(strip_prefix("/jamesx", "/james"), "x");  // ^/james(.*)$: not segment-aware
  EXPECT_EQ(strip_prefix("/other", "/james"), "/other");
  EXPECT_EQ(strip_prefix("/v1x0/a", "/v1.0"), "/a");  // '.' is any character
  EXPECT_EQ(strip_prefix("/james/a\nb", "/james"), "/james/a\nb");  // '.' stops at a newline
  EXPECT_EQ(strip_prefix("/x", ""), "/x");
  EXPECT_EQ(strip_prefix("", "/james"), "/");  // `if not url: url = '/'`, matched or not
}

}  // namespace
}  // namespace pasture::worker
