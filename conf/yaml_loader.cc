// YAML -> Site (schema in yaml_loader.h).
#include "conf/yaml_loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "conf/describe.h"
#include "conf/filters.h"
#include "conf/site_builder.h"
#include "conf/site_pool.h"
#include "conf/site_static.h"
#include "conf/urlmap.h"

namespace pasture::conf {

namespace {

[[noreturn]] void bad(const SourceLoc& loc, const std::string& msg) { throw ConfigError(loc.file, loc.line, msg); }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Reads and parses a YAML file; unreadable files are reported at line 0.
YAML::Node parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad({path, 0}, std::string("cannot read: ") + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  try {
    return YAML::Load(text.str());
  } catch (const YAML::ParserException& e) {
    bad({path, e.mark.line + 1}, "YAML: " + e.msg);
  }
}

// Node access with file:line on every error.
class Doc {
 public:
  explicit Doc(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }

  SourceLoc loc(const YAML::Node& n) const {
    YAML::Mark m = n.Mark();
    return {file_, m.is_null() ? 0 : m.line + 1};
  }
  std::string scalar(const YAML::Node& n, const std::string& what) const {
    if (n.IsNull()) bad(loc(n), what + ": missing value");
    if (!n.IsScalar()) bad(loc(n), what + ": expected a single value, not a " + (n.IsMap() ? "map" : "list"));
    return n.Scalar();
  }
  // A map without repeated keys (yaml-cpp keeps both; paste.deploy's
  // ConfigParser refuses duplicates, and so does pasture).
  void require_map(const YAML::Node& n, const std::string& what) const {
    if (!n.IsMap()) bad(loc(n), what + ": expected a map of key: value");
    std::set<std::string> seen;
    for (const auto& kv : n) {
      if (kv.first.IsScalar() && !seen.insert(kv.first.Scalar()).second) {
        bad(loc(kv.first), what + ": duplicate key '" + kv.first.Scalar() + "'");
      }
    }
  }
  bool boolean(const YAML::Node& n, const std::string& what) const {
    std::string v = lower(scalar(n, what));
    if (v == "true" || v == "yes" || v == "on") return true;
    if (v == "false" || v == "no" || v == "off") return false;
    bad(loc(n), what + ": expected true or false, got '" + n.Scalar() + "'");
  }

  UpstreamServer server_map(const YAML::Node& n) const;
  std::vector<UpstreamServer> server_list(const YAML::Node& n, const std::string& what) const;

