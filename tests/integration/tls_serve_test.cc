// TLS served for real (issue 15): the real binary on real sockets, spoken
// to by curl, openssl s_client and the test's own OpenSSL client
// (tests/support/tls_client.h), in the three config forms (Paste ssl_pem,
// gunicorn certfile/keyfile, pasture's `listen ... tls` with certificates
// by SNI).
#include <fcntl.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <map>

#include "tests/integration/pasture_server.h"
#include "tests/support/pattern.h"
#include "tests/support/tls_certs.h"
#include "tests/support/tls_client.h"

namespace pasture::test {
namespace {

// A CA, its file, and server certificates written 0600 into one directory.
struct Pki {
  TempDir dir{"pasture-tls"};
  TestCa ca;
  std::string ca_file = dir.write("ca.pem", ca.cert_pem());
  // Writes NAME.crt and NAME.key; returns {crt, key}.
  std::pair<std::string, std::string> server(const std::string& name, const std::vector<std::string>& dns) {
    TestCert c = ca.server(dns);
    std::string crt = dir.write(name + ".crt", c.cert_pem), key = dir.write(name + ".key", c.key_pem);
    chmod(key.c_str(), 0600);
    return {crt, key};
  }
  std::string pem(const std::string& name, const std::vector<std::string>& dns) {
    TestCert c = ca.server(dns);
    std::string p = dir.write(name + ".pem", c.cert_pem + c.key_pem);
    chmod(p.c_str(), 0600);
    return p;
  }
};

// `pasture serve` on a config written into `dir`; up once it says so and
// its port takes connections.
struct Served {
  std::unique_ptr<Process> proc;
  std::string path;
  bool up = false;
  Served(const TempDir& dir, const std::string& ini, uint16_t port, std::vector<std::string> extra = {},
         Process::Env env = {}) {
    path = dir.write("site.ini", ini);
    std::vector<std::string> argv = {PASTURE_BINARY, "serve", path};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = std::make_unique<Process>(argv, env);
    up = wait_for_output(*proc, "serving on", Millis(20000)) && wait_for_port(port);
  }
  std::string output() const { return proc->output(); }
};

// A command's exit code and its output (stdout + stderr).
std::pair<int, std::string> run(const std::string& shell) {
  Process p({"/bin/sh", "-c", shell});
  std::optional<int> st = p.wait_exit(Millis(30000));
  int code = st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
  return {code, p.output()};
}

std::string curl(uint16_t port, const Pki& pki, const std::string& host, const std::string& path,
                 const std::string& more = "") {
  std::string p = std::to_string(port);
  return "curl -sS --max-time 20 --cacert " + pki.ca_file + " --resolve " + host + ":" + p + ":127.0.0.1 " + more +
         " 'https://" + host + ":" + p + path + "'";
}

// One counter of the workers' rows, summed, from the status JSON
// ("tls_handshakes"), or per worker slot.
std::vector<uint64_t> worker_counters(uint16_t port, const Pki& pki, const std::string& name) {
  TlsClientOptions o;
  o.ca_pem = pki.ca.cert_pem();
  std::string err;
  auto c = TlsConn::connect(port, o, &err);
  if (!c) return {};
  c->send("GET /status?format=json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  Response r = c->read_response();
  std::vector<uint64_t> out;
  size_t w = r.body.find("\"workers\"");
  std::string key = "\"" + name + "\":";
  for (size_t p = r.body.find(key, w); w != std::string::npos && p != std::string::npos; p = r.body.find(key, p + 1)) {
    size_t v = r.body.find_first_of("0123456789", p + key.size());
    out.push_back(strtoull(r.body.c_str() + v, nullptr, 10));
  }
  return out;
}

uint64_t sum(const std::vector<uint64_t>& v) {
  uint64_t s = 0;
  for (uint64_t x : v) s += x;
  return s;
}

const std::string kEchoAndStatus =
    "\n[composite:main]\nuse = egg:Paste#urlmap\n/ = echo\n/status = stat\n\n"
    "[app:stat]\nuse = egg:pasture#status\n\n[app:echo]\nuse = egg:pasture#echo\nname = tls\n";

TEST(TlsServe, PasteSslPemServesHttpsAndNeverCleartext) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  uint16_t port = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = " + std::to_string(port) +
               "\nssl_pem = " + pem + "\n" + kEchoAndStatus,
           port);
  ASSERT_TRUE(s.up) << s.output();
  EXPECT_NE(s.output().find("serving on https://127.0.0.1:" + std::to_string(port)), std::string::npos) << s.output();
  auto [code, out] = run(curl(port, pki, "localhost", "/hello"));
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "tls GET /hello\n");
  // Cleartext HTTP on the TLS port gets no HTTP answer.
  Response plain = http_get(port, "/hello", {}, Millis(3000));
  EXPECT_NE(plain.status, 200) << plain.body;
  EXPECT_EQ(plain.body.find("tls GET"), std::string::npos);
}

