#include "common/stats.h"

#include <algorithm>

namespace pasture::shm {

static_assert(sizeof(WorkerStats) % 64 == 0 && sizeof(PoolStats) % 64 == 0 && sizeof(ServerStats) % 64 == 0,
              "rows are whole cache lines");
static_assert(sizeof(WorkerStats) == 192, "a worker row: three cache lines");

int latency_bucket(uint64_t us) {
  // 18 bounds: a binary search costs as much as the scan it replaces.
  const uint64_t* end = kLatencyBoundsUs + (kLatencyBuckets - 1);
  return (int)(std::lower_bound(kLatencyBoundsUs, end, us) - kLatencyBoundsUs);
}

namespace {

template <typename T>
void add_all(const T& from, T& to) {
  const Counter* f = counter_array(const_cast<T&>(from));
  Counter* t = counter_array(to);
  for (size_t i = 0; i < counter_count<T>(); i++) t[i].add(f[i].get());
}

template <typename T>
void zero_all(T& t, size_t keep = (size_t)-1) {
  Counter* c = counter_array(t);
  for (size_t i = 0; i < counter_count<T>(); i++)
    if (i != keep) c[i].set(0);
}

constexpr size_t kEpochIndex = offsetof(WorkerStats, clear_epoch_seen) / sizeof(Counter);

}  // namespace

void add_server(const ServerStats& from, ServerStats& to) {
  uint64_t gauge = to.tunnels.get();
  add_all(from, to);
  to.tunnels.set(gauge);
}
void add_pool(const PoolStats& from, PoolStats& to) { add_all(from, to); }
void add_worker(const WorkerStats& from, WorkerStats& to) {
  uint64_t epoch = to.clear_epoch_seen.get(), gauge = to.tunnels.get();
  add_all(from, to);
  to.clear_epoch_seen.set(epoch);
  to.tunnels.set(gauge);
}

void fold_row(const StatsRow& from, const StatsRow& to, uint32_t n_pools, uint32_t n_servers) {
  add_worker(from.worker(), to.worker());
  for (uint32_t p = 0; p < n_pools; p++) add_pool(from.pool(p), to.pool(p));
  for (uint32_t s = 0; s < n_servers; s++) add_server(from.server(s), to.server(s));
  clear_row(from, n_pools, n_servers);
}

void clear_row(const StatsRow& row, uint32_t n_pools, uint32_t n_servers, bool keep_gauges) {
  uint64_t gauge = row.worker().tunnels.get();
  zero_all(row.worker(), kEpochIndex);
  if (keep_gauges) row.worker().tunnels.set(gauge);
  for (uint32_t p = 0; p < n_pools; p++) zero_all(row.pool(p));
  for (uint32_t s = 0; s < n_servers; s++) {
    gauge = row.server(s).tunnels.get();
    zero_all(row.server(s));
    if (keep_gauges) row.server(s).tunnels.set(gauge);
  }
}

double histogram_quantile(const uint64_t (&buckets)[kLatencyBuckets], double q) {
  uint64_t total = 0;
  for (uint64_t b : buckets) total += b;
  if (total == 0) return 0;
  double rank = q * (double)total;
  uint64_t seen = 0;
  for (int i = 0; i < kLatencyBuckets; i++) {
    if (buckets[i] == 0) continue;
    if ((double)(seen + buckets[i]) >= rank) {
      double lo = i == 0 ? 0 : (double)kLatencyBoundsUs[i - 1];
      // The +Inf bucket has no upper bound: report its lower one (as
      // Prometheus' histogram_quantile does).
      if (i == kLatencyBuckets - 1) return lo;
      double hi = (double)kLatencyBoundsUs[i];
      return lo + (hi - lo) * std::clamp((rank - (double)seen) / (double)buckets[i], 0.0, 1.0);
    }
    seen += buckets[i];
  }
  return (double)kLatencyBoundsUs[kLatencyBuckets - 2];
}

}  // namespace pasture::shm
