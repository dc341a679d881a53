#include "worker/http_head.h"

#include <algorithm>
#include <cstring>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace pasture::worker {

void HeadCollector::extend(Span& s, Last kind, const char* at, size_t n) {
  if (last == kind && s.len) {
    s.len += (uint32_t)n;  // contiguous continuation in the same buffer
  } else {
    s.off = (uint32_t)(at - base);
    s.len = (uint32_t)n;
  }
  last = kind;
}

void HeadCollector::rebase(uint32_t delta) {
  auto shift = [delta](Span& s) { s.off = s.off >= delta ? s.off - delta : 0; };
  shift(url);
  shift(status);
  if (headers)
    for (HeaderSpan& h : *headers) {
      shift(h.name);
      shift(h.value);
    }
}

namespace {

#ifdef __SSE2__
// Bit i set: byte i of the 16 at `p` is a letter, a digit or '-'.
unsigned plain_mask(const char* p) {
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  __m128i l = _mm_or_si128(v, _mm_set1_epi8(0x20));  // signed: bytes >= 0x80 are below 'a'
  __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)),
                                _mm_cmpgt_epi8(_mm_set1_epi8('z' + 1), l));
  __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                _mm_cmpgt_epi8(_mm_set1_epi8('9' + 1), v));
  __m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
  return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(alpha, digit), dash));
}
#endif

bool istarts_with(std::string_view name, std::string_view lower_prefix) {
  return name.size() >= lower_prefix.size() &&
         iequals(name.substr(0, lower_prefix.size()), lower_prefix);
}

}  // namespace

bool plain_field_name(std::string_view name, const char* lo) {
#ifdef __SSE2__
  size_t n = name.size();
  const char* p = name.data();
  const char* end = p + n;
  if (n == 0) return false;
  if (n < 16) {
    if (end - lo < 16) return false;  // the 16 bytes ending at `end` are not all ours
    return plain_mask(end - 16) >> (16 - n) == (1u << n) - 1;
  }
  for (; p + 16 <= end; p += 16)
    if (plain_mask(p) != 0xffff) return false;
  return p == end || plain_mask(end - 16) == 0xffff;
#else
  (void)lo;
  if (name.empty()) return false;
  for (char c : name)
    if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9') && c != '-') return false;
  return true;
#endif
}

// One switch on the length, as is_hop_by_hop(): a name pasture does not
// know costs a comparison or two.
FieldKind classify_field(std::string_view n) {
  switch (n.size()) {
    case 2:
      if (iequals(n, "te")) return FieldKind::kDrop;
      break;
    case 3:
      if (iequals(n, "via")) return FieldKind::kVia;
      break;
    case 4:
      if (iequals(n, "host")) return FieldKind::kHost;
      break;
    case 6:
      if (iequals(n, "expect")) return FieldKind::kExpect;
      break;
    case 7:
      if (iequals(n, "trailer") || iequals(n, "upgrade")) return FieldKind::kDrop;
      break;
    case 9:
      if (iequals(n, "forwarded") || iequals(n, "x-real-ip")) return FieldKind::kClaim;
      break;
    case 10:
      if (iequals(n, "connection") || iequals(n, "keep-alive")) return FieldKind::kDrop;
      break;
    case 12:
      if (iequals(n, "max-forwards")) return FieldKind::kMaxForwards;
      break;
    case 14:
      if (iequals(n, "content-length") || iequals(n, "http2-settings")) return FieldKind::kDrop;
      break;
    case 15:
      if (iequals(n, "x-forwarded-for")) return FieldKind::kXff;
      break;
    case 16:
      if (iequals(n, "x-forwarded-host")) return FieldKind::kXfh;
      if (iequals(n, "proxy-connection")) return FieldKind::kDrop;
      break;
    case 17:
      if (iequals(n, "x-forwarded-proto")) return FieldKind::kXfp;
      if (iequals(n, "transfer-encoding")) return FieldKind::kTransferEncoding;
      break;
    default:
      break;
  }
  if (n.size() < 10 || (n[0] | 0x20) != 'x' || n[1] != '-') return FieldKind::kOther;
  if (istarts_with(n, "x-forwarded-")) return FieldKind::kClaim;
  if (istarts_with(n, "x-pasture-")) return FieldKind::kDrop;  // pasture's internal fields
  return FieldKind::kOther;
}

FieldKind field_kind(std::string_view name) {
  return name.find('_') != std::string_view::npos ? FieldKind::kUnderscore : classify_field(name);
}

bool has_token(std::string_view list, std::string_view token) {
  size_t i = 0;
  while (i < list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string_view::npos) j = list.size();
    std::string_view t = list.substr(i, j - i);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (iequals(t, token)) return true;
    i = j + 1;
  }
  return false;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

