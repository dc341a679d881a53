// HTTP/1.1 message heads as llhttp reports them, and their rewriting for
// proxying. Pure functions over bytes: no I/O, unit-testable.
//
// A head is collected as offsets into one contiguous buffer (`base`), never as
// pointers, so the buffer may grow (realloc) while a head arrives in pieces.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pasture::worker {

struct Span {
  uint32_t off = 0, len = 0;
};
// What a proxy does with a request's field, by its name (field_kind()).
enum class FieldKind : uint8_t {
  kUnknown,  // not looked at yet
  kOther,    // forwarded as is
  kDrop,     // hop-by-hop, framing (written from the parse) or pasture's own
  kTransferEncoding,  // dropped too (framing); told apart for the head's checks
  kHost,
  kXff,    // X-Forwarded-For
  kXfp,    // X-Forwarded-Proto
  kXfh,    // X-Forwarded-Host
  kClaim,  // another forwarding claim: Forwarded, X-Real-IP, X-Forwarded-*
  kVia,
  kExpect,
  kMaxForwards,
  kUnderscore,  // a name with '_': see build_proxy_head
};

struct HeaderSpan {
  Span name, value;
  // Set by check_request_head (each request's fields are looked at once);
  // build_proxy_head finds it there, or classifies the name itself.
  FieldKind kind = FieldKind::kUnknown;
};

inline std::string_view span_view(const char* base, Span s) { return {base + s.off, s.len}; }

// Receives llhttp's span callbacks for one message head. Consecutive calls for
// the same element (a head split across reads) extend the element.
struct HeadCollector {
  enum Last : uint8_t { kNone, kUrl, kStatus, kField, kValue };
  const char* base = nullptr;      // start of the buffer offsets refer to
  std::vector<HeaderSpan>* headers = nullptr;  // borrowed, see Worker::take_spans
  Span url, status;
  Last last = kNone;
  // A header line continued a name or value across a line break (obs-fold,
  // RFC 9112 5.2): llhttp reports the pieces as non-contiguous spans. Such a
  // head is rejected, never forwarded.
  bool folded = false;

  void reset() {
    url = status = Span{};
    last = kNone;
    folded = false;
    if (headers) headers->clear();
  }
  void on_url(const char* at, size_t n) { extend(url, kUrl, at, n); }
  void on_status(const char* at, size_t n) { extend(status, kStatus, at, n); }
  // Inline (below): llhttp calls them for every field of every head.
  inline void on_field(const char* at, size_t n);
  inline void on_value(const char* at, size_t n);
  // Shift every offset down by `delta` (the head moved to a new buffer whose
  // byte 0 was byte `delta` of the old one).
  void rebase(uint32_t delta);

 private:
  void extend(Span& s, Last kind, const char* at, size_t n);
};

inline void HeadCollector::on_field(const char* at, size_t n) {
  if (last == kField && !headers->empty()) {
    Span& name = headers->back().name;
    if (at != base + name.off + name.len) folded = true;
    name.len += (uint32_t)n;
  } else {
    HeaderSpan h;
    h.name = {(uint32_t)(at - base), (uint32_t)n};
    h.value = {h.name.off + h.name.len, 0};
    headers->push_back(h);
  }
  last = kField;
}

inline void HeadCollector::on_value(const char* at, size_t n) {
  if (headers->empty()) return;
  Span& v = headers->back().value;
  if (n == 0) {
    // An empty value ("A:" or "A: " then CRLF): llhttp reports an empty
    // piece just past the line break, which is no fold (RFC 9110 5.5 allows
    // it). Anything between that line break and the piece is a fold line
    // ("A:\r\n \r\n", review 40).
    if (last != kValue) v.len = 0;
    if (!v.len) {
      const Span& name = headers->back().name;
      const char* q = base + name.off + name.len;
      while (q < at && *q != '\n') q++;
      if (q < at && q + 1 != at) folded = true;
    }
    last = kValue;
    return;
  }
  if (last == kValue && v.len) {
    if (at != base + v.off + v.len) folded = true;  // obs-fold: "a\r\n b"
    v.len += (uint32_t)n;
  } else {
    // obs-fold right after the colon ("Name:\r\n value"): the value's first
    // piece is past a line break (llhttp reports no empty piece before it).
    const Span& name = headers->back().name;
    for (const char* q = base + name.off + name.len; q < at; q++)
      if (*q == '\n') folded = true;
    v.off = (uint32_t)(at - base);
    v.len = (uint32_t)n;
  }
  last = kValue;
}

// ASCII case-insensitive equality. Inline: callers compare a length first,
// and the call cost more than the comparison (bench --shapes headers).
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    unsigned char x = a[i], y = b[i];
    if (x == y) continue;
    if ((x | 0x20) != (y | 0x20) || (unsigned char)((x | 0x20) - 'a') > 'z' - 'a') return false;
  }
  return true;
}

// Is `name` made of letters, digits and '-' only, as nearly every field name
// is? 16 bytes at a time (SSE2); it may read bytes before `name` down to
// `lo`, the start of the buffer it lies in. False says nothing: the caller
// looks at the bytes one by one.
bool plain_field_name(std::string_view name, const char* lo);