TEST(TlsServe, GunicornCertfileKeyfile) {
  Pki pki;
  auto [crt, key] = pki.server("server", {"localhost"});
  uint16_t port = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:gunicorn#main\nbind = 127.0.0.1:" + std::to_string(port) + "\ncertfile = " + crt +
               "\nkeyfile = " + key + "\nworkers = 1\n" + kEchoAndStatus,
           port);
  ASSERT_TRUE(s.up) << s.output();
  auto [code, out] = run(curl(port, pki, "localhost", "/g"));
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "tls GET /g\n");
}

// A client's close_notify right behind its request (one TCP write) is a
// half-close: the answer still goes out (found by review: refused once the
// session had read the close_notify).
TEST(TlsServe, CloseNotifyRightAfterTheRequestStillGetsTheAnswer) {
  Pki pki;
  auto [crt, key] = pki.server("server", {"localhost"});
  uint16_t port = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:gunicorn#main\nbind = 127.0.0.1:" + std::to_string(port) + "\ncertfile = " + crt +
               "\nkeyfile = " + key + "\nworkers = 1\n" + kEchoAndStatus,
           port);
  ASSERT_TRUE(s.up) << s.output();
  auto [code, out] = run("/usr/bin/python3 " + std::string(PASTURE_SOURCE_DIR) + "/tests/integration/tls_halfclose.py " +
                         std::to_string(port) + " /half");
  EXPECT_EQ(out, "HTTP/1.1 200 OK\n") << out << s.output();
}

TEST(TlsServe, PastureListenTlsPicksTheCertificateBySni) {
  Pki pki;
  auto [a_crt, a_key] = pki.server("a", {"a.test"});
  auto [b_crt, b_key] = pki.server("b", {"b.test"});
  uint16_t port = free_port(), plain = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) + " tls 127.0.0.1:" +
               std::to_string(plain) + "\ntls_cert = " + a_crt + " " + b_crt + "\ntls_key = " + a_key + " " + b_key +
               "\nworkers = 1\n" + kEchoAndStatus,
           port);
  ASSERT_TRUE(s.up) << s.output();
  for (const char* host : {"a.test", "b.test"}) {
    auto [code, out] = run(curl(port, pki, host, "/sni"));
    EXPECT_EQ(code, 0) << host << ": " << out;
    EXPECT_EQ(out, "tls GET /sni\n") << host;
    TlsClientOptions o;
    o.sni = host;
    o.ca_pem = pki.ca.cert_pem();
    std::string err;
    auto c = TlsConn::connect(port, o, &err);
    ASSERT_TRUE(c) << err;
    EXPECT_NE(c->peer_subject().find(std::string("CN=") + host), std::string::npos) << c->peer_subject();
  }
  // The other listener of the same server stays cleartext.
  EXPECT_EQ(http_get(plain, "/p").body, "tls GET /p\n");
}

