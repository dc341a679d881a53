// The YAML loader (conf/yaml_loader.cc: pasture's own schema over
// yaml-cpp), then the YAML round trip of `pasture convert` (site_check.h).
//
// Input: the text of site.yaml.
#include <string>

#include "tests/fuzz/site_check.h"

using namespace pasture;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Scratch scratch;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!fuzz::paths_ok(text)) return 0;
  fuzz::check_site_file(scratch, scratch.write("site.yaml", text), false);
  return 0;
}
