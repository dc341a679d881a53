// The accept step-aside's view of the workers (Worker::balance): whether a
// worker holds more than its share of the workers' open connections, and
// who else would take a connection if kicked now. Read from the WorkerSlots
// in shared memory with relaxed loads: a stale view costs a 2 ms pause at
// most, never a connection.
#pragma once

#include <cstdint>

#include "common/shm_layout.h"

namespace pasture::shm {

// kOver: more than its share of the open connections, to step aside;
// kOverAlone: so, but every other live worker is aside.
enum class Share { kFair, kOver, kOverAlone };

struct ShareView {
  Share share = Share::kFair;
  // Another worker waits in epoll_wait (WorkerSlot::waiting) and would take
  // a connection if kicked: accepting, or aside but within its share.
  bool accepting = false, aside = false;
};

// A worker waiting in epoll_wait ticks every 100 ms (Timers::kTickMs): one
// whose last tick is older is not there to take a kick.
inline constexpr uint64_t kWaitingStaleMs = 300;

// slots[0..n): the slots forked into; self: the caller's, holding `mine`
// connections; now_ms: the loops' clock (uv_now), as heartbeat_ms;
// others: fill ShareView::accepting and ::aside.
ShareView share_view(const WorkerSlot* slots, int n, const WorkerSlot* self, uint64_t mine, uint64_t now_ms,
                     bool others);

}  // namespace pasture::shm
