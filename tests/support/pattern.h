// Deterministic body content for large-transfer tests: byte i of a pattern
// body is (i * 31 + 7) & 0xff, so corruption, truncation and reordering all
// show up as a mismatch at a known offset.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pasture::test {

inline char pattern_byte(size_t i) { return static_cast<char>((i * 31 + 7) & 0xff); }

// `n` pattern bytes starting at absolute offset `offset`.
std::string pattern_bytes(size_t n, size_t offset = 0);

// Offset of the first byte of `body` (taken to start at `offset`) that breaks
// the pattern, or std::string_view::npos if it all matches.
size_t pattern_mismatch(std::string_view body, size_t offset = 0);

inline bool check_pattern(std::string_view body, size_t offset = 0) {
  return pattern_mismatch(body, offset) == std::string_view::npos;
}

}  // namespace pasture::test
