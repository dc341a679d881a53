// Whether this build runs under AddressSanitizer (scripts/test --sanitize,
// CMake PASTURE_SANITIZE=ON). ASan doubles RSS (shadow memory, quarantine,
// redzones) and slows every allocation, so a test that bounds memory or time
// skips itself here with PASTURE_SKIP_IF_SANITIZED and says why; the normal
// build keeps every bound.
#pragma once

#include <gtest/gtest.h>

namespace pasture::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

}  // namespace pasture::test

// GTEST_SKIP() with the reason, in a sanitized build only.
#define PASTURE_SKIP_IF_SANITIZED(reason) \
  do {                                    \
    if (::pasture::test::kSanitized) GTEST_SKIP() << "sanitized build: " << (reason); \
  } while (0)
