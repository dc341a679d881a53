// The urlmap router: keys as paste.urlmap reads them (conf/urlmap.cc:
// parse_path_expression, normalize_url, dispatch_order, composed as
// AppBuilder::urlmap composes them) and requests routed through the handler
// tree (worker/router.cc), compared with a transcription of paste.urlmap's
// URLMap.__call__ (plus pasture's documented host handling: a port after
// the last ':' outside brackets, one trailing dot dropped, no domain match
// for a host of 256 bytes or more).
//
// Input: lines. Keys of the root map until an empty line (a key starting
// with '>' routes to the nested map, the others to leaf apps), keys of the
// nested map until an empty line, then requests: "host<TAB>raw path".
#include <string>
#include <vector>

#include "conf/pyutil.h"
#include "conf/urlmap.h"
#include "tests/fuzz/fuzz_util.h"
#include "worker/http_head.h"
#include "worker/router.h"

using namespace pasture;

namespace {

// AppBuilder::urlmap's entries for `keys`, targets from `target`.
bool build_map(conf::Site& site, conf::Handler& h, const std::vector<std::string>& keys,
               const std::vector<int>& target) {
  std::vector<conf::urlmap::Normalized> norm;
  std::vector<conf::UrlMapEntry> entries;
  for (size_t i = 0; i < keys.size(); i++) {
    conf::urlmap::Normalized n;
    try {
      n = conf::urlmap::normalize_url(conf::urlmap::parse_path_expression(keys[i]));
    } catch (const conf::py::Error&) {
      return false;  // a config error
    }
    entries.push_back({n.domain.value_or(""), n.path, target[i], {}});
    norm.push_back(n);
  }
  for (size_t i : conf::urlmap::dispatch_order(norm)) h.entries.push_back(entries[i]);
  (void)site;
  return true;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = char(c + 32);
  return o;
}

// URLMap.__call__, for the documented host rules.
worker::RouteResult reference(const conf::Site& site, std::string_view host_in, std::string_view path) {
  worker::RouteResult r;
  std::string host = lower(host_in), port = "80";
  bool host_ok = host.size() < 256;
  size_t colon = host.rfind(':');
  if (colon != std::string::npos && host.find(']', colon) == std::string::npos) {
    port = host.substr(colon + 1);
    host.resize(colon);
  }
  if (host.size() > 1 && host.back() == '.') host.pop_back();
  int h = site.root;
  std::string rest(path);
  uint32_t consumed = 0;
  for (int depth = 0; depth < 64 && h >= 0; depth++) {
    const conf::Handler& hd = site.handlers[h];
    if (hd.kind != conf::HandlerKind::UrlMap) {
      r.handler = h;
      r.script_name_len = consumed;
      return r;
    }
    int next = hd.not_found;
    for (const conf::UrlMapEntry& e : hd.entries) {
      if (!e.domain.empty() && (!host_ok || (e.domain != host && e.domain != host + ":" + port))) continue;
      // paste.urlmap: path == prefix or path.startswith(prefix + "/");
      // pasture also routes OPTIONS's "*" to a "/" entry (prefix "").
      if (e.path.empty() || rest == e.path || rest.rfind(e.path + "/", 0) == 0) {
        rest = rest.substr(e.path.size());
        consumed += (uint32_t)e.path.size();
        next = e.handler;
        break;
      }
    }
    h = next;
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  std::vector<std::string> keys[2];
  std::vector<int> targets[2];
  // Handlers: 0 root map, 1 nested map, 2.. leaves (echo).
  conf::Site site;
  site.root = 0;
  site.handlers.resize(2);
  site.handlers[0].kind = site.handlers[1].kind = conf::HandlerKind::UrlMap;
  for (int m = 0; m < 2; m++) {
    for (std::string_view l; !in.empty() && !(l = in.until('\n')).empty();) {
      if (m == 0 && l[0] == '>') {
        keys[m].emplace_back(l.substr(1));
        targets[m].push_back(1);
      } else {
        keys[m].emplace_back(l);
        targets[m].push_back((int)site.handlers.size());
        site.handlers.emplace_back();  // echo
      }
    }
  }
  if (keys[0].size() + keys[1].size() > 64) return 0;
  if (!build_map(site, site.handlers[0], keys[0], targets[0]) ||
      !build_map(site, site.handlers[1], keys[1], targets[1]))
    return 0;
  site.handlers[1].not_found = keys[1].empty() ? -1 : targets[1].back();
  while (!in.empty()) {
    std::string_view host = in.until('\t'), raw = in.until('\n');
    std::string scratch;
    worker::NormalPath np;
    if (!worker::normalize_path(raw, scratch, &np)) continue;
    worker::RouteResult got = worker::route(site, host, np.decoded);
    worker::RouteResult want = reference(site, host, np.decoded);
    std::string what = std::string(host) + " " + std::string(np.decoded);
    FUZZ_CHECK(got.handler == want.handler, "routed to another handler", what);
    FUZZ_CHECK(got.script_name_len == want.script_name_len, "another SCRIPT_NAME", what);
    FUZZ_CHECK(got.script_name_len <= np.decoded.size(), "SCRIPT_NAME longer than the path", what);
  }
  return 0;
}
