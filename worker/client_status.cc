// ClientConn, the status app (egg:pasture#status): counters of every worker
// as a page, typed JSON or Prometheus text, and /ready. Read-only; GET and
// HEAD only.
#include <sys/socket.h>

#include "worker/client_conn.h"
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

}  // namespace

void ClientConn::respond_status(const conf::Handler& hd, const RequestTarget& t, const NormalPath& np) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
      !peer_trusted(hd.allow, reinterpret_cast<sockaddr*>(&ss))) {
    respond_local(403, "403 Forbidden: not in the status app's allow list\n", false);
    return;
  }
  if (method_ != HTTP_GET && method_ != HTTP_HEAD) {
    respond_local(405, "405 Method Not Allowed\n", false, "Allow: GET, HEAD\r\n");
    return;
  }
  std::string_view path = np.decoded.substr(std::min<size_t>(script_len_, np.decoded.size()));
  if (path == "/ready") {
    // Fails while this worker drains; a load balancer in front moves on.
    if (w_->draining())
      respond_local(503, "draining\n", false, kNoStore);
    else
      respond_local(200, "ready\n", false, kNoStore);
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
  std::string base(np.decoded.substr(0, std::min<size_t>(script_len_, np.decoded.size())));
  base += "/";
  respond_local(200, render_html(take_snapshot(*w_), base), false, kNoStore, "text/html; charset=utf-8");
}

}  // namespace pasture::worker
