// The one configuration model of pasture: plain, validated, immutable data.
//
// conf/ builds a Site from a paste.deploy INI file (or, later, YAML); master/
// and worker/ only ever read it as `const Site&`. Nothing outside conf/ parses
// configuration text. Indices, not pointers, link the parts so that a Site can
// be copied and compared, and so that shared-memory slots can be laid out by
// pool/server index.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pasture::conf {

// Where a piece of configuration came from, for error and log messages.
struct SourceLoc {
  std::string file;  // absolute path
  int line = 0;      // 1-based; 0 = unknown / whole file
  std::string str() const { return file + ":" + std::to_string(line); }
};

// One upstream member of a pool, nginx-style: `host:port weight=N max_conns=N backup down`.
struct UpstreamServer {
  std::string host;      // as written: an IPv4/IPv6 literal or a name resolved at start-up
  uint16_t port = 0;
  uint32_t weight = 1;   // >= 1
  uint32_t max_conns = 0;  // 0 = unlimited
  bool backup = false;
  bool down = false;     // administratively down
  SourceLoc loc;
  // Passive health (nginx): max_fails failures within fail_timeout mark the
  // server down for fail_timeout; max_fails=0 disables. slow_start: after
  // coming back up, its weight ramps from 0 over this time (0 = off).
  uint32_t max_fails = 1;
  uint32_t fail_timeout_ms = 10000;
  uint32_t slow_start_ms = 0;
  // Non-empty: a unix-domain stream socket at this path instead of host:port
  // (e.g. a Python app process pasture hosts; see PythonApp).
  std::string unix_path = {};
  // `https://host:port` in `servers =` (or a Paste#proxy https:// address):
  // pasture speaks TLS to this server, with its pool's Pool::tls settings.
  // Per server, so a pool may mix http:// and https:// members.
  bool tls = false;
  // Not a server but a source of servers (moved into Pool::sources by
  // fill_pool): `dns:NAME:PORT` (A and AAAA records of NAME, the port given)
  // or `dns+srv:NAME` (SRV records: targets' A/AAAA, ports, weights and
  // priorities), host = NAME; the other parameters apply to every member the
  // source yields. `servers_from = etcd://HOST:PORT[,HOST:PORT...]/PREFIX`
  // (Etcd): one key per server under PREFIX, each value one `servers` entry
  // (master/etcd_watch.h); host and port are unused, the endpoints and the
  // prefix (with a '/' at its end) are below.
  enum class Discover : uint8_t { None, Dns, DnsSrv, Etcd };
  Discover discover = Discover::None;
  std::vector<std::pair<std::string, uint16_t>> etcd_endpoints = {};
  std::string etcd_prefix = {};
  // >= 0: a slot the master reserved for a discovered member (one of
  // Pool::max_servers, master/resolver.h); its address, weight and tier are
  // in shared memory (shm::MemberSlot), the other parameters are its
  // pool's first source's.
  int dynamic_slot = -1;
  std::string label() const {
    if (discover == Discover::Dns) return "dns:" + host + ":" + std::to_string(port);
    if (discover == Discover::DnsSrv) return "dns+srv:" + host;
    if (discover == Discover::Etcd) {
      std::string out = "etcd://";
      for (const auto& [h, p] : etcd_endpoints)
        out += (out.size() > 7 ? "," : "") + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(p);
      return out + etcd_prefix.substr(0, etcd_prefix.size() - 1);
    }
    if (dynamic_slot >= 0) return "slot" + std::to_string(dynamic_slot);
    return unix_path.empty() ? host + ":" + std::to_string(port) : "unix:" + unix_path;
  }
};

enum class BalanceMethod { RoundRobin, LeastConn, Random, Random2, IpHash, Hash, Cookie };

// `consistent =` of methods hash and ip_hash.
enum class HashConsistency { Maglev, Ring, None };

// `retry_on =` conditions besides http_NNN statuses (Pool::retry_on).
inline constexpr uint32_t kRetryError = 1u << 0;          // `error`: connect error, reset/close before a response
inline constexpr uint32_t kRetryTimeout = 1u << 1;        // `timeout`: connect or response-head timeout
inline constexpr uint32_t kRetryInvalidHeader = 1u << 2;  // `invalid_header`: unparsable response head
inline constexpr uint32_t kRetryNonIdempotent = 1u << 3;  // `non_idempotent`: also POST, LOCK, PATCH

