// Request routing through the handler tree (paste.urlmap semantics).
#pragma once

#include <string_view>

#include "conf/model.h"

namespace pasture::worker {

struct RouteResult {
  int handler = -1;            // -1: no match (404)
  uint32_t script_name_len = 0;  // bytes of `path` consumed by urlmap prefixes (SCRIPT_NAME)
};

// Follow urlmap composites from site.root until a leaf handler. `host` is the
// Host header or an absolute-form target's authority (may carry :port;
// without one, port 80 as for http; one trailing dot of the name dropped, as
// nginx); a host longer than 255 bytes matches no domain entry. `path` is NormalPath::decoded of the request path (no query):
// decoded, `//`-merged, without dot segments, so a prefix matches whatever
// spelling the client used, and the first script_name_len bytes of the path
// the upstream is sent (decoded) are exactly the prefixes matched.
//
// paste.urlmap: host lower-cased; a domain entry matches `domain == host` or
// `domain == host:port`; a path entry matches when path == prefix or path
// starts with prefix + "/" (whole segments: /one matches /one and /one/x, not
// /onex). Entries are already in match order (conf/ sorted them).
// paste.urlmap `//`-collapses PATH_INFO itself; normalize_path already did.
RouteResult route(const conf::Site& site, std::string_view host, std::string_view path);

}  // namespace pasture::worker
