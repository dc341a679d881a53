#include "worker/proxy_head.h"

namespace pasture::worker {
namespace {

void append(std::string& o, std::string_view s) { o.append(s.data(), s.size()); }

bool is_hop_counted(std::string_view method) { return method == "OPTIONS" || method == "TRACE"; }

}  // namespace

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

void build_proxy_head(std::string& o, const ProxyHeadInput& in, const ProxyHeadPolicy& p) {
  RequestTarget t;
  split_target(in.url, &t);
  append(o, in.method);
  o.push_back(' ');
  if (!p.base_path.empty() && p.base_path != "/") {
    o.append(join_base_path(p.base_path, t.path));
    if (t.has_query) o.append("?").append(t.query);
  } else if (!t.authority.empty()) {  // absolute form: send origin form
    append(o, t.path);
    if (t.has_query) o.append("?").append(t.query);
  } else {
    append(o, in.url);
  }
  o.append(" HTTP/1.1\r\n");

  const char* base = in.base;
  std::string_view host;
  ConnectionTokens nominated;
  for (const HeaderSpan& h : *in.headers) {
    std::string_view name = span_view(base, h.name);
    if (name.size() == 10 && iequals(name, "connection")) nominated.add(span_view(base, h.value));
  }
  nominated.finish();
  // X-Forwarded-For: every value the client sent, in order, then the peer
  // (nginx's $proxy_add_x_forwarded_for). Via likewise, then this hop.
  FieldJoin xff, via;
  bool hop_counted = is_hop_counted(in.method);
  for (const HeaderSpan& h : *in.headers) {
    std::string_view name = span_view(base, h.name);
    std::string_view value = span_view(base, h.value);
    if (is_hop_by_hop(name) || is_framing(name)) continue;
    if (nominated.nominates(name)) continue;
    if (name.size() == 4 && iequals(name, "host")) {
      host = value;
      if (!p.preserve_host) continue;
    } else if (name.size() == 15 && iequals(name, "x-forwarded-for")) {
      xff.add(value);
      continue;
    } else if (name.size() == 3 && !p.via.empty() && iequals(name, "via")) {
      via.add(value);
      continue;
    } else if (name.size() == 6 && in.http10 && iequals(name, "expect")) {
      continue;
    } else if (name.size() == 12 && hop_counted && iequals(name, "max-forwards")) {
      // Zero was answered here (ClientConn::answer_here); a value that is no
      // number goes on as it came.
      int64_t left = max_forwards_value(value);
      if (left > 0) {
        o.append("Max-Forwards: ");
        append_uint(o, (uint64_t)(left - 1));
        o.append("\r\n");
        continue;
      }
    } else if ((name.size() == 17 && iequals(name, "x-forwarded-proto")) ||
               (name.size() == 16 && iequals(name, "x-forwarded-host")) ||
               (p.hosted && iequals(name, "x-pasture-script-name"))) {
      continue;  // ours to set; a client's value is never trusted
    }
    append(o, name);
    o.append(": ");
    append(o, value);
    o.append("\r\n");
  }
  if (in.body == ProxyHeadInput::Body::kChunked) {
    o.append("Transfer-Encoding: chunked\r\n");
  } else if (in.body == ProxyHeadInput::Body::kLength) {
    o.append("Content-Length: ");
    append_uint(o, in.content_length);
    o.append("\r\n");
  }
  if (!p.preserve_host) {
    o.append("Host: ");
    append(o, p.upstream_host);
    o.append("\r\n");
  } else if (host.empty()) {
    o.append("Host: ");
    append(o, t.authority.empty() ? p.fallback_host : t.authority);
    o.append("\r\n");
  }
  if (host.empty()) host = t.authority;
  o.append("X-Forwarded-For: ");
  if (!xff.value().empty()) {
    append(o, xff.value());
    o.append(", ");
  }
  append(o, in.peer);
  o.append("\r\nX-Forwarded-Proto: http\r\n");
  // A hosted WSGI app learns the urlmap prefix it is mounted at (its
  // SCRIPT_NAME); python/pasture_wsgi.py strips it from PATH_INFO.
  if (p.hosted && in.script_len > 0 && in.script_len <= t.path.size()) {
    o.append("X-Pasture-Script-Name: ");
    append(o, t.path.substr(0, in.script_len));
    o.append("\r\n");
  }
  if (!host.empty()) {
    o.append("X-Forwarded-Host: ");
    append(o, host);
    o.append("\r\n");
  }
  if (!p.via.empty()) append_via(o, via, in.http10, p.via);
  o.append("\r\n");
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
    append(o, name);
    o.append(": ");
    append(o, span_view(in.base, h.value));
    o.append("\r\n");
  }
  o.append("\r\n");
}

}  // namespace pasture::worker
