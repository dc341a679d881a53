// conf/load + site_builder: paste.deploy INI -> Site.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "conf/describe.h"
#include "conf/load.h"
#include "conf/site_pool.h"
#include "conf_test_util.h"

namespace pasture::conf {
namespace {

class ConfSite : public testing::SiteFixture {};

const char* kEcho = "[app:main]\nuse = egg:pasture#echo\n";

TEST_F(ConfSite, ServerDefaultsPerFlavour) {
  Site s = load(std::string(kEcho) + "[server:main]\nuse = egg:Paste#http\n");
  ASSERT_EQ(s.server.listen.size(), 1u);
  EXPECT_EQ(s.server.listen[0].url(), "http://127.0.0.1:8080");
  EXPECT_EQ(s.server.use, "egg:Paste#http");
  s = load(std::string(kEcho) + "[server:main]\nuse = egg:waitress#main\nport = 6543\nworkers = 3\nbacklog = 64\n");
  EXPECT_EQ(s.server.listen[0].url(), "http://0.0.0.0:6543");
  EXPECT_EQ(s.server.workers, 3);
  EXPECT_EQ(s.server.backlog, 64u);
  s = load(std::string(kEcho) + "[server:main]\nuse = egg:Paste#http\nhost = 0.0.0.0:9000\n");
  EXPECT_EQ(s.server.listen[0].url(), "http://0.0.0.0:9000");
}

TEST_F(ConfSite, WaitressListenAndGunicornBind) {
  Site s = load(std::string(kEcho) + "[server:main]\nuse = egg:waitress#main\nlisten = *:6543 [::1]:80\n  127.0.0.1:81\n");
  ASSERT_EQ(s.server.listen.size(), 3u);
  EXPECT_EQ(s.server.listen[0].url(), "http://0.0.0.0:6543");
  EXPECT_EQ(s.server.listen[1].url(), "http://[::1]:80");
  EXPECT_EQ(s.server.listen[2].loc.line, 5);
  s = load(std::string(kEcho) + "[server:main]\nuse = egg:gunicorn#main\nbind = 127.0.0.1:8000,127.0.0.1:8001\n");
  EXPECT_EQ(s.server.listen.size(), 2u);
  EXPECT_EQ(error(std::string(kEcho) + "[server:main]\nuse = egg:waitress#main\nlisten = *:1\nport = 2\n"),
            "6: host/port cannot be combined with 'listen =' in [server:main]");
}

TEST_F(ConfSite, BodyAndConnectionLimitsInEveryFlavour) {
  Site s = load(std::string(kEcho) + "[server:main]\nuse = egg:pasture#main\nclient_max_body_size = 10m\n"
                                     "max_connections = 500\n");
  EXPECT_EQ(s.server.max_body_bytes, 10u << 20);
  EXPECT_EQ(s.server.max_connections, 500u);
  EXPECT_EQ(load(std::string(kEcho) + "[server:main]\nuse = egg:pasture#main\nclient_max_body_size = 512K\n")
                .server.max_body_bytes,
            512u << 10);
  EXPECT_EQ(load(std::string(kEcho) + "[server:main]\nuse = egg:pasture#main\n").server.max_body_bytes, 0u);
  s = load(std::string(kEcho) + "[server:main]\nuse = egg:waitress#main\nmax_request_body_size = 1000\n"
                                "connection_limit = 7\nmax_request_header_size = 9000\n");
  EXPECT_EQ(s.server.max_body_bytes, 1000u);
  EXPECT_EQ(s.server.max_connections, 7u);
  EXPECT_EQ(s.server.max_header_bytes, 9000u);
  s = load(std::string(kEcho) + "[server:main]\nuse = egg:gunicorn#main\nworker_connections = 9\n"
                                "limit_request_line = 100\n");
  EXPECT_EQ(s.server.max_connections, 9u);
  EXPECT_EQ(s.server.max_url_bytes, 100u);
  EXPECT_EQ(error(std::string(kEcho) + "[server:main]\nuse = egg:pasture#main\nclient_max_body_size = 10x\n"),
            "5: client_max_body_size: expected a size in bytes (e.g. 1048576, 512k, 10m, 1g), got '10x'");
  EXPECT_EQ(error(std::string(kEcho) + "[server:main]\nuse = egg:gunicorn#main\nworker_connections = 0\n"),
            "5: worker_connections: must be at least 1");
}

TEST_F(ConfSite, AKeyThatAsksForTlsIsAnErrorNotPlainHttp) {
  // The files are checked (tests/unit/conf_tls_test.cc); `pasture serve`
  // refuses TLS until the transport is wired in (master/master_tls.cc).
  EXPECT_EQ(error(std::string(kEcho) + "[server:main]\nuse = egg:Paste#http\nssl_pem = /etc/x.pem\n"),
            "5: certificate /etc/x.pem: No such file or directory");
  EXPECT_NE(error(std::string(kEcho) + "[server:main]\nuse = egg:gunicorn#main\ncertfile = /etc/c.pem\n"), "no error");
  EXPECT_NE(error(std::string(kEcho) + "[server:main]\nuse = egg:pasture#main\ntls_cert = /etc/c.pem\n"), "no error");
  // Empty: nothing asked for.
  EXPECT_EQ(load(std::string(kEcho) + "[server:main]\nuse = egg:Paste#http\nssl_pem =\n").server.listen.size(), 1u);
}

TEST_F(ConfSite, AnIpv4MappedRangeIsAnIpv4Range) {
  auto r = parse_address_ranges(py::Value{"::ffff:192.0.2.0/120 ::ffff:10.1.2.3 ::1", SourceLoc{}}, "allow");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].family, AF_INET);
  EXPECT_EQ(r[0].prefix, 24);
  EXPECT_EQ(r[0].addr[0], 192);
  EXPECT_EQ(r[0].addr[2], 2);
  EXPECT_EQ(r[1].family, AF_INET);
  EXPECT_EQ(r[1].prefix, 32);
  EXPECT_EQ(r[2].family, AF_INET6);
}

