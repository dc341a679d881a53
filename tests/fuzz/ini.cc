// The INI loader: configparser's grammar and interpolation (conf/ini.cc),
// then paste.deploy's resolution and pasture's site building (load_site),
// `pasture inspect`, and the YAML round trip of `pasture convert`
// (site_check.h).
//
// Input: the text of site.ini. Each section's options are also read one by
// one (get(): BasicInterpolation), as paste.deploy reads them.
#include <string>

#include "conf/ini.h"
#include "tests/fuzz/site_check.h"

using namespace pasture;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Scratch scratch;
  std::string text(reinterpret_cast<const char*>(data), size);
  std::string path = scratch.dir() + "/site.ini";
  try {
    conf::ini::Parser p =
        conf::ini::Parser::parse(text, path, {{"here", scratch.dir(), 0}, {"__file__", path, 0}});
    for (const conf::ini::Section& s : p.sections())
      for (const std::string& key : p.options(s.name)) {
        try {
          p.get(s.name, key);
        } catch (const conf::py::Error&) {
        }
      }
    try {
      p.defaults();
    } catch (const conf::py::Error&) {
    }
  } catch (const conf::py::Error&) {
  } catch (const std::exception& e) {
    fuzz::fail(std::string("the INI parser threw a non-py::Error: ") + e.what());
  }
  if (!fuzz::paths_ok(text)) return 0;
  scratch.write("site.ini", text);
  fuzz::check_site_file(scratch, path, true);
  return 0;
}
