// worker/tls_session + tls_context: handshakes in memory between the engine
// and an OpenSSL client (an SSL with its own memory BIOs), no sockets.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <memory>
#include <set>

#include "common/ticket_keys.h"
#include "conf_test_util.h"
#include "tests/support/tls_certs.h"
#include "worker/tls_context.h"
#include "worker/tls_session.h"

// The client options are written as designated initializers naming only
// what a case changes; the rest keeps its default on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace pasture::worker {
namespace {

using test::TestCa;
using test::TestCert;

// The server side's sink: what the engine handed out.
struct Sink : TlsSession::Sink {
  std::string plain, out;
  size_t out_calls = 0;
  void on_plaintext(const char* d, size_t n) override { plain.append(d, n); }
  void on_ciphertext(const char* d, size_t n) override {
    out.append(d, n);
    out_calls++;
  }
};

struct ClientOptions {
  int min_version = TLS1_2_VERSION;
  int max_version = 0;
  std::string ciphers;      // TLS 1.2 list; "" = OpenSSL's default
  std::string alpn;         // wire format, "" = no ALPN
  std::string sni;
  const TestCert* cert = nullptr;
  SSL_SESSION* session = nullptr;
  bool ocsp = false;
};

// An OpenSSL client over two memory BIOs.
class Client {
 public:
  explicit Client(const ClientOptions& o) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx_, o.min_version);
    SSL_CTX_set_max_proto_version(ctx_, o.max_version);
    if (o.min_version < TLS1_2_VERSION) SSL_CTX_set_security_level(ctx_, 0);  // let it try TLS 1.1
    if (!o.ciphers.empty()) {
      EXPECT_EQ(SSL_CTX_set_cipher_list(ctx_, o.ciphers.c_str()), 1);
    }
    if (o.cert) {
      BIO* b = BIO_new_mem_buf(o.cert->cert_pem.data(), (int)o.cert->cert_pem.size());
      X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
      BIO_free(b);
      b = BIO_new_mem_buf(o.cert->key_pem.data(), (int)o.cert->key_pem.size());
      EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
      BIO_free(b);
      EXPECT_EQ(SSL_CTX_use_certificate(ctx_, x), 1);
      EXPECT_EQ(SSL_CTX_use_PrivateKey(ctx_, k), 1);
      X509_free(x);
      EVP_PKEY_free(k);
    }
    ssl_ = SSL_new(ctx_);
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rbio_, -1);
    SSL_set_bio(ssl_, rbio_, wbio_);
    SSL_set_connect_state(ssl_);
    if (!o.alpn.empty()) SSL_set_alpn_protos(ssl_, (const unsigned char*)o.alpn.data(), (unsigned)o.alpn.size());
    if (!o.sni.empty()) SSL_set_tlsext_host_name(ssl_, o.sni.c_str());
    if (o.session) SSL_set_session(ssl_, o.session);
    if (o.ocsp) SSL_set_tlsext_status_type(ssl_, TLSEXT_STATUSTYPE_ocsp);
  }
  ~Client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  SSL* ssl() { return ssl_; }
  // What the client wrote, taken out of its BIO.
  std::string take() {
    char* p = nullptr;
    long n = BIO_get_mem_data(wbio_, &p);
    std::string out(p, (size_t)std::max(0L, n));
    (void)BIO_reset(wbio_);
    return out;
  }
  void give(const std::string& bytes) {
    if (!bytes.empty()) BIO_write(rbio_, bytes.data(), (int)bytes.size());
  }
  // Reads what it can (also processing tickets and close_notify).
  std::string read_all(bool* closed = nullptr) {
    std::string out;
    char buf[16384];
    size_t n;
    while (SSL_read_ex(ssl_, buf, sizeof buf, &n) == 1) out.append(buf, n);
    if (closed) *closed = SSL_get_error(ssl_, 0) == SSL_ERROR_ZERO_RETURN;
    ERR_clear_error();
    return out;
  }
  void write(const std::string& s) {
    size_t done = 0;
    ASSERT_EQ(SSL_write_ex(ssl_, s.data(), s.size(), &done), 1);
    ASSERT_EQ(done, s.size());
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;
  BIO* wbio_ = nullptr;
};