TEST_F(ConfSite, StatusHostsAreNamesOnly) {
  auto h = parse_status_hosts(py::Value{"Status.Example.com, admin-1.internal *", SourceLoc{"s.ini", 7}});
  EXPECT_EQ(h, (std::vector<std::string>{"status.example.com", "admin-1.internal", "*"}));
  for (const char* bad : {"status.example.com:80", "http://x", "x/y", "a*"}) {
    try {
      parse_status_hosts(py::Value{bad, SourceLoc{"s.ini", 7}});
      ADD_FAILURE() << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("s.ini:7"), std::string::npos) << e.what();
    }
  }
}

TEST_F(ConfSite, UnknownServerKeysBecomeNotices) {
  Site s = load(std::string(kEcho) + "[server:main]\nuse = egg:waitress#main\nchannel_timeout = 120\n");
  ASSERT_EQ(s.notices.size(), 1u);
  EXPECT_EQ(s.notices[0], file_ + ":5: [server:main] key 'channel_timeout' does not apply to pasture; ignored");
}

// Via and TRACE (RFC 9110 7.6.3, 9.3.8): on and off by default.
TEST_F(ConfSite, ViaAndTraceSettings) {
  std::string srv = std::string(kEcho) + "[server:main]\nuse = egg:pasture#main\n";
  Site s = load(srv);
  EXPECT_EQ(s.server.via, "pasture");
  EXPECT_FALSE(s.server.trace);
  s = load(srv + "via = OFF\ntrace = on\n");
  EXPECT_EQ(s.server.via, "");
  EXPECT_TRUE(s.server.trace);
  EXPECT_EQ(load(srv + "via = yes\n").server.via, "pasture");
  EXPECT_EQ(load(srv + "via = edge-1.example:8443\n").server.via, "edge-1.example:8443");
  EXPECT_EQ(error(srv + "via = two words\n"),
            "5: via: expected on, off or a name (a token or host:port), got 'two words'");
  EXPECT_EQ(error(srv + "via = a,b\n"),
            "5: via: expected on, off or a name (a token or host:port), got 'a,b'");
  EXPECT_EQ(error(srv + "trace = sometimes\n"), "5: trace: expected true or false, got 'sometimes'");
}

TEST_F(ConfSite, FragmentSelectsAppAndServer) {
  std::string text = "[app:x]\nuse = egg:pasture#echo\n[server:x]\nuse = egg:pasture#main\nport = 1\n"
                     "[server:main]\nuse = egg:pasture#main\nport = 2\n";
  Site s = load(text, {dir_.path() + "/site.ini#x", "", "", {}, ""});
  EXPECT_EQ(s.app_name, "x");
  EXPECT_EQ(s.server.listen[0].port, 1);
  EXPECT_EQ(s.handlers[s.root].echo_name, "x");
  s = load(text, {"site.ini#x", "", "main", {}, dir_.path()});
  EXPECT_EQ(s.server.listen[0].port, 2);
}

