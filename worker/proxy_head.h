// The request head pasture sends upstream, built from the client's head:
// pure, so it can be unit-tested and benchmarked without sockets.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "worker/http_head.h"

namespace pasture::worker {

struct ProxyHeadInput {
  std::string_view method;  // "GET"
  std::string_view url;     // request target as received
  const char* base = nullptr;                        // where `headers` offsets point
  const std::vector<HeaderSpan>* headers = nullptr;  // the client's header fields
  std::string_view peer;    // client address, text
  uint32_t script_len = 0;  // path bytes a urlmap matched (hosted apps' SCRIPT_NAME)
  // The request body's framing as pasture parsed it; written by pasture,
  // never copied from the client's fields.
  enum class Body : uint8_t { kNone, kLength, kChunked } body = Body::kNone;
  uint64_t content_length = 0;  // with kLength
};

struct ProxyHeadPolicy {
  std::string_view base_path;      // Paste#proxy address path; "" or "/" = unchanged
  bool preserve_host = true;       // forward the client's Host (else upstream_host)
  bool hosted = false;             // the pool is pasture's Python app processes
  std::string_view upstream_host;  // "host:port" of the chosen server
  std::string_view fallback_host;  // Host to send when the client sent none
};

// Appends the upstream request head to `o`: HTTP/1.1 request line, the
// client's fields minus hop-by-hop ones (and those named in Connection, but
// never Host or framing), the body's framing from `in.body`, Host per policy, X-Forwarded-For (appended to the client's), -Proto and
// -Host, X-Pasture-Script-Name for hosted apps, and the blank line.
void build_proxy_head(std::string& o, const ProxyHeadInput& in, const ProxyHeadPolicy& p);

}  // namespace pasture::worker
