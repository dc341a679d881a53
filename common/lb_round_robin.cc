// Round robin: one shared cursor per pool walks the pool's precomputed
// smooth-WRR schedule, so all workers together produce exactly the weighted
// rotation a single nginx worker would (5,1,1 -> a a b a c a a).
//
// fetch_add(relaxed) is enough: the cursor only has to hand out distinct
// positions; no other memory is published through it.
#include "common/balancer.h"

namespace pasture::lb {
namespace {

int walk(const std::vector<uint16_t>& sched, std::atomic<uint64_t>& cursor, PoolState& pool,
         uint64_t now_ms) {
  size_t n = sched.size();
  if (n == 0) return kNoServer;
  // Bounded: at most one full cycle of skips before giving up.
  for (size_t tries = 0; tries < n; tries++) {
    uint64_t pos = cursor.fetch_add(1, std::memory_order_relaxed);
    uint16_t idx = sched[pos % n];
    if (pool.usable(idx, now_ms)) return idx;
  }
  return kNoServer;
}

class RoundRobin final : public Balancer {
 public:
  int pick(const RequestView&, PoolState& pool, uint64_t now_ms) override {
    int i = walk(pool.schedule, pool.slot->rr_cursor, pool, now_ms);
    if (i != kNoServer) return i;
    // Backups share the cursor; they only serve while no primary can.
    return walk(pool.backup_schedule, pool.slot->rr_cursor, pool, now_ms);
  }
};

}  // namespace

std::unique_ptr<Balancer> make_round_robin() { return std::make_unique<RoundRobin>(); }

}  // namespace pasture::lb
