#include "common/ticket_keys.h"

#include <openssl/rand.h>

#include <cstring>

namespace pasture::shm {

namespace {

void store_key(std::atomic<uint64_t> (&words)[kTicketKeyWords], const TicketKey& k) {
  uint64_t w[kTicketKeyWords];
  memcpy(w, &k, sizeof w);
  for (size_t i = 0; i < kTicketKeyWords; i++) words[i].store(w[i], std::memory_order_relaxed);
}

void load_key(const std::atomic<uint64_t> (&words)[kTicketKeyWords], TicketKey* k) {
  uint64_t w[kTicketKeyWords];
  for (size_t i = 0; i < kTicketKeyWords; i++) w[i] = words[i].load(std::memory_order_relaxed);
  memcpy(k, w, sizeof w);
}

// The writer's half of the sequence lock: seq odd while the words change.
// Only the master writes, so no compare-and-swap is needed.
template <class F>
void write_locked(TicketKeys& block, F&& f) {
  uint64_t s = block.seq.load(std::memory_order_relaxed);
  block.seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // seq odd before any word changes
  f();
  block.seq.store(s + 2, std::memory_order_release);  // the words before seq even again
}

}  // namespace

bool rotate_ticket_keys(TicketKeys& block, uint64_t now_ms) {
  TicketKey fresh[2];
  if (RAND_bytes(reinterpret_cast<unsigned char*>(fresh), sizeof fresh) != 1) return false;
  bool empty = block.seq.load(std::memory_order_relaxed) == 0;
  write_locked(block, [&] {
    uint32_t next = empty ? 0 : 1 - block.current.load(std::memory_order_relaxed);
    store_key(block.keys[next], fresh[0]);
    if (empty) store_key(block.keys[1], fresh[1]);
    block.current.store(next, std::memory_order_relaxed);
    block.current_since_ms.store(now_ms, std::memory_order_relaxed);
    if (!empty) block.rotations.fetch_add(1, std::memory_order_relaxed);
  });
  return true;
}

void copy_ticket_keys(const TicketKeys& from, TicketKeys& to) {
  TicketKey k[2];
  if (!read_ticket_keys(from, k)) return;
  write_locked(to, [&] {
    store_key(to.keys[0], k[0]);
    store_key(to.keys[1], k[1]);
    to.current.store(0, std::memory_order_relaxed);
    to.rotations.store(from.rotations.load(std::memory_order_relaxed), std::memory_order_relaxed);
    to.current_since_ms.store(from.current_since_ms.load(std::memory_order_relaxed), std::memory_order_relaxed);
  });
}

bool ticket_key_due(const TicketKeys& block, uint64_t now_ms, uint64_t period_ms) {
  if (block.seq.load(std::memory_order_relaxed) == 0) return false;
  return now_ms >= block.current_since_ms.load(std::memory_order_relaxed) + period_ms;
}

bool read_ticket_keys(const TicketKeys& block, TicketKey out[2]) {
  for (;;) {
    uint64_t s1 = block.seq.load(std::memory_order_acquire);
    if (s1 == 0) return false;
    if (s1 & 1) continue;  // the master is writing: a few stores, retry
    uint32_t cur = block.current.load(std::memory_order_relaxed) & 1;
    load_key(block.keys[cur], &out[0]);
    load_key(block.keys[1 - cur], &out[1]);
    std::atomic_thread_fence(std::memory_order_acquire);  // the words before the second look at seq
    if (block.seq.load(std::memory_order_relaxed) == s1) return true;
  }
}

}  // namespace pasture::shm