TEST(TlsServe, OnlyTls12AndUpAlpnHttp11) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  uint16_t port = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) +
               " tls\ntls_cert = " + pem + "\nworkers = 1\n" + kEchoAndStatus,
           port, {"-v", "-v"});
  ASSERT_TRUE(s.up) << s.output();
  std::string base = "openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -servername localhost ";
  // The client is allowed TLS 1.1 (SECLEVEL 0): the refusal is the server's.
  auto [c11, o11] = run("echo | " + base + "-tls1_1 -cipher DEFAULT@SECLEVEL=0 2>&1");
  EXPECT_NE(c11, 0) << o11;
  EXPECT_NE(o11.find("alert protocol version"), std::string::npos) << o11;
  EXPECT_TRUE(wait_until([&] { return s.output().find("TLS handshake with 127.0.0.1 failed: unsupported protocol") !=
                                      std::string::npos; }))
      << s.output();
  EXPECT_EQ(sum(worker_counters(port, pki, "tls_handshake_errors")), 1u);
  auto [c12, o12] = run("echo | " + base + "-tls1_2 -alpn h2,http/1.1 2>&1");
  EXPECT_EQ(c12, 0) << o12;
  EXPECT_NE(o12.find("Protocol  : TLSv1.2"), std::string::npos) << o12;
  EXPECT_NE(o12.find("ALPN protocol: http/1.1"), std::string::npos) << o12;
  // A client that speaks only h2 on a listener without HTTP/2: no_application_protocol.
  TlsClientOptions o;
  o.alpn = "h2";
  std::string err;
  EXPECT_FALSE(TlsConn::connect(port, o, &err));
  EXPECT_NE(err.find("no application protocol"), std::string::npos) << err;
  o.alpn = "http/1.1";
  auto c = TlsConn::connect(port, o, &err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->alpn(), "http/1.1");
  EXPECT_EQ(c->version(), "TLSv1.3");
}

// `http2 = on`: ALPN h2 on the TLS listener, HTTP/1.1 still for clients
// that ask for it; curl --http2 and h2load speak HTTP/2 over TLS.
TEST(TlsServe, AlpnH2ServesHttp2OverTls) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  uint16_t port = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) +
               " tls\ntls_cert = " + pem + "\nhttp2 = on\nworkers = 2\n" + kEchoAndStatus,
           port);
  ASSERT_TRUE(s.up) << s.output();
  auto [c2, o2] = run(curl(port, pki, "localhost", "/h2", "--http2 -w ' %{http_version}'"));
  EXPECT_EQ(c2, 0) << o2;
  EXPECT_EQ(o2, "tls GET /h2\n 2");
  auto [c1, o1] = run(curl(port, pki, "localhost", "/h1", "--http1.1 -w ' %{http_version}'"));
  EXPECT_EQ(c1, 0) << o1;
  EXPECT_EQ(o1, "tls GET /h1\n 1.1");
  auto [ch, oh] = run("h2load -n 400 -c 4 -m 10 https://127.0.0.1:" + std::to_string(port) + "/load 2>&1");
  EXPECT_EQ(ch, 0) << oh;
  EXPECT_NE(oh.find("400 succeeded, 0 failed"), std::string::npos) << oh;
  EXPECT_NE(oh.find("Application protocol: h2"), std::string::npos) << oh;
  EXPECT_GE(sum(worker_counters(port, pki, "h2_connections")), 5u);
}

