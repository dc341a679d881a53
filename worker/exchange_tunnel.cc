// Exchange, an upgraded connection (RFC 9110 7.8, RFC 6455): the client's
// Upgrade forwarded when its pool allows it, the upstream's 101 passed back,
// then bytes both ways unparsed, with back-pressure each way, half-close,
// and the server held (least_conn, max_conns) until the tunnel ends.
//
// Who does what: UpstreamConn carries the upstream half (its reads, writes,
// EOF, shutdown and tunnel_timeout), the ResponseSink the client half
// (ResponseSink::tunnel); this file joins them and keeps the counts.
#include <cstdio>

#include "common/log.h"
#include "worker/exchange.h"
#include "worker/head_check.h"
#include "worker/proxy_head.h"
#include "worker/upstream_conn.h"

namespace pasture::worker {
namespace {

// Calls f(token) for each protocol of an Upgrade value ("websocket,
// foo/2"): its name lowercased (a version after '/' is dropped for the
// match), and the item as sent.
template <typename F>
void each_protocol(std::string_view v, F f) {
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view item = trim_ows(v.substr(0, comma));
    v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
    if (item.empty()) continue;
    std::string name(item.substr(0, item.find('/')));
    for (char& c : name) c = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    f(name, item);
  }
}

}  // namespace

std::string Exchange::allowed_upgrade(const char* base, const PoolRt& pool) const {
  const conf::Pool& cfg = *pool.cfg;
  std::string out;
  // Python app processes (hosted) cannot switch: WSGI has no upgrade.
  if (pool.hosted || (!cfg.upgrade_any && cfg.upgrade.empty())) return out;
  for (const HeaderSpan& h : *head_->headers) {
    if (!iequals(span_view(base, h.name), "upgrade")) continue;
    each_protocol(span_view(base, h.value), [&](const std::string& name, std::string_view item) {
      bool ok = name != "h2c" &&  // HTTP/2 is pasture's to speak, never a tunnel
                (cfg.upgrade_any || std::find(cfg.upgrade.begin(), cfg.upgrade.end(), name) != cfg.upgrade.end());
      if (!ok) return;
      if (!out.empty()) out.append(", ");
      out.append(item.data(), item.size());
    });
  }
  return out;
}

bool Exchange::on_upgrade(const char* base, const HeadCollector& h, const llhttp_t* p) {
  std::string_view proto;
  for (const HeaderSpan& hs : *h.headers)
    if (iequals(span_view(base, hs.name), "upgrade")) proto = trim_ows(span_view(base, hs.value));
  const char* bad = nullptr;
  if (!valid_response_head(base, h, *p))
    bad = "invalid header line in the upstream's response";
  else if (proto.empty())
    bad = "upstream switched protocols without naming one (no Upgrade in its 101)";
  else if (!req_done_)
    bad = "upstream switched protocols before the request's end";
  if (bad) {
    UpstreamConn* old = up_;
    up_ = nullptr;
    old->abort();
    on_upstream_error(502, FailKind::kInvalid, bad, nullptr);
    return false;
  }
  PoolRt& pool = w_->pools()[pool_];
  shm::ServerStats& ss = server_stats();
  ss.responses[shm::status_class(101)].add();
  ss.ttfb.observe(since_taken_us());
  note_health(pool, false, nullptr);
  resp_started_ = resp_done_ = true;  // never retried from here on
  status_ = 101;
  if (uphead_) {
    w_->give_buf(uphead_);
    uphead_ = nullptr;
  }
  end_flight();  // no longer a request in flight for the retry budget
  count_response();
  // The server stays taken (least_conn, max_conns) until end_tunnel().
  tunnel_ = true;
  w_->stats().tunnels.add();
  ss.tunnels.add();
  std::string* head = w_->take_buf();
  head->clear();
  append_response_head(*head, base, h, *p, via_name());  // Upgrade, Connection dropped as hop-by-hop
  head->append("Upgrade: ").append(proto.data(), proto.size()).append("\r\nConnection: upgrade\r\n\r\n");
  return sink_->tunnel(head);  // false: the connection ended (on_close dropped the upstream)
}

void Exchange::end_tunnel() {
  if (!tunnel_) return;
  tunnel_ = false;
  shm::gauge_dec(w_->stats().tunnels);
  if (server_ >= 0) {
    shm::ServerStats& ss = server_stats();
    shm::gauge_dec(ss.tunnels);
    ss.total.observe(since_taken_us());
  }
}

void Exchange::on_tunnel_bytes(const char* p, size_t n) {
  resp_bytes_ += n;
  w_->stats().bytes_out.add(n);
  if (server_ >= 0) server_stats().bytes_out.add(n);
  // The client is the bottleneck: the upstream waits (on_sink_drained).
  if (!sink_->body(p, n, false) && up_) up_->pause_read();
}

void Exchange::on_tunnel_eof() { sink_->tunnel_close_write(); }

void Exchange::on_tunnel_end(bool clean) {
  up_ = nullptr;
  end_tunnel();
  release_server(false);
  if (!clean) sink_->abort();
}

void Exchange::tunnel_in(const char* p, size_t n) {
  if (!up_ || n == 0) return;
  body_bytes_ += n;
  if (server_ >= 0) server_stats().bytes_in.add(n);
  up_->tunnel_send(p, n);
  if (up_ && up_->queued() > kHighWater && !body_held_) {
    // The upstream is not taking them: read nothing more from the client
    // until it drains (on_upstream_drained).
    body_held_ = true;
    sink_->want_body(false);
  }
}

void Exchange::tunnel_in_eof() {
  tunnel_in_eof_ = true;
  if (up_) up_->tunnel_shutdown();
}

}  // namespace pasture::worker
