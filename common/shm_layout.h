// The shared-memory region: fixed layout, mapped by the master before fork.
//
// Everything that changes at run time and must be one decision across all
// workers lives here, as lock-free atomics. Slots are addressed by index
// (pool index, global server index, worker slot); never store pointers here:
// the region may be mapped at different addresses in other processes later
// (binary upgrade). Every hot atomic group gets its own cache line.
//
// Layout: [ShmHeader][TicketKeys][PoolSlot x n_pools][ServerSlot x n_servers]
//         [MemberSlot x n_servers][WorkerSlot x n_workers]
//         [held row x n_workers]: one row per worker slot of n_servers
//         std::atomic<int32_t>, each row padded to a multiple of 64 bytes (a
//         row is written by one process; padding keeps two workers' rows off
//         one cache line)
//         [stats rows x (n_workers + 1)]: traffic counters, one row per
//         worker slot plus the retired row (common/stats.h)
//         [history]: the status page's ring of samples (common/history.h)
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/history.h"
#include "common/stats.h"

namespace pasture::shm {

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<int32_t>::is_always_lock_free);

inline constexpr uint32_t kMagic = 0x50415354;  // "PAST"
// 2: ServerSlot health fields; 3: held rows; 4: stats rows; 5: runtime control
// (ServerSlot::control and weight_override, PoolSlot::weights_epoch,
// ShmHeader::drain_at_ms); 6: ServerSlot's health record (second line),
// WorkerSlot generation/respawns, the history ring; 7: TicketKeys; 8: WorkerStats of 3 lines (TLS, HTTP/2, tunnels), ShmHeader::superseded;
// 9: TicketKeys::current_since_ms; 10: membership (MemberSlot, PoolSlot::members_epoch & co)
inline constexpr uint32_t kVersion = 10;

struct ShmHeader {
  uint32_t magic;
  uint32_t version;
  uint32_t n_pools;
  uint32_t n_servers;
  uint32_t n_workers;
  // Set by the master when a reload has taken this region's counters over
  // (carry_over_state): from then on what this generation's workers count
  // reaches the new one only when they exit, so their views of the counters
  // would run ahead of the new workers' (totals going back between two
  // reads) and their writes would be lost: they refuse both until they exit.
  std::atomic<uint32_t> superseded;
  std::atomic<uint64_t> generation;  // (see above: superseded)  // the master's generation id: 1 at start, +1 per reload
  // `clear counters`: bumped by the master; each worker zeroes its own stats
  // row when it sees a new value (common/stats.h).
  std::atomic<uint64_t> clear_epoch;
  // CLOCK_REALTIME seconds when the counters began (start, or the last clear).
  std::atomic<uint64_t> counters_since;
  // `drain` (worker/admin_cmd.cc): CLOCK_MONOTONIC ms at which the master
  // stops gracefully; 0 = not draining. Every worker's /ready answers 503
  // while it is set; the master acts on it on its tick.
  std::atomic<uint64_t> drain_at_ms;
  // One past the highest worker slot the master has forked into in this
  // generation (spawn): a worker's accept balance (shm::share_view)
  // looks at slots 0..this-1, so workers added by TTIN after it started are
  // seen (review 35 M-2). In what was padding: 0 to a reader that does not
  // know it.
  std::atomic<uint32_t> worker_slots_used;
};
static_assert(sizeof(ShmHeader) <= 64);

// TLS session-ticket keys (common/ticket_keys.h), shared so that a client
// resumes on any worker: the master writes them (at start, then rotated once
// the current key is a rotation period old, carried over a reload with their
// age), every worker reads them in its ticket callback. Two keys: `current`
// encrypts new tickets, both decrypt. A sequence lock guards the words: the
// writer makes `seq` odd, stores, makes it even; a reader retries while it
// is odd or changed. Every word is an atomic so that the racing reads are
// not undefined behaviour.
inline constexpr size_t kTicketKeyWords = 10;  // 16-byte name + 32-byte AES key + 32-byte HMAC key
struct alignas(64) TicketKeys {
  std::atomic<uint64_t> seq;
  std::atomic<uint32_t> current;  // 0 or 1: index into keys of the encrypting key
  std::atomic<uint32_t> rotations;  // how many times the master rotated (for tests and status)
  // CLOCK_MONOTONIC ms at which keys[current] became current. Carried with
  // the keys over a reload, so that the rotation schedule does not restart
  // with each generation (the master rotates on this age). Master only.
  std::atomic<uint64_t> current_since_ms;
  std::atomic<uint64_t> keys[2][kTicketKeyWords];
};
static_assert(sizeof(TicketKeys) == 192);

