// Entry points of conf/: turn a config file into a validated Site.
#pragma once

#include "conf/error.h"
#include "conf/model.h"

namespace pasture::conf {

// Load, resolve (paste.deploy semantics) and validate. Throws ConfigError.
Site load_site(const LoadOptions& opts);

}  // namespace pasture::conf
