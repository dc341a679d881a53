// master/etcd_client.h and the value parsers of master/etcd_watch.h: base64
// and prefix ranges as etcd's gateway wants them, the streamed HTTP/1.1
// reader fed byte by byte, member and admin values. (The watch itself runs
// against a real etcd: tests/integration/discovery_etcd_test.cc.)
#include <gtest/gtest.h>

#include "master/etcd_client.h"
#include "master/etcd_watch.h"

namespace pasture::master::etcd {
namespace {

TEST(EtcdClient, Base64RoundTrips) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("/p/a/x"), "L3AvYS94");  // as etcd answered for this key
  EXPECT_EQ(base64("127.0.0.1:8000 weight=2"), "MTI3LjAuMC4xOjgwMDAgd2VpZ2h0PTI=");
  EXPECT_EQ(base64("ab"), "YWI=");
  std::string all;
  for (int i = 0; i < 256; i++) all += (char)i;
  for (size_t n = 0; n < all.size(); n += 37) {
    std::string out;
    ASSERT_TRUE(unbase64(base64(all.substr(0, n)), &out));
    EXPECT_EQ(out, all.substr(0, n));
  }
  std::string out;
  EXPECT_FALSE(unbase64("a*b=", &out));
  for (const char* bad : {"====", "QQ=A", "QQ==QQ==", "QQ==    ", "Q==="})  // review 23
    EXPECT_FALSE(unbase64(bad, &out)) << bad;
}

TEST(EtcdClient, PrefixEndCoversThePrefix) {
  EXPECT_EQ(prefix_end("/pasture/pools/api/"), "/pasture/pools/api0");
  EXPECT_EQ(prefix_end(std::string("a\xff")), "b");
  EXPECT_EQ(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
}

// The watch's answer as etcd 3.4 sends it, fed one byte at a time: the
// chunks' data comes out whole and in order.
TEST(EtcdClient, ResponseReaderDecodesChunksFedByteByByte) {
  std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
      "8\r\n{\"a\":1}\n\r\n"
      "9\r\n{\"b\":22}\n\r\n";
  ResponseReader r;
  std::string body;
  for (char c : wire) ASSERT_TRUE(r.feed(std::string_view(&c, 1), &body)) << r.error();
  EXPECT_TRUE(r.head_done());
  EXPECT_EQ(r.status(), 200);
  EXPECT_FALSE(r.done());
  EXPECT_EQ(body, "{\"a\":1}\n{\"b\":22}\n");
  ASSERT_TRUE(r.feed("0\r\n\r\n", &body));
  EXPECT_TRUE(r.done());

  ResponseReader len;
  body.clear();
  ASSERT_TRUE(len.feed("HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhello extra", &body));
  EXPECT_EQ(len.status(), 404);
  EXPECT_TRUE(len.done());
  EXPECT_EQ(body, "hello");

  ResponseReader bad;
  EXPECT_FALSE(bad.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &body));
}

TEST(EtcdWatch, MemberValuesAreOneServersEntry) {
  conf::UpstreamServer src;
  src.weight = 3;
  src.backup = false;
  lb::Member m;
  std::string err;
  ASSERT_TRUE(member_from_value("10.0.0.5:8000 weight=2 backup", src, 1, &m, &err)) << err;
  EXPECT_EQ(m.id(), "10.0.0.5:8000");
  EXPECT_EQ(m.weight, 2u);
  EXPECT_TRUE(m.backup);
  EXPECT_EQ(m.source, 1);
  lb::Member d;
  ASSERT_TRUE(member_from_value("[::1]:81", src, 0, &d, &err)) << err;
  EXPECT_EQ(d.id(), "[::1]:81");
  EXPECT_EQ(d.weight, 3u) << "no weight in the value: the source's";
  struct Bad {
    const char* value;
    const char* err;
  } bad[] = {{"app.internal:80", "expected an IP address"},
             {"10.0.0.5", "missing port"},
             {"10.0.0.5:80 10.0.0.6:80", "one server per key"},
             {"10.0.0.5:80 max_conns=3", "only weight and backup"},
             {"10.0.0.5:80 down", "marked down"},
             {"https://10.0.0.5:443", "plain http"},
             {"dns:a.b:80", "plain http"},
             {"10.0.0.5:80 weight=0", "at least 1"},
             {"", "empty server list"}};
  for (const Bad& b : bad) {
    lb::Member x;
    err.clear();
    EXPECT_FALSE(member_from_value(b.value, src, 0, &x, &err)) << b.value;
    EXPECT_NE(err.find(b.err), std::string::npos) << b.value << ": " << err;
  }
}

TEST(EtcdWatch, AdminValues) {
  AdminValue a;
  std::string err;
  ASSERT_TRUE(parse_admin_value("drain", &a, &err));
  EXPECT_EQ(a.state, shm::AdminState::Drain);
  EXPECT_EQ(a.weight, 0u);
  ASSERT_TRUE(parse_admin_value(" maint weight=7 ", &a, &err));
  EXPECT_EQ(a.state, shm::AdminState::Maint);
  EXPECT_EQ(a.weight, 7u);
  EXPECT_EQ(admin_value_text(a), "maint weight=7");
  ASSERT_TRUE(parse_admin_value("ready", &a, &err));
  EXPECT_EQ(admin_value_text(a), "ready");
  for (const char* v : {"", "up", "drain weight=0", "drain weight=70000", "drain weight=x", "drain weight=2 x"})
    EXPECT_FALSE(parse_admin_value(v, &a, &err)) << v;
}

// Admin keys name servers as lb::Member::id() writes them (review 22 #11).
TEST(EtcdWatch, CanonicalServers) {
  std::string id;
  struct {
    const char* in;
    const char* out;
  } good[] = {{"10.0.0.5:8000", "10.0.0.5:8000"},
              {"10.0.0.5:08000", "10.0.0.5:8000"},
              {"[2001:db8::0005]:80", "[2001:db8::5]:80"},
              {"[::FFFF:10.0.0.1]:1", "[::ffff:10.0.0.1]:1"},
              {"[::1]:65535", "[::1]:65535"}};
  for (const auto& g : good) {
    ASSERT_TRUE(canonical_server(g.in, &id)) << g.in;
    EXPECT_EQ(id, g.out);
  }
  for (const char* bad : {"", "localhost:80", "10.0.0.5", "10.0.0.5:", "10.0.0.5:0", "10.0.0.5:65536", "10.0.0.5:8x",
                          "10.0.0.5:-1", "10.0.0.5:800000", "::1:80", "[::1]", "[::1]80", "[10.0.0.5]:80",
                          "10.0.0.5:80/x", " 10.0.0.5:80", "[fe80::1%eth0]:80", "010.0.0.5:80"})
    EXPECT_FALSE(canonical_server(bad, &id)) << bad;
}

}  // namespace
}  // namespace pasture::master::etcd
