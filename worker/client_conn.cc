#include "worker/client_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "common/health_state.h"
#include "common/log.h"
#include "worker/head_check.h"
#include "worker/proxy_head.h"
#include "worker/router.h"
#include "worker/upstream_conn.h"

namespace pasture::worker {
namespace {

constexpr size_t kMaxPipelined = 64 * 1024;  // unparsed bytes held while a response is in flight
constexpr uint32_t kLingerMs = 2000;
// reset_when_sent: how often the kernel's send queue is looked at (the
// worker's timers tick every Timers::kTickMs: a shorter one is that anyway).
constexpr uint32_t kResetPollMs = Timers::kTickMs;

}  // namespace

ClientConn::ClientConn(Worker* w) {
  w_ = w;
  timer_.owner = this;
  timer_.fire = on_timer;
}

ClientConn::Request::Request(Worker* w, ClientConn* c) : ex(w, c, &c->peer_) {
  llhttp_init(&parser, HTTP_REQUEST, settings());
  parser.data = c;
}

// Not at once: the exchange may be below us on the stack (its sink's end()
// led here). At the end of the loop turn nothing is, and the connection is
// still idle unless a request began.
void ClientConn::release_request() {
  if (!rq_ || release_queued_) return;
  release_queued_ = true;
  w_->defer_send(this);
}

void ClientConn::send_deferred() {
  release_queued_ = false;
  if (state_ == State::kIdle && !inbuf_ && !in_parse_ && rq_ && !rq_->head.headers) {
    give_request_bufs();
    rq_.reset();
  }
}

// The worker's buffers a Request holds, back before it goes.
void ClientConn::give_request_bufs() {
  if (rq_->resp_head) w_->give_buf(rq_->resp_head);
  if (rq_->resp_out) w_->give_buf(rq_->resp_out);
  if (rq_->head.headers) w_->give_spans(rq_->head.headers);
  rq_->resp_head = rq_->resp_out = nullptr;
  rq_->head.headers = nullptr;
}

const llhttp_settings_t* ClientConn::settings() {
  static llhttp_settings_t s = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_url = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<ClientConn*>(p->data)->head().on_url(at, n);
      return 0;
    };
    // In kBody these are a chunked body's trailer fields: never forwarded
    // (see parse()), so only counted, against the limit a head has.
    st.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      auto* c = static_cast<ClientConn*>(p->data);
      if (c->state_ == State::kBody) return c->count_trailer(n);
      c->rq_->head.on_field(at, n);  // the parser is rq_'s: it exists
      return 0;
    };
    st.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      auto* c = static_cast<ClientConn*>(p->data);
      if (c->state_ == State::kBody) return c->count_trailer(n);
      c->rq_->head.on_value(at, n);
      return 0;
    };
    st.on_body = [](llhttp_t* p, const char* at, size_t n) {
      auto* c = static_cast<ClientConn*>(p->data);
      if (!c->chunked_) return 0;
      {
        uint64_t limit = c->w_->site().server.max_body_bytes;
        c->request().chunked_in += n;
        if (limit && c->request().chunked_in > limit) {
          c->too_large_ = true;  // parse() answers 413; no byte past the limit is forwarded
          return (int)HPE_USER;
        }
      }
      c->ex().request_body(at, n);
      // The chunk's data ends here (llhttp counts it down to 0): its CRLF
      // follows, which llhttp's lenient build skips without looking.
      if (p->content_length == 0) {
        c->request().crlf_due = 2;
        if (!c->check_chunk_crlf(at + n, c->request().parse_end)) {
          llhttp_set_error_reason(p, "chunk data not followed by CRLF");
          return (int)HPE_USER;
        }
      }
      return 0;
    };
    // A chunk extension (name or value) is a token or a quoted string: no CR
    // or LF inside. Debian's lenient llhttp lets a bare CR through in the
    // last chunk's extension (`0;x\ry`); an upstream that takes that CR for
    // the line end reads what follows as the next request.
    st.on_chunk_extension_name = st.on_chunk_extension_value = [](llhttp_t* p, const char* at,
                                                                   size_t n) {
      auto* c = static_cast<ClientConn*>(p->data);
      const char* end = at + n;
      bool bad = memchr(at, '\r', n) || memchr(at, '\n', n);
      // The span ends where the line may end: a CR there must be a CRLF.
      if (!bad && end < c->request().parse_end && *end == '\r') {
        c->request().crlf_due = 1;
        bad = !c->check_chunk_crlf(end + 1, c->request().parse_end);
      }
      if (!bad) return 0;
      llhttp_set_error_reason(p, "bare CR or LF in a chunk extension");
      return (int)HPE_USER;
    };
    // The byte that ended a chunk-size line, which llhttp's lenient build
    // does not look at (`0\rz` was a line): parse() checks it is the LF.
    st.on_chunk_header = [](llhttp_t* p) {
      static_cast<ClientConn*>(p->data)->chunk_line_end_ = true;
      return (int)HPE_PAUSED;
    };
    // Pause at both ends of a message so parse() learns exact byte positions.
    st.on_headers_complete = [](llhttp_t*) { return (int)HPE_PAUSED; };
    // RFC 9110 6.5.1: a trailer cannot manage the connection. llhttp takes a
    // trailer's "Connection: close" for the message's and would then
    // swallow every later byte in silence; the head's decision stands.
    st.on_message_complete = [](llhttp_t* p) {
      if (static_cast<ClientConn*>(p->data)->keep_alive_) p->flags &= ~F_CONNECTION_CLOSE;
      return (int)HPE_PAUSED;
    };
    return st;
  }();
  return &s;
}

