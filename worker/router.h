// Request routing through the handler tree (paste.urlmap semantics).
#pragma once

#include <string_view>

#include "conf/model.h"

namespace pasture::worker {

struct RouteResult {
  int handler = -1;            // -1: no match (404)
  uint32_t script_name_len = 0;  // bytes of `path` consumed by urlmap prefixes (SCRIPT_NAME)
};

// The native filters (conf::Handler::filters) of every handler a route
// passed, outermost first, and what prefix filters (PrefixMiddleware) made
// of SCRIPT_NAME and PATH_INFO. Views into the Site and the routed path.
struct RouteFilters {
  // A route passing more runs the first kMax (conf/ refuses more on one handler).
  static constexpr int kMax = 16;
  struct At {
    const conf::Filter* filter = nullptr;
    // SCRIPT_NAME + PATH_INFO as this filter sees them (TransLogger's
    // REQUEST_URI): `script` is a prefix filter's prefix or empty, `path`
    // a suffix of the routed path or "/".
    std::string_view script, path;
    bool after_prefix = false;  // a prefix filter came before this one
  };
  At at[kMax];
  int n = 0;
  // Set by a prefix filter: SCRIPT_NAME is prefix_script + the urlmap
  // prefixes matched after it (prefix_consumed bytes of prefix_rest), and
  // PATH_INFO the rest.
  bool prefixed = false;
  std::string_view prefix_script;
  std::string_view prefix_rest;  // PATH_INFO right after the last prefix filter
  uint32_t prefix_consumed = 0;
  const conf::Filter* last_prefix = nullptr;
};

// PrefixMiddleware on PATH_INFO: `path` without the prefix (prefix.rstrip('/')
// matched as Paste's regex `^prefix(.*)$` does, '.' any byte but a newline),
// or `path` when it does not match; "/" for an empty result.
std::string_view strip_prefix(std::string_view path, std::string_view prefix);

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
RouteResult route(const conf::Site& site, std::string_view host, std::string_view path,
                  RouteFilters* filters = nullptr);

}  // namespace pasture::worker
