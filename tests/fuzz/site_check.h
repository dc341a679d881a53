// The contract of conf/ that the ini and yaml targets check on every input:
// a config loads, or fails with a ConfigError (never another exception, a
// crash or a hang); `pasture inspect` never throws; and a loaded site that
// `pasture convert` can write loads back from that YAML as the same site.
#pragma once

#include <exception>
#include <string>

#include "conf/describe.h"
#include "conf/inspect.h"
#include "conf/load.h"
#include "conf/yaml_writer.h"
#include "tests/fuzz/fuzz_util.h"

namespace pasture::fuzz {

inline void check_site_file(const Scratch& scratch, const std::string& path, bool inspect) {
  conf::LoadOptions o;
  o.config = path;
  o.relative_to = scratch.dir();
  conf::Site site;
  bool loaded = false;
  try {
    site = conf::load_site(o);
    loaded = true;
  } catch (const conf::ConfigError& e) {
    FUZZ_CHECK(e.what()[0] != 0, "a ConfigError without a message", "");
  } catch (const std::exception& e) {
    fail(std::string("load_site threw a non-ConfigError: ") + e.what());
  }
  if (inspect) {
    try {
      conf::inspect_json(path, {});
    } catch (const std::exception& e) {
      fail(std::string("inspect_json threw: ") + e.what());
    }
  }
  if (!loaded || !site.python_apps.empty()) return;
  std::string yaml;
  try {
    yaml = conf::site_to_yaml(site);
  } catch (const std::exception& e) {
    fail(std::string("site_to_yaml threw: ") + e.what());
  }
  o.config = scratch.write("converted.yaml", yaml);
  try {
    conf::Site back = conf::load_site(o);
    FUZZ_CHECK(conf::same_site(site, back), "the converted YAML loads as another site",
               conf::json::dump(conf::site_to_json(site)) + "\n=== converted ===\n" + yaml + "\n=== loads as ===\n" +
                   conf::json::dump(conf::site_to_json(back)));
  } catch (const conf::ConfigError& e) {
    fail(std::string("the converted YAML does not load: ") + e.what(), yaml);
  }
}

}  // namespace pasture::fuzz
