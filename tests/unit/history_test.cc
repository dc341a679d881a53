// common/history.h and master/history_writer: what a sample holds (the
// interval's differences, the active gauge, the interval's p99), the ring's
// readable window, and the carry-over of a reload by name.
#include "master/history_writer.h"

#include <gtest/gtest.h>

namespace pasture::master {
namespace {

conf::Site site_of(std::vector<std::vector<uint16_t>> pools) {
  conf::Site site;
  for (size_t i = 0; i < pools.size(); i++) {
    conf::Pool p;
    p.name = "app:p" + std::to_string(i);
    for (uint16_t port : pools[i]) {
      conf::UpstreamServer s;
      s.host = "127.0.0.1";
      s.port = port;
      p.servers.push_back(s);
    }
    site.pools.push_back(p);
  }
  return site;
}

struct Fixture {
  conf::Site site;
  std::vector<uint32_t> first;
  shm::Region region;
  explicit Fixture(std::vector<std::vector<uint16_t>> pools) : site(site_of(pools)) {
    shm::LayoutSizes sz;
    sz.n_pools = (uint32_t)pools.size();
    for (auto& p : pools) {
      first.push_back(sz.n_servers);
      sz.n_servers += (uint32_t)p.size();
    }
    sz.n_workers = 2;
    if (!region.create(sz)) throw std::runtime_error("mmap failed");
  }
  StatsNames names() const { return StatsNames::of(site, first); }
};

TEST(History, ASampleHoldsTheIntervalsDifferences) {
  Fixture f({{1, 2}});
  HistoryWriter w;
  w.start(f.region);
  shm::StatsRow row = f.region.stats_row(0);
  row.worker().accepted.add(1);
  row.worker().requests.add(7);
  row.pool(0).requests.add(5);
  row.server(1).selected.add(5);
  row.server(1).responses[4].add(2);
  for (int i = 0; i < 5; i++) row.server(1).total.observe(30000);  // (20 ms, 50 ms]
  f.region.servers()[1].active.store(3);
  w.tick(f.region, f.site, f.first, 1000, 100);
  row.pool(0).requests.add(1);
  row.server(0).selected.add(1);
  w.tick(f.region, f.site, f.first, 1050, 100);  // not due: no sample
  w.tick(f.region, f.site, f.first, 1100, 100);
  shm::HistoryRing ring = f.region.history();
  uint64_t first, end;
  ring.readable(&first, &end);
  ASSERT_EQ(first, 0u);
  ASSERT_EQ(end, 2u);
  EXPECT_GT(ring.time(0), 0u);
  EXPECT_EQ(ring.point(0, 0).requests.get(), 7u);  // the whole server
  EXPECT_EQ(ring.point(0, 0).errors.get(), 0u);    // (5xx to clients: none counted here)
  EXPECT_EQ(ring.point(0, 1).requests.get(), 5u);  // the pool
  EXPECT_EQ(ring.point(0, 1).errors.get(), 2u);
  EXPECT_EQ(ring.point(0, 1).active.get(), 3u);
  EXPECT_EQ(ring.point(0, 3).requests.get(), 5u);  // server 1
  EXPECT_GT(ring.point(0, 3).p99_us.get(), 20000u);
  EXPECT_LE(ring.point(0, 3).p99_us.get(), 50000u);
  EXPECT_EQ(ring.point(1, 1).requests.get(), 1u);  // only what came since
  EXPECT_EQ(ring.point(1, 2).requests.get(), 1u);
  EXPECT_EQ(ring.point(1, 3).requests.get(), 0u);
  EXPECT_EQ(ring.point(1, 3).p99_us.get(), 0u);  // no response ended in it
}

TEST(History, TheRingKeepsTheLastSamplesButOne) {
  Fixture f(std::vector<std::vector<uint16_t>>{{1}});
  HistoryWriter w;
  w.start(f.region);
  shm::StatsRow row = f.region.stats_row(0);
  row.worker().accepted.add(1);  // a row never used is not read
  for (uint64_t k = 0; k < shm::kHistorySamples + 10; k++) {
    row.pool(0).requests.add(k);
    w.tick(f.region, f.site, f.first, 1000 + 10 * k, 10);
  }
  shm::HistoryRing ring = f.region.history();
  uint64_t first, end;
  ring.readable(&first, &end);
  EXPECT_EQ(end, shm::kHistorySamples + 10);
  EXPECT_EQ(end - first, shm::kHistorySamples - 1);
  EXPECT_EQ(ring.point(end - 1, 1).requests.get(), shm::kHistorySamples + 9);
  EXPECT_EQ(ring.point(first, 1).requests.get(), first);
}

TEST(History, AReloadCarriesSeriesByName) {
  Fixture a({{1, 2}}), b({{3}, {2, 4}});
  b.site.pools[0].name = "app:new";
  b.site.pools[1].name = a.site.pools[0].name;  // the same pool, now second, without :1, with :4
  HistoryWriter w;
  w.start(a.region);
  shm::StatsRow row = a.region.stats_row(0);
  row.pool(0).requests.add(9);
  row.server(1).selected.add(9);
  row.worker().requests.add(9);
  w.tick(a.region, a.site, a.first, 1000, 10);
  carry_history(a.region, a.names(), b.region, b.names());
  shm::HistoryRing ring = b.region.history();
  uint64_t first, end;
  ring.readable(&first, &end);
  ASSERT_EQ(end, 1u);
  EXPECT_EQ(ring.time(0), a.region.history().time(0));
  EXPECT_EQ(ring.point(0, 0).requests.get(), 9u);  // the whole server
  EXPECT_EQ(ring.point(0, 1).requests.get(), 0u);  // pool 0 is new
  EXPECT_EQ(ring.point(0, 2).requests.get(), 9u);  // pool 1 = the old pool 0
  // Servers: [0] :3, [1] :2 (was [1]), [2] :4 (new).
  EXPECT_EQ(ring.point(0, 3 + 1).requests.get(), 9u);
  EXPECT_EQ(ring.point(0, 3 + 2).requests.get(), 0u);
  EXPECT_EQ(ring.point(0, 3 + 0).requests.get(), 0u);
}

}  // namespace
}  // namespace pasture::master