// Certificates and a CA on disk, as the conf model names them.
class TlsSessionTest : public ::testing::Test {
 protected:
  TlsSessionTest() {
    a_ = ca_.server({"a.example", "www.a.example"});
    b_ = ca_.server({"b.example"});
    wild_ = ca_.server({"*.c.example"});
  }
  conf::TlsCertificate cert_files(const TestCert& c, const std::string& name) {
    conf::TlsCertificate out;
    out.cert_file = dir_.write(name + ".crt", c.cert_pem);
    out.key_file = dir_.write(name + ".key", c.key_pem);
    return out;
  }
  std::unique_ptr<TlsContext> context(const conf::TlsSettings& s, TlsContext::Options o = {}) {
    std::string err;
    auto ctx = TlsContext::build(s, o, &err);
    EXPECT_TRUE(ctx) << err;
    return ctx;
  }
  conf::TlsSettings settings() {
    conf::TlsSettings s;
    s.certs = {cert_files(a_, "a"), cert_files(b_, "b"), cert_files(wild_, "c")};
    return s;
  }
  // Runs the handshake to its end (or failure): true once both sides are done.
  static bool handshake(Client& c, TlsSession& s, Sink& sink) {
    for (int round = 0; round < 10; round++) {
      int rc = SSL_do_handshake(c.ssl());
      std::string to_server = c.take();
      if (!to_server.empty() && s.feed(to_server.data(), to_server.size()) == TlsSession::Result::Failed) {
        c.give(sink.out);
        sink.out.clear();
        SSL_do_handshake(c.ssl());
        return false;
      }
      c.give(sink.out);
      sink.out.clear();
      if (rc == 1 && s.open() && to_server.empty()) return true;
    }
    return false;
  }
  // Moves the client's bytes to the server and the server's to the client.
  static void pump(Client& c, TlsSession& s, Sink& sink) {
    std::string b = c.take();
    if (!b.empty()) s.feed(b.data(), b.size());
    c.give(sink.out);
    sink.out.clear();
  }
  std::string peer_cn(Client& c) {
    X509* x = SSL_get0_peer_certificate(c.ssl());
    if (!x) return "";
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    return cn;
  }

  conf::testing::TempDir dir_;
  TestCa ca_;
  TestCert a_, b_, wild_;
};

