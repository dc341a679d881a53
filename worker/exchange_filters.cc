// Exchange, native filters (conf::Filter): the FilterSink in front of the
// connection's sink (gzip, translogger), and PrefixMiddleware's effect on
// the request: an in-process app's environ, the upstream's path.
#include <strings.h>

#include <ctime>

#include "worker/exchange.h"

namespace pasture::worker {
namespace {

bool ieq(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view first_item(std::string_view v) { return v.substr(0, v.find(',')); }  // .split(',')[0]

}  // namespace

void Exchange::attach_filters(const char* base, const RequestTarget& t) {
  const RouteFilters& rf = *rf_;
  if (rf.n == 0) return;
  // The request's fields as a WSGI environ has them: repeated ones joined with ','.
  std::string accept, xff, referer, agent;
  bool has_xff = false, has_referer = false, has_agent = false;
  auto join = [](std::string& to, bool& has, std::string_view v) {
    if (has) to.push_back(',');
    to.append(v.data(), v.size());
    has = true;
  };
  for (const HeaderSpan& h : *head_->headers) {
    std::string_view name = span_view(base, h.name), value = trim_ows(span_view(base, h.value));
    bool unused = false;
    if (ieq(name, "accept-encoding")) join(accept, unused, value);
    else if (ieq(name, "x-forwarded-for")) join(xff, has_xff, value);
    else if (ieq(name, "referer")) join(referer, has_referer, value);
    else if (ieq(name, "user-agent")) join(agent, has_agent, value);
  }
  const conf::Filter* fl[RouteFilters::kMax];
  for (int i = 0; i < rf.n; i++) fl[i] = rf.at[i].filter;
  if (!fsink_) fsink_ = new FilterSink(w_);
  fsink_->attach(sink_, fl, rf.n, filters::accepts_gzip(accept), method_ == HTTP_HEAD);
  sink_ = fsink_;
  bool popped_xff = false;  // a prefix filter before took X-Forwarded-For into REMOTE_ADDR
  for (int i = 0; i < rf.n; i++) {
    const conf::Filter& f = *rf.at[i].filter;
    if (f.kind == conf::FilterKind::Prefix && f.translate_forwarded_server) popped_xff = true;
    if (f.kind != conf::FilterKind::TransLogger) continue;
    TransLogEntry& e = fsink_->logs().emplace_back();
    e.filter = &f;
    if (popped_xff)
      e.remote_addr = has_xff ? std::string(first_item(xff)) : std::string(peer_text());
    else
      e.remote_addr = has_xff && !xff.empty() ? xff : std::string(peer_text());
    e.method = llhttp_method_name((llhttp_method_t)method_);
    std::string uri(rf.at[i].script);
    uri.append(rf.at[i].path);
    filters::append_quoted(e.request_uri, uri);
    if (!t.query.empty()) e.request_uri.append("?").append(t.query);
    e.http_version = http2_ ? "HTTP/2.0" : http10_ ? "HTTP/1.0" : "HTTP/1.1";  // as the access log
    e.time = filters::translogger_time(time(nullptr));
    e.referer = has_referer ? referer : "-";
    e.user_agent = has_agent ? agent : "-";
  }
}

void Exchange::detach_filters() {
  if (fsink_ && sink_ == fsink_) {
    sink_ = fsink_->inner();
    fsink_->detach();
  }
}

std::string Exchange::prefix_script() const {
  std::string s(rf_->prefix_script);
  s.append(rf_->prefix_rest.substr(0, rf_->prefix_consumed));
  return s;
}

std::string_view Exchange::prefix_path_info() const { return rf_->prefix_rest.substr(rf_->prefix_consumed); }

std::string_view Exchange::path_info(const NormalPath& np) const {
  if (rf_ && rf_->prefixed) return prefix_path_info();
  return std::string_view(np.decoded).substr(std::min<size_t>(script_len_, np.decoded.size()));
}

// The scheme and Host a prefix filter's app sees (PrefixMiddleware's
// X-Forwarded-* translation, force_port, scheme), for URLs pasture writes
// itself: the static add-slash redirect, as Paste's construct_url makes it
// from wsgi.url_scheme and HTTP_HOST. The first translating filter pops the
// fields (environ.pop): later ones see none.
void Exchange::prefix_origin(const char* base, std::string* scheme, std::string* host) const {
  bool popped = false;
  for (int k = 0; rf_ && k < rf_->n; k++) {
    const conf::Filter& f = *rf_->at[k].filter;
    if (f.kind != conf::FilterKind::Prefix) continue;
    if (f.translate_forwarded_server && !popped) {
      popped = true;
      std::string_view v = request_field(base, "x-forwarded-server");
      if (!v.empty()) *host = std::string(first_item(v));
      v = request_field(base, "x-forwarded-host");
      if (!v.empty()) *host = std::string(first_item(v));
      std::string_view sch = request_field(base, "x-forwarded-scheme");
      std::string_view proto = request_field(base, "x-forwarded-proto");
      if (!sch.empty())
        *scheme = std::string(sch);
      else if (!proto.empty())
        *scheme = std::string(proto);
    }
    if (f.has_force_port) {
      *host = host->substr(0, host->find(':'));
      if (!f.force_port.empty()) *host += ":" + f.force_port;
    }
    if (f.has_scheme) *scheme = f.scheme;
  }
}

// PrefixMiddleware.__call__ on the environ, for each prefix filter in turn
// (paste/deploy/config.py): SCRIPT_NAME/PATH_INFO, then the X-Forwarded-*
// translation, force_port and scheme.
void Exchange::prefix_environ(wsgi::Request& r) {
  if (!rf_ || !rf_->prefixed) return;
  std::string path = prefix_script();
  r.script_len = (uint32_t)path.size();
  path.append(prefix_path_info());
  r.path = r.add(path);
  auto find = [&r](std::string_view name) -> int {
    for (size_t i = 0; i < r.headers.size(); i++)
      if (ieq(r.view(r.headers[i].first), name)) return (int)i;
    return -1;
  };
  // environ.pop(key): the joined value of the field, and the field gone.
  auto pop = [&](std::string_view name, std::string* value) {
    bool found = false;
    for (size_t i = 0; i < r.headers.size();) {
      if (!ieq(r.view(r.headers[i].first), name)) {
        i++;
        continue;
      }
      if (found) value->push_back(',');
      value->append(r.view(r.headers[i].second));
      found = true;
      r.headers.erase(r.headers.begin() + (long)i);
    }
    return found;
  };
  auto set_host = [&](std::string_view v) {
    int i = find("host");
    wsgi::Request::Span s = r.add(v);
    if (i >= 0)
      r.headers[(size_t)i].second = s;
    else
      r.headers.emplace_back(r.add("Host"), s);
  };
  for (int k = 0; k < rf_->n; k++) {
    const conf::Filter& f = *rf_->at[k].filter;
    if (f.kind != conf::FilterKind::Prefix) continue;
    if (f.translate_forwarded_server) {
      std::string v;
      if (pop("x-forwarded-server", &v)) {
        r.server_name = r.add(first_item(v));
        set_host(first_item(v));
      }
      if (v.clear(), pop("x-forwarded-host", &v)) set_host(first_item(v));
      if (v.clear(), pop("x-forwarded-for", &v)) r.remote_addr = r.add(first_item(v));
      std::string proto;
      bool has_scheme = pop("x-forwarded-scheme", &(v.clear(), v));
      bool has_proto = pop("x-forwarded-proto", &proto);
      if (has_scheme)
        r.url_scheme = r.add(v);
      else if (has_proto)
        r.url_scheme = r.add(proto);
    }
    if (f.has_force_port) {
      int i = find("host");
      std::string host(i >= 0 ? r.view(r.headers[(size_t)i].second) : std::string_view());
      host = host.substr(0, host.find(':'));
      std::string_view scheme = r.url_scheme.len ? r.view(r.url_scheme) : std::string_view("http");
      std::string port = !f.force_port.empty() ? f.force_port : scheme == "http" ? "80" : "443";
      if (!f.force_port.empty()) host += ":" + f.force_port;
      r.server_port = r.add(port);
      set_host(host);
    }
    if (f.has_scheme) r.url_scheme = r.add(f.scheme);
  }
}

}  // namespace pasture::worker
