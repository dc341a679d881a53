// Whether the tests run under AddressSanitizer (scripts/test --sanitize,
// CMake PASTURE_SANITIZE=ON). ASan doubles RSS (shadow memory, quarantine,
// redzones) and slows every allocation, so a test that bounds memory or time
// skips itself here with PASTURE_SKIP_IF_SANITIZED and says why; the normal
// build keeps every bound.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/support/process.h"

namespace pasture::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kBuiltSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kBuiltSanitized = true;
#else
inline constexpr bool kBuiltSanitized = false;
#endif
#else
inline constexpr bool kBuiltSanitized = false;
#endif

// This test binary is sanitized, or the pasture it starts is
// (PASTURE_SANITIZED=1, set by scripts/test --sanitize=quick, which runs the
// normal tests against the sanitized server).
inline bool sanitized() {
  static const bool s = [] {
    const char* env = std::getenv("PASTURE_SANITIZED");
    return kBuiltSanitized || (env && *env == '1');
  }();
  return s;
}

// Whether to assert a bound on memory or time that ASan cannot hold; in a
// sanitized build says which bound goes unchecked (the test still runs, for
// what the sanitizers see on its path).
inline bool check_resource_bound(const char* what) {
  if (sanitized()) std::printf("[ sanitized ] not checked: %s\n", what);
  return !sanitized();
}

// The environment for a pasture whose worker a test crashes on purpose (a C
// extension's SIGSEGV): with ASan's SEGV handler off, the signal kills the
// worker as in production instead of ASan reporting it and exiting 1.
inline Process::Env deliberate_crash_env() {
  if (!sanitized()) return {};
  const char* opts = std::getenv("ASAN_OPTIONS");
  return {{"ASAN_OPTIONS", std::string(opts ? opts : "") + ":handle_segv=0"}};
}

// The environment for a pasture started under an LD_PRELOAD shim
// (tests/support/*.c), the shim's own variables in `env`: a sanitized one
// wants ASan's runtime first in the library list, and refuses to start
// otherwise unless told not to check.
inline Process::Env preload_env(const char* shim, Process::Env env) {
  env.insert(env.begin(), {"LD_PRELOAD", shim});
  if (sanitized()) {
    const char* opts = std::getenv("ASAN_OPTIONS");
    env.push_back({"ASAN_OPTIONS", std::string(opts ? opts : "") + ":verify_asan_link_order=0"});
  }
  return env;
}

}  // namespace pasture::test

// GTEST_SKIP() with the reason, in a sanitized build only.
#define PASTURE_SKIP_IF_SANITIZED(reason) \
  do {                                    \
    if (::pasture::test::sanitized()) GTEST_SKIP() << "sanitized build: " << (reason); \
  } while (0)
