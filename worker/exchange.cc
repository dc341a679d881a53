// Exchange: routing, the answers pasture makes itself, the request body on
// its way to the handler, and the exchange's start and end.
#include "worker/exchange.h"

#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "worker/proxy_head.h"
#include "worker/router.h"
#include "worker/upstream_conn.h"

namespace pasture::worker {
namespace {

void append(std::string& o, std::string_view s) { o.append(s.data(), s.size()); }

// What OPTIONS at Max-Forwards 0 and a refused TRACE list: the methods
// pasture proxies (it cannot know a resource's own list).
constexpr std::string_view kAllow = "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n";
constexpr std::string_view kAllowTrace = "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n";

}  // namespace

Exchange::~Exchange() {
  if (up_) drop_upstream();  // as in reset()
  free_static();
  delete fsink_;
  for (std::string* b : {uphead_, chunk_out_, cmd_, local_head_, local_body_, log_})
    if (b) w_->give_buf(b);
}

void Exchange::open(uint8_t method, bool http10, bool http2) {
  method_ = method;
  http10_ = http10;
  http2_ = http2;
  count_request();
}

void Exchange::start(const ExchangeRequest& rq) {
  const RequestHead& rh = *rq.checked;
  const char* base = rq.base;
  head_ = rq.head;
  content_length_ = rq.content_length;
  expect_continue_ = rh.expect_continue;
  chunked_ = rh.chunked;
  upgrade_asked_ = rq.upgrade;
  const RequestTarget& t = rh.target;
  const NormalPath& np = rh.path;
  if (answer_here(base, rh.max_forwards)) return;
  RouteFilters rf;
  RouteResult r = route(w_->site(), rh.host, np.decoded, &rf);
  handler_ = r.handler;
  script_len_ = r.script_name_len;
  rf_ = &rf;
  struct Clear {
    const RouteFilters** p;
    ~Clear() { *p = nullptr; }
  } clear{&rf_};
  if (rf.n > 0) attach_filters(base, t);
  if (handler_ < 0) {
    respond_local(404, "404 Not Found\n", false);
    return;
  }
  run_handler(base, rh);
}

// The handler routing chose (or a static app's fallback).
void Exchange::run_handler(const char* base, const RequestHead& rh) {
  const RequestTarget& t = rh.target;
  const NormalPath& np = rh.path;
  const conf::Handler& hd = w_->site().handlers[handler_];
  if (hd.kind == conf::HandlerKind::Echo) {
    std::string_view url = span_view(base, head_->url);
    std::string body;
    body.reserve(hd.echo_name.size() + url.size() + 16);
    body.append(hd.echo_name).append(" ");
    body.append(llhttp_method_name((llhttp_method_t)method_)).append(" ");
    append(body, url);
    body.append("\n");
    respond_local(200, body, false);
    return;
  }
  if (hd.kind == conf::HandlerKind::Status) {
    respond_status(base, hd, t, np);
    return;
  }
  if (hd.kind == conf::HandlerKind::Static) {
    start_static(base, rh);
    return;
  }
  if (hd.app >= 0 && w_->embed_apps()) {
    start_app(base, hd.app, t, np);
    return;
  }
  start_proxy(base, hd.pool, t, np);
}

void Exchange::request_end() {
  if (chunked_) {
    if (mode_ == Mode::kProxy && up_) {
      if (!chunk_out_) chunk_out_ = w_->take_buf();
      chunk_out_->append("0\r\n\r\n", 5);  // trailers are not forwarded (as nginx)
    }
    flush_chunks();
    if (closed_ || resp_done_) return;  // the upstream failed for good: answered, closing
  }
  req_done_ = true;
  switch (mode_) {
    case Mode::kLocal:
      finish_local();
      return;
    case Mode::kApp:
      if (call_) call_->run();  // may answer at once (inline app)
      return;
    case Mode::kStatusCmd:
      run_status_command();
      finish_local();
      return;
    case Mode::kStatic:
      static_send();
      return;
    default:
      // (A response that ended before the request did closed the
      // connection: the sink's end() saw !req_done().)
      if (up_) up_->request_done();
  }
}

void Exchange::flush_upstream() {
  if (up_) up_->flush();
}

void Exchange::request_body(const char* p, size_t n) {
  if (chunked_)
    add_chunk(p, n);
  else
    forward_body(p, n);
}

void Exchange::flush_body() {
  if (chunked_) flush_chunks();
}

void Exchange::discard_body() {
  if (chunk_out_) chunk_out_->clear();  // the upstream never sees bad framing
}

void Exchange::forward_body(const char* p, size_t n) {
  body_bytes_ += n;
  if (mode_ == Mode::kStatusCmd) {
    if (!chunked_) collect_status_command(p, n);
    return;
  }
  if (mode_ == Mode::kApp) {
    if (!chunked_) app_body_in(p, n);
    return;
  }
  if (mode_ != Mode::kProxy || !up_) return;  // local handlers discard the body
  if (server_ >= 0) server_stats().bytes_in.add(n);
  up_->send_body(p, n);
  if (up_ && up_->queued() > kHighWater) {
    // The upstream is not taking the body: its send_timeout governs, and
    // reading waits until it drains (on_upstream_drained).
    body_held_ = true;
    sink_->want_body(false);
  }
}

// A chunked request body is forwarded as llhttp decoded it, in chunks of our
// own framing: bytes llhttp parsed leniently (chunk extensions, trailers)
// never reach an upstream that might frame them differently (smuggling).
void Exchange::add_chunk(const char* p, size_t n) {
  if (mode_ == Mode::kStatusCmd) {
    collect_status_command(p, n);
    return;
  }
  if (mode_ == Mode::kApp) {
    app_body_in(p, n);
    return;
  }
  if (mode_ != Mode::kProxy || !up_ || n == 0) return;
  if (!chunk_out_) chunk_out_ = w_->take_buf();
  ChunkLine line(n);
  chunk_out_->append(line.text.data(), line.text.size());
  chunk_out_->append(p, n);
  chunk_out_->append("\r\n", 2);
}

void Exchange::flush_chunks() {
  std::string* b = chunk_out_;
  if (!b || b->empty()) return;
  forward_body(b->data(), b->size());
  if (chunk_out_ == b) b->clear();  // else given back meanwhile (reset)
}

void Exchange::on_upstream_drained() {
  if (!body_held_) return;
  body_held_ = false;
  sink_->want_body(true);
}

void Exchange::on_sink_drained() {
  if (call_)
    call_->resume();  // an inline app produces more right here
  else if (static_)
    static_pump();
  else if (up_)
    up_->resume_read();
}

void Exchange::send_continue() {
  if (expect_continue_ && !http10_ && !req_done_) {
    sink_->interim("HTTP/1.1 100 Continue\r\n");
    expect_continue_ = false;
  }
}

void Exchange::respond_local(int status, std::string_view body, bool close_after, std::string_view fields,
                             std::string_view type) {
  mode_ = Mode::kLocal;
  status_ = (uint16_t)status;
  resp_bytes_ = method_ == HTTP_HEAD ? 0 : body.size();
  local_close_ = close_after;
  if (!local_head_) local_head_ = w_->take_buf();
  std::string& o = *local_head_;
  o.clear();
  o.append("HTTP/1.1 ");
  append_uint(o, (uint64_t)status);
  o.append(" ").append(reason_phrase(status)).append("\r\nServer: pasture\r\n");
  if (!type.empty()) {
    o.append("Content-Type: ");
    append(o, type);
    o.append("\r\n");
  }
  append(o, fields);
  if (status == 503) o.append("Retry-After: 1\r\n");
  if (!local_body_) local_body_ = w_->take_buf();
  local_body_->clear();
  append(*local_body_, body);  // kept for its length under HEAD too
  // The answer leaves once the request is in (finish_local): the keep-alive
  // decision is final only then.
  if (status < 300) send_continue();
}

void Exchange::finish_local() {
  if (!local_head_) return;
  ResponseHead h;
  h.status = status_;
  h.text = local_head_;
  local_head_ = nullptr;
  h.framing = ResponseHead::Length::kKnown;
  h.length = local_body_ ? local_body_->size() : 0;
  h.no_body = method_ == HTTP_HEAD;
  h.close = local_close_;
  resp_done_ = true;
  count_response();
  sink_->head(h);
  if (!h.no_body && h.length > 0) sink_->body(local_body_->data(), local_body_->size(), false);
  // The sink copied what it did not write: one copy, not two, while the
  // client is slow (found by review: HTTP/2 streams of a listing held both).
  if (local_body_) {
    w_->give_buf(local_body_);
    local_body_ = nullptr;
  }
  if (closed_) return;
  sink_->end();
}

void Exchange::respond_error(int status, const char* why) {
  PLOG_DEBUG("%d for %s: %s", status, peer_text(), why);
  count_request();  // also a head refused before open() (400, 414, 431)
  if (resp_started_) {
    sink_->abort();
    return;
  }
  cancel_app();
  bool close_after = !req_done_;  // the rest of the request is unread: close
  std::string body = std::to_string(status) + " " + reason_phrase(status) + "\n";
  respond_local(status, body, close_after);
  if (req_done_ || close_after) {
    req_done_ = true;
    finish_local();
  }
}

// Requests pasture answers itself whatever the route: TRACE when it is not
// forwarded (405, RFC 9110 15.5.6 wants Allow), and OPTIONS or TRACE whose
// Max-Forwards reached 0 here (RFC 9110 7.6.2). True if it answered.
bool Exchange::answer_here(const char* base, std::string_view max_forwards) {
  if (method_ != HTTP_OPTIONS && method_ != HTTP_TRACE) return false;
  const conf::ServerSettings& srv = w_->site().server;
  if (method_ == HTTP_TRACE && !srv.trace) {
    respond_local(405, "405 Method Not Allowed\n", false, kAllow);
    return true;
  }
  if (max_forwards.empty() || max_forwards_value(max_forwards) != 0) return false;
  if (method_ == HTTP_OPTIONS) {
    respond_local(200, "", false, srv.trace ? kAllowTrace : kAllow, "");
    return true;
  }
  ProxyHeadInput in;
  in.method = "TRACE";
  in.url = span_view(base, head_->url);
  in.base = base;
  in.headers = head_->headers;
  in.http10 = http10_;
  std::string echo;
  build_trace_echo(echo, in);
  respond_local(200, echo, false, {}, "message/http");
  return true;
}

void Exchange::count_response() {
  shm::WorkerStats& ws = w_->stats();
  ws.responses[shm::status_class(status_)].add();
  ws.bytes_out.add(resp_bytes_);
}

void Exchange::complete() {
  w_->note_request();
  if (log_) end_log();
}

void Exchange::reset() {
  // An upstream connection still attached has nobody to answer to any more:
  // never left pointing at this exchange (a safety net; the sinks drop it).
  if (up_) drop_upstream();
  end_flight();  // needs pool_: first
  detach_filters();
  cancel_app();
  free_static();
  app_no_body_ = false;
  app_corked_ = false;
  upgrade_asked_ = upgrading_ = tunnel_ = tunnel_in_eof_ = false;
  mode_ = Mode::kNone;
  req_done_ = resp_done_ = resp_started_ = false;
  expect_continue_ = false;
  body_held_ = false;
  tries_ = stale_tries_ = 0;
  fresh_ = stale_same_ = false;
  pool_ = server_ = handler_ = -1;
  body_bytes_ = 0;
  req_counted_ = false;
  tried_ = 0;
  set_cookie_ = {};
  chunked_ = false;
  for (std::string** b : {&chunk_out_, &cmd_, &uphead_, &local_head_, &local_body_}) {
    if (*b) {
      w_->give_buf(*b);
      *b = nullptr;
    }
  }
  status_ = 0;
  resp_bytes_ = 0;
}

void Exchange::drop_upstream() {
  if (up_) {
    // A tunnel whose client half-closed cleanly: the upstream connection
    // writes what it holds and waits for its server's EOF on its own.
    if (tunnel_ && tunnel_in_eof_)
      up_->tunnel_detach();
    else
      up_->abort();
    up_ = nullptr;
  }
  end_tunnel();
  release_server(false);
}

void Exchange::on_close() {
  if (closed_) return;
  closed_ = true;
  if (log_) end_log();  // an aborted exchange: 499 when nothing was answered
  if (mode_ != Mode::kNone && !resp_done_) {
    w_->stats().responses[shm::kStatusClasses - 1].add();  // aborted: no complete answer
    w_->stats().bytes_out.add(resp_bytes_);
  }
  cancel_app();
  free_static();
  drop_upstream();
  end_flight();
}

}  // namespace pasture::worker
