// Traffic counters across reloads. A reload maps a new region; the counts of
// the old one are carried into the new one's retired row (common/stats.h):
// at HUP a snapshot, and once the old generation's last worker has exited,
// what it counted since (requests that finished during the drain). Pools
// match by name, servers by host:port, as the balancer state's carry-over.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/shm_layout.h"
#include "conf/model.h"

namespace pasture::master {

// Every row of a region summed (live workers, reaped ones, the retired row).
struct StatsTotals {
  shm::WorkerStats worker{};
  std::vector<shm::PoolStats> pools;
  std::vector<shm::ServerStats> servers;
};
StatsTotals sum_stats(shm::Region& r);

// Where a region's pools and servers are: names, labels, first server index.
struct StatsNames {
  std::vector<std::string> pools;
  std::vector<std::vector<std::string>> servers;  // per pool
  std::vector<uint32_t> first_server;             // per pool
  static StatsNames of(const conf::Site& site, const std::vector<uint32_t>& first_server);
};

// Adds `now - before` (`before` null: all of `now`) into `to`'s retired row,
// pool by name and server by label; what `to` no longer has is dropped.
// Master only (the retired row's one writer).
void carry_stats(const StatsTotals& now, const StatsTotals* before, const StatsNames& from,
                 const StatsNames& to_names, shm::Region& to);

// An old generation's region while its workers drain.
struct ParkedStats {
  int gen = 0;
  std::unique_ptr<shm::Region> region;
  std::unique_ptr<StatsTotals> carried;  // what the HUP snapshot already carried
  StatsNames names;
};

}  // namespace pasture::master