// TLS to a pool's https:// servers (nginx proxy_ssl_*, HAProxy `server ...
// ssl verify required ca-file sni`). Used only when some server has `tls`.
struct UpstreamTls {
  // `tls_verify = off` (for testing only): any certificate is taken.
  // Otherwise the server's chain must verify against ca_certs (or the
  // system's CA store, OpenSSL's default paths, when empty) and name the
  // server: its host name (DNS) or IP literal, or server_name when given.
  bool verify = true;
  std::string ca_certs;     // `tls_ca_certs =`: absolute path of a PEM bundle; "" = system store
  std::string server_name;  // `tls_server_name =`: SNI and the name verified; "" = each server's host
  // `tls_client_cert` / `tls_client_key`: a client certificate for
  // servers that ask for one (mTLS); key "" = in the certificate's file.
  std::string client_cert, client_key;
  SourceLoc ca_loc, client_cert_loc, client_key_loc, server_name_loc, verify_loc;  // where each was set
};

// A set of upstream servers requests are balanced over. `egg:pasture#balancer`,
// `[filter:x] use = egg:Paste#balancer` and `egg:Paste#proxy` (a pool of one) all
// become a Pool.
struct Pool {
  std::string name;  // the section that defined it, e.g. "app:backends"
  std::vector<UpstreamServer> servers;
  // `servers_from = FILE`: absolute path of the YAML file `servers` was read
  // from at load time (conf::load_servers_file); empty = listed inline.
  std::string servers_from;
  // Discovery (issue 16): `dns:` / `dns+srv:` entries of `servers =`, in
  // order, then an `etcd://` servers_from (UpstreamServer::discover set;
  // servers_from is then empty: it names a file only). A pool with sources
  // reserves max_servers slots for their members besides its static
  // servers; one resolver process per generation asks every resolve period
  // (or watches etcd) and writes the membership into shared memory
  // (master/resolver.h).
  std::vector<UpstreamServer> sources;
  uint32_t max_servers = 16;
  // The period: the answers' smallest TTL, clamped to [resolve_min,
  // resolve_max]; resolve_max defaults to resolve_interval, which is also
  // the retry period after a failed answer.
  uint32_t resolve_interval_ms = 5000;
  uint32_t resolve_min_ms = 1000;
  uint32_t resolve_max_ms = 0;  // 0 = resolve_interval_ms
  uint32_t resolve_timeout_ms = 1000;  // per query and name server
  // `resolver = 10.0.0.2:53 [::1]:53`: the name servers asked, in order;
  // empty = /etc/resolv.conf's. IP literal and port.
  std::vector<std::pair<std::string, uint16_t>> resolvers;
  uint32_t resolve_max() const { return resolve_max_ms ? resolve_max_ms : resolve_interval_ms; }
  BalanceMethod method = BalanceMethod::RoundRobin;

  // Path prefix joined to the request path like Paste's proxy joins its address
  // path (urljoin(base_path, path.lstrip('/'))). Empty = request path unchanged.
  std::string base_path;
  // true: forward the client's Host (a load balancer); false: send the
  // upstream's host:port as Host (Paste's proxy does this).
  bool preserve_host = true;

