// common/ticket_keys: the shared session-ticket keys' rotation and reads.
#include "common/ticket_keys.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace pasture::shm {
namespace {

bool same(const TicketKey& a, const TicketKey& b) { return memcmp(&a, &b, sizeof a) == 0; }

TEST(TicketKeys, RotateMakesANewCurrentAndKeepsThePrevious) {
  TicketKeys block{};
  TicketKey k[2], r[2];
  EXPECT_FALSE(read_ticket_keys(block, k));  // never filled: no ticket issued or accepted
  ASSERT_TRUE(rotate_ticket_keys(block, 1000));
  ASSERT_TRUE(read_ticket_keys(block, k));
  EXPECT_FALSE(same(k[0], k[1]));
  EXPECT_EQ(block.rotations.load(), 0u);
  ASSERT_TRUE(rotate_ticket_keys(block, 1000));
  ASSERT_TRUE(read_ticket_keys(block, r));
  EXPECT_TRUE(same(r[1], k[0]));  // the old current decrypts on
  EXPECT_FALSE(same(r[0], k[0]));
  EXPECT_FALSE(same(r[0], k[1]));
  EXPECT_EQ(block.rotations.load(), 1u);
  EXPECT_EQ(block.seq.load() % 2, 0u);

  TicketKeys next{};
  copy_ticket_keys(block, next);  // a reload's new region
  ASSERT_TRUE(read_ticket_keys(next, k));
  EXPECT_TRUE(same(k[0], r[0]));
  EXPECT_TRUE(same(k[1], r[1]));
  ASSERT_TRUE(rotate_ticket_keys(next, 1000));  // and rotation goes on from there
  ASSERT_TRUE(read_ticket_keys(next, k));
  EXPECT_TRUE(same(k[1], r[0]));
}

// The master rotates on the current key's age, which a reload carries with
// the keys: reloads more often than the period do not postpone rotation.
TEST(TicketKeys, TheKeysAgeIsCarriedOverAReload) {
  const uint64_t kPeriod = 3600 * 1000;
  TicketKeys block{};
  EXPECT_FALSE(ticket_key_due(block, 10 * kPeriod, kPeriod));  // never filled: nothing to rotate
  ASSERT_TRUE(rotate_ticket_keys(block, 5000));
  EXPECT_EQ(block.current_since_ms.load(), 5000u);
  EXPECT_FALSE(ticket_key_due(block, 5000 + kPeriod - 1, kPeriod));
  EXPECT_TRUE(ticket_key_due(block, 5000 + kPeriod, kPeriod));
  // A reload half-way through the period: the new region's own fresh keys
  // (made at the reload) are replaced by the old ones, with their age.
  TicketKeys next{};
  ASSERT_TRUE(rotate_ticket_keys(next, 5000 + kPeriod / 2));
  copy_ticket_keys(block, next);
  EXPECT_EQ(next.current_since_ms.load(), 5000u);
  EXPECT_TRUE(ticket_key_due(next, 5000 + kPeriod, kPeriod));
  ASSERT_TRUE(rotate_ticket_keys(next, 5000 + kPeriod));
  EXPECT_FALSE(ticket_key_due(next, 5000 + 2 * kPeriod - 1, kPeriod));
  EXPECT_TRUE(ticket_key_due(next, 5000 + 2 * kPeriod, kPeriod));
  EXPECT_EQ(next.rotations.load(), 1u);
}

// The block sits in the shared region, after the header and before the
// pools, on its own cache lines, empty until the master fills it.
TEST(TicketKeys, LiveInTheSharedRegion) {
  Region r;
  ASSERT_TRUE(r.create({1, 2, 3}));
  EXPECT_EQ(r.sizes().tickets_off() % 64, 0u);
  EXPECT_EQ(r.sizes().pools_off(), r.sizes().tickets_off() + sizeof(TicketKeys));
  TicketKey k[2];
  EXPECT_FALSE(read_ticket_keys(r.tickets(), k));
  ASSERT_TRUE(rotate_ticket_keys(r.tickets(), 1000));
  EXPECT_TRUE(read_ticket_keys(r.tickets(), k));
  EXPECT_EQ(r.pools()[0].rr_cursor.load(), 0u);  // the pools start after it, untouched
}

// A reader never sees a key half old, half new while the master rotates:
// every key it reads is one the writer published.
TEST(TicketKeys, ReadersSeeWholeKeysWhileTheMasterRotates) {
  TicketKeys block{};
  ASSERT_TRUE(rotate_ticket_keys(block, 1000));
  auto text = [](const TicketKey& k) { return std::string(reinterpret_cast<const char*>(&k), sizeof k); };
  std::set<std::string> published;
  TicketKey k[2];
  ASSERT_TRUE(read_ticket_keys(block, k));
  published = {text(k[0]), text(k[1])};
  std::atomic<bool> stop{false};
  std::vector<std::string> seen;
  std::thread reader([&] {
    TicketKey r[2];
    while (!stop.load() && seen.size() < 200000) {
      if (!read_ticket_keys(block, r)) continue;
      seen.push_back(text(r[0]));
      seen.push_back(text(r[1]));
    }
  });
  for (int i = 0; i < 20000; i++) {
    ASSERT_TRUE(rotate_ticket_keys(block, 1000));
    ASSERT_TRUE(read_ticket_keys(block, k));  // the writer's own read cannot race
    published.insert(text(k[0]));
  }
  stop = true;
  reader.join();
  ASSERT_FALSE(seen.empty());
  size_t torn = 0;
  for (const std::string& s : seen) torn += !published.count(s);
  EXPECT_EQ(torn, 0u) << "of " << seen.size();
}

}  // namespace
}  // namespace pasture::shm