// Fields that pass on unchanged, copied as the peer wrote them: a field whose
// line in the head is exactly "Name: value" CRLF extends the run of such
// lines it directly follows, and each run is one append (a head of ten
// fields costs a few appends, not forty). Views point into a head llhttp
// parsed whole, so the CRLF after a value is there to look at.
class LineRun {
 public:
  // Takes the field into the run (true), or writes the run so far and
  // returns false: the caller writes the field itself.
  bool take(std::string& o, std::string_view name, std::string_view value) {
    const char* line = name.data();
    const char* end = value.data() + value.size();
    if (value.empty() || value.data() != line + name.size() + 2 || line[name.size()] != ':' ||
        line[name.size() + 1] != ' ' || end[0] != '\r' || end[1] != '\n') {
      flush(o);
      return false;
    }
    if (!start_ || end_ != line) {
      flush(o);
      start_ = line;
    }
    end_ = end + 2;
    return true;
  }
  void flush(std::string& o) {
    if (start_) o.append(start_, (size_t)(end_ - start_));
    start_ = nullptr;
  }

 private:
  const char* start_ = nullptr;
  const char* end_ = nullptr;
};

// A field name's kind: kUnderscore if it has '_', else classify_field().
FieldKind field_kind(std::string_view name);
// The kind of a name without '_', by the name alone.
FieldKind classify_field(std::string_view name);

// Does comma-separated header value `list` contain `token` (case-insensitive)?
bool has_token(std::string_view list, std::string_view token);

// `s` without leading and trailing spaces and tabs.
std::string_view trim_ows(std::string_view s);

// A Host value nginx would accept (ngx_http_validate_host): not empty, no
// control byte, space, '/' or "..".
bool valid_host(std::string_view host);
// The authority of an absolute-form target (RFC 9112 3.2.2), which replaces
// Host: a valid_host() without userinfo ('@'), as nginx's request-line parser.
bool valid_authority(std::string_view authority);

// Headers a proxy must not forward (RFC 9110 7.6.1), lower-case comparison.
bool is_hop_by_hop(std::string_view name);

// Content-Length, Transfer-Encoding: a message's framing, which pasture writes
// from its own parse in both directions and never copies.
bool is_framing(std::string_view name);

// The field names a message's Connection header(s) nominate as hop-by-hop
// (RFC 9110 7.6.1). Never nominated, whatever a peer says: the framing fields
// and Host (dropping them would let the body of one message be read as the
// next one by a peer that parses the rest). Built once per head and sorted,
// so a head with thousands of tokens and fields costs O(n log n), not n^2.
// Views point into the head's buffer. No allocation for the usual values
// ("close", "keep-alive", "upgrade"), which name hop-by-hop fields anyway.
class ConnectionTokens {
 public:
  void add(std::string_view connection_value);  // one Connection field's value
  void finish();                                // after the last add()
  bool nominates(std::string_view name) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<std::string_view> tokens_;
};

// Request-target pieces.
struct RequestTarget {
  std::string_view path;   // "/a/b" (origin form; "*" for OPTIONS *)
  std::string_view query;  // after '?', without it; empty if none
  bool has_query = false;
  std::string_view authority;  // from absolute-form "http://host/path", else empty
};
bool split_target(std::string_view url, RequestTarget* out);

// The request path as routing and the upstream both see it: one function
// makes both forms, so the prefix a urlmap matched is the prefix the chosen
// upstream or hosted app finds at the start of its path.
//   decoded: every %XX decoded (%2F too: an encoded slash separates segments,
//            as in nginx's location matching and in a WSGI app's PATH_INFO),
//            then "//" merged (nginx merge_slashes, paste.urlmap) and dot
//            segments removed (RFC 3986 5.2.4, "%2e%2e" counts): what urlmap
//            prefixes are matched against (paste.urlmap's PATH_INFO).
//   wire:    `decoded` percent-encoded again where a byte would change the
//            request line's meaning ('%', '?', '#', controls, space, bytes
//            >= 0x80): what is forwarded. decode(wire) == decoded.
// A path already in that form (the usual case) is returned as is, both views
// being `raw`, and `scratch` is untouched; else both point into `scratch`.
// False (400) for a malformed %-escape, %00, a path not starting with '/'
// (other than "*"), or dot segments that climb above the root ("/../x"), as
// nginx.
struct NormalPath {
  std::string_view decoded;
  std::string_view wire;
};
bool normalize_path(std::string_view raw, std::string& scratch, NormalPath* out);
// Appends `decoded` bytes percent-encoded as NormalPath::wire is.
void append_path_encoded(std::string& out, std::string_view decoded);

// urljoin(base, path.lstrip('/')) as Python's urllib.parse.urljoin does for
// the simple cases Paste's proxy produces.
std::string join_base_path(std::string_view base, std::string_view path);

// Append an integer as decimal.
void append_uint(std::string& out, uint64_t v);
// `prefix` ("Name: "), the decimal `v` and CRLF, in one append.
void append_uint_line(std::string& out, std::string_view prefix, uint64_t v);
// A chunk's size line ("1a2f\r\n") for n bytes, written at the end of buf.
struct ChunkLine {
  char buf[20];
  std::string_view text;
  explicit ChunkLine(size_t n);
  ChunkLine(const ChunkLine&) = delete;  // text points into buf
};

// Reason phrase for a status code ("OK", "Bad Gateway", ...).
const char* reason_phrase(int status);

}  // namespace pasture::worker