  // Timeouts in milliseconds.
  uint32_t connect_timeout_ms = 5000;
  uint32_t read_timeout_ms = 60000;
  uint32_t send_timeout_ms = 60000;
  uint32_t keepalive = 32;  // idle upstream connections kept per server per worker
  // Protocol upgrades (RFC 9110 7.8) tunnelled to the picked server:
  // `upgrade = websocket` (default: only the websocket token), `*` (any
  // token the client asks for) or `off` (Upgrade is dropped, as nginx
  // without proxy_set_header Upgrade). Lowercase tokens; empty = off.
  std::vector<std::string> upgrade = {"websocket"};
  bool upgrade_any = false;  // `upgrade = *`
  // Idle timeout of an upgraded connection, either way (HAProxy's timeout
  // tunnel): no byte either way for this long closes both sides.
  uint32_t tunnel_timeout_ms = 3600000;
  std::string cookie_secret;  // `cookie_secret =` (method cookie); empty = none
  // Method hash: `hash_key =` remote_addr, uri, path, header:NAME, cookie:NAME
  // or arg:NAME, validated and stripped (lb::parse_hash_key accepts it).
  std::string hash_key = "remote_addr";
  HashConsistency consistent = HashConsistency::Maglev;  // methods hash, ip_hash
  bool hash_whole_ip = false;  // ip_hash: the whole IPv4 address instead of its /24
  std::string cookie_name = "pasture_sticky";  // method cookie: the sticky cookie's name
  // Method cookie: `cookie_max_age =` in seconds, sent as Max-Age and the
  // server-side validity; 0 = unset: a session cookie (no Max-Age), valid
  // lb::kStickyDefaultMaxAge (24h) server-side.
  uint32_t cookie_max_age_s = 0;

  // Passive health: response statuses that count as a server failure
  // (`fail_on = 502 503 504`, ranges allowed; `off` = none), besides connect
  // errors and timeouts. Inclusive [lo, hi] ranges (lb::StatusRanges).
  std::vector<std::pair<uint16_t, uint16_t>> fail_on = {{502, 502}, {503, 503}, {504, 504}};
  // Retries (nginx proxy_next_upstream): at most `retries` further attempts,
  // each on another server, when a condition in retry_on holds and nothing
  // was sent to the client yet. `retry_budget = 20%` (INI: `20%%` or `20`): retries in flight may
  // be at most this percentage of requests in flight (Envoy's budget);
  // 100 = no limit.
  uint32_t retries = 1;
  uint32_t retry_on = kRetryError | kRetryTimeout;  // kRetry* flags
  std::vector<std::pair<uint16_t, uint16_t>> retry_on_status = {{502, 502}, {503, 503}, {504, 504}};
  uint32_t retry_budget_percent = 20;

  // Active health checks, run by the master's health-checker process: GET
  // health_check every health_interval, failing after health_timeout or on a
  // status outside health_status; `fall` consecutive failures mark a server
  // down, `rise` consecutive successes up again. Empty path = off.
  std::string health_check;
  uint32_t health_interval_ms = 5000;
  uint32_t health_timeout_ms = 2000;
  uint32_t rise = 2;
  uint32_t fall = 3;
  std::vector<std::pair<uint16_t, uint16_t>> health_status = {{200, 399}};

  UpstreamTls tls;  // for the servers with `tls`
  bool any_tls() const {
    for (const UpstreamServer& s : servers)
      if (s.tls) return true;
    return false;
  }

  SourceLoc loc;
};

// One `trusted_proxies` entry: an address or CIDR block ("10.0.0.0/8",
// "::1", "192.0.2.7"), or `unix` for peers on a unix-socket listener.
struct AddressRange {
  std::string text;     // as written, for messages and `pasture convert`
  bool unix = false;
  int family = 0;       // AF_INET or AF_INET6 (an IPv4 range also matches v4-mapped v6 peers)
  uint8_t addr[16] = {};  // network byte order; 4 bytes used for AF_INET
  uint8_t prefix = 0;   // leading bits that must match
};

enum class HandlerKind {
  UrlMap,    // egg:Paste#urlmap composite
  Proxy,     // forwards to `pool`
  Echo,      // egg:pasture#echo: answers with its name and the request line
  Status,    // egg:pasture#status: the counters in shared memory (worker/status_*.cc)
  Static,    // egg:Paste#static, egg:pasture#static: files under a directory (worker/static_*.cc)
};

