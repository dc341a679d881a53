// Views of a loaded Site: the canonical dump used to compare two Sites, the
// operator-facing text of `pasture check`, and the value formatters the YAML
// writer shares (so what is printed parses back to the same value).
#pragma once

#include <string>
#include <vector>

#include "conf/json.h"
#include "conf/model.h"

namespace pasture::conf {

// Everything in a Site that changes what is served, as a tree from the root
// handler (pools inlined, shared handlers repeated). Leaves out what only
// labels or locates: SourceLocs, section/app names of handlers and pools,
// config_file, server_name and notices. Two Sites that serve the same way
// have equal dumps, whatever file format they came from.
json::Value site_to_json(const Site& site);
bool same_site(const Site& a, const Site& b);

// `pasture check` text: listeners, workers, the handler tree, notices.
// `workers_override` > 0 is the --workers option.
std::string describe_site(const Site& site, int workers_override = 0);

// The secret values `site` holds (each pool's cookie_secret), for the log
// to hide: no log line may show one.
std::vector<std::string> site_secrets(const Site& site);

// "10.0.0.1:8000 weight=3 max_conns=10 backup down" (IPv6 in brackets;
// defaults left out): the `servers =` syntax, parses back to `s`.
std::string server_spec(const UpstreamServer& s);
// One line on what a pool's TLS to its https:// servers does (`pasture check`).
std::string upstream_tls_text(const UpstreamTls& t);
// 250 -> "250ms", 1500 -> "1.5s", 5000 -> "5s", 120000 -> "2m".
std::string format_duration_ms(uint32_t ms);
// The `method =` word: "round_robin", "least_conn", ...
const char* method_word(BalanceMethod m);
// The `upgrade =` value: "websocket", "*", "off", or the tokens.
std::string upgrade_words(const Pool& p);
// The `consistent =` word: "maglev", "ring", "none".
const char* consistency_word(HashConsistency c);

}  // namespace pasture::conf