 private:
  std::string file_;
};

// {host: h, port: p, weight: N, max_conns: N, backup: bool, down: bool}
UpstreamServer Doc::server_map(const YAML::Node& n) const {
  require_map(n, "server");
  UpstreamServer s;
  s.loc = loc(n);
  bool has_port = false;
  for (const auto& kv : n) {
    std::string key = scalar(kv.first, "server key");
    const YAML::Node& v = kv.second;
    if (key == "host") {
      s.host = scalar(v, "host");
      if (s.host.size() > 2 && s.host.front() == '[' && s.host.back() == ']') s.host = s.host.substr(1, s.host.size() - 2);
    } else if (key == "port") {
      s.port = static_cast<uint16_t>(parse_uint(scalar(v, "port"), 65535, loc(v), "port"));
      has_port = true;
    } else if (key == "unix") {
      s.unix_path = parse_unix_path(scalar(v, "unix"), loc(v), "server: unix");
    } else if (key == "weight") {
      s.weight = parse_uint(scalar(v, "weight"), 1000000, loc(v), "weight");
      if (s.weight == 0) bad(loc(v), "weight: must be at least 1");
    } else if (key == "max_conns") {
      s.max_conns = parse_uint(scalar(v, "max_conns"), 1000000000, loc(v), "max_conns");
    } else if (key == "backup") {
      s.backup = boolean(v, "backup");
    } else if (key == "down") {
      s.down = boolean(v, "down");
    } else if (key == "tls") {
      s.tls = boolean(v, "tls");
    } else {
      bad(loc(kv.first),
          "server: unknown key '" + key + "' (expected host, port, unix, tls, weight, max_conns, backup, down)");
    }
  }
  if (!s.unix_path.empty()) {
    if (!s.host.empty() || has_port) bad(s.loc, "server: unix cannot be combined with host/port");
    if (s.tls) bad(s.loc, "server: tls is for host/port servers, not unix sockets");
  } else {
    if (s.host.empty()) bad(s.loc, "server: missing host");
    if (!has_port || s.port == 0) bad(s.loc, "server: missing port (1-65535)");
  }
  // Servers are written back in the `servers =` syntax (pasture convert,
  // pasture check, and this loader's own pool settings), which splits at
  // whitespace and takes a word with '=' for a parameter: a map it could
  // not name would come back as other servers.
  std::vector<UpstreamServer> back;
  try {
    back = parse_servers(server_spec(s), s.loc);
  } catch (const ConfigError&) {
  }
  if (back.size() != 1 || back[0].host != s.host || back[0].port != s.port || back[0].unix_path != s.unix_path ||
      back[0].tls != s.tls)
    bad(s.loc, "server: '" + s.label() + "' cannot be written in a servers line (whitespace or '=' in it?)");
  return s;
}

// A list of server strings/maps, or one string of several servers.
std::vector<UpstreamServer> Doc::server_list(const YAML::Node& n, const std::string& what) const {
  if (n.IsScalar()) return parse_servers(n.Scalar(), loc(n));
  if (!n.IsSequence()) bad(loc(n), what + ": expected a list of servers like \"10.0.0.1:8000 weight=2\"");
  std::vector<UpstreamServer> out;
  for (const auto& item : n) {
    std::vector<UpstreamServer> got;
    if (item.IsMap()) {
      got.push_back(server_map(item));
    } else {
      got = parse_servers(scalar(item, what), loc(item));
    }
    for (const auto& s : got) {
      for (const auto& o : out) {
        if (o.label() == s.label()) bad(s.loc, "servers: duplicate server " + s.label());
      }
      out.push_back(s);
    }
  }
  if (out.empty()) bad(loc(n), "servers: empty server list");
  return out;
}

void server_settings(Site& site, const Doc& doc, const std::optional<YAML::Node>& node, TlsKeys& tls) {
  ServerSettings& s = site.server;
  s.use = "egg:pasture#main";
  s.loc = {doc.file(), 0};
  if (!node || node->IsNull()) {
    s.listen = {Listener{"127.0.0.1", 8080, s.loc}};
    return;
  }
  const YAML::Node& n = *node;
  doc.require_map(n, "server");
  s.loc = doc.loc(n);
  std::optional<YAML::Node> host, port, listen, unix_socket, unix_perms;
  for (const auto& kv : n) {
    std::string key = doc.scalar(kv.first, "server key");
    const YAML::Node& v = kv.second;
    SourceLoc at = doc.loc(v);
    if (key == "use") {
      static const std::set<std::string> known = {"egg:pasture#main", "egg:paste#http", "egg:waitress#main",
                                                  "egg:gunicorn#main"};
      s.use = doc.scalar(v, "use");
      if (!known.count(lower(s.use))) {
        bad(at, "server: use: not supported yet: " + s.use +
                    " (expected egg:pasture#main, egg:Paste#http, egg:waitress#main or egg:gunicorn#main)");
      }
    } else if (key == "host") {
      host = v;
    } else if (key == "port") {
      port = v;
    } else if (key == "listen") {
      listen = v;
    } else if (key == "unix_socket") {
      unix_socket = v;
    } else if (key == "unix_socket_perms") {
      unix_perms = v;
    } else if (v.IsSequence() && (key == "tls_cert" || key == "tls_key" || key == "tls_ocsp")) {
      // A list of files, one per certificate (the INI form: space-separated).
      std::string list;
      for (const auto& item : v) list += (list.empty() ? "" : " ") + doc.scalar(item, "server: " + key);
      take_tls_key(tls, TlsFlavour::Pasture, key, py::Value{list, at});
    } else if (take_tls_key(tls, TlsFlavour::Pasture, key, py::Value{v.IsScalar() ? v.Scalar() : "", at})) {
      doc.scalar(v, "server: " + key);  // a map or a list here is an error
    } else if (!apply_server_key(s, key, py::Value{doc.scalar(v, "server: " + key), at})) {
      bad(doc.loc(kv.first), "server: unknown key '" + key +
                                 "' (expected use, host, port, listen, unix_socket, unix_socket_perms or an "
                                 "egg:pasture#main setting such as workers, backlog or keepalive_timeout)");
    }
  }
  // waitress's unix_socket (perms 0600 unless unix_socket_perms says otherwise).
  if (unix_socket) {
    if (host || port) bad(doc.loc(*unix_socket), "server: unix_socket may not be set if host or port is set");
    if (listen) bad(doc.loc(*unix_socket), "server: unix_socket may not be set if listen is set");
    Listener l;
    l.loc = doc.loc(*unix_socket);
    l.unix_path = parse_unix_path(py::strip(doc.scalar(*unix_socket, "unix_socket")), l.loc, "server: unix_socket");
    l.unix_perms = 0600;
    s.listen.push_back(l);
  }
  if (listen) {
    if (host || port) bad(doc.loc(host ? *host : *port), "server: host/port cannot be combined with listen");
    std::vector<std::pair<std::string, SourceLoc>> tokens;
    if (listen->IsSequence()) {
      for (const auto& item : *listen)
        for (const auto& t : py::split(doc.scalar(item, "listen"))) tokens.emplace_back(t, doc.loc(item));
    } else {
      for (const auto& t : py::split(doc.scalar(*listen, "listen"))) tokens.emplace_back(t, doc.loc(*listen));
    }
    for (const auto& [t, at] : tokens) {
      if (t == "tls") {  // "0.0.0.0:443 tls": the address before it speaks TLS
        if (s.listen.empty() || s.listen.back().tls) bad(at, "server: listen: 'tls' follows the address it applies to");
        s.listen.back().tls = true;
        continue;
      }
      if (t == "h2c") {  // "127.0.0.1:8080 h2c": HTTP/2 by prior knowledge there too
        if (s.listen.empty() || s.listen.back().h2c || s.listen.back().tls)
          bad(at, "server: listen: 'h2c' follows the plain (not tls) address it applies to");
        s.listen.back().h2c = true;
        continue;
      }
      if (py::starts_with(t, "unix:")) {
        Listener l;
        l.loc = at;
        l.unix_path = parse_unix_path(t.substr(5), at, "server: listen");
        s.listen.push_back(l);
      } else {
        s.listen.push_back(parse_host_port(t, 8080, at));
      }
    }
    if (s.listen.empty()) bad(doc.loc(*listen), "server: empty listen list");
  }
  finish_app_mode(s);
  if (unix_perms) {
    uint32_t mode = parse_unix_perms(doc.scalar(*unix_perms, "unix_socket_perms"), doc.loc(*unix_perms));
    for (Listener& l : s.listen) l.unix_perms = mode;
  }
  if (listen || unix_socket) return;
  Listener l;
  l.loc = host ? doc.loc(*host) : port ? doc.loc(*port) : s.loc;
  l.host = host ? py::strip(doc.scalar(*host, "host")) : "127.0.0.1";
  if (l.host.size() > 1 && l.host.front() == '[' && l.host.back() == ']') l.host = l.host.substr(1, l.host.size() - 2);
  if (l.host.empty() || l.host == "*") l.host = "0.0.0.0";
  l.port = port ? static_cast<uint16_t>(parse_uint(doc.scalar(*port, "port"), 65535, doc.loc(*port), "port")) : 8080;
  s.listen.push_back(l);
}

enum class AppKind { UrlMap, Balancer, Proxy, Echo, Status, PasteStatic, PastureStatic };

class AppBuilder {
 public:
  AppBuilder(Site& site, const Doc& doc, const YAML::Node& apps) : site_(site), doc_(doc), apps_(apps) {}
  int app(const std::string& name, const SourceLoc& ref);

