#include "conf/site_pool.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include <arpa/inet.h>
#include <sys/un.h>

#include "common/hash_key.h"
#include "common/health_state.h"
#include "conf/error.h"
#include "conf/yaml_loader.h"

namespace pasture::conf {

namespace {

[[noreturn]] void bad(const SourceLoc& loc, const std::string& msg) { throw ConfigError(loc.file, loc.line, msg); }

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// parse_duration_ms() with `what` in front of its message.
uint32_t duration(const std::string& value, const SourceLoc& loc, const std::string& what) {
  try {
    return parse_duration_ms(value, loc);
  } catch (const ConfigError& e) {
    bad(loc, what + ": " + e.message());
  }
}

void apply_param(UpstreamServer& s, const std::string& tok, const SourceLoc& loc) {
  if (tok == "backup") {
    s.backup = true;
  } else if (tok == "down") {
    s.down = true;
  } else if (py::starts_with(tok, "weight=")) {
    s.weight = parse_uint(tok.substr(7), 1000000, loc, "weight of " + s.label());
    if (s.weight == 0) bad(loc, "servers: weight of " + s.label() + " must be at least 1");
  } else if (py::starts_with(tok, "max_conns=")) {
    s.max_conns = parse_uint(tok.substr(10), 1000000000, loc, "max_conns of " + s.label());
  } else if (py::starts_with(tok, "max_fails=")) {
    s.max_fails = parse_uint(tok.substr(10), 1000000, loc, "max_fails of " + s.label());
  } else if (py::starts_with(tok, "fail_timeout=")) {
    s.fail_timeout_ms = duration(tok.substr(13), loc, "servers: fail_timeout of " + s.label());
    if (s.fail_timeout_ms == 0) bad(loc, "servers: fail_timeout of " + s.label() + " must be more than 0");
  } else if (py::starts_with(tok, "slow_start=")) {
    s.slow_start_ms = duration(tok.substr(11), loc, "servers: slow_start of " + s.label());
  } else {
    bad(loc, "servers: unknown parameter '" + tok + "' for " + s.label() +
                 " (expected weight=N, max_conns=N, max_fails=N, fail_timeout=T, slow_start=T, backup or down)");
  }
}

using Ranges = std::vector<std::pair<uint16_t, uint16_t>>;

Ranges parse_statuses(const std::string& value, const SourceLoc& loc, const std::string& what) {
  Ranges out;
  std::string err;
  if (!lb::parse_status_ranges(value, &out, &err)) bad(loc, what + ": " + err);
  return out;
}

// `fail_on = 502 503 504` (ranges allowed), or `off`.
Ranges parse_fail_on(const std::string& value, const SourceLoc& loc) {
  std::string v = py::strip(value);
  if (v == "off" || v == "none") return {};
  return parse_statuses(v, loc, "fail_on");
}

// nginx proxy_next_upstream words: error timeout invalid_header
// non_idempotent http_NNN (400-599), or `off`.
void parse_retry_on(Pool& pool, const std::string& value, const SourceLoc& loc) {
  pool.retry_on = 0;
  pool.retry_on_status.clear();
  std::vector<std::string> words = py::split(value);
  if (words.size() == 1 && words[0] == "off") return;
  if (words.empty()) bad(loc, "retry_on: expected conditions like 'error timeout http_502', or off");
  for (const std::string& w : words) {
    uint16_t code = 0;
    if (w == "error") {
      pool.retry_on |= kRetryError;
    } else if (w == "timeout") {
      pool.retry_on |= kRetryTimeout;
    } else if (w == "invalid_header") {
      pool.retry_on |= kRetryInvalidHeader;
    } else if (w == "non_idempotent") {
      pool.retry_on |= kRetryNonIdempotent;
    } else if (w.size() == 8 && py::starts_with(w, "http_") && all_digits(w.substr(5)) &&
               (code = (uint16_t)std::atoi(w.c_str() + 5)) >= 400 && code <= 599) {
      pool.retry_on_status.emplace_back(code, code);
    } else {
      bad(loc, "retry_on: unknown condition '" + w +
                   "' (expected error, timeout, invalid_header, non_idempotent, http_NNN or off)");
    }
  }
}

// "20%" or "20": a whole percentage 0-100.
uint32_t parse_percent(const std::string& value, const SourceLoc& loc, const std::string& what) {
  std::string v = py::strip(value);
  if (!v.empty() && v.back() == '%') v.pop_back();
  return parse_uint(v, 100, loc, what + " (a percentage like 20%)");
}

// An origin-form path: starts with '/', no whitespace or control characters.
std::string parse_check_path(const std::string& value, const SourceLoc& loc) {
  std::string v = py::strip(value);
  bool ok = !v.empty() && v[0] == '/';
  for (char c : v) {
    if ((unsigned char)c <= 32 || c == 127) ok = false;
  }
  if (!ok) bad(loc, "health_check: expected a path like /health, got '" + value + "'");
  return v;
}

// `cookie_max_age`: a number and a unit (ms, s, m, h or d; none = s),
// rounded to whole seconds, 1s to 400d (browsers cap Max-Age at 400 days).
uint32_t parse_max_age(const std::string& value, const SourceLoc& loc) {
  static const std::pair<std::string_view, double> units[] = {
      {"", 1}, {"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
  std::string v = py::strip(value);
  size_t end = v.find_first_not_of("0123456789.");
  std::string num = v.substr(0, end), unit = end == std::string::npos ? "" : v.substr(end);
  double s = -1;
  for (const auto& [name, scale] : units) {
    bool ok = unit == name && !num.empty() && num != "." && num.find('.') == num.rfind('.');
    if (ok) s = std::strtod(num.c_str(), nullptr) * scale;
  }
  if (s < 0.5 || s > 400 * 86400.0) {
    bad(loc, "cookie_max_age: expected a duration from 1s to 400d like 30m, 12h or 7d, got '" + value + "'");
  }
  return static_cast<uint32_t>(std::llround(s));
}

uint32_t positive_ms(const std::string& value, const SourceLoc& loc, const std::string& what) {
  uint32_t ms = duration(value, loc, what);
  if (ms == 0) bad(loc, what + ": must be more than 0");
  return ms;
}

std::string parse_hash_key(const std::string& value, const SourceLoc& loc) {
  lb::HashKeySpec spec;
  if (!lb::parse_hash_key(value, &spec)) {
    bad(loc, "hash_key: unknown key '" + value +
                 "' (expected remote_addr, uri, path, header:NAME, cookie:NAME or arg:NAME)");
  }
  return py::strip(value);
}

HashConsistency parse_consistency(const std::string& value, const SourceLoc& loc) {
  std::string v = py::strip(value);
  if (v == "maglev") return HashConsistency::Maglev;
  if (v == "ring") return HashConsistency::Ring;
  if (v == "none") return HashConsistency::None;
  bad(loc, "consistent: expected maglev, ring or none, got '" + value + "'");
}

// An RFC 6265 cookie-name: a token.
std::string parse_cookie_name(const std::string& value, const SourceLoc& loc) {
  std::string v = py::strip(value);
  static constexpr std::string_view kSeparators = "()<>@,;:\\\"/[]?={}";
  bool ok = !v.empty();
  for (char c : v) {
    if (c <= 32 || c >= 127 || kSeparators.find(c) != std::string_view::npos) ok = false;
  }
  if (!ok) bad(loc, "cookie_name: '" + value + "' is not a valid cookie name");
  return v;
}

// A DNS name as a resolver is asked it: letters, digits, '-', '_' (SRV
// labels) and dots, labels of 1-63 bytes, 253 bytes at most; what is wrong
// with it, or nullptr. The root's dot of a fully qualified name is taken
// off before (parse_source): a dot left at the end is an empty label
// ("app.." loaded as "app.", printed back it read as "app": fuzz_servers).
const char* dns_name_problem(const std::string& n) {
  if (n.empty()) return "empty";
  if (n.size() > 253) return "longer than 253 bytes";
  size_t label = 0;
  for (char c : n) {
    if (c == '.') {
      if (label == 0) return "an empty label";
      label = 0;
      continue;
    }
    if (!std::isalnum((unsigned char)c) && c != '-' && c != '_')
      return "a byte that is not a letter, digit, '-', '_' or '.'";
    if (++label > 63) return "a label longer than 63 bytes";
  }
  return label > 0 ? nullptr : "an empty label";
}

// A fully qualified name without its root's dot.
std::string without_root_dot(std::string n) {
  if (!n.empty() && n.back() == '.') n.pop_back();
  return n;
}

// `dns:NAME:PORT` or `dns+srv:NAME` (conf::UpstreamServer::Discover).
void parse_source(UpstreamServer& s, const std::string& tok, const SourceLoc& loc) {
  bool srv = py::starts_with(tok, "dns+srv:");
  std::string rest = tok.substr(srv ? 8 : 4);
  if (srv) {
    std::string name = without_root_dot(rest);
    s.discover = UpstreamServer::Discover::DnsSrv;
    if (const char* why = dns_name_problem(name))
      bad(loc, "servers: '" + tok + "': '" + rest + "' is not a DNS name (" + why +
                   "; expected dns+srv:NAME like dns+srv:_http._tcp.app.example)");
    s.host = name;
    return;
  }
  s.discover = UpstreamServer::Discover::Dns;
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos)
    bad(loc, "servers: '" + tok + "': missing port (expected dns:NAME:PORT like dns:app.internal:8000)");
  std::string written = rest.substr(0, colon), port = rest.substr(colon + 1);
  std::string name = without_root_dot(written);
  if (const char* why = dns_name_problem(name))
    bad(loc, "servers: '" + tok + "': '" + written + "' is not a DNS name (" + why + ")");
  uint32_t p = parse_uint(port, 65535, loc, "port in '" + tok + "'");
  if (p == 0) bad(loc, "servers: port 0 in '" + tok + "'");
  s.host = name;
  s.port = (uint16_t)p;
}

// `servers_from = etcd://HOST[:PORT][,HOST[:PORT]...]/PREFIX [weight=N ...]`
// (port 2379 by default): the parameters are the defaults of every member
// (a key's value may set its own weight and backup).
UpstreamServer parse_etcd_source(const std::string& value, const SourceLoc& loc) {
  std::vector<std::string> toks = py::split(value);
  const std::string& url = toks.at(0);
  const char* form = " (expected etcd://HOST:PORT/PREFIX like etcd://127.0.0.1:2379/pasture/pools/api)";
  std::string rest = url.substr(7);
  size_t slash = rest.find('/');
  if (slash == std::string::npos || slash == 0) bad(loc, "servers_from: '" + url + "': missing host or prefix" + form);
  UpstreamServer s;
  s.loc = loc;
  s.discover = UpstreamServer::Discover::Etcd;
  std::string hosts = rest.substr(0, slash), prefix = rest.substr(slash);
  if (hosts.find('@') != std::string::npos)
    bad(loc, "servers_from: '" + url + "': user names and passwords are not supported (etcd without auth, or a local proxy)");
  for (size_t at = 0; at <= hosts.size();) {
    size_t comma = std::min(hosts.find(',', at), hosts.size());
    Listener l = parse_host_port(hosts.substr(at, comma - at), 2379, loc);
    at = comma + 1;
    if (l.port == 0) bad(loc, "servers_from: port 0 in '" + url + "'");
    s.etcd_endpoints.emplace_back(l.host, l.port);
  }
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  if (prefix.size() < 2 || prefix.find_first_of("?#") != std::string::npos)
    bad(loc, "servers_from: '" + url + "': expected a key prefix after the address" + std::string(form));
  s.etcd_prefix = prefix + "/";
  for (size_t i = 1; i < toks.size(); i++) apply_param(s, toks[i], loc);
  return s;
}

// `resolver = 10.0.0.2:53 [::1]:5353` (port 53 by default): IP literals.
std::vector<std::pair<std::string, uint16_t>> parse_resolvers(const py::Value& v) {
  std::string list = v.value;
  std::replace(list.begin(), list.end(), ',', ' ');
  std::vector<std::pair<std::string, uint16_t>> out;
  for (const std::string& tok : py::split(list)) {
    Listener l = parse_host_port(tok, 53, v.loc);
    in6_addr a;
    if (inet_pton(AF_INET, l.host.c_str(), &a) != 1 && inet_pton(AF_INET6, l.host.c_str(), &a) != 1)
      bad(v.loc, "resolver: '" + tok + "' is not an IP address (a name server is given by address, like 10.0.0.2:53)");
    if (l.port == 0) bad(v.loc, "resolver: port 0 in '" + tok + "'");
    out.emplace_back(l.host, l.port);
  }
  if (out.empty()) bad(v.loc, "resolver: expected name server addresses like 10.0.0.2:53");
  return out;
}

// Discovery keys of a pool; false if `key` is none of them.
bool fill_discovery_key(Pool& pool, const std::string& key, const py::Value& v) {
  if (key == "max_servers") {
    pool.max_servers = parse_uint(v.value, 4096, v.loc, "max_servers");
    if (pool.max_servers == 0) bad(v.loc, "max_servers: must be at least 1");
  } else if (key == "resolve_interval") {
    pool.resolve_interval_ms = positive_ms(v.value, v.loc, "resolve_interval");
  } else if (key == "resolve_min") {
    pool.resolve_min_ms = positive_ms(v.value, v.loc, "resolve_min");
  } else if (key == "resolve_max") {
    pool.resolve_max_ms = positive_ms(v.value, v.loc, "resolve_max");
  } else if (key == "resolve_timeout") {
    pool.resolve_timeout_ms = positive_ms(v.value, v.loc, "resolve_timeout");
  } else if (key == "resolver") {
    pool.resolvers = parse_resolvers(v);
  } else {
    return false;
  }
  return true;
}

}  // namespace

void take_sources(Pool& pool, const SourceLoc& loc) {
  pool.sources.clear();
  std::vector<UpstreamServer> servers;
  for (UpstreamServer& s : pool.servers) {
    if (s.discover == UpstreamServer::Discover::None) {
      servers.push_back(std::move(s));
      continue;
    }
    if (s.tls) bad(s.loc, "servers: " + s.label() + ": discovered servers are plain http:// (tls is not supported)");
    pool.sources.push_back(std::move(s));
  }
  pool.servers = std::move(servers);
  if (pool.resolve_min_ms > pool.resolve_max())
    bad(loc, "[" + pool.name + "]: resolve_min (" + std::to_string(pool.resolve_min_ms) +
                 "ms) is longer than resolve_max (" + std::to_string(pool.resolve_max()) + "ms)");
  if (pool.servers.size() + (pool.sources.empty() ? 0 : pool.max_servers) > 65535)
    bad(loc, "[" + pool.name + "]: more than 65535 servers with max_servers");
}

int as_bool(const std::string& value) {
  std::string v = py::strip(value);
  for (char& c : v) c = (char)std::tolower((unsigned char)c);
  if (v == "true" || v == "yes" || v == "on" || v == "y" || v == "t" || v == "1") return 1;
  if (v == "false" || v == "no" || v == "off" || v == "n" || v == "f" || v == "0") return 0;
  return -1;
}

bool parse_bool(const std::string& value, const SourceLoc& loc, const std::string& what) {
  int b = as_bool(value);
  if (b < 0) bad(loc, what + ": expected true or false, got '" + value + "'");
  return b == 1;
}

uint32_t parse_uint(const std::string& value, uint32_t max, const SourceLoc& loc, const std::string& what) {
  std::string v = py::strip(value);
  if (!all_digits(v) || v.size() > 10 || std::strtoull(v.c_str(), nullptr, 10) > max) {
    bad(loc, what + ": expected a whole number from 0 to " + std::to_string(max) + ", got '" + value + "'");
  }
  return static_cast<uint32_t>(std::strtoull(v.c_str(), nullptr, 10));
}

void check_host(const std::string& host, const SourceLoc& loc) {
  // A name is resolved when it is used; an address is checked now, so a typo
  // like 10.0.0.256 is a config error, not a failed bind or connect later.
  // inet_aton's forms (127.1) stay accepted, as getaddrinfo takes them.
  in_addr a4;
  in6_addr a6;
  // Brackets only enclose an IPv6 address; one left inside a host ("[[a]:80"
  // loads as "[a") prints back as an address that does not load (review 45).
  if (host.find_first_of("[]") != std::string::npos) bad(loc, "a '[' or ']' inside the host '" + host + "'");
  if (host.find(':') != std::string::npos) {
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) bad(loc, "not an IPv6 address: '" + host + "'");
  } else if (!host.empty() && host.find_first_not_of("0123456789.") == std::string::npos) {
    if (inet_aton(host.c_str(), &a4) == 0) bad(loc, "not an IPv4 address: '" + host + "'");
  }
}

Listener parse_host_port(const std::string& value, int default_port, const SourceLoc& loc) {
  Listener l;
  l.loc = loc;
  std::string host = value, port;
  if (!value.empty() && value[0] == '[') {
    size_t close = value.find(']');
    if (close == std::string::npos) bad(loc, "unterminated '[' in address '" + value + "'");
    host = value.substr(1, close - 1);
    std::string rest = value.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') bad(loc, "bad address '" + value + "'");
    if (!rest.empty()) port = rest.substr(1);
  } else if (size_t colon = value.find(':'); colon != std::string::npos) {
    if (value.find(':', colon + 1) != std::string::npos) {
      bad(loc, "IPv6 address '" + value + "' must be written in brackets, like [::1]:8080");
    }
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
  } else if (default_port < 0) {
    bad(loc, "missing port in '" + value + "' (expected host:port)");
  }
  if (host.empty()) bad(loc, "missing host in '" + value + "'");
  l.host = host == "*" ? "0.0.0.0" : host;
  check_host(l.host, loc);
  if (port.empty() && default_port < 0) bad(loc, "missing port in '" + value + "' (expected host:port)");
  uint32_t p = port.empty() ? static_cast<uint32_t>(default_port) : parse_uint(port, 65535, loc, "port in '" + value + "'");
  l.port = static_cast<uint16_t>(p);
  return l;
}

std::string parse_unix_path(const std::string& path, const SourceLoc& loc, const std::string& what) {
  constexpr size_t kMaxPath = sizeof(sockaddr_un::sun_path) - 1;
  if (path.empty()) bad(loc, what + ": empty unix socket path");
  if (path[0] != '/') bad(loc, what + ": unix socket path must be absolute, got '" + path + "'");
  if (path.size() > kMaxPath) {
    bad(loc, what + ": unix socket path longer than " + std::to_string(kMaxPath) + " bytes: " + path);
  }
  return path;
}

// waitress's `unix_socket_perms = 660`: octal (int(value, 8)), permission bits only.
uint32_t parse_unix_perms(const std::string& value, const SourceLoc& loc) {
  std::string v = py::strip(value);
  if (py::starts_with(v, "0o") || py::starts_with(v, "0O")) v = v.substr(2);
  if (v.empty() || v.size() > 4 || v.find_first_not_of("01234567") != std::string::npos ||
      std::strtoul(v.c_str(), nullptr, 8) > 0777) {
    bad(loc, "unix_socket_perms: expected octal permissions like 600 or 0660, got '" + value + "'");
  }
  return static_cast<uint32_t>(std::strtoul(v.c_str(), nullptr, 8));
}

bool names_server_form(const std::string& tok) {
  return py::starts_with(tok, "unix:") || py::starts_with(tok, "dns:") || py::starts_with(tok, "dns+srv:");
}

std::vector<UpstreamServer> parse_servers(const std::string& value, const SourceLoc& loc) {
  std::vector<UpstreamServer> out;
  for (const auto& tok : py::split(value)) {
    bool is_param = tok == "backup" || tok == "down" || tok.find('=') != std::string::npos;
    if (is_param) {
      if (out.empty()) bad(loc, "servers: parameter '" + tok + "' before any host:port");
      apply_param(out.back(), tok, loc);
      continue;
    }
    UpstreamServer s;
    s.loc = loc;
    if (names_server_form(tok)) {
      if (py::starts_with(tok, "unix:"))  // nginx: `server unix:/path`
        s.unix_path = parse_unix_path(tok.substr(5), loc, "servers");
      else
        parse_source(s, tok, loc);
    } else {
      // `https://host[:port]` (443 by default): TLS to this server;
      // `http://host[:port]` (80) is the same as `host:port`.
      std::string addr = tok;
      int default_port = -1;
      if (py::starts_with(tok, "https://") || py::starts_with(tok, "http://")) {
        s.tls = tok[4] == 's';
        default_port = s.tls ? 443 : 80;
        addr = tok.substr(s.tls ? 8 : 7);
        if (!addr.empty() && addr.back() == '/') addr.pop_back();
        if (addr.find_first_of("/?#@") != std::string::npos)
          bad(loc, "servers: '" + tok + "': a server is scheme://host:port, without a path or user");
      } else if (py::starts_with(tok, "etcd://")) {
        bad(loc, "servers: '" + tok + "': an etcd source is written servers_from = " + tok);
      } else if (tok.find("://") != std::string::npos) {
        bad(loc, "servers: '" + tok + "': the scheme must be http:// or https://");
      }
      Listener hp = parse_host_port(addr, default_port, loc);
      if (hp.port == 0) bad(loc, "servers: port 0 in '" + tok + "'");
      s.host = hp.host;
      s.port = hp.port;
    }
    for (const auto& o : out) {
      if (o.label() == s.label()) bad(loc, "servers: duplicate server " + s.label());
    }
    out.push_back(s);
  }
  if (out.empty()) bad(loc, "servers: empty server list");
  return out;
}

BalanceMethod parse_method(const std::string& value, const SourceLoc& loc) {
  static const std::pair<const char*, BalanceMethod> names[] = {
      {"round_robin", BalanceMethod::RoundRobin}, {"least_conn", BalanceMethod::LeastConn},
      {"random", BalanceMethod::Random},          {"random2", BalanceMethod::Random2},
      {"ip_hash", BalanceMethod::IpHash},         {"hash", BalanceMethod::Hash},
      {"cookie", BalanceMethod::Cookie}};
  std::string v = py::strip(value);
  for (const auto& [n, m] : names) {
    if (v == n) return m;
  }
  bad(loc, "method: unknown balancing method '" + v +
               "' (expected round_robin, least_conn, random, random2, ip_hash, hash or cookie)");
}

uint32_t parse_duration_ms(const std::string& value, const SourceLoc& loc) {
  std::string v = py::strip(value);
  double scale = 1000;
  if (v.size() > 2 && v.compare(v.size() - 2, 2, "ms") == 0) {
    scale = 1, v.resize(v.size() - 2);
  } else if (v.size() > 1 && (v.back() == 's' || v.back() == 'm')) {
    scale = v.back() == 'm' ? 60000 : 1000, v.pop_back();
  }
  bool ok = !v.empty() && v.find_first_not_of("0123456789.") == std::string::npos &&
            v.find('.') == v.rfind('.') && v != ".";
  double ms = ok ? std::strtod(v.c_str(), nullptr) * scale : -1;
  if (!ok || ms > 4e9) bad(loc, "expected a duration like 5, 0.5, 250ms, 5s or 2m, got '" + value + "'");
  return static_cast<uint32_t>(std::llround(ms));
}

namespace {

// `upgrade = websocket | * | off | TOKEN...` (commas or spaces between
// tokens): which Upgrade tokens are tunnelled to the pool's servers.
void parse_upgrade(Pool& pool, const py::Value& v) {
  std::string list = v.value;
  std::replace(list.begin(), list.end(), ',', ' ');
  pool.upgrade.clear();
  pool.upgrade_any = false;
  std::vector<std::string> toks = py::split(list);
  if (toks.empty()) bad(v.loc, "upgrade: expected websocket, * or off (or protocol tokens)");
  for (std::string t : toks) {
    for (char& c : t) c = (char)std::tolower((unsigned char)c);
    if (t == "*") {
      pool.upgrade_any = true;
    } else if (t == "off" || t == "none") {
      if (toks.size() > 1) bad(v.loc, "upgrade: 'off' stands alone");
    } else {
      for (char c : t)
        if (!std::isalnum((unsigned char)c) && !std::strchr("!#$%&'*+-.^_`|~/", c))
          bad(v.loc, "upgrade: '" + t + "' is not a protocol token");
      if (t == "h2c")
        bad(v.loc, "upgrade: h2c cannot be tunnelled (HTTP/2 is pasture's own to speak, not a byte stream)");
      pool.upgrade.push_back(t);
    }
  }
}

// Health and retry keys of a pool; false if `key` is none of them.
bool fill_health_key(Pool& pool, const std::string& key, const py::Value& v) {
  if (key == "fail_on") {
    pool.fail_on = parse_fail_on(v.value, v.loc);
  } else if (key == "retries") {
    pool.retries = parse_uint(v.value, 100, v.loc, "retries");
  } else if (key == "retry_on") {
    parse_retry_on(pool, v.value, v.loc);
  } else if (key == "retry_budget") {
    pool.retry_budget_percent = parse_percent(v.value, v.loc, "retry_budget");
  } else if (key == "health_check") {
    pool.health_check = parse_check_path(v.value, v.loc);
  } else if (key == "health_interval") {
    pool.health_interval_ms = positive_ms(v.value, v.loc, "health_interval");
  } else if (key == "health_timeout") {
    pool.health_timeout_ms = positive_ms(v.value, v.loc, "health_timeout");
  } else if (key == "rise" || key == "fall") {
    uint32_t n = parse_uint(v.value, 1000, v.loc, key);
    if (n == 0) bad(v.loc, key + ": must be at least 1");
    (key == "rise" ? pool.rise : pool.fall) = n;
  } else if (key == "health_status") {
    pool.health_status = parse_statuses(v.value, v.loc, "health_status");
  } else {
    return false;
  }
  return true;
}

// A file named in the config: absolute, or relative to that config file's directory.
std::string config_path(const py::Value& v, const std::string& what) {
  std::string name = py::strip(v.value);
  if (name.empty()) bad(v.loc, what + ": empty file name");
  if (py::isabs(name) || v.loc.file.empty()) return py::normpath(name);
  return py::normpath(py::dirname(v.loc.file) + "/" + name);
}

}  // namespace

Pool proxy_pool(const std::string& a, const SourceLoc& loc) {
  bool tls = py::starts_with(a, "https://");
  if (!tls && !py::starts_with(a, "http://")) bad(loc, "address must be an http:// or https:// URL, got '" + a + "'");
  std::string rest = a.substr(tls ? 8 : 7);
  size_t slash = rest.find_first_of("/?");
  Pool p;
  p.preserve_host = false;
  p.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  Listener hp = parse_host_port(rest.substr(0, slash), tls ? 443 : 80, loc);
  UpstreamServer s;
  s.host = hp.host;
  s.port = hp.port;
  s.tls = tls;
  s.loc = loc;
  p.servers.push_back(s);
  return p;
}

// TLS keys of a pool (its https:// servers); false if `key` is none of them.
bool fill_tls_key(Pool& pool, const std::string& key, const py::Value& v) {
  UpstreamTls& t = pool.tls;
  if (key == "tls_verify") {
    t.verify = parse_bool(v.value, v.loc, "tls_verify");
    t.verify_loc = v.loc;
  } else if (key == "tls_ca_certs") {
    t.ca_certs = config_path(v, key);
    t.ca_loc = v.loc;
  } else if (key == "tls_server_name") {
    std::string n = py::strip(v.value);
    for (char& c : n) c = (char)std::tolower((unsigned char)c);
    bool ok = !n.empty() && n.size() <= 253;
    for (char c : n)
      if (!std::isalnum((unsigned char)c) && c != '-' && c != '.' && c != ':') ok = false;
    if (!ok) bad(v.loc, "tls_server_name: expected a host name such as api.example.com, got '" + v.value + "'");
    t.server_name = n;
    t.server_name_loc = v.loc;
  } else if (key == "tls_client_cert") {
    t.client_cert = config_path(v, key);
    t.client_cert_loc = v.loc;
  } else if (key == "tls_client_key") {
    t.client_key = config_path(v, key);
    t.client_key_loc = v.loc;
  } else {
    return false;
  }
  return true;
}

// TLS settings only mean something for https:// servers: set on a pool
// without one, they would leave the operator believing traffic is
// encrypted (or verified) when it is not.
void check_tls_keys(const Pool& pool) {
  const UpstreamTls& t = pool.tls;
  if (!t.client_key.empty() && t.client_cert.empty())
    bad(t.client_key_loc, "tls_client_key without tls_client_cert in [" + pool.name + "]");
  if (pool.any_tls()) return;
  for (const SourceLoc* at : {&t.verify_loc, &t.ca_loc, &t.server_name_loc, &t.client_cert_loc, &t.client_key_loc})
    if (at->line > 0 || !at->file.empty())
      bad(*at, "TLS settings in [" + pool.name + "], but none of its servers is https:// (write https://host:port)");
}

std::vector<std::string> fill_pool(Pool& pool, const py::Dict& local_conf, const SourceLoc& section_loc) {
  std::vector<std::string> unknown;
  const py::Value* servers = local_conf.find("servers");
  const py::Value* from = local_conf.find("servers_from");
  if (!servers && !from) bad(section_loc, "[" + pool.name + "] has no 'servers =' list");
  // servers_from = etcd://... adds a source to `servers =` (static servers,
  // dns: sources); a servers file replaces the list.
  bool etcd = from && py::starts_with(py::strip(from->value), "etcd://");
  if (servers && from && !etcd) bad(from->loc, "[" + pool.name + "] has both 'servers =' and 'servers_from ='");
  if (servers)
    pool.servers = parse_servers(servers->value, servers->loc);
  else if (!etcd)
    pool.servers = load_servers_from(*from, &pool.servers_from);
  if (etcd) pool.servers.push_back(parse_etcd_source(from->value, from->loc));
  SourceLoc method_loc = section_loc;
  for (const auto& [key, v] : local_conf) {
    if (key == "servers" || key == "servers_from") continue;
    if (key == "method") {
      pool.method = parse_method(v.value, v.loc);
      method_loc = v.loc;
    } else if (key == "connect_timeout") {
      pool.connect_timeout_ms = parse_duration_ms(v.value, v.loc);
    } else if (key == "read_timeout") {
      pool.read_timeout_ms = parse_duration_ms(v.value, v.loc);
    } else if (key == "send_timeout") {
      pool.send_timeout_ms = parse_duration_ms(v.value, v.loc);
    } else if (key == "keepalive") {
      pool.keepalive = parse_uint(v.value, 100000, v.loc, "keepalive");
    } else if (key == "upgrade") {
      parse_upgrade(pool, v);
    } else if (key == "tunnel_timeout") {
      pool.tunnel_timeout_ms = parse_duration_ms(v.value, v.loc);
      if (pool.tunnel_timeout_ms == 0) bad(v.loc, "tunnel_timeout: must be more than 0");
    } else if (key == "cookie_secret") {
      pool.cookie_secret = v.value;
    } else if (key == "cookie_name") {
      pool.cookie_name = parse_cookie_name(v.value, v.loc);
    } else if (key == "cookie_max_age") {
      pool.cookie_max_age_s = parse_max_age(v.value, v.loc);
    } else if (key == "hash_key") {
      pool.hash_key = parse_hash_key(v.value, v.loc);
    } else if (key == "consistent") {
      pool.consistent = parse_consistency(v.value, v.loc);
    } else if (key == "hash_whole_ip") {
      pool.hash_whole_ip = parse_bool(v.value, v.loc, "hash_whole_ip");
    } else if (!fill_health_key(pool, key, v) && !fill_tls_key(pool, key, v) && !fill_discovery_key(pool, key, v)) {
      unknown.push_back(key);
    }
  }
  take_sources(pool, servers ? servers->loc : from->loc);
  check_tls_keys(pool);
  if (pool.method == BalanceMethod::Cookie && pool.cookie_secret.empty()) {
    bad(method_loc, "method = cookie needs 'cookie_secret =' in [" + pool.name +
                        "] (the key that signs the sticky cookies)");
  }
  return unknown;
}

std::vector<AddressRange> parse_address_ranges(const py::Value& v, const std::string& key) {
  std::string list = v.value;
  std::replace(list.begin(), list.end(), ',', ' ');
  std::vector<AddressRange> out;
  for (const auto& tok : py::split(list)) {
    AddressRange r;
    r.text = tok;
    if (tok == "unix") {
      r.unix = true;
      out.push_back(r);
      continue;
    }
    size_t slash = tok.find('/');
    std::string addr = tok.substr(0, slash);
    if (inet_pton(AF_INET, addr.c_str(), r.addr) == 1) {
      r.family = AF_INET;
    } else if (inet_pton(AF_INET6, addr.c_str(), r.addr) == 1) {
      r.family = AF_INET6;
    } else {
      bad(v.loc, key + ": '" + tok + "' is not an IP address, CIDR block or 'unix'");
    }
    unsigned max = r.family == AF_INET ? 32 : 128;
    r.prefix = (uint8_t)max;
    if (slash != std::string::npos) {
      std::string bits = tok.substr(slash + 1);
      if (bits.empty() || bits.size() > 3 || bits.find_first_not_of("0123456789") != std::string::npos ||
          std::stoul(bits) > max)
        bad(v.loc, key + ": '" + tok + "': prefix length must be 0-" + std::to_string(max));
      r.prefix = (uint8_t)std::stoul(bits);
    }
    // ::ffff:a.b.c.d/n is an IPv4 range: a v4-mapped peer is compared as
    // IPv4 (peer_trusted), so the range must be too.
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (r.family == AF_INET6 && r.prefix >= 96 && std::memcmp(r.addr, kMapped, 12) == 0) {
      r.family = AF_INET;
      std::memmove(r.addr, r.addr + 12, 4);
      std::memset(r.addr + 4, 0, 12);
      r.prefix = (uint8_t)(r.prefix - 96);
    }
    out.push_back(r);
  }
  return out;
}

std::vector<std::string> parse_status_hosts(const py::Value& v) {
  std::vector<std::string> out;
  std::string tok;
  auto flush = [&] {
    if (tok.empty()) return;
    for (char c : tok)
      if (!(std::isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_' || (c == '*' && tok == "*")))
        bad(v.loc, "hosts: '" + tok + "' is not a host name (no port, scheme or path; `*` for any)");
    out.push_back(tok);
    tok.clear();
  };
  for (char c : v.value) {
    if (c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r')
      flush();
    else
      tok.push_back((char)std::tolower((unsigned char)c));
  }
  flush();
  return out;
}

std::vector<AddressRange> default_status_allow() {
  return parse_address_ranges(py::Value{"127.0.0.0/8 ::1 unix", SourceLoc{}}, "allow");
}

}  // namespace pasture::conf
