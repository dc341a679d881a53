// The non-serving commands: check, inspect, convert.
#pragma once

#include "conf/model.h"

namespace pasture::master {

// `pasture check`: print in plain words what will be served. Returns 0.
int cmd_check(const conf::Site& site);
// `pasture inspect [--json]`: paste.deploy's view of the file.
int cmd_inspect(const conf::LoadOptions& opts, bool json);
// `pasture convert`: the equivalent YAML on stdout.
int cmd_convert(const conf::LoadOptions& opts);

}  // namespace pasture::master
