// Hashing for the hash and ip_hash balancers: a fast 64-bit string hash and
// the lookup tables that map a hash to a server (Maglev, ring, or plain
// weighted modulo).
//
// Tables are built once from the config before fork and only read afterwards.
// They store server indices, never pointers. A server's place in a consistent
// table derives from its stable id (host:port), not its index, so adding or
// removing one of N servers moves about 1/N of the keys.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pasture::lb {

enum class Consistency : uint8_t {
  Maglev,  // Maglev lookup table (Eisenbud et al., NSDI'16), weighted like Envoy's
  Ring,    // ketama-style ring, ~160 points per server scaled by weight
  None,    // hash % total weight: cheap, but a change of servers moves most keys
};

// Stable across processes and runs (no per-process seed): every worker must
// route a key the same way, before and after a reload.
uint64_t hash64(std::string_view s, uint64_t seed = 0);

// splitmix64's finaliser: a bijective 64-bit mix.
uint64_t mix64(uint64_t x);

class HashTable {
 public:
  // Rehashes tried before the deterministic scan (nginx's hash tries 20).
  static constexpr uint32_t kRehashTries = 20;

  // `members` are server indices; `ids` and `weights` are indexed like
  // `members`. Weights must be >= 1. A Maglev table is sized for
  // max(members, size_for) servers: a pool whose membership changes passes
  // its slot count, so that the table size (a prime) stays put and a change
  // moves only the keys it must.
  void build(Consistency kind, const std::vector<uint16_t>& members,
             const std::vector<std::string>& ids, const std::vector<uint32_t>& weights, size_t size_for = 0);

  bool empty() const { return members_.empty(); }
  Consistency kind() const { return kind_; }
  size_t maglev_size() const { return maglev_.size(); }
  size_t ring_size() const { return ring_.size(); }

  // The server for hash `h`, ignoring health: the first candidate.
  int lookup(uint64_t h) const { return candidate(h, 0); }

  // The first server for `h` that `usable(int server)` accepts, or -1.
  // Deterministic: the same h and the same usable set give the same server.
  // Maglev/None: the table's answer, then up to kRehashTries rehashes of h
  // (so a dead server's keys spread over the others while every other key
  // stays put), then a scan of the members from a place chosen by h. Ring:
  // the next distinct server clockwise.
  template <class Usable>
  int find(uint64_t h, Usable&& usable) const;

 private:
  struct Point {
    uint64_t hash;
    uint16_t server;
  };
  int candidate(uint64_t h, uint32_t attempt) const;
  size_t ring_start(uint64_t h) const;
  void build_maglev(const std::vector<std::string>& ids, const std::vector<uint32_t>& weights, size_t size_for);
  void build_ring(const std::vector<std::string>& ids, const std::vector<uint32_t>& weights);

  Consistency kind_ = Consistency::Maglev;
  std::vector<uint16_t> members_;
  std::vector<uint64_t> cum_weight_;  // None: running sums of the members' weights
  std::vector<uint16_t> maglev_;      // Maglev: prime-sized slot -> server index
  std::vector<Point> ring_;           // Ring: sorted by hash
};

template <class Usable>
int HashTable::find(uint64_t h, Usable&& usable) const {
  if (members_.empty()) return -1;
  if (kind_ == Consistency::Ring) {
    size_t start = ring_start(h);
    int rejected = -1;
    for (size_t j = 0; j < ring_.size(); j++) {
      int s = ring_[(start + j) % ring_.size()].server;
      if (s == rejected) continue;
      if (usable(s)) return s;
      rejected = s;
    }
    return -1;
  }
  for (uint32_t k = 0; k < kRehashTries; k++) {
    int s = candidate(h, k);
    if (usable(s)) return s;
  }
  size_t n = members_.size(), start = h % n;
  for (size_t j = 0; j < n; j++) {
    int s = members_[(start + j) % n];
    if (usable(s)) return s;
  }
  return -1;
}

}  // namespace pasture::lb
