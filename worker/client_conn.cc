#include "worker/client_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common/health_state.h"
#include "common/log.h"
#include "worker/proxy_head.h"
#include "worker/router.h"
#include "worker/upstream_conn.h"

namespace pasture::worker {
namespace {

constexpr size_t kMaxPipelined = 64 * 1024;  // unparsed bytes held while a response is in flight
constexpr uint32_t kLingerMs = 2000;

void format_peer(const sockaddr* sa, char* out, size_t len) {
  out[0] = 0;
  if (!sa) return;
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, out, len);
  } else if (sa->sa_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
      inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, len);
    else
      inet_ntop(AF_INET6, &s6->sin6_addr, out, len);
  } else if (sa->sa_family == AF_UNIX) {
    snprintf(out, len, "unix:");  // what nginx's $remote_addr says
  }
}

void append(std::string& o, std::string_view s) { o.append(s.data(), s.size()); }

}  // namespace

ClientConn::ClientConn(Worker* w) : w_(w) {
  tcp_.data = static_cast<StreamOwner*>(this);
  timer_.owner = this;
  timer_.fire = on_timer;
  llhttp_init(&parser_, HTTP_REQUEST, settings());
  parser_.data = this;
}

const llhttp_settings_t* ClientConn::settings() {
  static llhttp_settings_t s = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_url = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<ClientConn*>(p->data)->head_.on_url(at, n);
      return 0;
    };
    st.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<ClientConn*>(p->data)->head_.on_field(at, n);
      return 0;
    };
    st.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<ClientConn*>(p->data)->head_.on_value(at, n);
      return 0;
    };
    st.on_body = [](llhttp_t* p, const char* at, size_t n) {
      auto* c = static_cast<ClientConn*>(p->data);
      if (c->chunked_) c->add_chunk(at, n);
      return 0;
    };
    // Pause at both ends of a message so parse() learns exact byte positions.
    st.on_headers_complete = [](llhttp_t*) { return (int)HPE_PAUSED; };
    st.on_message_complete = [](llhttp_t*) { return (int)HPE_PAUSED; };
    return st;
  }();
  return &s;
}

void ClientConn::accept_fd(Worker* w, int fd, const sockaddr* peer) {
  auto* c = new ClientConn(w);
  uv_tcp_init(w->loop(), &c->tcp_);
  int r = uv_tcp_open(&c->tcp_, fd);
  if (r < 0) {
    PLOG_WARN("uv_tcp_open(%d) failed: %s", fd, uv_strerror(r));
    ::close(fd);
    c->state_ = State::kClosed;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp_), [](uv_handle_t* h) {
      delete static_cast<ClientConn*>(static_cast<StreamOwner*>(h->data));
    });
    return;
  }
  format_peer(peer, c->peer_, sizeof c->peer_);
  w->client_opened(c);
  c->arm_timer(w->site().server.client_header_timeout_ms);
  c->start_reading();
}

void ClientConn::start_reading() {
  if (reading_ || state_ == State::kClosed) return;
  if (uv_read_start(stream(), Worker::alloc_cb, on_read_cb) == 0) reading_ = true;
}

void ClientConn::stop_reading() {
  if (!reading_) return;
  uv_read_stop(stream());
  reading_ = false;
}

void ClientConn::arm_timer(uint32_t ms) { w_->timers().arm(&timer_, ms, w_->now()); }

void ClientConn::on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<ClientConn*>(static_cast<StreamOwner*>(s->data));
  c->on_read(nread, buf->base);
}

void ClientConn::on_read(ssize_t nread, const char* data) {
  if (nread == 0) return;
  if (nread < 0) {
    reading_ = false;  // libuv stops reading at EOF and on errors
    if (nread == UV_EOF && state_ == State::kWaiting) {
      // Half-close after a complete request: answer, then close.
      client_eof_ = true;
      keep_alive_ = false;
      return;
    }
    close();
    return;
  }
  if (state_ == State::kLinger || state_ == State::kClosed) return;  // discard
  if (state_ == State::kIdle) {
    state_ = State::kHead;
    arm_timer(w_->site().server.client_header_timeout_ms);
  }
  size_t n = (size_t)nread;
  if (inbuf_) {
    inbuf_->append(data, n);
    if (state_ == State::kWaiting) {
      if (inbuf_->size() > kMaxPipelined) stop_reading();
      return;
    }
    run_inbuf();
  } else if (state_ == State::kWaiting) {
    inbuf_ = w_->take_buf();
    inbuf_->assign(data, n);
    inbuf_parsed_ = 0;
  } else {
    const char* rest = parse(data, data, data + n);
    retain(data, rest, data + n, false);
  }
  if (up_) up_->flush();
}

void ClientConn::run_inbuf() {
  while (inbuf_ && state_ != State::kWaiting && state_ != State::kLinger &&
         state_ != State::kClosed) {
    std::string* buf = inbuf_;
    const char* base = buf->data();
    const char* end = base + buf->size();
    const char* rest = parse(base, base + inbuf_parsed_, end);
    if (inbuf_ != buf) return;  // closed and released meanwhile
    retain(base, rest, end, true);
    if (!inbuf_ || rest == base + inbuf_parsed_) break;
  }
}