// Per pool. Written by every worker on every pick.
struct alignas(64) PoolSlot {
  std::atomic<uint64_t> rr_cursor;  // position in the pool's smooth-WRR schedule
  std::atomic<uint64_t> picks;      // total picks (for stats)
  std::atomic<uint64_t> rng_state;  // shared seed for randomised methods
  // Round robin over the backup servers: apart from rr_cursor so that the
  // primaries' walk (which takes a position even when all are down) does
  // not skew the backups' rotation.
  std::atomic<uint64_t> backup_cursor;
  // Bumped (release) after a server's weight_override changed: each worker
  // rebuilds its weighted tables when it sees a new value (PoolState::sync_weights).
  std::atomic<uint64_t> weights_epoch;
  // Discovery (master/resolver.h), written only by the pool's resolver
  // process. members_epoch is the sequence lock of the pool's MemberSlots:
  // odd while the resolver writes them, +2 per published change; a worker
  // rebuilds its tables and addresses when it sees a new even value
  // (PoolState::sync_members). member_changes counts members added and
  // removed; resolve_word is the last resolve: (monotonic ms << 8) | lb::ResolveResult.
  std::atomic<uint64_t> members_epoch;
  std::atomic<uint64_t> member_changes;
  std::atomic<uint64_t> resolve_word;
};
static_assert(sizeof(PoolSlot) == 64);

// A discovered member in a server slot reserved for one (conf::Pool::
// max_servers): indexed like ServerSlot, unused (Empty) for static servers.
// Written only by the resolver process, under its pool's members_epoch;
// every field is an atomic so that racing reads are defined (read with
// lb::read_members). `word`: state (bits 0-1, lb::MemberState), kMemberV6,
// kMemberBackup, the source's index in conf::Pool::sources (bits 8-15).
struct MemberSlot {
  std::atomic<uint32_t> word;
  std::atomic<uint32_t> port;
  std::atomic<uint32_t> weight;
  std::atomic<uint32_t> generation;  // +1 each time the slot takes a new member; 0 = never used
  std::atomic<uint32_t> addr[4];     // network byte order; 4 bytes used for IPv4
  std::atomic<uint64_t> since_ms;    // monotonic ms it joined, or began leaving
};
static_assert(sizeof(MemberSlot) == 40);
inline constexpr uint32_t kMemberV6 = 1u << 2;
inline constexpr uint32_t kMemberBackup = 1u << 3;

// Server health flags (ServerSlot::flags).
inline constexpr uint32_t kServerDown = 1u << 0;  // marked down by active health checks

// Runtime control of a server (ServerSlot::control), written by the admin
// commands (worker/admin_cmd.cc, any worker) with fetch_and/fetch_or and read
// by every balancer with one relaxed load: a command takes effect in every
// worker at the next pick. Bits 0-1: admin state; bits 2-3: forced health;
// bit 4: active health checks disabled.
enum class AdminState : uint32_t { Ready = 0, Drain = 1, Maint = 2 };
enum class ForcedHealth : uint32_t { None = 0, Up = 1, Down = 2 };
inline constexpr uint32_t kAdminStateMask = 3u;
inline constexpr unsigned kForcedHealthShift = 2;
inline constexpr uint32_t kForcedHealthMask = 3u << kForcedHealthShift;
inline constexpr uint32_t kChecksDisabled = 1u << 4;
inline AdminState admin_state(uint32_t control) { return AdminState(control & kAdminStateMask); }
inline ForcedHealth forced_health(uint32_t control) {
  return ForcedHealth((control & kForcedHealthMask) >> kForcedHealthShift);
}

