#include "worker/proxy_head.h"

namespace pasture::worker {
namespace {

void append(std::string& o, std::string_view s) { o.append(s.data(), s.size()); }

}  // namespace

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
  // (nginx's $proxy_add_x_forwarded_for). One field (the usual case) is a
  // view; only several are joined into a string.
  std::string_view xff;
  std::string xff_joined;
  for (const HeaderSpan& h : *in.headers) {
    std::string_view name = span_view(base, h.name);
    std::string_view value = span_view(base, h.value);
    if (is_hop_by_hop(name) || is_framing(name)) continue;
    if (nominated.nominates(name)) continue;
    if (name.size() == 4 && iequals(name, "host")) {
      host = value;
      if (!p.preserve_host) continue;
    } else if (name.size() == 15 && iequals(name, "x-forwarded-for")) {
      if (xff.empty()) {
        xff = value;
      } else {
        if (xff_joined.empty()) xff_joined.assign(xff);
        xff_joined.append(", ");
        append(xff_joined, value);
        xff = xff_joined;
      }
      continue;
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
  if (!xff.empty()) {
    append(o, xff);
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
  o.append("\r\n");
}

}  // namespace pasture::worker