// Static files (Handler::files). Two flavours: egg:Paste#static keeps
// paste.urlparser.StaticURLParser's answers (a file URL with a trailing
// slash serves the file, `foo.txt.gz` is text/plain with Content-Encoding
// gzip, dotfiles are served); egg:pasture#static is nginx-like (those are
// 404, application/gzip) and takes the keys below.
struct StaticFiles {
  bool paste = true;       // egg:Paste#static's semantics; false = egg:pasture#static
  std::string root;        // document_root: absolute, no trailing slash
  // Files a directory URL (ending in '/') serves, tried in order; empty =
  // none (a directory URL is then 404, or the listing with autoindex).
  std::vector<std::string> index = {"index.html"};
  int64_t cache_max_age = -1;  // seconds: Cache-Control max-age and Expires; -1 = neither
  // Symbolic links below the root: Off = none is followed (404), Beneath =
  // followed while what they name stays under the root (the default: a link
  // out of the root is 404), On = followed anywhere (Paste's own behaviour).
  enum class Symlinks : uint8_t { Off, Beneath, On };
  Symlinks symlinks = Symlinks::Beneath;
  bool dotfiles = true;    // a path segment starting with '.' is served (false: 404)
  // Precompressed siblings (`precompressed = br gzip`): `x.br`/`x.gz` is
  // sent for `x` when Accept-Encoding allows it, in this order.
  bool gzip_static = false, br_static = false;
  // `charset = utf-8`: added to text/* (and JavaScript, JSON, XML) types; "" = none (nginx's default).
  std::string charset;
  // `fallback = NAME`: a request that finds no file (404) goes to that
  // app instead, unchanged (nginx try_files ... @app). -1 = 404.
  int fallback = -1;
  // Directory listings (`autoindex = on`, worker/static_index.h): a
  // directory URL whose index files are missing lists the directory.
  bool autoindex = false;
};

// `[composite:x] use = egg:Paste#urlmap` entry, already normalised the way
// paste.urlmap normalises it: `domain` (may carry :port) empty for none,
// `path` without trailing slash ("" for "/").
struct UrlMapEntry {
  std::string domain;
  std::string path;
  int handler = -1;
  SourceLoc loc;
};

// A paste.deploy filter pasture runs itself, in front of a Handler
// (conf/filters.h; worker/filter_sink.h, worker/exchange_filters.cc).
// Paste's semantics where Paste defines them.
enum class FilterKind : uint8_t {
  Gzip,         // egg:Paste#gzip: the response body compressed, streaming
  Prefix,       // egg:PasteDeploy#prefix: PrefixMiddleware (SCRIPT_NAME, X-Forwarded-*)
  TransLogger,  // egg:Paste#translogger: Paste's log line per request
};

struct Filter {
  FilterKind kind = FilterKind::Gzip;
  std::string name;  // the section, e.g. "filter:gz"
  SourceLoc loc;

  // Gzip: zlib level 0-9 (`compress_level`, Paste's default 6). Bodies of a
  // known length under min_length go uncompressed (nginx's gzip_min_length
  // default; not a Paste key: YAML only).
  int compress_level = 6;
  uint32_t min_length = 20;

  // Prefix: `prefix` with its trailing '/' stripped (PrefixMiddleware's
  // rstrip), matched at the start of PATH_INFO where '.' is any byte but a
  // newline (Paste compiles it into a regex; other regex characters are
  // refused at load time). translate_forwarded_server: X-Forwarded-Server,
  // -Host, -For, -Scheme, -Proto become HTTP_HOST/SERVER_NAME, REMOTE_ADDR
  // and wsgi.url_scheme and are removed. force_port (has_force_port):
  // SERVER_PORT and the Host's port; "" = the scheme's default. scheme
  // (has_scheme): wsgi.url_scheme.
  std::string prefix;
  bool translate_forwarded_server = true;
  bool has_force_port = false;
  std::string force_port;
  bool has_scheme = false;
  std::string scheme;

  // TransLogger: a line per request, at the response head, in `format`
  // (Python %-format over TransLogger's keys; "" = Paste's default). Where
  // it goes: stderr with setup_console_handler, else the access log (when
  // there is one). Written when logging_level >= set_logger_level (Python
  // logging's levels: 10 DEBUG, 20 INFO, ...).
  std::string logger_name = "wsgi";
  std::string format;
  bool setup_console_handler = true;
  int logging_level = 20;
  int set_logger_level = 10;
};

struct Handler {
  HandlerKind kind = HandlerKind::Echo;
  std::string name;  // section name, for logs
  SourceLoc loc;