void ClientConn::accept_fd(Worker* w, int fd, const sockaddr* peer, const TlsContext* tls, bool h2c) {
  auto* c = new ClientConn(w);
  c->h2c_ = h2c;
  if (c->sock_.open(w, fd, c, false) < 0) {  // the descriptor is closed
    delete c;
    return;
  }
  w->stats().accepted.add();
  c->peer_.set(peer);
  c->peer_.trusted = peer_trusted(w->site().server.trusted_proxies, peer);
  w->client_opened(c);
  if (tls) {
    c->tls_start(*tls);  // client_header_timeout bounds the handshake too
    if (c->state_ == State::kClosed) return;
  }
  c->arm_timer(w->site().server.client_header_timeout_ms);
  c->start_reading();
}

void ClientConn::start_reading() {
  if (state_ == State::kClosed) return;
  sock_.read_start();
}

void ClientConn::stop_reading() { sock_.read_stop(); }

void ClientConn::arm_timer(uint32_t ms) { w_->timers().arm(&timer_, ms, w_->now()); }

// For timeouts restarted by progress (every read, every write): moving the
// node to its list's tail within one tick of its deadline changes nothing
// the coarse timers can tell apart, so that is skipped.
void ClientConn::rearm_timer(uint32_t ms) {
  uint64_t now = w_->now();
  if (timer_.armed() && timer_.list->timeout_ms() == ms && timer_.deadline + Timers::kTickMs > now + ms)
    return;
  w_->timers().arm(&timer_, ms, now);
}

void ClientConn::on_sock_end(int err) {  // the socket stopped reading
  if (tls_ && !tls_open_) {
    if (tls_bytes_in_) tls_handshake_failed("the client closed the connection during the handshake");
    close();
  } else if (err == UV_EOF) {
    on_eof();
  } else {
    close();
  }
}

void ClientConn::on_sock_read(const char* p, size_t n) {
  if (tls_)
    tls_feed(p, n);
  else
    on_bytes(p, n);
}

int ClientConn::sendfile_fd() {
  if (tls_ || !sock_.is_open()) return -1;
  sock_.release_now();  // held answers (and this one's head) go first
  if (queued() > 0) return -1;
  return sock_.fd();
}

bool ClientConn::cork(bool on) {
  if (tls_ || state_ == State::kClosed || !sock_.is_open()) return false;
  int v = on ? 1 : 0;
  return setsockopt(sock_.fd(), IPPROTO_TCP, TCP_CORK, &v, sizeof v) == 0;
}

