// The balancer interface shared by all algorithms.
//
// An algorithm picks a server index of a pool for one request. Static data
// (weights, schedules, hash tables, sticky cookie ids) lives in PoolState,
// built once from the config before fork by build_tables() and only read
// afterwards (except the cookie method's cache of signed values, which each
// worker fills in its own copy); everything that changes lives in the
// shared-memory slots and is updated with atomics, so all workers together
// make one decision (one global rotation, one connection count). No locks and
// no syscalls on the pick path.
//
// Every algorithm skips servers PoolState::usable() rejects (down by config
// or health, or at max_conns), and serves from backup servers only while no
// primary is usable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/hash_table.h"
#include "common/membership.h"
#include "common/shm_layout.h"
#include "common/sticky_cookie.h"

namespace pasture::lb {

enum class Method { RoundRobin, LeastConn, Random, Random2, IpHash, Hash, Cookie };

struct ServerParams {
  // Stable identity, "host:port" as configured: places the server in hash
  // tables and names it in sticky cookies, so both survive reloads that add,
  // remove or reorder other servers.
  std::string id;
  uint32_t weight = 1;     // >= 1
  uint32_t max_conns = 0;  // 0 = unlimited
  bool backup = false;
  bool down = false;  // administratively down (config)
  // Slow start (conf::UpstreamServer::slow_start_ms): after the server comes
  // back up, round_robin, least_conn, random and random2 give it a share
  // ramping from 0 to its weight over this time, and cookie honours a cookie
  // naming it with the same probability. 0 = off (no extra reads).
  uint32_t slow_start_ms = 0;
  // False for a discovery slot without an active member (empty or leaving,
  // common/membership.h): in no table, never usable.
  bool member = true;
};

// A pool's balancing configuration as plain values (the worker converts
// conf::Pool into this; common/ does not know conf/).
struct PoolParams {
  Method method = Method::RoundRobin;
  std::vector<ServerParams> servers;             // at most 65535
  Consistency consistent = Consistency::Maglev;  // hash, ip_hash
  bool hash_whole_ip = false;                    // ip_hash: whole IPv4 address, not its /24
  std::string cookie_secret;                     // cookie: HMAC key; empty = trust no cookie
  uint32_t cookie_max_age = 0;                   // cookie: seconds valid; 0 = kStickyDefaultMaxAge
  // Discovery: servers[first_dynamic..] are slots for discovered members
  // (built with member = false; PoolState::sync_members fills them), with
  // per-source parameters (max_conns, slow start, down) in `sources`.
  // Their hash tables are sized for every slot, so that a member joining or
  // leaving does not resize the Maglev table (which would move most keys).
  size_t first_dynamic = SIZE_MAX;  // SIZE_MAX: no discovery
  std::vector<ServerParams> sources;
};

// A source of 64-bit random numbers for one process (or thread): never
// shared, so drawing costs no atomic. Injectable so tests can script exact
// draws.
class Random {
 public:
  virtual ~Random() = default;
  virtual uint64_t next() = 0;
};

// wyrand: one add and one 64x64->128 multiply per draw.
class WyRand final : public Random {
 public:
  explicit WyRand(uint64_t seed) : state_(seed) {}
  uint64_t next() override;

 private:
  uint64_t state_;
};

// 8 bytes from getrandom(2); falls back to the clock and pid. One syscall:
// call it once per process after fork, never per request.
uint64_t seed_from_os();

// Uniform in [0, n) from one draw (Lemire's multiply-shift, no rejection: the
// bias is below n / 2^64). n must be > 0.
uint64_t below(Random& rng, uint64_t n);

// The calling thread's default Random, seeded from the OS on first use and
// again in a child after fork(). Used when RequestView::rng is null.
Random& default_rng();

// What an algorithm may look at in a request. The caller fills the fields
// its pool's method needs; the views must outlive the pick() call.
struct RequestView {
  std::string_view client_addr;    // ip_hash: client address, text, no port ("10.1.2.3", "::1")
  std::string_view hash_key;       // hash: extract_hash_key()'s result; empty -> round robin
  std::string_view sticky_cookie;  // cookie: the value of the pool's cookie, empty if absent
  Random* rng = nullptr;           // least_conn, random, random2, cookie; null = default_rng()
};

// Primary or backup servers of a pool, with the tables computed for them.
struct Tier {
  std::vector<uint16_t> members;     // server indices, ascending
  std::vector<uint64_t> cum_weight;  // running sums of the members' weights
  std::vector<uint16_t> schedule;    // one smooth-WRR cycle, server indices
  HashTable hash;                    // hash, ip_hash only
};

// One pool as seen by one process.
struct PoolState {
  std::vector<ServerParams> servers;
  shm::PoolSlot* slot = nullptr;            // shared
  shm::ServerSlot* server_slots = nullptr;  // shared, servers.size() entries
  Tier primary, backup;
  bool hash_whole_ip = false;
  // cookie: ids, signing and the cache of values (disabled without a secret),
  // and the wall clock cookies are issued and judged by (tests inject one).
  StickyCookies sticky;
  uint64_t (*unix_clock)() = unix_seconds;

  // For rebuilding the tables when weights change at run time.
  Method method = Method::RoundRobin;
  Consistency consistent = Consistency::Maglev;
  std::vector<uint32_t> config_weights;  // as configured, by server index
  uint64_t weights_epoch_seen = 0;       // slot->weights_epoch the tables were built for

