// The runtime-control commands (HAProxy's CLI, issue 14): one executor for
// every surface (the status app's POST, the admin socket, `pasture ctl`).
// A command is one line of words; the answer is text. It reads and writes
// the shared-memory region only (common/shm_layout.h), so a write takes
// effect in every worker at their next pick, and this runs in whichever
// worker took the connection.
//
//   help
//   show info | pools | servers [POOL] | stat [json]
//   set server POOL/SERVER state ready|drain|maint
//   set weight POOL/SERVER N|N%      (N% of the configured weight; 100% = back to it)
//   set health POOL/SERVER up|down|auto
//   enable|disable health POOL/SERVER
//   clear counters
//   drain [SECONDS]                  (/ready fails now; the master stops gracefully after SECONDS, 5 by default)
//
// POOL is the pool's name as status shows it ("app:backends", or
// "backends"); SERVER is host:port (or unix:/path) as configured.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "worker/status_view.h"

namespace pasture::worker {

struct AdminResult {
  bool ok = true;
  std::string text;  // the answer, ending in a newline
};

// Runs one command line. `src` gives the site and region (src.now_ms is the
// CLOCK_MONOTONIC clock `drain` counts from); `who` names the caller in the
// log line every write command leaves ("unix uid 1000 pid 42", "127.0.0.1").
AdminResult execute_admin(const SnapshotSource& src, std::string_view line, const std::string& who);

// Whether a command changes anything (surfaces that only read refuse these).
bool admin_command_writes(std::string_view line);

// Seconds a `drain` waits before the master stops, unless given.
inline constexpr uint32_t kDrainDefaultSeconds = 5;

}  // namespace pasture::worker
