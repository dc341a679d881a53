// least_conn: the usable server with the fewest requests in flight relative
// to its weight (active_i / weight_i, compared as active_i * weight_j <
// active_j * weight_i), like nginx's least_conn. Ties are broken at random,
// weighted: a tied server of weight w wins with probability w / (sum of the
// tied weights), by weighted reservoir sampling in one pass.
//
// The counts are the shared ServerSlot::active, which the worker increments
// after the pick and decrements when the request ends; two workers picking at
// the same instant may both see the same idle server. That race costs balance
// for one request, never correctness, and avoids any lock.
#include "common/balancer.h"

namespace pasture::lb {
namespace {

int least_loaded(const Tier& tier, const PoolState& pool, Random& rng, uint64_t now_ms) {
  int best = kNoServer, ramping = kNoServer;
  uint64_t best_a = 0, best_w = 1, tied_w = 0;
  for (uint16_t s : tier.members) {
    if (!pool.usable(s, now_ms)) continue;
    // Slow start: a ramping server competes with probability ramp (an idle
    // server would otherwise win at once, whatever its weight); if it was
    // the only usable one, it still serves.
    if (pool.servers[s].slow_start_ms && !pool.ramp_admits(s, now_ms, rng.next())) {
      ramping = s;
      continue;
    }
    uint64_t a = active_conns(pool, s), w = pool.servers[s].weight;
    if (best == kNoServer || a * best_w < best_a * w) {
      best = s, best_a = a, best_w = w, tied_w = w;
    } else if (a * best_w == best_a * w) {
      tied_w += w;
      if (below(rng, tied_w) < w) best = s, best_a = a, best_w = w;
    }
  }
  return best != kNoServer ? best : ramping;
}

class LeastConn final : public Balancer {
 public:
  int pick(const RequestView& req, PoolState& pool, uint64_t now_ms) override {
    Random& rng = req.rng ? *req.rng : default_rng();
    int s = least_loaded(pool.primary, pool, rng, now_ms);
    return s != kNoServer ? s : least_loaded(pool.backup, pool, rng, now_ms);
  }
};

}  // namespace

std::unique_ptr<Balancer> make_least_conn() { return std::make_unique<LeastConn>(); }

}  // namespace pasture::lb
