// conf/yaml_loader + yaml_writer + describe: YAML sites, servers_from files,
// and INI -> YAML -> Site round trips.
#include <gtest/gtest.h>

#include "conf/describe.h"
#include "conf/load.h"
#include "conf/yaml_loader.h"
#include "conf/yaml_writer.h"
#include "conf_test_util.h"

namespace pasture::conf {
namespace {

class ConfYaml : public testing::SiteFixture {
 protected:
  Site load(const std::string& name, const std::string& text, LoadOptions opts = {}) {
    return load_file(name, text, opts);
  }
  Site yaml(const std::string& text, LoadOptions opts = {}) { return load_file("site.yaml", text, opts); }
  // Expects the config to fail in `name`; returns "file-basename:line: message".
  std::string error(const std::string& name, const std::string& text) { return error_in(name, text); }
  std::string yaml_error(const std::string& text) { return error_in("site.yaml", text); }
};

const char* kFull = R"(# a full site
server:
  use: egg:pasture#main
  listen:
    - 127.0.0.1:8080
    - "[::1]:8081"
  workers: 3
  backlog: 64
  keepalive_timeout: 5s
app: front
apps:
  front:
    use: egg:Paste#urlmap
    routes:
      /: pool
      /hello: hello
      "domain b.example port 8080 /x": old
      http://a.example/: hello
    not_found_app: hello
  pool:
    use: balancer
    servers:
      - 10.0.0.1:8000 weight=3 max_conns=10
      - "[::1]:9002 backup"
      - {host: backend, port: 9003, down: true}
    method: least_conn
    connect_timeout: 250ms
    read_timeout: 1.5
    keepalive: 8
  old: {use: egg:Paste#proxy, address: "http://10.0.0.9:9000/base/"}
  hello: {use: echo}
)";

TEST_F(ConfYaml, LoadsTheWholeSchema) {
  Site s = yaml(kFull);
  EXPECT_EQ(s.config_file, file_);
  EXPECT_EQ(s.app_name, "front");
  ASSERT_EQ(s.server.listen.size(), 2u);
  EXPECT_EQ(s.server.listen[1].url(), "http://[::1]:8081");
  EXPECT_EQ(s.server.listen[1].loc.line, 6);
  EXPECT_EQ(s.server.workers, 3);
  EXPECT_EQ(s.server.backlog, 64u);
  EXPECT_EQ(s.server.keepalive_timeout_ms, 5000u);
  const Handler& root = s.handlers.at(s.root);
  ASSERT_EQ(root.kind, HandlerKind::UrlMap);
  EXPECT_EQ(root.name, "composite:front");
  std::vector<std::string> got;
  for (const auto& e : root.entries) got.push_back(e.domain + "|" + e.path + "=" + s.handlers[e.handler].name);
  EXPECT_EQ(got, (std::vector<std::string>{"a.example|=app:hello", "b.example:8080|/x=app:old", "|/hello=app:hello",
                                           "|=app:pool"}));
  EXPECT_EQ(s.handlers[root.not_found].echo_name, "hello");
  EXPECT_EQ(s.handlers.size(), 4u);  // hello is shared
  ASSERT_EQ(s.pools.size(), 2u);
  const Pool& p = s.pools[0];
  EXPECT_EQ(p.name, "app:pool");
  ASSERT_EQ(p.servers.size(), 3u);
  EXPECT_EQ(p.servers[0].weight, 3u);
  EXPECT_EQ(p.servers[0].max_conns, 10u);
  EXPECT_EQ(p.servers[0].loc.line, 23);
  EXPECT_EQ(p.servers[1].host, "::1");
  EXPECT_TRUE(p.servers[1].backup);
  EXPECT_EQ(p.servers[2].label(), "backend:9003");
  EXPECT_TRUE(p.servers[2].down);
  EXPECT_EQ(p.method, BalanceMethod::LeastConn);
  EXPECT_EQ(p.connect_timeout_ms, 250u);
  EXPECT_EQ(p.read_timeout_ms, 1500u);
  EXPECT_EQ(p.keepalive, 8u);
  EXPECT_TRUE(p.preserve_host);
  const Pool& old = s.pools[1];
  EXPECT_FALSE(old.preserve_host);
  EXPECT_EQ(old.base_path, "/base/");
  EXPECT_EQ(old.servers.at(0).label(), "10.0.0.9:9000");
}

TEST_F(ConfYaml, DefaultsFragmentAndRouteList) {
  std::string text =
      "apps:\n  main:\n    use: urlmap\n    routes:\n      - {path: /api, domain: x.example, port: 81, app: e}\n"
      "      - {path: /, app: e}\n  e: {use: echo, name: E}\n  other: {use: echo}\n";
  Site s = yaml(text);
  EXPECT_EQ(s.app_name, "main");
  EXPECT_EQ(s.server.listen.at(0).url(), "http://127.0.0.1:8080");
  EXPECT_EQ(s.handlers[s.root].entries.at(0).domain, "x.example:81");
  EXPECT_EQ(s.handlers[s.root].entries.at(0).path, "/api");
  s = yaml(text, {file_ + "#other", "", "", {{"a", "b"}}, ""});
  EXPECT_EQ(s.app_name, "other");
  EXPECT_EQ(s.handlers[s.root].echo_name, "other");
  ASSERT_EQ(s.notices.size(), 1u);
  EXPECT_NE(s.notices[0].find("a=b has no effect on a YAML config"), std::string::npos);
  s = yaml("server: {host: '*', port: 9000, worker_timeout: 0, max_requests: 100}\napps: {main: {use: echo}}\n");
  EXPECT_EQ(s.server.listen.at(0).url(), "http://0.0.0.0:9000");
  EXPECT_EQ(s.server.worker_timeout_ms, 0u);
  EXPECT_EQ(s.server.max_requests, 100u);
}

TEST_F(ConfYaml, ErrorsNameFileAndLine) {
  EXPECT_EQ(yaml_error("apps:\n  main: {use: echo\n"), "site.yaml:3: YAML: end of map flow not found");
  EXPECT_EQ(yaml_error("apps:\n  main:\n    use: echo\n   bad: 1\n"),
            "site.yaml:4: YAML: end of map not found");
  EXPECT_EQ(yaml_error("servre: {}\napps: {main: {use: echo}}\n"),
            "site.yaml:1: unknown top-level key 'servre' (expected server, app, apps)");
  EXPECT_EQ(yaml_error("app: x\napps: {main: {use: echo}}\n"), "site.yaml:1: app 'x' is not defined in apps:");
  EXPECT_EQ(yaml_error("apps:\n  main: {use: urlmap, routes: {/: nope}}\n"),
            "site.yaml:2: app 'nope' is not defined in apps:");
  EXPECT_EQ(yaml_error("apps:\n  main:\n    use: egg:MyApp#main\n"),
            "site.yaml:3: apps: main: not supported yet: use: egg:MyApp#main (pasture serves egg:Paste#urlmap, "
            "egg:pasture#balancer, egg:Paste#proxy, egg:pasture#echo, egg:pasture#status, egg:Paste#static and "
            "egg:pasture#static; Python WSGI apps are served from paste.deploy INI files, not from YAML yet)");
  EXPECT_EQ(yaml_error("apps:\n  main:\n    use: balancer\n    servers:\n      - a:1\n      - b:2 weight=0\n"),
            "site.yaml:6: servers: weight of b:2 must be at least 1");
  EXPECT_EQ(yaml_error("apps:\n  main:\n    use: balancer\n    servers:\n      - a:1\n      - a:1\n"),
            "site.yaml:6: servers: duplicate server a:1");
  EXPECT_EQ(yaml_error("apps:\n  main:\n    use: balancer\n    servers: [a:1]\n    methd: random\n"),
            "site.yaml:5: apps: main: unknown key 'methd' for a balancer (expected servers, servers_from, method, "
            "connect_timeout, read_timeout, send_timeout, keepalive, upgrade, tunnel_timeout, cookie_secret, cookie_name, "
            "hash_key, consistent, "
            "hash_whole_ip, max_servers, resolve_interval, resolve_min, resolve_max, resolve_timeout, resolver)");
  EXPECT_EQ(yaml_error("apps:\n  main:\n    use: balancer\n    servers: [a:1]\n    method: fastest\n"),
            "site.yaml:5: method: unknown balancing method 'fastest' (expected round_robin, least_conn, random, "
            "random2, ip_hash, hash or cookie)");
  EXPECT_EQ(yaml_error("server:\n  host: a\n  listen: [b:1]\napps: {main: {use: echo}}\n"),
            "site.yaml:2: server: host/port cannot be combined with listen");
  EXPECT_EQ(yaml_error("server:\n  port: 70000\napps: {main: {use: echo}}\n"),
            "site.yaml:2: port: expected a whole number from 0 to 65535, got '70000'");
  EXPECT_EQ(yaml_error("server:\n  channel_timeout: 4\napps: {main: {use: echo}}\n"),
            "site.yaml:2: server: unknown key 'channel_timeout' (expected use, host, port, listen, unix_socket, "
            "unix_socket_perms or an egg:pasture#main setting such as workers, backlog or keepalive_timeout)");
  EXPECT_EQ(yaml_error("apps:\n  main: {use: urlmap, routes: {/: main}}\n"),
            "site.yaml:2: apps: main refers to itself");
  EXPECT_EQ(yaml_error("apps:\n  main: {use: proxy, address: 'ftp://x/'}\n"),
            "site.yaml:2: address must be an http:// or https:// URL, got 'ftp://x/'");
  EXPECT_EQ(yaml_error(""), "site.yaml:0: empty config (expected server:, app: and apps:)");
  EXPECT_EQ(yaml_error("apps:\n  main: {use: echo}\n  main: {use: echo}\n"), "site.yaml:3: apps: duplicate key 'main'");
  EXPECT_EQ(yaml_error("apps:\n  main: {use: urlmap, routes: {/: e, /: e}}\n  e: {use: echo}\n"),
            "site.yaml:2: apps: main: routes: duplicate key '/'");
}

// Loads `ini`, converts it, loads the YAML and compares the canonical dumps.
void expect_round_trip(const std::string& ini_path, const std::string& yaml_path, const LoadOptions& base = {}) {
  LoadOptions in = base;
  in.config = ini_path + in.config;
  Site a = load_site(in);
  std::string text = site_to_yaml(a);
  std::ofstream(yaml_path) << text;
  LoadOptions out;
  out.config = yaml_path;
  Site b = load_site(out);
  EXPECT_EQ(json::dump(site_to_json(a)), json::dump(site_to_json(b))) << text;
  EXPECT_TRUE(same_site(a, b));
}

TEST_F(ConfYaml, RoundTripDemo) {
  std::string demo = std::string(PASTURE_SOURCE_DIR) + "/conf/examples/demo.ini";
  // The front site mounts a Python app at /app, which YAML cannot name yet:
  // convert says so with the app's file:line.
  LoadOptions front;
  front.config = demo;
  try {
    site_to_yaml(load_site(front));
    ADD_FAILURE() << "the demo's Python app converted to YAML";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("not supported yet: paste.app_factory = demo_app:make_app in [app:app]"),
              std::string::npos)
        << e.what();
  }
  LoadOptions backend;
  backend.config = "#backend_a";
  expect_round_trip(demo, dir_.path() + "/backend_a.yaml", backend);
  backend.config = "#backend_b";
  expect_round_trip(demo, dir_.path() + "/backend_b.yaml", backend);
}

TEST_F(ConfYaml, RoundTripVocabulary) {
  const char* configs[] = {
      // server flavours and their keys
      "[server:main]\nuse = egg:waitress#main\nlisten = *:6543 [::1]:80\nthreads = 4\n[app:main]\nuse = egg:pasture#echo\n",
      "[server:main]\nuse = egg:gunicorn#main\nbind = 127.0.0.1:8000,127.0.0.1:8001\nworkers = 5\ntimeout = 10\n"
      "graceful_timeout = 3\nmax_requests = 9\nmax_requests_jitter = 2\nreuse_port = true\naccesslog = -\n"
      "[app:main]\nuse = egg:pasture#echo\nname = x y\n",
      "[server:main]\nuse = egg:Paste#http\nhost = 0.0.0.0:9000\n[app:main]\nuse = egg:Paste#proxy\n"
      "address = http://[::1]:8081/base/\n",
      "[server:main]\nuse = egg:pasture#main\nport = 1\nclient_header_timeout = 250ms\nmax_header_bytes = 100\n"
      "max_url_bytes = 50\nclient_body_timeout = 2m\nsend_timeout = 90s\ndrain_idle_grace = 2s\naccess_log = /tmp/a log\nvia = edge:8080\ntrace = on\n"
      "[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:9001 weight=3 max_conns=10\n"
      "  [::1]:9002 backup\n  backend:9003 down\nmethod = hash\nhash_key = header:X-User\nconsistent = ring\n"
      "connect_timeout = 0.25\nread_timeout = 1.5\nsend_timeout = 2m\nkeepalive = 0\n",
      "[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\nservers = a:1\n"
      "upgrade = websocket foo\ntunnel_timeout = 90s\n",
      "[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\nservers = a:1\nupgrade = off\n",
      "[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\nservers = a:1\nupgrade = *\n",
      "[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\nservers = a:1 b:2\n"
      "method = ip_hash\nhash_whole_ip = true\nconsistent = none\n",
      "[server:main]\nuse = egg:pasture#main\nvia = off\n[app:main]\nuse = egg:pasture#echo\n",
      "[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\nservers = a:1 b:2\n"
      "method = cookie\ncookie_secret = \"s3c #ret\"\ncookie_name = sid\n",
      // urlmap with domains, ports, not_found_app, shared apps, a pipeline with the balancer filter
      "[server:main]\nuse = egg:pasture#main\n[composite:main]\nuse = egg:Paste#urlmap\n/ = a\n/api/ = b\n"
      "domain b.example port 8080 /x = b\ndomain a.example / = a\n/yes = p\nnot_found_app = b\n"
      "[app:a]\nuse = egg:pasture#echo\n[app:b]\nuse = egg:pasture#echo\nname = bee\n"
      "[pipeline:p]\npipeline = balancer myapp\n[filter:balancer]\nuse = egg:Paste#balancer\nservers = 10.0.0.1:1\n"
      "[app:myapp]\nuse = egg:Foo#main\n",
      // an app named like a YAML word, and a nested urlmap
      "[server:main]\nuse = egg:pasture#main\n[composite:main]\nuse = egg:Paste#urlmap\n/ = yes\n/in = inner\n"
      "[app:yes]\nuse = egg:pasture#echo\n[composite:inner]\nuse = egg:Paste#urlmap\n/deep = yes\n",
  };
  int n = 0;
  for (const char* ini : configs) {
    SCOPED_TRACE(ini);
    std::string path = dir_.write("c" + std::to_string(++n) + ".ini", ini);
    expect_round_trip(path, dir_.path() + "/c" + std::to_string(n) + ".yaml");
  }
}

TEST_F(ConfYaml, ServersFromFile) {
  dir_.write("pool.yaml", "# members\n- 10.0.0.1:80 weight=2\n- {host: 10.0.0.2, port: 80, backup: yes}\n");
  dir_.write("sub/pool2.yaml", "servers:\n  - 10.0.0.3:80\n  - 10.0.0.4:80 10.0.0.5:80\n");
  Site s = load("site.ini",
                "[server:main]\nuse = egg:pasture#main\n[composite:main]\nuse = egg:Paste#urlmap\n/ = a\n/b = b\n"
                "[app:a]\nuse = egg:pasture#balancer\nservers_from = %(here)s/pool.yaml\n"
                "[app:b]\nuse = egg:pasture#balancer\nservers_from = sub/pool2.yaml\nmethod = random\n");
  ASSERT_EQ(s.pools.size(), 2u);
  const Pool& a = s.pools[s.handlers[s.handlers[s.root].entries[1].handler].pool];
  EXPECT_EQ(a.servers_from, dir_.path() + "/pool.yaml");
  ASSERT_EQ(a.servers.size(), 2u);
  EXPECT_EQ(a.servers[0].weight, 2u);
  EXPECT_EQ(a.servers[0].loc.str(), dir_.path() + "/pool.yaml:2");
  EXPECT_TRUE(a.servers[1].backup);
  const Pool& b = s.pools[s.handlers[s.handlers[s.root].entries[0].handler].pool];
  EXPECT_EQ(b.servers_from, dir_.path() + "/sub/pool2.yaml");
  EXPECT_EQ(b.servers.size(), 3u);
  EXPECT_EQ(b.method, BalanceMethod::Random);
  expect_round_trip(file_, dir_.path() + "/from.yaml");
  // YAML sites take servers_from too, relative to the YAML file.
  s = yaml("apps:\n  main: {use: balancer, servers_from: pool.yaml}\n");
  EXPECT_EQ(s.pools.at(0).servers.size(), 2u);

  auto servers = load_servers_file(dir_.path() + "/sub/pool2.yaml");
  ASSERT_EQ(servers.size(), 3u);
  EXPECT_EQ(servers[2].label(), "10.0.0.5:80");
  EXPECT_EQ(servers[2].loc.line, 3);
}

// Found by fuzzing (tests/fuzz/servers.cc, seed ini_value): server_spec()
// left out max_fails, fail_timeout and slow_start, so `pasture convert`
// dropped them, `pasture check` did not show them, and the site dump that
// compares two sites (same_site) could not tell them apart.
TEST_F(ConfYaml, PassiveHealthAndSlowStartSurviveServersLists) {
  Site s = yaml("apps:\n  main:\n    use: balancer\n    servers:\n"
                "      - 10.0.0.1:80 max_fails=3 fail_timeout=1.5s slow_start=2m\n"
                "      - 10.0.0.2:80 max_fails=0 fail_timeout=250ms\n");
  const auto& sv = s.pools.at(0).servers;
  ASSERT_EQ(sv.size(), 2u);
  EXPECT_EQ(sv[0].max_fails, 3u);
  EXPECT_EQ(sv[0].fail_timeout_ms, 1500u);
  EXPECT_EQ(sv[0].slow_start_ms, 120000u);
  EXPECT_EQ(sv[1].max_fails, 0u);
  EXPECT_EQ(sv[1].fail_timeout_ms, 250u);
  EXPECT_EQ(server_spec(sv[0]), "10.0.0.1:80 max_fails=3 fail_timeout=1.5s slow_start=2m");
  UpstreamServer plain;
  plain.host = "h";
  plain.port = 1;
  EXPECT_EQ(server_spec(plain), "h:1");
  const char* ini =
      "[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\n"
      "servers = 10.0.0.1:80 max_fails=3 fail_timeout=1.5s slow_start=2m\n";
  expect_round_trip(dir_.write("health.ini", ini), dir_.path() + "/health.yaml");
  EXPECT_NE(site_to_yaml(load("health2.ini", ini)).find("slow_start=2m"), std::string::npos);
}

TEST_F(ConfYaml, ServersFromErrors) {
  auto err = [&](const std::string& pool_yaml, const std::string& setting = "servers_from = pool.yaml") {
    if (!pool_yaml.empty()) dir_.write("pool.yaml", pool_yaml);
    return error("site.ini", "[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\n" +
                                 setting + "\n");
  };
  EXPECT_EQ(err("- a:1\n- a:1 weight=x\n"), "pool.yaml:2: weight of a:1: expected a whole number from 0 to 1000000, got 'x'");
  EXPECT_EQ(err("- a:1\n- [b:2\n"), "pool.yaml:3: YAML: end of sequence flow not found");
  EXPECT_EQ(err("servers: []\n"), "pool.yaml:1: servers: empty server list");
  EXPECT_EQ(err("hosts: [a:1]\n"), "pool.yaml:1: servers file: unknown key 'hosts' (expected servers)");
  EXPECT_EQ(err("", "servers_from = missing.yaml"),
            "site.ini:5: servers_from: " + dir_.path() + "/missing.yaml: cannot read: No such file or directory");
  EXPECT_EQ(err("- a:1\n", "servers = a:1\nservers_from = pool.yaml"),
            "site.ini:6: [app:main] has both 'servers =' and 'servers_from ='");
  // Found by fuzzing (tests/fuzz/servers, corpus crash-unix-path-with-space):
  // the map form took what no servers line can name, so convert and check
  // wrote other servers, and an inline YAML list failed with a stray error.
  const std::string cannot = "' cannot be written in a servers line (whitespace or '=' in it?)";
  EXPECT_EQ(err("- {unix: /run/a b.sock}\n"), "pool.yaml:1: server: 'unix:/run/a b.sock" + cannot);
  EXPECT_EQ(err("- {host: a b, port: 1}\n"), "pool.yaml:1: server: 'a b:1" + cannot);
  EXPECT_EQ(err("- a:1\n- {unix: /run/a=b.sock}\n"),  // crash-unix-path-with-equals
            "pool.yaml:2: server: 'unix:/run/a=b.sock" + cannot);
  EXPECT_EQ(err("- {host: \"unix:/x\", port: 1}\n"), "pool.yaml:1: server: 'unix:/x:1" + cannot);
}

TEST_F(ConfYaml, CheckTextNamesWhatIsServed) {
  Site s = yaml(kFull);
  std::string text = describe_site(s);
  for (const char* want : {"listens on http://127.0.0.1:8080", "listens on http://[::1]:8081", "3 worker processes",
                           "urlmap [composite:front]", "http://b.example:8080/x  -> proxy [app:old] to "
                           "http://10.0.0.9:9000/base/",
                           "balancer [app:pool]: least_conn", "10.0.0.1:8000 weight=3 max_conns=10",
                           "[::1]:9002 backup", "backend:9003 down", "timeouts: connect 250ms, read 1.5s, send 60s",
                           "anything else            -> echo [app:hello] (described above)"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  }
  EXPECT_NE(describe_site(s, 7).find("7 worker processes (--workers)"), std::string::npos);
}

TEST(ConfDescribe, Formatters) {
  EXPECT_EQ(format_duration_ms(250), "250ms");
  EXPECT_EQ(format_duration_ms(1500), "1.5s");
  EXPECT_EQ(format_duration_ms(1050), "1.05s");
  EXPECT_EQ(format_duration_ms(60000), "60s");
  EXPECT_EQ(format_duration_ms(120000), "2m");
  EXPECT_EQ(format_duration_ms(0), "0s");
  UpstreamServer s{"::1", 80, 2, 5, true, true, {}};
  EXPECT_EQ(server_spec(s), "[::1]:80 weight=2 max_conns=5 backup down");
  EXPECT_TRUE(is_yaml_path("/a/b.YML"));
  EXPECT_FALSE(is_yaml_path("/a/yaml"));
}

}  // namespace
}  // namespace pasture::conf

