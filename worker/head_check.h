// What a worker decides from llhttp's parse of a message head, as pure
// functions (no I/O): whether a client's request head may be served and how
// its body is framed, and the head a client gets for an upstream's response.
// ClientConn calls them; the fuzz targets (tests/fuzz) drive them directly.
#pragma once

#include <llhttp.h>

#include <string>
#include <string_view>

#include "conf/model.h"
#include "worker/http_head.h"
#include "worker/response_sink.h"

namespace pasture::worker {

// A CR not followed by LF in [p, end), a complete head. Debian's lenient
// llhttp takes a CR and any next byte for a line end ("200 O\rXSet-Cookie:"
// would become a header): RFC 9112 2.2 lets a recipient refuse such an
// element, which pasture does (400 from a client, 502 from an upstream).
bool has_bare_cr(const char* p, const char* end);

// A complete first line (after the empty lines RFC 9112 2.2 lets a server
// skip) without the two spaces of "METHOD TARGET VERSION": llhttp takes
// "GET /\r\n" for HTTP/0.9 and waits for a head that never comes.
bool request_line_lacks_version(const char* p, const char* end);

// A request head that passed check_request_head.
struct RequestHead {
  RequestTarget target;
  NormalPath path;                // target.path normalized; may point into the scratch string
  std::string_view host;          // an absolute-form target's authority, else the Host field
  std::string_view max_forwards;  // the (single) Max-Forwards value, "" if none
  bool expect_continue = false;   // Expect: 100-continue
  bool chunked = false;           // Transfer-Encoding: chunked (decoded, then chunked again)
};

// The checks of ClientConn::on_head on a head llhttp parsed whole (`p`
// paused in on_headers_complete; `h` its spans into `base`): 0 and *out
// filled when the head may be routed, else the status to answer (400, 414,
// 431, 501, 505) with *why. `scratch` holds out->path when it had to be
// rewritten. Each field's kind is noted in its HeaderSpan (h.headers) on
// the way, for build_proxy_head.
int check_request_head(const llhttp_t& p, const char* base, HeadCollector& h,
                       const conf::ServerSettings& srv, std::string& scratch, RequestHead* out,
                       const char** why);

// An upstream's response head pasture can forward: a status from 100 to
// 599, no obs-fold, every field name a token (not empty, no whitespace), no
// Transfer-Encoding but a lone "chunked" that llhttp also framed as chunked
// (else the body would be framed one way here and labelled another way
// there).
bool valid_response_head(const char* base, const HeadCollector& h, const llhttp_t& p);

// The status line and the end-to-end fields of an upstream's head (RFC 9110
// 7.6.1: minus hop-by-hop ones and those its Connection fields name; the
// framing is never copied), then Via when `via_name` is not empty. A reason
// phrase with control bytes is replaced by the standard one. The caller
// adds framing and the end.
void append_response_head(std::string& o, const char* base, const HeadCollector& h, const llhttp_t& p,
                          std::string_view via_name);

// How a final response's body reaches the client.
struct ResponseFraming {
  bool decode = false;     // the de-chunked payload as it is (an HTTP/1.0 client)
  bool rechunk = false;    // the de-chunked payload in pasture's own chunks
  bool until_eof = false;  // the body ends when the connection does: no keep-alive
};
// Appends the framing field pasture writes for a final response to an
// HTTP/1.0 (`http10`) or 1.1 client, from how its source delimits the body
// (`framing`, `length`); `no_body`: HEAD, 204, 304. What ClientConn::head
// writes for every response (proxied, an app's, pasture's own).
ResponseFraming append_framing(std::string& o, int status, ResponseHead::Length framing, uint64_t length,
                               bool no_body, bool http10);
// The same for an upstream's response, from llhttp's parse `p` (never the
// upstream's own fields), to a client that sent `head_request` (HEAD).
ResponseFraming append_response_framing(std::string& o, const llhttp_t& p, bool head_request, bool http10);

}  // namespace pasture::worker
