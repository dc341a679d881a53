// hash: the server for RequestView::hash_key (which the worker extracted per
// the pool's `hash_key =`) in the pool's hash table: Maglev by default, or a
// ring, or plain modulo (`consistent =`). A key whose server is unusable
// falls to the next candidate deterministically (see HashTable::find), so all
// workers agree; backups serve only when no primary is usable. A request
// without a key goes round robin, as with HAProxy's `balance hdr()`.
#include "common/balancer.h"

namespace pasture::lb {
namespace {

// Seed of the key hash; fixed so every process and every run agree.
constexpr uint64_t kKeySeed = 0x7061737475726531ull;  // "pasture1"

class Hash final : public Balancer {
 public:
  int pick(const RequestView& req, PoolState& pool, uint64_t now_ms) override {
    if (req.hash_key.empty()) return round_robin_pick(pool, now_ms);
    return hash_table_pick(pool, hash64(req.hash_key, kKeySeed), now_ms);
  }
};

}  // namespace

int hash_table_pick(const PoolState& pool, uint64_t h, uint64_t now_ms) {
  auto usable = [&](int s) { return pool.usable((uint32_t)s, now_ms); };
  int s = pool.primary.hash.find(h, usable);
  return s >= 0 ? s : pool.backup.hash.find(h, usable);
}

std::unique_ptr<Balancer> make_hash() { return std::make_unique<Hash>(); }

}  // namespace pasture::lb
