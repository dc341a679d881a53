// TLS session-ticket keys in shared memory (shm::TicketKeys): written by the
// master, read by every worker's ticket callback (worker/tls_context.h), so a
// ticket one worker issued resumes on any other. Plain data and a sequence
// lock; no OpenSSL types here beyond the random source.
#pragma once

#include <cstdint>

#include "common/shm_layout.h"

namespace pasture::shm {

// One ticket key as OpenSSL's ticket callback uses it: the name goes into the
// ticket in clear (it picks the key on the way back), AES-256-CBC encrypts,
// HMAC-SHA256 authenticates.
struct TicketKey {
  uint8_t name[16];
  uint8_t aes[32];
  uint8_t hmac[32];
};
static_assert(sizeof(TicketKey) == kTicketKeyWords * 8);

// Master: a fresh random key becomes current at `now_ms` (CLOCK_MONOTONIC),
// the current one previous (tickets it encrypted still resume until the
// next rotation). The first call on a zeroed block fills both keys. False if
// the random source failed (the keys are then unchanged).
bool rotate_ticket_keys(TicketKeys& block, uint64_t now_ms);

// Master, at a reload: the new region gets the old one's keys and the time
// the current one became current, so tickets issued before the reload resume
// after it and the key is still rotated when it is due (a reload does not
// postpone rotation).
void copy_ticket_keys(const TicketKeys& from, TicketKeys& to);

// Master: whether the current key became current `period_ms` or more before
// `now_ms` (false for a block never filled).
bool ticket_key_due(const TicketKeys& block, uint64_t now_ms, uint64_t period_ms);

// Any process: a consistent copy of both keys; keys[0] is current. False
// while the block was never filled (no ticket can be issued or accepted).
bool read_ticket_keys(const TicketKeys& block, TicketKey out[2]);

}  // namespace pasture::shm
