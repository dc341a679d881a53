#include "conf/describe.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

#include "common/sticky_cookie.h"
#include "conf/filters.h"
#include "conf/pyutil.h"
#include "conf/site_pool.h"
#include "conf/site_static.h"
#include "conf/tls_check.h"

namespace pasture::conf {

namespace {

bool is_v6(const std::string& host) { return host.find(':') != std::string::npos; }

// File names and choices only: the model holds no key material.
json::Value tls_json(const TlsSettings& t) {
  json::Value v = json::Value::object();
  v["self_signed"] = t.self_signed;
  v["certs"] = json::Value::array();
  for (const TlsCertificate& c : t.certs) {
    json::Value one = json::Value::object();
    one["cert_file"] = c.cert_file;
    one["key_file"] = c.key_file;
    one["ocsp_file"] = c.ocsp_file;
    v["certs"].push(one);
  }
  v["ca_certs"] = t.ca_certs;
  v["client_certs"] = client_certs_word(t.client_certs);
  v["ciphers"] = t.ciphers;
  v["client_subject_header"] = t.client_subject_header;
  return v;
}

json::Value server_json(const ServerSettings& s) {
  json::Value v = json::Value::object();
  v["use"] = s.use;
  v["listen"] = json::Value::array();
  for (const auto& l : s.listen)
    v["listen"].push(l.url() + (l.tls && !l.unix_path.empty() ? " tls" : "") + (l.h2c ? " h2c" : ""));
  v["http2"] = s.http2;
  v["http2_max_concurrent_streams"] = static_cast<double>(s.h2_max_streams);
  v["http2_max_resets"] = static_cast<double>(s.h2_max_resets);
  if (s.tls.enabled()) v["tls"] = tls_json(s.tls);
  v["workers"] = s.workers;
  v["backlog"] = static_cast<double>(s.backlog);
  v["client_header_timeout_ms"] = static_cast<double>(s.client_header_timeout_ms);
  v["keepalive_timeout_ms"] = static_cast<double>(s.keepalive_timeout_ms);
  v["max_header_bytes"] = static_cast<double>(s.max_header_bytes);
  v["max_url_bytes"] = static_cast<double>(s.max_url_bytes);
  v["max_header_fields"] = static_cast<double>(s.max_header_fields);
  v["max_body_bytes"] = static_cast<double>(s.max_body_bytes);
  v["max_connections"] = static_cast<double>(s.max_connections);
  v["client_body_timeout_ms"] = static_cast<double>(s.client_body_timeout_ms);
  v["send_timeout_ms"] = static_cast<double>(s.send_timeout_ms);
  v["via"] = s.via;
  v["trace"] = s.trace;
  v["graceful_timeout_ms"] = static_cast<double>(s.graceful_timeout_ms);
  v["drain_idle_grace_ms"] = static_cast<double>(s.drain_idle_grace_ms);
  v["worker_timeout_ms"] = static_cast<double>(s.worker_timeout_ms);
  v["max_requests"] = static_cast<double>(s.max_requests);
  v["max_requests_jitter"] = static_cast<double>(s.max_requests_jitter);
  v["reuse_port"] = s.reuse_port;
  v["access_log"] = s.access_log;
  v["admin_socket"] = s.admin_socket;
  v["admin_socket_mode"] = static_cast<double>(s.admin_socket_mode);
  v["status_history_interval_ms"] = static_cast<double>(s.status_history_interval_ms);
  v["underscores_in_headers"] = s.underscores_in_headers;
  v["trusted_proxies"] = json::Value::array();
  for (const auto& r : s.trusted_proxies) v["trusted_proxies"].push(r.text);
  v["user"] = s.user;
  v["group"] = s.group;
  v["core_dumps"] = s.core_dumps;
  return v;
}

// The discovery sources of a pool, one line each, and how often they are asked.
std::string describe_sources(const Pool& p, const std::string& in) {
  if (p.sources.empty()) return "";
  std::string out;
  bool dns = false;
  for (const auto& s : p.sources) {
    if (s.discover == UpstreamServer::Discover::Etcd) {
      const std::string& k = s.etcd_prefix;
      out += in + "servers_from = " + server_spec(s) + "\n" + in + "  -> etcd v3 (JSON gateway): one server per key under " + k +
             ", its value like a servers entry (10.0.0.5:8000 weight=2 backup; an IP address, a bad value is logged and skipped; " +
             "the parameters after the URL are every member's defaults); watched, changes apply within a second; etcd unreachable: " +
             "the last members stay, retried after " + format_duration_ms(p.resolve_min_ms) + " doubling to " +
             format_duration_ms(p.resolve_interval_ms) + ", the watch resumes from the last revision\n" + in +
             "  -> admin state from " + k + "_admin/IP:PORT = drain|maint|ready [weight=N] (pasture ctl CONFIG set server ... --publish), " +
             "applied to this pool's servers of that address\n";
      continue;
    }
    dns = true;
    std::string what = s.discover == UpstreamServer::Discover::DnsSrv
                           ? "SRV records of " + s.host + " (their targets' A/AAAA, ports, weights; lowest priority = primaries, higher = backups)"
                           : "A and AAAA records of " + s.host + ", port " + std::to_string(s.port);
    out += in + server_spec(s) + "\n" + in + "  -> " + what + "\n";
  }
  if (!dns) {
    out += in + "discovered servers: up to " + std::to_string(p.max_servers) + " (max_servers)\n";
    if (p.servers.empty()) out += in + "no static server: until etcd first answers, requests get 503 at once\n";
    return out;
  }
  std::string servers;
  for (const auto& [h, port] : p.resolvers)
    servers += (servers.empty() ? "" : ", ") + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(port);
  out += in + "discovered servers: up to " + std::to_string(p.max_servers) + " (max_servers), asked of " +
         (servers.empty() ? "/etc/resolv.conf's name servers" : servers) + " every TTL clamped to " +
         format_duration_ms(p.resolve_min_ms) + "-" + format_duration_ms(p.resolve_max()) + " (retry after " +
         format_duration_ms(p.resolve_interval_ms) + " when an answer fails; the last good answer stays)\n";
  if (p.servers.empty())
    out += in + "no static server: until the first answer, requests get 503 at once\n";
  return out;
}

json::Value pool_json(const Pool& p) {
  json::Value v = json::Value::object();
  v["servers"] = json::Value::array();
  for (const auto& s : p.servers) v["servers"].push(server_spec(s));
  v["sources"] = json::Value::array();
  for (const auto& s : p.sources) v["sources"].push(server_spec(s));
  if (!p.sources.empty()) {
    v["max_servers"] = static_cast<double>(p.max_servers);
    v["resolve_interval_ms"] = static_cast<double>(p.resolve_interval_ms);
    v["resolve_min_ms"] = static_cast<double>(p.resolve_min_ms);
    v["resolve_max_ms"] = static_cast<double>(p.resolve_max());
    v["resolve_timeout_ms"] = static_cast<double>(p.resolve_timeout_ms);
    v["resolvers"] = json::Value::array();
    for (const auto& [h, port] : p.resolvers) v["resolvers"].push(h + ":" + std::to_string(port));
  }
  v["servers_from"] = p.servers_from;
  v["method"] = method_word(p.method);
  v["base_path"] = p.base_path;
  v["preserve_host"] = p.preserve_host;
  v["connect_timeout_ms"] = static_cast<double>(p.connect_timeout_ms);
  v["read_timeout_ms"] = static_cast<double>(p.read_timeout_ms);
  v["send_timeout_ms"] = static_cast<double>(p.send_timeout_ms);
  v["keepalive"] = static_cast<double>(p.keepalive);
  v["upgrade"] = upgrade_words(p);
  v["tunnel_timeout_ms"] = static_cast<double>(p.tunnel_timeout_ms);
  v["cookie_secret"] = p.cookie_secret;
  v["cookie_name"] = p.cookie_name;
  v["cookie_max_age_s"] = static_cast<double>(p.cookie_max_age_s);
  v["hash_key"] = p.hash_key;
  v["consistent"] = consistency_word(p.consistent);
  v["hash_whole_ip"] = p.hash_whole_ip;
  if (p.any_tls()) {
    json::Value t = json::Value::object();
    t["verify"] = p.tls.verify;
    t["ca_certs"] = p.tls.ca_certs;
    t["server_name"] = p.tls.server_name;
    t["client_cert"] = p.tls.client_cert;
    t["client_key"] = p.tls.client_key;
    v["tls"] = t;
  }
  return v;
}

json::Value handler_json(const Site& site, int idx, int depth) {
  if (idx < 0 || idx >= static_cast<int>(site.handlers.size()) || depth > 64) return json::Value();
  const Handler& h = site.handlers[idx];
  json::Value v = json::Value::object();
  switch (h.kind) {
    case HandlerKind::UrlMap:
      v["kind"] = "urlmap";
      v["routes"] = json::Value::array();
      for (const auto& e : h.entries) {
        json::Value r = json::Value::object();
        r["domain"] = e.domain;
        r["path"] = e.path;
        r["app"] = handler_json(site, e.handler, depth + 1);
        v["routes"].push(r);
      }
      v["not_found"] = handler_json(site, h.not_found, depth + 1);
      break;
    case HandlerKind::Proxy:
      v["kind"] = "proxy";
      v["pool"] = h.pool >= 0 && h.pool < static_cast<int>(site.pools.size()) ? pool_json(site.pools[h.pool])
                                                                               : json::Value();
      break;
    case HandlerKind::Echo:
      v["kind"] = "echo";
      v["name"] = h.echo_name;
      break;
    case HandlerKind::Static: {
      const StaticFiles& f = h.files;
      v["kind"] = f.paste ? "paste_static" : "static";
      v["document_root"] = f.root;
      v["index"] = json::Value::array();
      for (const auto& n : f.index) v["index"].push(n);
      v["cache_max_age"] = (double)f.cache_max_age;
      v["follow_symlinks"] = symlinks_word(f.symlinks);
      v["dotfiles"] = f.dotfiles;
      v["precompressed"] = json::Value::array();
      if (f.br_static) v["precompressed"].push("br");
      if (f.gzip_static) v["precompressed"].push("gzip");
      v["charset"] = f.charset;
      v["autoindex"] = f.autoindex;
      v["fallback"] = handler_json(site, f.fallback, depth + 1);
      break;
    }
    case HandlerKind::Status:
      v["kind"] = "status";
      v["allow"] = json::Value::array();
      for (const auto& r : h.allow) v["allow"].push(r.text);
      v["hosts"] = json::Value::array();
      for (const auto& n : h.status_hosts) v["hosts"].push(n);
      break;
  }
  if (!h.filters.empty()) {
    v["filters"] = json::Value::array();
    for (const Filter& f : h.filters) {
      json::Value j = json::Value::object();
      j["use"] = filter_egg(f.kind);
      switch (f.kind) {
        case FilterKind::Gzip:
          j["compress_level"] = f.compress_level;
          j["min_length"] = (double)f.min_length;
          break;
        case FilterKind::Prefix:
          j["prefix"] = f.prefix;
          j["translate_forwarded_server"] = f.translate_forwarded_server;
          j["force_port"] = f.has_force_port ? json::Value(f.force_port) : json::Value();
          j["scheme"] = f.has_scheme ? json::Value(f.scheme) : json::Value();
          break;
        case FilterKind::TransLogger:
          j["logger_name"] = f.logger_name;
          j["format"] = f.format;
          j["setup_console_handler"] = f.setup_console_handler;
          j["logging_level"] = f.logging_level;
          j["set_logger_level"] = f.set_logger_level;
          break;
      }
      v["filters"].push(j);
    }
  }
  return v;
}

const char* method_words(BalanceMethod m) {
  switch (m) {
    case BalanceMethod::RoundRobin: return "smooth weighted round robin";
    case BalanceMethod::LeastConn: return "fewest active connections, weighted";
    case BalanceMethod::Random: return "weighted random";
    case BalanceMethod::Random2: return "best of two random picks";
    case BalanceMethod::IpHash: return "hash of the client address";
    case BalanceMethod::Hash: return "hash of the request";
    case BalanceMethod::Cookie: return "sticky cookie";
  }
  return "?";
}

bool starts(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// The TLS lines of `pasture check`: files and names, never key material.
std::string describe_tls(const TlsSettings& t) {
  std::string out = "  TLS 1.2 and 1.3 on the https:// listeners; TLS 1.2 suites: " +
                    (t.ciphers.empty() ? std::string("ECDHE with AES-GCM or ChaCha20 (Mozilla intermediate)")
                                       : "ciphers = " + t.ciphers) +
                    "; resumption by session tickets shared by all workers\n";
  if (t.self_signed) out += "    certificate: self-signed for localhost, made at start (ssl_pem = *; development only)\n";
  for (size_t i = 0; i < t.certs.size(); i++) {
    const TlsCertificate& c = t.certs[i];
    std::string names;
    for (const auto& n : c.names) names += (names.empty() ? "" : ", ") + n;
    out += "    certificate " + c.cert_file + " (key " + (c.key_file == c.cert_file ? "in the same file" : c.key_file) +
           ") for " + (names.empty() ? "no DNS name" : names) +
           (t.certs.size() > 1 && i == 0 ? " (default when SNI matches none)" : "") + "\n";
    if (!c.ocsp_file.empty()) out += "      OCSP response stapled from " + c.ocsp_file + "\n";
  }
  if (t.client_certs != ClientCerts::None)
    out += std::string("    client certificates ") + client_certs_word(t.client_certs) + ", verified against " +
           t.ca_certs +
           (t.client_subject_header.empty() ? "" : "; the verified subject goes upstream in " + t.client_subject_header) +
           "\n";
  return out;
}

// The `pasture check` tree.
class Describer {
 public:
  explicit Describer(const Site& site) : site_(site) {}
  std::string out;

  void handler(int idx, const std::string& indent);

 private:
  void urlmap(const Handler& h, const std::string& indent);
  void pool(const Handler& h, const std::string& indent);
  std::string kind_word(const Handler& h) const {
    if (h.kind == HandlerKind::UrlMap) return "urlmap";
    if (h.kind == HandlerKind::Echo) return "echo";
    if (h.kind == HandlerKind::Status) return "status";
    if (h.kind == HandlerKind::Static) return "static";
    return proxy_like(h) ? "proxy" : "balancer";
  }
  bool proxy_like(const Handler& h) const {
    return h.pool >= 0 && h.pool < static_cast<int>(site_.pools.size()) && !site_.pools[h.pool].preserve_host;
  }

  const Site& site_;
  std::set<int> shown_;
};

// Appends the handler's one-line title to the current line, then its details
// on lines of their own, indented by `indent` plus two spaces.
// What a native filter does, in one line (pasture check).
std::string filter_words(const Filter& f) {
  switch (f.kind) {
    case FilterKind::Gzip:
      return "gzip level " + std::to_string(f.compress_level) + " for text/* and application/* bodies of " +
             std::to_string(f.min_length) + " bytes or more, streamed (Vary: Accept-Encoding)";
    case FilterKind::Prefix: {
      std::string s = "SCRIPT_NAME '" + f.prefix + "', stripped from the path";
      if (f.translate_forwarded_server) s += "; X-Forwarded-Server/Host/For/Scheme/Proto translated for apps";
      if (f.has_force_port) s += "; port forced to " + (f.force_port.empty() ? std::string("the scheme's") : f.force_port);
      if (f.has_scheme) s += "; scheme " + f.scheme;
      return s + "; upstreams get the stripped path and X-Forwarded-Prefix";
    }
    case FilterKind::TransLogger:
      if (f.logging_level < f.set_logger_level) return "translogger line, off (logging_level below set_logger_level)";
      return std::string("translogger line per request to ") +
             (f.setup_console_handler ? "stderr (setup_console_handler)" : "the access log") +
             (f.format.empty() ? "" : ", format " + f.format);
  }
  return "";
}

void Describer::handler(int idx, const std::string& indent) {
  if (idx < 0 || idx >= static_cast<int>(site_.handlers.size())) {
    out += "404 Not Found (built in)\n";
    return;
  }
  const Handler& h = site_.handlers[idx];
  for (const Filter& f : h.filters) {
    out += "filter [" + f.name + "] " + filter_egg(f.kind) + ", run natively: " + filter_words(f) + "\n" + indent + "  then ";
  }
  if (!shown_.insert(idx).second) {
    out += kind_word(h) + " [" + h.name + "] (described above)\n";
    return;
  }
  switch (h.kind) {
    case HandlerKind::Echo:
      out += "echo [" + h.name + "]: answers \"" + h.echo_name + " <METHOD> <TARGET>\" itself\n";
      break;
    case HandlerKind::Status: {
      out += "status [" + h.name + "]: counters of every worker (HTML, ?format=json, /metrics, /ready), to";
      for (const auto& r : h.allow) out += " " + r.text;
      out += "; Host: IP literals, localhost";
      for (const auto& n : h.status_hosts) out += " " + n;
      out += "\n";
      break;
    }
    case HandlerKind::UrlMap:
      urlmap(h, indent);
      break;
    case HandlerKind::Static: {
      const StaticFiles& f = h.files;
      std::string index;
      for (const auto& n : f.index) index += (index.empty() ? "" : " ") + n;
      out += "static [" + h.name + "]: files under " + f.root + (f.paste ? " (egg:Paste#static)" : "") +
             "; a directory URL serves " + (index.empty() ? "nothing" : index) +
             (f.autoindex ? (index.empty() ? " but its listing" : ", else its listing") : index.empty() ? " (404)" : "") +
             "\n";
      out += indent + "  symbolic links: " +
             (f.symlinks == StaticFiles::Symlinks::Off       ? "not followed"
              : f.symlinks == StaticFiles::Symlinks::On      ? "followed anywhere"
                                                             : "followed while they stay under the root") +
             "; dotfiles " + (f.dotfiles ? "served" : "404") +
             (f.cache_max_age >= 0 ? "; Cache-Control max-age=" + std::to_string(f.cache_max_age) : "") +
             (f.br_static || f.gzip_static
                  ? std::string("; precompressed ") + (f.br_static ? ".br " : "") + (f.gzip_static ? ".gz " : "") +
                        "siblings when accepted"
                  : "") +
             (f.charset.empty() ? "" : "; charset=" + f.charset + " on text types") + "\n";
      if (f.fallback >= 0) {
        out += indent + "  no file there: ";
        handler(f.fallback, indent + "  ");
      }
      break;
    }
    case HandlerKind::Proxy:
      pool(h, indent);
      break;
  }
}

void Describer::urlmap(const Handler& h, const std::string& indent) {
  out += "urlmap [" + h.name + "]: the first route whose prefix matches takes the request\n";
  std::vector<std::string> labels;
  size_t width = 0;
  for (const auto& e : h.entries) {
    std::string label = e.domain.empty() ? (e.path.empty() ? "/" : e.path) : "http://" + e.domain + e.path + (e.path.empty() ? "/" : "");
    labels.push_back(label);
    width = std::max(width, label.size());
  }
  std::string nf = "anything else";
  width = std::max(width, nf.size());
  for (size_t i = 0; i < h.entries.size(); i++) {
    out += indent + "  " + labels[i] + std::string(width - labels[i].size(), ' ') + "  -> ";
    handler(h.entries[i].handler, indent + "    ");
  }
  out += indent + "  " + nf + std::string(width - nf.size(), ' ') + "  -> ";
  handler(h.not_found, indent + "    ");
}

void Describer::pool(const Handler& h, const std::string& indent) {
  if (h.pool < 0 || h.pool >= static_cast<int>(site_.pools.size())) {
    out += "proxy [" + h.name + "] without a pool\n";
    return;
  }
  const Pool& p = site_.pools[h.pool];
  std::string in = indent + "  ";
  const PythonApp* app = nullptr;
  for (const PythonApp& a : site_.python_apps)
    if (a.pool == h.pool) app = &a;
  if (app) {
    std::string what = app->section.empty() ? app->uri : "[" + app->section + "]";
    bool embedded = site_.server.app_mode == ServerSettings::AppMode::Embedded;
    out += "python app " + what + " (" + app->factory + "): " +
           (embedded ? "called in-process by every worker (embedded CPython)\n"
                     : "hosted by pasture in Python processes\n");
    out += in + (embedded ? "loaded with paste.deploy: loadapp('" : "each loads it with paste.deploy: loadapp('") +
           app->uri + "'" + (app->name.empty() ? "" : ", name='" + app->name + "'") + ")" +
           (app->skip_filters ? " minus the first " + std::to_string(app->skip_filters) +
                                    " filter(s), which pasture runs in front"
                              : "") +
           "\n";
    if (embedded) {
      out += in + "app threads per worker: " + std::to_string(site_.server.threads) +
             (site_.server.threads == 1 ? " (the app runs on the worker's event loop)" : "") +
             (site_.server.preload ? "; imported once in the master before forking (preload)" : "; imported by each worker after fork") + "\n";
      return;  // no pool, no upstream timeouts
    } else {
      std::string workers = site_.server.app_workers > 0 ? std::to_string(site_.server.app_workers)
                                                         : "one per CPU";
      out += in + "app processes: " + workers + " (app_workers / --app-workers), balanced by [" + p.name +
             "]: " + method_word(p.method) + " (" + method_words(p.method) + ")\n";
    }
  } else if (!p.preserve_host && p.servers.size() == 1) {
    const UpstreamServer& s = p.servers[0];
    out += "proxy [" + h.name + "] to " + (s.tls ? "https://" : "http://") + (is_v6(s.host) ? "[" + s.host + "]" : s.host) + ":" +
           std::to_string(s.port) + p.base_path + " (sends the upstream's host:port as Host)\n";
  } else {
    std::string title = "balancer [" + p.name + "]";
    if (h.name != p.name) {
      bool pipeline = starts(h.name, "pipeline:") || starts(h.name, "filter-app:");
      title = (pipeline ? "pipeline [" : "[") + h.name + "] -> balancer filter [" + p.name + "]";
    }
    size_t n = p.servers.size();
    out += title + ": " + method_word(p.method) + " (" + method_words(p.method) + ") over " + std::to_string(n) +
           (n == 1 ? " server\n" : " servers\n");
    for (const auto& s : p.servers) out += in + server_spec(s) + "\n";
    out += describe_sources(p, in);
    if (!p.servers_from.empty()) out += in + "(servers read from " + p.servers_from + ")\n";
    if (p.method == BalanceMethod::Cookie) {
      out += in + "sticky cookie " + p.cookie_name + (p.cookie_secret.empty() ? ", not signed" : ", signed with cookie_secret = ***") +
             (p.cookie_max_age_s ? ", Max-Age " + std::to_string(p.cookie_max_age_s) + "s\n"
                                 : ", session cookie, valid " + std::to_string(lb::kStickyDefaultMaxAge) +
                                       "s server-side\n");
    } else if (p.method == BalanceMethod::Hash) {
      out += in + "hash of " + p.hash_key + ", consistent hashing: " + consistency_word(p.consistent) + "\n";
    } else if (p.method == BalanceMethod::IpHash) {
      out += in + "hash of the client's " + (p.hash_whole_ip ? "whole IPv4 address" : "IPv4 /24 network") +
             ", consistent hashing: " + consistency_word(p.consistent) + "\n";
    }
  }
  out += in + "timeouts: connect " + format_duration_ms(p.connect_timeout_ms) + ", read " +
         format_duration_ms(p.read_timeout_ms) + ", send " + format_duration_ms(p.send_timeout_ms) + "; keeps up to " +
         std::to_string(p.keepalive) + " idle connections per server in each worker\n";
  out += in + "upgrade: " + upgrade_words(p) + " (tunnels idle out after " + format_duration_ms(p.tunnel_timeout_ms) +
         ")\n";
  if (p.any_tls()) out += in + upstream_tls_text(p.tls) + "\n";
}

}  // namespace

std::string upstream_tls_text(const UpstreamTls& t) {
  std::string out = "TLS to the https:// servers (TLS 1.2/1.3, ALPN http/1.1, sessions resumed): ";
  if (!t.verify) {
    out += "certificates NOT verified (tls_verify = off, for testing only)";
  } else {
    out += "certificate verified against " + (t.ca_certs.empty() ? std::string("the system CA store") : t.ca_certs) +
           " and the name " + (t.server_name.empty() ? std::string("of each server's host") : t.server_name);
  }
  out += t.server_name.empty() ? "; SNI: each server's host name (none for an IP address)" : "; SNI: " + t.server_name;
  if (!t.client_cert.empty())
    out += "; client certificate " + t.client_cert + (t.client_key.empty() ? "" : " (key in " + t.client_key + ")");
  return out;
}

std::string server_spec(const UpstreamServer& s) {
  std::string out;
  if (s.discover != UpstreamServer::Discover::None) {
    out = s.label();
  } else if (!s.unix_path.empty()) {
    out = "unix:" + s.unix_path;
  } else {
    out = (is_v6(s.host) ? "[" + s.host + "]" : s.host) + ":" + std::to_string(s.port);
    // A host named like a form's prefix ("unix:80", "dns:80") would read
    // back as that form: it keeps its scheme (fuzz_servers: `http://unix:`).
    if (s.tls)
      out = "https://" + out;
    else if (names_server_form(out))
      out = "http://" + out;
  }
  if (s.weight != 1) out += " weight=" + std::to_string(s.weight);
  if (s.max_conns != 0) out += " max_conns=" + std::to_string(s.max_conns);
  const UpstreamServer defaults;
  if (s.max_fails != defaults.max_fails) out += " max_fails=" + std::to_string(s.max_fails);
  if (s.fail_timeout_ms != defaults.fail_timeout_ms) out += " fail_timeout=" + format_duration_ms(s.fail_timeout_ms);
  if (s.slow_start_ms != defaults.slow_start_ms) out += " slow_start=" + format_duration_ms(s.slow_start_ms);
  if (s.backup) out += " backup";
  if (s.down) out += " down";
  return out;
}

std::string format_duration_ms(uint32_t ms) {
  if (ms >= 120000 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::string frac = std::to_string(1000 + ms % 1000).substr(1);
  while (frac.back() == '0') frac.pop_back();
  return std::to_string(ms / 1000) + "." + frac + "s";
}

const char* consistency_word(HashConsistency c) {
  switch (c) {
    case HashConsistency::Maglev: return "maglev";
    case HashConsistency::Ring: return "ring";
    case HashConsistency::None: return "none";
  }
  return "maglev";
}

std::string upgrade_words(const Pool& p) {
  if (p.upgrade_any) return "*";
  if (p.upgrade.empty()) return "off";
  std::string out;
  for (const std::string& t : p.upgrade) out += (out.empty() ? "" : " ") + t;
  return out;
}

const char* method_word(BalanceMethod m) {
  switch (m) {
    case BalanceMethod::RoundRobin: return "round_robin";
    case BalanceMethod::LeastConn: return "least_conn";
    case BalanceMethod::Random: return "random";
    case BalanceMethod::Random2: return "random2";
    case BalanceMethod::IpHash: return "ip_hash";
    case BalanceMethod::Hash: return "hash";
    case BalanceMethod::Cookie: return "cookie";
  }
  return "round_robin";
}

std::vector<std::string> site_secrets(const Site& site) {
  std::vector<std::string> out;
  for (const Pool& p : site.pools)
    if (!p.cookie_secret.empty()) out.push_back(p.cookie_secret);
  return out;
}

json::Value site_to_json(const Site& site) {
  json::Value v = json::Value::object();
  v["app_name"] = site.app_name;
  v["server"] = server_json(site.server);
  v["root"] = handler_json(site, site.root, 0);
  return v;
}

bool same_site(const Site& a, const Site& b) { return site_to_json(a) == site_to_json(b); }

std::string describe_site(const Site& site, int workers_override) {
  const ServerSettings& s = site.server;
  std::string out = "Config " + site.config_file + " is valid";
  out += " (app \"" + site.app_name + "\", server \"" + site.server_name + "\").\n\n";
  out += "Server (" + s.use + "):\n";
  for (const auto& l : s.listen) {
    char mode[16];
    snprintf(mode, sizeof mode, "%04o", l.unix_perms);
    out += "  listens on " + l.url() + (l.unix_path.empty() ? "" : std::string(" (mode ") + mode + ")") +
           (l.tls && !l.unix_path.empty() ? " with TLS" : "") +
           (l.h2c || (s.http2 && !l.tls) ? ", HTTP/2 by prior knowledge (h2c)" : "") +
           (s.http2 && l.tls ? ", HTTP/2 by ALPN h2" : "") + "\n";
  }
  if (s.http2 || std::any_of(s.listen.begin(), s.listen.end(), [](const Listener& l) { return l.h2c; }))
    out += "  HTTP/2: up to " + std::to_string(s.h2_max_streams) + " concurrent streams per connection, " +
           std::to_string(s.h2_max_resets) + " client stream resets per second\n";
  if (s.tls.enabled()) out += describe_tls(s.tls);
  if (!s.admin_socket.empty()) {
    char mode[16];
    snprintf(mode, sizeof mode, "%04o", s.admin_socket_mode);
    out += "  admin socket " + s.admin_socket + " (mode " + mode + "; pasture ctl CONFIG COMMAND)\n";
  }
  int workers = workers_override > 0 ? workers_override : s.workers;
  if (workers > 0) {
    out += "  " + std::to_string(workers) + (workers == 1 ? " worker process" : " worker processes");
    out += workers_override > 0 ? " (--workers)\n" : "\n";
  } else {
    unsigned cpus = std::thread::hardware_concurrency();
    out += "  one worker process per CPU (" + std::to_string(cpus ? cpus : 1) + " here)\n";
  }
  out += "  listen backlog " + std::to_string(s.backlog) + "; client header timeout " +
         format_duration_ms(s.client_header_timeout_ms) + ", keep-alive timeout " +
         format_duration_ms(s.keepalive_timeout_ms) + "\n";
  out += "  request head up to " + std::to_string(s.max_header_bytes) + " bytes, URL up to " +
         std::to_string(s.max_url_bytes) + " bytes, " + std::to_string(s.max_header_fields) +
         " header fields; request body " +
         (s.max_body_bytes ? "up to " + std::to_string(s.max_body_bytes) + " bytes" : std::string("unlimited")) +
         "\n";
  out += "  connections per worker: " +
         (s.max_connections ? "up to " + std::to_string(s.max_connections)
                            : std::string("up to half the descriptor limit")) +
         "\n";
  out += std::string("  ") + (s.via.empty() ? "no Via" : "Via: 1.1 " + s.via) +
         " on forwarded messages; TRACE " + (s.trace ? "forwarded" : "refused (405)") + "\n";
  if (!s.trusted_proxies.empty()) {
    out += "  forwarding headers (X-Forwarded-*, Forwarded, X-Real-IP) believed from:";
    for (const auto& r : s.trusted_proxies) out += " " + r.text;
    out += "\n";
  }
  if (s.underscores_in_headers) out += "  header names with '_' are forwarded\n";
  if (!s.user.empty() || !s.group.empty()) {
    out += "  once its listen sockets are bound, runs as " +
           (s.user.empty() ? std::string() : "user " + s.user + (s.group.empty() ? " (its primary group)" : ", ")) +
           (s.group.empty() ? std::string() : "group " + s.group) + " (--user/--group replace this)\n";
  }
  if (s.core_dumps) out += "  core dumps allowed (core_dumps = true): they may hold secrets\n";
  out += "\n";
  out += "Requests go to:\n  ";
  Describer d(site);
  d.handler(site.root, "  ");
  out += d.out;
  if (site.python_apps.empty()) {
    out += "\nAll of this is served natively by pasture (urlmap, proxy, balancer, echo, static).\n";
  } else {
    if (s.app_mode == ServerSettings::AppMode::Embedded)
      out += "\nPython WSGI apps (and their Python filters) run inside pasture's workers (app_mode = embedded),\n"
             "loaded with paste.deploy by the embedded interpreter; the rest is served natively by pasture\n"
             "(urlmap, proxy, balancer, echo, static).\n";
    else
      out += "\nPython WSGI apps (and their Python filters) run in pasture's app processes (app_mode = process),\n"
             "loaded with paste.deploy by " + std::string(s.python.empty() ? "python3 (on PATH, else /usr/bin/python3)" : s.python) +
             "; the rest is served natively by pasture (urlmap, proxy, balancer, echo, static).\n";
  }
  if (!site.notices.empty()) {
    out += "\nNotices:\n";
    for (const auto& n : site.notices) out += "  " + n + "\n";
  }
  return out;
}

}  // namespace pasture::conf
