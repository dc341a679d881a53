// Blocking waits of the master's helper processes (the resolver's DNS and
// etcd clients): poll one descriptor until a CLOCK_MONOTONIC deadline.
#pragma once

#include <poll.h>

#include <cerrno>
#include <cstdint>

#include "master/master.h"

namespace pasture::master {

// Waits until `fd` is ready for `events` or `deadline_ms` (monotonic_ms())
// passes: false on timeout or a poll error.
inline bool wait_fd(int fd, short events, uint64_t deadline_ms) {
  for (;;) {
    uint64_t now = monotonic_ms();
    if (now >= deadline_ms) return false;
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, (int)(deadline_ms - now));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

}  // namespace pasture::master
