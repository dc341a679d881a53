// conf/site_tls + tls_check: the TLS keys of the three server forms (INI
// and YAML), their file:line errors, `pasture check` and the YAML round trip.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "conf/describe.h"
#include "conf/load.h"
#include "conf/yaml_writer.h"
#include "conf_test_util.h"
#include "tests/support/tls_certs.h"

namespace pasture::conf {
namespace {

const char* kEcho = "[app:main]\nuse = egg:pasture#echo\n";

class ConfTls : public testing::SiteFixture {
 protected:
  ConfTls() {
    test::TestCert a = ca_.server({"a.example", "www.a.example"}), b = ca_.server({"b.example"});
    a_crt_ = key_file("a.crt", a.cert_pem);
    a_key_ = key_file("a.key", a.key_pem);
    b_crt_ = key_file("b.crt", b.cert_pem);
    b_key_ = key_file("b.key", b.key_pem);
    a_pem_ = key_file("a.pem", a.cert_pem + a.key_pem);
    ca_pem_ = dir_.write("ca.pem", ca_.cert_pem());
  }
  std::string key_file(const std::string& name, const std::string& text, mode_t mode = 0600) {
    std::string p = dir_.write(name, text);
    chmod(p.c_str(), mode);
    return p;
  }
  std::string server(const std::string& use, const std::string& keys) {
    return std::string(kEcho) + "[server:main]\nuse = " + use + "\n" + keys;
  }
  std::string check_text(const Site& s) { return describe_site(s); }