TEST_F(ConfSite, VarsFillGlobalConfOnly) {
  Site s = load("[DEFAULT]\nport = 1\n[server:main]\nuse = egg:pasture#main\nport = %(port)s\nhost = %(h)s\n" +
                    std::string(kEcho),
                {"", "", "", {{"port", "9"}, {"h", "127.0.0.2"}}, ""});
  // `port` is a DEFAULT key: dropped from local_conf, so the default 8080 applies.
  EXPECT_EQ(s.server.listen[0].url(), "http://127.0.0.2:8080");
}

TEST_F(ConfSite, UrlMapNormalisedSortedAndDeduplicated) {
  Site s = load(
      "[composite:main]\nuse = egg:Paste#urlmap\n/ = a\n/api/ = b\n/api//v2/ = a\n"
      "domain b.example port 8080 /x = b\ndomain a.example / = a\n/api = a\nnot_found_app = b\n"
      "[app:a]\nuse = egg:pasture#echo\n[app:b]\nuse = egg:pasture#echo\nname = bee\n"
      "[server:main]\nuse = egg:pasture#main\n");
  const Handler& root = s.handlers[s.root];
  ASSERT_EQ(root.kind, HandlerKind::UrlMap);
  std::vector<std::string> got;
  for (const auto& e : root.entries) got.push_back(e.domain + "|" + e.path + "=" + s.handlers[e.handler].echo_name);
  EXPECT_EQ(got, (std::vector<std::string>{"a.example|=a", "b.example:8080|/x=bee", "|/api/v2=a", "|/api=a", "|=a"}));
  EXPECT_EQ(s.handlers.size(), 3u);  // a and b are shared
  EXPECT_EQ(s.handlers[root.not_found].echo_name, "bee");
  EXPECT_EQ(error("[composite:main]\nuse = egg:Paste#urlmap\nfoo = a\n[app:a]\nuse = egg:pasture#echo\n"
                  "[server:main]\nuse = egg:pasture#main\n"),
            "3: urlmap key 'foo' in [composite:main]: AssertionError: URL fragments must start with / or http:// "
            "(you gave 'foo')");
}

TEST_F(ConfSite, PasteProxyIsAPoolOfOne) {
  Site s = load("[app:main]\nuse = egg:Paste#proxy\naddress = http://10.0.0.1:8081/base/\n"
                "[server:main]\nuse = egg:Paste#http\n");
  ASSERT_EQ(s.pools.size(), 1u);
  EXPECT_EQ(s.pools[0].servers[0].label(), "10.0.0.1:8081");
  EXPECT_EQ(s.pools[0].base_path, "/base/");
  EXPECT_FALSE(s.pools[0].preserve_host);
  EXPECT_EQ(s.handlers[s.root].pool, 0);
  EXPECT_EQ(error("[app:main]\nuse = egg:Paste#proxy\naddress = ftp://x/\n[server:main]\nuse = egg:Paste#http\n"),
            "3: address must be an http:// or https:// URL, got 'ftp://x/'");
}

TEST_F(ConfSite, BalancerApp) {
  Site s = load(
      "[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:9001 weight=3 max_conns=10\n"
      "  [::1]:9002 backup\n  backend:9003 down\nmethod = least_conn\nconnect_timeout = 250ms\n"
      "read_timeout = 1.5\nsend_timeout = 2m\nkeepalive = 8\n[server:main]\nuse = egg:pasture#main\n");
  const Pool& p = s.pools.at(0);
  EXPECT_EQ(p.name, "app:main");
  ASSERT_EQ(p.servers.size(), 3u);
  EXPECT_EQ(p.servers[0].weight, 3u);
  EXPECT_EQ(p.servers[0].max_conns, 10u);
  EXPECT_EQ(p.servers[1].host, "::1");
  EXPECT_TRUE(p.servers[1].backup);
  EXPECT_TRUE(p.servers[2].down);
  EXPECT_EQ(p.servers[2].loc.line, 3);
  EXPECT_EQ(p.method, BalanceMethod::LeastConn);
  EXPECT_EQ(p.connect_timeout_ms, 250u);
  EXPECT_EQ(p.read_timeout_ms, 1500u);
  EXPECT_EQ(p.send_timeout_ms, 120000u);
  EXPECT_EQ(p.keepalive, 8u);
  EXPECT_TRUE(p.preserve_host);
}

