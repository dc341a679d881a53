// common/stats: buckets, quantiles, and folding a row into another.
#include <gtest/gtest.h>

#include "common/shm_layout.h"

namespace pasture::shm {
namespace {

TEST(Stats, LatencyBucketsAreUpperBoundsInclusive) {
  EXPECT_EQ(latency_bucket(0), 0);
  EXPECT_EQ(latency_bucket(100), 0);
  EXPECT_EQ(latency_bucket(101), 1);
  EXPECT_EQ(latency_bucket(50000), 8);
  EXPECT_EQ(latency_bucket(60000000), kLatencyBuckets - 2);
  EXPECT_EQ(latency_bucket(60000001), kLatencyBuckets - 1);  // +Inf
}

TEST(Stats, QuantileInterpolatesInsideTheBucket) {
  uint64_t b[kLatencyBuckets] = {};
  EXPECT_EQ(histogram_quantile(b, 0.5), 0);
  b[8] = 100;  // (20 ms, 50 ms]
  EXPECT_DOUBLE_EQ(histogram_quantile(b, 0.5), 35000);
  EXPECT_DOUBLE_EQ(histogram_quantile(b, 1.0), 50000);
  b[kLatencyBuckets - 1] = 100;  // as many past 60 s: p99 says 60 s (no upper bound)
  EXPECT_DOUBLE_EQ(histogram_quantile(b, 0.99), 60000000);
}

TEST(Stats, ReclaimedWorkersCountsMoveToTheRetiredRow) {
  Region r;
  LayoutSizes sz;
  sz.n_pools = 2;
  sz.n_servers = 3;
  sz.n_workers = 4;
  ASSERT_TRUE(r.create(sz));
  StatsRow w1 = r.stats_row(1);
  w1.worker().requests.add(7);
  w1.worker().responses[status_class(204)].add(7);
  w1.pool(1).no_server.add(2);
  w1.server(2).ttfb.observe(30000);
  w1.worker().clear_epoch_seen.set(5);
  r.reclaim_worker(1);
  StatsRow ret = r.retired_row();
  EXPECT_EQ(ret.worker().requests.get(), 7u);
  EXPECT_EQ(ret.worker().responses[1].get(), 7u);
  EXPECT_EQ(ret.pool(1).no_server.get(), 2u);
  EXPECT_EQ(ret.server(2).ttfb.bucket[8].get(), 1u);
  EXPECT_EQ(ret.server(2).ttfb.sum_us.get(), 30000u);
  EXPECT_EQ(ret.worker().clear_epoch_seen.get(), 0u) << "the epoch is the row's own, never summed";
  EXPECT_EQ(w1.worker().requests.get(), 0u);
  EXPECT_EQ(w1.server(2).ttfb.count.get(), 0u);
  EXPECT_EQ(w1.worker().clear_epoch_seen.get(), 5u);
  // Rows do not overlap: the neighbours are untouched.
  EXPECT_EQ(r.stats_row(0).worker().requests.get(), 0u);
  EXPECT_EQ(r.stats_row(2).server(0).selected.get(), 0u);
}

// The tunnels gauges are a live worker's own state: a dead worker's are not
// folded into the retired row (its tunnels died with it), a reload's carry
// does not copy them, and `clear counters` keeps them; gauge_dec never wraps.
TEST(Stats, TunnelGaugesAreNeverFoldedCarriedOrCleared) {
  Region r;
  LayoutSizes sz;
  sz.n_pools = 1;
  sz.n_servers = 2;
  sz.n_workers = 2;
  ASSERT_TRUE(r.create(sz));
  StatsRow w0 = r.stats_row(0), w1 = r.stats_row(1);
  w1.worker().tunnels.add(3);
  w1.server(1).tunnels.add(3);
  w1.worker().requests.add(3);
  r.reclaim_worker(1);
  EXPECT_EQ(r.retired_row().worker().requests.get(), 3u);
  EXPECT_EQ(r.retired_row().worker().tunnels.get(), 0u);
  EXPECT_EQ(r.retired_row().server(1).tunnels.get(), 0u);
  EXPECT_EQ(w1.worker().tunnels.get(), 0u) << "the dead row's gauge is cleared";
  w0.worker().tunnels.add(2);
  w0.server(0).tunnels.add(2);
  w0.worker().requests.add(5);
  clear_row(w0, sz.n_pools, sz.n_servers, /*keep_gauges=*/true);
  EXPECT_EQ(w0.worker().requests.get(), 0u);
  EXPECT_EQ(w0.worker().tunnels.get(), 2u);
  EXPECT_EQ(w0.server(0).tunnels.get(), 2u);
  ServerStats carried{};
  carried.tunnels.set(1);
  add_server(w0.server(0), carried);
  EXPECT_EQ(carried.tunnels.get(), 1u);
  WorkerStats wcarried{};
  add_worker(w0.worker(), wcarried);
  EXPECT_EQ(wcarried.tunnels.get(), 0u);
  Counter c{0};
  gauge_dec(c);
  EXPECT_EQ(c.get(), 0u);
}

}  // namespace
}  // namespace pasture::shm
