// worker/upstream_tls_context + the client side of worker/tls_session: an
// upstream connection's TLS engine against pasture's own server engine, in
// memory (no sockets): verification, names, SNI, ALPN, session reuse.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <memory>

#include "common/ticket_keys.h"
#include "conf_test_util.h"
#include "tests/support/tls_certs.h"
#include "worker/tls_context.h"
#include "worker/tls_session.h"
#include "worker/upstream_tls_context.h"

namespace pasture::worker {
namespace {

using test::TestCa;
using test::TestCert;

struct Sink : TlsSession::Sink {
  std::string plain, out;
  void on_plaintext(const char* d, size_t n) override { plain.append(d, n); }
  void on_ciphertext(const char* d, size_t n) override { out.append(d, n); }
};

// One connection: the client engine (as UpstreamConn drives it) and the
// server engine (as ClientConn does), bytes moved between them by hand.
struct Pair {
  Sink cs, ss;
  std::unique_ptr<TlsSession> client, server;
  Pair(const UpstreamTlsContext& up, const std::string& host, SSL_SESSION** cache, const TlsContext& srv) {
    client = std::make_unique<TlsSession>(up.new_ssl(host, cache), cs);
    server = std::make_unique<TlsSession>(srv, ss);
  }
  // Moves bytes both ways until neither side has more; false if one failed.
  bool pump() {
    for (int i = 0; i < 20 && (!cs.out.empty() || !ss.out.empty()); i++) {
      std::string a;
      a.swap(cs.out);
      if (!a.empty() && server->feed(a.data(), a.size()) == TlsSession::Result::Failed) return false;
      std::string b;
      b.swap(ss.out);
      if (!b.empty() && client->feed(b.data(), b.size()) == TlsSession::Result::Failed) return false;
    }
    return true;
  }
  bool handshake() {
    if (client->start() != TlsSession::Result::Ok) return false;
    return pump() && client->open() && server->open();
  }
};

class UpstreamTlsTest : public ::testing::Test {
 protected:
  UpstreamTlsTest() {
    ca_file_ = dir_.write("ca.pem", ca_.cert_pem());
  }
  std::unique_ptr<TlsContext> server(const TestCert& c, TlsContext::Options o = {}) {
    conf::TlsSettings s;
    conf::TlsCertificate f;
    f.cert_file = dir_.write("srv.crt", c.cert_pem);
    f.key_file = dir_.write("srv.key", c.key_pem);
    s.certs = {f};
    std::string err;
    auto ctx = TlsContext::build(s, o, &err);
    EXPECT_TRUE(ctx) << err;
    return ctx;
  }
  std::unique_ptr<UpstreamTlsContext> upstream(conf::UpstreamTls t) {
    std::string err;
    auto ctx = UpstreamTlsContext::build(t, &err);
    EXPECT_TRUE(ctx) << err;
    return ctx;
  }
  conf::UpstreamTls verified() {
    conf::UpstreamTls t;
    t.ca_certs = ca_file_;
    return t;
  }