// Per upstream server, indexed globally (pool.first_server + i).
// Health fields (see common/health_state.h for the protocols): `flags`
// kServerDown is written only by the pool's health-checker process;
// down_until_ms and fail_window by any worker (passive checks, CAS);
// recovered_at_ms by whichever process brings the server back up.
// All times are CLOCK_MONOTONIC milliseconds (uv_now() in the workers).
struct alignas(64) ServerSlot {
  std::atomic<int32_t> active;      // requests in flight, all workers
  std::atomic<uint32_t> flags;      // kServer*
  std::atomic<uint64_t> requests;   // total requests sent
  std::atomic<uint64_t> failures;   // connect errors, timeouts, fail_on statuses
  std::atomic<uint64_t> down_until_ms;  // passive health: unusable before this; 0 = not down
  // Passive health: the current failure window, (start_ms << kFailCountBits) | count;
  // 0 = no failure counted.
  std::atomic<uint64_t> fail_window;
  // Slow start: when the server last came back up (0 = never went down);
  // its weight ramps from 0 over slow_start after this instant.
  std::atomic<uint64_t> recovered_at_ms;
  // Runtime control: admin state, forced health, checks off (kAdminStateMask & co).
  std::atomic<uint32_t> control;
  // `set weight`: the weight the balancers use instead of the configured
  // one; 0 = none. Written before PoolSlot::weights_epoch is bumped.
  std::atomic<uint32_t> weight_override;

  // ---- The health record (status app): its own cache line, written only
  // at a probe or a down/up transition, never on the request path.
  // Why the server is down: (since_ms << 2) | kDownActive | kDownPassive; 0 =
  // up. Changed only by CAS (lb::mark_down / lb::mark_up): the caller whose
  // CAS takes the reasons from 0 to non-zero made the up->down transition,
  // the one taking them back to 0 the down->up one.
  alignas(64) std::atomic<uint64_t> down_word;
  std::atomic<uint64_t> down_transitions;  // up->down transitions (active or passive)
  std::atomic<uint64_t> downtime_ms;       // finished down periods, summed
  std::atomic<uint64_t> last_change_ms;    // last transition (or when the region was made)
  // The health checker's (single writer) last probe: lb::CheckResult packed,
  // see lb::pack_check(); 0 = not probed yet.
  std::atomic<uint64_t> last_check;
  // The health checker's consecutive results: ok | fail << 32.
  std::atomic<uint64_t> check_progress;
};
static_assert(sizeof(ServerSlot) == 128);
inline constexpr uint64_t kDownActive = 1;   // ServerSlot::down_word: kServerDown is set
inline constexpr uint64_t kDownPassive = 2;  // ServerSlot::down_word: down_until_ms is set
inline constexpr unsigned kFailCountBits = 20;  // ServerSlot::fail_window: count field width

// Per worker slot (not per pid). The master gives a slot to one process at a
// time: a slot is free again only once its process has been reaped and
// Region::reclaim_worker() has run. Written by the worker in the slot.
struct alignas(64) WorkerSlot {
  std::atomic<int32_t> pid;
  std::atomic<uint32_t> connections;  // open client connections
  std::atomic<uint64_t> requests;     // requests served
  std::atomic<uint64_t> heartbeat_ms; // monotonic ms of the worker's last loop tick
  // Written by the master at fork: the generation the process was forked
  // for, and how many times this slot's process was forked again after it
  // died or was recycled (this generation; kept when the slot is reclaimed).
  std::atomic<uint64_t> generation;
  std::atomic<uint32_t> respawns;
  // 1 while the worker has stepped aside from accepting because it holds
  // more than its share (shm::share_view, Worker::balance), or is draining or
  // not accepting yet. In what was padding, and 0 (not paused) to a reader that does not
  // know it; cleared with the slot (reclaim_worker).
  std::atomic<uint32_t> share_paused;
  // 1 while the worker blocks in epoll_wait with the shared listeners in
  // its set: kicked, it takes a connection at once (Worker::balance steps
  // aside with connections still queued only then). 0 while it runs a
  // turn, an app call, or has stopped accepting. Also in what was padding.
  std::atomic<uint32_t> waiting;
};
static_assert(sizeof(WorkerSlot) == 64);

// Held counts: row w, column s is how many of ServerSlot s's `active` the
// process in worker slot w holds. Only that process writes its row while it
// lives; once it is reaped the master gives the counts back (nobody else
// could: the worker's decrement died with it). See take_active().
using HeldCount = std::atomic<int32_t>;

