// Discovered pool members (issue 16): the records in shared memory
// (shm::MemberSlot) as plain values, how the one resolver process publishes
// them and how every worker reads them.
//
// A pool with discovery sources owns a fixed run of server slots after its
// static servers (conf::Pool::max_servers, HAProxy's server-template). Each
// slot is Empty, Active (a member: picks allowed) or Leaving (gone from the
// source: no new picks, requests in flight finish). A member that stays
// keeps its slot, so its health, counters and slow start stay with it; a new
// one takes a free slot, else a Leaving one at once (its requests in flight
// finish on their own connections: workers tell them apart by the slot's
// generation); a Leaving slot nobody took is Empty once nobody uses it
// (ServerSlot::active 0) and every worker has had time to see it leave.
// Identity is "ip:port" (Member::id), so hash tables and sticky cookies do
// not depend on which slot a member landed in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/shm_layout.h"

namespace pasture::lb {

enum class MemberState : uint32_t { Empty = 0, Active = 1, Leaving = 2 };

// The last resolve of a pool (shm::PoolSlot::resolve_word's low byte).
enum class ResolveResult : uint8_t { None = 0, Ok, Timeout, ServFail, NxDomain, Empty, Error };
const char* resolve_result_name(ResolveResult r);

struct Member {
  MemberState state = MemberState::Empty;
  bool v6 = false;
  uint8_t addr[16] = {};
  uint16_t port = 0;
  uint32_t weight = 1;
  bool backup = false;
  uint8_t source = 0;  // index into conf::Pool::sources
  uint32_t generation = 0;
  uint64_t since_ms = 0;

  // "10.0.0.5:8000", "[::1]:8000".
  std::string id() const;
  bool same_endpoint(const Member& o) const;
  // Parses an IP literal (no brackets) into v6/addr; false if it is none.
  bool set_ip(const std::string& ip);
};

// One record as it is now, without the sequence lock (the status page and
// admin commands: a torn read shows for one look at most).
Member read_member(const shm::MemberSlot& s);

// Reads the `n` records of a pool under its sequence lock: false (and *out
// untouched) while the resolver is writing or when it wrote meanwhile (try
// again at the next pick). *epoch gets the epoch read.
bool read_members(const shm::PoolSlot& pool, const shm::MemberSlot* slots, size_t n,
                  std::vector<Member>* out, uint64_t* epoch);

// The resolver, single writer: stores `members` into `slots` and publishes
// them (members_epoch odd while writing, then +2).
void write_members(shm::PoolSlot& pool, shm::MemberSlot* slots, const std::vector<Member>& members);

// What a membership change did, for the log line and the counters.
struct Plan {
  std::vector<std::string> added, removed;  // ids
  std::vector<std::string> dropped;         // wanted, but no slot was free (max_servers)
  std::vector<size_t> fresh;                // slots that took a new member: reset their ServerSlot
  bool changed = false;                     // `slots` differ from before
};

// Fits `wanted` (Active members, any order, duplicates allowed: the first of
// an id wins) into `slots`: a wanted member already in a slot stays there
// (its weight, tier and source updated; a Leaving one comes back); an
// Active one no longer wanted starts Leaving at now_ms; a Leaving one whose
// `active[i]` is 0 and who left at least `grace_ms` ago becomes Empty; the
// rest take Empty slots, never-used ones first, then Leaving ones (idle ones
// first, then the least busy), in a stable order (primaries first, then by
// id) so that every node keeps the same ones when they do not all fit. Pure:
// the caller publishes the result.
Plan plan_members(std::vector<Member>& slots, std::vector<Member> wanted, const std::vector<int32_t>& active,
                  uint64_t now_ms, uint64_t grace_ms);

}  // namespace pasture::lb
