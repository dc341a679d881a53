#include "common/shm_layout.h"

#include <sys/mman.h>

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
  for (uint32_t i = 0; i < sizes.n_pools; i++) new (&pools()[i]) PoolSlot{};
  for (uint32_t i = 0; i < sizes.n_servers; i++) new (&servers()[i]) ServerSlot{};
  for (uint32_t i = 0; i < sizes.n_workers; i++) new (&workers()[i]) WorkerSlot{};
  return true;
}

}  // namespace pasture::shm