  // UrlMap: entries in paste.urlmap's match order (domain entries first, sorted
  // by domain then longest path; then domain-less entries, longest path first).
  std::vector<UrlMapEntry> entries;
  int not_found = -1;  // handler for no match; -1 = built-in 404

  // Proxy
  int pool = -1;

  // Echo
  std::string echo_name;

  // Status: who may see it (default: loopback and unix-socket peers); others get 403.
  std::vector<AddressRange> allow;
  // Status: the Host names it answers besides IP literals and `localhost`
  // (a DNS-rebinding guard; lower case, no port); "*" = any.
  std::vector<std::string> status_hosts;

  // Static
  StaticFiles files;

  // Proxy of a Python app (Site::python_apps[app]): in embedded mode the
  // worker calls the app in-process instead of balancing over `pool`.
  int app = -1;

  // Filters pasture runs in front of this handler (a [pipeline:], a
  // filter-with or a [filter-app:] whose filters are native), outermost
  // first: the request passes them in this order before the handler (a
  // UrlMap routes after its own filters), the response in the reverse one.
  std::vector<Filter> filters;
};

// A WSGI app pasture does not serve natively (`use = egg:myapp`, `call:`,
// `paste.app_factory`, Python filters, Python composites). The master hosts it
// (master/apphost.h): app_workers Python processes load exactly this object
// with paste.deploy and serve it; a Proxy handler balances over them through
// `pool`. conf/ leaves that pool's `servers` empty: the master fills in one
// server per app process when it builds a generation.
struct PythonApp {
  std::string uri;        // loadapp's first argument: "config:/abs/file.ini", "egg:X", "call:m:f"
  std::string name;       // loadapp's name= (the section's object name); "" = paste.deploy's default
  int skip_filters = 0;   // leading pipeline filters pasture runs itself (the balancer), not loaded
  // skip_filters > 0: what is loaded instead, each by name from `uri`:
  // filters outermost first, then the app (paste.deploy pipeline order).
  std::vector<std::string> pipeline;
  std::string section;    // "app:myapp", "pipeline:main"; "" when named by a URI
  std::string factory;    // what paste.deploy calls, for messages: "egg:myapp", "call:m:f", ...
  int pool = -1;          // index into Site::pools
  SourceLoc loc;
};

// TLS (issue 15). One certificate with its key, as the server section
// names it: Paste's `ssl_pem` (both in one PEM), gunicorn's `certfile` /
// `keyfile`, pasture's `tls_cert` / `tls_key` (several, chosen by SNI).
// Paths are absolute (a relative one is taken from the config file's
// directory). conf/ checks at load time that the files are readable, hold
// a certificate and a matching private key, and that the key file is not
// readable by others; it never keeps key material, only the names.
struct TlsCertificate {
  std::string cert_file;  // PEM: the certificate, then its chain
  std::string key_file;   // PEM private key (== cert_file when one file holds both)
  // DER OCSP response stapled for this certificate (`tls_ocsp =`), re-read
  // with the certificates; "" = no stapling.
  std::string ocsp_file;
  // The DNS names the certificate holds (subjectAltName, else the subject
  // CN), filled when the files are checked: `pasture check` shows them,
  // SNI picks by them.
  std::vector<std::string> names;
  SourceLoc loc, key_loc, ocsp_loc;  // where each file was named
};

// Client certificates (gunicorn's cert_reqs 0/1/2, ssl.CERT_*).
enum class ClientCerts : uint8_t { None, Optional, Required };

struct TlsSettings {
  // certs[0] answers a client without SNI or with a name no certificate has.
  std::vector<TlsCertificate> certs;
  // Paste's `ssl_pem = *`: a self-signed certificate made at start
  // (development only); certs is then empty.
  bool self_signed = false;
  std::string ca_certs;  // PEM bundle the client certificates must chain to
  SourceLoc ca_loc;
  ClientCerts client_certs = ClientCerts::None;
  // OpenSSL cipher list for TLS 1.2 (gunicorn's `ciphers`); "" = Mozilla's
  // "intermediate" ECDHE suites (conf::kTlsDefaultCiphers). TLS 1.3 suites
  // are OpenSSL's (all AEAD, all forward secret).
  std::string ciphers;
  // mTLS: the verified client certificate's subject (RFC 2253) is sent
  // upstream in this request header; "" = not passed.
  std::string client_subject_header;
  SourceLoc loc;  // the key that turned TLS on
  bool enabled() const { return self_signed || !certs.empty(); }
};

