#include "common/balancer.h"

#include <numeric>

namespace pasture::lb {

std::unique_ptr<Balancer> make_round_robin();

bool PoolState::usable(uint32_t i, uint64_t now_ms) const {
  const ServerParams& p = servers[i];
  if (p.down) return false;
  const shm::ServerSlot& s = server_slots[i];
  if (s.flags.load(std::memory_order_relaxed) & shm::kServerDown) return false;
  uint64_t until = s.down_until_ms.load(std::memory_order_relaxed);
  if (until != 0 && now_ms < until) return false;
  if (p.max_conns && (uint32_t)s.active.load(std::memory_order_relaxed) >= p.max_conns)
    return false;
  return true;
}

std::unique_ptr<Balancer> make_balancer(Method m) {
  switch (m) {
    case Method::RoundRobin: return make_round_robin();
    default: return nullptr;
  }
}

const char* method_name(Method m) {
  switch (m) {
    case Method::RoundRobin: return "round_robin";
    case Method::LeastConn: return "least_conn";
    case Method::Random: return "random";
    case Method::Random2: return "random2";
    case Method::IpHash: return "ip_hash";
    case Method::Hash: return "hash";
    case Method::Cookie: return "cookie";
  }
  return "?";
}

std::vector<uint16_t> smooth_wrr_schedule(const std::vector<uint32_t>& weights) {
  uint64_t g = 0;
  for (uint32_t w : weights) g = std::gcd(g, (uint64_t)w);
  std::vector<uint16_t> out;
  if (g == 0) return out;
  std::vector<int64_t> eff, cur(weights.size(), 0);
  int64_t total = 0;
  for (uint32_t w : weights) {
    eff.push_back((int64_t)(w / g));
    total += (int64_t)(w / g);
  }
  out.reserve(total);
  for (int64_t step = 0; step < total; step++) {
    int best = -1;
    for (size_t i = 0; i < eff.size(); i++) {
      if (eff[i] == 0) continue;
      cur[i] += eff[i];
      if (best < 0 || cur[i] > cur[best]) best = (int)i;
    }
    cur[best] -= total;
    out.push_back((uint16_t)best);
  }
  return out;
}

void build_schedules(PoolState& pool) {
  std::vector<uint32_t> prim, back;
  for (const ServerParams& s : pool.servers) {
    prim.push_back(s.backup ? 0 : s.weight);
    back.push_back(s.backup ? s.weight : 0);
  }
  pool.schedule = smooth_wrr_schedule(prim);
  pool.backup_schedule = smooth_wrr_schedule(back);
}

}  // namespace pasture::lb
