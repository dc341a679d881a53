// ClientConn, response half: the response head sent to the client (from an
// upstream's or made here), its body, and the end of an exchange.
#include <cstdio>
#include <cstring>

#include "common/health_state.h"
#include "common/log.h"
#include "worker/client_conn.h"
#include "worker/head_check.h"
#include "worker/proxy_head.h"
#include "worker/upstream_conn.h"

namespace pasture::worker {
namespace {

void append(std::string& o, std::string_view s) { o.append(s.data(), s.size()); }

// What OPTIONS at Max-Forwards 0 and a refused TRACE list: the methods
// pasture proxies (it cannot know a resource's own list).
constexpr std::string_view kAllow = "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n";
constexpr std::string_view kAllowTrace =
    "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n";

}  // namespace

void ClientConn::respond_local(int status, std::string_view body, bool close_after,
                               std::string_view fields, std::string_view type) {
  mode_ = Mode::kLocal;
  status_ = (uint16_t)status;
  resp_bytes_ = method_ == HTTP_HEAD ? 0 : body.size();
  if (close_after) keep_alive_ = false;
  if (!resp_head_) resp_head_ = w_->take_buf();
  std::string& o = *resp_head_;
  o.clear();
  o.append("HTTP/1.1 ");
  append_uint(o, (uint64_t)status);
  o.append(" ").append(reason_phrase(status)).append("\r\nServer: pasture\r\n");
  if (!type.empty()) {
    o.append("Content-Type: ");
    append(o, type);
    o.append("\r\n");
  }
  o.append("Content-Length: ");
  append_uint(o, body.size());
  o.append("\r\n");
  append(o, fields);
  if (status == 503) o.append("Retry-After: 1\r\n");
  // The keep-alive decision is final only when the response is sent, so the
  // Connection header and the blank line are added then (finish_local).
  local_head_len_ = (uint32_t)o.size();
  if (method_ != HTTP_HEAD) append(o, body);
  if (expect_continue_ && !http10_ && status < 300 && !req_done_) {
    send_out("HTTP/1.1 100 Continue\r\n\r\n", 25);
    expect_continue_ = false;
  }
}

void ClientConn::finish_local() {
  if (!resp_head_) return;
  std::string& o = *resp_head_;
  if (w_->closing_soon()) keep_alive_ = false;
  const char* conn = !keep_alive_ ? "Connection: close\r\n\r\n"
                     : http10_    ? "Connection: keep-alive\r\n\r\n"
                                  : "\r\n";
  uv_buf_t bufs[3] = {uv_buf_init(o.data(), local_head_len_),
                      uv_buf_init(const_cast<char*>(conn), (unsigned)strlen(conn)),
                      uv_buf_init(o.data() + local_head_len_, (unsigned)(o.size() - local_head_len_))};
  int r = send_out(bufs, 3);
  w_->give_buf(resp_head_);
  resp_head_ = nullptr;
  resp_done_ = true;
  count_response();
  if (r < 0) {
    close();
    return;
  }
  finish_exchange();
}

void ClientConn::respond_error(int status, const char* why) {
  PLOG_DEBUG("%d for %s: %s", status, peer_, why);
  count_request();  // also a head refused before on_head took it (400, 414, 431)
  if (resp_started_) {
    close();
    return;
  }
  cancel_app();
  bool close_after = !req_done_;  // the rest of the request is unread: close
  std::string body = std::to_string(status) + " " + reason_phrase(status) + "\n";
  respond_local(status, body, close_after);
  if (req_done_ || close_after) {
    state_ = State::kWaiting;
    req_done_ = true;
    finish_local();
  }
}

bool ClientConn::on_response_head(const char* base, const HeadCollector& h, const llhttp_t* p) {
  int status = p->status_code;
  if (!valid_response_head(base, h, *p)) {
    // llhttp accepts obs-fold, empty names and whitespace before the colon;
    // RFC 9112 5 lets a proxy reject them, and nothing of it may reach the
    // client. The upstream connection cannot be reused.
    UpstreamConn* old = up_;
    up_ = nullptr;
    old->abort();
    on_upstream_error(502, FailKind::kInvalid, "invalid header line in the upstream's response",
                      nullptr);
    return false;
  }
  if (status < 200) {
    // RFC 9110 15.2: a proxy forwards every interim response, except to an
    // HTTP/1.0 client. 100 goes bare, as pasture sends it itself, and only
    // when the client asked with Expect (an upstream may send it unasked).
    // 101 never gets here (UpstreamConn).
    if (http10_ || (status == 100 && !expect_continue_)) return false;
    int r = status == 100 ? send_out("HTTP/1.1 100 Continue\r\n\r\n", 25)
                          : send_interim(base, h, p);
    if (r < 0) close();
    return false;
  }
  PoolRt& pool = w_->pools()[pool_];
  {
    shm::ServerStats& ss = server_stats();
    ss.responses[shm::status_class(status)].add();
    ss.ttfb.observe(since_taken_us());
  }
  bool bad = lb::status_in(pool.cfg->fail_on, status);
  char why[48];
  if (bad) snprintf(why, sizeof why, "answered %d", status);
  note_health(pool, bad, why);
  if (lb::status_in(pool.cfg->retry_on_status, status) && body_bytes_ == 0 &&
      may_retry(pool, true, 0, status)) {
    int next = pick_retry(pool, why);
    if (next >= 0) {
      UpstreamConn* old = up_;
      up_ = nullptr;
      old->abort();  // mid-response: that connection cannot be reused
      start_retry(pool, next, why, nullptr, Retry::kBudgeted);
      return false;
    }
    // Nowhere else to go: the client gets this answer.
  }
  resp_started_ = true;
  status_ = (uint16_t)status;
  if (uphead_) {
    w_->give_buf(uphead_);
    uphead_ = nullptr;
  }
  if (!req_done_) keep_alive_ = false;  // an early answer: the unread body ends the connection
  if (w_->closing_soon()) keep_alive_ = false;

  if (!resp_head_) resp_head_ = w_->take_buf();
  std::string& o = *resp_head_;
  o.clear();
  append_response_head(o, base, h, *p, via_name());
  ResponseFraming f = append_response_framing(o, *p, method_ == HTTP_HEAD, http10_);
  if (f.until_eof || f.decode) keep_alive_ = false;
  rechunk_ = f.rechunk;
  if (!set_cookie_.empty()) {  // the server's id: the value is issued now
    PoolRt& pool = w_->pools()[pool_];
    o.append("Set-Cookie: ").append(pool.cfg->cookie_name).push_back('=');
    o.append(lb::sticky_cookie_value(*pool.state, set_cookie_));
    if (pool.cfg->cookie_max_age_s != 0) {
      o.append("; Max-Age=");
      append_uint(o, pool.cfg->cookie_max_age_s);
    }
    o.append("; Path=/; HttpOnly\r\n");
  }
  if (!keep_alive_)
    o.append("Connection: close\r\n");
  else if (http10_)
    o.append("Connection: keep-alive\r\n");
  o.append("\r\n");
  return f.decode || f.rechunk;  // UpstreamConn hands over llhttp's decoded body
}

// The Via received-by name for this pool's responses: none from pasture's
// own app processes (as paster serve, whose server is pasture itself).
std::string_view ClientConn::via_name() const {
  return w_->pools()[pool_].hosted ? std::string_view() : std::string_view(w_->site().server.via);
}

// An interim (1xx) response, forwarded at once: it has no framing of its
// own, and the final response follows on the same connection. Returns 0
// or a libuv error.
int ClientConn::send_interim(const char* base, const HeadCollector& h, const llhttp_t* p) {
  std::string* b = w_->take_buf();
  b->clear();
  append_response_head(*b, base, h, *p, via_name());
  b->append("\r\n");
  int r = send_out(b->data(), b->size());
  w_->give_buf(b);
  return r;
}

// Requests pasture answers itself whatever the route: TRACE when it is not
// forwarded (405, RFC 9110 15.5.6 wants Allow), and OPTIONS or TRACE whose
// Max-Forwards reached 0 here (RFC 9110 7.6.2). Called from on_head, once
// the head is valid; true if it answered.
bool ClientConn::answer_here(const char* base, std::string_view max_forwards) {
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
  in.url = span_view(base, head_.url);
  in.base = base;
  in.headers = head_.headers;
  in.http10 = http10_;
  std::string echo;
  build_trace_echo(echo, in);
  respond_local(200, echo, false, {}, "message/http");
  return true;
}

void ClientConn::flush() {
  if (mode_ != Mode::kProxy || !resp_started_) return;
  bool chunks = resp_out_ && !resp_out_->empty();
  if (!resp_head_ && !chunks) return;
  uv_buf_t bufs[2];
  unsigned nb = 0;
  if (resp_head_) bufs[nb++] = uv_buf_init(resp_head_->data(), (unsigned)resp_head_->size());
  if (chunks) bufs[nb++] = uv_buf_init(resp_out_->data(), (unsigned)resp_out_->size());
  int r = send_out(bufs, nb);
  if (resp_head_) {
    w_->give_buf(resp_head_);
    resp_head_ = nullptr;
  }
  if (chunks) resp_out_->clear();
  if (r < 0) {
    close();
    return;
  }
  hold_upstream_if_behind();
}

void ClientConn::on_response_body(const char* p, size_t n) {
  resp_bytes_ += n;
  if (server_ >= 0) server_stats().bytes_out.add(n);
  if (rechunk_) {
    // Framed here, sent by flush() once UpstreamConn has parsed the read:
    // one write for all the chunks it held.
    if (n == 0) return;
    if (!resp_out_) {
      resp_out_ = w_->take_buf();
      resp_out_->clear();
    }
    ChunkLine line(n);
    resp_out_->append(line.text.data(), line.text.size());
    resp_out_->append(p, n);
    resp_out_->append("\r\n", 2);
    return;
  }
  int r;
  if (resp_head_) {
    uv_buf_t bufs[2] = {uv_buf_init(resp_head_->data(), (unsigned)resp_head_->size()),
                        uv_buf_init(const_cast<char*>(p), (unsigned)n)};
    r = send_out(bufs, 2);
    w_->give_buf(resp_head_);
    resp_head_ = nullptr;
  } else {
    r = send_out(p, n);
  }
  if (r < 0) {
    close();
    return;
  }
  hold_upstream_if_behind();
}

void ClientConn::hold_upstream_if_behind() {
  if (up_ && queued() > kHighWater) {
    // The client is the bottleneck: the upstream waits (and its read_timeout
    // with it), and send_timeout runs for the client once the request is in.
    up_paused_ = true;
    up_->pause_read();
    if (state_ == State::kWaiting) arm_send_timer();
  }
}

void ClientConn::on_write_done(int status) {
  if (state_ == State::kClosed) return;
  if (status < 0) {
    close();
    return;
  }
  size_t q = queued();
  if (app_paused_ && q < kLowWater) {
    app_paused_ = false;
    if (state_ == State::kWaiting) timer_disarm(&timer_);
    if (call_) call_->resume();  // an inline app produces more right here
    if (state_ == State::kClosed) return;
    q = queued();
  }
  if (up_paused_ && q < kLowWater) {
    up_paused_ = false;
    if (state_ == State::kWaiting) timer_disarm(&timer_);
    if (up_) up_->resume_read();
  }
  if (out_full_ && q < kLowWater) {
    out_full_ = false;
    next_request();
    return;
  }
  // The client took bytes: send_timeout restarts wherever it governs.
  if (out_full_ || ((up_paused_ || app_paused_) && state_ == State::kWaiting) ||
      (state_ == State::kLinger && !shut_done_))
    arm_send_timer();
}

void ClientConn::on_response_done(bool upstream_keepalive) {
  (void)upstream_keepalive;
  up_ = nullptr;
  if (rechunk_) {  // the last chunk; the upstream's trailer section is not forwarded
    if (!resp_out_) {
      resp_out_ = w_->take_buf();
      resp_out_->clear();
    }
    resp_out_->append("0\r\n\r\n", 5);
  }
  flush();
  if (state_ == State::kClosed) return;
  resp_done_ = true;
  count_response();
  if (server_ >= 0) server_stats().total.observe(since_taken_us());
  release_server(false);
  if (req_done_) {
    finish_exchange();
  } else {
    keep_alive_ = false;  // the upstream answered before the request ended
    shutdown_and_linger();
  }
}
}  // namespace pasture::worker
