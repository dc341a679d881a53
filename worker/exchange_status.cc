// Exchange, the status app (egg:pasture#status): counters of every worker
// as a page, typed JSON or Prometheus text, and /ready on GET and HEAD; the
// runtime-control commands (worker/admin_cmd.h) on POST only, with the
// X-Pasture-Command header.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "worker/admin_cmd.h"

#include "worker/exchange.h"
#include "worker/proxy_head.h"
#include "worker/status_render.h"

namespace pasture::worker {
namespace {

// The value of `name` in a query string ("a=1&format=json"), all of them
// for `scope`.
std::vector<std::string_view> query_values(std::string_view query, std::string_view name) {
  std::vector<std::string_view> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    size_t eq = part.find('=');
    if (part.substr(0, eq) == name) out.push_back(eq == std::string_view::npos ? "" : part.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

constexpr std::string_view kNoStore = "Cache-Control: no-store\r\n";

// `text` ("192.0.2.7", "2001:db8::1", "[::1]", "10.0.0.1:5000") as a sockaddr.
bool parse_addr(std::string_view text, sockaddr_storage* out) {
  std::string t(text);
  if (!t.empty() && t.front() == '[') t = t.substr(1, t.find(']') == std::string::npos ? 0 : t.find(']') - 1);
  auto* in4 = reinterpret_cast<sockaddr_in*>(out);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  std::memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET6, t.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    return true;
  }
  size_t colon = t.find(':');
  if (colon != std::string::npos) t.resize(colon);  // an IPv4 address with a port
  if (inet_pton(AF_INET, t.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    return true;
  }
  return false;
}

// A command is one line; a body past this is refused.
constexpr size_t kMaxCommandBytes = 4096;

// The header a POST must carry. A page on another site cannot make a browser
// send it without a CORS preflight, which the status app never grants: a
// cross-site form or fetch cannot run a command (CSRF).
constexpr std::string_view kCommandHeader = "X-Pasture-Command";

// DNS rebinding: a page on evil.example whose name is made to resolve to
// 127.0.0.1 reaches the status app from an allowed address, but its
// requests still say `Host: evil.example`. Answered: no Host (HTTP/1.0), an
// IP literal, `localhost`, or a name the app's `hosts` lists (`*`: any).
bool status_host_allowed(std::string_view host, const std::vector<std::string>& names) {
  if (host.empty()) return true;
  if (host.front() == '[') return host.find(']') != std::string_view::npos;  // [v6]:port
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos) host = host.substr(0, colon);
  if (host.empty()) return false;
  if (iequals(host, "localhost")) return true;
  in_addr a4;
  std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return true;
  for (const std::string& n : names)
    if (n == "*" || iequals(host, n)) return true;
  return false;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded value: '+' is a space, %XX a byte.
std::string form_decode(std::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size(); i++) {
    if (v[i] == '+') {
      out += ' ';
    } else if (v[i] == '%' && i + 2 < v.size() && hex_digit(v[i + 1]) >= 0 && hex_digit(v[i + 2]) >= 0) {
      out += (char)(hex_digit(v[i + 1]) * 16 + hex_digit(v[i + 2]));
      i += 2;
    } else {
      out += v[i];
    }
  }
  return out;
}

// The command in a POST body: `cmd=...` (a form; other fields ignored) or
// the text itself.
std::string command_of(std::string_view body) {
  std::string_view b = body;
  while (!b.empty() && (b.back() == '\n' || b.back() == '\r')) b.remove_suffix(1);
  if (b.substr(0, 4) != "cmd=" && b.find("&cmd=") == std::string_view::npos) return std::string(b);
  std::vector<std::string_view> v = query_values(b, "cmd");
  return v.empty() ? std::string() : form_decode(v.front());
}

}  // namespace

// Who the status app judges: the peer; behind trusted proxies the client
// the nearest of them names in X-Forwarded-For (its rightmost address not
// itself a trusted proxy, as nginx's real_ip_recursive). A request that
// carries forwarding headers from a peer not in trusted_proxies came through
// a proxy pasture cannot believe: nobody (false).
bool Exchange::status_client(const char* base, sockaddr_storage* who) {
  if (!sink_->peer_address(who)) return false;
  std::string xff;
  bool forwarded = false;
  for (const HeaderSpan& h : *head_->headers) {
    std::string_view name = span_view(base, h.name);
    if (iequals(name, "x-forwarded-for")) {
      if (!xff.empty()) xff += ',';
      xff.append(span_view(base, h.value));
      forwarded = true;
    } else if (iequals(name, "forwarded") || iequals(name, "x-real-ip")) {
      forwarded = true;
    }
  }
  if (!forwarded) return true;
  if (!peer_->trusted || xff.empty()) return false;
  const auto& trusted = w_->site().server.trusted_proxies;
  std::string_view rest = xff;
  while (!rest.empty()) {
    size_t comma = rest.rfind(',');
    std::string_view entry = trim_ows(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    if (!parse_addr(entry, who)) return false;
    if (!peer_trusted(trusted, reinterpret_cast<sockaddr*>(who))) return true;
  }
  return true;  // every address a trusted proxy: the leftmost is the client
}

void Exchange::respond_status(const char* base, const conf::Handler& hd, const RequestTarget& t,
                                const NormalPath& np) {
  sockaddr_storage ss{};
  if (!status_client(base, &ss) || !peer_trusted(hd.allow, reinterpret_cast<sockaddr*>(&ss))) {
    respond_local(403, "403 Forbidden: not in the status app's allow list\n", false);
    return;
  }
  std::string_view host = t.authority;
  for (const HeaderSpan& h : *head_->headers)
    if (host.empty() && iequals(span_view(base, h.name), "host")) host = span_view(base, h.value);
  // /ready tells nothing but ready or draining, to probes that send any Host.
  bool ready_path = method_ != HTTP_POST && path_info(np) == "/ready";
  if (!ready_path && !status_host_allowed(host, hd.status_hosts)) {
    respond_local(403, "403 Forbidden: this Host is not the status app's (DNS rebinding guard; see `hosts`)\n", false);
    return;
  }
  if (method_ == HTTP_POST) {
    bool marked = false, cross = false;
    std::string_view origin;
    for (const HeaderSpan& h : *head_->headers) {
      std::string_view name = span_view(base, h.name), value = span_view(base, h.value);
      marked |= iequals(name, kCommandHeader);
      // Defence in depth, for a browser that would send the header anyway:
      // what it says about where the request comes from must be this site.
      if (iequals(name, "sec-fetch-site")) cross |= !iequals(value, "same-origin") && !iequals(value, "none");
      if (iequals(name, "origin")) origin = value;
    }
    if (!origin.empty() && origin != "null") {
      size_t scheme = origin.find("://");
      cross |= scheme == std::string_view::npos || !iequals(origin.substr(scheme + 3), host);
    }
    if (cross) {
      respond_local(403, "403 Forbidden: a command from another site (Origin / Sec-Fetch-Site)\n", false);
      return;
    }
    if (!marked) {
      respond_local(403, "403 Forbidden: a command needs the X-Pasture-Command header (CSRF guard)\n", false);
      return;
    }
    if (content_length_ > (int64_t)kMaxCommandBytes) {
      respond_local(413, "413 Content Too Large: one command line\n", false);
      return;
    }
    mode_ = Mode::kStatusCmd;  // on_request_complete() runs it
    cmd_ = w_->take_buf();
    send_continue();
    return;
  }
  if (method_ != HTTP_GET && method_ != HTTP_HEAD) {
    respond_local(405, "405 Method Not Allowed\n", false, "Allow: GET, HEAD, POST\r\n");
    return;
  }
  std::string_view path = path_info(np);  // behind a prefix filter too (found by review)
  if (path == "/ready") {
    // Fails while this worker drains; a load balancer in front moves on.
    if (w_->ready_fails())
      respond_local(503, "draining\n", false, kNoStore);
    else
      respond_local(200, "ready\n", false, kNoStore);
    return;
  }
  if (w_->region().header().superseded.load(std::memory_order_acquire)) {  // see ShmHeader
    respond_local(503, "503 Service Unavailable: a reload is replacing this worker; ask again\n", true,
                  "Retry-After: 1\r\nCache-Control: no-store\r\n");
    return;
  }
  if (path == "/metrics") {
    unsigned scopes = 0;
    for (std::string_view v : query_values(t.query, "scope")) {
      unsigned bit = parse_scope(v);
      if (!bit) {
        respond_local(400, "400 Bad Request: scope is one of info, worker, pool, server\n", false);
        return;
      }
      scopes |= bit;
    }
    respond_local(200, render_prometheus(take_snapshot(*w_), scopes), false, kNoStore,
                  "text/plain; version=0.0.4; charset=utf-8");
    return;
  }
  if (!path.empty() && path != "/") {
    respond_local(404, "404 Not Found\n", false);
    return;
  }
  auto format = query_values(t.query, "format");
  if (!format.empty() && format.back() == "json") {
    respond_local(200, render_json(take_snapshot(*w_)), false, kNoStore, "application/json");
    return;
  }
  // The links: the path the client used, without PATH_INFO.
  std::string_view info = path_info(np);
  std::string_view full = np.decoded;
  std::string page_base(full.substr(0, full.size() >= info.size() && full.ends_with(info) ? full.size() - info.size()
                                                                                          : std::min<size_t>(script_len_, full.size())));
  page_base += "/";
  respond_local(200, render_html(take_snapshot(*w_), page_base), false, kNoStore, "text/html; charset=utf-8");
}

void Exchange::collect_status_command(const char* p, size_t n) {
  if (!cmd_ || cmd_->size() > kMaxCommandBytes) return;
  cmd_->append(p, std::min(n, kMaxCommandBytes + 1 - cmd_->size()));
}

void Exchange::run_status_command() {
  if (!cmd_ || cmd_->size() > kMaxCommandBytes) {
    respond_local(413, "413 Content Too Large: one command line\n", false);
    return;
  }
  std::string cmd = command_of(*cmd_);
  AdminResult r = execute_admin(
      SnapshotSource{&w_->site(), &w_->region(), &w_->pool_first_server(), w_->ready_fails(), w_->now()}, cmd,
      std::string("http ") + peer_text());
  respond_local(r.ok ? 200 : 400, r.text, false, kNoStore);
}

}  // namespace pasture::worker
