#include <gtest/gtest.h>
#include <llhttp.h>

#include "tests/unit/collect_head.h"
#include "worker/proxy_head.h"

namespace pasture::worker {
namespace {

// Parses `raw` (a complete request head) into spans, as the worker does.
struct Parsed {
  std::string raw;
  std::vector<HeaderSpan> headers;
  HeadCollector c;
  explicit Parsed(std::string r) : raw(std::move(r)) {
    c.headers = &headers;
    c.base = raw.data();
    llhttp_settings_t st = collector_settings();
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &st);
    parser.data = &c;
    llhttp_execute(&parser, raw.data(), raw.size());
  }
  ProxyHeadInput input(std::string_view peer = "10.0.0.9") const {
    ProxyHeadInput in;
    in.method = "GET";
    in.url = span_view(raw.data(), c.url);
    in.base = raw.data();
    in.headers = &headers;
    in.peer = peer;
    return in;
  }
};

TEST(WorkerProxyHead, ForwardsEndToEndFieldsAndAddsForwarded) {
  Parsed p("GET /a?b=1 HTTP/1.1\r\nHost: site.test\r\nConnection: keep-alive, X-Drop\r\n"
           "X-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\n"
           "X-Forwarded-For: 2.2.2.2\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n");
  std::string out;
  build_proxy_head(out, p.input(), ProxyHeadPolicy{});
  EXPECT_EQ(out,
            "GET /a?b=1 HTTP/1.1\r\nHost: site.test\r\nAccept: */*\r\n"
            "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: site.test\r\n\r\n");
}

TEST(WorkerProxyHead, PasteProxyPolicyRewritesHostAndJoinsBasePath) {
  Parsed p("GET /one/x?q HTTP/1.1\r\nHost: front\r\n\r\n");
  ProxyHeadPolicy pol;
  pol.preserve_host = false;
  pol.upstream_host = "127.0.0.1:9000";
  pol.base_path = "/base/";
  std::string out;
  build_proxy_head(out, p.input(), pol);
  EXPECT_EQ(out,
            "GET /base/one/x?q HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"
            "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: front\r\n\r\n");
}

TEST(WorkerProxyHead, AbsoluteFormAndMissingHost) {
  Parsed p("GET http://abs.test/p HTTP/1.1\r\n\r\n");
  ProxyHeadPolicy pol;
  pol.fallback_host = "u:1";
  std::string out;
  build_proxy_head(out, p.input(), pol);
  EXPECT_EQ(out.substr(0, out.find("\r\n")), "GET /p HTTP/1.1");
  EXPECT_NE(out.find("Host: abs.test\r\n"), std::string::npos) << out;
  Parsed q("GET /p HTTP/1.0\r\n\r\n");
  out.clear();
  build_proxy_head(out, q.input(), pol);
  EXPECT_NE(out.find("Host: u:1\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("X-Forwarded-Host"), std::string::npos) << out;
}

TEST(WorkerProxyHead, HostedAppsGetTheirScriptNameNeverTheClients) {
  Parsed p("GET /mnt/x HTTP/1.1\r\nHost: h\r\nX-Pasture-Script-Name: /forged\r\n\r\n");
  ProxyHeadPolicy pol;
  pol.hosted = true;
  ProxyHeadInput in = p.input();
  in.script_len = 4;
  std::string out;
  build_proxy_head(out, in, pol);
  EXPECT_NE(out.find("X-Pasture-Script-Name: /mnt\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("/forged"), std::string::npos) << out;
}

}  // namespace
}  // namespace pasture::worker
