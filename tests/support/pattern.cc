#include "tests/support/pattern.h"

namespace pasture::test {

std::string pattern_bytes(size_t n, size_t offset) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = pattern_byte(offset + i);
  return s;
}

size_t pattern_mismatch(std::string_view body, size_t offset) {
  for (size_t i = 0; i < body.size(); ++i)
    if (body[i] != pattern_byte(offset + i)) return i;
  return std::string_view::npos;
}

}  // namespace pasture::test
