#include "common/shm_layout.h"

#include <sys/mman.h>

#include <ctime>
#include <new>

namespace pasture::shm {

Region::~Region() {
  if (base_) munmap(base_, len_);
}

bool Region::create(const LayoutSizes& sizes) {
  size_t len = sizes.total();
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  base_ = p;
  len_ = len;
  sizes_ = sizes;
  // Anonymous mappings are zero-filled; construct the atomics in place so
  // their lifetime formally begins.
  auto* h = new (base_) ShmHeader{};
  h->magic = kMagic;
  h->version = kVersion;
  h->n_pools = sizes.n_pools;
  h->n_servers = sizes.n_servers;
  h->n_workers = sizes.n_workers;
  h->counters_since.store((uint64_t)time(nullptr));
  new (&tickets()) TicketKeys{};  // all zero: no key until common/ticket_keys.h fills them
  // The stats rows are left as mmap gave them (zero = every count 0): a
  // worker slot never used costs no memory.
  for (uint32_t i = 0; i < sizes.n_pools; i++) new (&pools()[i]) PoolSlot{};
  timespec mono{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  uint64_t now_ms = (uint64_t)mono.tv_sec * 1000 + (uint64_t)mono.tv_nsec / 1000000;
  for (uint32_t i = 0; i < sizes.n_servers; i++) {
    new (&servers()[i]) ServerSlot{};
    new (&members()[i]) MemberSlot{};
    servers()[i].last_change_ms.store(now_ms, std::memory_order_relaxed);
  }
  new (history().base) HistoryHeader{};
  for (uint32_t i = 0; i < sizes.n_workers; i++) {
    new (&workers()[i]) WorkerSlot{};
    for (uint32_t s = 0; s < sizes.n_servers; s++) new (&held(i)[s]) HeldCount{0};
  }
  return true;
}

namespace {

// Subtracts up to `n` from `a`, never going below zero.
void sub_clamped(std::atomic<int32_t>& a, int32_t n) {
  int32_t cur = a.load(std::memory_order_relaxed);
  while (cur > 0 && !a.compare_exchange_weak(cur, cur > n ? cur - n : 0, std::memory_order_release,
                                             std::memory_order_relaxed)) {
  }
}

}  // namespace

// The release orders keep the steps in program order (the compiler may not
// sink the first below the second): what matters is where a SIGKILL can fall.
void take_active(ServerSlot& server, HeldCount& held) {
  held.fetch_add(1, std::memory_order_relaxed);
  server.active.fetch_add(1, std::memory_order_release);
}

void release_active(ServerSlot& server, HeldCount& held) {
  sub_clamped(server.active, 1);
  held.fetch_sub(1, std::memory_order_release);
}

void drop_held(ServerSlot& server, HeldCount& held) {
  int32_t n = held.exchange(0, std::memory_order_acq_rel);
  if (n > 0) sub_clamped(server.active, n);
}

void Region::dont_fork() {
  if (base_) madvise(base_, len_, MADV_DONTFORK);
}

int64_t Region::reclaim_worker(uint32_t w) {
  int64_t returned = 0;
  HeldCount* row = held(w);
  for (uint32_t s = 0; s < sizes_.n_servers; s++) {
    int32_t n = row[s].exchange(0, std::memory_order_acquire);
    if (n <= 0) continue;
    sub_clamped(servers()[s].active, n);
    returned += n;
  }
  // Its counts stay in the totals: the retired row keeps them.
  fold_row(stats_row(w), retired_row(), sizes_.n_pools, sizes_.n_servers);
  WorkerSlot& slot = workers()[w];
  slot.pid.store(0, std::memory_order_relaxed);
  slot.connections.store(0, std::memory_order_relaxed);
  slot.requests.store(0, std::memory_order_relaxed);
  slot.heartbeat_ms.store(0, std::memory_order_relaxed);
  slot.share_paused.store(0, std::memory_order_relaxed);  // it may have died stepped aside (review 33)
  slot.waiting.store(0, std::memory_order_relaxed);     // it may have died waiting
  return returned;
}

}  // namespace pasture::shm
