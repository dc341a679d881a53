#include "common/membership.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace pasture::lb {

const char* resolve_result_name(ResolveResult r) {
  switch (r) {
    case ResolveResult::None: return "none";
    case ResolveResult::Ok: return "ok";
    case ResolveResult::Timeout: return "timeout";
    case ResolveResult::ServFail: return "servfail";
    case ResolveResult::NxDomain: return "nxdomain";
    case ResolveResult::Empty: return "empty";
    case ResolveResult::Error: return "error";
  }
  return "?";
}

std::string Member::id() const {
  char buf[INET6_ADDRSTRLEN] = "";
  inet_ntop(v6 ? AF_INET6 : AF_INET, addr, buf, sizeof buf);
  return v6 ? "[" + std::string(buf) + "]:" + std::to_string(port) : std::string(buf) + ":" + std::to_string(port);
}

bool Member::same_endpoint(const Member& o) const {
  return v6 == o.v6 && port == o.port && std::memcmp(addr, o.addr, v6 ? 16 : 4) == 0;
}

bool Member::set_ip(const std::string& ip) {
  std::memset(addr, 0, sizeof addr);
  if (inet_pton(AF_INET, ip.c_str(), addr) == 1) {
    v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, ip.c_str(), addr) == 1) {
    v6 = true;
    return true;
  }
  return false;
}

Member read_member(const shm::MemberSlot& s) {
  Member m;
  uint32_t w = s.word.load(std::memory_order_relaxed);
  m.state = MemberState(w & 3u);
  m.v6 = w & shm::kMemberV6;
  m.backup = w & shm::kMemberBackup;
  m.source = (uint8_t)(w >> 8);
  m.port = (uint16_t)s.port.load(std::memory_order_relaxed);
  m.weight = s.weight.load(std::memory_order_relaxed);
  m.generation = s.generation.load(std::memory_order_relaxed);
  m.since_ms = s.since_ms.load(std::memory_order_relaxed);
  for (int k = 0; k < 4; k++) {
    uint32_t a = s.addr[k].load(std::memory_order_relaxed);
    std::memcpy(m.addr + 4 * k, &a, 4);
  }
  return m;
}

// Sequence lock (the resolver is the only writer): the writer makes the
// epoch odd, then (release fence) the records, then the even epoch with
// release; a reader loads the epoch with acquire, the records, an acquire
// fence, then the epoch again: the same even value means a whole snapshot.
bool read_members(const shm::PoolSlot& pool, const shm::MemberSlot* slots, size_t n, std::vector<Member>* out,
                  uint64_t* epoch) {
  uint64_t e1 = pool.members_epoch.load(std::memory_order_acquire);
  if (e1 & 1) return false;
  std::vector<Member> got(n);
  for (size_t i = 0; i < n; i++) got[i] = read_member(slots[i]);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (pool.members_epoch.load(std::memory_order_relaxed) != e1) return false;
  *out = std::move(got);
  *epoch = e1;
  return true;
}

