// Memory orders: the health words only decide whether a server is picked;
// no other data is published through them, so relaxed loads suffice on the
// pick path. The CASes make each transition happen in exactly one caller.
#include "common/health_state.h"

#include <cstdio>

#include "common/log.h"

namespace pasture::lb {
namespace {

constexpr uint64_t kCountMask = (uint64_t{1} << shm::kFailCountBits) - 1;

std::string sv(std::string_view s) { return std::string(s); }

}  // namespace

bool record_failure(shm::ServerSlot& slot, uint32_t max_fails, uint32_t fail_timeout_ms,
                    uint64_t now_ms) {
  slot.failures.fetch_add(1, std::memory_order_relaxed);
  if (max_fails == 0) return false;
  if (slot.flags.load(std::memory_order_relaxed) & shm::kServerDown) return false;
  uint64_t until = slot.down_until_ms.load(std::memory_order_relaxed);
  if (until != 0 && now_ms < until) return false;
  uint64_t old = slot.fail_window.load(std::memory_order_relaxed), next, count;
  do {
    uint64_t start = old >> shm::kFailCountBits;
    count = old & kCountMask;
    if (count == 0 || now_ms >= start + fail_timeout_ms) {
      start = now_ms, count = 1;  // the first failure, or the window expired: a new window
    } else if (count < kCountMask) {
      count++;
    }
    next = (start << shm::kFailCountBits) | count;
  } while (!slot.fail_window.compare_exchange_weak(old, next, std::memory_order_relaxed));
  if (count != max_fails) return false;
  // The max_fails-th failure of this window. Another process may have marked
  // the server down since we read down_until_ms (its window was reset, so
  // ours restarted at 1): the CAS from the value we saw lets one of us win.
  uint64_t new_until = now_ms + (fail_timeout_ms ? fail_timeout_ms : 1);
  if (!slot.down_until_ms.compare_exchange_strong(until, new_until, std::memory_order_relaxed))
    return false;
  slot.recovered_at_ms.store(new_until, std::memory_order_relaxed);
  slot.fail_window.store(0, std::memory_order_relaxed);
  // From `until` == 0 this is a new down period; from an expired `until`
  // no request has succeeded since: the same one goes on (mark_down finds
  // kDownPassive still set).
  mark_down(slot, shm::kDownPassive, now_ms);
  return true;
}

bool record_success(shm::ServerSlot& slot, uint64_t now_ms) {
  uint64_t until = slot.down_until_ms.load(std::memory_order_relaxed);
  if (until == 0 || now_ms < until) return false;
  if (!slot.down_until_ms.compare_exchange_strong(until, 0, std::memory_order_relaxed)) return false;
  mark_up(slot, shm::kDownPassive, now_ms);
  return true;
}

bool note_failure(shm::ServerSlot& slot, uint32_t max_fails, uint32_t fail_timeout_ms,
                  uint64_t now_ms, std::string_view pool, std::string_view server,
                  std::string_view reason) {
  if (!record_failure(slot, max_fails, fail_timeout_ms, now_ms)) return false;
  std::string ft = format_ms(fail_timeout_ms);
  PLOG_WARN("pool %s: server %s down for %s (passive: %u failure%s within %s, last: %s)",
            sv(pool).c_str(), sv(server).c_str(), ft.c_str(), max_fails, max_fails == 1 ? "" : "s",
            ft.c_str(), sv(reason).c_str());
  return true;
}

bool note_success(shm::ServerSlot& slot, uint64_t now_ms, std::string_view pool,
                  std::string_view server) {
  if (!record_success(slot, now_ms)) return false;
  PLOG_NOTICE("pool %s: server %s up (passive: request succeeded after fail_timeout)",
              sv(pool).c_str(), sv(server).c_str());
  return true;
}

uint32_t slow_start_ramp(uint64_t recovered_at_ms, uint32_t slow_start_ms, uint64_t now_ms) {
  if (slow_start_ms == 0 || recovered_at_ms == 0) return kRampOne;
  if (now_ms < recovered_at_ms) return 0;
  uint64_t elapsed = now_ms - recovered_at_ms;
  if (elapsed >= slow_start_ms) return kRampOne;
  return (uint32_t)(elapsed * kRampOne / slow_start_ms);
}

uint32_t effective_weight(uint32_t weight, uint64_t recovered_at_ms, uint32_t slow_start_ms,
                          uint64_t now_ms) {
  if (slow_start_ms == 0 || recovered_at_ms == 0) return weight;
  if (now_ms < recovered_at_ms) return 0;
  uint64_t elapsed = now_ms - recovered_at_ms;
  if (elapsed >= slow_start_ms) return weight;
  return (uint32_t)(((uint64_t)weight * elapsed + slow_start_ms - 1) / slow_start_ms);
}

Transition apply_probe(shm::ServerSlot& slot, ProbeCounts& counts, bool ok, uint32_t rise,
                       uint32_t fall, uint64_t now_ms) {
  bool down = slot.flags.load(std::memory_order_relaxed) & shm::kServerDown;
  if (ok) {
    counts.fail = 0;
    if (counts.ok < UINT32_MAX) counts.ok++;
    // `rise` good probes are evidence enough to end a passive mark-down too
    // (a hung server that recovers should not sit out its fail_timeout), or
    // to confirm one whose fail_timeout is over that no request has yet.
    uint64_t until = slot.down_until_ms.load(std::memory_order_relaxed);
    bool passive_down = until > now_ms;
    if ((!down && until == 0) || counts.ok < rise) return Transition::None;
    // recovered_at_ms first: a worker that sees the server up sees its ramp.
    if (down || passive_down) slot.recovered_at_ms.store(now_ms, std::memory_order_relaxed);
    if (until != 0 && slot.down_until_ms.compare_exchange_strong(until, 0, std::memory_order_relaxed))
      mark_up(slot, shm::kDownPassive, now_ms);
    if (down) {
      slot.flags.fetch_and(~shm::kServerDown, std::memory_order_release);
      mark_up(slot, shm::kDownActive, now_ms);
    }
    return down || passive_down ? Transition::Up : Transition::None;
  }
  counts.ok = 0;
  if (counts.fail < UINT32_MAX) counts.fail++;
  if (down || counts.fail < fall) return Transition::None;
  slot.flags.fetch_or(shm::kServerDown, std::memory_order_release);
  mark_down(slot, shm::kDownActive, now_ms);
  return Transition::Down;
}

namespace {

constexpr uint64_t kReasons = shm::kDownActive | shm::kDownPassive;

// last_change_ms only moves forward (two transitions in two processes may
// store out of order).
void note_change(shm::ServerSlot& slot, uint64_t now_ms) {
  uint64_t old = slot.last_change_ms.load(std::memory_order_relaxed);
  while (old < now_ms && !slot.last_change_ms.compare_exchange_weak(old, now_ms, std::memory_order_relaxed)) {
  }
}

}  // namespace

bool mark_down(shm::ServerSlot& slot, uint64_t reason, uint64_t now_ms) {
  uint64_t old = slot.down_word.load(std::memory_order_relaxed), next;
  do {
    if (old & reason) return false;
    next = old & kReasons ? old | reason : (now_ms << 2) | reason;
  } while (!slot.down_word.compare_exchange_weak(old, next, std::memory_order_relaxed));
  if (old & kReasons) return false;
  slot.down_transitions.fetch_add(1, std::memory_order_relaxed);
  note_change(slot, now_ms);
  return true;
}

bool mark_up(shm::ServerSlot& slot, uint64_t reason, uint64_t now_ms) {
  uint64_t old = slot.down_word.load(std::memory_order_relaxed), next;
  do {
    if (!(old & reason)) return false;
    next = old & ~reason;
    if (!(next & kReasons)) next = 0;
  } while (!slot.down_word.compare_exchange_weak(old, next, std::memory_order_relaxed));
  if (next != 0) return false;
  uint64_t since = old >> 2;
  slot.downtime_ms.fetch_add(now_ms > since ? now_ms - since : 0, std::memory_order_relaxed);
  note_change(slot, now_ms);
  return true;
}

uint64_t total_downtime_ms(const shm::ServerSlot& slot, uint64_t now_ms) {
  uint64_t w = slot.down_word.load(std::memory_order_relaxed);
  uint64_t done = slot.downtime_ms.load(std::memory_order_relaxed);
  uint64_t since = w >> 2;
  return done + (w & kReasons && now_ms > since ? now_ms - since : 0);
}

const char* check_reason_name(CheckReason r) {
  switch (r) {
    case CheckReason::None: return "";
    case CheckReason::Status: return "status";
    case CheckReason::Connect: return "connect";
    case CheckReason::Timeout: return "timeout";
    case CheckReason::Closed: return "closed";
    case CheckReason::Invalid: return "invalid";
    case CheckReason::Io: return "io";
    case CheckReason::Tls: return "tls";
  }
  return "?";
}

uint64_t pack_check(const CheckResult& c) {
  uint64_t flags = (c.probed ? 1u : 0u) | (c.ok ? 2u : 0u);
  return flags | (uint64_t)c.reason << 8 | (uint64_t)c.code << 16 | (uint64_t)c.duration_ms << 32;
}

CheckResult unpack_check(uint64_t v) {
  CheckResult c;
  c.probed = v & 1;
  c.ok = v & 2;
  c.reason = (CheckReason)((v >> 8) & 0xff);
  c.code = (uint16_t)(v >> 16);
  c.duration_ms = (uint32_t)(v >> 32);
  return c;
}

void record_probe(shm::ServerSlot& slot, const CheckResult& c, const ProbeCounts& counts) {
  slot.last_check.store(pack_check(c), std::memory_order_relaxed);
  slot.check_progress.store((uint64_t)counts.ok | (uint64_t)counts.fail << 32, std::memory_order_relaxed);
}

ProbeCounts probe_progress(const shm::ServerSlot& slot) {
  uint64_t v = slot.check_progress.load(std::memory_order_relaxed);
  return {(uint32_t)v, (uint32_t)(v >> 32)};
}

bool parse_status_ranges(std::string_view text, StatusRanges* out, std::string* err) {
  out->clear();
  auto number = [&](std::string_view s, uint16_t* v) {
    if (s.size() != 3 || s.find_first_not_of("0123456789") != std::string_view::npos) return false;
    int n = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    if (n < 100 || n > 599) return false;
    *v = (uint16_t)n;
    return true;
  };
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find_first_of(" ,\t\r\n", i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view tok = text.substr(i, j - i);
    i = j + 1;
    if (tok.empty()) continue;
    size_t dash = tok.find('-');
    uint16_t lo = 0, hi = 0;
    bool ok = dash == std::string_view::npos
                  ? number(tok, &lo) && (hi = lo)
                  : number(tok.substr(0, dash), &lo) && number(tok.substr(dash + 1), &hi);
    if (!ok || lo > hi) {
      *err = "'" + std::string(tok) + "' is not a status code (100-599) or a range like 200-399";
      return false;
    }
    out->emplace_back(lo, hi);
  }
  if (out->empty()) {
    *err = "expected status codes or ranges like 200-399";
    return false;
  }
  return true;
}

bool status_in(const StatusRanges& ranges, int status) {
  for (const auto& [lo, hi] : ranges)
    if (status >= lo && status <= hi) return true;
  return false;
}

std::string format_status_ranges(const StatusRanges& ranges) {
  std::string out;
  for (const auto& [lo, hi] : ranges) {
    if (!out.empty()) out += ' ';
    out += std::to_string(lo);
    if (hi != lo) out += "-" + std::to_string(hi);
  }
  return out;
}

std::string format_ms(uint64_t ms) {
  if (ms >= 60000 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  if (ms < 1000) return std::to_string(ms) + "ms";
  char buf[32];
  snprintf(buf, sizeof buf, "%gs", (double)ms / 1000);
  return buf;
}

}  // namespace pasture::lb
