// [server:NAME] -> ServerSettings.
#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cctype>
#include <string_view>

#include "conf/paste_eggs.h"
#include "conf/site_builder.h"
#include "conf/site_pool.h"

namespace pasture::conf {

using namespace site_detail;

namespace {

enum class Flavour { PasteHttp, Waitress, Gunicorn, Pasture };

[[noreturn]] void bad(const SourceLoc& loc, const std::string& msg) { throw ConfigError(loc.file, loc.line, msg); }

Flavour flavour_of(const paste::ContextPtr& ctx) {
  if (is_egg(ctx, "paste", "http")) return Flavour::PasteHttp;
  if (is_egg(ctx, "waitress", "main")) return Flavour::Waitress;
  if (is_egg(ctx, "gunicorn", "main")) return Flavour::Gunicorn;
  if (is_egg(ctx, "pasture", "main")) return Flavour::Pasture;
  std::string where = "[" + (ctx->factory_section.empty() ? section_of(ctx) : ctx->factory_section) + "]";
  SourceLoc loc = ctx->factory_loc.line ? ctx->factory_loc : section_loc(ctx);
  const auto& f = ctx->factory;
  if (f.type == paste::FactoryRef::Type::Egg) bad(loc, "not supported yet: egg:" + f.dist + "#" + f.entry_point + " in " + where);
  bad(loc, "Python server " + f.str() + " in " + where + " not supported yet");
}

// `listen = a:1 b:2 unix:/path` (waitress, pasture) or gunicorn `bind = a:1,b:2`.
// pasture's: `listen = 0.0.0.0:443 tls 0.0.0.0:80`, `tls` marking the address before it.
std::vector<Listener> parse_listen(const std::string& value, const SourceLoc& loc, int default_port, bool tls_marks) {
  std::string v = value;
  std::replace(v.begin(), v.end(), ',', ' ');
  std::vector<Listener> out;
  for (const auto& tok : py::split(v)) {
    if (tls_marks && tok == "tls") {
      if (out.empty() || out.back().tls) bad(loc, "listen: 'tls' follows the address it applies to (0.0.0.0:443 tls)");
      out.back().tls = true;
      continue;
    }
    if (tls_marks && tok == "h2c") {
      if (out.empty() || out.back().h2c || out.back().tls)
        bad(loc, "listen: 'h2c' follows the plain (not tls) address it applies to (127.0.0.1:8080 h2c)");
      out.back().h2c = true;
      continue;
    }
    if (py::starts_with(tok, "fd://")) bad(loc, "not supported yet: listening on " + tok);
    if (py::starts_with(tok, "unix:")) {
      Listener l;
      l.loc = loc;
      l.unix_path = parse_unix_path(tok.substr(5), loc, "listen");
      out.push_back(l);
      continue;
    }
    out.push_back(parse_host_port(tok, default_port, loc));
  }
  if (out.empty()) bad(loc, "empty listen list");
  return out;
}

// `via = on | off | NAME` (Apache's ProxyVia, with the pseudonym RFC 9110
// 7.6.3 allows): the received-by name, "" for off. A name is a token or
// host[:port], as it goes into every forwarded head.
std::string parse_via(const std::string& value, const SourceLoc& loc) {
  int b = as_bool(value);
  if (b >= 0) return b ? ServerSettings{}.via : "";
  std::string v = py::strip(value);
  static constexpr std::string_view kAllowed = "!#$%&'*+-.^_`|~:[]";
  bool ok = !v.empty() && v.size() <= 255;
  for (char c : v)
    if (!isalnum((unsigned char)c) && kAllowed.find(c) == std::string_view::npos) ok = false;
  if (!ok) bad(loc, "via: expected on, off or a name (a token or host:port), got '" + value + "'");
  return v;
}

// A byte size as nginx writes it: "1048576", "512k", "10m", "1g" (case
// insensitive); 0 is allowed.
uint64_t parse_size(const std::string& value, const SourceLoc& loc, const std::string& what) {
  std::string v = py::strip(value);
  uint64_t mult = 1;
  if (!v.empty()) {
    switch (tolower((unsigned char)v.back())) {
      case 'k': mult = 1ull << 10; break;
      case 'm': mult = 1ull << 20; break;
      case 'g': mult = 1ull << 30; break;
      default: break;
    }
    if (mult != 1) v.pop_back();
  }
  if (v.empty() || v.size() > 15 || v.find_first_not_of("0123456789") != std::string::npos)
    bad(loc, what + ": expected a size in bytes (e.g. 1048576, 512k, 10m, 1g), got '" + py::strip(value) + "'");
  uint64_t n = std::stoull(v);
  if (n > (1ull << 50) / mult) bad(loc, what + ": '" + py::strip(value) + "' is too large");
  return n * mult;
}

// `user =` / `group =`: a name or a number that the passwd / group database
// knows (what --user/--group accept), so a typo fails `pasture check`, not
// the start after binding.
std::string parse_account(const std::string& key, const py::Value& v) {
  std::string name = py::strip(v.value);
  if (name.empty()) bad(v.loc, key + ": empty (a " + key + " name or number)");
  bool numeric = name.find_first_not_of("0123456789") == std::string::npos && name.size() <= 10;
  unsigned long id = numeric ? std::stoul(name) : 0;
  bool known = key == "user" ? (numeric ? getpwuid((uid_t)id) : getpwnam(name.c_str())) != nullptr
                             : (numeric ? getgrgid((gid_t)id) : getgrnam(name.c_str())) != nullptr;
  if (!known) bad(v.loc, key + ": no such " + key + " '" + name + "'");
  return name;
}

// Applies one known key; returns false for a key pasture does not use.
bool apply_key(ServerSettings& s, Flavour fl, const std::string& key, const py::Value& v) {
  if (key == "workers") {
    s.workers = static_cast<int>(parse_uint(v.value, 4096, v.loc, "workers"));
  } else if (key == "backlog" || (key == "request_queue_size" && fl == Flavour::PasteHttp)) {
    s.backlog = parse_uint(v.value, 1u << 20, v.loc, key);
    if (s.backlog == 0) bad(v.loc, key + ": must be at least 1");
  } else if (fl == Flavour::Pasture && key == "client_header_timeout") {
    s.client_header_timeout_ms = parse_duration_ms(v.value, v.loc);
  } else if (fl == Flavour::Pasture && key == "keepalive_timeout") {
    s.keepalive_timeout_ms = parse_duration_ms(v.value, v.loc);
  } else if (fl == Flavour::Pasture && key == "max_header_bytes") {
    s.max_header_bytes = parse_uint(v.value, 1u << 30, v.loc, key);
  } else if (fl == Flavour::Pasture && key == "max_url_bytes") {
    s.max_url_bytes = parse_uint(v.value, 1u << 30, v.loc, key);
  } else if ((fl == Flavour::Pasture && key == "client_max_body_size") ||
             (fl == Flavour::Waitress && key == "max_request_body_size")) {
    s.max_body_bytes = parse_size(v.value, v.loc, key);
  } else if ((fl == Flavour::Pasture && key == "max_connections") ||
             (fl == Flavour::Gunicorn && key == "worker_connections") ||
             (fl == Flavour::Waitress && key == "connection_limit")) {
    s.max_connections = parse_uint(v.value, 1u << 24, v.loc, key);
    if (s.max_connections == 0 && fl != Flavour::Pasture) bad(v.loc, key + ": must be at least 1");
  } else if (fl == Flavour::Waitress && key == "max_request_header_size") {
    s.max_header_bytes = parse_uint(v.value, 1u << 30, v.loc, key);
  } else if (fl == Flavour::Gunicorn && key == "limit_request_line") {
    // gunicorn: 0 = unlimited; the limit applies to the whole request line,
    // pasture's to the target (the line's largest part).
    uint32_t n = parse_uint(v.value, 1u << 30, v.loc, key);
    s.max_url_bytes = n == 0 ? (1u << 30) : n;
  } else if ((fl == Flavour::Pasture && key == "max_header_fields") ||
             (fl == Flavour::Gunicorn && key == "limit_request_fields")) {
    s.max_header_fields = parse_uint(v.value, 32768, v.loc, key);
    if (s.max_header_fields == 0) bad(v.loc, key + ": must be at least 1");
  } else if (fl == Flavour::Pasture && key == "via") {
    s.via = parse_via(v.value, v.loc);
  } else if (fl == Flavour::Pasture && key == "http2") {
    s.http2 = parse_bool(v.value, v.loc, key);
  } else if (fl == Flavour::Pasture && key == "http2_max_concurrent_streams") {
    s.h2_max_streams = parse_uint(v.value, 1u << 20, v.loc, key);
    if (s.h2_max_streams == 0) bad(v.loc, key + ": must be at least 1");
  } else if (fl == Flavour::Pasture && key == "http2_max_resets") {
    s.h2_max_resets = parse_uint(v.value, 1u << 20, v.loc, key);
    if (s.h2_max_resets == 0) bad(v.loc, key + ": must be at least 1");
  } else if (fl == Flavour::Pasture && key == "trace") {
    s.trace = parse_bool(v.value, v.loc, key);
  } else if (fl == Flavour::Pasture && key == "client_body_timeout") {
    s.client_body_timeout_ms = parse_duration_ms(v.value, v.loc);
  } else if (fl == Flavour::Pasture && key == "send_timeout") {
    s.send_timeout_ms = parse_duration_ms(v.value, v.loc);
    if (s.send_timeout_ms == 0) bad(v.loc, "send_timeout: must be more than 0");
  } else if ((fl == Flavour::Pasture || fl == Flavour::Gunicorn) && key == "graceful_timeout") {
    s.graceful_timeout_ms = parse_duration_ms(v.value, v.loc);
  } else if (fl == Flavour::Pasture && key == "drain_idle_grace") {
    s.drain_idle_grace_ms = parse_duration_ms(v.value, v.loc);
  } else if ((fl == Flavour::Pasture && key == "worker_timeout") ||
             (fl == Flavour::Gunicorn && key == "timeout")) {
    s.worker_timeout_ms = parse_duration_ms(v.value, v.loc);
  } else if ((fl == Flavour::Pasture || fl == Flavour::Gunicorn) && key == "max_requests") {
    s.max_requests = parse_uint(v.value, 1u << 31, v.loc, key);
  } else if ((fl == Flavour::Pasture || fl == Flavour::Gunicorn) && key == "max_requests_jitter") {
    s.max_requests_jitter = parse_uint(v.value, 1u << 31, v.loc, key);
  } else if ((fl == Flavour::Pasture || fl == Flavour::Gunicorn) && key == "reuse_port") {
    s.reuse_port = parse_bool(v.value, v.loc, key);
  } else if (fl == Flavour::Pasture && key == "underscores_in_headers") {
    s.underscores_in_headers = parse_bool(v.value, v.loc, key);
  } else if (fl == Flavour::Pasture && key == "trusted_proxies") {
    s.trusted_proxies = parse_address_ranges(v, "trusted_proxies");
  } else if ((fl == Flavour::Pasture && key == "access_log") ||
             (fl == Flavour::Gunicorn && key == "accesslog")) {
    s.access_log = py::strip(v.value);
  } else if (fl == Flavour::Pasture && key == "admin_socket") {
    std::string path = py::strip(v.value);
    s.admin_socket = path.empty() ? "" : parse_unix_path(path, v.loc, key);
  } else if (fl == Flavour::Pasture && key == "status_history_interval") {
    s.status_history_interval_ms = parse_duration_ms(v.value, v.loc);
  } else if (fl == Flavour::Pasture && key == "admin_socket_mode") {
    s.admin_socket_mode = parse_unix_perms(v.value, v.loc);
  } else if (key == "app_workers") {  // pasture's Python app processes, whatever the flavour
    s.app_workers = static_cast<int>(parse_uint(v.value, 4096, v.loc, key));
  } else if (key == "python") {
    s.python = py::strip(v.value);
  } else if (key == "app_mode") {
    std::string m = py::strip(v.value);
    if (m == "embedded")
      s.app_mode = ServerSettings::AppMode::Embedded;
    else if (m == "process")
      s.app_mode = ServerSettings::AppMode::Process;
    else
      bad(v.loc, "app_mode: '" + m + "' is neither 'embedded' nor 'process'");
    s.app_mode_loc = v.loc;
  } else if (key == "threads" && fl != Flavour::PasteHttp) {  // waitress, gunicorn, pasture
    s.threads = parse_uint(v.value, 1024, v.loc, key);
    if (s.threads == 0) bad(v.loc, key + ": must be at least 1");
  } else if (key == "threadpool_workers" && fl == Flavour::PasteHttp) {
    s.threads = std::max(1u, parse_uint(v.value, 1024, v.loc, key));
  } else if ((fl == Flavour::Pasture && key == "preload") ||
             (fl == Flavour::Gunicorn && key == "preload_app")) {
    s.preload = parse_bool(v.value, v.loc, key);
  } else if ((fl == Flavour::Pasture || fl == Flavour::Gunicorn) && key == "user") {
    s.user = parse_account(key, v);
    s.user_loc = v.loc;
  } else if ((fl == Flavour::Pasture || fl == Flavour::Gunicorn) && key == "group") {
    s.group = parse_account(key, v);
    s.group_loc = v.loc;
  } else if (fl == Flavour::Pasture && key == "core_dumps") {
    s.core_dumps = parse_bool(v.value, v.loc, key);
  } else if (fl == Flavour::Gunicorn && key == "keepalive") {
    s.keepalive_timeout_ms = parse_duration_ms(v.value, v.loc);
  } else {
    return false;
  }
  return true;
}

// host/port keys -> one listener (Paste#http also takes host = "h:p" without port).
Listener host_port_listener(const py::Dict& conf, Flavour fl, const SourceLoc& section, int default_port) {
  const py::Value* host = conf.find("host");
  const py::Value* port = conf.find("port");
  std::string default_host = fl == Flavour::Waitress || fl == Flavour::Gunicorn ? "0.0.0.0" : "127.0.0.1";
  Listener l;
  l.loc = host ? host->loc : port ? port->loc : section;
  l.host = host ? py::strip(host->value) : default_host;
  l.port = (uint16_t)default_port;
  if (host && !port && fl == Flavour::PasteHttp && l.host.find(':') != std::string::npos &&
      (l.host[0] != '[' || l.host.find("]:") != std::string::npos)) {
    return parse_host_port(l.host, default_port, host->loc);
  }
  if (l.host.size() > 1 && l.host.front() == '[' && l.host.back() == ']') l.host = l.host.substr(1, l.host.size() - 2);
  if (l.host.empty() || l.host == "*") l.host = "0.0.0.0";
  check_host(l.host, l.loc);
  if (port) l.port = static_cast<uint16_t>(parse_uint(port->value, 65535, port->loc, "port"));
  return l;
}

}  // namespace

bool apply_server_key(ServerSettings& s, const std::string& key, const py::Value& v) {
  return apply_key(s, Flavour::Pasture, key, v);
}

void finish_app_mode(ServerSettings& s) {
  if (!s.python.empty()) {
    // Another interpreter can only run the app in its own processes.
    if (s.app_mode_loc.line && s.app_mode == ServerSettings::AppMode::Embedded)
      bad(s.app_mode_loc, "app_mode = embedded cannot use another interpreter (python = " + s.python +
                              "); use app_mode = process");
    s.app_mode = ServerSettings::AppMode::Process;
  }
}

void build_server(Site& site, const paste::ContextPtr& ctx) {
  if (ctx->object_type != paste::ObjectType::Server) {
    bad(section_loc(ctx), "[" + section_of(ctx) + "] is not a server (filter-with on a server?)");
  }
  Flavour fl = flavour_of(ctx);
  ServerSettings& s = site.server;
  s.use = ctx->factory.str();
  s.loc = section_loc(ctx);
  const py::Dict& conf = *ctx->local_conf;
  const py::Value* listen = conf.find(fl == Flavour::Gunicorn ? "bind" : "listen");
  if (fl == Flavour::PasteHttp) listen = nullptr;
  std::vector<std::string> ignored;
  TlsKeys tls;
  TlsFlavour tls_fl = fl == Flavour::PasteHttp  ? TlsFlavour::Paste
                      : fl == Flavour::Gunicorn ? TlsFlavour::Gunicorn
                      : fl == Flavour::Pasture  ? TlsFlavour::Pasture
                                                : TlsFlavour::None;
  for (const auto& [key, v] : conf) {
    if (key == "host" || key == "port" || (listen && &v == listen)) continue;
    if (take_tls_key(tls, tls_fl, key, v)) continue;
    bool unix_keys = fl == Flavour::Waitress || fl == Flavour::Pasture;
    if (unix_keys && (key == "unix_socket" || key == "unix_socket_perms")) continue;
    if (!apply_key(s, fl, key, v)) ignored.push_back(key);
  }
  if (listen && (conf.contains("host") || conf.contains("port"))) {
    const py::Value* hp = conf.contains("host") ? conf.find("host") : conf.find("port");
    bad(hp->loc, "host/port cannot be combined with '" + std::string(fl == Flavour::Gunicorn ? "bind" : "listen") +
                     " =' in [" + section_of(ctx) + "]");
  }
  const py::Value* unix_socket = fl == Flavour::Waitress || fl == Flavour::Pasture ? conf.find("unix_socket") : nullptr;
  const py::Value* perms = fl == Flavour::Waitress || fl == Flavour::Pasture ? conf.find("unix_socket_perms") : nullptr;
  if (unix_socket) {
    // waitress's own checks (Adjustments.__init__), with its messages.
    if (conf.contains("host") || conf.contains("port")) {
      bad(unix_socket->loc, "unix_socket may not be set if host or port is set");
    }
    if (listen) bad(unix_socket->loc, "unix_socket may not be set if listen is set");
    Listener l;
    l.loc = unix_socket->loc;
    l.unix_path = parse_unix_path(py::strip(unix_socket->value), unix_socket->loc, "unix_socket");
    l.unix_perms = 0600;  // waitress's default unix_socket_perms
    s.listen = {l};
  } else {
    // Paste's httpserver listens on 4443 by default with ssl_pem.
    const py::Value* pem = fl == Flavour::PasteHttp ? conf.find("ssl_pem") : nullptr;
    int default_port = pem && !py::strip(pem->value).empty() ? 4443 : 8080;
    s.listen = listen ? parse_listen(listen->value, listen->loc, fl == Flavour::Gunicorn ? 8000 : 8080,
                                     fl == Flavour::Pasture)
                      : std::vector<Listener>{host_port_listener(conf, fl, s.loc, default_port)};
  }
  if (perms) {
    uint32_t mode = parse_unix_perms(perms->value, perms->loc);
    for (Listener& l : s.listen) l.unix_perms = mode;
  }
  finish_app_mode(s);
  finish_tls(site, tls);
  ignored_keys(site, ctx, ignored);
}

}  // namespace pasture::conf