  // Discovery (common/membership.h): null member_slots = a static pool.
  shm::MemberSlot* member_slots = nullptr;  // shared, servers.size() entries (like server_slots)
  size_t first_dynamic = SIZE_MAX;
  std::vector<ServerParams> source_params;  // PoolParams::sources
  std::vector<Member> members;              // servers[first_dynamic + k]'s record as last read
  uint64_t members_epoch_seen = 0;
  uint32_t table_servers = 0;  // hash tables sized for this many servers (0: the tier's)
  std::string cookie_secret;   // cookie: to re-sign ids of new members

  // A server can take a request now: not down by config, health (unless its
  // health is forced up) or forced health, not in maint (nor in drain,
  // unless `sticky`: a request whose valid sticky cookie names it), and
  // below max_conns. `now_ms` is the monotonic clock used by passive checks.
  bool usable(uint32_t i, uint64_t now_ms, bool sticky = false) const;

  // Before a pick: when the pool's weights_epoch moved (`set weight`),
  // applies the servers' weight overrides and rebuilds this process's
  // schedules and tables (each worker its own copy). One relaxed-cost
  // acquire load when nothing changed.
  void sync_weights() {
    if (slot && slot->weights_epoch.load(std::memory_order_acquire) != weights_epoch_seen)
      rebuild_weights();
  }
  void rebuild_weights();

  // Discovery: when the pool's members_epoch moved, reads the members and
  // rebuilds this process's tables (and sticky ids) for them; true if it
  // did (the caller refreshes what it keeps per server: addresses, idle
  // connections). False when nothing changed or the resolver is writing
  // (the next call tries again). The worker calls it before each pick.
  bool sync_members() {
    if (!member_slots || slot->members_epoch.load(std::memory_order_acquire) == members_epoch_seen) return false;
    return rebuild_members();
  }
  bool rebuild_members();

  // Slow start: whether server i, while ramping up after a recovery, takes
  // this pick, decided by a uniform 64-bit `coin`: true with probability
  // slow_start_ramp() (always once the ramp is over). Call only for servers
  // with servers[i].slow_start_ms != 0.
  bool ramp_admits(uint32_t i, uint64_t now_ms, uint64_t coin) const;
};

// Fills `pool` (servers and the tables `params.method` needs) from `params`.
// Leaves pool.slot and pool.server_slots alone: the caller points them at
// the shared region. Call before fork, or in each worker; never concurrently
// with pick() on the same PoolState.
void build_tables(PoolState& pool, const PoolParams& params);

// Transitional: round-robin and Maglev tables from pool.servers as already
// filled in (ids may be empty). Remove once the worker calls build_tables().
void build_schedules(PoolState& pool);

// No usable server.
inline constexpr int kNoServer = -1;

class Balancer {
 public:
  virtual ~Balancer() = default;
  // Returns a server index or kNoServer. Must skip servers that are not usable.
  virtual int pick(const RequestView& req, PoolState& pool, uint64_t now_ms) = 0;
};

// What the worker calls: the pool's weights brought up to date, then the pick.
inline int pick(Balancer& b, const RequestView& req, PoolState& pool, uint64_t now_ms) {
  pool.sync_weights();
  return b.pick(req, pool, now_ms);
}

// The registry: one line per algorithm.
std::unique_ptr<Balancer> make_balancer(Method m);
const char* method_name(Method m);

// nginx's smooth weighted round robin, unrolled into one full cycle: weights
// 5,1,1 give a a b a c a a. Weights are reduced by their gcd; the cycle length
// is the sum of the reduced weights. Only servers with weight > 0 appear.
std::vector<uint16_t> smooth_wrr_schedule(const std::vector<uint32_t>& weights);

// cookie: after `server` was picked for a request whose sticky cookie was
// `request_cookie`, whether to send a cookie back: empty when the request's
// cookie is valid, names that server and is less than half its max age old
// (or the pool has no secret); else the server's id, a view into the pool's
// table, valid for the worker's life. sticky_cookie_value() turns it into the
// value to send, issued when it is called.
std::string_view sticky_cookie_to_set(PoolState& pool, std::string_view request_cookie, int server);
const std::string& sticky_cookie_value(PoolState& pool, std::string_view id);

// Helpers shared by the algorithms (lb_*.cc).

// The shared round-robin rotation: primaries, then backups. Also the fallback
// of hash (no key) and cookie (no valid cookie, or its server unusable).
int round_robin_pick(PoolState& pool, uint64_t now_ms);

// A weighted random usable member of `tier`: up to a few draws, then a scan
// from the last draw. kNoServer if none is usable.
int weighted_draw(const Tier& tier, const PoolState& pool, Random& rng, uint64_t now_ms);

// hash, ip_hash: the server for key hash h in the primary table, else in the
// backup table (HashTable::find), kNoServer if none is usable.
int hash_table_pick(const PoolState& pool, uint64_t h, uint64_t now_ms);

// ip_hash: the key hash of a textual client address (see lb_ip_hash.cc).
uint64_t ip_hash_key(std::string_view addr, bool whole_ip);

// Requests in flight on server i, all workers (never negative).
uint64_t active_conns(const PoolState& pool, uint32_t i);

}  // namespace pasture::lb
