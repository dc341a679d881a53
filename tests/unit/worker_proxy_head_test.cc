#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <llhttp.h>
#include <sys/un.h>

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
    in.lines = true;  // llhttp parsed it whole, as the worker's heads
    in.peer = peer;
    return in;
  }
};

// From a trusted proxy (trusted_proxies), its X-Forwarded-For chain is
// appended to and its -Proto and -Host kept.
TEST(WorkerProxyHead, ForwardsEndToEndFieldsAndAddsForwarded) {
  Parsed p("GET /a?b=1 HTTP/1.1\r\nHost: site.test\r\nConnection: keep-alive, X-Drop\r\n"
           "X-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\n"
           "X-Forwarded-For: 2.2.2.2\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n");
  std::string out;
  ProxyHeadInput in = p.input();
  in.trusted_peer = true;
  ASSERT_TRUE(build_proxy_head(out, in, ProxyHeadPolicy{}));
  EXPECT_EQ(out,
            "GET /a?b=1 HTTP/1.1\r\nHost: site.test\r\nAccept: */*\r\n"
            "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\nX-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: site.test\r\n\r\n");
}

// Issue 20 #6: from any other peer, no forwarding claim passes; pasture's
// own values replace them.
TEST(WorkerProxyHead, UntrustedPeersForwardingClaimsAreDropped) {
  Parsed p("GET /a HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-For: 1.1.1.1\r\n"
           "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nForwarded: for=1.1.1.1\r\n"
           "X-Real-IP: 1.1.1.1\r\nX-Forwarded-Port: 443\r\nx-forwarded-ssl: on\r\n"
           "X-Forwarded-Scheme: https\r\nX-Forwarded-Server: evil\r\nX-Pasture-Anything: 1\r\n"
           "Accept: */*\r\n\r\n");
  std::string out;
  ASSERT_TRUE(build_proxy_head(out, p.input(), ProxyHeadPolicy{}));
  EXPECT_EQ(out,
            "GET /a HTTP/1.1\r\nHost: site.test\r\nAccept: */*\r\n"
            "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: site.test\r\n\r\n");
  // A hosted app sees the claims as paster serve shows them (plain HTTP_*
  // keys) but pasture's own X-Forwarded-Proto/-Host and last hop.
  ProxyHeadPolicy hosted;
  hosted.hosted = true;
  out.clear();
  ASSERT_TRUE(build_proxy_head(out, p.input(), hosted));
  EXPECT_EQ(out,
            "GET /a HTTP/1.1\r\nHost: site.test\r\nForwarded: for=1.1.1.1\r\n"
            "X-Real-IP: 1.1.1.1\r\nX-Forwarded-Port: 443\r\nx-forwarded-ssl: on\r\n"
            "X-Forwarded-Scheme: https\r\nX-Forwarded-Server: evil\r\nAccept: */*\r\n"
            "X-Forwarded-For: 1.1.1.1, 10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: site.test\r\n\r\n");
}

// Issue 20 #6: a name with '_' is dropped (nginx underscores_in_headers off);
// with it on, never one that a WSGI server would read as one of pasture's.
TEST(WorkerProxyHead, UnderscoreNamesNeverStandInForPasturesFields) {
  Parsed p("GET /mnt/x HTTP/1.1\r\nHost: h\r\nX_Pasture_Script_Name: /mnt/x\r\n"
           "x_pasture-script_NAME: /a\r\nX_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Proto: https\r\n"
           "X_Forwarded_Host: evil\r\nX_Real_IP: 6.6.6.6\r\nContent_Length: 5\r\n"
           "Transfer_Encoding: chunked\r\nKeep_Alive: 1\r\nX_Custom: kept\r\n\r\n");
  ProxyHeadInput in = p.input();
  in.script_len = 4;
  ProxyHeadPolicy pol;
  pol.hosted = true;
  std::string out;
  ASSERT_TRUE(build_proxy_head(out, in, pol));
  EXPECT_EQ(out,
            "GET /mnt/x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.9\r\n"
            "X-Forwarded-Proto: http\r\nX-Pasture-Script-Name: /mnt\r\nX-Forwarded-Host: h\r\n\r\n");
  pol.underscores = true;
  in.trusted_peer = true;
  out.clear();
  ASSERT_TRUE(build_proxy_head(out, in, pol));
  EXPECT_EQ(out,
            "GET /mnt/x HTTP/1.1\r\nHost: h\r\nX_Custom: kept\r\nX-Forwarded-For: 10.0.0.9\r\n"
            "X-Forwarded-Proto: http\r\nX-Pasture-Script-Name: /mnt\r\nX-Forwarded-Host: h\r\n\r\n");
}

