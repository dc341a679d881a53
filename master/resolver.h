// Discovery: one resolver process per generation, forked by the master like
// the health checker (once per configuration, never once per worker), when
// some pool has `dns:` / `dns+srv:` sources or an `etcd://` servers_from
// (master/etcd_watch.h: watched, not asked: a change applies when etcd
// sends it; admin keys under the prefix set the servers' admin state). For each such pool it asks each
// source every period (the answers' TTL clamped to resolve_min..resolve_max),
// merges the last good answer of every source, fits the members into the
// pool's max_servers slots (lb::plan_members) and publishes them in shared
// memory (lb::write_members); every worker switches at its next pick.
//
// A failed answer (timeout, SERVFAIL, NXDOMAIN, an error) or an empty one
// keeps that source's last good members and is logged: a resolver hiccup
// never empties a pool. A member that left (`leaving`) gets no new requests
// and its slot is reused once its requests in flight are done.
#pragma once

#include <string>
#include <vector>

#include "common/shm_layout.h"
#include "conf/model.h"

namespace pasture::master {

// One pool with sources: its settings (the Site outlives the process) and
// its slots in the region.
struct ResolverPool {
  const conf::Pool* cfg = nullptr;
  shm::PoolSlot* slot = nullptr;
  shm::ServerSlot* servers = nullptr;  // the first discovery slot's ServerSlot
  shm::MemberSlot* members = nullptr;  // ... and MemberSlot
  size_t n = 0;                        // max_servers
  std::vector<std::string> static_ids;  // the pool's static servers: a member equal to one is left out
  shm::ServerSlot* static_servers = nullptr;  // their ServerSlots (static_ids.size())
};

// The pools of a generation that have sources (servers after the static
// ones, first_server: worker::Setup's global shm index per pool).
std::vector<ResolverPool> resolver_pools(const conf::Site& site, const std::vector<uint32_t>& first_server,
                                         shm::Region& shm);

// A reload: the members of `from` (an older generation's pool of the same
// name) go into `to`'s slots, slot by slot, for the sources both have, so
// the pool does not fall back to nothing while the new resolver asks.
void carry_members(const conf::Pool& from_cfg, shm::PoolSlot& from, const shm::MemberSlot* from_members,
                   const conf::Pool& to_cfg, shm::PoolSlot& to, shm::MemberSlot* to_members);

// The resolver's main loop, in the forked child: until SIGTERM/INT/QUIT or
// the master is gone. Returns the exit code.
int run_resolver(std::vector<ResolverPool> pools);

}  // namespace pasture::master