namespace pasture::conf {
namespace {

// HTTP/2 keys: the h2c mark on a plain listener, http2 and its limits, in
// INI and YAML, through convert and check.
TEST_F(ConfYaml, Http2KeysInBothFormsAndConvert) {
  Site s = load("site.ini", "[server:main]\nuse = egg:pasture#main\nlisten = 127.0.0.1:8080 h2c 127.0.0.1:8081\nhttp2 = on\n"
                "http2_max_concurrent_streams = 50\nhttp2_max_resets = 30\n\n[app:main]\nuse = egg:pasture#echo\n");
  ASSERT_EQ(s.server.listen.size(), 2u);
  EXPECT_TRUE(s.server.listen[0].h2c);
  EXPECT_FALSE(s.server.listen[1].h2c);
  EXPECT_TRUE(s.server.http2);
  EXPECT_EQ(s.server.h2_max_streams, 50u);
  EXPECT_EQ(s.server.h2_max_resets, 30u);
  std::string text = site_to_yaml(s);
  EXPECT_NE(text.find("127.0.0.1:8080 h2c"), std::string::npos) << text;
  Site y = load("site.yaml", text);
  EXPECT_TRUE(same_site(s, y)) << text;
  EXPECT_NE(describe_site(s, 0).find("HTTP/2: up to 50 concurrent streams"), std::string::npos);
  // The mark follows a plain address.
  EXPECT_NE(error_in("site.ini", "[server:main]\nuse = egg:pasture#main\nlisten = h2c\n\n[app:main]\nuse = egg:pasture#echo\n")
                .find("'h2c' follows"),
            std::string::npos);
}

}  // namespace
}  // namespace pasture::conf
