// The request head pasture sends upstream, built from the client's head:
// pure, so it can be unit-tested and benchmarked without sockets.
#pragma once

#include <cstdint>
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
  // An HTTP/1.0 request: Via names 1.0, and Expect is not forwarded (RFC
  // 9110 10.1.1: a server ignores it in HTTP/1.0; the upstream gets 1.1).
  bool http10 = false;
};

struct ProxyHeadPolicy {
  std::string_view base_path;      // Paste#proxy address path; "" or "/" = unchanged
  bool preserve_host = true;       // forward the client's Host (else upstream_host)
  bool hosted = false;             // the pool is pasture's Python app processes
  std::string_view upstream_host;  // "host:port" of the chosen server
  std::string_view fallback_host;  // Host to send when the client sent none
  std::string_view via;            // Via received-by name (RFC 9110 7.6.3); "" = no Via
};

// The values of a repeated list field, in order, joined with ", ". One field
// (the usual case) stays a view into the head; only several are copied.
class FieldJoin {
 public:
  FieldJoin() = default;
  FieldJoin(const FieldJoin&) = delete;  // value() may point into joined_
  FieldJoin& operator=(const FieldJoin&) = delete;
  void add(std::string_view v);
  std::string_view value() const { return view_; }

 private:
  std::string_view view_;
  std::string joined_;
};

// "Via: [earlier, ]1.1 NAME\r\n" (1.0 for an HTTP/1.0 message): the values
// the message carried, then this hop's (RFC 9110 7.6.3).
void append_via(std::string& o, const FieldJoin& earlier, bool http10, std::string_view name);

// Max-Forwards' value (RFC 9110 7.6.2: 1*DIGIT, saturating), or -1 when it
// is not a number.
int64_t max_forwards_value(std::string_view v);

// Appends the upstream request head to `o`: HTTP/1.1 request line, the
// client's fields minus hop-by-hop ones (and those named in Connection, but
// never Host or framing), the body's framing from `in.body`, Host per
// policy, X-Forwarded-For (appended to the client's), -Proto and -Host,
// X-Pasture-Script-Name for hosted apps, Via (appended to the client's), and
// the blank line. OPTIONS and TRACE go with Max-Forwards less one.
void build_proxy_head(std::string& o, const ProxyHeadInput& in, const ProxyHeadPolicy& p);

// The body of a 200 answering TRACE at its final recipient (RFC 9110 9.3.8,
// Content-Type message/http): the request head as received, minus fields
// likely to hold credentials (Authorization, Proxy-Authorization, Cookie).
void build_trace_echo(std::string& o, const ProxyHeadInput& in);

}  // namespace pasture::worker
