// The non-serving commands: check, inspect, convert, ctl, status.
#pragma once

#include <string>
#include <vector>

#include "conf/model.h"

namespace pasture::master {

// `pasture check`: print in plain words what will be served (listeners,
// workers, the handler tree, notices). `workers` > 0 is --workers. Returns 0.
int cmd_check(const conf::Site& site, int workers = 0);
// `pasture inspect [--json] [--show-secrets]`: paste.deploy's view of the
// file; the JSON is pastedeploy-dump/1, the text a summary of it. Secrets
// show as "***" (conf::hide_secrets) unless `show_secrets`. A file that
// cannot be read (or is not an INI file) is an error: message on stderr,
// returns 2.
int cmd_inspect(const conf::LoadOptions& opts, bool json, bool show_secrets = false);
// `pasture convert`: the YAML form of what `serve` would load, on stdout,
// cookie_secret included (it is a config to use; a comment line says so).
// Config errors: file:line on stderr, returns 2.
int cmd_convert(const conf::LoadOptions& opts);
// `pasture ctl CONFIG COMMAND...` (and `pasture status CONFIG`, words =
// show servers): sends the command line to the config's admin_socket,
// prints the answer. Returns 0, 1 when the server answered an error or
// cannot be reached, 2 for a config that does not load.
int cmd_ctl(const conf::LoadOptions& opts, const std::vector<std::string>& words);

}  // namespace pasture::master
