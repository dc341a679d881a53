// The status page's history (common/history.h), written by the master on
// its tick: one sample per `status_history_interval`, the difference of the
// summed counters since the previous sample. The master is the ring's only
// writer; no worker spends anything on it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/shm_layout.h"
#include "master/stats_carry.h"

namespace pasture::master {

class HistoryWriter {
 public:
  // Writes a sample into `r`'s ring once `interval_ms` has passed since the
  // last one (0: never). `site` and `first_server` say which series are which.
  void tick(shm::Region& r, const conf::Site& site, const std::vector<uint32_t>& first_server, uint64_t now_ms,
            uint32_t interval_ms);
  // Samples `r` from now on (start-up, a reload once the counts are carried
  // into it): its counts now are the baseline of the first sample.
  void start(shm::Region& r) { prev_ = std::make_unique<StatsTotals>(sum_stats(r)); }

 private:
  std::unique_ptr<StatsTotals> prev_;
  uint64_t next_ms_ = 0;
};

// A reload: the new region's ring starts with the old one's samples, series
// matched by name (the whole server, pools by name, servers by label); a
// series new in the config starts empty.
void carry_history(shm::Region& from, const StatsNames& from_names, shm::Region& to, const StatsNames& to_names);

}  // namespace pasture::master