TEST_F(ConfSite, UpgradeAndTunnelTimeout) {
  auto pool = [&](const std::string& keys) {
    return load("[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\nservers = a:1\n" +
                keys)
        .pools.at(0);
  };
  Pool d = pool("");
  EXPECT_EQ(d.upgrade, std::vector<std::string>{"websocket"});
  EXPECT_FALSE(d.upgrade_any);
  EXPECT_EQ(d.tunnel_timeout_ms, 3600000u);
  EXPECT_TRUE(pool("upgrade = off\n").upgrade.empty());
  EXPECT_TRUE(pool("upgrade = *\n").upgrade_any);
  EXPECT_EQ(pool("upgrade = WebSocket, foo/2\n").upgrade, (std::vector<std::string>{"websocket", "foo/2"}));
  EXPECT_EQ(pool("tunnel_timeout = 90s\n").tunnel_timeout_ms, 90000u);
  auto err = [&](const std::string& keys) {
    return error("[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\nservers = a:1\n" +
                 keys);
  };
  EXPECT_EQ(err("upgrade = h2c\n"),
            "6: upgrade: h2c cannot be tunnelled (HTTP/2 is pasture's own to speak, not a byte stream)");
  EXPECT_EQ(err("upgrade = off websocket\n"), "6: upgrade: 'off' stands alone");
  EXPECT_EQ(err("upgrade = a@b\n"), "6: upgrade: 'a@b' is not a protocol token");
  EXPECT_EQ(err("tunnel_timeout = 0\n"), "6: tunnel_timeout: must be more than 0");
}

TEST_F(ConfSite, BalancerServerListErrors) {
  auto err = [&](const std::string& servers) {
    return error("[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                 servers + "\n");
  };
  EXPECT_EQ(err("a:1 a:1"), "5: servers: duplicate server a:1");
  EXPECT_EQ(err("a:1 weight=0"), "5: servers: weight of a:1 must be at least 1");
  EXPECT_EQ(err("a:1 weight=x"), "5: weight of a:1: expected a whole number from 0 to 1000000, got 'x'");
  EXPECT_EQ(err("a"), "5: missing port in 'a' (expected host:port)");
  EXPECT_EQ(err(""), "5: servers: empty server list");
  EXPECT_EQ(err("backup a:1"), "5: servers: parameter 'backup' before any host:port");
  EXPECT_EQ(err("::1:80"), "5: IPv6 address '::1:80' must be written in brackets, like [::1]:8080");
  EXPECT_EQ(err("10.0.0.256:80"), "5: not an IPv4 address: '10.0.0.256'");
  EXPECT_EQ(err("[::1::2]:80"), "5: not an IPv6 address: '::1::2'");
  EXPECT_EQ(error("[server:main]\nuse = egg:pasture#main\nhost = 999.1.1.1\n[app:main]\n"
                  "use = egg:pasture#balancer\nservers = 127.1:80\n"),
            "3: not an IPv4 address: '999.1.1.1'");  // 127.1 is inet_aton's 127.0.0.1: fine
}

// A discovered name: one dot at the end is the root's (a fully qualified
// name), two are an empty label; what loads prints back to itself.
TEST_F(ConfSite, DiscoveredNamesEndInOneDotAtMost) {
  auto err = [&](const std::string& servers) {
    return error("[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\nservers = " +
                 servers + "\n");
  };
  EXPECT_EQ(err("dns+srv:127.."),
            "5: servers: 'dns+srv:127..': '127..' is not a DNS name (an empty label; expected "
            "dns+srv:NAME like dns+srv:_http._tcp.app.example)");
  EXPECT_EQ(err("dns:app..:80"), "5: servers: 'dns:app..:80': 'app..' is not a DNS name (an empty label)");
  EXPECT_EQ(err("dns+srv:."),
            "5: servers: 'dns+srv:.': '.' is not a DNS name (empty; expected dns+srv:NAME like "
            "dns+srv:_http._tcp.app.example)");
  EXPECT_EQ(err("dns:a_b!:80"),
            "5: servers: 'dns:a_b!:80': 'a_b!' is not a DNS name (a byte that is not a letter, digit, "
            "'-', '_' or '.')");
  EXPECT_EQ(err("dns:" + std::string(64, 'a') + ":80"),
            "5: servers: 'dns:" + std::string(64, 'a') + ":80': '" + std::string(64, 'a') +
                "' is not a DNS name (a label longer than 63 bytes)");
  // The root's dot ends the name, not the port.
  EXPECT_EQ(err("dns:app:8000."), "5: port in 'dns:app:8000.': expected a whole number from 0 to 65535, got '8000.'");
  for (const char* spec : {"dns+srv:_http._tcp.app.example.", "dns:app.internal.:8000", "dns+srv:127"}) {
    SCOPED_TRACE(spec);
    std::vector<UpstreamServer> a = parse_servers(spec, {});
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].host.back() == '.', false);
    std::vector<UpstreamServer> b = parse_servers(server_spec(a[0]), {});
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0].host, a[0].host);
    EXPECT_EQ(b[0].port, a[0].port);
    EXPECT_EQ(b[0].discover, a[0].discover);
  }
}