struct Listener {
  std::string host;  // "0.0.0.0", "127.0.0.1", "::", ...
  uint16_t port = 0;
  SourceLoc loc;
  // Speaks TLS with ServerSettings::tls (`listen = 0.0.0.0:443 tls`, or
  // every listener of a server with ssl_pem / certfile / tls_cert and no
  // listener marked `tls`).
  bool tls = false;
  // HTTP/2 (worker/h2_conn.h): cleartext by prior knowledge (`listen =
  // 127.0.0.1:8080 h2c`, or ServerSettings::http2 on a plain listener; a
  // connection opening with the HTTP/2 preface is HTTP/2, any other
  // HTTP/1.1), by ALPN "h2" on a TLS listener with ServerSettings::http2.
  bool h2c = false;
  // Non-empty: a unix-domain stream socket at this absolute path instead of
  // host:port (`listen = unix:/path`, waitress's `unix_socket =`), chmod'ed
  // to unix_perms once bound (waitress's `unix_socket_perms`, octal).
  std::string unix_path = {};
  uint32_t unix_perms = 0666;
  std::string url() const {
    if (!unix_path.empty()) return "unix:" + unix_path;
    bool v6 = host.find(':') != std::string::npos;
    return (tls ? "https://" : "http://") + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }
};

struct ServerSettings {
  std::string use;  // e.g. "egg:Paste#http"
  std::vector<Listener> listen;
  TlsSettings tls;  // for the listeners with `tls`
  // HTTP/2 (`http2 = on`): h2c on every plain listener, ALPN h2 on TLS ones.
  bool http2 = false;
  uint32_t h2_max_streams = 100;  // SETTINGS_MAX_CONCURRENT_STREAMS per connection
  // RST_STREAM a client may send per second, as a burst then a rate, before
  // the connection is ended with GOAWAY ENHANCE_YOUR_CALM (CVE-2023-44487).
  uint32_t h2_max_resets = 200;
  int workers = 0;  // 0 = number of CPUs
  uint32_t backlog = 1024;
  // Client-side limits and timeouts (milliseconds / bytes).
  uint32_t client_header_timeout_ms = 60000;
  uint32_t keepalive_timeout_ms = 75000;
  uint32_t max_header_bytes = 32 * 1024;  // whole request head; more -> 431
  uint32_t max_url_bytes = 8 * 1024;      // request target; more -> 414
  uint32_t max_header_fields = 100;       // header lines in a request head; more -> 431
  uint32_t client_body_timeout_ms = 60000;  // between body bytes; -> 408
  uint32_t send_timeout_ms = 60000;  // between writes the client takes, while answers wait for it
  // Largest request body (nginx's client_max_body_size, waitress's
  // max_request_body_size): a larger Content-Length is answered 413 before
  // a body byte is read (no 100 Continue); a chunked body is cut at the
  // limit (413 unless the answer began). 0 = no limit.
  uint64_t max_body_bytes = 0;
  // Client connections one worker holds at most (nginx's worker_connections,
  // gunicorn's worker_connections, waitress's connection_limit); beyond it
  // the worker stops accepting until one closes, and new connections wait in
  // the listen queue for any worker with room. 0 = half the worker's
  // descriptor limit (each proxied connection may need an upstream one).
  uint32_t max_connections = 0;
  // Request header names with '_' are forwarded only when on (nginx's
  // underscores_in_headers; default off: dropped, as nginx and waitress).
  bool underscores_in_headers = false;
  // Peers whose forwarding headers (X-Forwarded-*, Forwarded, X-Real-IP)
  // are believed and passed on (nginx set_real_ip_from, gunicorn
  // forwarded_allow_ips). Empty: nobody's.
  std::vector<AddressRange> trusted_proxies;
  // Proxying (RFC 9110 7.6). `via`: the received-by name pasture adds to Via
  // in forwarded requests and responses ("" = none; Apache's ProxyVia).
  // `trace`: TRACE is forwarded (else 405, as most operators configure).
  std::string via = "pasture";
  bool trace = false;
  // Lifecycle (gunicorn names where gunicorn has them).
  uint32_t graceful_timeout_ms = 30000;   // drain time on TERM/QUIT/HUP
  // While a worker drains, an idle keep-alive connection stays open this
  // long (never longer than keepalive_timeout): a request its client was
  // already sending is answered, with Connection: close, instead of meeting
  // a closed socket. 0 = close idle connections at once.
  uint32_t drain_idle_grace_ms = 1000;
  uint32_t worker_timeout_ms = 30000;     // heartbeat age that gets a worker killed; 0 = off
  uint64_t max_requests = 0;              // recycle a worker after this many; 0 = never
  uint64_t max_requests_jitter = 0;       // + random [0, jitter]
  bool reuse_port = false;                // SO_REUSEPORT: one listen socket per worker
  std::string access_log;                 // path; "-" = stderr; empty = off
  // The runtime-control socket (worker/admin_cmd.h): a unix socket the
  // master binds at start-up, chowned to `user` like unix listeners, with
  // these permission bits; "" = none. A reload keeps the socket bound at start.
  std::string admin_socket;
  uint32_t admin_socket_mode = 0600;
  // The status page's history (common/history.h): the master samples the
  // counters this often into a ring of 120; 0 = no history.
  uint32_t status_history_interval_ms = 5000;
  // Python apps (Site::python_apps): processes per app (0 = number of CPUs)
  // and the interpreter (empty = the first of python3 on PATH and
  // /usr/bin/python3 that can import paste.deploy).
  int app_workers = 0;
  std::string python;
  // How Python apps run. Embedded (default): every worker embeds CPython and
  // calls the app in-process (worker/wsgi/). Process: app_workers
  // supervised Python processes behind the workers (master/apphost.h);
  // implied by `python =`.
  enum class AppMode : uint8_t { Embedded, Process };
  AppMode app_mode = AppMode::Embedded;
  SourceLoc app_mode_loc;  // line 0: not set
  // Embedded: app threads per worker (1 = the app runs on the event loop;
  // waitress's and gunicorn's `threads`, Paste's `threadpool_workers`), and
  // `preload` (gunicorn's preload_app): the app is imported in the master
  // before forking.
  uint32_t threads = 1;
  bool preload = false;
  // Privileges (gunicorn's `user`/`group`, nginx's `user USER GROUP`): once
  // every listener is bound, the master drops to this user (a name or uid)
  // and group (a name or gid; default the user's primary group), and so does
  // every process it starts. Checked to exist at load time. Empty = stay as
  // started. --user/--group, when given, replace both.
  std::string user, group;
  SourceLoc user_loc, group_loc;  // line 0: not set
  // pasture's processes hold secrets (cookie_secret, the app's config), so
  // they are not dumpable (PR_SET_DUMPABLE 0: no core file, no ptrace by
  // their user) unless this is on.
  bool core_dumps = false;
  SourceLoc loc;
};

struct Site {
  std::string config_file;  // absolute path of the top file
  std::string app_name = "main";
  std::string server_name = "main";
  ServerSettings server;
  std::vector<Handler> handlers;
  int root = -1;  // index into handlers
  std::vector<Pool> pools;
  std::vector<PythonApp> python_apps;  // hosted by the master (master/apphost.h)
  std::vector<std::string> notices;  // one-line notices (ignored keys, ...)
};

// What to load: paster serve's CONFIG[#name] plus options.
struct LoadOptions {
  std::string config;        // path, optionally "config:" prefixed, optionally "#name"
  std::string app_name;      // -n/--app-name; empty = from #fragment or "main"
  std::string server_name;   // --server-name; empty = from #fragment or "main"
  std::vector<std::pair<std::string, std::string>> vars;  // var=value from the command line
  std::string relative_to;   // base for a relative config path; empty = cwd
};

}  // namespace pasture::conf