TEST(TlsServe, KeepAlivePipeliningAndCloseNotify) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  uint16_t port = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) +
               " tls\ntls_cert = " + pem + "\nworkers = 1\n" + kEchoAndStatus,
           port);
  ASSERT_TRUE(s.up) << s.output();
  TlsClientOptions o;
  o.ca_pem = pki.ca.cert_pem();
  std::string err;
  auto c = TlsConn::connect(port, o, &err);
  ASSERT_TRUE(c) << err;
  ASSERT_TRUE(c->send("GET /1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                      "GET /3 HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  for (const char* p : {"/1", "/2", "/3"}) {
    Response r = c->read_response();
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.body, std::string("tls GET ") + p + "\n");
    EXPECT_TRUE(r.keep_alive);
  }
  ASSERT_TRUE(c->send("GET /4 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
  Response r = c->read_response();
  EXPECT_EQ(r.body, "tls GET /4\n");
  bool clean = false;
  EXPECT_EQ(c->read_until_close(&clean), "");
  EXPECT_TRUE(clean) << "no close_notify before the close";
  std::vector<uint64_t> hs = worker_counters(port, pki, "tls_handshakes");
  EXPECT_EQ(sum(hs), 2u);  // this connection and the status request's
}

TEST(TlsServe, TenMegabytesBothWaysThroughAnUpstream) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  FakeUpstream up("u");
  const size_t kSize = 10 << 20;
  up.set_handler([&](const RecordedRequest& rq) {
    Reply rp;
    rp.body = rq.body == pattern_bytes(kSize) ? pattern_bytes(kSize) : "body differs (" + std::to_string(rq.body.size()) + ")";
    return rp;
  });
  uint16_t port = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) +
               " tls\ntls_cert = " + pem + "\nworkers = 1\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
               up.address() + "\n",
           port);
  ASSERT_TRUE(s.up) << s.output();
  TlsClientOptions o;
  o.ca_pem = pki.ca.cert_pem();
  std::string err;
  auto c = TlsConn::connect(port, o, &err);
  ASSERT_TRUE(c) << err;
  for (int round = 0; round < 2; round++) {  // twice on the one connection
    ASSERT_TRUE(c->send("POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(kSize) +
                        "\r\n\r\n" + pattern_bytes(kSize)));
    Response r = c->read_response(false, Millis(30000));
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.body.size(), kSize);
    EXPECT_TRUE(r.body == pattern_bytes(kSize)) << r.body.substr(0, 80);
  }
  // curl too, the upload from a file.
  std::string file = pki.dir.write("up.bin", pattern_bytes(kSize));
  auto [code, out] = run(curl(port, pki, "localhost", "/big", "--data-binary @" + file + " -o " + pki.dir.path() +
                                                                  "/down.bin -w '%{http_code} %{size_download}'"));
  EXPECT_EQ(out, "200 " + std::to_string(kSize)) << out;
}

TEST(TlsServe, SessionsResumeOnAnyWorker) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  uint16_t port = free_port();
  // reuse_port: the kernel spreads connections over the four workers' own sockets.
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) +
               " tls\ntls_cert = " + pem + "\nworkers = 4\nreuse_port = true\n" + kEchoAndStatus,
           port);
  ASSERT_TRUE(s.up) << s.output();
  ASSERT_TRUE(wait_until([&] { return worker_counters(port, pki, "tls_handshakes").size() == 4; }));
  // openssl s_client: a session saved, then resumed on reconnects.
  std::string sess = pki.dir.path() + "/sess.pem";
  std::string base = "openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -servername localhost -CAfile " +
                     pki.ca_file + " ";
  auto [c1, o1] = run("(printf 'GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n'; sleep 1) | " +
                      base + "-ign_eof -sess_out " + sess + " 2>&1");
  ASSERT_EQ(c1, 0) << o1;
  EXPECT_NE(o1.find("tls GET /"), std::string::npos) << o1;
  EXPECT_NE(o1.find("Verify return code: 0 (ok)"), std::string::npos) << o1;
  std::vector<uint64_t> before = worker_counters(port, pki, "tls_resumed");
  int reused = 0;
  for (int i = 0; i < 12; i++) {
    auto [c, o] = run("(printf 'GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n'; sleep 0.2) | " +
                      base + "-ign_eof -sess_in " + sess + " 2>&1");
    EXPECT_EQ(c, 0) << o;
    if (o.find("Reused, TLSv1.3") != std::string::npos) reused++;
  }
  EXPECT_EQ(reused, 12);
  std::vector<uint64_t> after = worker_counters(port, pki, "tls_resumed");
  ASSERT_EQ(after.size(), before.size());
  int workers_resuming = 0;
  for (size_t i = 0; i < after.size(); i++) workers_resuming += after[i] > before[i];
  EXPECT_GE(workers_resuming, 2) << "every resumption on one worker: the ticket keys were not shared?";
  EXPECT_EQ(sum(after) - sum(before), 12u);
}

