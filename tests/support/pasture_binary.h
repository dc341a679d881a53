// The pasture binary the integration tests start: the one built beside them,
// or $PASTURE_TEST_BINARY. scripts/test --sanitize=quick runs the normal
// build's tests against the sanitized build's binary that way, so only the
// server is compiled twice. Force-included into every integration test
// (tests/CMakeLists.txt); PASTURE_BUILT_BINARY comes from there too.
#pragma once

#include <cstdlib>

namespace pasture::test {

inline const char* pasture_binary() {
  static const char* path = [] {
    const char* env = std::getenv("PASTURE_TEST_BINARY");
    return env && *env ? env : PASTURE_BUILT_BINARY;
  }();
  return path;
}

}  // namespace pasture::test

#define PASTURE_BINARY (::pasture::test::pasture_binary())
