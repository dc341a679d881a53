#include "common/balancer.h"

#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <numeric>

#include "common/health_state.h"

namespace pasture::lb {

std::unique_ptr<Balancer> make_round_robin();
std::unique_ptr<Balancer> make_least_conn();
std::unique_ptr<Balancer> make_random();
std::unique_ptr<Balancer> make_random2();
std::unique_ptr<Balancer> make_ip_hash();
std::unique_ptr<Balancer> make_hash();
std::unique_ptr<Balancer> make_cookie();

namespace {

// Draws before weighted_draw() gives up on chance and scans.
constexpr int kDrawTries = 8;

thread_local bool t_rng_seeded = false;
thread_local WyRand t_rng{0};

void forget_seed_in_child() { t_rng_seeded = false; }

// `table_servers`: the size the hash table is built for (0: the tier's).
void build_tier(Tier& t, const std::vector<ServerParams>& servers, Method method, Consistency consistent,
                bool backup, uint32_t table_servers) {
  t = Tier{};
  std::vector<uint32_t> weights(servers.size(), 0);
  struct Entry {
    std::string id;
    uint16_t server;
    uint32_t weight;
  };
  std::vector<Entry> hashed;
  uint64_t sum = 0;
  for (size_t i = 0; i < servers.size(); i++) {
    const ServerParams& s = servers[i];
    if (s.backup != backup || !s.member) continue;
    uint32_t w = std::max<uint32_t>(s.weight, 1);
    weights[i] = w;
    t.members.push_back((uint16_t)i);
    t.cum_weight.push_back(sum += w);
    hashed.push_back({s.id.empty() ? "#" + std::to_string(i) : s.id, (uint16_t)i, w});
  }
  t.schedule = smooth_wrr_schedule(weights);
  if (method == Method::Hash || method == Method::IpHash) {
    // By id, not by index: every node builds the same table (and the same
    // fallback scan order) whatever order it listed or learned servers in.
    std::sort(hashed.begin(), hashed.end(), [](const Entry& a, const Entry& b) { return a.id < b.id; });
    std::vector<uint16_t> members;
    std::vector<std::string> ids;
    std::vector<uint32_t> member_weights;
    for (Entry& e : hashed) {
      members.push_back(e.server);
      ids.push_back(std::move(e.id));
      member_weights.push_back(e.weight);
    }
    t.hash.build(consistent, members, ids, member_weights, table_servers);
  }
}

}  // namespace

uint64_t WyRand::next() {
  state_ += 0xa0761d6478bd642full;
  unsigned __int128 r = (unsigned __int128)state_ * (state_ ^ 0xe7037ed1a0b428dbull);
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t seed_from_os() {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s) return s;
  uint64_t t = (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count();
  return t ^ ((uint64_t)getpid() << 32);
}

uint64_t below(Random& rng, uint64_t n) {
  return (uint64_t)(((unsigned __int128)rng.next() * n) >> 64);
}

Random& default_rng() {
  if (!t_rng_seeded) {
    static const int registered = pthread_atfork(nullptr, nullptr, forget_seed_in_child);
    (void)registered;
    t_rng = WyRand(seed_from_os());
    t_rng_seeded = true;
  }
  return t_rng;
}

bool PoolState::usable(uint32_t i, uint64_t now_ms, bool sticky) const {
  const ServerParams& p = servers[i];
  if (p.down || !p.member) return false;
  const shm::ServerSlot& s = server_slots[i];
  uint32_t control = s.control.load(std::memory_order_relaxed);
  shm::AdminState admin = shm::admin_state(control);
  if (admin == shm::AdminState::Maint || (admin == shm::AdminState::Drain && !sticky)) return false;
  shm::ForcedHealth forced = shm::forced_health(control);
  if (forced == shm::ForcedHealth::Down) return false;
  if (forced != shm::ForcedHealth::Up) {
    // With checks disabled the checker's last verdict no longer counts.
    if (!(control & shm::kChecksDisabled) && (s.flags.load(std::memory_order_relaxed) & shm::kServerDown))
      return false;
    uint64_t until = s.down_until_ms.load(std::memory_order_relaxed);
    if (until != 0 && now_ms < until) return false;
  }
  if (p.max_conns && (uint32_t)s.active.load(std::memory_order_relaxed) >= p.max_conns)
    return false;
  return true;
}

bool PoolState::ramp_admits(uint32_t i, uint64_t now_ms, uint64_t coin) const {
  uint64_t at = server_slots[i].recovered_at_ms.load(std::memory_order_relaxed);
  uint32_t r = slow_start_ramp(at, servers[i].slow_start_ms, now_ms);
  return r >= kRampOne || lb::ramp_admits(r, coin);
}

uint64_t active_conns(const PoolState& pool, uint32_t i) {
  int32_t a = pool.server_slots[i].active.load(std::memory_order_relaxed);
  return a > 0 ? (uint64_t)a : 0;
}

int weighted_draw(const Tier& tier, const PoolState& pool, Random& rng, uint64_t now_ms) {
  if (tier.members.empty()) return kNoServer;
  size_t k = 0;
  int ramping = kNoServer;
  for (int tries = 0; tries < kDrawTries; tries++) {
    uint64_t r = below(rng, tier.cum_weight.back());
    k = std::upper_bound(tier.cum_weight.begin(), tier.cum_weight.end(), r) -
        tier.cum_weight.begin();
    uint16_t m = tier.members[k];
    // Slow start by rejection: a ramping server drawn is kept with
    // probability ramp, so its share is weight x ramp. The scan below
    // ignores the ramp: better a ramping server than none.
    if (!pool.usable(m, now_ms)) continue;
    if (pool.servers[m].slow_start_ms == 0 || pool.ramp_admits(m, now_ms, rng.next())) return m;
    ramping = m;
  }
  size_t n = tier.members.size();
  for (size_t j = 1; j < n; j++) {
    uint16_t s = tier.members[(k + j) % n];
    if (pool.usable(s, now_ms)) return s;
  }
  return ramping;
}

void PoolState::rebuild_weights() {
  uint64_t epoch = slot->weights_epoch.load(std::memory_order_acquire);
  for (size_t i = 0; i < servers.size(); i++) {
    uint32_t w = server_slots[i].weight_override.load(std::memory_order_relaxed);
    servers[i].weight = w ? w : config_weights[i];
  }
  build_tier(primary, servers, method, consistent, false, table_servers);
  build_tier(backup, servers, method, consistent, true, table_servers);
  weights_epoch_seen = epoch;
}

bool PoolState::rebuild_members() {
  std::vector<Member> got;
  uint64_t epoch = 0;
  size_t n = servers.size() - first_dynamic;
  if (!read_members(*slot, member_slots + first_dynamic, n, &got, &epoch)) return false;
  for (size_t k = 0; k < n; k++) {
    const Member& m = got[k];
    size_t i = first_dynamic + k;
    ServerParams& p = servers[i];
    ServerParams t = m.source < source_params.size() ? source_params[m.source] : ServerParams{};
    std::string id = m.state == MemberState::Empty ? "#slot" + std::to_string(k) : m.id();
    p.member = m.state == MemberState::Active;
    p.weight = std::max<uint32_t>(m.weight, 1);
    p.backup = m.backup;
    p.max_conns = t.max_conns;
    p.down = t.down;
    p.slow_start_ms = t.slow_start_ms;
    config_weights[i] = p.weight;
    if (p.id != id) {
      p.id = id;
      if (sticky.enabled()) sticky.set_server(i, id);
    }
  }
  members = std::move(got);
  members_epoch_seen = epoch;
  rebuild_weights();
  return true;
}

void build_tables(PoolState& pool, const PoolParams& params) {
  pool.servers = params.servers;
  pool.hash_whole_ip = params.hash_whole_ip;
  pool.method = params.method;
  pool.consistent = params.consistent;
  pool.config_weights.clear();
  for (const ServerParams& s : params.servers) pool.config_weights.push_back(s.weight);
  pool.weights_epoch_seen = 0;
  pool.first_dynamic = params.first_dynamic;
  pool.source_params = params.sources;
  pool.members.clear();
  pool.members_epoch_seen = 0;
  pool.table_servers = params.first_dynamic == SIZE_MAX ? 0 : (uint32_t)params.servers.size();
  pool.cookie_secret = params.cookie_secret;
  build_tier(pool.primary, params.servers, params.method, params.consistent, false, pool.table_servers);
  build_tier(pool.backup, params.servers, params.method, params.consistent, true, pool.table_servers);
  pool.sticky = StickyCookies();
  if (params.method == Method::Cookie && !params.cookie_secret.empty()) {
    std::vector<std::string> ids;
    for (const ServerParams& s : params.servers) ids.push_back(s.id);
    pool.sticky = StickyCookies(params.cookie_secret, ids, params.cookie_max_age);
  }
}

void build_schedules(PoolState& pool) {
  PoolParams p;
  p.servers = pool.servers;
  // The method is unknown here: build the hash tables too (Maglev, ids from
  // indices), so hash and ip_hash pools work until the worker passes its
  // PoolParams; without a secret, cookie pools run round robin.
  p.method = Method::Hash;
  build_tables(pool, p);
}

std::unique_ptr<Balancer> make_balancer(Method m) {
  switch (m) {
    case Method::RoundRobin: return make_round_robin();
    case Method::LeastConn: return make_least_conn();
    case Method::Random: return make_random();
    case Method::Random2: return make_random2();
    case Method::IpHash: return make_ip_hash();
    case Method::Hash: return make_hash();
    case Method::Cookie: return make_cookie();
  }
  return nullptr;
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

}  // namespace pasture::lb