TEST_F(TlsSessionTest, Tls13HandshakeThenDataBothWays) {
  auto ctx = context(settings());
  Sink sink;
  TlsSession s(*ctx, sink);
  EXPECT_EQ(s.state(), TlsSession::State::Handshake);
  Client c({});
  ASSERT_TRUE(handshake(c, s, sink)) << s.error();
  EXPECT_EQ(s.version(), "TLSv1.3");
  EXPECT_EQ(s.alpn(), "");  // the client offered none
  EXPECT_FALSE(s.resumed());
  c.write("GET / HTTP/1.1\r\n\r\n");
  pump(c, s, sink);
  EXPECT_EQ(sink.plain, "GET / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(s.write("HTTP/1.1 200 OK\r\n\r\n", 19), TlsSession::Result::Ok);
  c.give(sink.out);
  sink.out.clear();
  EXPECT_EQ(c.read_all(), "HTTP/1.1 200 OK\r\n\r\n");
}

TEST_F(TlsSessionTest, Tls12WithAnEcdheSuiteInTheServersOrder) {
  auto ctx = context(settings());
  Sink sink;
  TlsSession s(*ctx, sink);
  // The client prefers CHACHA20; the server's order puts AES128-GCM first.
  Client c({.max_version = TLS1_2_VERSION,
            .ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256"});
  ASSERT_TRUE(handshake(c, s, sink)) << s.error();
  EXPECT_EQ(s.version(), "TLSv1.2");
  EXPECT_EQ(s.cipher(), "ECDHE-ECDSA-AES128-GCM-SHA256");
  c.write("ping");
  pump(c, s, sink);
  EXPECT_EQ(sink.plain, "ping");
}

TEST_F(TlsSessionTest, Tls11AndSuitesWithoutForwardSecrecyAreRefused) {
  auto ctx = context(settings());
  {
    Sink sink;
    TlsSession s(*ctx, sink);
    Client c({.min_version = TLS1_1_VERSION, .max_version = TLS1_1_VERSION, .ciphers = "ALL:@SECLEVEL=0"});
    EXPECT_FALSE(handshake(c, s, sink));
    EXPECT_EQ(s.state(), TlsSession::State::Failed);
    EXPECT_EQ(s.error(), "unsupported protocol");
    EXPECT_EQ(s.feed("x", 1), TlsSession::Result::Failed);
  }
  {
    Sink sink;
    TlsSession s(*ctx, sink);
    Client c({.max_version = TLS1_2_VERSION, .ciphers = "AES128-GCM-SHA256:AES256-SHA"});  // RSA key exchange
    EXPECT_FALSE(handshake(c, s, sink));
    EXPECT_EQ(s.error(), "no shared cipher");
  }
}

TEST_F(TlsSessionTest, AlpnPicksH2OnlyWhenTheListenerServesIt) {
  const std::string both("\x02h2\x08http/1.1", 12), h2_only("\x02h2", 3);
  auto h1 = context(settings());
  auto h2 = context(settings(), {.http2 = true});
  struct Case {
    TlsContext* ctx;
    std::string offer;
    bool ok;
    std::string alpn;
  } cases[] = {{h1.get(), both, true, "http/1.1"}, {h2.get(), both, true, "h2"},
               {h2.get(), std::string("\x08http/1.1", 9), true, "http/1.1"}, {h1.get(), h2_only, false, ""}};
  for (const Case& k : cases) {
    Sink sink;
    TlsSession s(*k.ctx, sink);
    Client c({.alpn = k.offer});
    EXPECT_EQ(handshake(c, s, sink), k.ok) << k.alpn;
    EXPECT_EQ(s.alpn(), k.alpn);
    if (!k.ok) {
      EXPECT_EQ(s.error(), "no application protocol");
    }
  }
}

TEST_F(TlsSessionTest, SniPicksTheCertificateThatHoldsTheName) {
  auto ctx = context(settings());
  struct Case {
    std::string sni, cn;
  } cases[] = {{"b.example", "b.example"}, {"www.a.example", "a.example"}, {"x.c.example", "*.c.example"},
               {"unknown.example", "a.example"}, {"", "a.example"}, {"B.EXAMPLE", "b.example"}};
  for (const Case& k : cases) {
    Sink sink;
    TlsSession s(*ctx, sink);
    Client c({.sni = k.sni});
    ASSERT_TRUE(handshake(c, s, sink)) << k.sni << ": " << s.error();
    EXPECT_EQ(peer_cn(c), k.cn) << k.sni;
    EXPECT_EQ(s.server_name(), k.sni);
  }
}

// Two contexts built separately (two workers) on one shared key block: a
// ticket from one resumes on the other, in TLS 1.3 and 1.2; after two
// rotations its key is gone and the handshake is a full one.
TEST_F(TlsSessionTest, TicketsResumeAcrossWorkersAndRotate) {
  shm::TicketKeys block{};
  ASSERT_TRUE(shm::rotate_ticket_keys(block, 0));
  auto worker1 = context(settings(), {.tickets = &block});
  auto worker2 = context(settings(), {.tickets = &block});
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2");
    auto first = [&]() -> SSL_SESSION* {
      Sink sink;
      TlsSession s(*worker1, sink);
      Client c({.max_version = version, .sni = "b.example"});
      EXPECT_TRUE(handshake(c, s, sink)) << s.error();
      c.read_all();  // TLS 1.3 tickets come after the handshake
      EXPECT_TRUE(SSL_get0_session(c.ssl()) && SSL_SESSION_is_resumable(SSL_get0_session(c.ssl())));
      // A client SSL freed without close_notify spoils its session (OpenSSL
      // marks it not resumable), as for a connection that broke.
      SSL_shutdown(c.ssl());
      return SSL_get1_session(c.ssl());
    };
    auto again = [&](SSL_SESSION* sess, TlsContext& on) {
      Sink sink;
      TlsSession s(on, sink);
      Client c({.max_version = version, .sni = "b.example", .session = sess});
      EXPECT_TRUE(handshake(c, s, sink)) << s.error();
      EXPECT_EQ(SSL_session_reused(c.ssl()) == 1, s.resumed());
      SSL_shutdown(c.ssl());  // keeps `sess` resumable (see first())
      return s.resumed();
    };
    SSL_SESSION* sess = first();
    EXPECT_TRUE(again(sess, *worker2));
    ASSERT_TRUE(shm::rotate_ticket_keys(block, 0));  // the ticket's key is now the previous one
    EXPECT_TRUE(again(sess, *worker1));
    ASSERT_TRUE(shm::rotate_ticket_keys(block, 0));  // and now dropped
    EXPECT_FALSE(again(sess, *worker2));
    SSL_SESSION_free(sess);
  }
  // Without shared keys (and no session cache) nothing resumes.
  auto no_tickets = context(settings());
  SSL_SESSION* sess = nullptr;
  {
    Sink sink;
    TlsSession s(*no_tickets, sink);
    Client c({});
    ASSERT_TRUE(handshake(c, s, sink));
    c.read_all();
    SSL_shutdown(c.ssl());
    sess = SSL_get1_session(c.ssl());
  }
  Sink sink;
  TlsSession s(*no_tickets, sink);
  Client c({.session = sess});
  ASSERT_TRUE(handshake(c, s, sink));
  EXPECT_FALSE(s.resumed());
  EXPECT_FALSE(SSL_session_reused(c.ssl()));
  SSL_SESSION_free(sess);
}

TEST_F(TlsSessionTest, ClientCertificatesAreVerified) {
  conf::TlsSettings st = settings();
  st.ca_certs = dir_.write("ca.pem", ca_.cert_pem());
  st.client_certs = conf::ClientCerts::Required;
  auto required = context(st);
  st.client_certs = conf::ClientCerts::Optional;
  auto optional = context(st);
  TestCert alice = ca_.client("alice", "Example, Inc.");
  TestCa other("another CA");
  TestCert mallory = other.client("mallory");
  struct Case {
    TlsContext* ctx;
    const TestCert* cert;
    bool ok;
    std::string subject, error;
  } cases[] = {
      {required.get(), &alice, true, "CN=alice,O=Example\\, Inc.", ""},
      {required.get(), nullptr, false, "", "peer did not return a certificate"},
      {required.get(), &mallory, false, "", "certificate verify failed: unable to get local issuer certificate"},
      {optional.get(), nullptr, true, "", ""},
      {optional.get(), &alice, true, "CN=alice,O=Example\\, Inc.", ""},
      {optional.get(), &mallory, false, "", "certificate verify failed: unable to get local issuer certificate"},
  };
  for (const Case& k : cases) {
    Sink sink;
    TlsSession s(*k.ctx, sink);
    Client c({.max_version = TLS1_3_VERSION, .cert = k.cert});
    bool ok = handshake(c, s, sink);
    if (ok) {  // TLS 1.3: the server judges the client's certificate after the client thinks it is done
      c.write("x");
      pump(c, s, sink);
      ok = s.open();
    }
    EXPECT_EQ(ok, k.ok) << k.subject << k.error;
    EXPECT_EQ(s.peer_subject(), k.subject);
    EXPECT_EQ(s.error(), k.error);
  }
}

// A ticket resumes only under the session-id context it was made in: a
// digest of the certificates and of client verification (what a reload may
// change). Contexts built twice from the same files (a reload that changes
// none of it) agree, and the session resumes there with its client subject;
// client certificates turned on, the CA replaced or a certificate renewed
// make another context, where the session does not resume (a full
// handshake, which then wants the certificate). The tickets' keys are shared
// throughout, as a reload carries them.
TEST_F(TlsSessionTest, TicketsResumeOnlyUnderTheSameCertificatesAndClientVerification) {
  shm::TicketKeys block{};
  ASSERT_TRUE(shm::rotate_ticket_keys(block, 0));
  TlsContext::Options o{.tickets = &block};
  conf::TlsSettings none = settings(), required = settings();
  required.ca_certs = dir_.write("ca.pem", ca_.cert_pem());
  required.client_certs = conf::ClientCerts::Required;
  conf::TlsSettings optional = required, same_ca = required, other_ca = required, renewed = none;
  optional.client_certs = conf::ClientCerts::Optional;
  same_ca.ca_certs = dir_.write("ca-copy.pem", ca_.cert_pem());
  TestCa other("another CA");
  other_ca.ca_certs = dir_.write("other-ca.pem", other.cert_pem());
  renewed.certs[0] = cert_files(ca_.server({"a.example", "www.a.example"}), "a-renewed");
  auto none1 = context(none, o), none2 = context(none, o), renewed_ctx = context(renewed, o);
  auto req1 = context(required, o), req2 = context(same_ca, o), opt = context(optional, o);
  auto other_req = context(other_ca, o);
  EXPECT_EQ(none1->session_context().size(), 32u);
  EXPECT_EQ(none1->session_context(), none2->session_context());
  EXPECT_EQ(req1->session_context(), req2->session_context());  // the CA's content counts, not its file name
  std::set<std::string> distinct = {none1->session_context(), renewed_ctx->session_context(),
                                    req1->session_context(), opt->session_context(), other_req->session_context()};
  EXPECT_EQ(distinct.size(), 5u);
  TestCert alice = ca_.client("alice");
  struct Outcome {
    bool ok = false, resumed = false;
    std::string subject;
  };
  // One connection; TLS 1.3: the server has judged the client's
  // certificate once it read data after the handshake.
  auto connect = [&](TlsContext& ctx, int version, const TestCert* cert, SSL_SESSION* sess,
                     SSL_SESSION** keep = nullptr) {
    Sink sink;
    TlsSession s(ctx, sink);
    Client c({.max_version = version, .cert = cert, .session = sess});
    Outcome r;
    r.ok = handshake(c, s, sink);
    if (r.ok) {
      c.write("x");
      pump(c, s, sink);
      c.read_all();  // TLS 1.3 tickets come after the handshake
      r.ok = s.open();
    }
    r.resumed = s.resumed();
    r.subject = s.peer_subject();
    SSL_shutdown(c.ssl());  // keeps the session resumable
    if (keep) *keep = SSL_get1_session(c.ssl());
    return r;
  };
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2");
    SSL_SESSION* anon = nullptr;
    ASSERT_TRUE(connect(*none1, version, nullptr, nullptr, &anon).ok);
    Outcome r = connect(*none2, version, nullptr, anon);
    EXPECT_TRUE(r.ok && r.resumed);
    r = connect(*renewed_ctx, version, nullptr, anon);
    EXPECT_TRUE(r.ok && !r.resumed);
    // Client certificates turned on: the full handshake asks for one.
    r = connect(*req1, version, nullptr, anon);
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.resumed);
    // Optional ones: the ticket callback would let a session without a
    // certificate through; OpenSSL's session-id context check alone keeps it out.
    r = connect(*opt, version, nullptr, anon);
    EXPECT_TRUE(r.ok);
    EXPECT_FALSE(r.resumed);
    SSL_SESSION* authed = nullptr;
    r = connect(*req1, version, &alice, nullptr, &authed);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.subject, "CN=alice,O=pasture tests");
    r = connect(*req2, version, nullptr, authed);
    EXPECT_TRUE(r.ok && r.resumed);
    EXPECT_EQ(r.subject, "CN=alice,O=pasture tests");
    // The CA replaced (alice's revoked): no resumption, no subject, and
    // without a certificate no connection.
    r = connect(*other_req, version, nullptr, authed);
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.resumed);
    EXPECT_EQ(r.subject, "");
    r = connect(*other_req, version, &alice, authed);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.subject, "");
    SSL_SESSION_free(anon);
    SSL_SESSION_free(authed);
  }
}