void ClientConn::on_bytes(const char* data, size_t n) {
  if (state_ == State::kLinger || state_ == State::kClosed) return;  // discard
  if (h2c_ && h2_probe(data, n)) return;
  w_->stats().bytes_in.add(n);
  if (state_ == State::kH2) {
    h2_->on_bytes(data, n);
    return;
  }
  if (state_ == State::kTunnel) {
    ex().tunnel_in(data, n);
    return;
  }
  if (state_ == State::kWaiting || out_full_) {
    // A response is in progress: pipelined bytes wait (update_reading bounds them).
    if (!inbuf_) {
      inbuf_ = w_->take_buf();
      inbuf_->clear();
      request().inbuf_parsed = 0;
    }
    inbuf_->append(data, n);
  } else {
    if (state_ == State::kIdle) {
      state_ = State::kHead;
      arm_head_timer();
    }
    if (inbuf_) {
      inbuf_->append(data, n);
      run_inbuf();
    } else {
      const char* rest = parse(data, data, data + n);
      retain(data, rest, data + n, false);
    }
    if (rq_) rq_->ex.flush_upstream();
  }
  update_reading();
}

// The client's EOF. A request not yet complete is abandoned; answers already
// queued are still delivered (a half-closed client reads on).
void ClientConn::on_eof() {
  client_eof_ = true;
  switch (state_) {
    case State::kH2:
      h2_->on_eof();
      return;
    case State::kWaiting:
      // Half-close after a complete request: it and the requests pipelined
      // behind it are answered (as nginx does), then the connection closes
      // (finish_exchange, next_request).
      if (!inbuf_) keep_alive_ = false;
      return;
    case State::kLinger:
      if (shut_done_) close();  // else on_shutdown closes
      return;
    case State::kTunnel:
      ex().tunnel_in_eof();
      if (tunnel_shut_done_) close();  // else on_tunnel_shut closes
      return;
    case State::kIdle:
    case State::kHead:
      if (out_full_ && inbuf_) return;  // answered as the client reads (on_write_done)
      keep_alive_ = false;
      if (queued() > 0) {
        shutdown_and_linger();
        return;
      }
      close();
      return;
    default:
      keep_alive_ = false;
      // (kBody: an early answer framed by the close is cut here: review 51)
      if (until_eof_)
        abort();
      else
        close();
  }
}

// Reading is on unless something holds it off: the upstream is not taking
// the body (client_paused_), answers wait unread (out_full_), the pipelined
// backlog behind a response in progress is over kMaxPipelined, or EOF.
void ClientConn::update_reading() {
  if (in_parse_ || state_ == State::kClosed) return;
  bool backlog = state_ == State::kWaiting && inbuf_ && inbuf_->size() > kMaxPipelined;
  if (client_eof_ || client_paused_ || out_full_ || backlog)
    stop_reading();
  else
    start_reading();
}

void ClientConn::run_inbuf() {
  while (inbuf_ && !out_full_ && state_ != State::kWaiting && state_ != State::kLinger &&
         state_ != State::kClosed) {
    std::string* buf = inbuf_;
    const char* base = buf->data();
    const char* end = base + buf->size();
    const char* rest = parse(base, base + request().inbuf_parsed, end);
    if (inbuf_ != buf) return;  // closed and released meanwhile
    retain(base, rest, end, true);
    if (!inbuf_ || rest == base + request().inbuf_parsed) break;
  }
}

// Keep what parse() could not finish: a partial head (from its first byte, so
// offsets stay valid) or bytes of pipelined requests not parsed yet.
void ClientConn::retain(const char* base, const char* rest, const char* end, bool from_inbuf) {
  if (state_ == State::kClosed || state_ == State::kLinger) return;
  Request& rq = request();
  if (state_ == State::kHead && head_started_) {
    if (!from_inbuf) {
      inbuf_ = w_->take_buf();
      inbuf_->assign(base + rq.msg_start, end);
    } else if (rq.msg_start > 0) {
      inbuf_->erase(0, rq.msg_start);
    }
    head().rebase(rq.msg_start);
    head().base = inbuf_->data();
    rq.msg_start = 0;
    rq.inbuf_parsed = (uint32_t)inbuf_->size();
    return;
  }
  if (rest < end) {
    if (!from_inbuf) {
      inbuf_ = w_->take_buf();
      inbuf_->assign(rest, end);
    } else {
      inbuf_->erase(0, rest - base);
    }
    rq.inbuf_parsed = 0;
    return;
  }
  if (from_inbuf) {
    w_->give_buf(inbuf_);
    inbuf_ = nullptr;
  }
}

