// TLS to upstream servers (issue 15, "Upstream TLS"): the real binary on a
// plain listener, proxying to HTTPS upstreams the test starts
// (tests/integration/tls_upstream.py, Python's ssl, which reports each
// TLS connection's SNI and whether it resumed; ws_peer.py as a wss echo
// server). Certificates from the test CA (tests/support/tls_certs.h), and
// a self-signed one from the openssl CLI.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "conf/json.h"
#include "tests/integration/pasture_server.h"
#include "tests/support/pattern.h"
#include "tests/support/tls_certs.h"

namespace pasture::test {
namespace {

namespace json = conf::json;

const std::string kUpstream = std::string(PASTURE_SOURCE_DIR) + "/tests/integration/tls_upstream.py";
const std::string kWsPeer = std::string(PASTURE_SOURCE_DIR) + "/tests/integration/ws_peer.py";

// A CA and certificates in one directory: {crt, key} files.
struct Pki {
  TempDir dir{"pasture-utls"};
  TestCa ca;
  std::string ca_file = dir.write("ca.pem", ca.cert_pem());
  std::pair<std::string, std::string> server(const std::string& name, const std::vector<std::string>& names) {
    TestCert c = ca.server(names);
    return {dir.write(name + ".crt", c.cert_pem), key(name + ".key", c.key_pem)};
  }
  std::string key(const std::string& name, const std::string& pem) {
    std::string p = dir.write(name, pem);
    chmod(p.c_str(), 0600);
    return p;
  }
  // A self-signed certificate for localhost and 127.0.0.1 (openssl CLI).
  std::pair<std::string, std::string> self_signed(const std::string& name) {
    std::string crt = dir.file(name + ".crt"), key = dir.file(name + ".key");
    Process p({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
               key, "-out", crt, "-days", "2", "-subj", "/CN=localhost", "-addext",
               "subjectAltName=DNS:localhost,IP:127.0.0.1"});
    EXPECT_TRUE(exited_with(p.wait_exit(Millis(20000)), 0)) << p.output();
    return {crt, key};
  }
};

// tls_upstream.py on a free port.
struct TlsUpstream {
  std::unique_ptr<Process> py;
  uint16_t port = 0;
  TlsUpstream(const std::pair<std::string, std::string>& cert, const std::string& client_ca = "") {
    std::vector<std::string> argv = {"/usr/bin/python3", kUpstream, cert.first, cert.second};
    if (!client_ca.empty()) argv.push_back(client_ca);
    py = std::make_unique<Process>(argv);
    if (wait_for_output(*py, "port "))
      port = (uint16_t)std::atoi(py->output().substr(py->output().find("port ") + 5).c_str());
  }
  std::string output() const { return py->output(); }
  // The "conn N ..." lines: one per completed TLS handshake.
  std::vector<std::string> conns() const {
    std::vector<std::string> out;
    std::string o = output();
    for (size_t p = o.find("conn "); p != std::string::npos; p = o.find("conn ", p + 1))
      if (p == 0 || o[p - 1] == '\n') out.push_back(o.substr(p, o.find('\n', p) - p));
    return out;
  }
  std::string addr(const std::string& host = "localhost") const { return host + ":" + std::to_string(port); }
};

std::string pool_site(const std::string& servers, const std::string& keys) {
  return "\n[composite:main]\nuse = egg:Paste#urlmap\n/ = pool\n/status = stat\n\n"
         "[app:stat]\nuse = egg:pasture#status\n\n"
         "[app:pool]\nuse = egg:pasture#balancer\nservers = " +
         servers + "\n" + keys;
}

const json::Value* server_json(const json::Value& v, const std::string& name) {
  for (const json::Value& p : v.find("pools")->items())
    if (p.find("name")->as_string() == "app:pool")
      for (const json::Value& s : p.find("servers")->items())
        if (s.find("name")->as_string() == name) return &s;
  return nullptr;
}

json::Value status(uint16_t port) {
  Response r = http_get(port, "/status?format=json");
  return r.status == 200 ? json::parse(r.body) : json::Value();
}

TEST(UpstreamTls, HttpsUpstreamThroughAPlainListenerKeptAliveWithSni) {
  Pki pki;
  TlsUpstream up(pki.server("up", {"localhost"}));
  ASSERT_NE(up.port, 0) << up.output();
  PastureServer srv(pool_site("https://" + up.addr(), "tls_ca_certs = " + pki.ca_file + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  // Ten requests on fresh client connections: one upstream TLS connection,
  // kept alive in the worker's pool and reused.
  for (int i = 0; i < 10; i++) {
    Response r = http_get(srv.port(), "/hello/" + std::to_string(i));
    ASSERT_EQ(r.status, 200) << r.body << srv.output();
    EXPECT_EQ(r.body, "tls upstream GET /hello/" + std::to_string(i) + " host=127.0.0.1:" + std::to_string(srv.port()) +
                          " conn=1");
  }
  std::vector<std::string> conns = up.conns();
  ASSERT_EQ(conns.size(), 1u) << up.output();
  // SNI is the server's host name; ALPN http/1.1.
  EXPECT_EQ(conns[0], "conn 1 sni=localhost resumed=0 alpn=http/1.1 client=-");
}

// A body framed by the connection's end is complete only if the TLS
// upstream ended it with close_notify: a bare TCP FIN may be an attacker's
// cut (found by review: the cut body reached the client as complete).
TEST(UpstreamTls, BodyCutWithoutCloseNotifyIsNotComplete) {
  Pki pki;
  TlsUpstream up(pki.server("up", {"localhost"}));
  ASSERT_NE(up.port, 0) << up.output();
  PastureServer srv(pool_site("https://" + up.addr(), "tls_ca_certs = " + pki.ca_file + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::string base = "curl -s -o /dev/null -w '%{http_code} %{size_download} %{exitcode}' http://127.0.0.1:" +
                     std::to_string(srv.port());
  auto run = [](const std::string& cmd) {
    std::string out;
    FILE* f = popen(cmd.c_str(), "r");
    char buf[256];
    size_t n;
    while (f && (n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    if (f) pclose(f);
    return out;
  };
  EXPECT_EQ(run(base + "/closenotify"), "200 20000 0");  // ended properly: complete
  std::string cut = run(base + "/truncate");
  EXPECT_NE(cut, "200 20000 0") << "a cut body looked complete";
  EXPECT_NE(cut.substr(cut.rfind(' ') + 1), "0") << cut;  // curl saw an error (18, 56)
}

// An answer the upstream sent behind the one asked for (its own TLS record)
// never becomes the answer to the client's next request (found by review:
// parsed record by record, the connection went back to the pool with it).
TEST(UpstreamTls, BytesBehindAnAnswerAreNotTheNextAnswer) {
  Pki pki;
  TlsUpstream up(pki.server("up", {"localhost"}));
  ASSERT_NE(up.port, 0) << up.output();
  PastureServer srv(pool_site("https://" + up.addr(), "tls_ca_certs = " + pki.ca_file + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 10; i++) {  // half behind a large first answer (its plaintext past 48 KiB: review 19)
    Fd fd = connect_loopback(srv.port());
    send_all(fd.get(), std::string("GET ") + (i % 2 ? "/twicebig" : "/twice") +
                           " HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    std::string got;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (got.find("GET /after") == std::string::npos && got.find("injected") == std::string::npos &&
           std::chrono::steady_clock::now() < end)
      if (recv_some(fd.get(), got, Millis(5000)) != IoResult::kOk) break;
    EXPECT_EQ(got.find("injected"), std::string::npos) << got;
    EXPECT_EQ(got.find("X-Injected"), std::string::npos) << got;
    EXPECT_NE(got.find("tls upstream GET /after"), std::string::npos) << got;
  }
}

TEST(UpstreamTls, SessionResumesAfterTheUpstreamClosed) {
  Pki pki;
  TlsUpstream up(pki.server("up", {"localhost"}));
  ASSERT_NE(up.port, 0) << up.output();
  PastureServer srv(pool_site("https://" + up.addr(), "tls_ca_certs = " + pki.ca_file + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_EQ(http_get(srv.port(), "/close").body, "closing");
  ASSERT_TRUE(wait_until([&] { return up.conns().size() == 1; }));
  Response r = http_get(srv.port(), "/next");
  EXPECT_EQ(r.status, 200) << r.body;
  std::vector<std::string> conns = up.conns();
  ASSERT_EQ(conns.size(), 2u) << up.output();
  EXPECT_EQ(conns[1], "conn 2 sni=localhost resumed=1 alpn=http/1.1 client=-") << up.output();
}

TEST(UpstreamTls, SelfSignedNeedsItsCertificateOrVerifyOff) {
  Pki pki;
  auto cert = pki.self_signed("self");
  TlsUpstream up(cert);
  ASSERT_NE(up.port, 0) << up.output();
  {
    // Against the system CA store: refused, 502, the reason logged once.
    PastureServer srv(pool_site("https://" + up.addr(), "retries = 0\n"), 1);
    ASSERT_TRUE(srv.started()) << srv.output();
    Response r = http_get(srv.port(), "/x");
    EXPECT_EQ(r.status, 502) << r.body;
    EXPECT_TRUE(wait_until([&] {
      return srv.output().find("TLS handshake failed: certificate verify failed: self-signed certificate") !=
             std::string::npos;
    })) << srv.output();
    EXPECT_TRUE(up.conns().empty()) << up.output();
    // Counted as a connect error of that server.
    json::Value v = status(srv.port());
    const json::Value* s = server_json(v, up.addr());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(typed_value(*s, {"connect_errors"}), 1u);
  }
  {
    PastureServer srv(pool_site("https://" + up.addr(), "tls_ca_certs = " + cert.first + "\n"), 1);
    ASSERT_TRUE(srv.started()) << srv.output();
    EXPECT_EQ(http_get(srv.port(), "/x").status, 200);
  }
  {
    PastureServer srv(pool_site("https://" + up.addr(), "tls_verify = off\n"), 1);
    ASSERT_TRUE(srv.started()) << srv.output();
    EXPECT_EQ(http_get(srv.port(), "/x").status, 200);
  }
}

TEST(UpstreamTls, NamesAreVerifiedAndSniFollowsThem) {
  Pki pki;
  TlsUpstream up(pki.server("up", {"localhost"}));
  ASSERT_NE(up.port, 0) << up.output();
  const std::string ca = "tls_ca_certs = " + pki.ca_file + "\n";
  {
    // The name verified is tls_server_name: not in the certificate.
    PastureServer srv(pool_site("https://" + up.addr(), ca + "tls_server_name = other.example\nretries = 0\n"), 1);
    ASSERT_TRUE(srv.started()) << srv.output();
    EXPECT_EQ(http_get(srv.port(), "/x").status, 502);
    EXPECT_TRUE(wait_until([&] {
      return srv.output().find("certificate verify failed: hostname mismatch") != std::string::npos;
    })) << srv.output();
  }
  {
    // An IP address: verified as one (the certificate has none), no SNI.
    PastureServer srv(pool_site("https://" + up.addr("127.0.0.1"), ca + "retries = 0\n"), 1);
    ASSERT_TRUE(srv.started()) << srv.output();
    EXPECT_EQ(http_get(srv.port(), "/x").status, 502);
    EXPECT_TRUE(wait_until([&] {
      return srv.output().find("certificate verify failed: IP address mismatch") != std::string::npos;
    })) << srv.output();
  }
  {
    // ...and with tls_server_name = localhost, that name is sent and verified.
    PastureServer srv(pool_site("https://" + up.addr("127.0.0.1"), ca + "tls_server_name = localhost\n"), 1);
    ASSERT_TRUE(srv.started()) << srv.output();
    EXPECT_EQ(http_get(srv.port(), "/x").status, 200);
  }
  {
    PastureServer srv(pool_site("https://" + up.addr("127.0.0.1"), "tls_verify = off\n"), 1);
    ASSERT_TRUE(srv.started()) << srv.output();
    EXPECT_EQ(http_get(srv.port(), "/x").status, 200);
  }
  std::vector<std::string> conns = up.conns();
  ASSERT_EQ(conns.size(), 2u) << up.output();
  EXPECT_EQ(conns[0], "conn 1 sni=localhost resumed=0 alpn=http/1.1 client=-");
  EXPECT_EQ(conns[1], "conn 2 sni=- resumed=0 alpn=http/1.1 client=-");
}

// A server that fails verification is a connect failure: the request goes
// to the next server, as after a refused connect.
TEST(UpstreamTls, VerifyFailureIsRetriedElsewhere) {
  Pki pki;
  TlsUpstream good(pki.server("good", {"localhost"}));
  TlsUpstream bad(pki.self_signed("bad"));
  ASSERT_NE(good.port, 0) << good.output();
  ASSERT_NE(bad.port, 0) << bad.output();
  PastureServer srv(pool_site("https://" + bad.addr() + " https://" + good.addr(),
                              "tls_ca_certs = " + pki.ca_file + "\nretries = 1\n"),
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 4; i++) {
    Response r = http_get(srv.port(), "/r");
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_NE(srv.output().find("TLS handshake failed: certificate verify failed: self-signed certificate; retrying on " +
                              good.addr()),
            std::string::npos)
      << srv.output();
}

// A server that takes the TCP connection but never answers the
// ClientHello: connect_timeout covers the handshake (504).
TEST(UpstreamTls, HandshakeCountsAgainstConnectTimeout) {
  Fd silent = listen_loopback(0);  // never accepts: the kernel completes the connect
  ASSERT_TRUE(silent.valid());
  uint16_t port = local_port(silent.get());
  PastureServer srv(pool_site("https://localhost:" + std::to_string(port), "connect_timeout = 0.5\nretries = 0\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto t0 = std::chrono::steady_clock::now();
  Response r = http_get(srv.port(), "/t");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_GE(took, Millis(400));
  EXPECT_LT(took, Millis(3000));
  EXPECT_TRUE(wait_until([&] { return srv.output().find("TLS handshake timed out") != std::string::npos; }))
      << srv.output();
}

TEST(UpstreamTls, LargePostBothWays) {
  Pki pki;
  TlsUpstream up(pki.server("up", {"localhost"}));
  ASSERT_NE(up.port, 0) << up.output();
  PastureServer srv(pool_site("https://" + up.addr(), "tls_ca_certs = " + pki.ca_file + "\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port(), Millis(30000));
  for (bool chunked : {false, true}) {
    Response r = c.request_pattern("POST", "/echo", 1 << 20, chunked);
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body.size(), 1u << 20);
    EXPECT_TRUE(check_pattern(r.body)) << "mismatch at " << pattern_mismatch(r.body);
  }
  EXPECT_EQ(up.conns().size(), 1u) << up.output();
}

// An upstream that reads nothing for 3 s: pasture holds the client back
// (what it takes meanwhile is bounded by socket buffers and its high-water
// mark, not the body), then every byte arrives.
TEST(UpstreamTls, SlowUpstreamReaderHoldsTheClientBack) {
  Pki pki;
  TlsUpstream up(pki.server("up", {"localhost"}));
  ASSERT_NE(up.port, 0) << up.output();
  PastureServer srv(pool_site("https://" + up.addr(), "tls_ca_certs = " + pki.ca_file + "\nread_timeout = 30\n"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  constexpr size_t kLen = 128u << 20;
  std::atomic<size_t> sent{0};
  Response r;
  std::thread client([&] {
    HttpConn c(srv.port(), Millis(60000));
    r = c.request_stream("POST", "/sink", {}, kLen, [&](size_t off, size_t max) {
      sent = off;
      return pattern_bytes(std::min<size_t>(max, 64 * 1024), off);
    });
  });
  std::this_thread::sleep_for(Millis(2500));
  size_t during = sent;
  client.join();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, std::to_string(kLen));
  RecordProperty("taken_while_upstream_stalled_bytes", std::to_string(during));
  EXPECT_GT(during, 0u);
  EXPECT_LT(during, 40u << 20) << "pasture took " << (during >> 20) << " MiB while the upstream read nothing";
}

TEST(UpstreamTls, ClientCertificateForMutualTls) {
  Pki pki;
  TlsUpstream up(pki.server("up", {"localhost"}), pki.ca_file);
  ASSERT_NE(up.port, 0) << up.output();
  TestCert client = pki.ca.client("pasture-proxy");
  std::string crt = pki.dir.write("client.crt", client.cert_pem), key = pki.key("client.key", client.key_pem);
  PastureServer srv(pool_site("https://" + up.addr(), "tls_ca_certs = " + pki.ca_file + "\ntls_client_cert = " + crt +
                                                          "\ntls_client_key = " + key + "\n"),
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_EQ(http_get(srv.port(), "/m").status, 200);
  ASSERT_EQ(up.conns().size(), 1u) << up.output();
  EXPECT_EQ(up.conns()[0], "conn 1 sni=localhost resumed=0 alpn=http/1.1 client=pasture-proxy");
  // Without the certificate the server refuses the handshake.
  PastureServer bare(pool_site("https://" + up.addr(), "tls_ca_certs = " + pki.ca_file + "\nretries = 0\n"), 1);
  ASSERT_TRUE(bare.started()) << bare.output();
  EXPECT_EQ(http_get(bare.port(), "/m").status, 502);
}

TEST(UpstreamTls, PasteProxyHttpsAddress) {
  Pki pki;
  TlsUpstream up(pki.server("up", {"localhost"}));
  ASSERT_NE(up.port, 0) << up.output();
  PastureServer srv("[app:main]\nuse = egg:Paste#proxy\naddress = https://" + up.addr() + "/base/\ntls_ca_certs = " +
                        pki.ca_file + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = http_get(srv.port(), "/x");
  EXPECT_EQ(r.status, 200) << r.body;
  // Paste's proxy sends the upstream's host:port as Host.
  EXPECT_EQ(r.body, "tls upstream GET /base/x host=" + up.addr() + " conn=1");
}

TEST(UpstreamTls, HealthCheckOverTlsMarksAnUnverifiedServerDown) {
  Pki pki;
  TlsUpstream good(pki.server("good", {"localhost"}));
  TlsUpstream bad(pki.self_signed("bad"));
  ASSERT_NE(good.port, 0) << good.output();
  ASSERT_NE(bad.port, 0) << bad.output();
  PastureServer srv(pool_site("https://" + good.addr() + " https://" + bad.addr(),
                              "tls_ca_certs = " + pki.ca_file +
                                  "\nhealth_check = /health\nhealth_interval = 0.2\nfall = 1\nrise = 1\n"),
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto reason = [&](const json::Value& v, const std::string& name) -> std::string {
    const json::Value* s = v.type() == json::Value::Type::Object ? server_json(v, name) : nullptr;
    const json::Value* h = s ? s->find("health") : nullptr;
    const json::Value* c = h ? h->find("check") : nullptr;
    const json::Value* r = h ? h->find("check_reason") : nullptr;
    return c && r ? c->as_string() + "/" + r->as_string() : "";
  };
  json::Value v;
  EXPECT_TRUE(wait_until([&] {
    v = status(srv.port());
    return reason(v, bad.addr()) == "fail/tls" && reason(v, good.addr()) == "ok/status";
  }, Millis(10000)))
      << json::dump(v);
  EXPECT_NE(srv.output().find("server " + bad.addr() +
                              " down (health check /health: TLS handshake: certificate verify failed: self-signed "
                              "certificate"),
            std::string::npos)
      << srv.output();
  // The good server's probes went over TLS, with SNI.
  ASSERT_FALSE(good.conns().empty());
  EXPECT_EQ(good.conns()[0].find("sni=localhost"), 7u) << good.conns()[0];
  // Requests go to the good one only.
  for (int i = 0; i < 4; i++) EXPECT_EQ(http_get(srv.port(), "/h").status, 200);
}

TEST(UpstreamTls, WebSocketToAWssUpstream) {
  if (system("/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-websockets is not installed (scripts/setup --test installs it)";
  Pki pki;
  auto cert = pki.server("ws", {"localhost"});
  std::string log = pki.dir.file("ws.log");
  Process py({"/usr/bin/python3", kWsPeer, "server", log, cert.first, cert.second});
  ASSERT_TRUE(wait_for_output(py, "port ")) << py.output();
  uint16_t port = (uint16_t)std::atoi(py.output().substr(py.output().find("port ") + 5).c_str());
  PastureServer srv(pool_site("https://localhost:" + std::to_string(port), "tls_ca_certs = " + pki.ca_file + "\n"), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 2; i++) {
    Process c({"/usr/bin/python3", kWsPeer, "client", std::to_string(srv.port()), "basic"});
    auto st = c.wait_exit(Millis(30000));
    ASSERT_TRUE(exited_with(st, 0)) << c.output() << srv.output();
    EXPECT_NE(c.output().find("echo ok"), std::string::npos) << c.output();
    EXPECT_NE(c.output().find("client close ok"), std::string::npos) << c.output();
    EXPECT_NE(c.output().find("server close ok"), std::string::npos) << c.output();
  }
}

TEST(UpstreamTls, CheckNamesTheMissingFile) {
  TempDir dir("pasture-utls");
  std::string ini = dir.write("site.ini", "[server:main]\nuse = egg:pasture#main\n\n[app:main]\n"
                                          "use = egg:pasture#balancer\nservers = https://a.example\n"
                                          "tls_ca_certs = nothere.pem\n");
  auto [code, out] = run_pasture("check " + ini);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find(ini + ":7: tls_ca_certs " + dir.path() + "/nothere.pem: No such file or directory"),
            std::string::npos)
      << out;
  dir.write("ca.pem", TestCa().cert_pem());
  ini = dir.write("site.ini", "[server:main]\nuse = egg:pasture#main\n\n[app:main]\n"
                              "use = egg:pasture#balancer\nservers = https://a.example\ntls_ca_certs = ca.pem\n");
  std::tie(code, out) = run_pasture("check " + ini);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("https://a.example:443"), std::string::npos) << out;
  EXPECT_NE(out.find("certificate verified against " + dir.path() + "/ca.pem"), std::string::npos) << out;
}

}  // namespace
}  // namespace pasture::test
