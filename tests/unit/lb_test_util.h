// Helpers for the balancer unit tests: a pool backed by a real shared-memory
// region, a scripted Random, and servers named a, b, c, ...
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/balancer.h"
#include "common/shm_layout.h"

namespace pasture::lb::testing {

inline ServerParams srv(std::string id, uint32_t weight = 1) {
  ServerParams s;
  s.id = std::move(id);
  s.weight = weight;
  return s;
}

inline ServerParams backup(std::string id, uint32_t weight = 1) {
  ServerParams s = srv(std::move(id), weight);
  s.backup = true;
  return s;
}

// Servers "10.0.0.<i>:80", i = 1..n.
inline std::vector<ServerParams> numbered(int n, uint32_t weight = 1) {
  std::vector<ServerParams> out;
  for (int i = 1; i <= n; i++) out.push_back(srv("10.0.0." + std::to_string(i) + ":80", weight));
  return out;
}

// Returns the scripted values in order, then repeats them.
class ScriptedRandom final : public Random {
 public:
  explicit ScriptedRandom(std::vector<uint64_t> values) : values_(std::move(values)) {}
  uint64_t next() override { return values_[i_++ % values_.size()]; }
  size_t draws() const { return i_; }

 private:
  std::vector<uint64_t> values_;
  size_t i_ = 0;
};

// A raw draw that below(rng, n) maps to k: the middle of k's interval.
inline uint64_t draw_for(uint64_t k, uint64_t n) {
  unsigned __int128 lo = ((unsigned __int128)k << 64) / n;
  unsigned __int128 hi = ((unsigned __int128)(k + 1) << 64) / n;
  return (uint64_t)((lo + hi) / 2);
}

// One pool in its own shared-memory region (one pool slot, a server slot per
// server), as the master would lay it out.
class TestPool {
 public:
  explicit TestPool(PoolParams params) : params_(std::move(params)) {
    shm::LayoutSizes sz;
    sz.n_pools = 1;
    sz.n_servers = (uint32_t)params_.servers.size();
    sz.n_workers = 1;
    if (!region_.create(sz)) throw std::runtime_error("mmap failed");
    state.slot = &region_.pools()[0];
    state.server_slots = region_.servers();
    build_tables(state, params_);
    balancer = make_balancer(params_.method);
  }
  TestPool(Method m, std::vector<ServerParams> servers) : TestPool(params_of(m, std::move(servers))) {}
  static PoolParams params_of(Method m, std::vector<ServerParams> servers) {
    PoolParams p;
    p.method = m;
    p.servers = std::move(servers);
    return p;
  }

  int pick(const RequestView& rv = {}) { return lb::pick(*balancer, rv, state, now_ms); }
  int pick_key(std::string_view key) {
    RequestView rv;
    rv.hash_key = key;
    return pick(rv);
  }
  int pick_rng(Random& rng) {
    RequestView rv;
    rv.rng = &rng;
    return pick(rv);
  }
  // Letters of n picks ("a a b"); '-' for kNoServer.
  std::string sequence(int n, const RequestView& rv = {}) {
    std::string out;
    for (int i = 0; i < n; i++) {
      int s = pick(rv);
      if (!out.empty()) out += ' ';
      out += s < 0 ? '-' : (char)('a' + s);
    }
    return out;
  }
  void set_active(int i, int32_t n) { state.server_slots[i].active.store(n); }
  void set_health_down(int i, bool down) {
    state.server_slots[i].flags.store(down ? shm::kServerDown : 0);
  }

  PoolState state;
  std::unique_ptr<Balancer> balancer;
  uint64_t now_ms = 1000;
  shm::Region& region() { return region_; }

 private:
  PoolParams params_;
  shm::Region region_;
};

// Share of each server over `picks` picks.
template <class Pick>
std::vector<double> shares(size_t n_servers, int picks, Pick&& pick) {
  std::vector<double> count(n_servers, 0);
  for (int i = 0; i < picks; i++) {
    int s = pick(i);
    if (s >= 0) count[s] += 1;
  }
  for (double& c : count) c /= picks;
  return count;
}

}  // namespace pasture::lb::testing
