// worker/head_check: the decisions ClientConn takes on a parsed head, as
// the fuzz targets (tests/fuzz/request.cc, response.cc) drive them.
#include <gtest/gtest.h>
#include <llhttp.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/collect_head.h"
#include "worker/head_check.h"

namespace pasture::worker {
namespace {

// `raw` parsed by llhttp (type HTTP_REQUEST or HTTP_RESPONSE) up to the
// end of its head, with the worker's collector.
struct Head {
  std::string raw;
  std::vector<HeaderSpan> spans;
  HeadCollector c;
  llhttp_settings_t st;
  llhttp_t p;
  llhttp_errno_t err;
  Head(llhttp_type_t type, std::string r) : raw(std::move(r)) {
    c.headers = &spans;
    c.base = raw.data();
    st = collector_settings();
    st.on_status = [](llhttp_t* q, const char* a, size_t n) {
      static_cast<HeadCollector*>(q->data)->on_status(a, n);
      return 0;
    };
    st.on_headers_complete = [](llhttp_t*) { return (int)HPE_PAUSED; };
    llhttp_init(&p, type, &st);
    p.data = &c;
    err = llhttp_execute(&p, raw.data(), raw.size());
  }
};

// check_request_head on `raw`; `rh` views point into `head` and `scratch`.
struct Checked {
  Head head;
  std::string scratch;
  RequestHead rh;
  const char* why = nullptr;
  int status;
  explicit Checked(const std::string& raw) : head(HTTP_REQUEST, raw) {
    EXPECT_EQ(head.err, HPE_PAUSED) << raw;
    conf::ServerSettings srv;
    srv.max_url_bytes = 64;
    srv.max_header_fields = 4;
    status = check_request_head(head.p, head.raw.data(), head.c, srv, scratch, &rh, &why);
    EXPECT_EQ(status == 0, why == nullptr) << raw;
  }
};

// check_request_head notes each field's kind for build_proxy_head: the kind
// its name has, whichever way the name was checked (16 bytes at a time or
// byte by byte).
TEST(WorkerHeadCheck, EachFieldsKindIsNoted) {
  std::string raw = "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1\r\nx_forwarded_for: 2\r\n"
                    "Transfer-Encoding: chunked\r\nMAX-FORWARDS: 3\r\nExpect: 100-continue\r\n"
                    "Via: a\r\nX-Pasture-Script-Name: /x\r\nX-Forwarded-Port: 1\r\nConnection: a\r\n"
                    "A-Quite-Long-Field-Name-Over-16: v\r\nweird!#$%&'*+.^`|~: v\r\nAccept: v\r\n\r\n";
  Head h(HTTP_REQUEST, raw);
  ASSERT_EQ(h.err, HPE_PAUSED);
  for (HeaderSpan& s : h.spans) s.kind = FieldKind::kUnknown;
  conf::ServerSettings srv;
  std::string scratch;
  RequestHead rh;
  const char* why = nullptr;
  EXPECT_EQ(check_request_head(h.p, h.raw.data(), h.c, srv, scratch, &rh, &why), 0) << why;
  std::vector<FieldKind> want = {FieldKind::kHost, FieldKind::kXff, FieldKind::kUnderscore,
                                 FieldKind::kTransferEncoding, FieldKind::kMaxForwards,
                                 FieldKind::kExpect, FieldKind::kVia, FieldKind::kDrop,
                                 FieldKind::kClaim, FieldKind::kDrop, FieldKind::kOther,
                                 FieldKind::kOther, FieldKind::kOther};
  ASSERT_EQ(h.spans.size(), want.size());
  for (size_t i = 0; i < want.size(); i++) {
    std::string_view name = span_view(h.raw.data(), h.spans[i].name);
    EXPECT_EQ(h.spans[i].kind, want[i]) << name;
    EXPECT_EQ(h.spans[i].kind, field_kind(name)) << name;
  }
}

// RFC 9110 5.5: a field value may be empty (nginx takes it); llhttp reports
// an empty piece past the line break for it, which is no obs-fold (review
// 39: "A:" and "A: " were answered 400). A fold after an empty value still is.
TEST(WorkerHeadCheck, EmptyFieldValuesMayBeServed) {
  for (const char* raw : {"GET / HTTP/1.1\r\nHost: h\r\nA:\r\n\r\n",
                          "GET / HTTP/1.1\r\nA: \r\nHost: h\r\n\r\n",
                          "GET / HTTP/1.1\r\nA:\t\r\nB:\r\nHost: h\r\n\r\n"}) {
    Checked c(raw);
    EXPECT_EQ(c.status, 0) << raw << (c.why ? c.why : "");
    ASSERT_GE(c.head.spans.size(), 2u) << raw;
    for (const HeaderSpan& h : c.head.spans) {
      std::string_view name = span_view(c.head.raw.data(), h.name);
      if (name != "Host") {
        EXPECT_EQ(trim_ows(span_view(c.head.raw.data(), h.value)), "") << name;
      }
    }
  }
  // Folds after an empty value, also lines of whitespace only (review 40).
  for (const char* raw : {"GET / HTTP/1.1\r\nHost: h\r\nA:\r\n b\r\n\r\n",
                          "GET / HTTP/1.1\r\nA: \r\n\tb\r\nHost: h\r\n\r\n",
                          "GET / HTTP/1.1\r\nHost: h\r\nA:\r\n \r\n\r\n",
                          "GET / HTTP/1.1\r\nA:\r\n\t\r\nHost: h\r\n\r\n",
                          "GET / HTTP/1.1\r\nA: \r\n \r\n \r\nHost: h\r\n\r\n"}) {
    Checked c(raw);
    EXPECT_EQ(c.status, 400) << raw;
  }
  // An empty Transfer-Encoding leaves llhttp's flag unset; it is still a
  // Transfer-Encoding that is not a lone "chunked" (review 40: the body was
  // framed by Content-Length and a request smuggled behind it).
  Checked te("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(te.status, 501);
  Checked te10("POST /a HTTP/1.0\r\nTransfer-Encoding: \r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(te10.status, 400);
  // Upstream answers: an empty value passes, a fold after it does not.
  Head ok(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nA:\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(valid_response_head(ok.raw.data(), ok.c, ok.p));
  Head fold(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nA:\r\n \r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(valid_response_head(fold.raw.data(), fold.c, fold.p));
  // Found by fuzzing (tests/fuzz/response.cc): a length of 2^64 - 1 went on
  // to the client, whose parser refused it. INT64_MAX is the bound.
  Head huge(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 00000000000000018446744073709551615\r\n\r\n");
  EXPECT_FALSE(valid_response_head(huge.raw.data(), huge.c, huge.p));
  Head over(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n");
  EXPECT_FALSE(valid_response_head(over.raw.data(), over.c, over.p));
  Head max(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n");
  EXPECT_TRUE(valid_response_head(max.raw.data(), max.c, max.p));
  Checked maxrq("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n");
  EXPECT_EQ(maxrq.status, 0);
}

TEST(WorkerHeadCheck, RequestHeadsThatMayBeServed) {
  Checked a("GET /a/../b%2Fc?q HTTP/1.1\r\nHost: Site.Test\r\nExpect: 100-continue \r\n\r\n");
  EXPECT_EQ(a.status, 0);
  EXPECT_EQ(a.rh.host, "Site.Test");
  EXPECT_EQ(a.rh.path.decoded, "/b/c");
  EXPECT_EQ(a.rh.target.query, "q");
  EXPECT_TRUE(a.rh.expect_continue);
  EXPECT_FALSE(a.rh.chunked);
  Checked b("POST http://other:81/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(b.status, 0);
  EXPECT_EQ(b.rh.host, "other:81");  // the absolute form's authority wins
  EXPECT_TRUE(b.rh.chunked);
  EXPECT_EQ(Checked("GET / HTTP/1.0\r\n\r\n").status, 0);  // HTTP/1.0 needs no Host
  Checked c("OPTIONS * HTTP/1.1\r\nHost: h\r\nMax-Forwards: 2\r\n\r\n");
  EXPECT_EQ(c.status, 0);
  EXPECT_EQ(c.rh.max_forwards, "2");
}

TEST(WorkerHeadCheck, RequestHeadsAnsweredWithAnError) {
  const struct {
    const char* raw;
    int status;
  } cases[] = {
      {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
      {"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431},
      {"GET /0123456789012345678901234567890123456789012345678901234567890123456789 HTTP/1.1\r\nHost: h\r\n\r\n", 414},
      {"GET /../x HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", 400},
      // Found by fuzzing (tests/fuzz/request.cc; corpus crash-name-with-space):
      // llhttp takes a space inside a name, which went upstream as it came.
      {"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encngd o:igzip, chunked\r\n\r\n", 400},
      // Found by FramingDifferential: an obs-fold right after the colon was
      // not seen (no value piece before it) and the head went on.
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n 4\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost:\r\n\th\r\n\r\n", 400},
      // Found by fuzzing (crash-tab-in-query): a TAB in the query went upstream.
      {"GET /x?q=%00\t HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"TRACE / HTTP/1.1\r\nHost: h\r\nMax-Forwards: 1, 2\r\n\r\n", 400},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      // llhttp takes up to 2^64 - 1 (leading zeros too): it went upstream as
      // -1, no length; above INT64_MAX is refused, as nginx's off_t does.
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0009223372036854775808\r\n\r\n", 400},
  };
  for (const auto& c : cases) {
    Checked r(c.raw);
    EXPECT_EQ(r.status, c.status) << c.raw;
    EXPECT_NE(r.why, nullptr) << c.raw;
  }
}

// has_bare_cr goes from CR to CR (memchr); field names by a table of
// token characters (RFC 9110 5.6.2): both were byte loops.
TEST(WorkerHeadCheck, BareCrAndFieldNameCharacters) {
  auto bare = [](const std::string& s) { return has_bare_cr(s.data(), s.data() + s.size()); };
  EXPECT_FALSE(bare(""));
  EXPECT_FALSE(bare("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  EXPECT_TRUE(bare("a\rb\r\n"));
  EXPECT_TRUE(bare("a\r\n\r"));        // a CR that ends the bytes
  EXPECT_TRUE(bare("a\r\r\n"));        // the first of two CRs is bare
  EXPECT_FALSE(bare("\r\n\r\n"));
  std::string cookie = "Cookie: " + std::string(3000, 'c') + "\r\n";
  EXPECT_FALSE(bare(cookie + cookie));
  EXPECT_TRUE(bare(cookie + "x\ry" + cookie));
  EXPECT_EQ(Checked("GET / HTTP/1.1\r\nHost: h\r\nX!#$%&'*+-.^_`|~09az: 1\r\n\r\n").status, 0);
  // Every byte in a name that llhttp lets through: served exactly when it
  // is a token character.
  const std::string tchar = "!#$%&'*+-.^_`|~";
  for (int c = 1; c < 256; c++) {
    std::string raw = std::string("GET / HTTP/1.1\r\nHost: h\r\nX") + (char)c + "Y: 1\r\n\r\n";
    Head h(HTTP_REQUEST, raw);
    if (h.err != HPE_PAUSED || c == ':') continue;  // refused by llhttp, or the name ends
    bool token = isalnum(c) || tchar.find((char)c) != std::string::npos;
    conf::ServerSettings srv;
    std::string scratch;
    RequestHead rh;
    const char* why = nullptr;
    EXPECT_EQ(check_request_head(h.p, h.raw.data(), h.c, srv, scratch, &rh, &why) == 0, token) << c;
  }
}

// has_bare_cr looks 16 bytes at a time, 64 through long heads (the last block
// overlapping the one before it): the same answers as a byte loop, for CRs
// and LFs at every place of inputs 0 to 400 bytes long.
TEST(WorkerHeadCheck, BareCrAgreesWithTheBytes) {
  auto bytewise = [](const std::string& s) {
    for (size_t i = 0; i < s.size(); i++)
      if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return true;
    return false;
  };
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
  const char alphabet[] = {'\r', '\n', 'a', '\r', '\n'};
  int bare = 0;
  for (int i = 0; i < 40000; i++) {
    std::string s(next() % 401, 'x');
    // Mostly CRLF pairs, which a head is made of, with a stray byte now and then.
    for (size_t j = 0; j < s.size(); j++) {
      if (next() % 8 == 0) {
        s[j] = alphabet[next() % 5];
      } else if (next() % 6 == 0 && j + 1 < s.size()) {
        s[j] = '\r';
        s[++j] = '\n';
      }
    }
    // In a buffer of exactly its size: a read past the end is one the
    // sanitized build sees (review 43).
    std::unique_ptr<char[]> buf(new char[s.size() ? s.size() : 1]);
    memcpy(buf.get(), s.data(), s.size());
    bool want = bytewise(s);
    bare += want;
    ASSERT_EQ(has_bare_cr(buf.get(), buf.get() + s.size()), want) << testing::PrintToString(s);
  }
  EXPECT_GT(bare, 1000);  // both answers were asked for
  EXPECT_LT(bare, 39000);
  // a CR that ends a long input
  std::string cookie = "Cookie: " + std::string(300, 'c') + "\r\n";
  for (size_t cut = cookie.size() - 20; cut <= cookie.size(); cut++)
    EXPECT_EQ(has_bare_cr(cookie.data(), cookie.data() + cut), cut == cookie.size() - 1) << cut;
}

TEST(WorkerHeadCheck, RequestLineWithoutVersion) {
  std::string a = "\r\nGET /\r\n", b = "GET / HTTP/1.1\r\n", c = "GET /";
  EXPECT_TRUE(request_line_lacks_version(a.data(), a.data() + a.size()));
  EXPECT_FALSE(request_line_lacks_version(b.data(), b.data() + b.size()));
  EXPECT_FALSE(request_line_lacks_version(c.data(), c.data() + c.size()));  // not complete yet
}

std::string response_head(const std::string& raw, bool head_request, bool http10, ResponseFraming* f,
                           bool* valid) {
  Head h(HTTP_RESPONSE, raw);
  std::string o;
  *valid = valid_response_head(h.raw.data(), h.c, h.p);
  append_response_head(o, h.raw.data(), h.c, h.p, "pasture");
  *f = append_response_framing(o, h.p, head_request, http10);
  return o;
}

// The status line is written from pieces (the digits, the upstream's reason
// with its CRLF where that follows it): each way it can be made.
TEST(WorkerHeadCheck, ResponseStatusLine) {
  ResponseFraming f;
  bool valid;
  auto first_line = [&](const std::string& raw) {
    std::string o = response_head(raw, false, false, &f, &valid);
    return o.substr(0, o.find('\n') + 1);
  };
  EXPECT_EQ(first_line("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(first_line("HTTP/1.1 299 Quite Fine\nContent-Length: 0\n\n"), "HTTP/1.1 299 Quite Fine\r\n");
  EXPECT_EQ(first_line("HTTP/1.0 404 \r\nContent-Length: 0\r\n\r\n"), "HTTP/1.1 404 Not Found\r\n");
  EXPECT_EQ(first_line("HTTP/1.1 503 Busy\x01\r\nContent-Length: 0\r\n\r\n"),
            "HTTP/1.1 503 Service Unavailable\r\n");  // a control byte in the reason
  EXPECT_EQ(first_line("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
            "HTTP/1.1 101 Switching Protocols\r\n");
  std::string o;
  append_uint_line(o, "Content-Length: ", 0);
  append_uint_line(o, "X: ", 18446744073709551615ull);
  append_uint_line(o, std::string(50, 'n'), 7);  // a prefix longer than the line buffer takes
  EXPECT_EQ(o, "Content-Length: 0\r\nX: 18446744073709551615\r\n" + std::string(50, 'n') + "7\r\n");
}

TEST(WorkerHeadCheck, ResponseHeadAndFraming) {
  ResponseFraming f;
  bool valid;
  EXPECT_EQ(response_head("HTTP/1.1 200 OK\r\nConnection: X-A\r\nX-A: 1\r\nContent-Length: 5\r\nVia: 1.0 up\r\n"
                          "Keep-Alive: 5\r\nX-B: 2\r\n\r\n",
                          false, false, &f, &valid),
            "HTTP/1.1 200 OK\r\nX-B: 2\r\nVia: 1.0 up, 1.1 pasture\r\nContent-Length: 5\r\n");
  EXPECT_TRUE(valid);
  EXPECT_FALSE(f.decode || f.until_eof);
  EXPECT_EQ(response_head("HTTP/1.0 404 \r\nTransfer-Encoding: chunked\r\n\r\n", false, false, &f, &valid),
            "HTTP/1.1 404 Not Found\r\nVia: 1.0 pasture\r\nTransfer-Encoding: chunked\r\n");
  // HTTP/1.0 clients: no chunked coding; the payload, then the close.
  EXPECT_EQ(response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, true, &f, &valid),
            "HTTP/1.1 200 OK\r\nVia: 1.1 pasture\r\n");
  EXPECT_TRUE(f.decode);
  response_head("HTTP/1.1 200 OK\r\n\r\n", false, false, &f, &valid);
  EXPECT_TRUE(f.until_eof);
  // No body: no framing decision, but HEAD keeps the length it announces.
  EXPECT_EQ(response_head("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true, false, &f, &valid),
            "HTTP/1.1 200 OK\r\nVia: 1.1 pasture\r\nContent-Length: 7\r\n");
  EXPECT_FALSE(f.until_eof);
  EXPECT_EQ(response_head("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", false, false, &f, &valid),
            "HTTP/1.1 204 No Content\r\nVia: 1.1 pasture\r\n");
  // Found by fuzzing (tests/fuzz/response.cc; corpus crash-nul-in-reason):
  // llhttp passes NUL bytes in a reason phrase, which went to the client.
  EXPECT_EQ(response_head(std::string("HTTP/1.1 200 OK\0\0\r\nContent-Length: 0\r\n\r\n", 40), false, false, &f,
                          &valid),
            "HTTP/1.1 200 OK\r\nVia: 1.1 pasture\r\nContent-Length: 0\r\n");
  EXPECT_TRUE(valid);
  // Refused: obs-fold, whitespace before the colon or in a name, a coding
  // pasture does not frame.
  for (const char* bad : {"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n", "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length:\r\n 0\r\n\r\n",
                          // Found by fuzzing (crash-status-020): forwarded as "HTTP/1.1 20".
                          "HTTP/1.1 020 OK\r\n\r\n", "HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n"}) {
    response_head(bad, false, false, &f, &valid);
    EXPECT_FALSE(valid) << bad;
  }
}

// The fields that pass go as runs of the upstream's own lines (LineRun):
// byte for byte what writing them one by one gives, whatever the lines look
// like and whatever is dropped between them.
TEST(WorkerHeadCheck, ResponseFieldsAreTheHeadBuiltFieldByField) {
  auto by_field = [](const Head& h) {
    ConnectionTokens nominated;
    for (const HeaderSpan& hs : h.spans)
      if (iequals(span_view(h.raw.data(), hs.name), "connection")) nominated.add(span_view(h.raw.data(), hs.value));
    nominated.finish();
    std::string o;
    for (const HeaderSpan& hs : h.spans) {
      std::string_view name = span_view(h.raw.data(), hs.name);
      if (is_hop_by_hop(name) || is_framing(name) || nominated.nominates(name)) continue;
      o.append(name).append(": ").append(span_view(h.raw.data(), hs.value)).append("\r\n");
    }
    return o;
  };
  std::vector<std::string> heads = {
      "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: x\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
      "Last-Modified: y\r\nConnection: keep-alive\r\nETag: \"z\"\r\nAccept-Ranges: bytes\r\n\r\n",
      "HTTP/1.1 200 OK\r\nA:1\r\nB:  2\r\nC:\t3\r\nD: 4 \r\nE: 5\t\r\nF:\r\nG: \r\nH: 8\r\n\r\n",
      "HTTP/1.1 200 OK\nA: 1\r\nB: 2\nC: 3\n\n",
      "HTTP/1.1 200 OK\r\nA: 1\r\nConnection: X-Hop, close\r\nB: 2\r\nX-Hop: 9\r\nC: 3\r\nKeep-Alive: 5\r\n"
      "D: 4\r\nVia: 1.0 a\r\nE: 5\r\nTE: x\r\nTransfer-Encoding: chunked\r\nF: 6\r\n\r\n",
      "HTTP/1.1 200 OK\r\nSet-Cookie: " + std::string(3000, 'c') + "\r\n\r\n",
  };
  // And heads made at random from such lines.
  const char* names[] = {"A", "Bb", "Connection", "Keep-Alive", "Content-Length", "Via", "X-Hop", "Set-Cookie"};
  const char* values[] = {"1", "", " ", "x y", "X-Hop", "v\t", "close, X-Hop", "0"};
  const char* seps[] = {": ", ":", ":  ", ":\t"};
  const char* ends[] = {"\r\n", "\r\n", "\r\n", "\n"};
  uint32_t seed = 7;
  auto next = [&] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
  for (int i = 0; i < 6000; i++) {
    std::string h = "HTTP/1.1 200 OK\r\n";
    for (int n = (int)(next() % 9); n > 0; n--)
      h += std::string(names[next() % 8]) + seps[next() % 4] + values[next() % 8] + ends[next() % 4];
    heads.push_back(h + "\r\n");
  }
  int checked = 0;
  for (const std::string& raw : heads) {
    Head h(HTTP_RESPONSE, raw);
    if (h.err != HPE_PAUSED) continue;  // a Content-Length of "x y", say: never gets this far
    checked++;
    std::string o;
    append_response_head(o, h.raw.data(), h.c, h.p, "");
    ASSERT_EQ(o, "HTTP/1.1 200 OK\r\n" + by_field(h)) << testing::PrintToString(raw);
  }
  EXPECT_GT(checked, 1500);
  // With this hop's Via: the upstream's joined into one field, at the end.
  Head v(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nA: 1\r\nVia: 1.0 a\r\nB: 2\r\nC: 3\r\n\r\n");
  std::string o;
  append_response_head(o, v.raw.data(), v.c, v.p, "pasture");
  EXPECT_EQ(o, "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nVia: 1.0 a, 1.1 pasture\r\n");
}

}  // namespace
}  // namespace pasture::worker