// Issue 20 #5: an absolute-form target's authority is the Host (RFC 9112
// 3.2.2), also for X-Forwarded-Host.
TEST(WorkerProxyHead, AbsoluteFormAuthorityReplacesHost) {
  Parsed p("GET http://shop.example.com/reset?x HTTP/1.1\r\nHost: evil.com\r\nAccept: a\r\n\r\n");
  std::string out;
  ASSERT_TRUE(build_proxy_head(out, p.input(), ProxyHeadPolicy{}));
  EXPECT_EQ(out,
            "GET /reset?x HTTP/1.1\r\nAccept: a\r\nHost: shop.example.com\r\n"
            "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: shop.example.com\r\n\r\n");
}

// Routing reads Host without its trailing whitespace (OWS is not part of a
// field value); the upstream gets the same value.
TEST(WorkerProxyHead, FieldValuesAreForwardedWithoutTrailingWhitespace) {
  Parsed p("GET / HTTP/1.1\r\nHost: a.test \t\r\nX-A: v  \r\n\r\n");
  std::string out;
  ASSERT_TRUE(build_proxy_head(out, p.input(), ProxyHeadPolicy{}));
  EXPECT_EQ(out,
            "GET / HTTP/1.1\r\nHost: a.test\r\nX-A: v\r\nX-Forwarded-For: 10.0.0.9\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: a.test\r\n\r\n");
}

// Issue 20 #4: what is forwarded is the path routing matched; a hosted app's
// SCRIPT_NAME is cut from that path, never from the raw one.
TEST(WorkerProxyHead, ForwardsTheNormalizedPathAndCutsScriptNameFromIt) {
  Parsed p("GET //mnt/./a/../%65nviron?q=%2F.. HTTP/1.1\r\nHost: h\r\n\r\n");
  ProxyHeadInput in = p.input();
  in.script_len = 4;  // "/mnt", as route() measured it on the decoded path
  ProxyHeadPolicy pol;
  pol.hosted = true;
  std::string out;
  ASSERT_TRUE(build_proxy_head(out, in, pol));
  EXPECT_EQ(out.substr(0, out.find("\r\n")), "GET /mnt/environ?q=%2F.. HTTP/1.1");
  EXPECT_NE(out.find("\r\nX-Pasture-Script-Name: /mnt\r\n"), std::string::npos) << out;
  Parsed q("GET /a%20b/c HTTP/1.1\r\nHost: h\r\n\r\n");
  in = q.input();
  in.script_len = 4;  // "/a b"
  out.clear();
  ASSERT_TRUE(build_proxy_head(out, in, pol));
  EXPECT_NE(out.find("\r\nX-Pasture-Script-Name: /a%20b\r\n"), std::string::npos) << out;
  Parsed bad("GET /../x HTTP/1.1\r\nHost: h\r\n\r\n");
  out.clear();
  EXPECT_FALSE(build_proxy_head(out, bad.input(), pol));
}