const char* ClientConn::parse(const char* base, const char* p, const char* end) {
  in_parse_ = true;
  const auto& srv = w_->site().server;
  Request& rq = request();  // lives until the end of the loop turn (send_deferred)
  while (state_ != State::kClosed && state_ != State::kLinger) {
    if (state_ == State::kIdle) {
      if (p == end || out_full_) break;
      state_ = State::kHead;
      arm_head_timer();
    }
    if (state_ == State::kHead) {
      if (p == end) break;
      if (!head_started_) {
        head_started_ = true;
        rq.msg_start = (uint32_t)(p - base);
        if (!head().headers) head().headers = w_->take_spans();
        head().reset();
      }
      head().base = base;
      llhttp_errno_t err = llhttp_execute(&parser(), p, end - p);
      if (err == HPE_OK) {
        if ((parser().http_major == 0 && parser().http_minor == 9) ||
            request_line_lacks_version(base + rq.msg_start, end)) {
          // "GET /\r\n": llhttp takes it for HTTP/0.9 (or, strict, waits
          // for a version) and for a head that will never come. Answer now,
          // as nginx does (but with 400).
          ex().begin_raw_log(base + rq.msg_start, end);
          ex().respond_error(400, "HTTP/0.9 request");
        } else if ((size_t)(end - (base + rq.msg_start)) > srv.max_header_bytes) {
          ex().begin_raw_log(base + rq.msg_start, end);
          ex().respond_error(head().last == HeadCollector::kUrl ? 414 : 431, "request head too large");
        }
        p = end;
        break;
      }
      if (err != HPE_PAUSED) {
        PLOG_DEBUG("bad request from %s: %s (%s)", PeerText(peer_).s, llhttp_errno_name(err),
                   llhttp_get_error_reason(&parser()));
        ex().begin_raw_log(base + rq.msg_start, end);
        ex().respond_error(head_error_status(base, err), "malformed request");
        p = end;
        break;
      }
      const char* pos = llhttp_get_error_pos(&parser());
      llhttp_resume(&parser());
      if ((size_t)(pos - (base + rq.msg_start)) > srv.max_header_bytes) {
        ex().begin_raw_log(base + rq.msg_start, end);
        ex().respond_error(431, "request head too large");
        p = end;
        break;
      }
      if (has_bare_cr(base + rq.msg_start, pos)) {  // "\r\n\rX" ended a head for llhttp
        ex().begin_raw_log(base + rq.msg_start, end);
        ex().respond_error(400, "bare CR in the request head");
        p = end;
        break;
      }
      p = pos;
      if (!on_head(base, pos)) {
        p = end;
        break;
      }
      continue;
    }
    if (state_ != State::kBody) break;
    rq.parse_end = end;
    llhttp_errno_t err = HPE_USER;
    if (check_chunk_crlf(p, end))
      err = llhttp_execute(&parser(), p, end - p);
    else
      llhttp_set_error_reason(&parser(), "chunk data not followed by CRLF");
    // A chunked body's trailer section (after the last chunk's line) is
    // never forwarded, but where it ends decides where the next request
    // starts: llhttp's lenient build takes a bare CR there for a line end
    // (`0\r\n\rX`), so its bytes are checked as they pass.
    if ((err == HPE_OK || (err == HPE_PAUSED && !chunk_line_end_)) && in_trailer_ &&
        !trailer_ok(p, err == HPE_OK ? end : llhttp_get_error_pos(&parser()))) {
      llhttp_set_error_reason(&parser(), "bare CR in the chunked body's trailer section");
      err = HPE_USER;
    }
    if (err == HPE_OK) {
      // client_body_timeout runs between reads, as nginx's: progress re-arms it.
      if (p < end && !client_paused_) rearm_timer(srv.client_body_timeout_ms);
      if (chunked_)
        ex().flush_body();
      else if (p < end)
        ex().request_body(p, end - p);
      p = end;
      break;
    }
    if (err != HPE_PAUSED) {
      PLOG_DEBUG("bad request body from %s: %s (%s)", PeerText(peer_).s, llhttp_errno_name(err),
                 llhttp_get_error_reason(&parser()));
      ex().discard_body();  // the upstream never sees bad framing
      if (ex().response_started())
        close();
      else if (too_large_)
        ex().respond_error(413, "request body larger than client_max_body_size");
      else
        ex().respond_error(400, "malformed request body");
      p = end;
      break;
    }
    const char* pos = llhttp_get_error_pos(&parser());
    llhttp_resume(&parser());
    if (chunk_line_end_) {  // on_chunk_header: pos is just past the line's LF
      chunk_line_end_ = false;
      if (pos > p && pos[-1] != '\n') {
        PLOG_DEBUG("bad request body from %s: chunk-size line not ended by CRLF", PeerText(peer_).s);
        ex().discard_body();  // the upstream never sees bad framing
        if (ex().response_started())
          close();
        else
          ex().respond_error(400, "malformed request body");
        p = end;
        break;
      }
      in_trailer_ = parser().content_length == 0;  // the last chunk: its trailer section follows
      p = pos;
      continue;
    }
    if (!chunked_ && pos > p) ex().request_body(p, pos - p);  // a chunked body's end: request_end
    p = pos;
    if (state_ == State::kBody) on_request_complete();
  }
  in_parse_ = false;
  return p;
}

