// conf/: TLS to upstream servers (issue 15, "Upstream TLS"): https:// in
// `servers =` lines, YAML server maps and Paste#proxy addresses; the pool's
// tls_* keys, their file:line errors, `pasture check` and the YAML round
// trip.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "conf/describe.h"
#include "conf/load.h"
#include "conf/site_pool.h"
#include "conf/yaml_writer.h"
#include "conf_test_util.h"
#include "tests/support/tls_certs.h"

namespace pasture::conf {
namespace {

const char* kServer = "[server:main]\nuse = egg:pasture#main\n";

class ConfUpstreamTls : public testing::SiteFixture {
 protected:
  ConfUpstreamTls() {
    ca_pem_ = dir_.write("ca.pem", ca_.cert_pem());
    test::TestCert c = ca_.client("pasture");
    client_crt_ = secret("client.crt", c.cert_pem);
    client_key_ = secret("client.key", c.key_pem);
    other_key_ = secret("other.key", ca_.client("other").key_pem);
  }
  std::string secret(const std::string& name, const std::string& text) {
    std::string p = dir_.write(name, text);
    chmod(p.c_str(), 0600);
    return p;
  }
  // A balancer [app:main] (its keys start at line 3) and the server section.
  std::string pool(const std::string& keys) {
    return "[app:main]\nuse = egg:pasture#balancer\n" + keys + kServer;
  }
  // Loads `ini`, converts it, loads the YAML: the same site.
  void expect_round_trip(const std::string& ini) {
    Site a = load(ini);
    std::string text = site_to_yaml(a);
    std::string path = dir_.write("converted.yaml", text);
    LoadOptions o;
    o.config = path;
    Site b = load_site(o);
    EXPECT_TRUE(same_site(a, b)) << text;
  }

