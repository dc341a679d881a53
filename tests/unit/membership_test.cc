// common/membership.cc (slot planning, the sequence lock) and the balancer
// over discovered members (PoolState::sync_members): tables by identity, not
// by slot, and Maglev's disruption when one member of N leaves.
#include <algorithm>

#include "common/membership.h"
#include "lb_test_util.h"

namespace pasture::lb {
namespace {

using testing::TestPool;

Member member(const std::string& ip, uint16_t port = 80, uint32_t weight = 1, bool backup = false) {
  Member m;
  EXPECT_TRUE(m.set_ip(ip)) << ip;
  m.port = port;
  m.weight = weight;
  m.backup = backup;
  m.state = MemberState::Active;
  return m;
}

std::vector<std::string> ids(const std::vector<Member>& slots) {
  std::vector<std::string> out;
  for (const Member& m : slots)
    out.push_back(m.state == MemberState::Empty ? "-" : m.id() + (m.state == MemberState::Leaving ? "(leaving)" : ""));
  return out;
}

TEST(Membership, IdsAreIpAndPort) {
  EXPECT_EQ(member("10.0.0.5", 8000).id(), "10.0.0.5:8000");
  EXPECT_EQ(member("::1", 8000).id(), "[::1]:8000");
  Member m;
  EXPECT_FALSE(m.set_ip("app.internal"));
}

TEST(Membership, StayersKeepTheirSlotNewcomersTakeFreeOnes) {
  std::vector<Member> slots(4);
  std::vector<int32_t> active(4, 0);
  Plan p = plan_members(slots, {member("10.0.0.2"), member("10.0.0.1")}, active, 1000, 2000);
  EXPECT_EQ(ids(slots), (std::vector<std::string>{"10.0.0.1:80", "10.0.0.2:80", "-", "-"}));
  EXPECT_EQ(p.added.size(), 2u);
  EXPECT_EQ(p.fresh, (std::vector<size_t>{0, 1}));
  // The same set in another order, one more, a weight change: nobody moves.
  p = plan_members(slots, {member("10.0.0.3"), member("10.0.0.2", 80, 5), member("10.0.0.1")}, active, 2000, 2000);
  EXPECT_EQ(ids(slots), (std::vector<std::string>{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "-"}));
  EXPECT_EQ(p.added, (std::vector<std::string>{"10.0.0.3:80"}));
  EXPECT_EQ(slots[1].weight, 5u);
  EXPECT_TRUE(p.changed);
  // Nothing new: nothing changes.
  p = plan_members(slots, {member("10.0.0.3"), member("10.0.0.2", 80, 5), member("10.0.0.1")}, active, 3000, 2000);
  EXPECT_FALSE(p.changed);
}

// A member that left is Leaving; a newcomer takes a never-used or empty
// slot first, else a leaving one at once (no free slot must not mean no new
// member): one with nothing in flight first, else the least busy.
TEST(Membership, NewcomersTakeLeavingSlotsIdleOnesFirst) {
  std::vector<Member> slots(3);
  std::vector<int32_t> active(3, 0);
  plan_members(slots, {member("10.0.0.1"), member("10.0.0.2"), member("10.0.0.3")}, active, 1000, 2000);
  active = {3, 0, 1};  // requests in flight on .1 and .3
  Plan p = plan_members(slots, {member("10.0.0.9")}, active, 2000, 2000);
  EXPECT_EQ(p.removed.size(), 3u);
  EXPECT_TRUE(p.dropped.empty());
  EXPECT_EQ(ids(slots), (std::vector<std::string>{"10.0.0.1:80(leaving)", "10.0.0.9:80", "10.0.0.3:80(leaving)"}));
  EXPECT_EQ(slots[1].generation, 2u);
  EXPECT_EQ(p.fresh, (std::vector<size_t>{1}));
  // Every leaving slot busy: the least busy one is taken, at once.
  p = plan_members(slots, {member("10.0.0.9"), member("10.0.0.8")}, active, 2100, 2000);
  EXPECT_TRUE(p.dropped.empty());
  EXPECT_EQ(ids(slots), (std::vector<std::string>{"10.0.0.1:80(leaving)", "10.0.0.9:80", "10.0.0.8:80"}));
  EXPECT_EQ(p.fresh, (std::vector<size_t>{2}));
  // No leaving slot left: a newcomer waits (and is reported) rather than
  // push out a member the source still names.
  p = plan_members(slots, {member("10.0.0.9"), member("10.0.0.8"), member("10.0.0.7"), member("10.0.0.6")}, active,
                   2200, 2000);
  EXPECT_EQ(p.dropped, (std::vector<std::string>{"10.0.0.7:80"}));
  EXPECT_EQ(ids(slots), (std::vector<std::string>{"10.0.0.6:80", "10.0.0.9:80", "10.0.0.8:80"}));
  // Coming back while leaving: the same slot, active again.
  std::vector<Member> s2(3);
  std::vector<int32_t> a2(3, 1);
  plan_members(s2, {member("10.0.0.1")}, a2, 0, 2000);
  plan_members(s2, {}, a2, 10, 2000);
  p = plan_members(s2, {member("10.0.0.1")}, a2, 20, 2000);
  EXPECT_EQ(p.added, (std::vector<std::string>{"10.0.0.1:80"}));
  EXPECT_TRUE(p.fresh.empty());
  EXPECT_EQ(ids(s2)[0], "10.0.0.1:80");
}

// A full pool whose members are all replaced at once switches to the new
// ones in the same plan, busy or not (found by review: under load the old
// members were revived plan after plan and the new ones never got in).
TEST(Membership, ReplacingEveryMemberOfAFullPoolSwitchesAtOnce) {
  std::vector<Member> slots(2);
  std::vector<int32_t> active(2, 0);
  plan_members(slots, {member("10.0.0.1"), member("10.0.0.2")}, active, 1000, 2000);
  Plan p = plan_members(slots, {member("10.0.0.3"), member("10.0.0.4")}, active, 1100, 2000);
  EXPECT_TRUE(p.dropped.empty());
  EXPECT_EQ(ids(slots), (std::vector<std::string>{"10.0.0.3:80", "10.0.0.4:80"}));
  active = {5, 7};
  p = plan_members(slots, {member("10.0.0.5"), member("10.0.0.6")}, active, 1200, 2000);
  EXPECT_TRUE(p.dropped.empty());
  EXPECT_EQ(ids(slots), (std::vector<std::string>{"10.0.0.5:80", "10.0.0.6:80"}));
  EXPECT_EQ(p.fresh, (std::vector<size_t>{0, 1}));
  // The next plan, still busy: nothing changes (no epoch per resolve).
  p = plan_members(slots, {member("10.0.0.5"), member("10.0.0.6")}, active, 1300, 2000);
  EXPECT_FALSE(p.changed);
}

// Too many: primaries first, then by id, whatever the answer's order: every
// node keeps the same ones.
TEST(Membership, TooManyKeepsAStableSelection) {
  for (bool reverse : {false, true}) {
    std::vector<Member> want = {member("10.0.0.4"), member("10.0.0.3"), member("10.0.0.1", 80, 1, true),
                                member("10.0.0.2")};
    if (reverse) std::reverse(want.begin(), want.end());
    std::vector<Member> slots(2);
    Plan p = plan_members(slots, want, {0, 0}, 0, 2000);
    EXPECT_EQ(ids(slots), (std::vector<std::string>{"10.0.0.2:80", "10.0.0.3:80"}));
    EXPECT_EQ(p.dropped, (std::vector<std::string>{"10.0.0.4:80", "10.0.0.1:80"}));
  }
}

TEST(Membership, SequenceLockPublishesWholeSnapshots) {
  shm::Region r;
  shm::LayoutSizes sz;
  sz.n_pools = 1;
  sz.n_servers = 3;
  sz.n_workers = 1;
  ASSERT_TRUE(r.create(sz));
  std::vector<Member> slots(3), got;
  slots[1] = member("::1", 9000, 7, true);
  slots[1].source = 2;
  write_members(r.pools()[0], r.members(), slots);
  uint64_t epoch = 0;
  ASSERT_TRUE(read_members(r.pools()[0], r.members(), 3, &got, &epoch));
  EXPECT_EQ(epoch, 2u);
  EXPECT_EQ(got[1].id(), "[::1]:9000");
  EXPECT_EQ(got[1].weight, 7u);
  EXPECT_TRUE(got[1].backup);
  EXPECT_EQ(got[1].source, 2);
  EXPECT_EQ(got[0].state, MemberState::Empty);
  r.pools()[0].members_epoch.store(3);  // a writer in the middle
  EXPECT_FALSE(read_members(r.pools()[0], r.members(), 3, &got, &epoch));
}

// A pool of `slots` discovery slots (no static server), method hash.
PoolParams dynamic_params(size_t slots, Consistency c = Consistency::Maglev) {
  PoolParams p;
  p.method = Method::Hash;
  p.consistent = c;
  p.first_dynamic = 0;
  p.sources.push_back(ServerParams{});
  for (size_t k = 0; k < slots; k++) {
    ServerParams s;
    s.id = "#slot" + std::to_string(k);
    s.member = false;
    p.servers.push_back(s);
  }
  return p;
}

// Publishes `slots` in t's region and lets its state pick them up.
void publish(TestPool& t, const std::vector<Member>& slots) {
  t.state.member_slots = t.region().members();
  write_members(*t.state.slot, t.region().members(), slots);
  ASSERT_TRUE(t.state.sync_members());
  ASSERT_FALSE(t.state.sync_members());  // once per change
}

std::vector<std::string> owners(TestPool& t, int keys) {
  std::vector<std::string> out;
  for (int i = 0; i < keys; i++) {
    int s = t.pick_key("key-" + std::to_string(i));
    out.push_back(s < 0 ? "-" : t.state.servers[s].id);
  }
  return out;
}

// Two nodes that learned the same members in another order (other slots)
// route every key alike, for each consistency.
TEST(Membership, NodesThatLearnedInAnotherOrderPickAlike) {
  for (Consistency c : {Consistency::Maglev, Consistency::Ring, Consistency::None}) {
    TestPool a(dynamic_params(8, c)), b(dynamic_params(8, c));
    std::vector<Member> sa(8), sb(8);
    std::vector<int32_t> idle(8, 0);
    std::vector<Member> ms = {member("10.0.0.1"), member("10.0.0.2", 80, 2), member("10.0.0.3"), member("10.0.0.4")};
    for (const Member& m : ms) plan_members(sa, std::vector<Member>(ms.begin(), ms.begin() + (&m - ms.data()) + 1), idle, 0, 0);
    std::vector<Member> rev(ms.rbegin(), ms.rend());
    sb[5] = rev[0], sb[1] = rev[1], sb[7] = rev[2], sb[2] = rev[3];
    publish(a, sa);
    publish(b, sb);
    EXPECT_EQ(owners(a, 2000), owners(b, 2000)) << (int)c;
  }
}

// One member of N leaves: Maglev moves its keys (about 1/N) and few others.
// The table is sized for every slot, so it keeps its size.
TEST(Membership, MaglevMovesAboutOneNthWhenOneOfNLeaves) {
  constexpr int kN = 10, kKeys = 20000;
  TestPool t(dynamic_params(16));
  std::vector<Member> slots(16);
  std::vector<int32_t> idle(16, 0);
  std::vector<Member> all;
  for (int i = 1; i <= kN; i++) all.push_back(member("10.0.1." + std::to_string(i)));
  plan_members(slots, all, idle, 0, 0);
  publish(t, slots);
  size_t size_before = t.state.primary.hash.maglev_size();
  std::vector<std::string> before = owners(t, kKeys);
  std::string gone = all[3].id();
  all.erase(all.begin() + 3);
  plan_members(slots, all, idle, 0, 0);
  publish(t, slots);
  EXPECT_EQ(t.state.primary.hash.maglev_size(), size_before);
  std::vector<std::string> after = owners(t, kKeys);
  int moved = 0, moved_elsewhere = 0, on_gone = 0;
  for (int i = 0; i < kKeys; i++) {
    on_gone += before[i] == gone;
    if (before[i] != after[i]) {
      moved++;
      moved_elsewhere += before[i] != gone;
    }
    EXPECT_NE(after[i], gone);
  }
  double share = (double)moved / kKeys;
  RecordProperty("maglev_moved_percent", std::to_string(share * 100));
  EXPECT_NEAR(share, 1.0 / kN, 0.03) << moved << " of " << kKeys << " keys moved";
  EXPECT_EQ(moved - moved_elsewhere, on_gone);           // every key of the member that left moved
  EXPECT_LT((double)moved_elsewhere / kKeys, 0.02);      // and few of the others
  printf("maglev, 1 of %d members leaves: %.2f%% of %d keys moved (%.2f%% not on it)\n", kN, share * 100, kKeys,
         100.0 * moved_elsewhere / kKeys);
}

}  // namespace
}  // namespace pasture::lb
