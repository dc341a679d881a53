// TLS session resumption across reloads (review 16 F2, F3), the real binary
// on real sockets: a session resumes after a HUP that changes nothing about
// the certificates or client verification, and does not after one that
// turns client certificates on or replaces their CA; the ticket key is
// rotated on its age, however often the server reloads.
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <set>

#include "tests/integration/pasture_server.h"
#include "tests/support/tls_certs.h"
#include "tests/support/tls_client.h"

namespace pasture::test {
namespace {

// A CA, its file, a server certificate, and `pasture serve` on a site.ini
// that the test rewrites before each HUP.
struct Site {
  TempDir dir{"pasture-tls-resume"};
  TestCa ca;
  std::string ca_file = dir.write("ca.pem", ca.cert_pem());
  std::string pem;
  std::string ini;
  uint16_t port = free_port();
  std::unique_ptr<Process> proc;
  int generation = 1;

  Site() {
    TestCert c = ca.server({"localhost"});
    pem = dir.write("server.pem", c.cert_pem + c.key_pem);
    chmod(pem.c_str(), 0600);
    ini = dir.file("site.ini");
  }
  // [server:main] with `server_extra` lines, then `app`.
  std::string config(const std::string& server_extra, const std::string& app) const {
    return "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" + std::to_string(port) + " tls\ntls_cert = " +
           pem + "\nworkers = 1\n" + server_extra + "\n" + app;
  }
  bool start(const std::string& body, Process::Env env = {}) {
    std::ofstream(ini, std::ios::trunc) << body;
    proc = std::make_unique<Process>(std::vector<std::string>{PASTURE_BINARY, "serve", ini}, env);
    return wait_for_output(*proc, "serving on", Millis(20000)) && wait_for_port(port);
  }
  // Rewrites the config and reloads; true once the new generation serves
  // alone (the old worker gone: it would still hand out and take the old
  // generation's tickets).
  bool reload(const std::string& body) {
    std::ofstream(ini, std::ios::trunc) << body;
    proc->signal(SIGHUP);
    generation++;
    std::string done = "reloaded: generation " + std::to_string(generation) + " ";
    return wait_for_output(*proc, done, Millis(15000)) &&
           wait_until([&] { return children_of(proc->pid()).size() == 1; }, Millis(15000));
  }
};

const std::string kEcho = "[app:main]\nuse = egg:pasture#echo\nname = ";

struct Outcome {
  bool served = false;   // a response came (TLS 1.3: after the server judged the client's certificate)
  bool resumed = false;
  std::string body;
  std::string error;
};

// One request on a new connection: TLS `version` (0 = 1.3), resuming `sess`
// if given, with `cert` if given; `keep` gets its session (resumable: the
// connection is shut down with close_notify).
Outcome request(const Site& site, int version, SSL_SESSION* sess, const TestCert* cert = nullptr,
                SSL_SESSION** keep = nullptr) {
  TlsClientOptions o;
  o.ca_pem = site.ca.cert_pem();
  o.max_version = version;
  o.session = sess;
  if (cert) {
    o.cert_pem = cert->cert_pem;
    o.key_pem = cert->key_pem;
  }
  Outcome out;
  auto c = TlsConn::connect(site.port, o, &out.error);
  if (!c) return out;
  out.resumed = c->resumed();
  if (c->send("GET /r HTTP/1.1\r\nHost: localhost\r\n\r\n")) {
    Response r = c->read_response();
    out.served = r.ok();
    out.body = r.body;
    if (!r.ok()) out.error = r.error;
  }
  SSL_shutdown(c->ssl());
  if (keep) *keep = c->get1_session();
  return out;
}

const int kVersions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
const char* name(int version) { return version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2"; }

// F2, case 1: sessions from a generation without client certificates.
TEST(TlsResume, SessionsResumeAcrossAReloadButNotOneThatRequiresClientCertificates) {
  Site site;
  ASSERT_TRUE(site.start(site.config("", kEcho + "g1\n"))) << site.proc->output();
  SSL_SESSION* sess[2] = {};
  for (int i = 0; i < 2; i++) {
    Outcome r = request(site, kVersions[i], nullptr, nullptr, &sess[i]);
    ASSERT_TRUE(r.served) << name(kVersions[i]) << ": " << r.error;
    EXPECT_FALSE(r.resumed);
  }
  // A reload that changes nothing about verification: the sessions resume,
  // on the new generation (its echo name).
  ASSERT_TRUE(site.reload(site.config("client_header_timeout = 30", kEcho + "g2\n"))) << site.proc->output();
  EXPECT_EQ(site.proc->output().find("sessions from before the reload will not resume"), std::string::npos);
  for (int i = 0; i < 2; i++) {
    Outcome r = request(site, kVersions[i], sess[i]);
    EXPECT_TRUE(r.served) << name(kVersions[i]) << ": " << r.error;
    EXPECT_TRUE(r.resumed) << name(kVersions[i]);
    EXPECT_EQ(r.body, "g2 GET /r\n");
  }
  // cert_reqs = 2 turned on: no session of before resumes; the full
  // handshake wants a certificate.
  ASSERT_TRUE(site.reload(site.config("ca_certs = " + site.ca_file + "\ncert_reqs = 2", kEcho + "g3\n")))
      << site.proc->output();
  EXPECT_NE(site.proc->output().find("sessions from before the reload will not resume"), std::string::npos)
      << site.proc->output();
  for (int i = 0; i < 2; i++) {
    Outcome r = request(site, kVersions[i], sess[i]);
    EXPECT_FALSE(r.served) << name(kVersions[i]) << ": " << r.body;
    EXPECT_FALSE(r.resumed) << name(kVersions[i]);
    EXPECT_EQ(r.body, "");
  }
  TestCert alice = site.ca.client("alice");
  Outcome r = request(site, 0, sess[0], &alice);
  EXPECT_TRUE(r.served) << r.error;
  EXPECT_FALSE(r.resumed);
  EXPECT_EQ(r.body, "g3 GET /r\n");
  SSL_SESSION_free(sess[0]);
  SSL_SESSION_free(sess[1]);
}

// F2, case 2: an mTLS session resumes across a reload that keeps the CA
// (its subject still goes upstream), not across one that replaces it.
TEST(TlsResume, AClientCertificateSessionDoesNotResumeOnceItsCaIsReplaced) {
  Site site;
  FakeUpstream up("u");
  up.set_handler([](const RecordedRequest& rq) {
    Reply rp;
    rp.body = "subject=" + rq.header("x-client-subject");
    return rp;
  });
  const std::string app = "[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n";
  auto mtls = [&](const std::string& ca_file, const std::string& more) {
    return site.config("ca_certs = " + ca_file + "\ncert_reqs = 2\ntls_client_subject_header = X-Client-Subject\n" +
                           more,
                       app);
  };
  ASSERT_TRUE(site.start(mtls(site.ca_file, ""))) << site.proc->output();
  TestCert alice = site.ca.client("alice");
  SSL_SESSION* sess[2] = {};
  for (int i = 0; i < 2; i++) {
    Outcome r = request(site, kVersions[i], nullptr, &alice, &sess[i]);
    ASSERT_TRUE(r.served) << name(kVersions[i]) << ": " << r.error;
    EXPECT_EQ(r.body, "subject=CN=alice,O=pasture tests");
  }
  // The same CA (a copy under another name) and another unrelated change.
  std::string copy = site.dir.write("ca-copy.pem", site.ca.cert_pem());
  ASSERT_TRUE(site.reload(mtls(copy, "client_header_timeout = 30"))) << site.proc->output();
  for (int i = 0; i < 2; i++) {
    Outcome r = request(site, kVersions[i], sess[i]);  // no certificate: the session carries it
    EXPECT_TRUE(r.served) << name(kVersions[i]) << ": " << r.error;
    EXPECT_TRUE(r.resumed) << name(kVersions[i]);
    EXPECT_EQ(r.body, "subject=CN=alice,O=pasture tests");
  }
  // alice's CA revoked: ca_certs now names another one.
  TestCa other("another CA");
  std::string other_file = site.dir.write("other-ca.pem", other.cert_pem());
  size_t before = up.request_count();
  ASSERT_TRUE(site.reload(mtls(other_file, ""))) << site.proc->output();
  for (int i = 0; i < 2; i++) {
    Outcome r = request(site, kVersions[i], sess[i]);
    EXPECT_FALSE(r.served) << name(kVersions[i]) << ": " << r.body;
    EXPECT_FALSE(r.resumed) << name(kVersions[i]);
    r = request(site, kVersions[i], sess[i], &alice);
    EXPECT_FALSE(r.served) << name(kVersions[i]) << ": " << r.body;
    EXPECT_FALSE(r.resumed) << name(kVersions[i]);
  }
  EXPECT_EQ(up.request_count(), before) << "a request went upstream after alice's CA was replaced";
  TestCert bob = other.client("bob");
  Outcome r = request(site, 0, nullptr, &bob);
  EXPECT_TRUE(r.served) << r.error;
  EXPECT_EQ(r.body, "subject=CN=bob,O=pasture tests");
  SSL_SESSION_free(sess[0]);
  SSL_SESSION_free(sess[1]);
}

// The name of the key that encrypted a fresh TLS 1.2 ticket (its first 16
// bytes, in clear); "" if none came.
std::string ticket_key_name(const Site& site) {
  SSL_SESSION* sess = nullptr;
  Outcome r = request(site, TLS1_2_VERSION, nullptr, nullptr, &sess);
  const unsigned char* tick = nullptr;
  size_t len = 0;
  if (sess) SSL_SESSION_get0_ticket(sess, &tick, &len);
  std::string name = r.served && len >= 16 ? std::string(reinterpret_cast<const char*>(tick), 16) : "";
  SSL_SESSION_free(sess);
  return name;
}

// F3: the ticket key is rotated when it is a rotation period old, also when
// the server reloads more often than that (each reload carries the keys and
// their age); a reload alone does not rotate it.
TEST(TlsResume, TheTicketKeyRotatesOnScheduleDespiteReloads) {
  const auto kPeriod = Millis(4000);
  Site site;
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(site.start(site.config("", kEcho + "g\n"), {{"PASTURE_TICKET_ROTATION_MS", "4000"}}))
      << site.proc->output();
  std::string first = ticket_key_name(site);
  ASSERT_EQ(first.size(), 16u);
  ASSERT_TRUE(site.reload(site.config("", kEcho + "g2\n"))) << site.proc->output();
  std::string after_reload = ticket_key_name(site);
  bool within_period = std::chrono::steady_clock::now() - start < kPeriod - Millis(500);
  if (within_period) {
    EXPECT_EQ(after_reload, first) << "a reload rotated the key (or the keys were not carried)";
  }
  // Reloads about every second for two and a half periods: the key changes
  // at least twice (the bug: each reload restarted the period, so never).
  std::vector<std::string> seen = {first};
  if (after_reload != first) seen.push_back(after_reload);
  auto end = std::chrono::steady_clock::now() + kPeriod * 5 / 2;
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(Millis(700));
    ASSERT_TRUE(site.reload(site.config("", kEcho + "g" + std::to_string(site.generation + 1) + "\n")))
        << site.proc->output();
    std::string n = ticket_key_name(site);
    ASSERT_EQ(n.size(), 16u);
    if (n != seen.back()) seen.push_back(n);
  }
  EXPECT_GE(seen.size(), 3u) << "the ticket key changed " << seen.size() - 1 << " times in "
                             << site.generation << " generations";
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size()) << "a key came back";
}

}  // namespace
}  // namespace pasture::test