TEST(TlsServe, HupRereadsAReplacedCertificateWithoutDroppingAKeptAliveConnection) {
  Pki pki;
  auto [crt, key] = pki.server("server", {"localhost"});
  uint16_t port = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) + " tls\ntls_cert = " +
               crt + "\ntls_key = " + key + "\nworkers = 1\ndrain_idle_grace = 5\n" + kEchoAndStatus,
           port);
  ASSERT_TRUE(s.up) << s.output();
  TlsClientOptions o;
  o.ca_pem = pki.ca.cert_pem();
  std::string err;
  auto old_conn = TlsConn::connect(port, o, &err);
  ASSERT_TRUE(old_conn) << err;
  ASSERT_TRUE(old_conn->send("GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  EXPECT_EQ(old_conn->read_response().body, "tls GET /before\n");
  std::string old_serial = old_conn->peer_serial();
  // Replaced in place (as certbot renews), then HUP.
  TestCert next = pki.ca.server({"localhost"});
  std::string next_key = pki.dir.write("next.key", next.key_pem);
  chmod(next_key.c_str(), 0600);
  ASSERT_EQ(rename(pki.dir.write("next.crt", next.cert_pem).c_str(), crt.c_str()), 0);
  ASSERT_EQ(rename(next_key.c_str(), key.c_str()), 0);
  s.proc->signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(*s.proc, "reloaded: generation", Millis(10000))) << s.output();
  ASSERT_TRUE(old_conn->send("GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  Response r = old_conn->read_response();
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.body, "tls GET /after\n");
  // New connections get the new certificate (once the old worker, which
  // may still take one as it stops accepting, is gone).
  std::string fresh_serial;
  EXPECT_TRUE(wait_until([&] {
    auto fresh = TlsConn::connect(port, o, &err);
    fresh_serial = fresh ? fresh->peer_serial() : "";
    return fresh && fresh_serial != old_serial;
  }))
      << err;
  EXPECT_FALSE(fresh_serial.empty());
  // The kept-alive connection was answered by its worker and closed
  // cleanly afterwards (the old generation drains), never reset.
  bool clean = false;
  old_conn->read_until_close(&clean);
  EXPECT_TRUE(clean);
}

TEST(TlsServe, ClientSubjectAndForwardedProtoGoUpstreamAndCannotBeForged) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  FakeUpstream up("u");
  uint16_t port = free_port();
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) + " tls\ntls_cert = " +
               pem + "\nca_certs = " + pki.ca_file +
               "\ncert_reqs = optional\ntls_client_subject_header = X-Client-Subject\nunderscores_in_headers = on\n"
               "workers = 1\n\n[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n",
           port);
  ASSERT_TRUE(s.up) << s.output();
  const std::string forged =
      "GET /m HTTP/1.1\r\nHost: localhost\r\nX-Client-Subject: CN=mallory\r\nx_client_subject: CN=eve\r\n"
      "X-Forwarded-Proto: http\r\nConnection: close\r\n\r\n";
  TestCert alice = pki.ca.client("alice");
  TlsClientOptions o;
  o.ca_pem = pki.ca.cert_pem();
  o.cert_pem = alice.cert_pem;
  o.key_pem = alice.key_pem;
  std::string err;
  auto c = TlsConn::connect(port, o, &err);
  ASSERT_TRUE(c) << err;
  ASSERT_TRUE(c->send(forged));
  EXPECT_EQ(c->read_response().status, 200);
  ASSERT_EQ(up.request_count(), 1u);
  RecordedRequest r = up.requests()[0];
  EXPECT_EQ(r.header_count("x-client-subject"), 1u);
  EXPECT_EQ(r.header_count("x_client_subject"), 0u);
  EXPECT_EQ(r.header("x-client-subject"), "CN=alice,O=pasture tests");
  EXPECT_EQ(r.header_count("x-forwarded-proto"), 1u);
  EXPECT_EQ(r.header("x-forwarded-proto"), "https");
  // Without a client certificate: no subject, and the forged ones dropped.
  up.clear();
  o.cert_pem.clear();
  o.key_pem.clear();
  c = TlsConn::connect(port, o, &err);
  ASSERT_TRUE(c) << err;
  ASSERT_TRUE(c->send(forged));
  EXPECT_EQ(c->read_response().status, 200);
  ASSERT_EQ(up.request_count(), 1u);
  r = up.requests()[0];
  EXPECT_EQ(r.header_count("x-client-subject") + r.header_count("x_client_subject"), 0u);
  EXPECT_EQ(r.header("x-forwarded-proto"), "https");
}

