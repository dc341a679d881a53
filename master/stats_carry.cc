#include "master/stats_carry.h"

namespace pasture::master {
namespace {

// to += now - before (before may be null). A counter cleared meanwhile
// (`clear counters`) may be below its snapshot: it adds nothing then.
template <typename T>
void add_delta(const T& now, const T* before, T& to) {
  const shm::Counter* n = shm::counter_array(const_cast<T&>(now));
  const shm::Counter* b = before ? shm::counter_array(const_cast<T&>(*before)) : nullptr;
  shm::Counter* t = shm::counter_array(to);
  for (size_t i = 0; i < shm::counter_count<T>(); i++) {
    uint64_t v = n[i].get(), w = b ? b[i].get() : 0;
    if (v > w) t[i].add(v - w);
  }
}

}  // namespace

StatsTotals sum_stats(shm::Region& r) {
  const shm::LayoutSizes& sz = r.sizes();
  StatsTotals t;
  t.pools.resize(sz.n_pools);
  t.servers.resize(sz.n_servers);
  shm::zero_counters(t.worker);
  for (shm::PoolStats& p : t.pools) shm::zero_counters(p);
  for (shm::ServerStats& s : t.servers) shm::zero_counters(s);
  for (uint32_t w = 0; w <= sz.n_workers; w++) {
    shm::StatsRow row = r.stats_row(w);
    // A slot never used has nothing counted; reading it would only fault in
    // its pages (every count comes with an accepted connection).
    if (w < sz.n_workers && row.worker().accepted.get() == 0 && row.worker().requests.get() == 0) continue;
    shm::add_worker(row.worker(), t.worker);
    for (uint32_t p = 0; p < sz.n_pools; p++) shm::add_pool(row.pool(p), t.pools[p]);
    for (uint32_t s = 0; s < sz.n_servers; s++) shm::add_server(row.server(s), t.servers[s]);
  }
  return t;
}

StatsNames StatsNames::of(const conf::Site& site, const std::vector<uint32_t>& first_server) {
  StatsNames n;
  n.first_server = first_server;
  for (const conf::Pool& p : site.pools) {
    n.pools.push_back(p.name);
    n.servers.emplace_back();
    for (const conf::UpstreamServer& s : p.servers) n.servers.back().push_back(s.label());
  }
  return n;
}

void carry_stats(const StatsTotals& now, const StatsTotals* before, const StatsNames& from,
                 const StatsNames& to_names, shm::Region& to) {
  shm::StatsRow retired = to.retired_row();
  uint64_t epoch = retired.worker().clear_epoch_seen.get();
  add_delta(now.worker, before ? &before->worker : nullptr, retired.worker());
  retired.worker().clear_epoch_seen.set(epoch);
  for (size_t i = 0; i < to_names.pools.size(); i++) {
    for (size_t j = 0; j < from.pools.size(); j++) {
      if (from.pools[j] != to_names.pools[i] || j >= now.pools.size()) continue;
      add_delta(now.pools[j], before ? &before->pools[j] : nullptr, retired.pool((uint32_t)i));
      for (size_t a = 0; a < to_names.servers[i].size(); a++)
        for (size_t b = 0; b < from.servers[j].size(); b++) {
          if (to_names.servers[i][a] != from.servers[j][b]) continue;
          uint32_t fs = from.first_server[j] + (uint32_t)b, ts = to_names.first_server[i] + (uint32_t)a;
          if (fs >= now.servers.size()) continue;
          add_delta(now.servers[fs], before ? &before->servers[fs] : nullptr, retired.server(ts));
        }
    }
  }
}

}  // namespace pasture::master
