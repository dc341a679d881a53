// Request routing through the handler tree (paste.urlmap semantics).
#pragma once

#include <string_view>

#include "conf/model.h"

namespace pasture::worker {

struct RouteResult {
  int handler = -1;            // -1: no match (404)
  uint32_t script_name_len = 0;  // bytes of the path consumed by urlmap prefixes
};

// Follow urlmap composites from site.root until a leaf handler. `host` is the
// Host header (may carry :port; without one, port 80 as for http), `path` the
// request path without query.
//
// paste.urlmap: host lower-cased; a domain entry matches `domain == host` or
// `domain == host:port`; a path entry matches when path == prefix or path
// starts with prefix + "/" (whole segments: /one matches /one and /one/x, not
// /onex). Entries are already in match order (conf/ sorted them).
RouteResult route(const conf::Site& site, std::string_view host, std::string_view path);

}  // namespace pasture::worker