// The verified client certificate's subject reaches upstreams and hosted
// apps over HTTP/2 streams as over HTTP/1.1 (each kind of exchange asks its
// connection for it: it is kept with the TLS session, not copied into each
// connection).
TEST(TlsServe, ClientSubjectReachesUpstreamsAndAppsOverBothProtocols) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  TestCert alice = pki.ca.client("alice");
  std::string cert = pki.dir.write("alice.crt", alice.cert_pem), key = pki.dir.write("alice.key", alice.key_pem);
  FakeUpstream up("u");
  up.set_handler([](const RecordedRequest& rq) {
    Reply rp;
    rp.body = "subject=" + rq.header("x-client-subject") + " n=" + std::to_string(rq.header_count("x-client-subject"));
    return rp;
  });
  uint16_t port = free_port();
  TempDir rec("pasture-tls-rec");
  const std::string wsgi = std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi";
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) + " tls\ntls_cert = " +
               pem + "\nca_certs = " + pki.ca_file +
               "\ncert_reqs = optional\ntls_client_subject_header = X-Client-Subject\nhttp2 = on\nworkers = 1\n\n"
               "[composite:main]\nuse = egg:Paste#urlmap\n/up = up\n/ = app\n\n"
               "[app:up]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n\n"
               "[app:app]\npaste.app_factory = pasture_embedapp:make_app\nrecord_to = %(record_dir)s\n",
           port, {"record_dir=" + rec.path()}, {{"PYTHONPATH", wsgi}, {"EMBEDAPP_IMPORTS", rec.file("imports")}});
  ASSERT_TRUE(s.up) << s.output();
  const std::string with_cert = "--cert " + cert + " --key " + key + " -H 'X-Client-Subject: CN=mallory'";
  for (const char* proto : {"--http1.1", "--http2"}) {
    SCOPED_TRACE(proto);
    std::string more = std::string(proto) + " -w '\n%{http_version}' ";
    auto [c1, o1] = run(curl(port, pki, "localhost", "/up/x", more + with_cert));
    EXPECT_EQ(c1, 0) << o1;
    EXPECT_EQ(o1, std::string("subject=CN=alice,O=pasture tests n=1\n") + (proto[6] == '2' ? "2" : "1.1"));
    auto [c2, o2] = run(curl(port, pki, "localhost", "/environ", more + with_cert));
    EXPECT_EQ(c2, 0) << o2;
    EXPECT_NE(o2.find("\"HTTP_X_CLIENT_SUBJECT\": \"CN=alice,O=pasture tests\""), std::string::npos) << o2;
    EXPECT_EQ(o2.find("mallory"), std::string::npos) << o2;
    // Without a certificate: none, and the client's own dropped.
    auto [c3, o3] = run(curl(port, pki, "localhost", "/up/x", more + "-H 'X-Client-Subject: CN=mallory'"));
    EXPECT_EQ(o3, std::string("subject= n=0\n") + (proto[6] == '2' ? "2" : "1.1"));
    auto [c4, o4] = run(curl(port, pki, "localhost", "/environ", more));
    EXPECT_EQ(o4.find("HTTP_X_CLIENT_SUBJECT"), std::string::npos) << o4;
  }
}