inline size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

struct LayoutSizes {
  uint32_t n_pools = 0, n_servers = 0, n_workers = 0;
  size_t tickets_off() const { return align64(sizeof(ShmHeader)); }
  size_t pools_off() const { return tickets_off() + sizeof(TicketKeys); }
  size_t servers_off() const { return pools_off() + n_pools * sizeof(PoolSlot); }
  size_t members_off() const { return servers_off() + n_servers * sizeof(ServerSlot); }
  size_t workers_off() const { return align64(members_off() + n_servers * sizeof(MemberSlot)); }
  size_t held_off() const { return workers_off() + n_workers * sizeof(WorkerSlot); }
  size_t held_row_bytes() const { return align64(n_servers * sizeof(HeldCount)); }
  size_t stats_off() const { return align64(held_off() + n_workers * held_row_bytes()); }
  StatsSizes stats() const { return {n_pools, n_servers, n_workers}; }
  size_t history_off() const { return align64(stats_off() + stats().total()); }
  HistorySizes history() const { return {1 + n_pools + n_servers}; }
  size_t total() const { return history_off() + history().total(); }
};

// A worker counts one request against `server` (take) or ends it (release),
// `held` being its own count for that server. Own count first on take and
// last on release: a process killed between the two steps holds at most one
// count more than it added to `active`, never less. The master returns the
// held counts clamped at zero, and release never takes `active` below zero,
// so such an over-return heals once the server is idle; the other order
// would leak a count for good (max_conns would stay full).
void take_active(ServerSlot& server, HeldCount& held);
void release_active(ServerSlot& server, HeldCount& held);
// A discovery slot another member took: everything the worker holds there
// leaves `active` (the requests go on, for the old member, uncounted), so
// the newcomer's max_conns and least_conn start from its own requests.
// Held first, `active` last, as release does.
void drop_held(ServerSlot& server, HeldCount& held);

// A mapped region. Create once in the master (before fork); children inherit
// the mapping. Not copyable; unmaps on destruction.
class Region {
 public:
  Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();

  // mmap(MAP_SHARED|MAP_ANONYMOUS) and initialise. Returns false (errno set)
  // on failure.
  bool create(const LayoutSizes& sizes);

  ShmHeader& header() { return *static_cast<ShmHeader*>(base_); }
  TicketKeys& tickets() { return *reinterpret_cast<TicketKeys*>(at(sizes_.tickets_off())); }
  PoolSlot* pools() { return reinterpret_cast<PoolSlot*>(at(sizes_.pools_off())); }
  ServerSlot* servers() { return reinterpret_cast<ServerSlot*>(at(sizes_.servers_off())); }
  MemberSlot* members() { return reinterpret_cast<MemberSlot*>(at(sizes_.members_off())); }
  WorkerSlot* workers() { return reinterpret_cast<WorkerSlot*>(at(sizes_.workers_off())); }
  // Worker slot w's held row, indexed by global server index.
  HeldCount* held(uint32_t w) {
    return reinterpret_cast<HeldCount*>(at(sizes_.held_off() + w * sizes_.held_row_bytes()));
  }
  // Master only, after the process in worker slot `w` was reaped and before
  // the slot is given to another: returns what it held to the servers'
  // `active` (clamped at zero) and clears its row and gauges. Returns the
  // number of requests it held.
  int64_t reclaim_worker(uint32_t w);
  // Worker slot w's stats row; w == n_workers is the retired row.
  StatsRow stats_row(uint32_t w) {
    return {at(sizes_.stats_off() + w * sizes_.stats().row_bytes()), sizes_.n_pools};
  }
  StatsRow retired_row() { return stats_row(sizes_.n_workers); }
  HistoryRing history() { return {at(sizes_.history_off()), sizes_.history().n_series}; }
  const LayoutSizes& sizes() const { return sizes_; }
  // A replaced generation's region: processes forked from now on do not
  // inherit it (madvise MADV_DONTFORK).
  void dont_fork();
  bool valid() const { return base_ != nullptr; }

 private:
  char* at(size_t off) { return static_cast<char*>(base_) + off; }
  void* base_ = nullptr;
  size_t len_ = 0;
  LayoutSizes sizes_;
};

}  // namespace pasture::shm
