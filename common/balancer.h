// The balancer interface shared by all algorithms.
//
// An algorithm picks a server index of a pool for one request. Static data
// (weights, computed schedules) lives in PoolState, built once from the config
// before fork and only read afterwards; everything that changes lives in the
// shared-memory slots and is updated with atomics, so all workers together
// make one decision (one global rotation, one connection count).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "common/shm_layout.h"

namespace pasture::lb {

enum class Method { RoundRobin, LeastConn, Random, Random2, IpHash, Hash, Cookie };

struct ServerParams {
  uint32_t weight = 1;
  uint32_t max_conns = 0;  // 0 = unlimited
  bool backup = false;
  bool down = false;  // administratively down (config)
};

// What an algorithm may look at in a request. Filled lazily by the caller;
// round robin needs none of it.
struct RequestView {
  std::string_view client_addr;  // textual client address
  std::string_view path;
};

// One pool as seen by one process.
struct PoolState {
  std::vector<ServerParams> servers;
  shm::PoolSlot* slot = nullptr;          // shared
  shm::ServerSlot* server_slots = nullptr;  // shared, servers.size() entries
  std::vector<uint16_t> schedule;         // smooth-WRR order of primary servers
  std::vector<uint16_t> backup_schedule;  // same for backup servers

  // A server can take a request now: not down by config or health, and
  // below max_conns. `now_ms` is the monotonic clock used by passive checks.
  bool usable(uint32_t i, uint64_t now_ms) const;
};

// No usable server.
inline constexpr int kNoServer = -1;

class Balancer {
 public:
  virtual ~Balancer() = default;
  // Returns a server index or kNoServer. Must skip servers that are not usable.
  virtual int pick(const RequestView& req, PoolState& pool, uint64_t now_ms) = 0;
};

// The registry: one line per algorithm. Returns nullptr for a method not
// implemented yet.
std::unique_ptr<Balancer> make_balancer(Method m);
const char* method_name(Method m);

// nginx's smooth weighted round robin, unrolled into one full cycle: weights
// 5,1,1 give a a b a c a a. Weights are reduced by their gcd; the cycle length
// is the sum of the reduced weights. Only servers with weight > 0 appear.
std::vector<uint16_t> smooth_wrr_schedule(const std::vector<uint32_t>& weights);

// Fill schedule/backup_schedule from servers' weights.
void build_schedules(PoolState& pool);

}  // namespace pasture::lb