// Keep what parse() could not finish: a partial head (from its first byte, so
// offsets stay valid) or bytes of pipelined requests not parsed yet.
void ClientConn::retain(const char* base, const char* rest, const char* end, bool from_inbuf) {
  if (state_ == State::kClosed || state_ == State::kLinger) return;
  if (state_ == State::kHead && head_started_) {
    if (!from_inbuf) {
      inbuf_ = w_->take_buf();
      inbuf_->assign(base + msg_start_, end);
    } else if (msg_start_ > 0) {
      inbuf_->erase(0, msg_start_);
    }
    head_.rebase(msg_start_);
    head_.base = inbuf_->data();
    msg_start_ = 0;
    inbuf_parsed_ = (uint32_t)inbuf_->size();
    return;
  }
  if (rest < end) {
    if (!from_inbuf) {
      inbuf_ = w_->take_buf();
      inbuf_->assign(rest, end);
    } else {
      inbuf_->erase(0, rest - base);
    }
    inbuf_parsed_ = 0;
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
  while (state_ != State::kClosed && state_ != State::kLinger) {
    if (state_ == State::kIdle) {
      if (p == end) break;
      state_ = State::kHead;
      arm_timer(srv.client_header_timeout_ms);
    }
    if (state_ == State::kHead) {
      if (p == end) break;
      if (!head_started_) {
        head_started_ = true;
        msg_start_ = (uint32_t)(p - base);
        if (!head_.headers) head_.headers = w_->take_spans();
        head_.reset();
      }
      head_.base = base;
      llhttp_errno_t err = llhttp_execute(&parser_, p, end - p);
      if (err == HPE_OK) {
        if (parser_.http_major == 0 && parser_.http_minor == 9) {
          // "GET /\r\n": llhttp takes it for HTTP/0.9 and waits for a head
          // that will never come. Answer now, as nginx does (but with 400).
          begin_raw_log(base + msg_start_, end);
          respond_error(400, "HTTP/0.9 request");
        } else if ((size_t)(end - (base + msg_start_)) > srv.max_header_bytes) {
          begin_raw_log(base + msg_start_, end);
          respond_error(head_.last == HeadCollector::kUrl ? 414 : 431, "request head too large");
        }
        p = end;
        break;
      }
      if (err != HPE_PAUSED) {
        PLOG_DEBUG("bad request from %s: %s (%s)", peer_, llhttp_errno_name(err),
                   llhttp_get_error_reason(&parser_));
        begin_raw_log(base + msg_start_, end);
        respond_error(head_error_status(base, err), "malformed request");
        p = end;
        break;
      }
      const char* pos = llhttp_get_error_pos(&parser_);
      llhttp_resume(&parser_);
      if ((size_t)(pos - (base + msg_start_)) > srv.max_header_bytes) {
        begin_raw_log(base + msg_start_, end);
        respond_error(431, "request head too large");
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
    llhttp_errno_t err = llhttp_execute(&parser_, p, end - p);
    if (err == HPE_OK) {
      if (chunked_)
        flush_chunks();
      else if (p < end)
        forward_body(p, end - p);
      p = end;
      break;
    }
    if (err != HPE_PAUSED) {
      PLOG_DEBUG("bad request body from %s: %s (%s)", peer_, llhttp_errno_name(err),
                 llhttp_get_error_reason(&parser_));
      if (chunk_out_) chunk_out_->clear();  // the upstream never sees bad framing
      if (resp_started_)
        close();
      else
        respond_error(400, "malformed request body");
      p = end;
      break;
    }
    const char* pos = llhttp_get_error_pos(&parser_);
    llhttp_resume(&parser_);
    if (chunked_) {
      if (mode_ == Mode::kProxy && up_) {
        if (!chunk_out_) chunk_out_ = w_->take_buf();
        chunk_out_->append("0\r\n\r\n", 5);  // trailers are not forwarded (as nginx)
      }
      flush_chunks();
    } else if (pos > p) {
      forward_body(p, pos - p);
    }
    p = pos;
    if (state_ == State::kBody) on_request_complete();
  }
  in_parse_ = false;
  return p;
}

bool ClientConn::on_head(const char* base, const char* head_end) {
  (void)head_end;
  const auto& srv = w_->site().server;
  method_ = parser_.method;
  http10_ = parser_.http_major == 1 && parser_.http_minor == 0;
  keep_alive_ = llhttp_should_keep_alive(&parser_) && !w_->draining();
  // Upgrade is not proxied (the upstream sees a plain request without it):
  // close after the answer rather than guess what the client sends next.
  if (parser_.upgrade) keep_alive_ = false;
  chunked_ = false;
  std::string_view url = span_view(base, head_.url);
  if (w_->access_log().enabled()) begin_log(base);
  if (parser_.http_major != 1) {  // HTTP/0.9 ("GET /"), HTTP/2.0: nginx says 400, 505
    respond_error(parser_.http_major == 0 ? 400 : 505, "unsupported HTTP version");
    return false;
  }
  if (url.size() > srv.max_url_bytes) {
    respond_error(414, "request target too long");
    return false;
  }
  RequestTarget t;
  if (!split_target(url, &t)) {
    respond_error(400, "bad request target");
    return false;
  }
  std::string_view host = t.authority, host_field, te;
  bool have_host = false, bad_name = false;
  expect_continue_ = false;
  for (const HeaderSpan& h : *head_.headers) {
    std::string_view name = span_view(base, h.name);
    // llhttp accepts an empty name and whitespace before the colon; RFC 9112
    // 5.1 says reject (400), as nginx does.
    if (name.empty() || name.back() == ' ' || name.back() == '\t') bad_name = true;
    if (name.size() == 4 && iequals(name, "host")) {
      if (have_host) {
        respond_error(400, "duplicate Host header");
        return false;
      }
      have_host = true;
      host_field = trim_ows(span_view(base, h.value));
    } else if (name.size() == 6 && iequals(name, "expect")) {
      expect_continue_ = iequals(span_view(base, h.value), "100-continue");
    } else if (name.size() == 17 && iequals(name, "transfer-encoding")) {
      te = span_view(base, h.value);  // llhttp rejects a second one
    }
  }
  if (bad_name || head_.folded) {
    respond_error(400, "malformed header line");
    return false;
  }
  if (!have_host && !http10_) {
    respond_error(400, "missing Host header");
    return false;
  }
  if (have_host && !valid_host(host_field)) {
    respond_error(400, "invalid Host header");
    return false;
  }
  if (host.empty()) host = host_field;
  if (parser_.flags & F_TRANSFER_ENCODING) {
    // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. Any
    // coding but a lone "chunked" is not implemented (nginx: 501); llhttp
    // would accept "gzip, chunked".
    if (http10_) {
      respond_error(400, "Transfer-Encoding in an HTTP/1.0 request");
      return false;
    }
    if (!iequals(trim_ows(te), "chunked")) {
      respond_error(501, "unsupported Transfer-Encoding");
      return false;
    }
    chunked_ = true;  // the body is decoded and chunked again (add_chunk)
  }
  state_ = State::kBody;
  arm_timer(srv.client_body_timeout_ms);
  RouteResult r = route(w_->site(), host, t.path);
  handler_ = r.handler;
  script_len_ = r.script_name_len;
  if (handler_ < 0) {
    respond_local(404, "404 Not Found\n", false);
    return true;
  }
  const conf::Handler& hd = w_->site().handlers[handler_];
  if (hd.kind == conf::HandlerKind::Echo) {
    std::string body;
    body.reserve(hd.echo_name.size() + url.size() + 16);
    body.append(hd.echo_name).append(" ");
    body.append(llhttp_method_name((llhttp_method_t)method_)).append(" ");
    append(body, url);
    body.append("\n");
    respond_local(200, body, false);
    return true;
  }
  start_proxy(base, hd.pool);
  return state_ != State::kClosed && state_ != State::kLinger;
}

void ClientConn::start_proxy(const char* base, int pool_index) {
  PoolRt& pool = w_->pools()[pool_index];
  pool_ = pool_index;
  lb::RequestView rv = request_view(base, pool);
  int s = pool.balancer->pick(rv, *pool.state, w_->now());
  if (s < 0) {
    respond_local(503, "503 Service Unavailable: no upstream server available\n", false);
    return;
  }
  take_server(pool, s, rv.sticky_cookie);
  if (!build_upstream_head(base, pool, s)) return;
  mode_ = Mode::kProxy;
  connect_upstream();
}

// What the pool's balancing method looks at, as views into the request head.
lb::RequestView ClientConn::request_view(const char* base, const PoolRt& pool) {
  lb::RequestView rv;
  rv.client_addr = peer_;
  rv.rng = &w_->rng();
  const conf::Pool& cfg = *pool.cfg;
  bool hash = cfg.method == conf::BalanceMethod::Hash;
  bool cookie = cfg.method == conf::BalanceMethod::Cookie;
  if (!hash && !cookie) return rv;
  auto header = [&](std::string_view name) -> std::string_view {
    for (const HeaderSpan& h : *head_.headers)
      if (iequals(span_view(base, h.name), name)) return span_view(base, h.value);
    return {};
  };
  std::string_view cookies = header("cookie");
  if (cookie) {
    rv.sticky_cookie = lb::find_cookie(cookies, cfg.cookie_name);
    return rv;
  }
  std::string_view url = span_view(base, head_.url);
  RequestTarget t;
  split_target(url, &t);
  lb::KeySources src{peer_, url, t.path, t.query, cookies};
  rv.hash_key = lb::extract_hash_key(pool.hash_key, src, header);
  return rv;
}

// Count the request against server `s` and remember the sticky cookie to
// send back (a view into the pool's table, valid for the worker's life).
void ClientConn::take_server(PoolRt& pool, int s, std::string_view request_cookie) {
  server_ = s;
  if (s < 64) tried_ |= 1ull << s;
  if (!in_flight_) {
    in_flight_ = true;
    pool.in_flight++;
  }
  shm::ServerSlot& slot = pool.state->server_slots[s];
  slot.active.fetch_add(1, std::memory_order_relaxed);
  slot.requests.fetch_add(1, std::memory_order_relaxed);
  set_cookie_ = pool.cfg->method == conf::BalanceMethod::Cookie
                    ? lb::sticky_cookie_to_set(*pool.state, request_cookie, s)
                    : std::string_view();
}

bool ClientConn::build_upstream_head(const char* base, const PoolRt& pool, int server) {
  const conf::Pool& cfg = *pool.cfg;
  if (!uphead_) uphead_ = w_->take_buf();
  uphead_->clear();
  ProxyHeadInput in;
  in.method = llhttp_method_name((llhttp_method_t)method_);
  in.url = span_view(base, head_.url);
  in.base = base;
  in.headers = head_.headers;
  in.peer = peer_;
  in.script_len = script_len_;
  ProxyHeadPolicy p;
  p.base_path = cfg.base_path;
  p.preserve_host = cfg.preserve_host;
  p.hosted = pool.hosted;
  p.upstream_host = pool.targets[server].addr.host_header;
  p.fallback_host = pool.targets[0].addr.host_header;
  build_proxy_head(*uphead_, in, p);
  return true;
}

void ClientConn::connect_upstream() {
  PoolRt& pool = w_->pools()[pool_];
  int err = 0;
  up_ = UpstreamConn::acquire(w_, &pool, server_, fresh_, &err);
  if (!up_) {
    char why[96];
    snprintf(why, sizeof why, "connect() failed: %s", uv_strerror(err));
    on_upstream_error(502, FailKind::kConnect, why, nullptr);
    return;
  }
  up_->start(this, uphead_, method_ == HTTP_HEAD);
}

void ClientConn::forward_body(const char* p, size_t n) {
  body_bytes_ += n;
  if (mode_ != Mode::kProxy || !up_) return;  // local handlers discard the body
  up_->send_body(p, n);
  if (up_ && up_->queued() > kHighWater) {
    client_paused_ = true;
    stop_reading();
  }
}

// A chunked request body is forwarded as llhttp decoded it, in chunks of our
// own framing: bytes llhttp parsed leniently (chunk extensions, trailers)
// never reach an upstream that might frame them differently (smuggling).
void ClientConn::add_chunk(const char* p, size_t n) {
  if (mode_ != Mode::kProxy || !up_ || n == 0) return;
  if (!chunk_out_) chunk_out_ = w_->take_buf();
  char hex[20];
  int i = sizeof hex;
  hex[--i] = '\n';
  hex[--i] = '\r';
  size_t v = n;
  do {
    hex[--i] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  chunk_out_->append(hex + i, sizeof hex - i);
  chunk_out_->append(p, n);
  chunk_out_->append("\r\n", 2);
}

void ClientConn::flush_chunks() {
  std::string* b = chunk_out_;
  if (!b || b->empty()) return;
  forward_body(b->data(), b->size());
  if (chunk_out_ == b) b->clear();  // else given back meanwhile (reset_request)
}

void ClientConn::on_upstream_drained() {
  if (client_paused_) {
    client_paused_ = false;
    start_reading();
  }
}

void ClientConn::on_request_complete() {
  req_done_ = true;
  state_ = State::kWaiting;
  timer_disarm(&timer_);
  if (mode_ == Mode::kLocal) {
    finish_local();
    return;
  }
  if (up_) up_->request_done();
  if (resp_done_) finish_exchange();
}

void ClientConn::respond_local(int status, std::string_view body, bool close_after) {
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
  o.append("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  append_uint(o, body.size());
  o.append("\r\n");
  if (status == 503) o.append("Retry-After: 1\r\n");
  // The keep-alive decision is final only when the response is sent, so the
  // Connection header and the blank line are added then (finish_local).
  local_head_len_ = (uint32_t)o.size();
  if (method_ != HTTP_HEAD) append(o, body);
  if (expect_continue_ && !http10_ && status < 300 && !req_done_) {
    stream_send(stream(), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    expect_continue_ = false;
  }
}

void ClientConn::finish_local() {
  if (!resp_head_) return;
  std::string& o = *resp_head_;
  if (w_->draining()) keep_alive_ = false;
  const char* conn = !keep_alive_ ? "Connection: close\r\n\r\n"
                     : http10_    ? "Connection: keep-alive\r\n\r\n"
                                  : "\r\n";
  uv_buf_t bufs[3] = {uv_buf_init(o.data(), local_head_len_),
                      uv_buf_init(const_cast<char*>(conn), (unsigned)strlen(conn)),
                      uv_buf_init(o.data() + local_head_len_, (unsigned)(o.size() - local_head_len_))};
  int r = stream_send(stream(), bufs, 3);
  w_->give_buf(resp_head_);
  resp_head_ = nullptr;
  resp_done_ = true;
  if (r < 0) {
    close();
    return;
  }
  finish_exchange();
}

void ClientConn::respond_error(int status, const char* why) {
  PLOG_DEBUG("%d for %s: %s", status, peer_, why);
  if (resp_started_) {
    close();
    return;
  }
  bool close_after = !req_done_;  // the rest of the request is unread: close
  std::string body = std::to_string(status) + " " + reason_phrase(status) + "\n";
  respond_local(status, body, close_after);
  if (req_done_ || close_after) {
    state_ = State::kWaiting;
    req_done_ = true;
    finish_local();
  }
}

void ClientConn::release_server(bool failed) {
  if (server_ < 0 || pool_ < 0) return;
  shm::ServerSlot& slot = w_->pools()[pool_].state->server_slots[server_];
  slot.active.fetch_sub(1, std::memory_order_relaxed);
  if (failed) slot.failures.fetch_add(1, std::memory_order_relaxed);
  server_ = -1;
}

namespace {

bool idempotent(uint8_t m) {
  return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_PUT || m == HTTP_DELETE ||
         m == HTTP_OPTIONS || m == HTTP_TRACE;
}

}  // namespace

// Passive health: one failure or success against the current server. A
// single-server pool is never marked down (nginx's rule: there is nowhere
// else to go, so marking it would only turn 502s into 503s).
void ClientConn::note_health(PoolRt& pool, bool failed, const char* why) {
  if (server_ < 0) return;
  const conf::UpstreamServer& srv = pool.cfg->servers[server_];
  shm::ServerSlot& slot = pool.state->server_slots[server_];
  uint64_t now = w_->now();
  if (!failed) {
    lb::note_success(slot, now, pool.cfg->name, srv.label());
  } else if (pool.cfg->servers.size() > 1) {
    lb::note_failure(slot, srv.max_fails, srv.fail_timeout_ms, now, pool.cfg->name, srv.label(),
                     why);
  } else {
    slot.failures.fetch_add(1, std::memory_order_relaxed);
  }
}

// nginx's proxy_next_upstream rules: only while nothing went to the client,
// at most `retries` times, never replaying request body bytes already sent,
// and, once the request reached the upstream, only for idempotent methods
// (unless `retry_on = non_idempotent`). `condition` is a conf::kRetry* flag,
// or 0 with `status` for http_NNN.
bool ClientConn::may_retry(const PoolRt& pool, bool sent, uint32_t condition, int status) {
  const conf::Pool& cfg = *pool.cfg;
  if (resp_started_ || tries_ >= cfg.retries) return false;
  if (condition ? !(cfg.retry_on & condition) : !lb::status_in(cfg.retry_on_status, status))
    return false;
  if (sent && !idempotent(method_) && !(cfg.retry_on & conf::kRetryNonIdempotent)) return false;
  return true;
}

// The server for the next attempt, or -1 when none can be had (no other
// usable server, or the retry budget is spent). Changes nothing.
int ClientConn::pick_retry(PoolRt& pool, const char* why) {
  const conf::Pool& cfg = *pool.cfg;
  // Envoy's budget: retries in flight at most retry_budget% of requests in
  // flight (at least 3), so a failing pool cannot double its own load.
  uint32_t allowed = std::max<uint32_t>(3, pool.in_flight * cfg.retry_budget_percent / 100);
  if (cfg.retry_budget_percent < 100 && pool.retries_in_flight + (retry_flight_ ? 0 : 1) > allowed) {
    uint64_t now = w_->now();
    if (now >= pool.budget_logged_ms + 1000) {
      pool.budget_logged_ms = now;
      PLOG_WARN("pool %s: retry budget exhausted (%u retries in flight of %u requests); "
                "not retrying: %s",
                cfg.name.c_str(), pool.retries_in_flight, pool.in_flight, why);
    }
    return -1;
  }
  lb::RequestView rv;  // the head is gone: no request keys, round robin order
  rv.client_addr = peer_;
  rv.rng = &w_->rng();
  for (int i = 0; i < 4; i++) {
    int c = pool.balancer->pick(rv, *pool.state, w_->now());
    if (c < 0) break;
    if (c >= 64 || !(tried_ & (1ull << c))) return c;
  }
  return -1;
}

// Send the request again, to server `s`.
void ClientConn::start_retry(PoolRt& pool, int s, const char* why, std::string* unsent,
                             bool counts) {
  const conf::Pool& cfg = *pool.cfg;
  const std::string failed = cfg.servers[server_].label();
  release_server(false);
  if (counts) tries_++;
  fresh_ = true;
  if (!retry_flight_) {
    retry_flight_ = true;
    pool.retries_in_flight++;
  }
  PLOG_INFO("pool %s: %s %s; retrying on %s (retry %u%s)", cfg.name.c_str(), failed.c_str(),
            why, cfg.servers[s].label().c_str(), tries_ + stale_tries_,
            counts ? "" : ", stale keep-alive connection");
  take_server(pool, s, {});
  connect_upstream();
  if (up_ && unsent && !unsent->empty()) up_->send_body(unsent->data(), unsent->size());
  if (up_ && req_done_) up_->request_done();
}

void ClientConn::on_upstream_error(int status, FailKind kind, const char* why,
                                   std::string* unsent) {
  up_ = nullptr;
  PoolRt& pool = w_->pools()[pool_];
  const conf::UpstreamServer& srv = pool.cfg->servers[server_];
  if (kind != FailKind::kStale) note_health(pool, true, why);
  // Body bytes already sent cannot be replayed; those never sent came back.
  bool body_lost = body_bytes_ > (unsent ? unsent->size() : 0);
  bool sent = kind != FailKind::kConnect && kind != FailKind::kConnectTimeout;
  uint32_t condition = kind == FailKind::kTimeout || kind == FailKind::kConnectTimeout
                           ? conf::kRetryTimeout
                       : kind == FailKind::kInvalid ? conf::kRetryInvalidHeader
                                                    : conf::kRetryError;
  // A reused keep-alive connection the server had just closed is no fault
  // of the server: it gets its own retry, as in nginx.
  // It is retried on the same server over a fresh connection, without
  // counting against `retries` (if the server is really gone, that connect
  // fails and the ordinary rules take over).
  if (kind == FailKind::kStale && !body_lost && !resp_started_ && idempotent(method_) &&
      stale_tries_ < 4) {
    stale_tries_++;
    start_retry(pool, server_, why, unsent, /*counts=*/false);
    if (unsent) w_->give_buf(unsent);
    return;
  }
  bool ok = !body_lost && kind != FailKind::kStale && may_retry(pool, sent, condition, 0);
  int next = ok ? pick_retry(pool, why) : -1;
  if (next >= 0) {
    start_retry(pool, next, why, unsent, /*counts=*/true);
    if (unsent) w_->give_buf(unsent);
    return;
  }
  if (unsent) w_->give_buf(unsent);
  PLOG_WARN("pool %s: %s %s (%d)", pool.cfg->name.c_str(), srv.label().c_str(), why, status);
  release_server(false);
  end_flight();
  respond_error(status, why);
}

void ClientConn::end_flight() {
  if (pool_ < 0) return;
  PoolRt& pool = w_->pools()[pool_];
  if (in_flight_) {
    in_flight_ = false;
    pool.in_flight--;
  }
  if (retry_flight_) {
    retry_flight_ = false;
    pool.retries_in_flight--;
  }
}

void ClientConn::on_upstream_abort() {
  up_ = nullptr;
  if (pool_ >= 0) note_health(w_->pools()[pool_], true, "failed while answering");
  release_server(false);
  if (resp_head_ && mode_ == Mode::kProxy) {
    // The response head is still held back (see on_response_body): nothing
    // reached the client, which gets a clean 502 instead of an empty reply.
    w_->give_buf(resp_head_);
    resp_head_ = nullptr;
    resp_started_ = false;
    resp_bytes_ = 0;
    end_flight();
    respond_error(502, "upstream response broken before any byte was sent");
    return;
  }
  close();
}

bool ClientConn::on_response_head(const char* base, const HeadCollector& h, const llhttp_t* p) {
  int status = p->status_code;
  if (!valid_response_head(base, h)) {
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
    if (status == 100 && expect_continue_ && !http10_)
      stream_send(stream(), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return false;
  }
  PoolRt& pool = w_->pools()[pool_];
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
      start_retry(pool, next, why, nullptr, /*counts=*/true);
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
  bool chunked = p->flags & F_CHUNKED;
  bool has_len = p->flags & F_CONTENT_LENGTH;
  bool no_body = method_ == HTTP_HEAD || status == 204 || status == 304;
  bool decode = false;
  if (!req_done_) keep_alive_ = false;  // an early answer: the unread body ends the connection
  if (!no_body && !chunked && !has_len) keep_alive_ = false;  // body ends at upstream EOF
  if (!no_body && chunked && http10_) {
    decode = true;  // HTTP/1.0 has no chunked coding: send the payload, close to end it
    keep_alive_ = false;
  }
  if (w_->draining()) keep_alive_ = false;

  if (!resp_head_) resp_head_ = w_->take_buf();
  std::string& o = *resp_head_;
  o.clear();
  o.append("HTTP/1.1 ");
  append_uint(o, (uint64_t)status);
  o.push_back(' ');
  std::string_view reason = span_view(base, h.status);
  if (reason.empty())
    o.append(reason_phrase(status));
  else
    append(o, reason);
  o.append("\r\n");
  std::string_view conn_tokens;
  for (const HeaderSpan& hs : *h.headers) {
    std::string_view name = span_view(base, hs.name);
    if (name.size() == 10 && iequals(name, "connection")) conn_tokens = span_view(base, hs.value);
  }
  for (const HeaderSpan& hs : *h.headers) {
    std::string_view name = span_view(base, hs.name);
    if (is_hop_by_hop(name)) continue;
    if (!conn_tokens.empty() && has_token(conn_tokens, name)) continue;
    if (decode && name.size() == 17 && iequals(name, "transfer-encoding")) continue;
    append(o, name);
    o.append(": ");
    append(o, span_view(base, hs.value));
    o.append("\r\n");
  }
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
  return decode;
}

bool ClientConn::valid_response_head(const char* base, const HeadCollector& h) {
  if (h.folded) return false;
  for (const HeaderSpan& hs : *h.headers) {
    std::string_view name = span_view(base, hs.name);
    if (name.empty() || name.back() == ' ' || name.back() == '\t') return false;
  }
  return true;
}

void ClientConn::flush() {
  if (!resp_head_ || mode_ != Mode::kProxy || !resp_started_) return;
  int r = stream_send(stream(), resp_head_->data(), resp_head_->size());
  w_->give_buf(resp_head_);
  resp_head_ = nullptr;
  if (r < 0) close();
}

void ClientConn::on_response_body(const char* p, size_t n) {
  resp_bytes_ += n;
  int r;
  if (resp_head_) {
    uv_buf_t bufs[2] = {uv_buf_init(resp_head_->data(), (unsigned)resp_head_->size()),
                        uv_buf_init(const_cast<char*>(p), (unsigned)n)};
    r = stream_send(stream(), bufs, 2);
    w_->give_buf(resp_head_);
    resp_head_ = nullptr;
  } else {
    r = stream_send(stream(), p, n);
  }
  if (r < 0) {
    close();
    return;
  }
  if (up_ && tcp_.write_queue_size > kHighWater) {
    up_paused_ = true;
    up_->pause_read();
  }
}

void ClientConn::on_write_done(int status) {
  if (state_ == State::kClosed) return;
  if (status < 0) {
    close();
    return;
  }
  if (up_paused_ && tcp_.write_queue_size < kLowWater) {
    up_paused_ = false;
    if (up_) up_->resume_read();
  }
}

void ClientConn::on_response_done(bool upstream_keepalive) {
  (void)upstream_keepalive;
  up_ = nullptr;
  flush();
  if (state_ == State::kClosed) return;
  resp_done_ = true;
  release_server(false);
  if (req_done_) {
    finish_exchange();
  } else {
    keep_alive_ = false;  // the upstream answered before the request ended
    shutdown_and_linger();
  }
}

void ClientConn::finish_exchange() {
  w_->note_request();
  served_ = true;
  if (log_) end_log();
  if (!keep_alive_ || client_eof_ || w_->draining()) {
    shutdown_and_linger();
    return;
  }
  reset_request();
  state_ = State::kIdle;
  arm_timer(w_->site().server.keepalive_timeout_ms);
  if (client_paused_ || !reading_) {
    client_paused_ = false;
    if (!inbuf_ || inbuf_->size() <= kMaxPipelined) start_reading();
  }
  if (!in_parse_ && inbuf_) {
    state_ = State::kHead;
    arm_timer(w_->site().server.client_header_timeout_ms);
    run_inbuf();
    if (up_) up_->flush();
  }
}

void ClientConn::reset_request() {
  end_flight();  // needs pool_: first
  mode_ = Mode::kNone;
  head_started_ = false;
  req_done_ = resp_done_ = resp_started_ = false;
  expect_continue_ = false;
  tries_ = stale_tries_ = 0;
  fresh_ = false;
  pool_ = server_ = handler_ = -1;
  body_bytes_ = 0;
  tried_ = 0;
  set_cookie_ = {};
  chunked_ = false;
  if (chunk_out_) {
    w_->give_buf(chunk_out_);
    chunk_out_ = nullptr;
  }
  status_ = 0;
  resp_bytes_ = 0;
  if (head_.headers) {
    w_->give_spans(head_.headers);
    head_.headers = nullptr;
  }
  if (uphead_) {
    w_->give_buf(uphead_);
    uphead_ = nullptr;
  }
}

namespace {

// nginx's escaping for log fields: '"', '\\' and non-printable bytes as \xHH.
void append_escaped(std::string& o, std::string_view s) {
  static const char hex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      o.append("\\x");
      o.push_back(hex[c >> 4]);
      o.push_back(hex[c & 15]);
    } else {
      o.push_back((char)c);
    }
  }
}

}  // namespace

// The parts of a combined-format line only the request head knows.
void ClientConn::begin_log(const char* base) {
  if (!log_) log_ = w_->take_buf();
  std::string& o = *log_;
  o.clear();
  o.push_back('"');
  o.append(llhttp_method_name((llhttp_method_t)method_)).push_back(' ');
  append_escaped(o, span_view(base, head_.url));
  o.append(http10_ ? " HTTP/1.0\" " : " HTTP/1.1\" ");
  log_tail_ = (uint32_t)o.size();
  std::string_view referer = "-", agent = "-";
  for (const HeaderSpan& h : *head_.headers) {
    std::string_view name = span_view(base, h.name);
    if (iequals(name, "referer")) referer = span_view(base, h.value);
    else if (iequals(name, "user-agent")) agent = span_view(base, h.value);
  }
  o.append(" \"");
  append_escaped(o, referer);
  o.append("\" \"");
  append_escaped(o, agent);
  o.append("\"\n");
}

// An error before a complete head (400, 408, 414, 431): nginx logs the
// request line as far as it came ("-" if empty) and no headers.
void ClientConn::begin_raw_log(const char* p, const char* end) {
  if (!w_->access_log().enabled() || log_) return;
  while (p < end && (*p == '\r' || *p == '\n')) p++;  // empty lines before a request
  const char* eol = p;
  while (eol < end && *eol != '\r' && *eol != '\n') eol++;
  constexpr size_t kMaxLogged = 8192;
  log_ = w_->take_buf();
  std::string& o = *log_;
  o.clear();
  o.push_back('"');
  if (eol == p)
    o.push_back('-');
  else
    append_escaped(o, std::string_view(p, std::min<size_t>(eol - p, kMaxLogged)));
  o.append("\" ");
  log_tail_ = (uint32_t)o.size();
  o.append(" \"-\" \"-\"\n");
}

int ClientConn::head_error_status(const char* base, llhttp_errno_t err) const {
  if (err != HPE_INVALID_TRANSFER_ENCODING) return 400;
  // An unknown coding is 501 as in nginx; a repeated header line is 400.
  int n = 0;
  for (const HeaderSpan& h : *head_.headers)
    if (iequals(span_view(base, h.name), "transfer-encoding")) n++;
  return n > 1 ? 400 : 501;
}

// host - - [time] "request" status bytes "referer" "user-agent"
void ClientConn::end_log() {
  AccessLog& al = w_->access_log();
  std::string& out = al.buffer();
  std::string_view line(*log_);
  out.append(peer_).append(" - - ");
  out.append(al.timestamp()).push_back(' ');
  out.append(line.substr(0, log_tail_));
  append_uint(out, status_ ? status_ : 499);
  out.push_back(' ');
  append_uint(out, resp_bytes_);
  out.append(line.substr(log_tail_));
  w_->give_buf(log_);
  log_ = nullptr;
  al.maybe_flush();
}

void ClientConn::close_if_idle() {
  // A connection that has not sent its first request yet is not idle: its
  // client is about to send one. It gets one answer with Connection: close.
  if (state_ == State::kIdle && !inbuf_ && served_) close();
}

void ClientConn::shutdown_and_linger() {
  if (state_ == State::kClosed || state_ == State::kLinger) return;
  if (up_) {
    up_->abort();
    up_ = nullptr;
  }
  release_server(false);
  state_ = State::kLinger;
  // Shut the write side once queued bytes are out, then read until the
  // client's EOF (or kLingerMs), so unread input never turns our close into
  // an RST that destroys the response in flight.
  auto* req = new uv_shutdown_t;
  int r = uv_shutdown(req, stream(), [](uv_shutdown_t* rq, int status) {
    auto* c = static_cast<ClientConn*>(static_cast<StreamOwner*>(rq->handle->data));
    delete rq;
    if (status < 0 && c->state_ != State::kClosed) c->close();
  });
  if (r < 0) {
    delete req;
    close();
    return;
  }
  arm_timer(kLingerMs);
  start_reading();
}

void ClientConn::on_timer(TimerNode* t) {
  auto* c = static_cast<ClientConn*>(t->owner);
  switch (c->state_) {
    case State::kHead:
      if (c->head_started_) {
        if (c->inbuf_) c->begin_raw_log(c->inbuf_->data(), c->inbuf_->data() + c->inbuf_->size());
        c->respond_error(408, "client header timeout");
        return;
      }
      c->close();
      return;
    case State::kBody:
      if (!c->resp_started_) {
        c->respond_error(408, "client body timeout");
        return;
      }
      c->close();
      return;
    default:
      c->close();
  }
}

void ClientConn::close() {
  if (state_ == State::kClosed) return;
  if (log_) end_log();  // an aborted exchange: 499 when nothing was answered
  state_ = State::kClosed;
  if (up_) {
    up_->abort();
    up_ = nullptr;
  }
  release_server(false);
  end_flight();
  timer_disarm(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close_cb);
}

void ClientConn::on_close_cb(uv_handle_t* h) {
  auto* c = static_cast<ClientConn*>(static_cast<StreamOwner*>(h->data));
  Worker* w = c->w_;
  if (c->inbuf_) w->give_buf(c->inbuf_);
  if (c->uphead_) w->give_buf(c->uphead_);
  if (c->resp_head_) w->give_buf(c->resp_head_);
  if (c->chunk_out_) w->give_buf(c->chunk_out_);
  if (c->head_.headers) w->give_spans(c->head_.headers);
  if (c->log_) w->give_buf(c->log_);
  w->client_closed(c);
  delete c;
}

}  // namespace pasture::worker
