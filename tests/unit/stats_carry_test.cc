// master/stats_carry: the totals a reload carries are whole runs of
// counters, padding included, as the region's rows are (review 31 F1).
#include "master/stats_carry.h"

#include <gtest/gtest.h>

#include <vector>

namespace pasture::master {
namespace {

template <typename T>
size_t nonzero(const T& t) {
  const shm::Counter* c = shm::counter_array(const_cast<T&>(t));
  size_t n = 0;
  for (size_t i = 0; i < shm::counter_count<T>(); i++) n += c[i].get() != 0;
  return n;
}

TEST(StatsCarry, SummedTotalsHoldNoHeapGarbageInThePadding) {
  static_assert(sizeof(shm::PoolStats) > 4 * sizeof(shm::Counter), "PoolStats has padding to check");
  shm::LayoutSizes sz;
  sz.n_pools = 64;
  sz.n_servers = 4;
  sz.n_workers = 2;
  shm::Region region;
  ASSERT_TRUE(region.create(sz));
  region.stats_row(0).worker().accepted.add(1);  // a used row: summed
  region.stats_row(0).pool(3).requests.add(5);
  for (int round = 0; round < 3; round++) {
    // Dirty memory of the type and count the totals' pool vector asks
    // for, freed just before: the allocator hands the same block back.
    {
      std::vector<shm::PoolStats> dirty(sz.n_pools);
      for (shm::PoolStats& p : dirty) {
        shm::Counter* c = shm::counter_array(p);
        for (size_t i = 0; i < shm::counter_count<shm::PoolStats>(); i++) c[i].set(~0ull);
      }
    }
    StatsTotals t = sum_stats(region);
    ASSERT_EQ(t.pools.size(), sz.n_pools);
    size_t bad = 0;
    for (uint32_t p = 0; p < sz.n_pools; p++) bad += nonzero(t.pools[p]) - (p == 3 ? 1 : 0);
    EXPECT_EQ(bad, 0u) << "counters (padding included) not zero in the summed totals";
    EXPECT_EQ(t.pools[3].requests.get(), 5u);
    EXPECT_EQ(nonzero(t.worker), 1u);
    EXPECT_EQ(t.worker.accepted.get(), 1u);
  }
}

}  // namespace
}  // namespace pasture::master