bool ClientConn::trailer_ok(const char* p, const char* end) {
  for (; p < end; p++) {
    if (trailer_cr_ && *p != '\n') return false;
    trailer_cr_ = *p == '\r';
  }
  return true;
}

bool ClientConn::on_head(const char* base, const char* head_end) {
  (void)head_end;
  const auto& srv = w_->site().server;
  http10_ = parser().http_major == 1 && parser().http_minor == 0;
  ex().open(parser().method, http10_);
  keep_alive_ = llhttp_should_keep_alive(&parser()) && !w_->draining();
  client_closes_ = !llhttp_should_keep_alive(&parser()) && !parser().upgrade;
  // An answer to Upgrade other than a 101 (or a route that does not
  // tunnel it, and so drops it) closes the connection after it: bytes the
  // client sent after its request, perhaps in the protocol it asked for,
  // are never read as HTTP requests.
  if (parser().upgrade) keep_alive_ = false;
  chunked_ = false;
  request().crlf_due = 0;
  request().trailer_bytes = 0;
  if (w_->access_log().enabled()) ex().begin_log(base, head());
  RequestHead rh;
  std::string path_scratch;
  const char* why = nullptr;
  int bad = check_request_head(parser(), base, head(), srv, path_scratch, &rh, &why);
  if (bad) {
    ex().respond_error(bad, why);
    return false;
  }
  chunked_ = rh.chunked;  // decoded here; the exchange chunks it again for an upstream
  state_ = State::kBody;
  arm_timer(srv.client_body_timeout_ms);
  ExchangeRequest rq;
  rq.base = base;
  rq.head = &head();
  rq.checked = &rh;
  // The parser still holds the declared length.
  if (!chunked_ && (parser().flags & F_CONTENT_LENGTH)) rq.content_length = (int64_t)parser().content_length;
  // RFC 9110 7.8: an HTTP/1.0 request's Upgrade is ignored. CONNECT is no upgrade.
  rq.upgrade = parser().upgrade && !http10_ && parser().method != HTTP_CONNECT;
  ex().start(rq);
  return state_ != State::kClosed && state_ != State::kLinger;
}

void ClientConn::on_request_complete() {
  state_ = State::kWaiting;
  timer_disarm(&timer_);
  if (producer_paused_) arm_send_timer();  // the answer waits for the client (behind())
  ex().request_end();
}

void ClientConn::finish_exchange() {
  ex().complete();
  served_ = true;
  rq_->answers++;
  // While the worker drains, keep_alive_ is still set only when this answer
  // went out before the drain began and promised keep-alive: its client may
  // send another request at once, so the connection idles for the drain
  // grace like the others (next_request) instead of closing under it.
  if (!keep_alive_ || (client_eof_ && !inbuf_) ||
      (w_->draining() && w_->drain_idle_grace_ms() == 0)) {
    // A client that asked for the close sends nothing more: with every byte
    // of the answer in the kernel and none of the client's left unread, a
    // close now ends in a FIN after the answer, never an RST, as nginx
    // closes (lingering only when input is left, ngx_http_set_lingering_close).
    // That saves the shutdown, a poll and the read of the client's EOF per
    // connection (bench --shapes close). Pipelined bytes, TLS and our own
    // decisions to close keep the lingering close.
    if (client_closes_ && !tls_ && !inbuf_ && queued() == 0) {
      close();
      return;
    }
    shutdown_and_linger();
    return;
  }
  reset_request();
  state_ = State::kIdle;
  client_paused_ = false;
  if (queued() > kHighWater) {
    // The client does not read its answers: take no request (and read
    // nothing) until they drain below kLowWater (on_write_done).
    out_full_ = true;
    stop_reading();
    arm_timer(w_->site().server.send_timeout_ms);
    return;
  }
  next_request();
}