TEST_F(TlsSessionTest, LargeWritesGoOutInRecordsAndPartialRecordsWait) {
  auto ctx = context(settings());
  Sink sink;
  TlsSession s(*ctx, sink);
  Client c({});
  ASSERT_TRUE(handshake(c, s, sink));
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 997) big[i] = (char)('a' + i % 26);
  sink.out_calls = 0;
  ASSERT_EQ(s.write(big.data(), big.size()), TlsSession::Result::Ok);
  EXPECT_EQ(sink.out_calls, 64u);  // one flush per 16 KiB record
  c.give(sink.out);
  sink.out.clear();
  EXPECT_EQ(c.read_all(), big);

  // The client's 1 MiB arrives in one piece; then a record byte by byte.
  c.write(big);
  std::string wire = c.take();
  ASSERT_EQ(s.feed(wire.data(), wire.size()), TlsSession::Result::Ok);
  EXPECT_EQ(sink.plain, big);
  sink.plain.clear();
  c.write("hello");
  wire = c.take();
  for (size_t i = 0; i + 1 < wire.size(); i++) {
    ASSERT_EQ(s.feed(&wire[i], 1), TlsSession::Result::Ok);
    ASSERT_EQ(sink.plain, "") << i;
  }
  ASSERT_EQ(s.feed(&wire.back(), 1), TlsSession::Result::Ok);
  EXPECT_EQ(sink.plain, "hello");
}

