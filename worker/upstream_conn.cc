#include "worker/upstream_conn.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/log.h"
#include "worker/exchange.h"
#include "worker/head_check.h"

namespace pasture::worker {
namespace {

constexpr uint32_t kIdleTimeoutMs = 60000;  // idle pooled upstream connection, up to `keepalive`
constexpr uint32_t kExcessIdleMs = 2000;    // ...beyond `keepalive`: kept briefly (see release_to_pool)
constexpr size_t kMaxIdlePerServer = 4096;  // hard cap per server per worker
constexpr size_t kMaxResponseHead = 64 * 1024;     // larger upstream heads -> 502
constexpr size_t kOneSegment = 1200;  // a write this small leaves in one segment (send_first_head)

}  // namespace

// llhttp callbacks; they only record (see ClientConn for the same scheme).
struct UpstreamCallbacks {
  static UpstreamConn* up(llhttp_t* p) { return static_cast<UpstreamConn*>(p->data); }
  static int on_status(llhttp_t* p, const char* at, size_t n) {
    up(p)->head_.on_status(at, n);
    return 0;
  }
  // After the head, fields are a chunked body's trailer section: dropped
  // (see parse()), so only counted, against the limit a head has.
  static int on_field(llhttp_t* p, const char* at, size_t n) {
    UpstreamConn* u = up(p);
    if (u->head_done_) return u->count_trailer(n);
    u->head_.on_field(at, n);
    return 0;
  }
  static int on_value(llhttp_t* p, const char* at, size_t n) {
    UpstreamConn* u = up(p);
    if (u->head_done_) return u->count_trailer(n);
    u->head_.on_value(at, n);
    return 0;
  }
  // A response to HEAD, a 1xx, a 204 and a 304 have no body whatever their
  // headers say (RFC 9112 6.3; llhttp would read a 304's or a 103's
  // Content-Length bytes): return 1 and let on_message_complete pause instead.
  static int on_headers_complete(llhttp_t* p) {
    int s = p->status_code;
    return up(p)->head_request_ || s < 200 || s == 204 || s == 304 ? 1 : HPE_PAUSED;
  }
  // The last chunk's size line: pause, so parse() learns where the trailer
  // section starts.
  static int on_chunk_header(llhttp_t* p) {
    return p->content_length == 0 && !up(p)->decode_ ? HPE_PAUSED : 0;
  }
  static int on_body(llhttp_t* p, const char* at, size_t n) {
    UpstreamConn* u = up(p);
    if (u->decode_ && u->client_) u->client_->on_response_body(at, n);
    return 0;
  }
  // An interim response cannot close the connection: its final response
  // follows (llhttp would swallow that in silence).
  static int on_message_complete(llhttp_t* p) {
    up(p)->msg_done_ = true;
    if (p->status_code < 200) p->flags &= ~F_CONNECTION_CLOSE;
    return HPE_PAUSED;
  }
};

const llhttp_settings_t* UpstreamConn::settings() {
  static llhttp_settings_t s = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_status = UpstreamCallbacks::on_status;
    st.on_header_field = UpstreamCallbacks::on_field;
    st.on_header_value = UpstreamCallbacks::on_value;
    st.on_headers_complete = UpstreamCallbacks::on_headers_complete;
    st.on_chunk_header = UpstreamCallbacks::on_chunk_header;
    st.on_body = UpstreamCallbacks::on_body;
    st.on_message_complete = UpstreamCallbacks::on_message_complete;
    return st;
  }();
  return &s;
}

UpstreamConn::UpstreamConn(Worker* w, PoolRt* pool, int server)
    : w_(w), pool_(pool), server_(server), member_generation_(pool->targets[server].member_generation) {
  timer_.owner = this;
  timer_.fire = on_timer;
  send_timer_.owner = this;
  send_timer_.fire = on_send_timer;
}

// send_timeout (nginx's proxy_send_timeout): the upstream must take request
// bytes at least every send_timeout while some wait in our queue.
void UpstreamConn::watch_send() {
  if (sock_.queued() > 0)
    w_->timers().arm(&send_timer_, pool_->cfg->send_timeout_ms, w_->now());
  else
    timer_disarm(&send_timer_);
}

