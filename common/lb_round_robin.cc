// Round robin: one shared cursor per pool walks the pool's precomputed
// smooth-WRR schedule, so all workers together produce exactly the weighted
// rotation a single nginx worker would (5,1,1 -> a a b a c a a).
//
// fetch_add(relaxed) is enough: the cursor only has to hand out distinct
// positions; no other memory is published through it.
//
// Slow start: the schedule is precomputed from the configured weights, so a
// server ramping up after a recovery is skipped at a position with
// probability 1 - ramp, decided by a hash of the position (no shared RNG,
// no extra atomic); its share of picks is then its weight x ramp.
#include "common/balancer.h"

namespace pasture::lb {
namespace {

// splitmix64's finalizer: consecutive positions give independent-looking coins.
uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Schedule positions looked at past an unusable server before scanning the
// tier's members instead (a long run of one heavy, dead server).
constexpr size_t kScanLimit = 128;

// Takes one position; if its server is unusable, looks ahead in the schedule
// and tries to move the cursor past the skipped positions (one CAS; losing
// the race to another worker is harmless), so that the rotation continues
// over the usable servers in schedule order, as if the dead one were absent.
int walk(const Tier& tier, std::atomic<uint64_t>& cursor, const PoolState& pool, uint64_t now_ms) {
  const std::vector<uint16_t>& sched = tier.schedule;
  size_t n = sched.size();
  if (n == 0) return kNoServer;
  uint64_t pos = cursor.fetch_add(1, std::memory_order_relaxed);
  int rejected = -1;
  size_t limit = n < kScanLimit ? n : kScanLimit;
  for (size_t j = 0; j < limit; j++) {
    int s = sched[(pos + j) % n];
    if (s == rejected) continue;
    if (pool.usable(s, now_ms) &&
        (pool.servers[s].slow_start_ms == 0 || pool.ramp_admits(s, now_ms, mix(pos + j)))) {
      uint64_t expected = pos + 1;
      if (j > 0) cursor.compare_exchange_strong(expected, pos + j + 1, std::memory_order_relaxed);
      return s;
    }
    rejected = s;
  }
  for (uint16_t s : tier.members) {
    if (pool.usable(s, now_ms)) return s;
  }
  return kNoServer;
}

class RoundRobin final : public Balancer {
 public:
  int pick(const RequestView&, PoolState& pool, uint64_t now_ms) override {
    return round_robin_pick(pool, now_ms);
  }
};

}  // namespace

int round_robin_pick(PoolState& pool, uint64_t now_ms) {
  int i = walk(pool.primary, pool.slot->rr_cursor, pool, now_ms);
  if (i != kNoServer) return i;
  // Backups only serve while no primary can.
  return walk(pool.backup, pool.slot->backup_cursor, pool, now_ms);
}

std::unique_ptr<Balancer> make_round_robin() { return std::make_unique<RoundRobin>(); }

}  // namespace pasture::lb