// Held answers (EdgeSocket::hold) wait, on an idle worker, only while the
// next one is awaited from an upstream server, for twice its recent answer
// time since the last answer completed (Worker::scan_holds): not behind an
// app or a static file, and behind a streaming answer no longer than that.
SocketOwner::HoldWait ClientConn::hold_wait() const {
  if (!rq_) return {};
  return {rq_->answers, rq_->ex.hold_wait_us()};
}

// Keep-alive: parse pipelined bytes already here, and read when the backlog
// allows. Inside parse() (a local answer), parse() goes on by itself.
void ClientConn::next_request() {
  arm_idle_timer();
  if (!in_parse_ && inbuf_) {
    // Pipelined requests: the answers wait for each other (a while at most:
    // EdgeSocket::hold) and leave together once none is in progress.
    sock_.hold();
    state_ = State::kHead;
    arm_head_timer();
    run_inbuf();
    if (rq_) rq_->ex.flush_upstream();
  }
  // (Inside parse(), a local answer: the parse goes on, and the caller
  // decides once it stops.)
  if (!in_parse_ && state_ != State::kWaiting) sock_.release();
  if (client_eof_ && !in_parse_ && !out_full_ &&
      (state_ == State::kIdle || state_ == State::kHead)) {
    // A half-closed client's pipelined requests are all answered; a partial
    // head left over can never complete.
    keep_alive_ = false;
    shutdown_and_linger();
    return;
  }
  update_reading();
  if (state_ == State::kIdle && !inbuf_) release_request();
}

void ClientConn::reset_request() {
  if (rq_) rq_->ex.reset();  // first: it may call back into the sink
  head_started_ = false;
  producer_paused_ = false;
  until_eof_ = false;
  too_large_ = false;
  chunked_ = rechunk_ = false;
  in_trailer_ = trailer_cr_ = false;
  if (!rq_) return;
  Request& r = *rq_;
  r.chunked_in = 0;
  r.crlf_due = 0;
  if (r.resp_out) {
    w_->give_buf(r.resp_out);
    r.resp_out = nullptr;
  }
  if (r.head.headers) {
    w_->give_spans(r.head.headers);
    r.head.headers = nullptr;
  }
}

// The CRLF after a chunk's data, from `q` (crlf_due of its bytes not
// checked yet; those past `end` are checked when the next read comes).
bool ClientConn::check_chunk_crlf(const char* q, const char* end) {
  uint8_t& due = request().crlf_due;
  for (; due > 0 && q < end; due--, q++)
    if (*q != "\r\n"[2 - due]) return false;
  return true;
}

// A trailer section may be as large as a head; more is an error (400).
int ClientConn::count_trailer(size_t n) {
  uint32_t& t = request().trailer_bytes;
  t += (uint32_t)n;  // n is at most one read
  return t > w_->site().server.max_header_bytes ? HPE_USER : 0;
}

int ClientConn::head_error_status(const char* base, llhttp_errno_t err) const {
  if (err != HPE_INVALID_TRANSFER_ENCODING) return 400;
  // An unknown coding is 501 as in nginx; a repeated header line is 400.
  int n = 0;
  for (const HeaderSpan& h : *head().headers)
    if (iequals(span_view(base, h.name), "transfer-encoding")) n++;
  return n > 1 ? 400 : 501;
}


void ClientConn::on_drain() {
  if (state_ == State::kH2) {
    h2_->on_drain();
    return;
  }
  // A connection that has not sent its first request yet is not idle: its
  // client is about to send one. It gets one answer with Connection: close.
  // One whose client does not read its answers (out_full_) keeps its
  // send_timeout; once they are read it idles for the grace (next_request).
  // One still writing its last answer keeps its send_timeout; the grace
  // starts once the answer is all out (on_write_done -> arm_idle_timer).
  if (state_ != State::kIdle || inbuf_ || !served_ || out_full_ || queued() > 0) return;
  uint32_t grace = w_->drain_idle_grace_ms();
  if (grace == 0) {
    end_drain_grace();
    return;
  }
  // keepalive_timeout may end sooner: the client expects no more than that.
  if (timer_.armed() && timer_.deadline <= w_->now() + grace) return;
  arm_timer(grace);
}