void UpstreamConn::on_send_timer(TimerNode* t) {
  auto* u = static_cast<UpstreamConn*>(t->owner);
  if (u->state_ != State::kActive) return;
  if (u->head_done_)
    u->abort_client();
  else
    u->fail(504, FailKind::kTimeout, "upstream did not take the request (send_timeout)");
}

UpstreamConn* UpstreamConn::acquire(Worker* w, PoolRt* pool, int server, bool fresh, int* err) {
  Target& t = pool->targets[server];
  if (!fresh && !t.idle.empty()) {
    UpstreamConn* u = t.idle.back();
    t.idle.pop_back();
    u->state_ = State::kActive;
    u->reused_ = true;
    timer_disarm(&u->timer_);
    return u;
  }
  auto* u = new UpstreamConn(w, pool, server);
  *err = u->connect();
  return *err == 0 ? u : nullptr;
}

int UpstreamConn::connect() {
  const ResolvedServer& a = pool_->targets[server_].addr;
  if (a.addr.ss_family == AF_UNIX) return connect_unix(a);
  connect_ns_ = stats_clock_ns();
  if (!pool_->cfg->servers[server_].tls) return connect_plain(a);
  // TLS: the handshake begins once the socket is writable (on_connected).
  if (int r = open_socket(a, true); r < 0) return r;
  sock_.wait_connect();
  state_ = State::kConnecting;
  w_->timers().arm(&timer_, pool_->cfg->connect_timeout_ms, w_->now());
  return 0;
}

// socket() and connect() (one in progress too, if `in_progress_ok`), the fd
// handed to sock_ (the worker's epoll set). A failure is logged, the fd and
// the connection closed.
int UpstreamConn::open_socket(const ResolvedServer& a, bool in_progress_ok) {
  int fd = socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int r = fd < 0 ? -errno : 0;
  if (r == 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.addrlen) != 0 &&
      !(in_progress_ok && errno == EINPROGRESS))
    r = -errno;
  if (r < 0 && fd >= 0) ::close(fd);
  if (r == 0) r = sock_.open(w_, fd, this, true);  // closes fd on failure
  if (r < 0) {
    PLOG_WARN("pool %s: connect() to %s failed: %s", pool_->cfg->name.c_str(),
              pool_->targets[server_].label.c_str(), uv_strerror(r));
    close();
  }
  return r;
}

// A plain connection does not wait for the connect to finish: the request
// head goes out with it (start -> send_first_head) instead of a loop turn
// later (waiting for EPOLLOUT and asking SO_ERROR, as a TLS connection
// does, costs two system calls more per new connection, which bench
// --shapes upclose pays on every request). The connection stays kConnecting
// until a write or a read shows it is up (connected_plain); a connect that
// fails shows as that write's or read's error, a FailKind::kConnect. Reading
// starts at once (the socket entered the epoll set once, at open).
int UpstreamConn::connect_plain(const ResolvedServer& a) {
  if (int r = open_socket(a, true); r < 0) return r;
  state_ = State::kConnecting;
  plain_connecting_ = true;
  w_->timers().arm(&timer_, pool_->cfg->connect_timeout_ms, w_->now());
  sock_.read_start();
  reading_ = true;
  return 0;
}

