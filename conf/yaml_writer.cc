#include "conf/yaml_writer.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "conf/describe.h"
#include "conf/error.h"
#include "conf/filters.h"
#include "conf/site_static.h"
#include "conf/tls_check.h"

namespace pasture::conf {

namespace {

// A plain YAML scalar when that reads back as the same string, else a
// double-quoted one.
std::string scalar(const std::string& s) {
  static const std::set<std::string> words = {"true", "false", "yes", "no", "on", "off", "null", "~",
                                              "True", "False", "Yes", "No", "On", "Off", "Null", "NULL",
                                              "TRUE", "FALSE", "YES", "NO", "ON", "OFF"};
  bool plain = !s.empty() && !words.count(s) && s.find_first_not_of(
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./@#:+-") == std::string::npos;
  plain = plain && std::string("#:-.@").find(s[0]) == std::string::npos && s.back() != ':';
  if (plain) return s;
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string object_name(const std::string& section) {
  size_t colon = section.find(':');
  return colon == std::string::npos ? section : section.substr(colon + 1);
}

class Writer {
 public:
  explicit Writer(const Site& site) : site_(site) {}
  std::string run();

 private:
  void collect(int idx);
  void server();
  void tls();
  void app(int idx);
  void filters(const Handler& h);
  void pool(const Handler& h, const std::string& name);
  void tls_keys(const UpstreamTls& t, const std::string& in);
  std::string name_of(int idx) const { return names_.at(idx); }

  const Site& site_;
  std::string out_;
  std::vector<int> order_;          // handlers reachable from the root, root first
  std::map<int, std::string> names_;
  std::set<std::string> taken_;
};

void Writer::collect(int idx) {
  if (idx < 0 || idx >= static_cast<int>(site_.handlers.size()) || names_.count(idx)) return;
  std::string base = object_name(site_.handlers[idx].name), name = base;
  if (order_.empty()) name = site_.app_name;
  for (int n = 2; name.empty() || taken_.count(name); n++) name = base + "_" + std::to_string(n);
  taken_.insert(name);
  names_[idx] = name;
  order_.push_back(idx);
  const Handler& h = site_.handlers[idx];
  for (const auto& e : h.entries) collect(e.handler);
  collect(h.not_found);
  if (h.kind == HandlerKind::Static) collect(h.files.fallback);
}

void Writer::server() {
  const ServerSettings& s = site_.server;
  ServerSettings d;
  out_ += "server:\n  use: " + scalar(s.use) + "\n";
  bool all_tls = std::all_of(s.listen.begin(), s.listen.end(), [](const Listener& l) { return l.tls; });
  if (s.listen.size() == 1 && s.listen[0].unix_path.empty() && !s.listen[0].h2c && (all_tls || !s.tls.enabled())) {
    out_ += "  host: " + scalar(s.listen[0].host) + "\n  port: " + std::to_string(s.listen[0].port) + "\n";
  } else {
    out_ += "  listen:\n";
    uint32_t perms = Listener{}.unix_perms;
    for (const auto& l : s.listen) {
      bool v6 = l.host.find(':') != std::string::npos;
      if (!l.unix_path.empty()) perms = l.unix_perms;  // one server-wide setting
      // `tls` only where some listeners are plain (none marked = all TLS).
      std::string mark = l.tls && !all_tls ? " tls" : "";
      if (l.h2c) mark += " h2c";
      out_ += "    - " + scalar((!l.unix_path.empty() ? "unix:" + l.unix_path
                                                      : (v6 ? "[" + l.host + "]" : l.host) + ":" + std::to_string(l.port)) +
                                 mark) +
              "\n";
    }
    if (perms != Listener{}.unix_perms) {
      char mode[16];
      snprintf(mode, sizeof mode, "\"%04o\"", perms);
      out_ += std::string("  unix_socket_perms: ") + mode + "\n";
    }
  }
  tls();
  if (s.workers != d.workers) out_ += "  workers: " + std::to_string(s.workers) + "\n";
  if (s.backlog != d.backlog) out_ += "  backlog: " + std::to_string(s.backlog) + "\n";
  if (s.client_header_timeout_ms != d.client_header_timeout_ms) {
    out_ += "  client_header_timeout: " + format_duration_ms(s.client_header_timeout_ms) + "\n";
  }
  if (s.keepalive_timeout_ms != d.keepalive_timeout_ms) {
    out_ += "  keepalive_timeout: " + format_duration_ms(s.keepalive_timeout_ms) + "\n";
  }
  if (s.max_header_bytes != d.max_header_bytes) out_ += "  max_header_bytes: " + std::to_string(s.max_header_bytes) + "\n";
  if (s.max_url_bytes != d.max_url_bytes) out_ += "  max_url_bytes: " + std::to_string(s.max_url_bytes) + "\n";
  if (s.max_header_fields != d.max_header_fields) out_ += "  max_header_fields: " + std::to_string(s.max_header_fields) + "\n";
  if (s.max_body_bytes != d.max_body_bytes) out_ += "  client_max_body_size: " + std::to_string(s.max_body_bytes) + "\n";
  if (s.max_connections != d.max_connections) out_ += "  max_connections: " + std::to_string(s.max_connections) + "\n";
  if (s.via != d.via) out_ += "  via: " + (s.via.empty() ? std::string("off") : scalar(s.via)) + "\n";
  if (s.trace != d.trace) out_ += std::string("  trace: ") + (s.trace ? "on" : "off") + "\n";
  if (s.http2 != d.http2) out_ += std::string("  http2: ") + (s.http2 ? "on" : "off") + "\n";
  if (s.h2_max_streams != d.h2_max_streams)
    out_ += "  http2_max_concurrent_streams: " + std::to_string(s.h2_max_streams) + "\n";
  if (s.h2_max_resets != d.h2_max_resets) out_ += "  http2_max_resets: " + std::to_string(s.h2_max_resets) + "\n";
  auto duration = [&](const char* key, uint32_t v, uint32_t def) {
    if (v != def) out_ += std::string("  ") + key + ": " + format_duration_ms(v) + "\n";
  };
  duration("client_body_timeout", s.client_body_timeout_ms, d.client_body_timeout_ms);
  duration("send_timeout", s.send_timeout_ms, d.send_timeout_ms);
  duration("graceful_timeout", s.graceful_timeout_ms, d.graceful_timeout_ms);
  duration("drain_idle_grace", s.drain_idle_grace_ms, d.drain_idle_grace_ms);
  duration("worker_timeout", s.worker_timeout_ms, d.worker_timeout_ms);
  duration("status_history_interval", s.status_history_interval_ms, d.status_history_interval_ms);
  if (s.max_requests != d.max_requests) out_ += "  max_requests: " + std::to_string(s.max_requests) + "\n";
  if (s.max_requests_jitter != d.max_requests_jitter) {
    out_ += "  max_requests_jitter: " + std::to_string(s.max_requests_jitter) + "\n";
  }
  if (s.reuse_port != d.reuse_port) out_ += std::string("  reuse_port: ") + (s.reuse_port ? "true" : "false") + "\n";
  if (s.access_log != d.access_log) out_ += "  access_log: " + scalar(s.access_log) + "\n";
  if (!s.admin_socket.empty()) out_ += "  admin_socket: " + scalar(s.admin_socket) + "\n";
  if (s.admin_socket_mode != d.admin_socket_mode) {
    char mode[16];
    snprintf(mode, sizeof mode, "\"%04o\"", s.admin_socket_mode);
    out_ += std::string("  admin_socket_mode: ") + mode + "\n";
  }
  if (s.underscores_in_headers) out_ += "  underscores_in_headers: true\n";
  if (s.threads != d.threads) out_ += "  threads: " + std::to_string(s.threads) + "\n";
  if (s.preload != d.preload) out_ += std::string("  preload: ") + (s.preload ? "true" : "false") + "\n";
  if (s.app_mode != d.app_mode) out_ += "  app_mode: process\n";
  if (s.app_workers != d.app_workers) out_ += "  app_workers: " + std::to_string(s.app_workers) + "\n";
  if (!s.user.empty()) out_ += "  user: " + scalar(s.user) + "\n";
  if (!s.group.empty()) out_ += "  group: " + scalar(s.group) + "\n";
  if (s.core_dumps) out_ += "  core_dumps: true\n";
  if (!s.trusted_proxies.empty()) {
    std::string list;
    for (const AddressRange& r : s.trusted_proxies) list += (list.empty() ? "" : " ") + r.text;
    out_ += "  trusted_proxies: " + scalar(list) + "\n";
  }
}

// pasture's TLS keys: file names, never their contents.
void Writer::tls() {
  const TlsSettings& t = site_.server.tls;
  if (!t.enabled()) return;
  if (t.self_signed) out_ += "  ssl_pem: \"*\"\n";
  bool keys = std::any_of(t.certs.begin(), t.certs.end(), [](const TlsCertificate& c) { return c.key_file != c.cert_file; });
  bool ocsp = std::any_of(t.certs.begin(), t.certs.end(), [](const TlsCertificate& c) { return !c.ocsp_file.empty(); });
  auto list = [&](const char* key, std::string TlsCertificate::*field) {
    out_ += std::string("  ") + key + ":\n";
    for (const TlsCertificate& c : t.certs) out_ += "    - " + scalar(c.*field) + "\n";
  };
  if (!t.certs.empty()) list("tls_cert", &TlsCertificate::cert_file);
  if (keys) list("tls_key", &TlsCertificate::key_file);
  if (ocsp) {
    for (const TlsCertificate& c : t.certs)
      if (c.ocsp_file.empty())
        out_ += "  # note: tls_ocsp names a file for every certificate or none; " + c.cert_file + " has none\n";
    if (std::all_of(t.certs.begin(), t.certs.end(), [](const TlsCertificate& c) { return !c.ocsp_file.empty(); }))
      list("tls_ocsp", &TlsCertificate::ocsp_file);
  }
  if (!t.ca_certs.empty()) out_ += "  ca_certs: " + scalar(t.ca_certs) + "\n";
  if (t.client_certs != ClientCerts::None) out_ += std::string("  cert_reqs: ") + client_certs_word(t.client_certs) + "\n";
  if (!t.ciphers.empty()) out_ += "  ciphers: " + scalar(t.ciphers) + "\n";
  if (!t.client_subject_header.empty()) out_ += "  tls_client_subject_header: " + scalar(t.client_subject_header) + "\n";
}

// A pool's TLS to its https:// servers: file names, never their contents.
void Writer::tls_keys(const UpstreamTls& t, const std::string& in) {
  if (!t.verify) out_ += in + "tls_verify: off\n";
  if (!t.ca_certs.empty()) out_ += in + "tls_ca_certs: " + scalar(t.ca_certs) + "\n";
  if (!t.server_name.empty()) out_ += in + "tls_server_name: " + scalar(t.server_name) + "\n";
  if (!t.client_cert.empty()) out_ += in + "tls_client_cert: " + scalar(t.client_cert) + "\n";
  if (!t.client_key.empty()) out_ += in + "tls_client_key: " + scalar(t.client_key) + "\n";
}

void Writer::pool(const Handler& h, const std::string& name) {
  const Pool& p = site_.pools.at(h.pool);
  Pool d;
  std::string in = "    ";
  if (!p.preserve_host && p.servers.size() == 1 && p.servers_from.empty()) {
    const UpstreamServer& s = p.servers[0];
    bool v6 = s.host.find(':') != std::string::npos;
    std::string addr = (s.tls ? "https://" : "http://") + (v6 ? "[" + s.host + "]" : s.host) + ":" +
                       std::to_string(s.port) + p.base_path;
    out_ += "  " + scalar(name) + ":\n" + in + "use: egg:Paste#proxy\n" + in + "address: " + scalar(addr) + "\n";
    tls_keys(p.tls, in);
    return;
  }
  if (h.name != p.name) out_ += "  # [" + h.name + "]: requests go to the servers of [" + p.name + "]\n";
  out_ += "  " + scalar(name) + ":\n" + in + "use: egg:pasture#balancer\n";
  bool listed = !p.servers.empty();
  for (const auto& s : p.sources) listed = listed || s.discover != UpstreamServer::Discover::Etcd;
  if (!p.servers_from.empty()) {
    out_ += in + "servers_from: " + scalar(p.servers_from) + "\n";
  } else if (listed) {
    out_ += in + "servers:\n";
    for (const auto& s : p.servers) out_ += in + "  - " + scalar(server_spec(s)) + "\n";
    for (const auto& s : p.sources)
      if (s.discover != UpstreamServer::Discover::Etcd) out_ += in + "  - " + scalar(server_spec(s)) + "\n";
  }
  for (const auto& s : p.sources)
    if (s.discover == UpstreamServer::Discover::Etcd) out_ += in + "servers_from: " + scalar(server_spec(s)) + "\n";
  if (!p.sources.empty()) {
    if (p.max_servers != d.max_servers) out_ += in + "max_servers: " + std::to_string(p.max_servers) + "\n";
    if (p.resolve_interval_ms != d.resolve_interval_ms)
      out_ += in + "resolve_interval: " + format_duration_ms(p.resolve_interval_ms) + "\n";
    if (p.resolve_min_ms != d.resolve_min_ms) out_ += in + "resolve_min: " + format_duration_ms(p.resolve_min_ms) + "\n";
    if (p.resolve_max_ms) out_ += in + "resolve_max: " + format_duration_ms(p.resolve_max_ms) + "\n";
    if (p.resolve_timeout_ms != d.resolve_timeout_ms)
      out_ += in + "resolve_timeout: " + format_duration_ms(p.resolve_timeout_ms) + "\n";
    if (!p.resolvers.empty()) {
      std::string list;
      for (const auto& [h, port] : p.resolvers)
        list += (list.empty() ? "" : " ") + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(port);
      out_ += in + "resolver: " + scalar(list) + "\n";
    }
  }
  if (p.method != d.method) out_ += in + "method: " + method_word(p.method) + "\n";
  if (p.connect_timeout_ms != d.connect_timeout_ms) {
    out_ += in + "connect_timeout: " + format_duration_ms(p.connect_timeout_ms) + "\n";
  }
  if (p.read_timeout_ms != d.read_timeout_ms) out_ += in + "read_timeout: " + format_duration_ms(p.read_timeout_ms) + "\n";
  if (p.send_timeout_ms != d.send_timeout_ms) out_ += in + "send_timeout: " + format_duration_ms(p.send_timeout_ms) + "\n";
  if (p.keepalive != d.keepalive) out_ += in + "keepalive: " + std::to_string(p.keepalive) + "\n";
  if (p.upgrade != d.upgrade || p.upgrade_any) out_ += in + "upgrade: " + scalar(upgrade_words(p)) + "\n";
  if (p.tunnel_timeout_ms != d.tunnel_timeout_ms) {
    out_ += in + "tunnel_timeout: " + format_duration_ms(p.tunnel_timeout_ms) + "\n";
  }
  if (!p.cookie_secret.empty()) out_ += in + "cookie_secret: " + scalar(p.cookie_secret) + "\n";
  if (p.cookie_name != d.cookie_name) out_ += in + "cookie_name: " + scalar(p.cookie_name) + "\n";
  if (p.cookie_max_age_s != 0) out_ += in + "cookie_max_age: " + std::to_string(p.cookie_max_age_s) + "s\n";
  if (p.hash_key != d.hash_key) out_ += in + "hash_key: " + scalar(p.hash_key) + "\n";
  if (p.consistent != d.consistent) out_ += in + "consistent: " + consistency_word(p.consistent) + "\n";
  if (p.hash_whole_ip != d.hash_whole_ip) out_ += in + "hash_whole_ip: " + (p.hash_whole_ip ? "true\n" : "false\n");
  if (p.any_tls()) tls_keys(p.tls, in);
  if (!p.preserve_host || !p.base_path.empty()) {
    out_ += in + "# note: this pool's Host/base path handling has no YAML form; it was a proxy\n";
  }
}

void Writer::filters(const Handler& h) {
  if (h.filters.empty()) return;
  out_ += "    filters:\n";
  Filter d;
  for (const Filter& f : h.filters) {
    std::string in = "        ";
    out_ += "      - use: " + std::string(filter_short_name(f.kind)) + "\n";
    std::string own = object_name(f.name);
    if (own != filter_short_name(f.kind)) out_ += in + "name: " + scalar(own) + "\n";
    switch (f.kind) {
      case FilterKind::Gzip:
        if (f.compress_level != d.compress_level) out_ += in + "compress_level: " + std::to_string(f.compress_level) + "\n";
        if (f.min_length != d.min_length) out_ += in + "min_length: " + std::to_string(f.min_length) + "\n";
        break;
      case FilterKind::Prefix:
        out_ += in + "prefix: " + scalar(f.prefix.empty() ? "/" : f.prefix) + "\n";
        if (!f.translate_forwarded_server) out_ += in + "translate_forwarded_server: false\n";
        if (f.has_force_port) out_ += in + "force_port: " + scalar(f.force_port) + "\n";
        if (f.has_scheme) out_ += in + "scheme: " + scalar(f.scheme) + "\n";
        break;
      case FilterKind::TransLogger:
        if (f.logger_name != d.logger_name) out_ += in + "logger_name: " + scalar(f.logger_name) + "\n";
        if (!f.format.empty()) out_ += in + "format: " + scalar(f.format) + "\n";
        if (!f.setup_console_handler) out_ += in + "setup_console_handler: false\n";
        if (f.logging_level != d.logging_level) out_ += in + "logging_level: " + std::to_string(f.logging_level) + "\n";
        if (f.set_logger_level != d.set_logger_level)
          out_ += in + "set_logger_level: " + std::to_string(f.set_logger_level) + "\n";
        break;
    }
  }
}

void Writer::app(int idx) {
  const Handler& h = site_.handlers[idx];
  std::string name = name_of(idx);
  size_t at = out_.size();
  switch (h.kind) {
    case HandlerKind::Echo:
      out_ += "  " + scalar(name) + ":\n    use: egg:pasture#echo\n    name: " + scalar(h.echo_name) + "\n";
      break;
    case HandlerKind::Status: {
      out_ += "  " + scalar(name) + ":\n    use: egg:pasture#status\n    allow:\n";
      for (const auto& r : h.allow) out_ += "      - " + scalar(r.text) + "\n";
      if (!h.status_hosts.empty()) {
        out_ += "    hosts:\n";
        for (const auto& n : h.status_hosts) out_ += "      - " + scalar(n) + "\n";
      }
      break;
    }
    case HandlerKind::Static: {
      const StaticFiles& f = h.files;
      const StaticFiles d;
      out_ += "  " + scalar(name) + ":\n    use: " + (f.paste ? "egg:Paste#static" : "egg:pasture#static") +
              "\n    document_root: " + scalar(f.root) + "\n";
      if (f.cache_max_age >= 0) out_ += "    cache_max_age: " + std::to_string(f.cache_max_age) + "\n";
      if (f.paste) break;
      if (f.index != d.index) {
        out_ += "    index: [";
        for (size_t i = 0; i < f.index.size(); i++) out_ += (i ? ", " : "") + scalar(f.index[i]);
        out_ += "]\n";
      }
      if (f.symlinks != d.symlinks) out_ += std::string("    follow_symlinks: ") + symlinks_word(f.symlinks) + "\n";
      if (f.dotfiles) out_ += "    dotfiles: on\n";
      if (f.gzip_static || f.br_static)
        out_ += std::string("    precompressed: [") + (f.br_static ? "br" : "") +
                (f.br_static && f.gzip_static ? ", " : "") + (f.gzip_static ? "gzip" : "") + "]\n";
      if (!f.charset.empty()) out_ += "    charset: " + scalar(f.charset) + "\n";
      if (f.fallback >= 0) out_ += "    fallback: " + scalar(name_of(f.fallback)) + "\n";
      if (f.autoindex) out_ += "    autoindex: on\n";
      break;
    }
    case HandlerKind::Proxy:
      pool(h, name);
      break;
    case HandlerKind::UrlMap:
      out_ += "  " + scalar(name) + ":\n    use: egg:Paste#urlmap\n    routes:\n";
      for (const auto& e : h.entries) {
        std::string path = e.path.empty() ? "/" : e.path;
        std::string key = e.domain.empty() ? path : "http://" + e.domain + path;
        out_ += "      " + scalar(key) + ": " + scalar(name_of(e.handler)) + "\n";
      }
      if (h.not_found >= 0) out_ += "    not_found_app: " + scalar(name_of(h.not_found)) + "\n";
      break;
  }
  if (h.filters.empty()) return;
  // After the app's `use:` line (and a comment before it, if any).
  size_t use = out_.find("    use: ", at);
  size_t eol = use == std::string::npos ? out_.size() : out_.find('\n', use) + 1;
  std::string rest = out_.substr(eol);
  out_.resize(eol);
  filters(h);
  out_ += rest;
}

std::string Writer::run() {
  collect(site_.root);
  out_ += "# pasture site (YAML form of " + site_.config_file + ", app \"" + site_.app_name + "\", server \"" +
          site_.server_name + "\")\n";
  if (!site_.notices.empty()) {
    out_ += "# notices about the original file:\n";
    for (const auto& n : site_.notices) out_ += "#   " + n + "\n";
  }
  server();
  out_ += "app: " + scalar(site_.app_name) + "\napps:\n";
  for (int idx : order_) app(idx);
  return out_;
}

}  // namespace

std::string site_to_yaml(const Site& site) {
  // The YAML form has no way to name a Python app (conf::PythonApp) yet.
  for (const PythonApp& a : site.python_apps)
    throw ConfigError(a.loc.file, a.loc.line,
                      "not supported yet: " + a.factory + (a.section.empty() ? "" : " in [" + a.section + "]"));
  return Writer(site).run();
}

}  // namespace pasture::conf