  conf::testing::TempDir dir_;
  TestCa ca_;
  std::string ca_file_;
};

TEST_F(UpstreamTlsTest, VerifiedHandshakeWithSniAndAlpnThenDataBothWays) {
  auto srv = server(ca_.server({"api.example"}));
  auto up = upstream(verified());
  Pair p(*up, "api.example", nullptr, *srv);
  ASSERT_TRUE(p.handshake()) << p.client->error() << " / " << p.server->error();
  EXPECT_EQ(p.server->server_name(), "api.example");
  EXPECT_EQ(p.server->alpn(), "http/1.1");
  EXPECT_EQ(p.client->alpn(), "http/1.1");
  ASSERT_EQ(p.client->write("GET / HTTP/1.1\r\n\r\n", 18), TlsSession::Result::Ok);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.ss.plain, "GET / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.server->write("HTTP/1.1 200 OK\r\n\r\n", 19), TlsSession::Result::Ok);
  ASSERT_TRUE(p.pump());
  EXPECT_EQ(p.cs.plain, "HTTP/1.1 200 OK\r\n\r\n");
  // The server's close_notify is the client's end of the stream.
  p.server->close();
  std::string b;
  b.swap(p.ss.out);
  EXPECT_EQ(p.client->feed(b.data(), b.size()), TlsSession::Result::Closed);
}

TEST_F(UpstreamTlsTest, NamesAreVerified) {
  auto srv = server(ca_.server({"api.example", "*.pool.example"}));
  auto up = upstream(verified());
  {
    Pair p(*up, "other.example", nullptr, *srv);
    EXPECT_FALSE(p.handshake());
    EXPECT_EQ(p.client->error(), "certificate verify failed: hostname mismatch");
  }
  {
    Pair p(*up, "a.pool.example", nullptr, *srv);  // a wildcard covers one label
    EXPECT_TRUE(p.handshake()) << p.client->error();
  }
  {
    Pair p(*up, "a.b.pool.example", nullptr, *srv);
    EXPECT_FALSE(p.handshake());
  }
  {
    // An IP literal: no SNI, verified as an address the certificate lacks.
    Pair p(*up, "127.0.0.1", nullptr, *srv);
    EXPECT_FALSE(p.handshake());
    EXPECT_EQ(p.client->error(), "certificate verify failed: IP address mismatch");
    EXPECT_EQ(p.server->server_name(), "");
  }
  {
    auto by_ip = server(ca_.server({"IP:127.0.0.1"}));
    Pair p(*up, "127.0.0.1", nullptr, *by_ip);
    EXPECT_TRUE(p.handshake()) << p.client->error();
    EXPECT_EQ(p.server->server_name(), "");
  }
  {
    // tls_server_name replaces the host: sent and verified.
    conf::UpstreamTls t = verified();
    t.server_name = "api.example";
    auto named = upstream(t);
    Pair p(*named, "10.0.0.1", nullptr, *srv);
    EXPECT_TRUE(p.handshake()) << p.client->error();
    EXPECT_EQ(p.server->server_name(), "api.example");
  }
}

TEST_F(UpstreamTlsTest, ChainMustVerifyUnlessVerifyIsOff) {
  TestCa other("another CA");
  auto srv = server(other.server({"api.example"}));
  {
    auto up = upstream(verified());
    Pair p(*up, "api.example", nullptr, *srv);
    EXPECT_FALSE(p.handshake());
    EXPECT_EQ(p.client->error(), "certificate verify failed: unable to get local issuer certificate");
  }
  {
    conf::UpstreamTls off;
    off.verify = false;
    auto up = upstream(off);
    EXPECT_FALSE(up->verifies());
    Pair p(*up, "whatever.example", nullptr, *srv);
    EXPECT_TRUE(p.handshake()) << p.client->error();
    EXPECT_EQ(p.server->server_name(), "whatever.example");
  }
}

TEST_F(UpstreamTlsTest, TheCachedSessionResumes) {
  shm::TicketKeys keys{};
  ASSERT_TRUE(shm::rotate_ticket_keys(keys, 1000));
  TlsContext::Options o;
  o.tickets = &keys;
  auto srv = server(ca_.server({"api.example"}), o);
  auto up = upstream(verified());
  SSL_SESSION* cache = nullptr;
  {
    Pair p(*up, "api.example", &cache, *srv);
    ASSERT_TRUE(p.handshake()) << p.client->error();
    EXPECT_FALSE(p.client->resumed());
    ASSERT_NE(cache, nullptr);  // TLS 1.3: a ticket with the handshake's last flight
    p.client->close();          // a connection closed cleanly keeps its session good
  }
  {
    Pair p(*up, "api.example", &cache, *srv);
    ASSERT_TRUE(p.handshake()) << p.client->error();
    EXPECT_TRUE(p.client->resumed());
    EXPECT_TRUE(p.server->resumed());
    p.client->close();
  }
  UpstreamTlsContext::forget(&cache);
  EXPECT_EQ(cache, nullptr);
  Pair p(*up, "api.example", &cache, *srv);
  ASSERT_TRUE(p.handshake());
  EXPECT_FALSE(p.client->resumed());
  UpstreamTlsContext::forget(&cache);
}

TEST_F(UpstreamTlsTest, BuildNamesTheFileThatFails) {
  conf::UpstreamTls t;
  t.ca_certs = dir_.path() + "/gone.pem";
  std::string err;
  EXPECT_EQ(UpstreamTlsContext::build(t, &err), nullptr);
  EXPECT_EQ(err.rfind("tls_ca_certs " + t.ca_certs + ": ", 0), 0u) << err;
  EXPECT_TRUE(is_ip_literal("::1"));
  EXPECT_TRUE(is_ip_literal("10.1.2.3"));
  EXPECT_FALSE(is_ip_literal("10.example"));
}

}  // namespace
}  // namespace pasture::worker