// The head of the first request on a plain connection still connecting. A
// write that goes through (on loopback the handshake is done by the time
// connect() returns) means the connection is up; else (EAGAIN: still
// connecting) the head waits in the socket's queue, and that write's end
// tells: done -> up, failed -> the connect failed; an error at once is
// reported at the end of the loop turn, never from inside start(). Body
// bytes wait in pending_ meanwhile, so a failed connect hands them back for
// a retry.
void UpstreamConn::send_first_head() {
  uv_buf_t b = uv_buf_init(const_cast<char*>(head_out_->data()), (unsigned)head_out_->size());
  head_out_ = nullptr;
  // Nagle can hold back only a segment sent while another is unacknowledged:
  // not a first write that fits in one segment (1,200 bytes: below any MSS a
  // path to an upstream has). Anything else is sent with TCP_NODELAY on
  // (send_bufs), as on every connection before.
  if (b.len > kOneSegment) set_nodelay();
  size_t written = 0;
  int r = sock_.send(&b, 1, &written);
  if (r == 0 && written == b.len) {
    connected_plain();
    return;
  }
  // A failed write is the connect's error (ECONNREFUSED): reported at the
  // end of the loop turn (send_deferred), as a failure here would re-enter
  // the exchange from inside start(). Never written again: a second write
  // on the refused socket would raise SIGPIPE (fatal to the worker if an
  // app turned SIG_IGN back to SIG_DFL; review 28) and tell EPIPE.
  if (r < 0) {  // (or no memory to queue it)
    connect_error_ = r;
    send_queued_ = true;
    w_->defer_send(this);
    return;
  }
  if (written > 0) connected_plain();  // part of it went: the connection is up
}

// The connection is known to be up: what on_connected does for a TLS one.
void UpstreamConn::connected_plain() {
  plain_connecting_ = false;
  w_->server_stats(pool_->targets[server_].shm_index).connect.observe((stats_clock_ns() - connect_ns_) / 1000);
  timer_disarm(&timer_);
  on_ready();
}

void UpstreamConn::connect_failed(int err) {
  timer_disarm(&timer_);
  char why[160];
  snprintf(why, sizeof why, "connect() failed: %s", uv_strerror(connect_error_ ? connect_error_ : err));
  fail(502, FailKind::kConnect, why);
}

void UpstreamConn::send_deferred() {
  send_queued_ = false;
  if (plain_connecting_ && state_ == State::kConnecting && connect_error_) {
    connect_failed(connect_error_);
    return;
  }
  flush();
}