TEST_F(TlsSessionTest, HandshakeFedByteByByte) {
  auto ctx = context(settings());
  Sink sink;
  TlsSession s(*ctx, sink);
  Client c({.sni = "b.example"});
  for (int round = 0; round < 10 && !s.open(); round++) {
    SSL_do_handshake(c.ssl());
    std::string b = c.take();
    for (char ch : b) ASSERT_EQ(s.feed(&ch, 1), TlsSession::Result::Ok) << s.error();
    c.give(sink.out);
    sink.out.clear();
  }
  EXPECT_TRUE(s.open());
  EXPECT_EQ(peer_cn(c), "b.example");
}

TEST_F(TlsSessionTest, CloseNotifyBothWays) {
  auto ctx = context(settings());
  Sink sink;
  TlsSession s(*ctx, sink);
  Client c({});
  ASSERT_TRUE(handshake(c, s, sink));
  c.write("last");
  SSL_shutdown(c.ssl());
  std::string b = c.take();
  EXPECT_EQ(s.feed(b.data(), b.size()), TlsSession::Result::Closed);
  EXPECT_EQ(sink.plain, "last");
  EXPECT_EQ(s.state(), TlsSession::State::Closed);
  // Half-closed: the answer still goes out, then close_notify.
  ASSERT_EQ(s.write("bye", 3), TlsSession::Result::Ok);
  s.close();
  s.close();  // once
  c.give(sink.out);
  bool closed = false;
  EXPECT_EQ(c.read_all(&closed), "bye");
  EXPECT_TRUE(closed);
  EXPECT_EQ(s.write("more", 4), TlsSession::Result::Failed);
}

