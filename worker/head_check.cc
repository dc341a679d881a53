#include "worker/head_check.h"

#include <array>
#include <cstdint>
#include <cstring>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "worker/proxy_head.h"

namespace pasture::worker {
namespace {

// The largest Content-Length taken, in requests and answers: INT64_MAX.
constexpr uint64_t kMaxContentLength = (uint64_t)INT64_MAX;

// A field name is a token (RFC 9110 5.1). llhttp's lenient build takes a
// space inside one ("Transfer-Encoding x"), which a peer may read as
// another field; nginx refuses such a line.
// (A table: the search of the specials per byte was a tenth of a worker's
// instructions with 30 header fields, bench --shapes headers.)
constexpr std::array<bool, 256> kTokenChar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; c++) t[c] = true;
  for (int c = 'a'; c <= 'z'; c++) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[(unsigned char)c] = true;
  return t;
}();

// `lo`: the start of the buffer `name` lies in (see plain_field_name).
bool valid_field_name(std::string_view name, const char* lo) {
  if (plain_field_name(name, lo)) return true;
  if (name.empty()) return false;
  for (char ch : name)
    if (!kTokenChar[(unsigned char)ch]) return false;
  return true;
}

// A reason phrase that may go on: HTAB, SP, VCHAR, obs-text (RFC 9112 4).
// llhttp's lenient build passes other control bytes (NUL) through.
bool valid_reason(std::string_view r) {
  for (char ch : r) {
    auto c = (unsigned char)ch;
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

bool has_bare_cr(const char* p, const char* end) {
#ifdef __SSE2__
  // 16 bytes at a time, each against the byte after it: a CR whose next
  // byte is no LF. Through long heads, 64 bytes at a time: the CRs first,
  // then each of them (one per line) checked for its LF. A memchr per line
  // cost 1.8 times as many instructions on a small head and 5 % more on 3 KiB
  // of cookies (a byte loop was 5 % of a worker's time there, bench
  // --shapes headers).
  if (end - p >= 17) {
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
    auto mask = [](const char* q, __m128i c) -> uint64_t {
      return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), c));
    };
    if (end - p >= 256) {
      for (; end - p >= 128; p += 64) {  // 64 bytes at least after each step: a CR's next byte is there
        uint64_t m = mask(p, cr) | mask(p + 16, cr) << 16 | mask(p + 32, cr) << 32 | mask(p + 48, cr) << 48;
        for (; m; m &= m - 1)
          if (p[__builtin_ctzll(m) + 1] != '\n') return true;
      }
    }
    // The rest: the last block ends at end - 1 and may overlap the one before
    // it; the last byte, which has no next one, on its own.
    const char* last = end - 17;
    for (;;) {
      if (mask(p, cr) & ~mask(p + 1, lf)) return true;
      if (p == last) break;
      p = p + 16 <= last ? p + 16 : last;
    }
    return end[-1] == '\r';
  }
#endif
  for (; p < end; p++)
    if (*p == '\r' && (p + 1 == end || p[1] != '\n')) return true;
  return false;
}

bool request_line_lacks_version(const char* p, const char* end) {
  while (p < end && (*p == '\r' || *p == '\n')) p++;
  int spaces = 0;
  for (; p < end; p++) {
    if (*p == '\n') return spaces < 2;
    if (*p == ' ') spaces++;
  }
  return false;  // the line is not complete yet
}

