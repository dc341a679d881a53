// Server health in shared memory: the pure, lock-free rules shared by the
// workers (passive checks, slow start) and the health-checker process
// (active checks). No I/O, no clock: every function takes `now_ms`
// (CLOCK_MONOTONIC milliseconds, the clock of uv_now()), so tests inject it.
//
// Three independent ways a server is out of rotation (PoolState::usable()):
//  - passive (nginx max_fails/fail_timeout): max_fails failures within
//    fail_timeout set ServerSlot::down_until_ms = now + fail_timeout; any
//    worker may do it, a CAS decides which one;
//  - active (HAProxy check rise/fall): the pool's single health-checker
//    process sets/clears ServerSlot::flags kServerDown;
//  - config (`down`), outside shared memory.
// A server starts up (flags 0, no failure window): a fresh start serves at
// once and health checks take it out only after evidence.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/shm_layout.h"

namespace pasture::lb {

// ---- Passive checks ------------------------------------------------------

// Counts one failed attempt on the server behind `slot`: a connect error, a
// timeout, or a response status listed in the pool's fail_on. Also bumps
// ServerSlot::failures (the statistic). The first failure opens a window of
// fail_timeout_ms; the max_fails-th failure inside it marks the server down
// until now + fail_timeout_ms (down_until_ms), records that instant as
// recovered_at_ms (slow start) and closes the window. A failure after the
// window expired opens a new one. max_fails == 0 never marks the server down.
// Failures while the server is already down (passively or by an active
// check) are not counted: they are requests that were in flight.
//
// Lock-free (one CAS loop on fail_window), safe from any process. Returns
// true in exactly one caller per down transition: that caller logs it.
bool record_failure(shm::ServerSlot& slot, uint32_t max_fails, uint32_t fail_timeout_ms,
                    uint64_t now_ms);

// A request to the server got a response whose status is not in fail_on.
// Returns true in exactly one caller when this is the first success after a
// passive down period ended (the server is back: log it once); clears
// down_until_ms then. One relaxed load when the server was never down.
// Successes do not reset the failure window (nginx: N failures within S).
bool record_success(shm::ServerSlot& slot, uint64_t now_ms);

// record_failure() / record_success() plus the transition's one log line,
// e.g. "pool app:main: server 10.0.0.1:80 down for 10s (passive: 1 failure
// within 10s, last: connect: Connection refused)" (PLOG_WARN) and "pool
// app:main: server 10.0.0.1:80 up (passive: request succeeded after
// fail_timeout)" (PLOG_NOTICE).
bool note_failure(shm::ServerSlot& slot, uint32_t max_fails, uint32_t fail_timeout_ms,
                  uint64_t now_ms, std::string_view pool, std::string_view server,
                  std::string_view reason);
bool note_success(shm::ServerSlot& slot, uint64_t now_ms, std::string_view pool,
                  std::string_view server);

// ---- Slow start ----------------------------------------------------------

// 1.0 in slow_start_ramp()'s fixed point.
inline constexpr uint32_t kRampOne = 1u << 16;

// The fraction of its weight a server gets `now_ms`, in 1/65536: 0 at
// recovered_at_ms, rising linearly to kRampOne at recovered_at_ms +
// slow_start_ms; kRampOne when slow_start_ms or recovered_at_ms is 0 (the
// server never went down) and 0 before recovered_at_ms (still down).
uint32_t slow_start_ramp(uint64_t recovered_at_ms, uint32_t slow_start_ms, uint64_t now_ms);

// `weight` scaled by the ramp, rounded up (HAProxy's eweight): 0 only at
// recovered_at_ms itself, `weight` once the ramp is over.
uint32_t effective_weight(uint32_t weight, uint64_t recovered_at_ms, uint32_t slow_start_ms,
                          uint64_t now_ms);

// Admission of a ramping server by one uniform 64-bit `coin` (a random draw
// or a hash): true with probability ramp / kRampOne. The algorithms skip a
// ramping server when this says no, so its share of picks is its weight
// times the ramp.
inline bool ramp_admits(uint32_t ramp, uint64_t coin) { return (coin >> 48) < ramp; }

// ---- Active checks -------------------------------------------------------

// Consecutive probe results of one server, kept by the health checker.
struct ProbeCounts {
  uint32_t ok = 0;
  uint32_t fail = 0;
};

enum class Transition { None, Down, Up };

// Applies one probe result with rise/fall hysteresis: `fall` consecutive
// failures set kServerDown, `rise` consecutive successes clear it (and set
// recovered_at_ms = now_ms first, so slow start begins). Call only from the
// one process that owns the pool's active checks.
Transition apply_probe(shm::ServerSlot& slot, ProbeCounts& counts, bool ok, uint32_t rise,
                       uint32_t fall, uint64_t now_ms);

// ---- The health record (status app) --------------------------------------
//
// A server is down, for the record, while an active check holds it down
// (kServerDown) or a passive mark-down stands (down_until_ms set: from the
// max_fails-th failure until a request succeeds after fail_timeout, or
// `rise` good probes): ServerSlot::down_word's two reasons. The writer whose
// CAS takes the reasons from none to some counts the up->down transition;
// the one taking them back to none adds the period to downtime_ms. Any
// process may call these (the health checker, the CAS winner of a passive
// transition); each transition is counted exactly once.

// Adds `reason` (shm::kDownActive or kDownPassive); true when the server
// went down with it.
bool mark_down(shm::ServerSlot& slot, uint64_t reason, uint64_t now_ms);
// Removes `reason`; true when the server is up again.
bool mark_up(shm::ServerSlot& slot, uint64_t reason, uint64_t now_ms);
// Finished down periods plus the current one, if any.
uint64_t total_downtime_ms(const shm::ServerSlot& slot, uint64_t now_ms);
inline bool down_for_record(uint64_t down_word) { return down_word & (shm::kDownActive | shm::kDownPassive); }

// What decided a probe.
enum class CheckReason : uint8_t {
  None,     // not probed yet
  Status,   // a status line: `code` in or out of health_status
  Connect,  // socket() or connect() failed (refused, unreachable)
  Timeout,  // no status line within health_timeout
  Closed,   // the server closed before a whole status line
  Invalid,  // not an HTTP/1.x status line, or one too long
  Io,       // send() or recv() failed
  Tls,      // an https:// server: the TLS handshake failed (its certificate did not verify, ...)
};
const char* check_reason_name(CheckReason r);

struct CheckResult {
  bool probed = false;
  bool ok = false;
  CheckReason reason = CheckReason::None;
  uint16_t code = 0;          // 0: no status line
  uint32_t duration_ms = 0;   // connect to verdict
};
// ServerSlot::last_check: [probed ok][reason][code:16][duration_ms:32].
uint64_t pack_check(const CheckResult& c);
CheckResult unpack_check(uint64_t v);

// The health checker (the slot's single writer of these) stores a probe's
// result and its consecutive counts after apply_probe().
void record_probe(shm::ServerSlot& slot, const CheckResult& c, const ProbeCounts& counts);
ProbeCounts probe_progress(const shm::ServerSlot& slot);

// ---- Status lists ---------------------------------------------------------

// Inclusive [lo, hi] status ranges, as conf::Pool stores health_status and fail_on.
using StatusRanges = std::vector<std::pair<uint16_t, uint16_t>>;

// "200-399", "200 204 301-302", "500,502-504": codes 100-599, separated by
// spaces or commas, lo <= hi. On error returns false and says why in *err.
bool parse_status_ranges(std::string_view text, StatusRanges* out, std::string* err);

bool status_in(const StatusRanges& ranges, int status);

// Formats ranges back: "200-399", "502 503 504".
std::string format_status_ranges(const StatusRanges& ranges);

// "10s", "500ms", "1.5s": a duration for log lines.
std::string format_ms(uint64_t ms);

}  // namespace pasture::lb