TEST_F(TlsSessionTest, WriteBeforeTheHandshakeIsRefused) {
  auto ctx = context(settings());
  Sink sink;
  TlsSession s(*ctx, sink);
  EXPECT_EQ(s.write("x", 1), TlsSession::Result::Failed);
  EXPECT_EQ(s.error(), "write before the TLS handshake finished");
  EXPECT_TRUE(sink.out.empty());
  // Garbage instead of a ClientHello: a clear reason, not a crash.
  Sink sink2;
  TlsSession s2(*ctx, sink2);
  EXPECT_EQ(s2.feed("GET / HTTP/1.1\r\n\r\n", 18), TlsSession::Result::Failed);
  EXPECT_EQ(s2.error(), "http request");
}

TEST_F(TlsSessionTest, OcspStapleFromAFilePerCertificate) {
  conf::TlsSettings st = settings();
  std::string der = ca_.ocsp_der();
  ASSERT_FALSE(der.empty());
  st.certs[1].ocsp_file = dir_.write("b.ocsp", der);
  auto ctx = context(st);
  for (const char* sni : {"b.example", "a.example"}) {
    Sink sink;
    TlsSession s(*ctx, sink);
    Client c({.sni = sni, .ocsp = true});
    ASSERT_TRUE(handshake(c, s, sink));
    const unsigned char* p = nullptr;
    long n = SSL_get_tlsext_status_ocsp_resp(c.ssl(), &p);
    EXPECT_EQ(n > 0 ? std::string((const char*)p, (size_t)n) : "", std::string(sni) == "b.example" ? der : "") << sni;
  }
}

TEST_F(TlsSessionTest, SelfSignedDevelopmentCertificate) {
  conf::TlsSettings st;
  st.self_signed = true;
  auto ctx = context(st);
  Sink sink;
  TlsSession s(*ctx, sink);
  Client c({.sni = "localhost"});
  ASSERT_TRUE(handshake(c, s, sink)) << s.error();
  EXPECT_EQ(peer_cn(c), "localhost");
  EXPECT_EQ(X509_check_ip_asc(SSL_get0_peer_certificate(c.ssl()), "127.0.0.1", 0), 1);
}

TEST_F(TlsSessionTest, BuildErrorsNameTheFile) {
  conf::TlsSettings st = settings();
  std::swap(st.certs[0].key_file, st.certs[1].key_file);
  std::string err;
  EXPECT_FALSE(TlsContext::build(st, {}, &err));
  EXPECT_EQ(err, st.certs[0].key_file + ": the key does not match the certificate in " + st.certs[0].cert_file);
  st = settings();
  st.certs[0].cert_file = dir_.path() + "/missing.pem";
  EXPECT_FALSE(TlsContext::build(st, {}, &err));
  EXPECT_EQ(err.rfind(dir_.path() + "/missing.pem: ", 0), 0u) << err;
}

}  // namespace
}  // namespace pasture::worker
