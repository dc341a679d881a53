// cookie: sticky sessions. A request whose sticky cookie is valid (genuine,
// and younger than the pool's max age) goes to the server it names while
// that server may take it; any other request (no cookie, or a forged,
// expired, unsigned or foreign one, or its server refused below) goes round
// robin, and the worker then sets the cookie for the server that answered
// (sticky_cookie_to_set), and sets it again once the cookie is past half its
// max age, so a client that keeps coming back keeps its server.
//
// The cookie's server is refused, like every method refuses it, when it is
// unusable (a server in admin state drain still takes the clients whose
// cookie names it: that is what drain is for); when it is a backup and a primary is usable (backups serve only
// while no primary can, so the client moves back and gets a primary's
// cookie); and, in slow start, with probability 1 - ramp (as the other
// methods skip it), so a server that just came back is not handed all the
// clients still pinned to it at once.
//
// Verification costs no HMAC per request: StickyCookies caches each
// server's value per issue-time step; a request's cookie is valid iff it
// equals the cached value for the server and step it names, compared in
// constant time, so timing reveals nothing about the MAC.
#include "common/balancer.h"

namespace pasture::lb {
namespace {

bool takes_cookie(const PoolState& pool, int s, const RequestView& req, uint64_t now_ms) {
  if (!pool.usable((uint32_t)s, now_ms, /*sticky=*/true)) return false;
  if (pool.servers[s].backup) {
    for (uint16_t m : pool.primary.members) {
      if (pool.usable(m, now_ms)) return false;
    }
  }
  if (pool.servers[s].slow_start_ms == 0) return true;
  Random& rng = req.rng ? *req.rng : default_rng();
  return pool.ramp_admits((uint32_t)s, now_ms, rng.next());
}

class Cookie final : public Balancer {
 public:
  int pick(const RequestView& req, PoolState& pool, uint64_t now_ms) override {
    if (!req.sticky_cookie.empty()) {
      int s = pool.sticky.check(req.sticky_cookie, pool.unix_clock()).server;
      if (s != kNoServer && takes_cookie(pool, s, req, now_ms)) return s;
    }
    return round_robin_pick(pool, now_ms);
  }
};

}  // namespace

std::string_view sticky_cookie_to_set(PoolState& pool, std::string_view request_cookie, int server) {
  if (!pool.sticky.enabled() || server < 0 || (size_t)server >= pool.servers.size()) return {};
  StickyCookies::Check c = pool.sticky.check(request_cookie, pool.unix_clock());
  if (c.server == server && c.fresh) return {};
  return pool.sticky.id(server);
}

const std::string& sticky_cookie_value(PoolState& pool, std::string_view id) {
  return pool.sticky.issue(id, pool.unix_clock());
}

std::unique_ptr<Balancer> make_cookie() { return std::make_unique<Cookie>(); }

}  // namespace pasture::lb