namespace {

// valid_host's bytes: 1 refused, 2 a dot (refused after a dot).
constexpr struct HostBytes {
  uint8_t kind[256] = {};
  constexpr HostBytes() {
    for (int c = 0; c <= 0x20; c++) kind[c] = 1;
    kind[0x7f] = kind[(unsigned char)'/'] = 1;
    kind[(unsigned char)'.'] = 2;
  }
} kHostBytes;

}  // namespace

bool valid_host(std::string_view host) {
  if (host.empty()) return false;
  // A table, not a test per byte (17 instructions a byte, on every request).
  uint8_t prev = 0;
  for (char ch : host) {
    uint8_t k = kHostBytes.kind[(unsigned char)ch];
    if (k & (1 | prev)) return false;  // refused, or a dot after a dot
    prev = k;
  }
  return true;
}

bool valid_authority(std::string_view authority) {
  return valid_host(authority) && authority.find('@') == std::string_view::npos;
}

namespace {

// Bytes NormalPath::wire carries as %XX: those that would end the path or
// change how the next hop splits or decodes it.
constexpr bool needs_escape(unsigned char c) {
  return c == '%' || c == '?' || c == '#' || c <= 0x20 || c >= 0x7f;
}

// 1: needs_escape(); 2: '/', after which a "/", "." or ".." segment may start.
constexpr struct PathBytes {
  uint8_t kind[256] = {};
  constexpr PathBytes() {
    for (int c = 0; c < 256; c++) kind[c] = needs_escape((unsigned char)c) ? 1 : 0;
    kind[(unsigned char)'/'] = 2;
  }
} kPathBytes;

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') return (ch | 0x20) - 'a' + 10;
  return -1;
}

// No escape to decode, nothing to escape, no "//", no "." or ".." segment.
bool already_normal(std::string_view p) {
  for (size_t i = 0; i < p.size(); i++) {
    uint8_t kind = kPathBytes.kind[(unsigned char)p[i]];
    if (kind == 0) continue;
    if (kind == 1) return false;
    if (i + 1 == p.size()) continue;
    std::string_view rest = p.substr(i + 1);
    if (rest[0] == '/') return false;
    if (rest[0] == '.' && (rest.size() == 1 || rest[1] == '/')) return false;
    if (rest.size() >= 2 && rest[0] == '.' && rest[1] == '.' && (rest.size() == 2 || rest[2] == '/'))
      return false;
  }
  return true;
}

}  // namespace

void append_path_encoded(std::string& out, std::string_view decoded) {
  static const char kHex[] = "0123456789ABCDEF";
  for (char ch : decoded) {
    auto c = (unsigned char)ch;
    if (needs_escape(c)) {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
}

bool normalize_path(std::string_view raw, std::string& scratch, NormalPath* out) {
  if (raw == "*" || (!raw.empty() && raw[0] == '/' && already_normal(raw))) {
    out->decoded = out->wire = raw;
    return true;
  }
  if (raw.empty() || raw[0] != '/') return false;
  std::string dec;
  dec.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); i++) {
    if (raw[i] != '%') {
      dec.push_back(raw[i]);
      continue;
    }
    int hi = i + 2 < raw.size() ? hex_value(raw[i + 1]) : -1;
    int lo = hi >= 0 ? hex_value(raw[i + 2]) : -1;
    if (lo < 0 || (hi | lo) == 0) return false;  // "%zz", "%4", "%00"
    dec.push_back(char(hi * 16 + lo));
    i += 2;
  }
  // Segment by segment: empty ones ("//") and "." vanish, ".." drops the
  // segment before it. A last segment of "", "." or ".." leaves a trailing
  // slash ("/a/b/.." -> "/a/").
  scratch.clear();
  bool trailing = false;
  for (size_t i = 1;;) {
    size_t j = dec.find('/', i);
    if (j == std::string::npos) j = dec.size();
    std::string_view seg(dec.data() + i, j - i);
    bool last = j == dec.size();
    if (seg.empty() || seg == ".") {
      trailing = last;
    } else if (seg == "..") {
      if (scratch.empty()) return false;  // above the root
      scratch.resize(scratch.rfind('/'));
      trailing = last;
    } else {
      scratch.push_back('/');
      scratch.append(seg);
      trailing = false;
    }
    if (last) break;
    i = j + 1;
  }
  if (scratch.empty() || trailing) scratch.push_back('/');
  size_t dlen = scratch.size();
  scratch.reserve(dlen * 4);  // the worst case: every byte escaped; no reallocation below
  append_path_encoded(scratch, std::string_view(scratch).substr(0, dlen));
  out->decoded = std::string_view(scratch).substr(0, dlen);
  out->wire = std::string_view(scratch).substr(dlen);
  return true;
}

