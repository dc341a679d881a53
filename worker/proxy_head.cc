#include "worker/proxy_head.h"

#include <netinet/in.h>

#include <cstring>

namespace pasture::worker {
namespace {

void append(std::string& o, std::string_view s) { o.append(s.data(), s.size()); }

// A name with '_' is what a CGI/WSGI server (wsgiref, Paste's httpserver)
// maps to the same environ key as its '-' spelling: it passes only when
// that spelling would be an ordinary field.
FieldKind classify_folded(std::string_view name) {
  std::string folded(name);
  for (char& c : folded)
    if (c == '_') c = '-';
  return classify_field(folded) == FieldKind::kOther ? FieldKind::kOther : FieldKind::kDrop;
}

void append_request_line(std::string& o, const ProxyHeadInput& in, const ProxyHeadPolicy& p,
                         const RequestTarget& t, const NormalPath& np) {
  append(o, in.method);
  o.push_back(' ');
  if (!p.base_path.empty() && p.base_path != "/") {
    o.append(join_base_path(p.base_path, np.wire));  // no dot segment left to climb out of it
  } else if (np.wire.data() == in.url.data()) {  // origin form, path already normal
    append(o, in.url);
    o.append(" HTTP/1.1\r\n");
    return;
  } else {
    append(o, np.wire);
  }
  if (t.has_query) o.append("?").append(t.query);
  o.append(" HTTP/1.1\r\n");
}

void append_field(std::string& o, std::string_view name, std::string_view value) {
  append(o, name);
  o.append(": ");
  append(o, value);
  o.append("\r\n");
}

// `prefix` is "Name: ". A short line is built here and appended once (an
// append is ~30 instructions: Host, X-Forwarded-For and -Host on every
// proxied request).
void append_line(std::string& o, std::string_view prefix, std::string_view value) {
  char line[256];
  size_t n = prefix.size() + value.size() + 2;
  if (n <= sizeof line) {
    // (An empty view may have no data: memcpy must not get its null.)
    if (!prefix.empty()) memcpy(line, prefix.data(), prefix.size());
    if (!value.empty()) memcpy(line + prefix.size(), value.data(), value.size());
    memcpy(line + n - 2, "\r\n", 2);
    o.append(line, n);
    return;
  }
  append(o, prefix);
  append(o, value);
  o.append("\r\n");
}

// What copy_fields() saw of the fields pasture writes itself: views into
// the head (several X-Forwarded-For or Via fields joined).
struct Seen {
  std::string_view host;  // the Host to forward and report (X-Forwarded-Host)
  std::string_view xfp, xfh;
  FieldJoin xff, via;
};

bool is_hop_counted(std::string_view method) { return method == "OPTIONS" || method == "TRACE"; }

// Appends the client's fields that pass on (see build_proxy_head) and
// records in `seen` those pasture rewrites.
void copy_fields(std::string& o, const ProxyHeadInput& in, const ProxyHeadPolicy& p, bool absolute,
                 Seen& seen) {
  const char* base = in.base;
  ConnectionTokens nominated;
  for (const HeaderSpan& h : *in.headers) {
    std::string_view name = span_view(base, h.name);
    if (name.size() == 10 && iequals(name, "connection")) nominated.add(span_view(base, h.value));
  }
  nominated.finish();
  // A client's forwarding claims pass on only from a trusted proxy, or to a
  // hosted app (as paster serve shows them: plain HTTP_* keys).
  bool claims = in.trusted_peer || p.hosted;
  // Fields that pass unchanged go as runs of the client's lines (LineRun:
  // 2 KiB of cookies and 30 fields cost a few appends, not 120).
  LineRun run;
  for (const HeaderSpan& h : *in.headers) {
    std::string_view name = span_view(base, h.name);
    std::string_view value = span_view(base, h.value);
    // Trailing OWS is not part of the value (llhttp drops the leading one).
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    FieldKind f = h.kind != FieldKind::kUnknown ? h.kind : field_kind(name);
    bool underscore = f == FieldKind::kUnderscore;
    if (underscore && !p.underscores) continue;
    if (!in.subject_header.empty() && same_field_folded(name, in.subject_header)) continue;  // ours alone
    if (underscore) f = classify_folded(name);
    if (f == FieldKind::kDrop || f == FieldKind::kTransferEncoding ||
        (!nominated.empty() && nominated.nominates(name)))
      continue;
    if (f == FieldKind::kOther) {
      // the usual field: on as it came
    } else if (f == FieldKind::kHost) {
      if (absolute) continue;  // the target's authority is the Host
      seen.host = value;
      if (!p.preserve_host) continue;
    } else if (f == FieldKind::kXff) {
      // Every value passed on, in order (nginx's $proxy_add_x_forwarded_for).
      if (claims) seen.xff.add(value);
      continue;
    } else if (f == FieldKind::kXfp || f == FieldKind::kXfh) {
      // Ours to set, unless a trusted proxy set it (its last field).
      if (in.trusted_peer) (f == FieldKind::kXfp ? seen.xfp : seen.xfh) = value;
      continue;
    } else if (f == FieldKind::kClaim && !claims) {
      continue;
    } else if (f == FieldKind::kVia && !p.via.empty()) {
      seen.via.add(value);  // then this hop (build_proxy_head)
      continue;
    } else if (f == FieldKind::kExpect && in.http10) {
      continue;
    } else if (f == FieldKind::kMaxForwards && is_hop_counted(in.method)) {
      // Zero was answered here (Exchange::answer_here); a value that is no
      // number goes on as it came.
      int64_t left = max_forwards_value(value);
      if (left > 0) {
        run.flush(o);
        o.append("Max-Forwards: ");
        append_uint(o, (uint64_t)(left - 1));
        o.append("\r\n");
        continue;
      }
    }
    if (in.lines && run.take(o, name, value)) continue;  // (a field it does not take ends the run)
    append_field(o, name, value);
  }
  run.flush(o);
}

}  // namespace

bool same_field_folded(std::string_view name, std::string_view header) {
  if (name.size() != header.size()) return false;
  auto fold = [](char c) -> char { return c == '_' ? '-' : c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c; };
  for (size_t i = 0; i < name.size(); i++)
    if (fold(name[i]) != fold(header[i])) return false;
  return true;
}

bool build_proxy_head(std::string& o, const ProxyHeadInput& in, const ProxyHeadPolicy& p) {
  RequestTarget own_t;
  std::string scratch;
  NormalPath own_np;
  if (!in.target || !in.path) {
    if (!split_target(in.url, &own_t) || !normalize_path(own_t.path, scratch, &own_np)) return false;
  }
  const RequestTarget& t = in.target && in.path ? *in.target : own_t;
  const NormalPath& np = in.target && in.path ? *in.path : own_np;
  append_request_line(o, in, p, t, np);
  bool absolute = !t.authority.empty();
  Seen seen;
  seen.host = t.authority;
  copy_fields(o, in, p, absolute, seen);
  if (in.body == ProxyHeadInput::Body::kChunked) {
    o.append("Transfer-Encoding: chunked\r\n");
  } else if (in.body == ProxyHeadInput::Body::kLength) {
    append_uint_line(o, "Content-Length: ", in.content_length);
  }
  if (!in.upgrade.empty()) {
    append_line(o, "Upgrade: ", in.upgrade);
    o.append("Connection: upgrade\r\n");
  }
  if (!p.preserve_host)
    append_line(o, "Host: ", p.upstream_host);
  else if (absolute)
    append_line(o, "Host: ", t.authority);
  else if (seen.host.empty())
    append_line(o, "Host: ", p.fallback_host);
  if (seen.xff.value().empty()) {
    append_line(o, "X-Forwarded-For: ", in.peer);
  } else {
    o.append("X-Forwarded-For: ");
    append(o, seen.xff.value());
    o.append(", ");
    append(o, in.peer);
    o.append("\r\n");
  }
  if (!seen.xfp.empty())
    append_line(o, "X-Forwarded-Proto: ", seen.xfp);
  else
    o.append(in.tls ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
  if (!in.subject_header.empty() && !in.subject.empty()) append_field(o, in.subject_header, in.subject);
  // A hosted WSGI app learns the urlmap prefix it is mounted at (its
  // SCRIPT_NAME): python/pasture_wsgi.py decodes it and strips it from
  // PATH_INFO, which its server decodes from np.wire.
  if (p.hosted && in.script_len > 0 && in.script_len <= np.decoded.size()) {
    o.append("X-Pasture-Script-Name: ");
    append_path_encoded(o, np.decoded.substr(0, in.script_len));
    o.append("\r\n");
  }
  if (!in.forwarded_prefix.empty()) {
    o.append("X-Forwarded-Prefix: ");
    append_path_encoded(o, in.forwarded_prefix);
    o.append("\r\n");
  }
  std::string_view xfh = seen.xfh.empty() ? seen.host : seen.xfh;
  if (!xfh.empty()) append_line(o, "X-Forwarded-Host: ", xfh);
  if (!p.via.empty()) append_via(o, seen.via, in.http10, p.via);
  o.append("\r\n");
  return true;
}

void FieldJoin::add(std::string_view v) {
  if (view_.empty()) {
    view_ = v;
    return;
  }
  if (joined_.empty()) joined_.assign(view_);
  joined_.append(", ");
  append(joined_, v);
  view_ = joined_;
}

void append_via(std::string& o, const FieldJoin& earlier, bool http10, std::string_view name) {
  if (earlier.value().empty()) {  // this hop alone, the usual case: one append
    append_line(o, http10 ? "Via: 1.0 " : "Via: 1.1 ", name);
    return;
  }
  o.append("Via: ");
  if (!earlier.value().empty()) {
    append(o, earlier.value());
    o.append(", ");
  }
  o.append(http10 ? "1.0 " : "1.1 ");
  append(o, name);
  o.append("\r\n");
}

int64_t max_forwards_value(std::string_view v) {
  v = trim_ows(v);
  if (v.empty()) return -1;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return -1;
    n = n > (INT64_MAX - 9) / 10 ? INT64_MAX : n * 10 + (c - '0');
  }
  return n;
}

void build_trace_echo(std::string& o, const ProxyHeadInput& in) {
  append(o, in.method);
  o.push_back(' ');
  append(o, in.url);
  o.append(in.http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  for (const HeaderSpan& h : *in.headers) {
    std::string_view name = span_view(in.base, h.name);
    if (iequals(name, "authorization") || iequals(name, "proxy-authorization") ||
        iequals(name, "cookie"))
      continue;
    append_field(o, name, span_view(in.base, h.value));
  }
  o.append("\r\n");
}

bool peer_trusted(const std::vector<conf::AddressRange>& ranges, const sockaddr* peer) {
  if (ranges.empty() || !peer) return false;
  const uint8_t* addr = nullptr;
  int family = peer->sa_family;
  if (family == AF_INET) {
    addr = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(peer)->sin_addr);
  } else if (family == AF_INET6) {
    const auto* a6 = &reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr;
    addr = a6->s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
      family = AF_INET;
      addr += 12;
    }
  }
  for (const conf::AddressRange& r : ranges) {
    if (r.unix) {
      if (family == AF_UNIX) return true;
      continue;
    }
    if (r.family != family || !addr) continue;
    unsigned full = r.prefix / 8, rest = r.prefix % 8;
    if (std::memcmp(addr, r.addr, full) != 0) continue;
    if (rest && ((addr[full] ^ r.addr[full]) & (0xff00 >> rest) & 0xff)) continue;
    return true;
  }
  return false;
}

}  // namespace pasture::worker
