#include "common/accept_share.h"

#include <algorithm>

namespace pasture::shm {

// Keep-alive connections live long, so whoever accepts them carries their
// load: a worker holding clearly more than its share (fair + 2, or + 1/16)
// steps aside for a moment and lets the others accept (the idea of nginx's
// accept_mutex, with the counts from shared memory).
ShareView share_view(const WorkerSlot* slots, int n, const WorkerSlot* self, uint64_t mine, uint64_t now_ms,
                     bool others) {
  ShareView v;
  if (n <= 1) return v;
  // Live slots only: TTOU retires workers without telling the others, and
  // a reaped slot holds pid 0 (review 34: counting all n_workers_, every
  // survivor stepped aside at once and nobody accepted). A draining worker
  // accepts nothing: it counts as aside (start_drain sets its flag), as does
  // one not accepting yet (worker::run sets it, start_accepting clears it).
  uint64_t total = 0;
  int live = 0, aside = 0;
  for (int i = 0; i < n; i++) {
    const WorkerSlot& w = slots[i];
    if (w.pid.load(std::memory_order_relaxed) == 0) continue;
    live++;
    if (&w != self) aside += w.share_paused.load(std::memory_order_relaxed) != 0;
    total += w.connections.load(std::memory_order_relaxed);
  }
  if (live <= 1) return v;
  uint64_t fair = total / live;
  uint64_t margin = std::max<uint64_t>(2, fair / 16);
  if (others) {
    // Who would take a connection if kicked now (Worker::balance hands the
    // rest of a queue over only then): one waiting in epoll_wait whose loop
    // ticked lately (a worker stopped there, SIGSTOP or a debugger, keeps
    // its flag: review 55 L-1), accepting, or aside but within its share,
    // since one over it ignores the kick (Worker::on_kick): with 3 workers,
    // one blocked in its app or draining, the other two handed the queue to
    // each other and both stood aside (M-1).
    for (int i = 0; i < n; i++) {
      const WorkerSlot& w = slots[i];
      if (&w == self || w.pid.load(std::memory_order_relaxed) == 0 || !w.waiting.load(std::memory_order_relaxed))
        continue;
      uint64_t beat = w.heartbeat_ms.load(std::memory_order_relaxed);
      if (!beat || now_ms > beat + kWaitingStaleMs) continue;
      if (!w.share_paused.load(std::memory_order_relaxed))
        v.accepting = true;
      else if (w.connections.load(std::memory_order_relaxed) <= fair + margin)
        v.aside = true;
    }
  }
  if (mine > fair + margin) v.share = aside >= live - 1 ? Share::kOverAlone : Share::kOver;
  return v;
}

}  // namespace pasture::shm
