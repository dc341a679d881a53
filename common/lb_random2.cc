// random2: power of two choices, HAProxy's `balance random(2)`. Two weighted
// random draws; the one with fewer requests in flight relative to its weight
// wins (the first on a tie). Nearly least_conn's balance at random's cost:
// two shared counters read instead of all of them.
#include "common/balancer.h"

namespace pasture::lb {
namespace {

int two_choices(const Tier& tier, const PoolState& pool, Random& rng, uint64_t now_ms) {
  int a = weighted_draw(tier, pool, rng, now_ms);
  if (a == kNoServer) return kNoServer;
  int b = weighted_draw(tier, pool, rng, now_ms);
  if (b == kNoServer || b == a) return a;
  uint64_t load_a = active_conns(pool, a) * pool.servers[b].weight;
  uint64_t load_b = active_conns(pool, b) * pool.servers[a].weight;
  return load_b < load_a ? b : a;
}

class Random2 final : public Balancer {
 public:
  int pick(const RequestView& req, PoolState& pool, uint64_t now_ms) override {
    Random& rng = req.rng ? *req.rng : default_rng();
    int s = two_choices(pool.primary, pool, rng, now_ms);
    return s != kNoServer ? s : two_choices(pool.backup, pool, rng, now_ms);
  }
};

}  // namespace

std::unique_ptr<Balancer> make_random2() { return std::make_unique<Random2>(); }

}  // namespace pasture::lb
