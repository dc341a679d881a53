// `pasture inspect`: how paste.deploy resolves a config, in exactly the
// "pastedeploy-dump/1" JSON format of dump_pastedeploy.py (same keys, same
// "ExceptionType: message" error strings, keys sorted, indent 1), so the
// output can be compared with the real paste.deploy's dump (compare_dump.py).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "conf/json.h"

namespace pasture::conf {

// `vars` are `paster serve CONFIG name=value` assignments (global_conf).
// Paths are absolute, as they are; never throws for config problems (they
// are part of the dump).
json::Value inspect(const std::string& config_path, const std::vector<std::pair<std::string, std::string>>& vars);
std::string inspect_json(const std::string& config_path,
                         const std::vector<std::pair<std::string, std::string>>& vars);

// What `pasture inspect` prints: every value of a secret-named key
// (ini::is_secret_key: cookie_secret, db_password, api_key, ...) becomes
// "***", and so does any other value equal to one of them (a DEFAULT that
// cookie_secret = %(shared)s took it from) or, for secrets of 6 characters
// or more, any part of one (a URL built with %(db_password)s).
void hide_secrets(json::Value& dump);

}  // namespace pasture::conf
