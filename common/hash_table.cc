#include "common/hash_table.h"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace pasture::lb {
namespace {

constexpr uint64_t kP0 = 0xa0761d6478bd642full;
constexpr uint64_t kP1 = 0xe7037ed1a0b428dbull;
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

// Seeds for the two Maglev permutation hashes and the ring points.
constexpr uint64_t kOffsetSeed = 0x6d61676c6576306full;  // "maglev0o"
constexpr uint64_t kSkipSeed = 0x6d61676c65763173ull;    // "maglev1s"
constexpr uint64_t kRingSeed = 0x72696e67706f696eull;    // "ringpoin"

constexpr uint32_t kRingPointsPerServer = 160;  // nginx/ketama

// Fold the 128-bit product: wyhash's mixing step.
inline uint64_t mum(uint64_t a, uint64_t b) {
  unsigned __int128 r = (unsigned __int128)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

// Primes of roughly doubling size; a Maglev table of M slots needs M prime
// and M >> N for even shares and minimal disruption (the paper uses 100x; at
// 512x, 10 servers get 8191 slots, 16 KB, and removing one moves ~10.5 % of
// the keys against 12 % at 128x).
constexpr uint32_t kMaglevPrimes[] = {1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071};

uint32_t maglev_size_for(size_t n) {
  for (uint32_t p : kMaglevPrimes) {
    if (p >= 512 * n) return p;
  }
  return kMaglevPrimes[std::size(kMaglevPrimes) - 1];
}

}  // namespace

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

uint64_t hash64(std::string_view s, uint64_t seed) {
  const char* p = s.data();
  size_t n = s.size();
  // The seed is mixed before data is XORed in: nearby seeds (the ring's
  // seed + k) must not cancel against nearby data ("b:1" vs "c:1").
  uint64_t h = mix64(seed ^ kP0);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mum(h ^ w, kP1);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  h = mum(h ^ tail ^ ((uint64_t)n << 56), kP1);
  return mix64(h ^ s.size());
}

void HashTable::build(Consistency kind, const std::vector<uint16_t>& members,
                      const std::vector<std::string>& ids, const std::vector<uint32_t>& weights, size_t size_for) {
  kind_ = kind;
  members_ = members;
  cum_weight_.clear();
  maglev_.clear();
  ring_.clear();
  uint64_t sum = 0;
  for (uint32_t w : weights) cum_weight_.push_back(sum += w);
  if (members.empty()) return;
  if (kind == Consistency::Maglev) build_maglev(ids, weights, size_for);
  if (kind == Consistency::Ring) build_ring(ids, weights);
}

// Each member walks its own permutation of the slots (offset + j*skip mod M,
// both from its id) and claims the next free slot when it gets a turn. A
// member of weight w gets a turn in w of every max_weight rounds (Envoy's
// weighted Maglev), so its share of slots is proportional to w.
void HashTable::build_maglev(const std::vector<std::string>& ids,
                             const std::vector<uint32_t>& weights, size_t size_for) {
  const uint32_t m = maglev_size_for(std::max(members_.size(), size_for));
  const size_t n = members_.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0), target(n);
  uint64_t wmax = *std::max_element(weights.begin(), weights.end());
  for (size_t i = 0; i < n; i++) {
    offset[i] = hash64(ids[i], kOffsetSeed) % m;
    skip[i] = hash64(ids[i], kSkipSeed) % (m - 1) + 1;
    target[i] = wmax;
  }
  // Turns go in id order, so the table does not depend on the order the
  // servers are listed in.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ids[a] < ids[b]; });
  constexpr uint16_t kEmpty = 0xffff;
  std::vector<uint16_t> table(m, kEmpty);
  uint32_t filled = 0;
  for (uint64_t round = 1; filled < m; round++) {
    for (size_t k = 0; k < n && filled < m; k++) {
      size_t i = order[k];
      if (round * weights[i] < target[i]) continue;
      target[i] += wmax;
      uint64_t c = (offset[i] + next[i] * skip[i]) % m;
      while (table[c] != kEmpty) c = (offset[i] + ++next[i] * skip[i]) % m;
      table[c] = (uint16_t)i;  // position in members_, mapped below
      next[i]++;
      filled++;
    }
  }
  maglev_.resize(m);
  for (uint32_t c = 0; c < m; c++) maglev_[c] = members_[table[c]];
}

// Points per member proportional to weight, about 160 per member on average,
// at least one each.
void HashTable::build_ring(const std::vector<std::string>& ids,
                           const std::vector<uint32_t>& weights) {
  const size_t n = members_.size();
  uint64_t total = cum_weight_.back();
  uint64_t budget = (uint64_t)kRingPointsPerServer * n;
  for (size_t i = 0; i < n; i++) {
    uint64_t points = std::max<uint64_t>(1, (budget * weights[i] + total / 2) / total);
    for (uint64_t k = 0; k < points; k++) {
      ring_.push_back({hash64(ids[i], kRingSeed + k), members_[i]});
    }
  }
  std::sort(ring_.begin(), ring_.end(), [](const Point& a, const Point& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.server < b.server;
  });
}

size_t HashTable::ring_start(uint64_t h) const {
  auto it = std::lower_bound(ring_.begin(), ring_.end(), h,
                             [](const Point& p, uint64_t v) { return p.hash < v; });
  return it == ring_.end() ? 0 : (size_t)(it - ring_.begin());
}

int HashTable::candidate(uint64_t h, uint32_t attempt) const {
  if (attempt) h = mix64(h ^ (attempt * kGolden));
  switch (kind_) {
    case Consistency::Maglev: return maglev_[h % maglev_.size()];
    case Consistency::Ring: return ring_[ring_start(h)].server;
    case Consistency::None: {
      uint64_t r = h % cum_weight_.back();
      size_t k = std::upper_bound(cum_weight_.begin(), cum_weight_.end(), r) - cum_weight_.begin();
      return members_[k];
    }
  }
  return -1;
}

}  // namespace pasture::lb
