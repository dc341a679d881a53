// Site -> pasture YAML (schema in yaml_loader.h), for `pasture convert`.
#pragma once

#include <string>

#include "conf/model.h"

namespace pasture::conf {

// The YAML whose load_yaml_site() gives a Site equal (site_to_json) to
// `site`. Only settings that differ from the defaults are written; notices
// become comments.
std::string site_to_yaml(const Site& site);

}  // namespace pasture::conf
