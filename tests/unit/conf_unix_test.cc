// Unix-domain sockets in the config: `servers = unix:/path`, `listen =
// unix:/path`, waitress's unix_socket / unix_socket_perms; INI and YAML, and
// their `check` / `convert` forms.
#include <gtest/gtest.h>

#include "conf/describe.h"
#include "conf/load.h"
#include "conf/yaml_writer.h"
#include "conf_test_util.h"

namespace pasture::conf {
namespace {

class ConfUnix : public testing::SiteFixture {
 protected:
  Site load(const std::string& name, const std::string& text) { return load_file(name, text); }
  // "basename:line: message", or "no error".
  std::string error(const std::string& name, const std::string& text) { return error_in(name, text); }
};

const char* kEcho = "[app:main]\nuse = egg:pasture#echo\n";
const char* kServer = "[server:main]\nuse = egg:pasture#main\n";

TEST_F(ConfUnix, BalancerServersMixUnixAndTcp) {
  Site s = load("site.ini",
                std::string("[app:main]\nuse = egg:pasture#balancer\n"
                            "servers = unix:/run/app.sock weight=2 backup\n  127.0.0.1:8001\n") + kServer);
  ASSERT_EQ(s.pools.size(), 1u);
  const auto& sv = s.pools[0].servers;
  ASSERT_EQ(sv.size(), 2u);
  EXPECT_EQ(sv[0].unix_path, "/run/app.sock");
  EXPECT_EQ(sv[0].host, "");
  EXPECT_EQ(sv[0].weight, 2u);
  EXPECT_TRUE(sv[0].backup);
  EXPECT_EQ(sv[0].label(), "unix:/run/app.sock");
  EXPECT_EQ(sv[1].unix_path, "");
  EXPECT_EQ(sv[1].label(), "127.0.0.1:8001");
  EXPECT_EQ(server_spec(sv[0]), "unix:/run/app.sock weight=2 backup");
  std::string d = describe_site(s, 0);
  EXPECT_NE(d.find("    unix:/run/app.sock weight=2 backup\n"), std::string::npos) << d;
}

TEST_F(ConfUnix, BadUnixServers) {
  const std::string head = "[app:main]\nuse = egg:pasture#balancer\nservers = ";
  EXPECT_EQ(error("site.ini", head + "unix:run/app.sock\n" + kServer),
            "site.ini:3: servers: unix socket path must be absolute, got 'run/app.sock'");
  EXPECT_EQ(error("site.ini", head + "unix:\n" + kServer), "site.ini:3: servers: empty unix socket path");
  EXPECT_EQ(error("site.ini", head + "unix:/" + std::string(120, 'a') + "\n" + kServer),
            "site.ini:3: servers: unix socket path longer than 107 bytes: /" + std::string(120, 'a'));
  EXPECT_EQ(error("site.ini", head + "unix:/a.sock unix:/a.sock\n" + kServer),
            "site.ini:3: servers: duplicate server unix:/a.sock");
}

TEST_F(ConfUnix, ListenTokensMixUnixAndTcp) {
  Site s = load("site.ini", std::string(kEcho) +
                                "[server:main]\nuse = egg:pasture#main\nlisten = unix:/run/site.sock 127.0.0.1:81\n");
  ASSERT_EQ(s.server.listen.size(), 2u);
  EXPECT_EQ(s.server.listen[0].unix_path, "/run/site.sock");
  EXPECT_EQ(s.server.listen[0].unix_perms, 0666u);  // nginx's mode for `listen unix:`
  EXPECT_EQ(s.server.listen[0].url(), "unix:/run/site.sock");
  EXPECT_EQ(s.server.listen[1].url(), "http://127.0.0.1:81");
  std::string d = describe_site(s, 0);
  EXPECT_NE(d.find("  listens on unix:/run/site.sock (mode 0666)\n  listens on http://127.0.0.1:81\n"),
            std::string::npos)
      << d;
  // gunicorn spells it the same way in bind.
  s = load("site.ini", std::string(kEcho) + "[server:main]\nuse = egg:gunicorn#main\nbind = unix:/run/g.sock\n");
  ASSERT_EQ(s.server.listen.size(), 1u);
  EXPECT_EQ(s.server.listen[0].unix_path, "/run/g.sock");
}

TEST_F(ConfUnix, WaitressUnixSocketAndPerms) {
  Site s = load("site.ini", std::string(kEcho) + "[server:main]\nuse = egg:waitress#main\nunix_socket = /run/w.sock\n");
  ASSERT_EQ(s.server.listen.size(), 1u);
  EXPECT_EQ(s.server.listen[0].unix_path, "/run/w.sock");
  EXPECT_EQ(s.server.listen[0].unix_perms, 0600u);  // waitress's default
  EXPECT_TRUE(s.notices.empty());
  s = load("site.ini", std::string(kEcho) +
                           "[server:main]\nuse = egg:waitress#main\nunix_socket = /run/w.sock\nunix_socket_perms = 660\n");
  EXPECT_EQ(s.server.listen[0].unix_perms, 0660u);
  s = load("site.ini", std::string(kEcho) +
                           "[server:main]\nuse = egg:pasture#main\nlisten = unix:/a unix:/b\nunix_socket_perms = 0o640\n");
  EXPECT_EQ(s.server.listen[0].unix_perms, 0640u);
  EXPECT_EQ(s.server.listen[1].unix_perms, 0640u);
}

TEST_F(ConfUnix, WaitressUnixSocketConflictsAsWaitressSays) {
  const std::string head = std::string(kEcho) + "[server:main]\nuse = egg:waitress#main\n";
  EXPECT_EQ(error("site.ini", head + "host = 127.0.0.1\nunix_socket = /run/w.sock\n"),
            "site.ini:6: unix_socket may not be set if host or port is set");
  EXPECT_EQ(error("site.ini", head + "listen = *:80\nunix_socket = /run/w.sock\n"),
            "site.ini:6: unix_socket may not be set if listen is set");
  EXPECT_EQ(error("site.ini", head + "unix_socket = /run/w.sock\nunix_socket_perms = 8\n"),
            "site.ini:6: unix_socket_perms: expected octal permissions like 600 or 0660, got '8'");
  EXPECT_EQ(error("site.ini", head + "unix_socket = relative.sock\n"),
            "site.ini:5: unix_socket: unix socket path must be absolute, got 'relative.sock'");
}

TEST_F(ConfUnix, YamlServersListenAndUnixSocket) {
  Site s = load("site.yaml",
                "server:\n  listen: [\"unix:/run/y.sock\", \"127.0.0.1:9\"]\n  unix_socket_perms: \"0660\"\n"
                "apps:\n  main:\n    use: balancer\n    servers:\n      - unix:/run/a.sock weight=3\n"
                "      - {unix: /run/b.sock, backup: true}\n      - 127.0.0.1:8001\n");
  ASSERT_EQ(s.server.listen.size(), 2u);
  EXPECT_EQ(s.server.listen[0].unix_path, "/run/y.sock");
  EXPECT_EQ(s.server.listen[0].unix_perms, 0660u);
  const auto& sv = s.pools.at(0).servers;
  ASSERT_EQ(sv.size(), 3u);
  EXPECT_EQ(server_spec(sv[0]), "unix:/run/a.sock weight=3");
  EXPECT_EQ(server_spec(sv[1]), "unix:/run/b.sock backup");
  EXPECT_EQ(server_spec(sv[2]), "127.0.0.1:8001");

  s = load("site.yaml", "server:\n  use: egg:waitress#main\n  unix_socket: /run/w.sock\napps: {main: {use: echo}}\n");
  ASSERT_EQ(s.server.listen.size(), 1u);
  EXPECT_EQ(s.server.listen[0].unix_perms, 0600u);

  EXPECT_EQ(error("site.yaml", "server:\n  port: 80\n  unix_socket: /run/w.sock\napps: {main: {use: echo}}\n"),
            "site.yaml:3: server: unix_socket may not be set if host or port is set");
  EXPECT_EQ(error("site.yaml", "apps:\n  main:\n    use: balancer\n    servers:\n"
                               "      - {unix: /run/b.sock, port: 80}\n"),
            "site.yaml:5: server: unix cannot be combined with host/port");
  EXPECT_EQ(error("site.yaml", "server:\n  listen: [\"unix:x\"]\napps: {main: {use: echo}}\n"),
            "site.yaml:2: server: listen: unix socket path must be absolute, got 'x'");
}

// `pasture convert` output loads back to the same site.
TEST_F(ConfUnix, ConvertRoundTrips) {
  Site ini = load("site.ini",
                  "[server:main]\nuse = egg:waitress#main\nunix_socket = /run/w.sock\n"
                  "[app:main]\nuse = egg:pasture#balancer\nservers = unix:/run/a.sock 127.0.0.1:8001 weight=2\n");
  std::string y = site_to_yaml(ini);
  EXPECT_NE(y.find("    - unix:/run/w.sock\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  unix_socket_perms: \"0600\"\n"), std::string::npos) << y;
  Site back = load("site.yaml", y);
  EXPECT_EQ(back.server.listen.at(0).unix_path, "/run/w.sock");
  EXPECT_EQ(back.server.listen.at(0).unix_perms, 0600u);
  EXPECT_EQ(server_spec(back.pools.at(0).servers.at(0)), "unix:/run/a.sock");
  EXPECT_EQ(server_spec(back.pools.at(0).servers.at(1)), "127.0.0.1:8001 weight=2");
}

}  // namespace
}  // namespace pasture::conf
