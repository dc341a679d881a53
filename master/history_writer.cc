#include "master/history_writer.h"

#include <algorithm>
#include <ctime>

namespace pasture::master {
namespace {

uint32_t clamp32(uint64_t v) { return (uint32_t)std::min<uint64_t>(v, UINT32_MAX); }
uint64_t delta(const shm::Counter& now, const shm::Counter& before) {
  return now.get() > before.get() ? now.get() - before.get() : 0;  // `clear counters` in between: 0
}

// The p99 of the response times recorded between two readings.
struct Interval {
  uint64_t buckets[shm::kLatencyBuckets] = {};
  void add(const shm::Histogram& now, const shm::Histogram& before) {
    for (int i = 0; i < shm::kLatencyBuckets; i++) buckets[i] += delta(now.bucket[i], before.bucket[i]);
  }
  uint32_t p99_us() const { return clamp32((uint64_t)shm::histogram_quantile(buckets, 0.99)); }
};

}  // namespace

void HistoryWriter::tick(shm::Region& r, const conf::Site& site, const std::vector<uint32_t>& first_server,
                         uint64_t now_ms, uint32_t interval_ms) {
  if (interval_ms == 0 || now_ms < next_ms_) return;
  next_ms_ = now_ms + interval_ms;
  StatsNames names = StatsNames::of(site, first_server);
  auto now = std::make_unique<StatsTotals>(sum_stats(r));
  if (!prev_) {
    prev_ = std::move(now);
    return;
  }
  const StatsTotals& a = *now;
  const StatsTotals& b = *prev_;
  const shm::LayoutSizes& sz = r.sizes();
  shm::HistoryRing ring = r.history();
  uint64_t k = ring.header().written.load(std::memory_order_relaxed);
  std::atomic_ref<uint64_t>(ring.time(k)).store((uint64_t)time(nullptr), std::memory_order_relaxed);

  Interval all;
  uint64_t all_errors = delta(a.worker.responses[4], b.worker.responses[4]);
  for (size_t p = 0; p < names.pools.size() && p < sz.n_pools; p++) {
    Interval pool;
    uint64_t errors = 0, active = 0;
    uint32_t first = names.first_server[p];
    for (size_t j = 0; j < names.servers[p].size(); j++) {
      uint32_t s = first + (uint32_t)j;
      if (s >= sz.n_servers) break;
      const shm::ServerStats &x = a.servers[s], &y = b.servers[s];
      Interval one;
      one.add(x.total, y.total);
      pool.add(x.total, y.total);
      all.add(x.total, y.total);
      uint64_t e = delta(x.responses[4], y.responses[4]);
      int32_t act = r.servers()[s].active.load(std::memory_order_relaxed);
      errors += e;
      active += act > 0 ? (uint64_t)act : 0;
      shm::HistoryPoint& pt = ring.point(k, 1 + sz.n_pools + s);
      pt.requests.set(clamp32(delta(x.selected, y.selected)));
      pt.errors.set(clamp32(e));
      pt.active.set(act > 0 ? (uint32_t)act : 0);
      pt.p99_us.set(one.p99_us());
    }
    shm::HistoryPoint& pt = ring.point(k, 1 + (uint32_t)p);
    pt.requests.set(clamp32(delta(a.pools[p].requests, b.pools[p].requests)));
    pt.errors.set(clamp32(errors));
    pt.active.set(clamp32(active));
    pt.p99_us.set(pool.p99_us());
  }
  uint64_t connections = 0;
  for (uint32_t w = 0; w < sz.n_workers; w++)
    if (r.workers()[w].pid.load(std::memory_order_relaxed) != 0)
      connections += r.workers()[w].connections.load(std::memory_order_relaxed);
  shm::HistoryPoint& pt = ring.point(k, 0);
  pt.requests.set(clamp32(delta(a.worker.requests, b.worker.requests)));
  pt.errors.set(clamp32(all_errors));
  pt.active.set(clamp32(connections));
  pt.p99_us.set(all.p99_us());
  ring.header().written.store(k + 1, std::memory_order_release);
  prev_ = std::move(now);
}

void carry_history(shm::Region& from, const StatsNames& fn, shm::Region& to, const StatsNames& tn) {
  shm::HistoryRing src = from.history(), dst = to.history();
  uint64_t first, end;
  src.readable(&first, &end);
  // Series index in `from` for each series of `to`; -1: none.
  std::vector<int64_t> map(dst.n_series, -1);
  map[0] = 0;
  for (size_t i = 0; i < tn.pools.size(); i++)
    for (size_t j = 0; j < fn.pools.size(); j++) {
      if (tn.pools[i] != fn.pools[j]) continue;
      map[1 + i] = (int64_t)(1 + j);
      for (size_t a = 0; a < tn.servers[i].size(); a++)
        for (size_t b = 0; b < fn.servers[j].size(); b++)
          if (tn.servers[i][a] == fn.servers[j][b])
            map[1 + tn.pools.size() + tn.first_server[i] + a] = (int64_t)(1 + fn.pools.size() + fn.first_server[j] + b);
    }
  uint64_t out = 0;
  for (uint64_t k = first; k < end; k++, out++) {
    dst.time(out) = src.time(k);
    for (uint32_t s = 0; s < dst.n_series; s++) {
      if (map[s] < 0 || (uint64_t)map[s] >= src.n_series) continue;
      const shm::HistoryPoint& f = src.point(k, (uint32_t)map[s]);
      shm::HistoryPoint& t = dst.point(out, s);
      t.requests.set(f.requests.get());
      t.errors.set(f.errors.get());
      t.active.set(f.active.get());
      t.p99_us.set(f.p99_us.get());
    }
  }
  dst.header().written.store(out, std::memory_order_release);
}

}  // namespace pasture::master