// keepalive_timeout (or the drain grace) runs once the last answer is all
// in the kernel; while some of it waits in our queue, send_timeout governs,
// restarted by each write that completes (on_write_done), as nginx's
// ngx_http_set_keepalive waits for the flush. Before, keepalive_timeout
// closed a slow reader's connection under its answer's tail (review 29 F1).
void ClientConn::arm_idle_timer() {
  if (queued() > 0)
    arm_send_timer();
  else
    arm_timer(idle_timeout_ms());
}

// A request head that begins while an earlier answer's tail still waits in
// our queue is behind a client that may not be reading: send_timeout
// governs, restarted by each write that completes, and client_header_timeout
// starts once the queue is empty (on_write_done), as nginx reads a pipelined
// request only after the previous answer is flushed. Before, a partial head
// behind a large answer held the connection for client_header_timeout
// (review 30 T6).
void ClientConn::arm_head_timer() {
  head_on_send_ = queued() > 0;
  arm_timer(head_on_send_ ? w_->site().server.send_timeout_ms : w_->site().server.client_header_timeout_ms);
}

uint32_t ClientConn::idle_timeout_ms() const {
  return w_->draining() ? w_->drain_idle_grace_ms() : w_->site().server.keepalive_timeout_ms;
}

// An idle connection of a draining worker stayed silent through the grace.
// Bytes that came in but are not read yet begin a request: closing now would
// turn it into a reset, so it is read and answered instead (the loop reads
// after timers). Answers not read yet are delivered before the close. Under
// TLS the bytes are a record: a request, or a close_notify whose EOF follows.
void ClientConn::end_drain_grace() {
  char byte;
  if (sock_.is_open() && recv(sock_.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
    arm_timer(w_->site().server.client_header_timeout_ms);
    return;
  }
  if (queued() > 0)
    shutdown_and_linger();
  else
    close();
}

void ClientConn::shutdown_and_linger() {
  if (state_ == State::kClosed || state_ == State::kLinger) return;
  if (rq_) rq_->ex.drop_upstream();
  state_ = State::kLinger;
  out_full_ = client_paused_ = false;
  // Shut the write side once every queued byte is written (send_timeout
  // governs until then: closing earlier would cancel those writes), then
  // read until the client's EOF (or kLingerMs), so unread input never turns
  // our close into an RST that destroys the response in flight. TLS says
  // close_notify first, so the client knows the response was not truncated.
  if (tls_) tls_close_notify();
  if (sock_.shutdown() < 0) {
    close();
    return;
  }
  arm_timer(w_->site().server.send_timeout_ms);
  update_reading();  // discards input until EOF (unless EOF came already)
}

void ClientConn::on_shutdown(int status) {
  if (state_ == State::kClosed) return;  // closed meanwhile (UV_ECANCELED)
  if (status < 0 || client_eof_) {
    close();
    return;
  }
  shut_done_ = true;
  arm_timer(kLingerMs);
}

void ClientConn::on_timer(TimerNode* t) {
  auto* c = static_cast<ClientConn*>(t->owner);
  switch (c->state_) {
    case State::kHead:
      if (c->head_on_send_) {  // send_timeout: the client takes none of the earlier answer
        c->close();
        return;
      }
      if (c->head_started_) {
        if (c->inbuf_) c->ex().begin_raw_log(c->inbuf_->data(), c->inbuf_->data() + c->inbuf_->size());
        c->ex().respond_error(408, "client header timeout");
        return;
      }
      c->close();
      return;
    case State::kBody:
      if (!c->ex().response_started()) {
        c->ex().respond_error(408, "client body timeout");
        return;
      }
      c->abort();  // an early answer framed by the close must not end in a FIN (review 50)
      return;
    case State::kLinger:
      if (c->reset_due_) {
        c->reset_when_sent();
        return;
      }
      // send_timeout before the last answer was all written: its rest is
      // dropped, and one framed by the close must not end in a FIN (review 49).
      c->close(!c->shut_done_ && c->until_eof_ && !c->tls_);
      return;
    case State::kIdle:
      if (c->tls_ && !c->tls_open_) {
        c->tls_handshake_failed("timed out (client_header_timeout)");
        c->close();
        return;
      }
      // With answers queued it was send_timeout: the client reads nothing.
      if (c->w_->draining() && !c->out_full_ && c->queued() == 0) {
        c->end_drain_grace();
        return;
      }
      c->close();
      return;
    default:
      // send_timeout mid-answer: the client reads nothing (review 49).
      c->cut_now();
  }
}

void ClientConn::abort() {
  if (state_ == State::kClosed) return;
  aborted_ = true;  // over TLS: no close_notify, the client sees the cut
  // A plain answer framed by the connection's end would look whole after a
  // FIN: it ends in a reset, once what is before it has left (a reset drops
  // what the kernel has not sent: earlier pipelined answers, review 49). Any
  // other framing shows the cut by itself.
  if (until_eof_ && !tls_)
    reset_when_sent();
  else
    close();
}

void ClientConn::on_exit() {
  if (state_ == State::kClosed || tls_) return;
  // (A head still held back: nothing of that answer left, and a FIN
  // delivers the answers before it; review 51.)
  if (reset_due_ || (until_eof_ && !(rq_ && rq_->resp_head) && !(state_ == State::kLinger && shut_done_)))
    cut_now();  // else the process's exit closes it
}

// abort() when nothing more can leave (a write failed, the client reads
// nothing): at once, a reset for an answer framed by the close.
void ClientConn::cut_now() {
  aborted_ = true;
  close(until_eof_ && !tls_);
}

// Nothing queued here or in the kernel (SIOCOUTQ: not yet acknowledged by
// the client), or nothing more can leave (SO_ERROR: the client reset it, and
// SIOCOUTQ may not fall to 0 then).
bool ClientConn::all_sent_or_lost() {
  if (!sock_.is_open()) return true;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(sock_.fd(), SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) return true;
  if (queued() > 0 || sock_.held()) return false;
  int unsent = 0;
  return ioctl(sock_.fd(), SIOCOUTQ, &unsent) < 0 || unsent == 0;
}

// Every byte queued (here and in the kernel) goes, then the connection is
// reset; send_timeout bounds the wait. Meanwhile the client's bytes are read
// and dropped, and any close is a reset (close()).
void ClientConn::reset_when_sent() {
  uint32_t send_timeout = w_->site().server.send_timeout_ms;
  if (!reset_due_) {
    reset_due_ = true;
    if (rq_) rq_->ex.on_close();  // the exchange ends here (as close() would end it)
    state_ = State::kLinger;
    out_full_ = client_paused_ = false;
    sock_.release();
    reset_polls_ = (uint16_t)std::min<uint32_t>(send_timeout / kResetPollMs + 1, UINT16_MAX);
    update_reading();
  }
  if (reset_polls_ == 0 || all_sent_or_lost()) {
    close(true);
    return;
  }
  reset_polls_--;
  arm_timer(kResetPollMs);
}

void ClientConn::close(bool rst) {
  if (state_ == State::kClosed) return;
  if (reset_due_) rst = true;  // (reset_when_sent) any end of it is a reset
  if (tls_ && !aborted_) tls_close_notify();  // once (kLinger sent it already); the socket closes next
  state_ = State::kClosed;
  if (rq_) rq_->ex.on_close();
  if (release_queued_) w_->cancel_send(this);
  if (h2_) h2_->on_close();
  timer_disarm(&timer_);
  sock_.close(rst);
  w_->defer_free(finish_close, this);
}

void ClientConn::on_sock_shut(int status) {
  if (state_ == State::kTunnel)
    on_tunnel_shut(status);
  else
    on_shutdown(status);
}

void ClientConn::finish_close(void* conn) {
  auto* c = static_cast<ClientConn*>(conn);
  Worker* w = c->w_;
  if (c->inbuf_) w->give_buf(c->inbuf_);
  if (c->rq_) c->give_request_bufs();
  delete c->h2_;
  w->client_closed(c);
  delete c;  // the exchange gives its buffers back
}

}  // namespace pasture::worker
