// random: a weighted random usable server (weight w out of total W wins with
// probability w / W). Stateless apart from the caller's per-process Random,
// so picks touch no shared memory beyond the health reads.
#include "common/balancer.h"

namespace pasture::lb {
namespace {

class RandomPick final : public Balancer {
 public:
  int pick(const RequestView& req, PoolState& pool, uint64_t now_ms) override {
    Random& rng = req.rng ? *req.rng : default_rng();
    int s = weighted_draw(pool.primary, pool, rng, now_ms);
    return s != kNoServer ? s : weighted_draw(pool.backup, pool, rng, now_ms);
  }
};

}  // namespace

std::unique_ptr<Balancer> make_random() { return std::make_unique<RandomPick>(); }

}  // namespace pasture::lb