// A host named like a form's prefix prints back with its scheme: `unix:80`
// would read as a socket path, `dns:80` as a discovered name (found by
// fuzz_servers: `http://unix:`).
TEST_F(ConfSite, HostsNamedLikeAFormPrintBackAsTheSameServer) {
  for (const char* spec : {"http://unix:", "http://unix:8080", "http://dns:80", "unix.example:80", "https://unix:443"}) {
    SCOPED_TRACE(spec);
    std::vector<UpstreamServer> a = parse_servers(spec, {});
    ASSERT_EQ(a.size(), 1u);
    std::string printed = server_spec(a[0]);
    std::vector<UpstreamServer> b = parse_servers(printed, {});
    ASSERT_EQ(b.size(), 1u) << printed;
    EXPECT_EQ(b[0].host, a[0].host) << printed;
    EXPECT_EQ(b[0].port, a[0].port) << printed;
    EXPECT_EQ(b[0].unix_path, a[0].unix_path) << printed;
    EXPECT_EQ(b[0].discover, a[0].discover) << printed;
    EXPECT_EQ(b[0].tls, a[0].tls) << printed;
  }
  EXPECT_EQ(server_spec(parse_servers("http://unix:", {})[0]), "http://unix:80");
  // A bracket inside a host never loads (review 45: "[[a]:80" loaded as "[a",
  // printed back as "[a:80", which did not load).
  for (const char* spec : {"[[a]:80", "http://[[a]", "https://[[a]", "[[unix]:80", "a]:80"}) {
    SCOPED_TRACE(spec);
    EXPECT_THROW(parse_servers(spec, {}), ConfigError);
  }
  EXPECT_EQ(server_spec(parse_servers("unix.example:80", {})[0]), "unix.example:80");
}

TEST_F(ConfSite, PipelineWithBalancerFilter) {
  Site s = load(
      "[pipeline:main]\npipeline = balancer myapp\n[filter:balancer]\nuse = egg:Paste#balancer\n"
      "servers = 127.0.0.1:9001 127.0.0.1:9002\ncookie_secret = s3cret\nmethod = cookie\n"
      "[app:myapp]\nuse = egg:Foo#main\n[server:main]\nuse = egg:Paste#http\n");
  ASSERT_EQ(s.pools.size(), 1u);
  EXPECT_EQ(s.pools[0].name, "filter:balancer");
  EXPECT_EQ(s.pools[0].cookie_secret, "s3cret");
  EXPECT_EQ(s.pools[0].method, BalanceMethod::Cookie);
  EXPECT_EQ(s.handlers[s.root].kind, HandlerKind::Proxy);
  ASSERT_EQ(s.notices.size(), 1u);
  EXPECT_NE(s.notices[0].find("(myapp)"), std::string::npos);
}

