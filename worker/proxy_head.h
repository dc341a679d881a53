// The request head pasture sends upstream, built from the client's head:
// pure, so it can be unit-tested and benchmarked without sockets.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "conf/model.h"
#include "worker/http_head.h"

namespace pasture::worker {

struct ProxyHeadInput {
  std::string_view method;  // "GET"
  std::string_view url;     // request target as received
  const char* base = nullptr;                        // where `headers` offsets point
  const std::vector<HeaderSpan>* headers = nullptr;  // the client's header fields
  // `headers` came from llhttp over a complete head in `base`: each value is
  // followed there by its line's end, which may be read (fields that pass
  // unchanged are then copied as runs of whole lines).
  bool lines = false;
  std::string_view peer;    // client address, text
  bool trusted_peer = false;  // the peer is in trusted_proxies (peer_trusted())
  bool tls = false;           // the client's connection is TLS: X-Forwarded-Proto https
  // tls_client_subject_header (a name, "" = none): the client's own field
  // of that name never passes (trusted peer or not, '_' read as '-'); the
  // verified certificate subject `subject` goes in it when there is one.
  std::string_view subject_header;
  std::string_view subject;
  uint32_t script_len = 0;  // bytes of NormalPath::decoded a urlmap matched (SCRIPT_NAME)
  // A prefix filter's SCRIPT_NAME (decoded), sent as X-Forwarded-Prefix
  // (percent-encoded) to an upstream that is not a hosted app; "" = none.
  std::string_view forwarded_prefix;
  // The request body's framing as pasture parsed it; written by pasture,
  // never copied from the client's fields.
  enum class Body : uint8_t { kNone, kLength, kChunked } body = Body::kNone;
  uint64_t content_length = 0;  // with kLength
  bool http10 = false;  // an HTTP/1.0 request: Via says 1.0, Expect is dropped
  // The protocols to ask the upstream to switch to (the client's Upgrade
  // tokens the pool allows): sent as Upgrade with Connection: upgrade. "" =
  // none (a client's Upgrade is hop-by-hop and dropped).
  std::string_view upgrade;
  // `url` split and its path normalized, when the caller has done it (the
  // worker, in on_head); null: build_proxy_head does it from `url`.
  const RequestTarget* target = nullptr;
  const NormalPath* path = nullptr;
};

struct ProxyHeadPolicy {
  std::string_view base_path;      // Paste#proxy address path; "" or "/" = unchanged
  bool preserve_host = true;       // forward the client's Host (else upstream_host)
  bool hosted = false;             // the pool is pasture's Python app processes
  bool underscores = false;        // underscores_in_headers = on: keep names with '_'
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

// Appends the upstream request head to `o`; false (nothing usable appended)
// when the target's path does not normalize (on_head answered 400 already).
//  - Request line: NormalPath::wire of the path (the form the urlmap routed
//    on), joined to base_path as Paste's proxy does, then the query as sent.
//  - The client's fields minus hop-by-hop ones (and those named in
//    Connection, but never Host or framing); the body's framing from
//    `in.body`.
//  - Host: an absolute-form target's authority replaces the client's Host
//    (RFC 9112 3.2.2); policy may send upstream_host instead.
//  - Names with '_' are dropped unless p.underscores (nginx's
//    underscores_in_headers); even then none whose name, '_' read as '-',
//    is one of the fields below or hop-by-hop/framing.
//  - X-Pasture-* from a client never passes. Forwarding claims
//    (X-Forwarded-*, Forwarded, X-Real-IP) pass only from a trusted peer,
//    or to a hosted app (which sees them as paster serve would; its
//    REMOTE_ADDR, scheme and SCRIPT_NAME come from pasture's fields alone).
//    Then X-Forwarded-For: the passed chain plus the peer; -Proto: the
//    trusted peer's, else "http" ("https" over TLS); -Host: the trusted peer's, else the Host;
//    and X-Pasture-Script-Name (percent-encoded) for hosted apps.
//    Over TLS -Proto is "https" unless a trusted peer said otherwise.
//  - in.subject_header: the client's field of that name dropped, always;
//    the verified client certificate's subject sent in it.
//  - Via: the client's values, then this hop (p.via), in one field.
//  - Conformance: OPTIONS and TRACE go with Max-Forwards less one (0 was
//    answered by pasture); an HTTP/1.0 request's Expect is dropped (RFC 9110
//    10.1.1: ignored in HTTP/1.0; the upstream gets HTTP/1.1).
bool build_proxy_head(std::string& o, const ProxyHeadInput& in, const ProxyHeadPolicy& p);

// Is `name` the field `header`, '_' read as '-' and case ignored (what a
// WSGI environ would make one key of)?
bool same_field_folded(std::string_view name, std::string_view header);

// Is `peer` inside one of `ranges` (conf::ServerSettings::trusted_proxies)?
// A unix-socket peer matches a range with `unix` set.
bool peer_trusted(const std::vector<conf::AddressRange>& ranges, const sockaddr* peer);

// The body of a 200 answering TRACE at its final recipient (RFC 9110 9.3.8,
// Content-Type message/http): the request head as received, minus fields
// likely to hold credentials (Authorization, Proxy-Authorization, Cookie).
void build_trace_echo(std::string& o, const ProxyHeadInput& in);

}  // namespace pasture::worker