void write_members(shm::PoolSlot& pool, shm::MemberSlot* slots, const std::vector<Member>& members) {
  uint64_t e = pool.members_epoch.load(std::memory_order_relaxed);
  pool.members_epoch.store(e | 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  for (size_t i = 0; i < members.size(); i++) {
    const Member& m = members[i];
    shm::MemberSlot& s = slots[i];
    s.word.store((uint32_t)m.state | (m.v6 ? shm::kMemberV6 : 0) | (m.backup ? shm::kMemberBackup : 0) |
                     (uint32_t)m.source << 8,
                 std::memory_order_relaxed);
    s.port.store(m.port, std::memory_order_relaxed);
    s.weight.store(m.weight, std::memory_order_relaxed);
    s.generation.store(m.generation, std::memory_order_relaxed);
    s.since_ms.store(m.since_ms, std::memory_order_relaxed);
    for (int k = 0; k < 4; k++) {
      uint32_t a;
      std::memcpy(&a, m.addr + 4 * k, 4);
      s.addr[k].store(a, std::memory_order_relaxed);
    }
  }
  pool.members_epoch.store((e | 1) + 1, std::memory_order_release);
}

Plan plan_members(std::vector<Member>& slots, std::vector<Member> wanted, const std::vector<int32_t>& active,
                  uint64_t now_ms, uint64_t grace_ms) {
  Plan plan;
  // The stable order, then the first of each id.
  std::vector<std::pair<std::string, Member>> want;
  for (const Member& m : wanted) want.emplace_back(m.id(), m);
  std::stable_sort(want.begin(), want.end(), [](const auto& a, const auto& b) {
    return a.second.backup != b.second.backup ? !a.second.backup : a.first < b.first;
  });
  want.erase(std::unique(want.begin(), want.end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
             want.end());
  std::vector<bool> placed(want.size(), false);
  for (size_t i = 0; i < slots.size(); i++) {
    Member& s = slots[i];
    if (s.state == MemberState::Empty) continue;
    std::string id = s.id();
    auto it = std::find_if(want.begin(), want.end(), [&](const auto& w) { return w.first == id; });
    if (it != want.end()) {
      const Member& w = it->second;
      placed[it - want.begin()] = true;
      if (s.state == MemberState::Leaving) {
        s.state = MemberState::Active;
        s.since_ms = now_ms;
        plan.added.push_back(id);
        plan.changed = true;
      }
      if (s.weight != w.weight || s.backup != w.backup || s.source != w.source) {
        s.weight = w.weight;
        s.backup = w.backup;
        s.source = w.source;
        plan.changed = true;
      }
      continue;
    }
    if (s.state == MemberState::Active) {
      s.state = MemberState::Leaving;
      s.since_ms = now_ms;
      plan.removed.push_back(id);
      plan.changed = true;
    } else if (i < active.size() && active[i] <= 0 && now_ms >= s.since_ms + grace_ms) {
      s.state = MemberState::Empty;  // keeps its address and generation, for the status page
      plan.changed = true;
    }
  }
  for (size_t k = 0; k < want.size(); k++) {
    if (placed[k]) continue;
    size_t best = slots.size();
    for (size_t i = 0; i < slots.size(); i++) {
      if (slots[i].state != MemberState::Empty) continue;
      if (best == slots.size() || (slots[best].generation != 0 && slots[i].generation == 0)) best = i;
      if (slots[best].generation == 0) break;
    }
    // No free slot: a leaving one is taken at once, one with nothing in
    // flight first (the one that left first), else the one with the fewest
    // requests in flight, as HAProxy's server-template slot takes a new
    // address: those requests finish on their own connections (the workers
    // tell them apart by the slot's generation: such a connection is never
    // pooled for the newcomer and its outcome is not the newcomer's health).
    // Found by review: waiting for a busy pool's leaving members to go idle
    // kept the members a source had replaced serving every request for as
    // long as the load lasted.
    if (best == slots.size()) {
      for (size_t i = 0; i < slots.size(); i++) {
        if (slots[i].state != MemberState::Leaving) continue;
        int32_t a = i < active.size() ? std::max(active[i], 0) : 0;
        int32_t b = best < active.size() ? std::max(active[best], 0) : 0;
        if (best == slots.size() || a < b || (a == b && slots[i].since_ms < slots[best].since_ms)) best = i;
      }
    }
    if (best == slots.size()) {
      plan.dropped.push_back(want[k].first);
      continue;
    }
    Member m = want[k].second;
    m.state = MemberState::Active;
    m.generation = slots[best].generation + 1;
    m.since_ms = now_ms;
    slots[best] = m;
    plan.added.push_back(want[k].first);
    plan.fresh.push_back(best);
    plan.changed = true;
  }
  return plan;
}

}  // namespace pasture::lb
