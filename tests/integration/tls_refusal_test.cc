// TLS is parsed and checked but not served yet (issue 15, part 1): `pasture
// check` shows the TLS listeners; `pasture serve` and a reload refuse them
// with a clear error and never serve those ports as cleartext.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>

#include "tests/integration/pasture_server.h"
#include "tests/support/tls_certs.h"

namespace pasture::test {
namespace {

// A certificate and its key (0600) in `dir`; returns the PEM path.
std::string write_pem(const TempDir& dir) {
  TestCa ca;
  TestCert c = ca.server({"localhost"});
  std::string pem = dir.write("server.pem", c.cert_pem + c.key_pem);
  chmod(pem.c_str(), 0600);
  return pem;
}

TEST(TlsRefusal, CheckShowsTheListenerServeRefusesIt) {
  TempDir dir("pasture-tls");
  std::string pem = write_pem(dir);
  uint16_t port = free_port();
  std::string ini = dir.write("site.ini", "[server:main]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = " +
                                              std::to_string(port) + "\nssl_pem = " + pem +
                                              "\n[app:main]\nuse = egg:pasture#echo\n");
  Process check({PASTURE_BINARY, "check", ini});
  std::optional<int> st = check.wait_exit();
  ASSERT_TRUE(st && WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 0) << check.output();
  EXPECT_NE(check.output().find("listens on https://127.0.0.1:" + std::to_string(port)), std::string::npos)
      << check.output();
  EXPECT_NE(check.output().find("certificate " + pem + " (key in the same file) for localhost"), std::string::npos)
      << check.output();
  EXPECT_EQ(check.output().find("PRIVATE KEY"), std::string::npos);

  Process serve({PASTURE_BINARY, "serve", ini});
  st = serve.wait_exit();
  ASSERT_TRUE(st && WIFEXITED(*st));
  EXPECT_EQ(WEXITSTATUS(*st), 1);
  EXPECT_NE(serve.output().find(ini + ":5: TLS listeners are parsed and checked but not yet served (https://127.0.0.1:" +
                                std::to_string(port) + "); pasture refuses to start rather than serve them unencrypted"),
            std::string::npos)
      << serve.output();
  EXPECT_EQ(serve.output().find("serving on"), std::string::npos) << serve.output();
  EXPECT_FALSE(wait_for_port(port, Millis(200)));  // nothing was left listening
}

TEST(TlsRefusal, AReloadToTlsFailsAndTheOldConfigKeepsServing) {
  PastureServer srv("[app:main]\nuse = egg:pasture#echo\nname = plain\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  TempDir dir("pasture-tls");
  std::string pem = write_pem(dir);
  std::ifstream in(srv.path());
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string tmp = srv.path() + ".tmp";
  std::ofstream(tmp) << "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:" << srv.port()
                     << " tls\ntls_cert = " << pem << "\n" << all.substr(all.find("[app:"));
  ASSERT_EQ(rename(tmp.c_str(), srv.path().c_str()), 0);
  srv.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(srv.proc(), "reload failed", Millis(5000))) << srv.output();
  EXPECT_NE(srv.output().find("TLS listeners are parsed and checked but not yet served"), std::string::npos)
      << srv.output();
  Response r = http_get(srv.port(), "/");
  EXPECT_EQ(r.body, "plain GET /\n");
}

}  // namespace
}  // namespace pasture::test
