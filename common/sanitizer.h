// Hooks for the sanitized build (CMake PASTURE_SANITIZE=ON, scripts/test
// --sanitize); no-ops otherwise.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace pasture::sanitizer {

// LeakSanitizer checks at exit(), but forked workers and the health checker
// leave with _exit() (they must not run the master's atexit handlers or flush
// its stdio twice): call this before, so their leaks are reported too. Call
// it where what the process still owns is reachable (a worker's loop lives on
// its stack). A leak ends the process with LSan's exit code and a report.
inline void check_leaks_before_exit() {
#if defined(__SANITIZE_ADDRESS__)
  __lsan_do_leak_check();
#endif
}

}  // namespace pasture::sanitizer