int check_request_head(const llhttp_t& p, const char* base, HeadCollector& head,
                       const conf::ServerSettings& srv, std::string& scratch, RequestHead* out,
                       const char** why) {
  *out = RequestHead{};
  auto fail = [why](int status, const char* what) {
    *why = what;
    return status;
  };
  bool http10 = p.http_major == 1 && p.http_minor == 0;
  std::string_view url = span_view(base, head.url);
  if (p.http_major != 1)  // HTTP/0.9 ("GET /"), HTTP/2.0: nginx says 400, 505
    return fail(p.http_major == 0 ? 400 : 505, "unsupported HTTP version");
  if (head.headers->size() > srv.max_header_fields) return fail(431, "too many header fields");
  if (url.size() > srv.max_url_bytes) return fail(414, "request target too long");
  RequestTarget& t = out->target;
  if (!split_target(url, &t)) return fail(400, "bad request target");
  // The query goes upstream as sent (the path is encoded again): llhttp's
  // lenient build takes a TAB in it, which a peer that splits the request
  // line at any whitespace would read as the end of the target.
  for (char c : t.query)
    if ((unsigned char)c <= 0x20 || c == 0x7f) return fail(400, "bad request target");
  // Routing sees the path as the upstream will (build_proxy_head forwards
  // path.wire), and an absolute-form authority is the Host (RFC 9112 3.2.2).
  if (!normalize_path(t.path, scratch, &out->path) || (t.path == "*" && p.method != HTTP_OPTIONS))
    return fail(400, "bad request path");  // asterisk form: OPTIONS only (RFC 9112 3.2.4)
  if (!t.authority.empty() && !valid_authority(t.authority))
    return fail(400, "invalid request target authority");
  std::string_view host_field, te;
  bool have_host = false, bad_name = false, bad_expect = false;
  int te_fields = 0, max_forwards_fields = 0;
  for (HeaderSpan& h : *head.headers) {
    std::string_view name = span_view(base, h.name);
    // llhttp accepts an empty name, whitespace before the colon or inside
    // the name; RFC 9112 5.1 says reject (400), as nginx does.
    bool plain = plain_field_name(name, base);
    if (!plain && !valid_field_name(name, base)) bad_name = true;
    // Noted for build_proxy_head (a plain name has no '_').
    h.kind = plain ? classify_field(name) : field_kind(name);
    if (h.kind == FieldKind::kHost) {
      if (have_host) return fail(400, "duplicate Host header");
      have_host = true;
      host_field = trim_ows(span_view(base, h.value));
    } else if (h.kind == FieldKind::kExpect) {
      // RFC 9110 10.1.1: 100-continue is the only expectation; another one
      // is refused (417) rather than forwarded to an upstream that may
      // ignore it. HTTP/1.0 expectations are ignored (nginx, RFC 9110).
      std::string_view e = trim_ows(span_view(base, h.value));
      if (iequals(e, "100-continue"))
        out->expect_continue = true;
      else if (!e.empty())
        bad_expect = true;
    } else if (h.kind == FieldKind::kTransferEncoding) {
      te = span_view(base, h.value);
      te_fields++;  // llhttp rejects only "chunked" twice
    } else if (h.kind == FieldKind::kMaxForwards) {
      out->max_forwards = span_view(base, h.value);
      max_forwards_fields++;
    }
  }
  // OPTIONS and TRACE act on Max-Forwards (1*DIGIT, RFC 9110 7.6.2): several
  // values (fields or a list) would let the hop that answers and the one
  // that forwards disagree. (A single non-number is forwarded as it came.)
  if ((p.method == HTTP_OPTIONS || p.method == HTTP_TRACE) &&
      (max_forwards_fields > 1 || out->max_forwards.find(',') != std::string_view::npos))
    return fail(400, "invalid Max-Forwards");
  if (bad_name || head.folded) return fail(400, "malformed header line");
  if (!have_host && !http10) return fail(400, "missing Host header");
  if (have_host && !valid_host(host_field)) return fail(400, "invalid Host header");
  out->host = t.authority.empty() ? host_field : t.authority;
  // An empty Transfer-Encoding leaves llhttp's flag unset (review 40): the
  // field decides, or the body would be framed by Content-Length here and
  // read otherwise by a peer.
  if ((p.flags & F_TRANSFER_ENCODING) || te_fields > 0) {
    // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. Any
    // coding but a lone "chunked" is not implemented (nginx: 501); llhttp
    // would accept "gzip, chunked".
    if (http10) return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    // "gzip" then "chunked": one coding would be lost
    if (te_fields > 1) return fail(400, "several Transfer-Encoding header lines");
    // llhttp's F_CHUNKED too: it must frame the body as chunked exactly when
    // pasture forwards it so ("chunked\t" is not chunked to llhttp).
    if (!iequals(trim_ows(te), "chunked") || !(p.flags & F_CHUNKED))
      return fail(501, "unsupported Transfer-Encoding");
    out->chunked = true;
  }
  if (bad_expect && !http10) return fail(417, "unsupported expectation");
  // A length pasture's signed body counts can carry, as nginx's off_t:
  // llhttp takes up to 2^64 - 1, which became -1, "no length", upstream.
  if ((p.flags & F_CONTENT_LENGTH) && p.content_length > kMaxContentLength)
    return fail(400, "Content-Length out of range");
  // nginx's order: a body known to be too large is refused before any of it
  // is read, and a client waiting for 100 Continue gets 413 instead.
  if (srv.max_body_bytes && (p.flags & F_CONTENT_LENGTH) && p.content_length > srv.max_body_bytes)
    return fail(413, "request body larger than client_max_body_size");
  return 0;
}

bool valid_response_head(const char* base, const HeadCollector& h, const llhttp_t& p) {
  // RFC 9110 15: 100-599. llhttp's lenient build takes "20" or "020",
  // which went on as an interim "HTTP/1.1 20" that no client can read.
  if (h.folded || p.status_code < 100 || p.status_code > 599) return false;
  if ((p.flags & F_TRANSFER_ENCODING) && !(p.flags & F_CHUNKED)) return false;
  // As in requests (found by fuzzing, tests/fuzz/response.cc: 2^64 - 1 went
  // on to the client, whose parser refused it).
  if ((p.flags & F_CONTENT_LENGTH) && p.content_length > kMaxContentLength) return false;
  for (const HeaderSpan& hs : *h.headers) {
    std::string_view name = span_view(base, hs.name);
    if (!valid_field_name(name, base)) return false;
    // pasture writes "Transfer-Encoding: chunked" itself; any other coding
    // would reach the client mislabelled (nginx: 502 too).
    if (name.size() == 17 && iequals(name, "transfer-encoding") &&
        !iequals(trim_ows(span_view(base, hs.value)), "chunked"))
      return false;
  }
  return true;
}