void UpstreamConn::set_nodelay() {
  if (nodelay_) return;
  nodelay_ = true;
  int one = 1;
  setsockopt(sock_.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A unix-domain connect() completes or fails at once (EAGAIN: full backlog;
// ECONNREFUSED: nobody accepts; ENOENT: no socket file); the connection
// starts out kActive like a reused one. A failure returns its
// error: the caller treats it as a connect error (retry, passive health).
int UpstreamConn::connect_unix(const ResolvedServer& a) {
  if (int r = open_socket(a, false); r < 0) return r;
  state_ = State::kActive;
  nodelay_ = true;  // no Nagle on a unix socket
  resume_read();
  return 0;
}

void UpstreamConn::on_connected(int status) {
  if (state_ == State::kClosed) return;
  if (status < 0) {
    connect_failed(status);
    return;
  }
  w_->server_stats(pool_->targets[server_].shm_index).connect.observe((stats_clock_ns() - connect_ns_) / 1000);
  set_nodelay();
  if (pool_->cfg->servers[server_].tls) {
    tls_begin();  // connect_timeout keeps running through the handshake
    return;
  }
  timer_disarm(&timer_);
  on_ready();
}

void UpstreamConn::on_ready() {
  state_ = State::kActive;
  resume_read();
  if (!client_) return;
  if (pending_) {
    std::string* p = pending_;
    pending_ = nullptr;
    write_head_with(p->data(), p->size());
    w_->give_buf(p);
    // The client may have stopped reading because `pending_` grew large; if
    // the kernel took it all, no write callback will come to resume it.
    if (client_ && queued() < kLowWater) client_->on_upstream_drained();
  } else {
    flush();
  }
  if (state_ == State::kActive && request_done_) arm_read_timer();
}

void UpstreamConn::start(Exchange* c, const std::string* head, bool head_request) {
  client_ = c;
  head_out_ = head;
  head_request_ = head_request;
  head_done_ = got_bytes_ = body_sent_ = request_done_ = decode_ = head_started_ = false;
  early_answer_ = false;
  msg_done_ = in_trailer_ = false;
  trailer_bytes_ = 0;
  llhttp_init(&parser_, HTTP_RESPONSE, settings());
  parser_.data = this;
  if (!head_.headers) head_.headers = w_->take_spans();
  head_.reset();
  if (plain_connecting_ && head_out_) send_first_head();
}

void UpstreamConn::write_head_with(const char* body, size_t n) {
  uv_buf_t bufs[2];
  unsigned nb = 0;
  if (head_out_) bufs[nb++] = uv_buf_init(const_cast<char*>(head_out_->data()),
                                          (unsigned)head_out_->size());
  if (n) bufs[nb++] = uv_buf_init(const_cast<char*>(body), (unsigned)n);
  head_out_ = nullptr;
  if (n) body_sent_ = true;
  if (nb == 0) return;
  int r = send_bufs(bufs, nb);
  if (r >= 0 && sock_.queued() > 0 && !send_timer_.armed()) watch_send();
  if (r < 0) {
    char why[160];
    snprintf(why, sizeof why, "write() failed: %s", uv_strerror(r));
    fail(502, reused_ && !got_bytes_ ? FailKind::kStale : FailKind::kReset, why);
  }
}

int UpstreamConn::send_bufs(const uv_buf_t* bufs, unsigned n) {
  if (tls_) return tls_send(bufs, n);
  set_nodelay();  // a later write (see send_first_head)
  return sock_.send(bufs, n);
}

void UpstreamConn::flush() {
  if (state_ == State::kActive && head_out_) write_head_with(nullptr, 0);
}

void UpstreamConn::send_body(const char* p, size_t n) {
  if (state_ == State::kConnecting || state_ == State::kHandshake) {
    if (!pending_) {
      pending_ = w_->take_buf();
      pending_->clear();
    }
    pending_->append(p, n);
    return;
  }
  if (state_ != State::kActive) return;
  write_head_with(p, n);
}

void UpstreamConn::request_done() {
  request_done_ = true;
  if (state_ != State::kActive) return;
  // A head with nothing behind it goes at the end of the loop turn, with
  // the other heads that became ready in the same poll (TurnSender).
  if (head_out_ && !send_queued_) {
    send_queued_ = true;
    w_->defer_send(this);
  }
  // read_timeout runs from here, also for an answer that began early (on_read
  // re-arms it), unless the client holds us paused (pause_read).
  if (state_ == State::kActive && !paused_) arm_read_timer();
}

void UpstreamConn::arm_read_timer() {
  w_->timers().arm(&timer_, pool_->cfg->read_timeout_ms, w_->now());
}

// The client is not taking the response: nothing is read, and read_timeout
// (which measures the upstream) stops until reading resumes; the client's
// send_timeout governs meanwhile.
void UpstreamConn::pause_read() {
  paused_ = true;
  if (reading_) {
    sock_.read_stop();
    reading_ = false;
  }
  if (state_ == State::kActive && request_done_) timer_disarm(&timer_);
}

void UpstreamConn::resume_read() {
  bool was_paused = paused_;
  paused_ = false;
  if (!reading_ && state_ != State::kClosed && state_ != State::kConnecting && !read_eof_ && sock_.is_open()) {
    sock_.read_start();
    reading_ = true;
  }
  if (state_ == State::kTunnel) {
    if (client_) arm_tunnel_timer();  // a detached half keeps its deadline
    return;
  }
  if (was_paused && state_ == State::kActive && client_ && request_done_) arm_read_timer();
}

void UpstreamConn::on_read(ssize_t nread, const char* data) {
  if (nread == 0) return;
  if (tls_) {
    tls_read(nread, data);
    return;
  }
  on_stream(nread, data);
}

// What the server sent (decrypted), or its EOF (nread < 0).
void UpstreamConn::on_stream(ssize_t nread, const char* data) {
  if (plain_connecting_ && state_ == State::kConnecting) {
    if (nread < 0) {  // the connect failed (its error comes with the first read)
      connect_failed((int)nread);
      return;
    }
    connected_plain();  // the server spoke first: the connection is up
  }
  if (state_ == State::kIdle) {  // the server closed or sent junk: drop it
    close();
    return;
  }
  if (state_ == State::kTunnel) {
    tunnel_read(nread, data);
    return;
  }
  if (state_ != State::kActive || !client_) {
    if (nread < 0) close();
    return;
  }
  if (nread < 0) {
    reading_ = false;
    if (nread == UV_EOF && head_done_) {
      // A body delimited by EOF ends here; any other framing is truncated.
      llhttp_errno_t err = llhttp_finish(&parser_);
      if (err == HPE_OK || err == HPE_PAUSED) {
        on_message_complete(nullptr, nullptr);
        return;
      }
    }
    if (head_done_) {
      abort_client();
      return;
    }
    char why[160];
    snprintf(why, sizeof why, "upstream closed the connection before answering (%s)",
             uv_strerror((int)nread));
    fail(502, reused_ && !got_bytes_ ? FailKind::kStale : FailKind::kReset, why);
    return;
  }
  got_bytes_ = true;
  // read_timeout starts once the whole request is sent (request_done): an
  // interim 100 Continue, or an early answer, before then must not time out
  // a client still sending its body (client_body_timeout watches that).
  if (request_done_) arm_read_timer();
  size_t n = (size_t)nread;
  if (inbuf_) {
    size_t old = inbuf_->size();
    inbuf_->append(data, n);
    const char* base = inbuf_->data();
    parse(base, base + old, base + inbuf_->size());
  } else {
    parse(data, data, data + n);
  }
  // inbuf_ only outlives a read while a head is still incomplete.
  if (inbuf_ && !(state_ == State::kActive && head_started_ && !head_done_)) {
    w_->give_buf(inbuf_);
    inbuf_ = nullptr;
  }
}

const char* UpstreamConn::parse(const char* base, const char* p, const char* end) {
  while (state_ == State::kActive && client_) {
    if (!head_done_) {
      if (!head_started_) {
        head_started_ = true;
        msg_start_ = (uint32_t)(p - base);
        head_.reset();
      }
      head_.base = base;
      llhttp_errno_t err = llhttp_execute(&parser_, p, end - p);
      if (err == HPE_OK) {
        keep_partial_head(base, end);
        return end;
      }
      if (err != HPE_PAUSED) {
        char why[200];
        snprintf(why, sizeof why, "invalid response from upstream: %s",
                 llhttp_get_error_reason(&parser_));
        fail(502, FailKind::kInvalid, why);
        return end;
      }
      p = llhttp_get_error_pos(&parser_);
      llhttp_resume(&parser_);
      if (has_bare_cr(base + msg_start_, p)) {  // "200 O\rXSet-Cookie: ..." would split the head
        fail(502, FailKind::kInvalid, "invalid response from upstream: bare CR in the head");
        return end;
      }
      int status = parser_.status_code;
      if (status == 101) {
        // Only to a request that asked for it (exchange_tunnel.cc).
        if (client_->upgrading()) return start_tunnel(base, p, end);
        fail(502, FailKind::kInvalid, "upstream switched protocols unasked");
        return end;
      }
      decode_ = client_->on_response_head(base, head_, &parser_);
      if (!client_) return end;  // the client retried elsewhere and dropped us
      if (status < 200) {
        // An interim 1xx: llhttp pauses once more in its on_message_complete,
        // then the real head follows.
        if (!msg_done_ && llhttp_execute(&parser_, p, end - p) == HPE_PAUSED) {
          p = llhttp_get_error_pos(&parser_);
          llhttp_resume(&parser_);
        }
        msg_done_ = false;
        head_started_ = false;
        continue;
      }
      head_done_ = true;
      // An answer that began before the whole request reached the socket
      // (nginx: "upstream sent response before request body was fully
      // sent"): request bytes may still be queued here or unread there, and
      // whatever follows on this connection could be read as their tail.
      early_answer_ = !request_done_ || sock_.queued() > 0;
      if (msg_done_) {  // HEAD: no body, the message ended with its head
        on_message_complete(end, p);
        return end;
      }
      continue;
    }
    // The body goes to the client as it came, up to the last chunk's size
    // line; its trailer section is dropped (RFC 9110 6.5.1 lets a proxy; a
    // Connection field there would tell the client to close) and ended here.
    bool raw = !decode_ && !in_trailer_;
    llhttp_errno_t err = llhttp_execute(&parser_, p, end - p);
    if (err == HPE_OK) {
      if (raw && p < end) client_->on_response_body(p, end - p);
      if (client_) client_->flush();
      return end;
    }
    if (err != HPE_PAUSED) {
      PLOG_WARN("pool %s: invalid response body from %s: %s", pool_->cfg->name.c_str(),
                pool_->targets[server_].label.c_str(),
                llhttp_get_error_reason(&parser_));
      abort_client();
      return end;
    }
    const char* pos = llhttp_get_error_pos(&parser_);
    llhttp_resume(&parser_);
    if (raw && pos > p) client_->on_response_body(p, pos - p);
    if (!client_) return end;
    if (!msg_done_) {  // paused at the last chunk (on_chunk_header)
      in_trailer_ = true;
      p = pos;
      continue;
    }
    if (in_trailer_) {
      client_->on_response_body("\r\n", 2);
      if (!client_) return end;
    }
    on_message_complete(end, pos);
    return end;
  }
  return end;
}

int UpstreamConn::count_trailer(size_t n) {
  trailer_bytes_ += (uint32_t)n;  // n is at most one read
  return trailer_bytes_ > kMaxResponseHead ? HPE_USER : 0;
}

// Keep a partial response head from its first byte, so offsets stay valid.
void UpstreamConn::keep_partial_head(const char* base, const char* end) {
  if ((size_t)(end - (base + msg_start_)) > kMaxResponseHead) {
    fail(502, FailKind::kInvalid, "upstream response head too large");
    return;
  }
  if (!inbuf_) {
    inbuf_ = w_->take_buf();
    inbuf_->assign(base + msg_start_, end);
  } else if (msg_start_) {
    inbuf_->erase(0, msg_start_);
  }
  head_.rebase(msg_start_);
  msg_start_ = 0;
}

void UpstreamConn::abort_client() {
  Exchange* c = client_;
  client_ = nullptr;
  close();
  if (c) c->on_upstream_abort();
}

void UpstreamConn::on_message_complete(const char* end, const char* pos) {
  // After an Upgrade request answered otherwise than 101 the connection is
  // not reused: many servers' parsers (llhttp's among them) stay in the
  // switched state after such a request.
  bool reusable = pos != nullptr && pos == end && request_done_ && !early_answer_ &&
                  sock_.queued() == 0 && !(client_ && client_->upgrading()) &&
                  llhttp_should_keep_alive(&parser_) && !w_->draining();
  Exchange* c = client_;
  client_ = nullptr;
  timer_disarm(&timer_);
  if (reusable)
    release_to_pool();
  else
    close();
  // Last: the client may start its next request and acquire this connection again.
  if (c) c->on_response_done(reusable);
}

void UpstreamConn::release_to_pool() {
  Target& t = pool_->targets[server_];
  // Its member left, or another took the slot while this request was in
  // flight: the connection is to an address no pick will name.
  if (t.member_gone || t.member_generation != member_generation_) {
    close();
    return;
  }
  // `keepalive` connections may idle for a minute. Beyond that, under a
  // burst of concurrency, closing every excess connection at once would make
  // the next burst reconnect (nginx's keepalive does exactly that: about one
  // new upstream connection per three requests at 200 concurrent clients), so
  // excess connections are kept too, but time out after kExcessIdleMs unused.
  // The idle list is LIFO: busy traffic reuses the newest, the oldest age out.
  if (t.idle.size() >= kMaxIdlePerServer) {
    close();
    return;
  }
  uint32_t idle_ms = t.idle.size() >= pool_->cfg->keepalive ? kExcessIdleMs : kIdleTimeoutMs;
  state_ = State::kIdle;
  timer_disarm(&send_timer_);
  head_out_ = nullptr;
  if (head_.headers) {
    w_->give_spans(head_.headers);
    head_.headers = nullptr;
  }
  t.idle.push_back(this);
  idle_since_ = w_->now();
  w_->timers().arm(&timer_, idle_ms, w_->now());
  resume_read();  // to notice the server closing it
}

void UpstreamConn::fail(int status, FailKind kind, const char* why) {
  Exchange* c = client_;
  client_ = nullptr;
  std::string* unsent = nullptr;
  if (!body_sent_ && pending_) {
    unsent = pending_;
    pending_ = nullptr;
  }
  close();
  if (kind == FailKind::kStale) drop_older_idle();
  if (c)
    c->on_upstream_error(status, kind, why, unsent);
  else if (unsent)
    w_->give_buf(unsent);
}

// This pooled connection was found closed by its server. Those to the same
// server that have idled at least as long (the pool is LIFO: the ones below
// it) were most likely closed too, by the same keep-alive timeout or the
// same death: dropped now, they cost the next requests no stale attempt each.
void UpstreamConn::drop_older_idle() {
  std::vector<UpstreamConn*>& idle = pool_->targets[server_].idle;
  std::vector<UpstreamConn*> older;
  for (UpstreamConn* u : idle)
    if (u->idle_since_ <= idle_since_) older.push_back(u);
  for (UpstreamConn* u : older) u->close();  // each leaves `idle`
}

void UpstreamConn::abort() {
  client_ = nullptr;
  close();
}

void UpstreamConn::on_timer(TimerNode* t) {
  auto* u = static_cast<UpstreamConn*>(t->owner);
  switch (u->state_) {
    case State::kConnecting:
      if (u->connect_error_)
        u->connect_failed(u->connect_error_);
      else
        u->fail(504, FailKind::kConnectTimeout, "connect() timed out");
      return;
    case State::kHandshake:
      u->fail(504, FailKind::kConnectTimeout, "TLS handshake timed out (connect_timeout)");
      return;
    case State::kActive:
      if (!u->head_done_) {
        u->fail(504, FailKind::kTimeout, "upstream timed out");
      } else if (u->client_) {
        u->abort_client();
      } else {
        u->close();
      }
      return;
    case State::kTunnel:
      PLOG_DEBUG("pool %s: tunnel to %s idle for tunnel_timeout: closed", u->pool_->cfg->name.c_str(),
                 u->pool_->targets[u->server_].label.c_str());
      u->tunnel_end(false);
      return;
    default:
      u->close();
  }
}

void UpstreamConn::on_write_done(int status) {
  if (state_ == State::kClosed) return;
  if (plain_connecting_ && state_ == State::kConnecting) {  // the first head's write (send_first_head)
    if (status < 0)
      connect_failed(status);
    else
      connected_plain();
    return;
  }
  if (state_ == State::kTunnel) {
    if (status < 0) {
      tunnel_end(false);
      return;
    }
    if (client_) arm_tunnel_timer();  // progress (a detached half keeps its deadline)
    if (client_ && queued() < kLowWater) client_->on_upstream_drained();
    return;
  }
  if (status < 0) {
    if (client_) {
      if (head_done_)
        abort_client();
      else {
        fail(502, reused_ && !got_bytes_ ? FailKind::kStale : FailKind::kReset, "write to upstream failed");
      }
    } else {
      close();
    }
    return;
  }
  watch_send();  // progress: restart (or stop) the send timeout
  if (client_ && queued() < kLowWater) client_->on_upstream_drained();
}

void UpstreamConn::close() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kIdle) {
    auto& idle = pool_->targets[server_].idle;
    idle.erase(std::remove(idle.begin(), idle.end(), this), idle.end());
  }
  tls_close_notify();  // best effort: what the socket takes at once
  state_ = State::kClosed;
  if (send_queued_) w_->cancel_send(this);
  timer_disarm(&timer_);
  timer_disarm(&send_timer_);
  sock_.close();
  w_->defer_free(finish_close, this);
}

void UpstreamConn::finish_close(void* conn) {
  auto* u = static_cast<UpstreamConn*>(conn);
  Worker* w = u->w_;
  if (u->pending_) w->give_buf(u->pending_);
  if (u->inbuf_) w->give_buf(u->inbuf_);
  if (u->head_.headers) w->give_spans(u->head_.headers);
  delete u;
}

}  // namespace pasture::worker
