// Turns what paste.deploy resolved for `paster serve` into the Site model:
// the server section into ServerSettings, the app tree into Handlers and
// Pools. Only pasture's native vocabulary is accepted; anything else is a
// ConfigError naming file:line ("not supported yet: ...").
#pragma once

#include <map>

#include "conf/model.h"
#include "conf/paste.h"

namespace pasture::conf {

// Fills site.server from the loadserver context. Unknown keys become notices.
void build_server(Site& site, const paste::ContextPtr& server);
// One egg:pasture#main server key (workers, backlog, timeouts, ...; not
// host/port/listen) into `s`; false for a key it does not know. The YAML
// loader's server section uses it.
bool apply_server_key(ServerSettings& s, const std::string& key, const py::Value& v);
// After the keys: `python =` implies app_mode = process (an error with app_mode = embedded).
void finish_app_mode(ServerSettings& s);

// TLS keys of a server section (conf/site_tls.cc), collected while the
// other keys are applied, resolved once the listeners are known.
enum class TlsFlavour { None, Paste, Gunicorn, Pasture };  // which TLS keys a server form takes
struct TlsKeys {
  std::map<std::string, py::Value> values;  // lower-case key -> value
};
// True when `key` is a TLS key (recorded in `keys`); a TLS key the form does
// not take is a ConfigError (never a plain-HTTP port the operator believes
// is encrypted). False for other keys.
bool take_tls_key(TlsKeys& keys, TlsFlavour fl, const std::string& key, const py::Value& v);
// Builds site.server.tls from `keys`, marks the listeners (all of them when
// none says `tls`), checks the files (conf/tls_check.h). Throws ConfigError.
void finish_tls(Site& site, const TlsKeys& keys);

// Fills site.handlers / site.pools / site.root from the loadapp context.
// `resolver` loads the apps a urlmap names (through the composite's loader).
void build_app(Site& site, paste::Resolver& resolver, const paste::ContextPtr& app);

// Helpers shared by the builder files.
namespace site_detail {
std::string section_of(const paste::ContextPtr& ctx);   // outermost section, "" if none
SourceLoc section_loc(const paste::ContextPtr& ctx);    // its header line
std::string object_name(const std::string& section);   // "app: x " -> "x"
bool is_egg(const paste::ContextPtr& ctx, const std::string& dist, const std::string& entry_point);
void add_notice(Site& site, const SourceLoc& loc, const std::string& text);
void ignored_keys(Site& site, const paste::ContextPtr& ctx, const std::vector<std::string>& keys);
}  // namespace site_detail

}  // namespace pasture::conf
