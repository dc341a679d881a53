#include "worker/router.h"

#include <string>

namespace pasture::worker {
namespace {

bool path_matches(std::string_view path, std::string_view prefix) {
  if (prefix.empty()) return true;
  if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

// Each filter of `hd`, in order; a prefix filter changes `rest` (PATH_INFO).
void pass_filters(const conf::Handler& hd, std::string_view path, std::string_view& rest, RouteFilters& rf) {
  for (const conf::Filter& f : hd.filters) {
    if (rf.n < RouteFilters::kMax) {
      RouteFilters::At& a = rf.at[rf.n++];
      a.filter = &f;
      a.after_prefix = rf.prefixed;
      // SCRIPT_NAME + PATH_INFO: the whole path before a prefix filter,
      // whatever a urlmap took; after one, its prefix and what followed it.
      a.script = rf.prefixed ? rf.prefix_script : std::string_view();
      a.path = rf.prefixed ? rf.prefix_rest : path;
    }
    if (f.kind != conf::FilterKind::Prefix) continue;
    rest = strip_prefix(rest, f.prefix);
    rf.prefixed = true;
    rf.prefix_script = f.prefix;
    rf.prefix_rest = rest;
    rf.prefix_consumed = 0;
    rf.last_prefix = &f;
  }
}

}  // namespace

std::string_view strip_prefix(std::string_view path, std::string_view prefix) {
  // PrefixMiddleware: `if not url: url = '/'`, matched or not (found by
  // review: a urlmap's mount point itself reached the app as '').
  if (path.empty()) return "/";
  if (path.size() < prefix.size()) return path;
  for (size_t i = 0; i < prefix.size(); i++) {
    if (prefix[i] == '.' ? path[i] == '\n' : path[i] != prefix[i]) return path;
  }
  std::string_view rest = path.substr(prefix.size());
  // `(.*)$`: '.' stops at a newline, and `$` matches only at the end or
  // before a final newline.
  size_t nl = rest.find('\n');
  if (nl != std::string_view::npos && nl + 1 != rest.size()) return path;
  return rest.empty() ? std::string_view("/") : rest;
}

RouteResult route(const conf::Site& site, std::string_view host_in,
                  std::string_view path, RouteFilters* filters) {
  RouteResult r;
  int h = site.root;
  // The host, lower-cased and split, is made the first time an entry
  // names a domain (most sites map by path alone); host_port is never
  // empty once made (it ends in ":port").
  char hostbuf[256];
  bool host_ok = false;
  std::string_view host_noport;
  std::string host_port;
  auto make_host = [&] {
    // Longer than any DNS name: matches no domain (never a truncated prefix).
    host_ok = host_in.size() < sizeof hostbuf;
    size_t hl = host_ok ? host_in.size() : 0;
    for (size_t i = 0; i < hl; i++) {
      char c = host_in[i];
      hostbuf[i] = (c >= 'A' && c <= 'Z') ? char(c + 32) : c;
    }
    std::string_view host(hostbuf, hl);
    // As paste.urlmap: split off the port, else the scheme's default (http: 80).
    std::string_view port = "80";
    host_noport = host;
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos) {
      host_noport = host.substr(0, colon);
      port = host.substr(colon + 1);
    }
    // "example.com." is example.com to DNS and to most apps' host checks: as
    // nginx (ngx_http_validate_host), one trailing dot is not part of the name.
    if (host_noport.size() > 1 && host_noport.back() == '.') host_noport.remove_suffix(1);
    host_port.assign(host_noport).append(":").append(port);
  };
  std::string_view rest = path;
  uint32_t consumed = 0;

  for (int depth = 0; depth < 64 && h >= 0; depth++) {
    const conf::Handler& hd = site.handlers[h];
    if (filters && !hd.filters.empty()) pass_filters(hd, path, rest, *filters);
    if (hd.kind != conf::HandlerKind::UrlMap) {
      r.handler = h;
      r.script_name_len = consumed;
      return r;
    }
    int next = hd.not_found;
    for (const conf::UrlMapEntry& e : hd.entries) {
      if (!e.domain.empty()) {
        if (host_port.empty()) make_host();
        if (!host_ok || (e.domain != host_noport && e.domain != host_port)) continue;
      }
      if (!path_matches(rest, e.path)) continue;
      rest.remove_prefix(e.path.size());
      consumed += (uint32_t)e.path.size();
      if (filters && filters->prefixed) filters->prefix_consumed += (uint32_t)e.path.size();
      next = e.handler;
      break;
    }
    h = next;
  }
  return r;
}

}  // namespace pasture::worker
