// The two server-list parsers: a `servers_from` file (YAML: a list of
// server strings or maps, or a map with `servers:`; load_servers_file) and
// the INI `servers =` value (parse_servers). Both load or throw a
// ConfigError; what loads is printed back in the `servers =` syntax
// (server_spec), which must parse to the same servers.
//
// Input: byte 0 picks the parser (even: the file, odd: the INI value), then
// the text.
#include <string>

#include "conf/describe.h"
#include "conf/site_pool.h"
#include "conf/yaml_loader.h"
#include "tests/fuzz/fuzz_util.h"

using namespace pasture;

namespace {

bool same(const conf::UpstreamServer& a, const conf::UpstreamServer& b) {
  return a.host == b.host && a.port == b.port && a.weight == b.weight && a.max_conns == b.max_conns &&
         a.backup == b.backup && a.down == b.down && a.max_fails == b.max_fails &&
         a.fail_timeout_ms == b.fail_timeout_ms && a.slow_start_ms == b.slow_start_ms &&
         a.unix_path == b.unix_path && a.tls == b.tls && a.discover == b.discover;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Scratch scratch;
  fuzz::Input in(data, size);
  bool file = (in.byte() & 1) == 0;
  std::string text(in.rest());
  std::vector<conf::UpstreamServer> servers;
  try {
    if (file)
      servers = conf::load_servers_file(scratch.write("pool.yaml", text));
    else
      servers = conf::parse_servers(text, conf::SourceLoc{scratch.dir() + "/site.ini", 3});
  } catch (const conf::ConfigError& e) {
    FUZZ_CHECK(e.what()[0] != 0, "a ConfigError without a message", "");
    return 0;
  } catch (const std::exception& e) {
    fuzz::fail(std::string("a servers parser threw a non-ConfigError: ") + e.what(), text);
  }
  FUZZ_CHECK(!servers.empty(), "an empty server list was accepted", text);
  std::string specs;
  for (const conf::UpstreamServer& s : servers) specs += conf::server_spec(s) + "\n";
  std::vector<conf::UpstreamServer> back;
  try {
    back = conf::parse_servers(specs, conf::SourceLoc{"printed", 1});
  } catch (const conf::ConfigError& e) {
    fuzz::fail(std::string("the printed servers do not parse: ") + e.what(), specs);
  }
  FUZZ_CHECK(back.size() == servers.size(), "the printed servers parse to another count", specs);
  for (size_t i = 0; i < back.size(); i++)
    FUZZ_CHECK(same(back[i], servers[i]), "a printed server parses differently", specs);
  return 0;
}