void append_response_head(std::string& o, const char* base, const HeadCollector& h, const llhttp_t& p,
                          std::string_view via_name) {
  int status = p.status_code;
  std::string_view reason = span_view(base, h.status);
  bool own_reason = reason.empty() || !valid_reason(reason);
  if (status >= 100 && status <= 999) {
    // The status line in one or two appends, not five (each std::string
    // append is ~30 instructions: bench --shapes close, callgrind).
    char line[13] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', 0, 0, 0, ' '};
    line[9] = char('0' + status / 100);
    line[10] = char('0' + status / 10 % 10);
    line[11] = char('0' + status % 10);
    o.append(line, sizeof line);
  } else {
    o.append("HTTP/1.1 ");
    append_uint(o, (uint64_t)status);
    o.push_back(' ');
  }
  // The upstream's reason, with the CRLF that ends its line when that is
  // what follows it (the head is complete: its line ends are all there).
  const char* after = reason.data() + reason.size();
  if (own_reason)
    o.append(reason_phrase(status)).append("\r\n");
  else if (after[0] == '\r' && after[1] == '\n')
    o.append(reason.data(), reason.size() + 2);
  else
    o.append(reason).append("\r\n");
  ConnectionTokens nominated;
  for (const HeaderSpan& hs : *h.headers) {
    std::string_view name = span_view(base, hs.name);
    if (name.size() == 10 && iequals(name, "connection")) nominated.add(span_view(base, hs.value));
  }
  nominated.finish();
  FieldJoin via;
  LineRun run;  // the fields that pass, as the upstream wrote them where it can
  for (const HeaderSpan& hs : *h.headers) {
    std::string_view name = span_view(base, hs.name);
    if (is_hop_by_hop(name) || is_framing(name)) continue;
    if (!nominated.empty() && nominated.nominates(name)) continue;
    std::string_view value = span_view(base, hs.value);
    if (name.size() == 3 && !via_name.empty() && iequals(name, "via")) {
      via.add(value);
      continue;
    }
    if (run.take(o, name, value)) continue;
    o.append(name);
    o.append(": ");
    o.append(value);
    o.append("\r\n");
  }
  run.flush(o);
  // The received protocol is the upstream's (RFC 9110 7.6.3).
  if (!via_name.empty()) append_via(o, via, p.http_major == 1 && p.http_minor == 0, via_name);
}

ResponseFraming append_framing(std::string& o, int status, ResponseHead::Length framing, uint64_t length,
                               bool no_body, bool http10) {
  using Length = ResponseHead::Length;
  bool chunked = framing == Length::kChunked;
  ResponseFraming f;
  f.until_eof = !no_body && framing == Length::kNone;
  // HTTP/1.0 has no chunked coding: send the payload, close to end it.
  f.decode = !no_body && chunked && http10;
  // A chunked body is never forwarded as it came: llhttp's lenient build
  // skips the CRLF after chunk data unchecked, so bytes it framed one way a
  // client would frame another (a response smuggled into the connection).
  // As request bodies: decoded, then chunked again (trailers dropped).
  f.rechunk = !no_body && chunked && !http10;
  // The framing is ours (an upstream's own fields were dropped by
  // append_response_head): the client frames the body exactly as pasture
  // sends it. A 204 has neither field (RFC 9112 6.1, RFC 9110 8.6); a
  // de-chunked HTTP/1.0 body ends with the connection.
  if (status != 204 && !f.decode) {
    if (chunked) {
      // Never to HTTP/1.0 (RFC 9112 6.1), not even on a bodyless answer.
      if (!http10) o.append("Transfer-Encoding: chunked\r\n");
    } else if (framing == Length::kKnown) {
      append_uint_line(o, "Content-Length: ", length);
    }
  }
  return f;
}

ResponseFraming append_response_framing(std::string& o, const llhttp_t& p, bool head_request, bool http10) {
  int status = p.status_code;
  bool no_body = head_request || status == 204 || status == 304;
  ResponseHead::Length framing = (p.flags & F_CHUNKED)          ? ResponseHead::Length::kChunked
                                 : (p.flags & F_CONTENT_LENGTH) ? ResponseHead::Length::kKnown
                                                                : ResponseHead::Length::kNone;
  return append_framing(o, status, framing, p.content_length, no_body, http10);
}

}  // namespace pasture::worker
