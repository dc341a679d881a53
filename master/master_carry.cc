// Master, state that outlives a generation: the balancer's shared state and
// the traffic counters, carried from one generation's region to the next.
#include <algorithm>

#include "common/health_state.h"
#include "common/log.h"
#include "common/ticket_keys.h"
#include "master/master.h"
#include "master/resolver.h"

namespace pasture::master {

// Balancer state survives a reload for pools (by section) and servers (by
// host:port) that still exist. In-flight counts stay with the old workers.
namespace {

// What the admin commands set (worker/admin_cmd.h) stays with a server that
// is still configured: admin state, forced health, checks off and a weight
// override (the new generation's workers rebuild their tables for it).
void carry_control(const shm::ServerSlot& o, shm::ServerSlot& n, const conf::Pool& pool, size_t server) {
  uint32_t control = o.control.load(std::memory_order_relaxed);
  uint32_t weight = o.weight_override.load(std::memory_order_relaxed);
  if (control == 0 && weight == 0) return;
  n.control.store(control, std::memory_order_relaxed);
  n.weight_override.store(weight, std::memory_order_relaxed);
  const char* admin[] = {"ready", "drain", "maint", "?"};
  const char* forced[] = {"auto", "up", "down", "?"};
  PLOG_NOTICE("reload: %s/%s keeps state %s, health %s, checks %s, weight %s", pool.name.c_str(),
              pool.servers[server].label().c_str(), admin[control & shm::kAdminStateMask],
              forced[(uint32_t)shm::forced_health(control)],
              control & shm::kChecksDisabled ? "disabled" : "enabled",
              weight ? std::to_string(weight).c_str() : "as configured");
}

// The status app's health record: transitions, downtime, the last change
// and the last probe stay with the server. A pool that lost its health
// checks ends an active down period here (the flag was dropped above).
void carry_health_record(const shm::ServerSlot& o, shm::ServerSlot& n, bool checked) {
  n.down_word.store(o.down_word.load());
  n.down_transitions.store(o.down_transitions.load());
  n.downtime_ms.store(o.downtime_ms.load());
  n.last_change_ms.store(o.last_change_ms.load());
  if (!checked) {
    lb::mark_up(n, shm::kDownActive, monotonic_ms());
    return;
  }
  n.last_check.store(o.last_check.load());
}

}  // namespace

void Master::carry_over_state(Generation& from, Generation& to) {
  // A `drain` in progress goes on (its deadline is the master's clock).
  to.shm->header().drain_at_ms.store(from.shm->header().drain_at_ms.load());
  // Tickets issued before the reload resume after it (under the same
  // session-id context only, worker/tls_context.h), and the key's age goes
  // on: a reload does not postpone its rotation.
  shm::copy_ticket_keys(from.shm->tickets(), to.shm->tickets());
  if (from.tls && to.tls && from.tls->session_context() != to.tls->session_context())
    PLOG_NOTICE("reload: TLS certificates or client-certificate verification changed: "
                "sessions from before the reload will not resume (full handshakes)");
  from.shm->header().superseded.store(1, std::memory_order_release);  // before the snapshot
  from.carried = std::make_unique<StatsTotals>(sum_stats(*from.shm));
  to.shm->header().counters_since.store(from.shm->header().counters_since.load());
  carry_stats(*from.carried, nullptr, StatsNames::of(from.site, from.setup.pool_first_server),
              StatsNames::of(to.site, to.setup.pool_first_server), *to.shm);
  carry_history(*from.shm, StatsNames::of(from.site, from.setup.pool_first_server), *to.shm,
                StatsNames::of(to.site, to.setup.pool_first_server));
  for (size_t i = 0; i < to.site.pools.size(); i++) {
    const conf::Pool& np = to.site.pools[i];
    for (size_t j = 0; j < from.site.pools.size(); j++) {
      const conf::Pool& op = from.site.pools[j];
      if (op.name != np.name) continue;
      auto& ns = to.shm->pools()[i];
      auto& os = from.shm->pools()[j];
      ns.rr_cursor.store(os.rr_cursor.load());
      ns.picks.store(os.picks.load());
      ns.weights_epoch.store(1, std::memory_order_release);  // overrides may come: workers look once
      if (!np.sources.empty() && !op.sources.empty()) {
        size_t nf = np.servers.size() - np.max_servers, of = op.servers.size() - op.max_servers;
        carry_members(op, os, &from.shm->members()[from.setup.pool_first_server[j] + of], np, ns,
                      &to.shm->members()[to.setup.pool_first_server[i] + nf]);
      }
      for (size_t a = 0; a < np.servers.size(); a++)
        for (size_t b = 0; b < op.servers.size(); b++) {
          if (np.servers[a].label() != op.servers[b].label()) continue;
          auto& n = to.shm->servers()[to.setup.pool_first_server[i] + a];
          auto& o = from.shm->servers()[from.setup.pool_first_server[j] + b];
          // kServerDown belongs to active checks: dropped when the pool no longer has them.
          uint32_t flags = o.flags.load();
          if (np.health_check.empty()) flags &= ~shm::kServerDown;
          n.flags.store(flags);
          n.fail_window.store(o.fail_window.load());
          n.recovered_at_ms.store(o.recovered_at_ms.load());
          n.requests.store(o.requests.load());
          n.failures.store(o.failures.load());
          n.down_until_ms.store(o.down_until_ms.load());
          carry_control(o, n, np, a);
          carry_health_record(o, n, !np.health_check.empty());
        }
    }
  }
}

void Master::park_stats(Generation& g) {
  if (!g.shm || !g.carried) return;
  ParkedStats p;
  p.gen = g.id;
  p.region = std::move(g.shm);
  p.carried = std::move(g.carried);
  p.names = StatsNames::of(g.site, g.setup.pool_first_server);
  parked_stats_.push_back(std::move(p));
  fold_parked_stats();  // its workers may all be gone already
}

void Master::fold_parked_stats() {
  for (auto it = parked_stats_.begin(); it != parked_stats_.end();) {
    int gen = it->gen;
    bool draining = std::any_of(retiring_.begin(), retiring_.end(), [&](const Retiring& r) { return r.gen == gen; });
    if (draining) {
      ++it;
      continue;
    }
    StatsTotals final_counts = sum_stats(*it->region);
    carry_stats(final_counts, it->carried.get(), it->names,
                StatsNames::of(gen_->site, gen_->setup.pool_first_server), *gen_->shm);
    it = parked_stats_.erase(it);
  }
}

}  // namespace pasture::master