// Paste's proxy joins its address path with the path; dot segments are gone
// before the join, so no request reaches above base_path.
TEST(WorkerProxyHead, BasePathJoinStaysUnderTheBase) {
  ProxyHeadPolicy pol;
  pol.preserve_host = false;
  pol.upstream_host = "u:1";
  pol.base_path = "/base/";
  for (const char* target : {"/x/../../etc/passwd", "/%2e%2e/etc/passwd", "/a/%2E%2E/%2E%2E/etc"}) {
    Parsed p(std::string("GET ") + target + " HTTP/1.1\r\nHost: h\r\n\r\n");
    std::string out;
    EXPECT_FALSE(build_proxy_head(out, p.input(), pol)) << target << ": " << out;
  }
  Parsed p("GET /x/../y//%7a HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string out;
  ASSERT_TRUE(build_proxy_head(out, p.input(), pol));
  EXPECT_EQ(out.substr(0, out.find("\r\n")), "GET /base/y/z HTTP/1.1");
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

TEST(WorkerProxyHead, FramingIsWrittenFromTheParseNeverCopied) {
  Parsed p("POST /u HTTP/1.1\r\nHost: h\r\nConnection: Content-Length, Host, X-A\r\n"
           "Content-Length: 35\r\nX-A: 1\r\nX-B: 2\r\n\r\n");
  ProxyHeadInput in = p.input();
  in.method = "POST";
  in.body = ProxyHeadInput::Body::kLength;
  in.content_length = 35;
  std::string out;
  build_proxy_head(out, in, ProxyHeadPolicy{});
  EXPECT_EQ(out,
            "POST /u HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nContent-Length: 35\r\n"
            "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n");
  Parsed c("POST /u HTTP/1.1\r\nHost: h\r\nConnection: TRANSFER-encoding\r\n"
           "Transfer-Encoding: chunked\r\n\r\n");
  in = c.input();
  in.body = ProxyHeadInput::Body::kChunked;
  out.clear();
  build_proxy_head(out, in, ProxyHeadPolicy{});
  EXPECT_NE(out.find("\r\nTransfer-Encoding: chunked\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("Transfer-Encoding", out.find("Transfer-Encoding") + 1), std::string::npos);
  // A client's framing field without a body (none parsed) is not forwarded.
  Parsed g("GET /g HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: x\r\n\r\n");
  out.clear();
  build_proxy_head(out, g.input(), ProxyHeadPolicy{});
  EXPECT_EQ(out.find("Transfer-Encoding"), std::string::npos) << out;
  EXPECT_EQ(out.find("Content-Length"), std::string::npos) << out;
}

conf::AddressRange range(int family, const char* addr, int prefix) {
  conf::AddressRange r;
  r.text = addr;
  r.family = family;
  r.prefix = (uint8_t)prefix;
  inet_pton(family, addr, r.addr);
  return r;
}

TEST(WorkerPeerTrusted, AddressesAndCidrBlocks) {
  std::vector<conf::AddressRange> ranges = {range(AF_INET, "10.0.0.0", 8), range(AF_INET, "192.0.2.7", 32),
                                            range(AF_INET, "198.51.100.0", 23), range(AF_INET6, "2001:db8::", 32)};
  auto v4 = [&](const char* a) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, a, &sa.sin_addr);
    return peer_trusted(ranges, reinterpret_cast<sockaddr*>(&sa));
  };
  auto v6 = [&](const char* a) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    inet_pton(AF_INET6, a, &sa.sin6_addr);
    return peer_trusted(ranges, reinterpret_cast<sockaddr*>(&sa));
  };
  EXPECT_TRUE(v4("10.1.2.3"));
  EXPECT_FALSE(v4("11.0.0.1"));
  EXPECT_TRUE(v4("192.0.2.7"));
  EXPECT_FALSE(v4("192.0.2.8"));
  EXPECT_TRUE(v4("198.51.101.255"));  // /23
  EXPECT_FALSE(v4("198.51.102.0"));
  EXPECT_TRUE(v6("::ffff:10.9.9.9"));  // a v4-mapped peer on a dual-stack listener
  EXPECT_TRUE(v6("2001:db8:1::1"));
  EXPECT_FALSE(v6("2001:db9::1"));
  EXPECT_FALSE(v6("::1"));
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  EXPECT_FALSE(peer_trusted(ranges, reinterpret_cast<sockaddr*>(&un)));
  conf::AddressRange unix_range;
  unix_range.unix = true;
  ranges.push_back(unix_range);
  EXPECT_TRUE(peer_trusted(ranges, reinterpret_cast<sockaddr*>(&un)));
  EXPECT_FALSE(peer_trusted({}, reinterpret_cast<sockaddr*>(&un)));
}

// RFC 9110 7.6.3: the client's Via values, then this hop, in one field at
// the end; 1.0 for an HTTP/1.0 client. No policy name, no Via.
// The client's Upgrade and Connection are hop-by-hop and dropped; what the
// pool allows goes as pasture's own Upgrade with Connection: upgrade.
TEST(WorkerProxyHead, UpgradeIsSentOnlyAsAsked) {
  Parsed p("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket, foo\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: k\r\n\r\n");
  std::string out;
  ASSERT_TRUE(build_proxy_head(out, p.input(), ProxyHeadPolicy{}));
  EXPECT_EQ(out.find("Upgrade"), std::string::npos) << out;
  EXPECT_EQ(out.find("Connection"), std::string::npos) << out;
  EXPECT_NE(out.find("Sec-WebSocket-Key: k\r\n"), std::string::npos) << out;
  out.clear();
  ProxyHeadInput in = p.input();
  in.upgrade = "websocket";
  ASSERT_TRUE(build_proxy_head(out, in, ProxyHeadPolicy{}));
  EXPECT_NE(out.find("\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("foo"), std::string::npos) << out;
}

TEST(WorkerProxyHead, ViaIsAppendedInOneField) {
  Parsed p("GET /v HTTP/1.1\r\nHost: h\r\nvia: 1.1 a\r\nX-A: 1\r\nVia: 1.0 b\r\n\r\n");
  ProxyHeadPolicy pol;
  pol.via = "edge";
  std::string out;
  build_proxy_head(out, p.input(), pol);
  EXPECT_EQ(out,
            "GET /v HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-Forwarded-For: 10.0.0.9\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nVia: 1.1 a, 1.0 b, 1.1 edge\r\n\r\n");
  ProxyHeadInput in = p.input();
  in.http10 = true;
  out.clear();
  build_proxy_head(out, in, pol);
  EXPECT_NE(out.find("\r\nVia: 1.1 a, 1.0 b, 1.0 edge\r\n"), std::string::npos) << out;
  out.clear();
  build_proxy_head(out, p.input(), ProxyHeadPolicy{});
  EXPECT_NE(out.find("\r\nvia: 1.1 a\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\nVia: 1.0 b\r\n"), std::string::npos) << out;
}

// RFC 9110 10.1.1: Expect in HTTP/1.0 is ignored, so not forwarded.
TEST(WorkerProxyHead, ExpectOfHttp10IsNotForwarded) {
  Parsed p("POST /e HTTP/1.0\r\nExpect: 100-continue\r\nX-A: 1\r\n\r\n");
  ProxyHeadInput in = p.input();
  in.method = "POST";
  in.http10 = true;
  std::string out;
  build_proxy_head(out, in, ProxyHeadPolicy{});
  EXPECT_EQ(out.find("Expect"), std::string::npos) << out;
  in.http10 = false;
  out.clear();
  build_proxy_head(out, in, ProxyHeadPolicy{});
  EXPECT_NE(out.find("\r\nExpect: 100-continue\r\n"), std::string::npos) << out;
}

// RFC 9110 7.6.2: OPTIONS and TRACE go on with one hop less; other methods
// and values that are no number go on unchanged.
TEST(WorkerProxyHead, MaxForwardsIsDecrementedOnOptionsAndTrace) {
  struct Case {
    const char* method;
    const char* value;
    const char* sent;
  };
  for (const Case& c : {Case{"OPTIONS", "10", "9"}, Case{"TRACE", " 1 ", "0"},
                        Case{"OPTIONS", "99999999999999999999999", "9223372036854775806"},
                        Case{"GET", "10", "10"}, Case{"OPTIONS", "1x", "1x"}}) {
    SCOPED_TRACE(std::string(c.method) + " " + c.value);
    Parsed p(std::string(c.method) + " / HTTP/1.1\r\nHost: h\r\nMax-Forwards: " + c.value +
             "\r\n\r\n");
    ProxyHeadInput in = p.input();
    in.method = c.method;
    std::string out;
    build_proxy_head(out, in, ProxyHeadPolicy{});
    EXPECT_NE(out.find(std::string("\r\nMax-Forwards: ") + c.sent + "\r\n"), std::string::npos) << out;
  }
  EXPECT_EQ(max_forwards_value("0"), 0);
  EXPECT_EQ(max_forwards_value("007"), 7);
  EXPECT_EQ(max_forwards_value(""), -1);
  EXPECT_EQ(max_forwards_value("-1"), -1);
}

// Fields that pass unchanged are copied as runs of the client's lines
// (ProxyHeadInput::lines): the head must be byte for byte the one built
// field by field, whatever the lines look like and whatever is dropped or
// rewritten between them.
TEST(WorkerProxyHead, RunsOfLinesAreTheHeadBuiltFieldByField) {
  const std::string heads[] = {
      "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
      // no space, two spaces, a tab, trailing whitespace, an empty value
      "GET / HTTP/1.1\r\nHost:h\r\nA:1\r\nB:  2\r\nC:\t3\r\nD: 4 \r\nE: 5\t\r\nF:\r\nG: \r\nH: 8\r\n\r\n",
      // bare LF line ends (llhttp's lenient build takes them)
      "GET / HTTP/1.1\nHost: h\nA: 1\r\nB: 2\nC: 3\n\n",
      // dropped and rewritten fields between runs
      "OPTIONS / HTTP/1.1\r\nHost: h\r\nA: 1\r\nConnection: X-Hop, keep-alive\r\nB: 2\r\n"
      "X-Hop: 9\r\nC: 3\r\nMax-Forwards: 5\r\nD: 4\r\nKeep-Alive: 5\r\nE: 5\r\n"
      "X-Forwarded-For: 1.1.1.1\r\nF: 6\r\nVia: 1.0 a\r\nG: 7\r\nX_Under: 1\r\nH: 8\r\n"
      "TE: trailers\r\nContent-Length: 0\r\nI: 9\r\n\r\n",
      // the last field right before the end, a long value
      "GET / HTTP/1.1\r\nHost: h\r\nCookie: " + std::string(3000, 'c') + "\r\n\r\n",
  };
  for (const std::string& head : heads) {
    for (bool trusted : {false, true}) {
      for (bool underscores : {false, true}) {
        SCOPED_TRACE(head.substr(0, 60) + (trusted ? " trusted" : "") + (underscores ? " _" : ""));
        Parsed p(head);
        ASSERT_FALSE(p.headers.empty());
        ProxyHeadInput in = p.input();
        in.method = std::string_view(head).substr(0, head.find(' '));  // a view of `head`, not of a temporary
        in.trusted_peer = trusted;
        ProxyHeadPolicy pol;
        pol.underscores = underscores;
        pol.via = "pasture";
        std::string runs, fields, noted;
        ASSERT_TRUE(build_proxy_head(runs, in, pol));
        in.lines = false;
        ASSERT_TRUE(build_proxy_head(fields, in, pol));
        EXPECT_EQ(runs, fields);
        // The same with each field's kind noted first (check_request_head).
        std::vector<HeaderSpan> kinds = p.headers;
        for (HeaderSpan& h : kinds) h.kind = field_kind(span_view(p.raw.data(), h.name));
        in.headers = &kinds;
        in.lines = true;
        ASSERT_TRUE(build_proxy_head(noted, in, pol));
        EXPECT_EQ(noted, fields);
      }
    }
  }
  // Empty values go on as "Name: " (review 39).
  {
    Parsed e("GET / HTTP/1.1\r\nHost: h\r\nA:\r\nB: 2\r\nC: \r\n\r\n");
    std::string out;
    ASSERT_TRUE(build_proxy_head(out, e.input(), ProxyHeadPolicy{}));
    EXPECT_EQ(out.substr(0, out.find("X-Forwarded-For")),
              "GET / HTTP/1.1\r\nHost: h\r\nA: \r\nB: 2\r\nC: \r\n");
  }
  // And what that head is: the order kept around a rewritten field.
  Parsed p("OPTIONS / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nMax-Forwards: 5\r\nC: 3\r\n"
           "TE: x\r\nD: 4\r\n\r\n");
  ProxyHeadInput in = p.input();
  in.method = "OPTIONS";
  std::string out;
  ASSERT_TRUE(build_proxy_head(out, in, ProxyHeadPolicy{}));
  EXPECT_EQ(out.substr(0, out.find("X-Forwarded-For")),
            "OPTIONS / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nMax-Forwards: 4\r\nC: 3\r\nD: 4\r\n");
}

TEST(WorkerProxyHead, TraceEchoLeavesOutCredentials) {
  Parsed p("TRACE /t HTTP/1.1\r\nHost: h\r\nCookie: c=1\r\nAUTHORIZATION: x\r\n"
           "Proxy-Authorization: y\r\nX-A: 1\r\n\r\n");
  ProxyHeadInput in = p.input();
  in.method = "TRACE";
  std::string out;
  build_trace_echo(out, in);
  EXPECT_EQ(out, "TRACE /t HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n");
}

TEST(WorkerConnectionTokens, NominatesCaseInsensitivelyButNeverFramingOrHost) {
  ConnectionTokens t;
  t.add("keep-alive, X-One ,x-TWO");
  t.add("close");
  t.add(" content-LENGTH, Transfer-Encoding,HOST, ,x-three");
  t.finish();
  EXPECT_TRUE(t.nominates("x-one"));
  EXPECT_TRUE(t.nominates("X-TWO"));
  EXPECT_TRUE(t.nominates("X-Three"));
  EXPECT_FALSE(t.nominates("x-on"));
  EXPECT_FALSE(t.nominates("x-one2"));
  EXPECT_FALSE(t.nominates("Content-Length"));
  EXPECT_FALSE(t.nominates("transfer-encoding"));
  EXPECT_FALSE(t.nominates("Host"));
  EXPECT_FALSE(t.nominates("close"));
  ConnectionTokens plain;
  plain.add("keep-alive");
  plain.add("Close");
  plain.finish();
  EXPECT_TRUE(plain.empty());  // no allocation, no lookup for the usual values
}

TEST(WorkerConnectionTokens, ThousandsOfTokensStayCorrect) {
  std::string list;
  for (int i = 0; i < 5000; i++) list += "t" + std::to_string(i * 7) + ", ";
  ConnectionTokens t;
  t.add(list);
  t.finish();
  for (int i = 0; i < 35000; i++)
    EXPECT_EQ(t.nominates("T" + std::to_string(i)), i % 7 == 0) << i;
}

}  // namespace
}  // namespace pasture::worker

namespace pasture::worker {
namespace {

// Over TLS: X-Forwarded-Proto https (a trusted proxy's own value still
// wins); the client-subject header is pasture's alone, whatever the peer.
TEST(WorkerProxyHead, TlsSaysHttpsAndTheSubjectHeaderCannotBeForged) {
  Parsed p("GET /a HTTP/1.1\r\nHost: site.test\r\nX-Client-Subject: CN=mallory\r\nx_client_subject: CN=eve\r\n"
           "X-Forwarded-Proto: http\r\n\r\n");
  ProxyHeadPolicy pol;
  pol.underscores = true;
  for (bool trusted : {false, true}) {
    std::string out;
    ProxyHeadInput in = p.input();
    in.trusted_peer = trusted;
    in.tls = true;
    in.subject_header = "X-Client-Subject";
    in.subject = "CN=alice,O=Example";
    ASSERT_TRUE(build_proxy_head(out, in, pol));
    EXPECT_EQ(out,
              std::string("GET /a HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: ") +
                  (trusted ? "http" : "https") +
                  "\r\nX-Client-Subject: CN=alice,O=Example\r\nX-Forwarded-Host: site.test\r\n\r\n")
        << trusted;
    in.subject = "";  // no client certificate: no field at all
    out.clear();
    ASSERT_TRUE(build_proxy_head(out, in, pol));
    EXPECT_EQ(out.find("lient"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace pasture::worker