TEST_F(ConfSite, PythonAppsAreHosted) {
  std::string server = "[server:main]\nuse = egg:Paste#http\napp_workers = 3\npython = /usr/bin/python3\n";
  Site s = load(server + "[app:main]\nuse = x\n[app:x]\nkey = 1\nuse = egg:Foo#bar\n");
  EXPECT_EQ(s.server.app_workers, 3);
  EXPECT_EQ(s.server.python, "/usr/bin/python3");
  ASSERT_EQ(s.python_apps.size(), 1u);
  EXPECT_EQ(s.python_apps[0].name, "main");
  EXPECT_EQ(s.python_apps[0].section, "app:main");
  EXPECT_EQ(s.python_apps[0].factory, "egg:Foo#bar");
  EXPECT_EQ(s.python_apps[0].uri.substr(0, 8), "config:/");
  EXPECT_EQ(s.python_apps[0].loc.line, 9);  // the use = line that names the factory
  const Pool& p = s.pools[s.python_apps[0].pool];
  EXPECT_TRUE(p.servers.empty());  // the master fills in its app processes
  EXPECT_EQ(p.method, BalanceMethod::LeastConn);
  EXPECT_EQ(s.handlers[s.root].kind, HandlerKind::Proxy);
  EXPECT_EQ(s.handlers[s.root].pool, s.python_apps[0].pool);

  s = load(server + "[app:main]\nuse = call:myapp:make\n");
  ASSERT_EQ(s.python_apps.size(), 1u);
  EXPECT_EQ(s.python_apps[0].factory, "call:myapp:make");

  // A Python filter: the whole pipeline is hosted.
  s = load(server + "[pipeline:main]\npipeline = cb main2\n[filter:cb]\nuse = egg:Paste#cowbell\n"
                    "[app:main2]\nuse = egg:pasture#echo\n");
  ASSERT_EQ(s.python_apps.size(), 1u);
  EXPECT_EQ(s.python_apps[0].section, "pipeline:main");
  EXPECT_EQ(s.python_apps[0].skip_filters, 0);

  // A balancer filter without servers balances over the hosted rest.
  s = load(server + "[pipeline:main]\npipeline = balancer myapp\n[filter:balancer]\nuse = egg:Paste#balancer\n"
                    "method = round_robin\n[app:myapp]\nuse = call:myapp:make\n");
  ASSERT_EQ(s.python_apps.size(), 1u);
  EXPECT_EQ(s.python_apps[0].skip_filters, 1);
  EXPECT_EQ(s.pools[s.python_apps[0].pool].name, "filter:balancer");
  EXPECT_EQ(s.pools[s.python_apps[0].pool].method, BalanceMethod::RoundRobin);

  // gzip is native (conf/filters.h): in front of echo, nothing is Python.
  s = load(server + "[pipeline:main]\npipeline = gz main2\n[filter:gz]\nuse = egg:Paste#gzip\n"
                    "[app:main2]\nuse = egg:pasture#echo\n");
  EXPECT_TRUE(s.python_apps.empty());
  EXPECT_EQ(s.handlers[s.root].kind, HandlerKind::Echo);
  ASSERT_EQ(s.handlers[s.root].filters.size(), 1u);

  EXPECT_EQ(error(server + "[pipeline:main]\npipeline = gz balancer main2\n[filter:gz]\nuse = egg:Paste#cowbell\n"
                           "[filter:balancer]\nuse = egg:Paste#balancer\n[app:main2]\nuse = call:m:f\n"),
            "10: the balancer filter [filter:balancer] must come first in [pipeline:main] (pasture runs it in "
            "front of the Python filters)");
  EXPECT_EQ(error(server + "[app:main]\nuse = egg:Paste#nothing\n"),
            "6: LookupError: Entry point 'nothing' not found in egg 'Paste' (protocols: paste.app_factory, "
            "paste.composite_factory, paste.composit_factory)");
}

TEST_F(ConfSite, DurationsAndMethods) {
  SourceLoc loc{"f", 1};
  EXPECT_EQ(parse_duration_ms("5", loc), 5000u);
  EXPECT_EQ(parse_duration_ms("0.25", loc), 250u);
  EXPECT_EQ(parse_duration_ms("30s", loc), 30000u);
  EXPECT_THROW(parse_duration_ms("5h", loc), ConfigError);
  EXPECT_EQ(parse_method("random2", loc), BalanceMethod::Random2);
  EXPECT_EQ(parse_method("ip_hash", loc), BalanceMethod::IpHash);
  EXPECT_THROW(parse_method("fastest", loc), ConfigError);
}

}  // namespace
}  // namespace pasture::conf
