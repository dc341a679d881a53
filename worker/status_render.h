// The status app's three faces of one Snapshot (status_view.h).
#pragma once

#include <string>

#include "worker/status_view.h"

namespace pasture::worker {

// Typed JSON, as HAProxy's typed stats: every number is
// {"type": "counter"|"gauge"|"max"|"age", "value": N} (age in seconds).
std::string render_json(const Snapshot& s);

// Prometheus text exposition format 0.0.4. `scopes`: a mask of kScope*;
// 0 = all.
inline constexpr unsigned kScopeInfo = 1, kScopeWorker = 2, kScopePool = 4, kScopeServer = 8;
// "info", "worker", "pool", "server" -> its bit, 0 for anything else.
unsigned parse_scope(std::string_view name);
std::string render_prometheus(const Snapshot& s, unsigned scopes);

// A page that refreshes itself (its script fetches the page again every 2 s
// and computes the rates); sparklines from the shared history; no external
// assets. `base` is the app's own path ("/status/"), for its links.
std::string render_html(const Snapshot& s, std::string_view base);

}  // namespace pasture::worker
