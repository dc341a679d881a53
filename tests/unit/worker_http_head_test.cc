#include <gtest/gtest.h>
#include <llhttp.h>

#include "tests/unit/collect_head.h"
#include "worker/http_head.h"

namespace pasture::worker {
namespace {

// plain_field_name (SSE2, 16 bytes at a time, reading before the name down
// to the buffer's start) against the bytes one by one: every byte value at
// every place of names 1 to 40 long, near the buffer's start and away from it.
TEST(WorkerHead, PlainFieldNameAgreesWithTheBytes) {
  auto plain = [](std::string_view n) {
    for (char c : n)
      if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') && c != '-')
        return false;
    return !n.empty();
  };
  std::string buf(128, '?');
  int fast = 0;
  for (size_t lead : {0, 3, 15, 16, 40}) {
    for (size_t len = 0; len <= 40; len++) {
      for (int b = 0; b < 256; b++) {
        for (size_t at = 0; at < len; at += (len > 8 ? 7 : 1)) {
          std::string name;
          for (size_t i = 0; i < len; i++) name.push_back("Ab-9zZ0aq"[i % 9]);
          name[at] = (char)b;
          std::copy(name.begin(), name.end(), buf.begin() + lead);
          std::string_view v(buf.data() + lead, len);
          bool got = plain_field_name(v, buf.data());
          // False near the buffer's start (fewer than 16 bytes to read) says
          // nothing; true is always right, and away from the start exact.
          if (got) {
            EXPECT_TRUE(plain(v)) << "byte " << b << " at " << at << " of " << len;
            fast++;
          } else if (lead + len >= 16) {
            EXPECT_FALSE(plain(v)) << "byte " << b << " at " << at << " of " << len;
          }
        }
      }
    }
  }
  EXPECT_GT(fast, 1000);
  EXPECT_FALSE(plain_field_name("", buf.data()));
}

// valid_host by a table of byte kinds: the answers of the byte loop it
// replaced (no control byte, space, DEL or '/', no "..") for strings of
// the bytes that matter, 0 to 12 long.
TEST(WorkerHead, ValidHostAgreesWithTheBytes) {
  auto bytewise = [](std::string_view h) {
    if (h.empty()) return false;
    char prev = 0;
    for (char ch : h) {
      auto c = (unsigned char)ch;
      if (c <= 0x20 || c == 0x7f || c == '/' || (c == '.' && prev == '.')) return false;
      prev = ch;
    }
    return true;
  };
  const char alphabet[] = {'a', '.', '.', ':', '-', '/', ' ', '\t', '\x7f', '\x80', '\xff', '\0', '\x21', '\x20'};
  uint32_t seed = 99;
  auto next = [&] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
  int valid = 0;
  for (int i = 0; i < 30000; i++) {
    std::string h(next() % 13, 'a');
    for (char& c : h)
      if (next() % 3 == 0) c = alphabet[next() % sizeof alphabet];
    bool want = bytewise(h);
    valid += want;
    ASSERT_EQ(valid_host(h), want) << testing::PrintToString(h);
  }
  EXPECT_GT(valid, 3000);
  EXPECT_LT(valid, 27000);
  EXPECT_TRUE(valid_host("127.0.0.1:8080"));
  EXPECT_TRUE(valid_host("[::1]:80"));
  EXPECT_FALSE(valid_host("a..b"));
  EXPECT_FALSE(valid_host("a./.b"));
  EXPECT_TRUE(valid_host(".a.b."));
}

TEST(WorkerHead, SplitTargetForms) {
  RequestTarget t;
  ASSERT_TRUE(split_target("/a/b?x=1&y", &t));
  EXPECT_EQ(t.path, "/a/b");
  EXPECT_EQ(t.query, "x=1&y");
  EXPECT_TRUE(t.has_query);
  ASSERT_TRUE(split_target("http://Example.com:81/p?q", &t));
  EXPECT_EQ(t.authority, "Example.com:81");
  EXPECT_EQ(t.path, "/p");
  EXPECT_EQ(t.query, "q");
  ASSERT_TRUE(split_target("http://h", &t));
  EXPECT_EQ(t.path, "/");
  ASSERT_TRUE(split_target("*", &t));
  EXPECT_FALSE(split_target("ftp://h/x", &t));
  EXPECT_FALSE(split_target("relative", &t));
}

TEST(WorkerHead, JoinBasePathLikeUrljoin) {
  EXPECT_EQ(join_base_path("/base/", "/one/x"), "/base/one/x");
  EXPECT_EQ(join_base_path("/base", "/one/x"), "/one/x");  // urljoin replaces the last segment
  EXPECT_EQ(join_base_path("/a/b/", "/"), "/a/b/");
}

TEST(WorkerHead, HopByHopAndTokens) {
  EXPECT_TRUE(is_hop_by_hop("Connection"));
  EXPECT_TRUE(is_hop_by_hop("keep-alive"));
  EXPECT_TRUE(is_hop_by_hop("TE"));
  EXPECT_TRUE(is_hop_by_hop("Upgrade"));
  EXPECT_FALSE(is_hop_by_hop("Transfer-Encoding"));  // framing passes through
  EXPECT_FALSE(is_hop_by_hop("Host"));
  EXPECT_TRUE(has_token("keep-alive, X-Foo ,bar", "x-foo"));
  EXPECT_TRUE(has_token("close", "Close"));
  EXPECT_FALSE(has_token("x-foobar", "x-foo"));
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_FALSE(iequals("a[", "a{"));  // case folding only for letters
}

// The collector sees a head split across reads as one contiguous buffer
// growing at the end: elements continue where they stopped.
TEST(WorkerHead, CollectorMergesSplitElements) {
  std::string buf = "GET /abc HTTP/1.1\r\nHost: exa";
  std::vector<HeaderSpan> hs;
  HeadCollector c;
  c.headers = &hs;
  llhttp_settings_t st = collector_settings();
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &st);
  parser.data = &c;
  buf.reserve(256);  // appends below must not move the buffer under llhttp
  c.base = buf.data();
  ASSERT_EQ(llhttp_execute(&parser, buf.data(), buf.size()), HPE_OK);
  size_t old = buf.size();
  buf += "mple.org\r\nX-A: 1\r\n\r\n";
  c.base = buf.data();
  ASSERT_EQ(llhttp_execute(&parser, buf.data() + old, buf.size() - old), HPE_OK);
  EXPECT_EQ(span_view(c.base, c.url), "/abc");
  ASSERT_EQ(hs.size(), 2u);
  EXPECT_EQ(span_view(c.base, hs[0].name), "Host");
  EXPECT_EQ(span_view(c.base, hs[0].value), "example.org");
  EXPECT_EQ(span_view(c.base, hs[1].value), "1");
  // Rebase: the head moves to a buffer that starts 4 bytes later.
  c.rebase(4);
  std::string moved = buf.substr(4);
  EXPECT_EQ(span_view(moved.data(), c.url), "/abc");
  EXPECT_EQ(span_view(moved.data(), hs[0].value), "example.org");
}

TEST(WorkerHead, AppendUintAndReasons) {
  std::string s;
  append_uint(s, 0);
  s += ' ';
  append_uint(s, 18446744073709551615ull);
  EXPECT_EQ(s, "0 18446744073709551615");
  EXPECT_STREQ(reason_phrase(502), "Bad Gateway");
  EXPECT_STREQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_STREQ(reason_phrase(403), "Forbidden");  // the status app's refusals said "403 Unknown"
  EXPECT_STREQ(reason_phrase(429), "Too Many Requests");
}

}  // namespace
}  // namespace pasture::worker
