// ClientConn as its exchange's ResponseSink: a response on the HTTP/1.1
// wire (the framing field, Connection, chunks of our own), held back so a
// head leaves with its first body bytes, and back-pressure both ways.
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "worker/client_conn.h"
#include "worker/head_check.h"

namespace pasture::worker {

int ClientConn::interim(std::string_view text) {
  uv_buf_t bufs[2] = {uv_buf_init(const_cast<char*>(text.data()), (unsigned)text.size()),
                      uv_buf_init(const_cast<char*>("\r\n"), 2)};
  return send_out(bufs, 2);
}

// The head is written here from the exchange's text plus the framing this
// client needs, and held back (body(), flush() or end() send it).
void ClientConn::head(const ResponseHead& h) {
  Request& r = request();
  if (r.resp_head) w_->give_buf(r.resp_head);
  r.resp_head = h.text;
  std::string& o = *r.resp_head;
  // An answer before the request's end: the unread body ends the connection.
  if (h.close || !ex().req_done() || w_->closing_soon()) keep_alive_ = false;
  ResponseFraming f = append_framing(o, h.status, h.framing, h.length, h.no_body, http10_);
  if (f.until_eof || f.decode) keep_alive_ = false;  // the close ends the body
  // Framed by the close: a body of unknown length, or a chunked one decoded
  // for HTTP/1.0 (review 48: abort() sent the latter a clean FIN).
  until_eof_ = f.until_eof || f.decode;
  rechunk_ = f.rechunk;
  if (!keep_alive_)
    o.append("Connection: close\r\n");
  else if (http10_)
    o.append("Connection: keep-alive\r\n");
  o.append("\r\n");
}

// The head still held back, the batched chunks, then `extra`: one writev.
int ClientConn::send_held(const uv_buf_t* extra, unsigned n) {
  uv_buf_t bufs[6];
  unsigned k = 0;
  Request& rq = request();
  bool chunks = rq.resp_out && !rq.resp_out->empty();
  if (rq.resp_head) {
    // A small body rides in the head's buffer: one send() rather than a
    // sendmsg, whose iovec import costs the kernel more than this copy.
    size_t more = chunks ? rq.resp_out->size() : 0;
    for (unsigned i = 0; i < n; i++) more += extra[i].len;
    if (more <= kCoalesceMax) {
      std::string& o = *rq.resp_head;
      if (chunks) o.append(*rq.resp_out);
      for (unsigned i = 0; i < n; i++) o.append(extra[i].base, extra[i].len);
      if (chunks) rq.resp_out->clear();
      chunks = false;
      n = 0;
    }
    bufs[k++] = uv_buf_init(rq.resp_head->data(), (unsigned)rq.resp_head->size());
  }
  if (chunks) bufs[k++] = uv_buf_init(rq.resp_out->data(), (unsigned)rq.resp_out->size());
  for (unsigned i = 0; i < n; i++) bufs[k++] = extra[i];
  int r = k ? send_out(bufs, k) : 0;
  if (rq.resp_head) {
    w_->give_buf(rq.resp_head);
    rq.resp_head = nullptr;
  }
  if (chunks) rq.resp_out->clear();
  return r;
}

bool ClientConn::behind() {
  if (queued() <= kHighWater) return false;
  // The client is the bottleneck: the producer waits (an upstream's
  // read_timeout with it), and send_timeout runs for the client once the
  // request is in.
  producer_paused_ = true;
  if (state_ == State::kWaiting) arm_send_timer();
  return true;
}

bool ClientConn::body(const char* p, size_t n, bool batch) {
  if (state_ == State::kClosed) return false;
  if (n == 0) return true;
  ChunkLine line(n);
  if (rechunk_ && batch) {
    // Framed here, sent by flush() once the producer is done with its
    // read: one write for all the chunks it held.
    std::string*& out = request().resp_out;
    if (!out) {
      out = w_->take_buf();
      out->clear();
    }
    out->append(line.text.data(), line.text.size());
    out->append(p, n);
    out->append("\r\n", 2);
    return true;
  }
  uv_buf_t bufs[3];
  unsigned k = 0;
  if (rechunk_) bufs[k++] = uv_buf_init(const_cast<char*>(line.text.data()), (unsigned)line.text.size());
  bufs[k++] = uv_buf_init(const_cast<char*>(p), (unsigned)n);
  if (rechunk_) bufs[k++] = uv_buf_init(const_cast<char*>("\r\n"), 2);
  if (send_held(bufs, k) < 0) {
    close();
    return false;
  }
  return !behind();
}

bool ClientConn::flush() {
  if (state_ == State::kClosed) return false;
  const Request& r = request();
  if (!r.resp_head && !(r.resp_out && !r.resp_out->empty())) return true;
  if (send_held(nullptr, 0) < 0) {
    close();
    return false;
  }
  return !behind();
}

void ClientConn::end() {
  if (state_ == State::kClosed) return;
  // The upstream's trailer section is not forwarded: the last chunk is ours.
  uv_buf_t last = uv_buf_init(const_cast<char*>("0\r\n\r\n"), 5);
  if (send_held(&last, rechunk_ ? 1 : 0) < 0) {
    close();
    return;
  }
  producer_paused_ = false;
  if (state_ == State::kWaiting && !out_full_) timer_disarm(&timer_);
  if (ex().req_done()) {
    finish_exchange();
  } else {
    keep_alive_ = false;  // answered before the request ended
    shutdown_and_linger();
  }
}

bool ClientConn::retract_head() {
  Request& r = request();
  if (!r.resp_head) return false;
  w_->give_buf(r.resp_head);
  r.resp_head = nullptr;
  if (r.resp_out) r.resp_out->clear();
  rechunk_ = until_eof_ = false;  // (an abort now resets for nothing sent: review 49)
  return true;
}

void ClientConn::await_drain() {
  producer_paused_ = true;
  arm_send_timer();
}

// The upstream is not taking the body: its send_timeout governs, and
// client_body_timeout waits until reading resumes.
void ClientConn::want_body(bool on) {
  if (!on) {
    client_paused_ = true;
    stop_reading();
    if (state_ == State::kBody) timer_disarm(&timer_);
    return;
  }
  if (!client_paused_) return;
  client_paused_ = false;
  if (state_ == State::kBody) arm_timer(w_->site().server.client_body_timeout_ms);
  update_reading();
}

bool ClientConn::peer_address(sockaddr_storage* out) {
  socklen_t len = sizeof *out;
  return sock_.is_open() && getpeername(sock_.fd(), reinterpret_cast<sockaddr*>(out), &len) == 0;
}

void ClientConn::on_write_done(int status) {
  if (state_ == State::kClosed) return;
  if (status < 0) {
    // Nothing more can be written; the client may still be there (review
    // 48: epoll refused to watch the socket).
    cut_now();
    return;
  }
  if (reset_due_) {  // (reset_when_sent looks at the kernel's queue now, then every kResetPollMs)
    if (queued() == 0) reset_when_sent();
    return;
  }
  if (state_ == State::kH2) {
    h2_->on_write_done();
    return;
  }
  size_t q = queued();
  if (producer_paused_ && q < kLowWater) {
    producer_paused_ = false;
    if (state_ == State::kWaiting) timer_disarm(&timer_);
    ex().on_sink_drained();  // an inline app produces more right here
    if (state_ == State::kClosed) return;
    q = queued();
  }
  if (out_full_ && q < kLowWater) {
    out_full_ = false;
    next_request();
    return;
  }
  // The client took bytes: send_timeout restarts wherever it governs; an
  // idle connection's keepalive_timeout starts once its last answer is out.
  if (out_full_ || (producer_paused_ && state_ == State::kWaiting) || (state_ == State::kLinger && !shut_done_))
    arm_send_timer();
  else if (state_ == State::kIdle && served_)  // (not a TLS handshake's writes)
    arm_idle_timer();
  else if (state_ == State::kHead && head_on_send_)
    q > 0 ? arm_send_timer() : arm_head_timer();
}

}  // namespace pasture::worker