  test::TestCa ca_;
  std::string ca_pem_, client_crt_, client_key_, other_key_;
};

TEST_F(ConfUpstreamTls, HttpsServersArePerServerWithPort443ByDefault) {
  Site s = load(pool("servers = https://api.example:8443 weight=2\n  http://10.0.0.2 https://10.0.0.3\n"
                     "  10.0.0.4:9000 https://[::1]:4443 backup\n"));
  const Pool& p = s.pools.at(0);
  ASSERT_EQ(p.servers.size(), 5u);
  EXPECT_TRUE(p.servers[0].tls);
  EXPECT_EQ(p.servers[0].host, "api.example");
  EXPECT_EQ(p.servers[0].port, 8443);
  EXPECT_EQ(p.servers[0].weight, 2u);
  EXPECT_FALSE(p.servers[1].tls);
  EXPECT_EQ(p.servers[1].port, 80);
  EXPECT_TRUE(p.servers[2].tls);
  EXPECT_EQ(p.servers[2].port, 443);
  EXPECT_FALSE(p.servers[3].tls);
  EXPECT_TRUE(p.servers[4].tls);
  EXPECT_EQ(p.servers[4].host, "::1");
  EXPECT_TRUE(p.servers[4].backup);
  EXPECT_TRUE(p.any_tls());
  // Defaults: verified against the system store, each server's own name.
  EXPECT_TRUE(p.tls.verify);
  EXPECT_EQ(p.tls.ca_certs, "");
  EXPECT_EQ(p.tls.server_name, "");
  // The servers line reads back the same.
  EXPECT_EQ(server_spec(p.servers[0]), "https://api.example:8443 weight=2");
  EXPECT_EQ(server_spec(p.servers[1]), "10.0.0.2:80");
  EXPECT_EQ(server_spec(p.servers[4]), "https://[::1]:4443 backup");
  EXPECT_EQ(parse_servers(server_spec(p.servers[4]), {}).at(0).tls, true);
}

TEST_F(ConfUpstreamTls, ServerErrors) {
  EXPECT_EQ(error(pool("servers = https://a.example/api\n")),
            "3: servers: 'https://a.example/api': a server is scheme://host:port, without a path or user");
  EXPECT_EQ(error(pool("servers = ftp://a.example:21\n")), "3: servers: 'ftp://a.example:21': the scheme must be "
                                                            "http:// or https://");
  EXPECT_EQ(error(pool("servers = https://a.example:0\n")), "3: servers: port 0 in 'https://a.example:0'");
  EXPECT_EQ(error(pool("servers = https://a:1 http://a:1\n")), "3: servers: duplicate server a:1");
}

TEST_F(ConfUpstreamTls, PoolKeys) {
  Site s = load(pool("servers = https://api.example\ntls_ca_certs = ca.pem\ntls_server_name = Internal.Example\n"
                     "tls_client_cert = client.crt\ntls_client_key = client.key\n"));
  const UpstreamTls& t = s.pools.at(0).tls;
  EXPECT_TRUE(t.verify);
  EXPECT_EQ(t.ca_certs, ca_pem_);  // relative to the config file's directory
  EXPECT_EQ(t.ca_loc.line, 4);
  EXPECT_EQ(t.server_name, "internal.example");
  EXPECT_EQ(t.client_cert, client_crt_);
  EXPECT_EQ(t.client_key, client_key_);
  EXPECT_FALSE(load(pool("servers = https://a:1\ntls_verify = off\n")).pools.at(0).tls.verify);
}

TEST_F(ConfUpstreamTls, PoolKeyErrorsAreFileAndLine) {
  // TLS settings but no https:// server: the operator would believe it encrypted.
  EXPECT_EQ(error(pool("servers = a:1\ntls_ca_certs = ca.pem\n")),
            "4: TLS settings in [app:main], but none of its servers is https:// (write https://host:port)");
  EXPECT_EQ(error(pool("servers = a:1\ntls_verify = off\n")),
            "4: TLS settings in [app:main], but none of its servers is https:// (write https://host:port)");
  EXPECT_EQ(error(pool("servers = https://a:1\ntls_verify = maybe\n")),
            "4: tls_verify: expected true or false, got 'maybe'");
  EXPECT_EQ(error(pool("servers = https://a:1\ntls_server_name = a/b\n")),
            "4: tls_server_name: expected a host name such as api.example.com, got 'a/b'");
  EXPECT_EQ(error(pool("servers = https://a:1\ntls_client_key = client.key\n")),
            "4: tls_client_key without tls_client_cert in [app:main]");
  // Files: checked at load time, at the line that named them.
  EXPECT_EQ(error(pool("servers = https://a:1\ntls_ca_certs = missing.pem\n")),
            "4: tls_ca_certs " + dir_.path() + "/missing.pem: No such file or directory");
  dir_.write("empty.pem", "not a certificate\n");
  EXPECT_EQ(error(pool("servers = https://a:1\ntls_ca_certs = empty.pem\n")),
            "4: tls_ca_certs " + dir_.path() + "/empty.pem: no PEM certificate in it");
  EXPECT_EQ(error(pool("servers = https://a:1\ntls_client_cert = client.crt\ntls_client_key = other.key\n")),
            "5: the private key in " + other_key_ + " does not match the certificate in " + client_crt_);
  chmod(client_key_.c_str(), 0644);
  EXPECT_EQ(error(pool("servers = https://a:1\ntls_client_cert = client.crt\ntls_client_key = client.key\n")),
            "5: private key " + client_key_ +
                " is readable by others (mode 0644): chmod 600 it, or 640 with a group such as ssl-cert");
}

TEST_F(ConfUpstreamTls, PasteProxyHttpsAddress) {
  Site s = load("[app:main]\nuse = egg:Paste#proxy\naddress = https://api.example/base/\ntls_ca_certs = ca.pem\n" +
                std::string(kServer));
  const Pool& p = s.pools.at(0);
  ASSERT_EQ(p.servers.size(), 1u);
  EXPECT_TRUE(p.servers[0].tls);
  EXPECT_EQ(p.servers[0].port, 443);
  EXPECT_EQ(p.base_path, "/base/");
  EXPECT_EQ(p.tls.ca_certs, ca_pem_);
  EXPECT_TRUE(s.notices.empty()) << s.notices.at(0);  // tls_ca_certs is not an ignored key
  EXPECT_NE(describe_site(s).find("proxy [app:main] to https://api.example:443/base/"), std::string::npos)
      << describe_site(s);
  EXPECT_EQ(error("[app:main]\nuse = egg:Paste#proxy\naddress = http://api.example/\ntls_verify = off\n" +
                  std::string(kServer)),
            "4: TLS settings in [app:main], but none of its servers is https:// (write https://host:port)");
}

TEST_F(ConfUpstreamTls, Yaml) {
  Site s = load_file("site.yaml",
                     "apps:\n  main:\n    use: balancer\n    servers:\n      - https://a.example:8443\n"
                     "      - {host: b.example, port: 443, tls: true, weight: 2}\n      - c.example:80\n"
                     "    tls_ca_certs: ca.pem\n    tls_server_name: internal.example\n"
                     "  p: {use: proxy, address: 'https://d.example', tls_verify: off}\n");
  const Pool& p = s.pools.at(0);
  EXPECT_TRUE(p.servers[0].tls);
  EXPECT_TRUE(p.servers[1].tls);
  EXPECT_EQ(p.servers[1].weight, 2u);
  EXPECT_FALSE(p.servers[2].tls);
  EXPECT_EQ(p.tls.ca_certs, ca_pem_);
  EXPECT_EQ(p.tls.server_name, "internal.example");
  EXPECT_EQ(error_in("site.yaml", "apps:\n  main:\n    use: balancer\n    servers: [a:1]\n    tls_ca_certs: ca.pem\n"),
            "site.yaml:5: TLS settings in [app:main], but none of its servers is https:// (write https://host:port)");
  EXPECT_EQ(error_in("site.yaml", "apps:\n  main: {use: proxy, address: 'https://x', tls_ca: a}\n"),
            "site.yaml:2: apps: main: unknown key 'tls_ca' for a proxy");
  EXPECT_EQ(error_in("site.yaml", "apps:\n  main:\n    use: balancer\n    servers:\n      - {unix: /a, tls: true}\n"),
            "site.yaml:5: server: tls is for host/port servers, not unix sockets");
  EXPECT_EQ(error_in("site.yaml", "apps:\n  main:\n    use: balancer\n    servers: [https://a:1]\n"
                                  "    tls_ca_certs: nothere.pem\n"),
            "site.yaml:5: tls_ca_certs " + dir_.path() + "/nothere.pem: No such file or directory");
}

TEST_F(ConfUpstreamTls, CheckTextAndRoundTrip) {
  std::string ini = "[composite:main]\nuse = egg:Paste#urlmap\n/ = pool\n/p = prox\n\n"
                    "[app:pool]\nuse = egg:pasture#balancer\nservers = https://a.example:8443 10.0.0.2:80\n"
                    "tls_ca_certs = ca.pem\ntls_server_name = internal.example\ntls_client_cert = client.crt\n"
                    "tls_client_key = client.key\n\n"
                    "[app:prox]\nuse = egg:Paste#proxy\naddress = https://127.0.0.1:9443/x\ntls_verify = off\n\n" +
                    std::string(kServer);
  Site s = load(ini);
  std::string text = describe_site(s);
  EXPECT_NE(text.find("https://a.example:8443\n"), std::string::npos) << text;
  EXPECT_NE(text.find("certificate verified against " + ca_pem_ + " and the name internal.example; SNI: "
                      "internal.example; client certificate " + client_crt_ + " (key in " + client_key_ + ")"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("certificates NOT verified (tls_verify = off, for testing only)"), std::string::npos) << text;
  std::string yaml = site_to_yaml(s);
  EXPECT_NE(yaml.find("- https://a.example:8443\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("tls_ca_certs: " + ca_pem_), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("address: https://127.0.0.1:9443/x\n    tls_verify: off\n"), std::string::npos) << yaml;
  expect_round_trip(ini);
  // Turning verification off or changing the CA is a different site.
  Site other = load(pool("servers = https://a.example:8443\n"));
  Site off = load(pool("servers = https://a.example:8443\ntls_verify = off\n"));
  EXPECT_FALSE(same_site(other, off));
}

}  // namespace
}  // namespace pasture::conf