  test::TestCa ca_;
  std::string a_crt_, a_key_, b_crt_, b_key_, a_pem_, ca_pem_;
};

TEST_F(ConfTls, PasteSslPemIsOneFileAndListensOn4443) {
  Site s = load(server("egg:Paste#http", "ssl_pem = " + a_pem_ + "\n"));
  ASSERT_EQ(s.server.listen.size(), 1u);
  EXPECT_EQ(s.server.listen[0].url(), "https://127.0.0.1:4443");
  ASSERT_EQ(s.server.tls.certs.size(), 1u);
  EXPECT_EQ(s.server.tls.certs[0].key_file, a_pem_);
  EXPECT_EQ(s.server.tls.certs[0].names, (std::vector<std::string>{"a.example", "www.a.example"}));
  EXPECT_EQ(load(server("egg:Paste#http", "port = 8443\nssl_pem = " + a_pem_ + "\n")).server.listen[0].url(),
            "https://127.0.0.1:8443");
  // Relative to the config file's directory.
  EXPECT_EQ(load(server("egg:Paste#http", "ssl_pem = a.pem\n")).server.tls.certs[0].cert_file, a_pem_);
  // `*`: made at start, for development; a notice says so.
  s = load(server("egg:Paste#http", "ssl_pem = *\n"));
  EXPECT_TRUE(s.server.tls.self_signed);
  EXPECT_EQ(s.server.listen[0].url(), "https://127.0.0.1:4443");
  EXPECT_NE(check_text(s).find("self-signed for localhost, made at start (ssl_pem = *; development only)"),
            std::string::npos);
  // Empty: nothing asked for, plain HTTP on 8080 as before.
  EXPECT_EQ(load(server("egg:Paste#http", "ssl_pem =\n")).server.listen[0].url(), "http://127.0.0.1:8080");
}

TEST_F(ConfTls, GunicornCertfileKeyfileAndClientCertificates) {
  Site s = load(server("egg:gunicorn#main", "bind = 0.0.0.0:8443,127.0.0.1:9443\ncertfile = " + a_crt_ +
                                                "\nkeyfile = " + a_key_ + "\nca_certs = " + ca_pem_ +
                                                "\ncert_reqs = 2\nciphers = ECDHE-ECDSA-AES256-GCM-SHA384\n"));
  ASSERT_EQ(s.server.listen.size(), 2u);
  EXPECT_TRUE(s.server.listen[0].tls && s.server.listen[1].tls);  // certfile: every bind
  EXPECT_EQ(s.server.tls.certs[0].cert_file, a_crt_);
  EXPECT_EQ(s.server.tls.certs[0].key_file, a_key_);
  EXPECT_EQ(s.server.tls.client_certs, ClientCerts::Required);
  EXPECT_EQ(s.server.tls.ca_certs, ca_pem_);
  EXPECT_EQ(s.server.tls.ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384");
  EXPECT_EQ(load(server("egg:gunicorn#main", "certfile = " + a_pem_ + "\ncert_reqs = 1\nca_certs = ca.pem\n"))
                .server.tls.client_certs,
            ClientCerts::Optional);
}

TEST_F(ConfTls, PastureListenersSniCertificatesOcspAndSubjectHeader) {
  std::string ocsp = dir_.write("a.ocsp", ca_.ocsp_der());
  Site s = load(server("egg:pasture#main", "listen = 0.0.0.0:8443 tls 127.0.0.1:8080\ntls_cert = a.crt b.crt\n"
                                           "tls_key = a.key b.key\ntls_ocsp = a.ocsp a.ocsp\nca_certs = ca.pem\n"
                                           "cert_reqs = required\ntls_client_subject_header = X-Client-Subject\n"));
  ASSERT_EQ(s.server.listen.size(), 2u);
  EXPECT_EQ(s.server.listen[0].url(), "https://0.0.0.0:8443");
  EXPECT_EQ(s.server.listen[1].url(), "http://127.0.0.1:8080");
  ASSERT_EQ(s.server.tls.certs.size(), 2u);
  EXPECT_EQ(s.server.tls.certs[1].key_file, b_key_);
  EXPECT_EQ(s.server.tls.certs[1].names, std::vector<std::string>{"b.example"});
  EXPECT_EQ(s.server.tls.certs[0].ocsp_file, ocsp);
  EXPECT_EQ(s.server.tls.client_subject_header, "X-Client-Subject");
  std::string text = check_text(s);
  for (const std::string& want : std::vector<std::string>{
           "listens on https://0.0.0.0:8443\n", "listens on http://127.0.0.1:8080\n",
        "certificate " + a_crt_ + " (key " + a_key_ + ") for a.example, www.a.example (default when SNI matches none)\n",
        "certificate " + b_crt_ + " (key " + b_key_ + ") for b.example\n",
        "      OCSP response stapled from " + ocsp + "\n",
        "client certificates required, verified against " + ca_pem_ +
            "; the verified subject goes upstream in X-Client-Subject\n"})
    EXPECT_NE(text.find(want), std::string::npos) << want << "\nin:\n" << text;
  // TLS is served: nothing says otherwise (found by review: a stale line did).
  EXPECT_EQ(text.find("not served"), std::string::npos) << text;
  // No key material in what check prints.
  EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos);
}

TEST_F(ConfTls, FileErrorsNameTheLine) {
  std::string other_key = key_file("other.key", test::TestCa("x").server({"x"}).key_pem);
  std::string loose = key_file("loose.key", test::TestCa("y").server({"y"}).key_pem, 0644);
  key_file("group.key", testing::slurp(a_key_), 0640);
  key_file("groupw.key", testing::slurp(a_key_), 0660);
  key_file("notcert.pem", "hello\n");
  std::string g = "egg:pasture#main";
  EXPECT_EQ(error(server(g, "tls_cert = missing.pem\n")),
            "5: certificate " + dir_.path() + "/missing.pem: No such file or directory");
  EXPECT_EQ(error(server(g, "tls_cert = notcert.pem\ntls_key = a.key\n")),
            "5: " + dir_.path() + "/notcert.pem: not a PEM certificate (no start line)");
  EXPECT_EQ(error(server(g, "tls_cert = a.crt\n")),
            "5: " + a_crt_ + ": no PEM private key in it (the certificate's key must follow it in the same file, "
                             "or be named by keyfile / tls_key)");
  key_file("enc.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n");
  EXPECT_EQ(error(server(g, "tls_cert = a.crt\ntls_key = enc.key\n")),
            "6: " + dir_.path() + "/enc.key: the private key is encrypted with a passphrase; pasture reads keys "
                                  "without one (openssl pkey -in KEY -out KEY.plain)");
  EXPECT_EQ(error(server(g, "tls_cert = a.crt\ntls_key = other.key\n")),
            "6: the private key in " + other_key + " does not match the certificate in " + a_crt_);
  EXPECT_EQ(error(server(g, "tls_cert = a.crt\n\ntls_key = loose.key\n")),
            "7: private key " + loose +
                " is readable by others (mode 0644): chmod 600 it, or 640 with a group such as ssl-cert");
  EXPECT_NE(error(server(g, "tls_cert = a.crt\ntls_key = groupw.key\n")).find("writable by others than its owner (mode 0660)"),
            std::string::npos);
  EXPECT_EQ(load(server(g, "tls_cert = a.crt\ntls_key = group.key\n")).server.tls.certs.size(), 1u);  // 0640 is fine
  EXPECT_EQ(error(server(g, "tls_cert = a.crt b.crt\ntls_key = a.key\n")),
            "6: tls_key: 1 keys for 2 certificates in tls_cert (one key per certificate, in the same order)");
  EXPECT_EQ(error(server(g, "tls_cert = a.crt\ntls_key = a.key\ntls_ocsp = a.crt\n")),
            "7: " + a_crt_ + ": not a DER OCSP response");
  EXPECT_EQ(error(server(g, "tls_cert = a.pem\nca_certs = a.key\ncert_reqs = 2\n")),
            "6: ca_certs " + a_key_ + ": no PEM certificate in it");
}

TEST_F(ConfTls, CombinationErrors) {
  std::string g = "egg:pasture#main";
  EXPECT_EQ(error(server(g, "listen = 0.0.0.0:443 tls\n")),
            "5: listen https://0.0.0.0:443: a TLS listener needs a certificate (tls_cert = FILE)");
  EXPECT_EQ(error(server(g, "listen = tls 0.0.0.0:443\ntls_cert = a.pem\n")),
            "5: listen: 'tls' follows the address it applies to (0.0.0.0:443 tls)");
  EXPECT_EQ(error(server(g, "ssl_pem = a.pem\ntls_cert = a.crt\n")),
            "6: ssl_pem, certfile and tls_cert name the certificate each; give one of them");
  EXPECT_EQ(error(server("egg:gunicorn#main", "keyfile = a.key\n")), "5: keyfile without certfile");
  EXPECT_EQ(error(server(g, "cert_reqs = 2\n")), "5: cert_reqs: TLS is not on (no ssl_pem, certfile or tls_cert in this server)");
  EXPECT_EQ(error(server(g, "tls_cert = a.pem\ncert_reqs = 2\n")),
            "6: cert_reqs: client certificates need ca_certs (the CAs they must chain to)");
  EXPECT_EQ(error(server(g, "tls_cert = a.pem\ncert_reqs = 3\n")),
            "6: cert_reqs: expected 0, 1 or 2 (none, optional, required; ssl.CERT_*), got '3'");
  EXPECT_EQ(error(server(g, "tls_cert = a.pem\nciphers = AES128-GCM-SHA256\n")),
            "6: ciphers: 'AES128-GCM-SHA256' has no forward secrecy (pasture takes ECDHE suites only)");
  EXPECT_EQ(error(server(g, "tls_cert = a.pem\nciphers = NOPE\n")),
            "6: ciphers: OpenSSL selects no TLS 1.2 cipher from 'NOPE'");
  EXPECT_EQ(error(server(g, "tls_cert = a.pem\ntls_client_subject_header = X-Subject\n")),
            "6: tls_client_subject_header: no client certificate is asked for (cert_reqs = 1 or 2)");
  EXPECT_EQ(error(server(g, "tls_cert = a.pem\nca_certs = ca.pem\ncert_reqs = 1\ntls_client_subject_header = X: y\n")),
            "8: tls_client_subject_header: expected a header name such as X-Client-Subject, got 'X: y'");
  // A TLS key the server form does not take is an error, never a plain port.
  EXPECT_EQ(error(server("egg:waitress#main", "ssl_pem = a.pem\n")),
            "5: ssl_pem: not a TLS setting of this server (this server has no TLS; egg:pasture#main takes all of "
            "them and tls_cert / tls_key)");
  EXPECT_EQ(error(server("egg:Paste#http", "certfile = a.pem\n")),
            "5: certfile: not a TLS setting of this server (egg:Paste#http takes ssl_pem; egg:pasture#main takes "
            "all of them and tls_cert / tls_key)");
  EXPECT_EQ(error(server("egg:gunicorn#main", "CERTFILE = /etc/x.pem\ntls_cert = a.pem\n")).substr(0, 3), "6: ");
}

TEST_F(ConfTls, YamlFormAndRoundTrip) {
  std::string yaml = "server:\n  listen:\n    - 0.0.0.0:8443 tls\n    - 127.0.0.1:8080\n  tls_cert:\n    - a.crt\n"
                     "    - b.crt\n  tls_key: [a.key, b.key]\n  ca_certs: ca.pem\n  cert_reqs: optional\n"
                     "  tls_client_subject_header: X-Client-Subject\napps:\n  main: {use: echo}\n";
  Site y = load_file("site.yaml", yaml);
  ASSERT_EQ(y.server.tls.certs.size(), 2u);
  EXPECT_TRUE(y.server.listen[0].tls);
  EXPECT_FALSE(y.server.listen[1].tls);
  EXPECT_EQ(y.server.tls.certs[1].key_file, b_key_);
  EXPECT_EQ(y.server.tls.client_certs, ClientCerts::Optional);
  EXPECT_EQ(error_in("bad.yaml", "server:\n  tls_key: a.key\napps:\n  main: {use: echo}\n"),
            "bad.yaml:2: tls_key without tls_cert");
  // INI -> YAML -> Site serves the same, in every form; the YAML names files, never key bytes.
  const std::string configs[] = {
      server("egg:Paste#http", "ssl_pem = a.pem\n"),
      server("egg:Paste#http", "ssl_pem = *\n"),
      server("egg:gunicorn#main", "bind = 0.0.0.0:8443,127.0.0.1:9443\ncertfile = a.crt\nkeyfile = a.key\n"
                                  "ca_certs = ca.pem\ncert_reqs = 2\nciphers = ECDHE-ECDSA-AES256-GCM-SHA384\n"),
      server("egg:pasture#main", "listen = 0.0.0.0:8443 tls 127.0.0.1:8080 unix:/tmp/x.sock tls\n"
                                 "tls_cert = a.crt b.crt\ntls_key = a.key b.key\n"),
  };
  for (const std::string& ini : configs) {
    Site a = load(ini);
    std::string text = site_to_yaml(a);
    EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos);
    Site b = load_file("round.yaml", text);
    EXPECT_TRUE(same_site(a, b)) << ini << "\n---\n" << text;
  }
}

}  // namespace
}  // namespace pasture::conf