bool is_hop_by_hop(std::string_view n) {
  switch (n.size()) {
    case 2: return iequals(n, "te");
    case 7: return iequals(n, "trailer") || iequals(n, "upgrade");
    case 10: return iequals(n, "connection") || iequals(n, "keep-alive");
    case 16: return iequals(n, "proxy-connection");
    case 14: return iequals(n, "http2-settings");
    default: return false;
  }
}

bool is_framing(std::string_view n) {
  return (n.size() == 14 && iequals(n, "content-length")) ||
         (n.size() == 17 && iequals(n, "transfer-encoding"));
}

namespace {

// Case-insensitive order for field names (ASCII letters folded).
int icompare(std::string_view a, std::string_view b) {
  size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x >= 'A' && x <= 'Z') x += 32;
    if (y >= 'A' && y <= 'Z') y += 32;
    if (x != y) return x < y ? -1 : 1;
  }
  return a.size() == b.size() ? 0 : a.size() < b.size() ? -1 : 1;
}

}  // namespace

void ConnectionTokens::add(std::string_view list) {
  size_t i = 0;
  while (i <= list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string_view::npos) j = list.size();
    std::string_view t = trim_ows(list.substr(i, j - i));
    i = j + 1;
    if (t.empty() || is_hop_by_hop(t) || is_framing(t) || (t.size() == 4 && iequals(t, "host")) ||
        (t.size() == 5 && iequals(t, "close")))
      continue;
    tokens_.push_back(t);
  }
}

void ConnectionTokens::finish() {
  if (tokens_.size() > 1)
    std::sort(tokens_.begin(), tokens_.end(),
              [](std::string_view a, std::string_view b) { return icompare(a, b) < 0; });
}

bool ConnectionTokens::nominates(std::string_view name) const {
  if (tokens_.empty()) return false;
  auto it = std::lower_bound(tokens_.begin(), tokens_.end(), name,
                             [](std::string_view a, std::string_view b) { return icompare(a, b) < 0; });
  return it != tokens_.end() && icompare(*it, name) == 0;
}

bool split_target(std::string_view url, RequestTarget* out) {
  *out = RequestTarget{};
  if (url.empty()) return false;
  if (url[0] != '/') {
    if (url == "*") {
      out->path = url;
      return true;
    }
    size_t scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) return false;
    std::string_view scheme = url.substr(0, scheme_end);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) return false;
    std::string_view rest = url.substr(scheme_end + 3);
    size_t slash = rest.find_first_of("/?");
    out->authority = rest.substr(0, slash);
    if (out->authority.empty()) return false;
    url = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    if (url[0] == '?') {
      out->path = "/";
      out->query = url.substr(1);
      out->has_query = true;
      return true;
    }
  }
  size_t q = url.find('?');
  if (q == std::string_view::npos) {
    out->path = url;
  } else {
    out->path = url.substr(0, q);
    out->query = url.substr(q + 1);
    out->has_query = true;
  }
  return true;
}

std::string join_base_path(std::string_view base, std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::string out;
  size_t slash = base.rfind('/');
  if (slash == std::string_view::npos)
    out = "/";
  else
    out.assign(base.substr(0, slash + 1));
  if (out.empty() || out[0] != '/') out.insert(out.begin(), '/');
  out.append(path);
  return out;
}

ChunkLine::ChunkLine(size_t n) {
  size_t i = sizeof buf;
  buf[--i] = '\n';
  buf[--i] = '\r';
  do {
    buf[--i] = "0123456789abcdef"[n & 15];
    n >>= 4;
  } while (n);
  text = std::string_view(buf + i, sizeof buf - i);
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  int i = sizeof buf;
  do {
    buf[--i] = char('0' + v % 10);
    v /= 10;
  } while (v);
  out.append(buf + i, sizeof buf - i);
}

void append_uint_line(std::string& out, std::string_view prefix, uint64_t v) {
  char buf[64];
  if (prefix.size() > sizeof buf - 24) {
    out.append(prefix.data(), prefix.size());
    append_uint(out, v);
    out.append("\r\n");
    return;
  }
  // Built from the end: CRLF, the digits, then the prefix before them.
  size_t i = sizeof buf;
  buf[--i] = '\n';
  buf[--i] = '\r';
  do {
    buf[--i] = char('0' + v % 10);
    v /= 10;
  } while (v);
  i -= prefix.size();
  if (!prefix.empty()) memcpy(buf + i, prefix.data(), prefix.size());
  out.append(buf + i, sizeof buf - i);
}

// RFC 9110 section 15 (and 103, 429, 431, 451, 511 from their RFCs).
const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
  }
}

}  // namespace pasture::worker
