// Turns what paste.deploy resolved for `paster serve` into the Site model:
// the server section into ServerSettings, the app tree into Handlers and
// Pools. Only pasture's native vocabulary is accepted; anything else is a
// ConfigError naming file:line ("not supported yet: ...").
#pragma once

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