TEST(TlsServe, EmbeddedAppSeesHttpsAndFilesAreSentWithoutSendfile) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  uint16_t port = free_port();
  TempDir rec("pasture-tls-rec");
  const std::string wsgi = std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi";
  std::ifstream f(wsgi + "/embed_app.ini");
  std::string app((std::istreambuf_iterator<char>(f)), {});
  Served s(pki.dir,
           "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) + " tls\ntls_cert = " +
               pem + "\nworkers = 1\n\n" + app,
           port, {"record_dir=" + rec.path()}, {{"PYTHONPATH", wsgi}, {"EMBEDAPP_IMPORTS", rec.file("imports")}});
  ASSERT_TRUE(s.up) << s.output();
  auto [code, out] = run(curl(port, pki, "localhost", "/environ"));
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"wsgi.url_scheme\": \"https\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"HTTPS\": \"on\""), std::string::npos) << out;
  std::string file = pki.dir.write("blob.bin", pattern_bytes(3 << 20));
  auto [c2, o2] = run(curl(port, pki, "localhost", "/file?real=1&cl=1&path=" + file, "-o " + pki.dir.path() +
                                                                                        "/got.bin -w '%{http_code}'"));
  EXPECT_EQ(o2, "200");
  std::ifstream g(pki.dir.path() + "/got.bin", std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(g)), {});
  EXPECT_EQ(got.size(), (size_t)(3 << 20));
  EXPECT_TRUE(got == pattern_bytes(3 << 20));
}

// Socket activation (systemd passes fd 3): the socket keeps the TLS mark
// of the configured listener it stands for; one the config does not name
// is TLS when the whole server is (ssl_pem).
TEST(TlsServe, SocketActivationKeepsTheTlsMark) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  for (bool named : {true, false}) {
    Fd lfd = listen_loopback(0);
    ASSERT_TRUE(lfd.valid());
    uint16_t port = local_port(lfd.get());
    std::string server = named ? "use = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) +
                                     " tls 127.0.0.1:1\ntls_cert = " + pem + "\n"
                               : "use = egg:Paste#http\nport = 1\nssl_pem = " + pem + "\n";
    std::string ini = pki.dir.write("act.ini", "[server:main]\n" + server + "workers = 1\n" + kEchoAndStatus);
    std::string out = pki.dir.file(named ? "named.log" : "unnamed.log");
    pid_t pid = spawn_socket_activated(lfd.get(), ini, out);
    ASSERT_GE(pid, 0);
    lfd.reset();
    TlsClientOptions o;
    o.ca_pem = pki.ca.cert_pem();
    std::string err;
    Response r;
    bool served = wait_until([&] {
      auto c = TlsConn::connect(port, o, &err, Millis(500));
      if (!c || !c->send("GET /sa HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")) return false;
      r = c->read_response();
      return r.ok();
    });
    Response plain = http_get(port, "/sa", {}, Millis(2000));
    kill(-pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    std::ifstream f(out);
    std::string log((std::istreambuf_iterator<char>(f)), {});
    EXPECT_TRUE(served) << named << ": " << err << "\n" << log;
    EXPECT_EQ(r.body, "tls GET /sa\n") << named;
    EXPECT_NE(plain.body, "tls GET /sa\n") << named << ": cleartext served on an encrypted port";
    EXPECT_NE(log.find("serving on https://"), std::string::npos) << log;
  }
}

TEST(TlsServe, CheckShowsTheListenerAndNoKeyMaterial) {
  Pki pki;
  std::string pem = pki.pem("server", {"localhost"});
  uint16_t port = free_port();
  std::string ini = pki.dir.write("site.ini", "[server:main]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = " +
                                                  std::to_string(port) + "\nssl_pem = " + pem +
                                                  "\n[app:main]\nuse = egg:pasture#echo\n");
  Process check({PASTURE_BINARY, "check", ini});
  std::optional<int> st = check.wait_exit();
  ASSERT_TRUE(st && WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 0) << check.output();
  EXPECT_NE(check.output().find("listens on https://127.0.0.1:" + std::to_string(port)), std::string::npos)
      << check.output();
  EXPECT_EQ(check.output().find("PRIVATE KEY"), std::string::npos);
}

}  // namespace
}  // namespace pasture::test
