// cookie: sticky sessions. A request whose sticky cookie is valid goes to the
// server it names while that server is usable; any other request (no cookie,
// or a forged, stale, unsigned or foreign one, or its server down or full)
// goes round robin, and the worker then sets the cookie for the server that
// answered (sticky_cookie_to_set).
//
// Verification costs no HMAC per request: a cookie's value depends only on
// the secret and the server, so build_tables() computes each server's value
// once; a request's cookie is valid iff it equals one of them. The id part
// (public) selects the candidate; the whole value is then compared in
// constant time, so timing reveals nothing about the MAC.
#include "common/balancer.h"
#include "common/sticky_cookie.h"

namespace pasture::lb {
namespace {

int sticky_server(const PoolState& pool, std::string_view cookie) {
  if (cookie.size() != kStickyCookieLen) return kNoServer;
  std::string_view id = cookie.substr(0, kStickyIdLen);
  for (size_t i = 0; i < pool.sticky_values.size(); i++) {
    const std::string& v = pool.sticky_values[i];
    if (std::string_view(v).substr(0, kStickyIdLen) != id) continue;
    return equal_ct(v, cookie) ? (int)i : kNoServer;
  }
  return kNoServer;
}

class Cookie final : public Balancer {
 public:
  int pick(const RequestView& req, PoolState& pool, uint64_t now_ms) override {
    int s = sticky_server(pool, req.sticky_cookie);
    if (s != kNoServer && pool.usable((uint32_t)s, now_ms)) return s;
    return round_robin_pick(pool, now_ms);
  }
};

}  // namespace

std::string_view sticky_cookie_to_set(const PoolState& pool, std::string_view request_cookie,
                                      int server) {
  if (server < 0 || (size_t)server >= pool.sticky_values.size()) return {};
  const std::string& v = pool.sticky_values[server];
  return v == request_cookie ? std::string_view() : std::string_view(v);
}

std::unique_ptr<Balancer> make_cookie() { return std::make_unique<Cookie>(); }

}  // namespace pasture::lb