 private:
  int add(Handler h) {
    site_.handlers.push_back(std::move(h));
    return static_cast<int>(site_.handlers.size()) - 1;
  }
  int add_pool(Pool p, const std::string& name, const YAML::Node& n) {
    site_.pools.push_back(std::move(p));
    Handler h;
    h.kind = HandlerKind::Proxy;
    h.name = "app:" + name;
    h.loc = doc_.loc(n);
    h.pool = static_cast<int>(site_.pools.size()) - 1;
    return add(std::move(h));
  }
  AppKind kind_of(const std::string& name, const YAML::Node& n);
  int urlmap(const std::string& name, const YAML::Node& n);
  int balancer(const std::string& name, const YAML::Node& n);
  int proxy(const std::string& name, const YAML::Node& n);
  int echo(const std::string& name, const YAML::Node& n);
  int status(const std::string& name, const YAML::Node& n);
  int static_files(const std::string& name, const YAML::Node& n, bool paste);
  void route(Handler& h, std::vector<urlmap::Normalized>& keys, const std::string& key, const YAML::Node& target,
             const SourceLoc& at);
  std::vector<Filter> filters(const std::string& name, const YAML::Node& list);

  Site& site_;
  const Doc& doc_;
  YAML::Node apps_;
  std::map<std::string, int> done_;
  std::set<std::string> building_;
};

int AppBuilder::app(const std::string& name, const SourceLoc& ref) {
  if (auto it = done_.find(name); it != done_.end()) return it->second;
  YAML::Node n = apps_[name];
  if (!n) bad(ref, "app '" + name + "' is not defined in apps:");
  if (!building_.insert(name).second) bad(doc_.loc(n), "apps: " + name + " refers to itself");
  doc_.require_map(n, "apps: " + name);
  int idx = -1;
  switch (kind_of(name, n)) {
    case AppKind::UrlMap: idx = urlmap(name, n); break;
    case AppKind::Balancer: idx = balancer(name, n); break;
    case AppKind::Proxy: idx = proxy(name, n); break;
    case AppKind::Echo: idx = echo(name, n); break;
    case AppKind::Status: idx = status(name, n); break;
    case AppKind::PasteStatic: idx = static_files(name, n, true); break;
    case AppKind::PastureStatic: idx = static_files(name, n, false); break;
  }
  if (YAML::Node f = n["filters"]) site_.handlers[idx].filters = filters(name, f);
  building_.erase(name);
  done_[name] = idx;
  return idx;
}

// `filters: [gzip, {use: prefix, prefix: /app}, ...]`, outermost first:
// the native filters (conf/filters.h) with their Paste keys.
std::vector<Filter> AppBuilder::filters(const std::string& name, const YAML::Node& list) {
  if (!list.IsSequence()) bad(doc_.loc(list), "apps: " + name + ": filters: expected a list");
  std::vector<Filter> out;
  for (const auto& item : list) {
    Filter f;
    f.loc = doc_.loc(item);
    YAML::Node use = item.IsMap() ? item["use"] : item;
    if (!use) bad(f.loc, "apps: " + name + ": a filter needs use: (gzip, prefix or translogger)");
    std::string u = doc_.scalar(use, "use");
    std::optional<FilterKind> k = filter_kind_from_name(u);
    if (!k) bad(doc_.loc(use), "apps: " + name + ": not a filter pasture runs: " + u + " (gzip, prefix, translogger)");
    f.kind = *k;
    f.name = "filter:" + std::string(filter_short_name(f.kind));
    if (item.IsMap()) {
      for (const auto& kv : item) {
        std::string key = doc_.scalar(kv.first, "key");
        if (key == "use") continue;
        if (key == "name") {
          f.name = "filter:" + doc_.scalar(kv.second, "name");
          continue;
        }
        if (!apply_filter_key(f, key, py::Value{doc_.scalar(kv.second, key), doc_.loc(kv.second)}))
          bad(doc_.loc(kv.first), "apps: " + name + ": unknown key '" + key + "' for " + filter_egg(f.kind));
      }
    }
    finish_filter(f);
    out.push_back(std::move(f));
  }
  if (out.size() > 16) bad(doc_.loc(list), "apps: " + name + ": more than 16 filters");
  return out;
}

AppKind AppBuilder::kind_of(const std::string& name, const YAML::Node& n) {
  YAML::Node use = n["use"];
  if (!use) bad(doc_.loc(n), "apps: " + name + ": missing 'use:' (urlmap, balancer, proxy or echo)");
  std::string u = lower(doc_.scalar(use, "use"));
  if (u == "urlmap" || u == "egg:paste#urlmap") return AppKind::UrlMap;
  if (u == "balancer" || u == "egg:pasture#balancer" || u == "egg:paste#balancer") return AppKind::Balancer;
  if (u == "proxy" || u == "egg:paste#proxy") return AppKind::Proxy;
  if (u == "echo" || u == "egg:pasture#echo") return AppKind::Echo;
  if (u == "status" || u == "egg:pasture#status") return AppKind::Status;
  if (u == "egg:paste#static") return AppKind::PasteStatic;
  if (u == "static" || u == "egg:pasture#static") return AppKind::PastureStatic;
  bad(doc_.loc(use), "apps: " + name + ": not supported yet: use: " + use.Scalar() +
                         " (pasture serves egg:Paste#urlmap, egg:pasture#balancer, egg:Paste#proxy, "
                         "egg:pasture#echo, egg:pasture#status, egg:Paste#static and egg:pasture#static; Python WSGI apps are served from paste.deploy INI files, not from YAML yet)");
}

void AppBuilder::route(Handler& h, std::vector<urlmap::Normalized>& keys, const std::string& key,
                       const YAML::Node& target, const SourceLoc& at) {
  urlmap::Normalized norm;
  try {
    norm = urlmap::normalize_url(urlmap::parse_path_expression(key));
  } catch (const py::Error& e) {
    bad(at, "route '" + key + "' in apps: " + h.name.substr(10) + ": " + e.py_str());
  }
  std::string target_name = doc_.scalar(target, "route target");
  h.entries.push_back({norm.domain.value_or(""), norm.path, app(target_name, doc_.loc(target)), at});
  keys.push_back(norm);
}

int AppBuilder::urlmap(const std::string& name, const YAML::Node& n) {
  Handler h;
  h.kind = HandlerKind::UrlMap;
  h.name = "composite:" + name;
  h.loc = doc_.loc(n);
  std::vector<urlmap::Normalized> keys;
  std::optional<YAML::Node> routes;
  for (const auto& kv : n) {
    std::string key = doc_.scalar(kv.first, "key");
    if (key == "use" || key == "filters") continue;
    if (key == "routes") {
      routes = kv.second;
    } else if (key == "not_found_app") {
      h.not_found = app(doc_.scalar(kv.second, key), doc_.loc(kv.second));
    } else {
      bad(doc_.loc(kv.first), "apps: " + name + ": unknown key '" + key + "' for a urlmap (expected routes, "
                              "not_found_app)");
    }
  }
  if (!routes || routes->IsNull()) bad(h.loc, "apps: " + name + ": a urlmap needs routes:");
  if (routes->IsMap()) {
    doc_.require_map(*routes, "apps: " + name + ": routes");
    for (const auto& kv : *routes) route(h, keys, doc_.scalar(kv.first, "route"), kv.second, doc_.loc(kv.first));
  } else if (routes->IsSequence()) {
    // - {path: /api, domain: example.com, port: 8080, app: pool}
    for (const auto& r : *routes) {
      doc_.require_map(r, "route");
      std::string path = r["path"] ? doc_.scalar(r["path"], "path") : "/";
      std::string url = path;
      if (r["domain"]) {
        url = "http://" + doc_.scalar(r["domain"], "domain") + (r["port"] ? ":" + doc_.scalar(r["port"], "port") : "") +
              path;
      } else if (r["port"]) {
        bad(doc_.loc(r["port"]), "route: port needs a domain");
      }
      if (!r["app"]) bad(doc_.loc(r), "route: missing app:");
      route(h, keys, url, r["app"], doc_.loc(r));
    }
  } else {
    bad(doc_.loc(*routes), "apps: " + name + ": routes: expected a map of path: app");
  }
  std::vector<UrlMapEntry> entries = std::move(h.entries);
  h.entries.clear();
  for (size_t i : urlmap::dispatch_order(keys)) h.entries.push_back(entries[i]);
  return add(std::move(h));
}

int AppBuilder::balancer(const std::string& name, const YAML::Node& n) {
  Pool p;
  p.name = "app:" + name;
  p.loc = doc_.loc(n);
  py::Dict conf;
  std::vector<UpstreamServer> servers;
  for (const auto& kv : n) {
    std::string key = doc_.scalar(kv.first, "key");
    if (key == "use" || key == "filters") continue;
    if (key == "servers") {
      servers = doc_.server_list(kv.second, "apps: " + name + ": servers");
      std::string spec;
      for (const auto& s : servers) spec += server_spec(s) + "\n";
      conf.set(key, py::Value{spec, doc_.loc(kv.second)});
    } else {
      conf.set(key, py::Value{doc_.scalar(kv.second, "apps: " + name + ": " + key), doc_.loc(kv.second)});
    }
  }
  if (!conf.contains("servers") && !conf.contains("servers_from")) {
    bad(p.loc, "apps: " + name + ": a balancer needs servers: (or servers_from:)");
  }
  std::vector<std::string> unknown = fill_pool(p, conf, p.loc);
  if (!unknown.empty()) {
    bad(conf.find(unknown[0])->loc, "apps: " + name + ": unknown key '" + unknown[0] +
                                       "' for a balancer (expected servers, servers_from, method, connect_timeout, "
                                       "read_timeout, send_timeout, keepalive, upgrade, tunnel_timeout, cookie_secret, cookie_name, "
                                       "hash_key, consistent, hash_whole_ip, max_servers, resolve_interval, resolve_min, resolve_max, "
                                       "resolve_timeout, resolver)");
  }
  if (!servers.empty()) {
    std::vector<UpstreamServer> etcd;  // servers_from: etcd://..., already taken
    for (UpstreamServer& s : p.sources)
      if (s.discover == UpstreamServer::Discover::Etcd) etcd.push_back(std::move(s));
    p.servers = servers;  // with each item's own line
    p.servers.insert(p.servers.end(), etcd.begin(), etcd.end());
    take_sources(p, p.loc);
  }
  return add_pool(std::move(p), name, n);
}

int AppBuilder::proxy(const std::string& name, const YAML::Node& n) {
  std::optional<YAML::Node> address;
  std::vector<std::pair<std::string, py::Value>> tls;
  for (const auto& kv : n) {
    std::string key = doc_.scalar(kv.first, "key");
    if (key == "address") {
      address = kv.second;
    } else if (py::starts_with(key, "tls_")) {
      tls.emplace_back(key, py::Value{doc_.scalar(kv.second, "apps: " + name + ": " + key), doc_.loc(kv.second)});
    } else if (key != "use" && key != "filters") {
      bad(doc_.loc(kv.first), "apps: " + name + ": unknown key '" + key +
                                  "' for a proxy (expected address, or tls_verify, tls_ca_certs, tls_server_name, "
                                  "tls_client_cert, tls_client_key for an https:// address)");
    }
  }
  if (!address) bad(doc_.loc(n), "apps: " + name + ": a proxy needs address: http://host:port");
  Pool p = proxy_pool(py::strip(doc_.scalar(*address, "address")), doc_.loc(*address));
  p.name = "app:" + name;
  p.loc = doc_.loc(n);
  for (const auto& [key, v] : tls)
    if (!fill_tls_key(p, key, v)) bad(v.loc, "apps: " + name + ": unknown key '" + key + "' for a proxy");
  check_tls_keys(p);
  return add_pool(std::move(p), name, n);
}

int AppBuilder::status(const std::string& name, const YAML::Node& n) {
  Handler h;
  h.kind = HandlerKind::Status;
  h.name = "app:" + name;
  h.loc = doc_.loc(n);
  h.allow = default_status_allow();
  for (const auto& kv : n) {
    std::string key = doc_.scalar(kv.first, "key");
    if (key == "allow") {
      std::string list;
      if (kv.second.IsSequence()) {
        for (const auto& item : kv.second) list += doc_.scalar(item, "allow") + " ";
      } else {
        list = doc_.scalar(kv.second, "allow");
      }
      h.allow = parse_address_ranges(py::Value{list, doc_.loc(kv.second)}, "allow");
    } else if (key == "hosts") {
      std::string list;
      if (kv.second.IsSequence()) {
        for (const auto& item : kv.second) list += doc_.scalar(item, "hosts") + " ";
      } else {
        list = doc_.scalar(kv.second, "hosts");
      }
      h.status_hosts = parse_status_hosts(py::Value{list, doc_.loc(kv.second)});
    } else if (key != "use" && key != "filters") {
      bad(doc_.loc(kv.first), "apps: " + name + ": unknown key '" + key + "' for status (expected allow, hosts)");
    }
  }
  return add(std::move(h));
}

// The same keys as the INI section (conf/site_static.h); `index` and
// `precompressed` may be lists.
int AppBuilder::static_files(const std::string& name, const YAML::Node& n, bool paste) {
  Handler h;
  h.kind = HandlerKind::Static;
  h.name = "app:" + name;
  h.loc = doc_.loc(n);
  py::Dict keys;
  for (const auto& kv : n) {
    std::string key = doc_.scalar(kv.first, "key");
    if (key == "use") continue;
    std::string v;
    if (kv.second.IsSequence()) {
      for (const auto& item : kv.second) v += doc_.scalar(item, key) + " ";
    } else {
      v = doc_.scalar(kv.second, key);
    }
    keys.set(key, py::Value{v, doc_.loc(kv.second)});
  }
  py::Value fallback;
  std::vector<std::string> unknown = fill_static(h.files, paste, keys, "apps: " + name, h.loc, &fallback);
  if (!unknown.empty())
    bad(keys.find(unknown.front())->loc, "apps: " + name + ": unknown key '" + unknown.front() + "' for static " +
                                             "(expected document_root, cache_max_age" +
                                             (paste ? ")" : ", index, follow_symlinks, dotfiles, precompressed, "
                                                            "charset, fallback, autoindex)"));
  int idx = add(std::move(h));
  if (!fallback.value.empty()) {
    int fb = app(fallback.value, fallback.loc);
    if (site_.handlers[fb].kind == HandlerKind::UrlMap)
      bad(fallback.loc, "fallback: '" + fallback.value + "' is a urlmap; name one of its apps");
    site_.handlers[idx].files.fallback = fb;
  }
  return idx;
}

int AppBuilder::echo(const std::string& name, const YAML::Node& n) {
  Handler h;
  h.kind = HandlerKind::Echo;
  h.name = "app:" + name;
  h.loc = doc_.loc(n);
  h.echo_name = name;
  for (const auto& kv : n) {
    std::string key = doc_.scalar(kv.first, "key");
    if (key == "name") {
      h.echo_name = doc_.scalar(kv.second, "name");
    } else if (key != "use" && key != "filters") {
      bad(doc_.loc(kv.first), "apps: " + name + ": unknown key '" + key + "' for echo (expected name)");
    }
  }
  return add(std::move(h));
}

}  // namespace

bool is_yaml_path(const std::string& path) {
  auto ends = [&](const char* ext) {
    size_t n = strlen(ext);
    return path.size() > n && lower(path.substr(path.size() - n)) == ext;
  };
  return ends(".yaml") || ends(".yml");
}

Site load_yaml_site(const std::string& path, const std::string& app_name, const std::string& server_name,
                    const std::vector<std::pair<std::string, std::string>>& vars) {
  Doc doc(path);
  YAML::Node root = parse_file(path);
  if (!root || root.IsNull()) bad({path, 0}, "empty config (expected server:, app: and apps:)");
  doc.require_map(root, "top level");
  Site site;
  site.config_file = path;
  site.server_name = "main";
  std::optional<YAML::Node> server, app, apps;
  for (const auto& kv : root) {
    std::string key = doc.scalar(kv.first, "key");
    if (key == "server") {
      server = kv.second;
    } else if (key == "app") {
      app = kv.second;
    } else if (key == "apps") {
      apps = kv.second;
    } else {
      bad(doc.loc(kv.first), "unknown top-level key '" + key + "' (expected server, app, apps)");
    }
  }
  TlsKeys tls;
  server_settings(site, doc, server, tls);
  finish_tls(site, tls);
  if (!apps || !apps->IsMap() || apps->size() == 0) {
    bad(apps ? doc.loc(*apps) : SourceLoc{path, 0}, "apps: expected a map of app name -> app settings");
  }
  doc.require_map(*apps, "apps");
  site.app_name = !app_name.empty() ? app_name : app ? doc.scalar(*app, "app") : "main";
  SourceLoc ref = app && app_name.empty() ? doc.loc(*app) : SourceLoc{path, 0};
  AppBuilder builder(site, doc, *apps);
  site.root = builder.app(site.app_name, ref);
  if (!server_name.empty() && server_name != "main") {
    site.notices.push_back(path + ": --server-name " + server_name + " has no effect on a YAML config (it has one server)");
  }
  for (const auto& [k, v] : vars) {
    site.notices.push_back(path + ": " + k + "=" + v + " has no effect on a YAML config (no %(name)s interpolation)");
  }
  return site;
}

std::vector<UpstreamServer> load_servers_file(const std::string& path) {
  Doc doc(path);
  YAML::Node root = parse_file(path);
  YAML::Node list = root;
  if (root.IsMap()) {
    doc.require_map(root, "servers file");
    for (const auto& kv : root) {
      std::string key = doc.scalar(kv.first, "key");
      if (key != "servers") bad(doc.loc(kv.first), "servers file: unknown key '" + key + "' (expected servers)");
    }
    list = root["servers"];
  }
  if (!list || list.IsNull()) bad({path, 0}, "servers file: expected a list of servers (or a map with servers:)");
  return doc.server_list(list, "servers file");
}

std::vector<UpstreamServer> load_servers_from(const py::Value& setting, std::string* resolved) {
  std::string p = py::strip(setting.value);
  if (p.empty()) bad(setting.loc, "servers_from: empty file name");
  if (!py::isabs(p)) p = py::dirname(setting.loc.file.empty() ? py::abspath(".") + "/x" : setting.loc.file) + "/" + p;
  p = py::normpath(p);
  *resolved = p;
  try {
    return load_servers_file(p);
  } catch (const ConfigError& e) {
    if (e.line() > 0 || e.file() != p) throw;
    bad(setting.loc, "servers_from: " + p + ": " + e.message());
  }
}

}  // namespace pasture::conf
