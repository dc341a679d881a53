// H2Conn: nghttp2 driven from the worker's loop through a transport.
// Callbacks record and hand frames to streams; output leaves in
// send_pending(), never from inside nghttp2; streams nghttp2 closed are
// deleted by reap() only where no exchange is on the stack (the transport's
// callbacks and the timers).
#include "worker/h2_conn.h"

#include <cstring>

#include "common/log.h"
#include "worker/h2_stream.h"
#include "worker/runtime.h"
#include "worker/stream_io.h"

namespace pasture::worker {
namespace {

constexpr size_t kWriteChunk = 64 * 1024;        // frames gathered per write
constexpr int32_t kConnWindow = 1 << 20;         // the connection's receive window
constexpr uint32_t kHpackTable = 4096;           // HPACK dynamic table, both ways
constexpr size_t kMaxContinuations = 8;          // CONTINUATION frames per header block
constexpr uint32_t kReapMs = 1;                  // next tick

H2Stream* stream_of(nghttp2_session* s, int32_t id) {
  return static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, id));
}

}  // namespace

H2Conn::H2Conn(Worker* w, H2Transport* t, const ClientPeer* peer) : w_(w), t_(t), peer_(peer) {
  timer_.owner = goaway_timer_.owner = reap_timer_.owner = this;
  timer_.fire = on_timer;
  goaway_timer_.fire = on_goaway_timer;
  reap_timer_.fire = [](TimerNode* n) {
    auto* c = static_cast<H2Conn*>(n->owner);
    c->reap();
    c->update_timers();
  };
}

H2Conn::~H2Conn() {
  if (send_queued_) w_->cancel_send(this);
  timer_disarm(&timer_);
  timer_disarm(&goaway_timer_);
  timer_disarm(&reap_timer_);
  while (streams_) {
    H2Stream* s = streams_;
    streams_ = s->next;
    delete s;
  }
  for (H2Stream* s : dead_) delete s;
  if (s_) nghttp2_session_del(s_);
  if (out_) w_->give_buf(out_);
}

nghttp2_session_callbacks* H2Conn::callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(c, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, on_frame_send);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
    return c;
  }();
  return cbs;
}

bool H2Conn::start() {
  const conf::ServerSettings& srv = w_->site().server;
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  // Windows reopen as exchanges take the bytes (H2Stream::consume).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, kHpackTable);
  nghttp2_option_set_max_continuations(opt, kMaxContinuations);
  // nghttp2's own rapid-reset limit, above ours (count_reset), which ends
  // the connection with ENHANCE_YOUR_CALM and counts it.
  nghttp2_option_set_stream_reset_rate_limit(opt, 2ull * srv.h2_max_resets, 2ull * srv.h2_max_resets);
  int rv = nghttp2_session_server_new2(&s_, callbacks(), this, opt);
  nghttp2_option_del(opt);
  if (rv != 0) {
    PLOG_WARN("nghttp2_session_server_new2() failed: %s", nghttp2_strerror(rv));
    s_ = nullptr;
    return false;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv.h2_max_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, srv.max_header_bytes},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, kHpackTable},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},  // WebSocket over HTTP/2 (RFC 8441, H2Stream)
  };
  rv = nghttp2_submit_settings(s_, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  if (rv == 0) rv = nghttp2_session_set_local_window_size(s_, NGHTTP2_FLAG_NONE, 0, kConnWindow);
  if (rv != 0) {
    PLOG_WARN("nghttp2 SETTINGS failed: %s", nghttp2_strerror(rv));
    return false;
  }
  w_->stats().h2_connections.add();
  if (w_->draining()) on_drain();
  update_timers();
  return true;
}

void H2Conn::on_bytes(const char* p, size_t n) {
  if (closed_ || finished_) return;
  depth_++;
  ssize_t r = nghttp2_session_mem_recv(s_, reinterpret_cast<const uint8_t*>(p), n);
  depth_--;
  if (r < 0) {
    // A flood nghttp2 caught, or a callback gave up: what it queued
    // (GOAWAY) leaves, then the connection ends.
    PLOG_DEBUG("HTTP/2 from %s: %s", PeerText(*peer_).s, nghttp2_strerror((int)r));
    if (r == NGHTTP2_ERR_FLOODED || r == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) w_->stats().h2_calm.add();
    send_pending();
    if (!closed_ && !finished_) {
      finished_ = true;
      t_->h2_close(true);
    }
    return;
  }
  // Upstream request heads held back to go out with the body's first
  // bytes leave now (found by review: on a reused upstream connection a
  // head waited for DATA, and `Expect: 100-continue` stalled).
  // (depth_: what a flush sets off waits for send_pending below, so no stream
  // closes under this walk.)
  depth_++;
  for (H2Stream* st = streams_; st && !closed_; st = st->next) st->flush_upstream();
  depth_--;
  send_pending();
  reap();
  if (!closed_ && reading_ && t_->h2_queued() > kHighWater) {
    // The client does not read what it asks for: no more requests from it
    // until it does (on_write_done).
    reading_ = false;
    t_->h2_read(false);
  }
}

size_t H2Conn::backlog() const {
  size_t n = t_->h2_queued();
  for (const H2Stream* st = streams_; st; st = st->next) n += st->queued();
  return n;
}

void H2Conn::on_eof() {
  eof_ = true;
  // No frame can come any more: a stream whose request has not ended (a
  // body, a header block, a tunnel's client half) never will. Reset them,
  // which ends their exchanges and gives their upstream connections and
  // servers back; complete requests are still answered (found by review:
  // such streams were held, with their servers' active counts, for good).
  bool reset = false;
  for (H2Stream* st = streams_; st; st = st->next) {
    if (st->request_ended()) continue;
    nghttp2_submit_rst_stream(s_, NGHTTP2_FLAG_NONE, st->id(), NGHTTP2_CANCEL);
    reset = true;
  }
  if (reset) want_send();
  check_done();
}

void H2Conn::on_write_done() {
  if (closed_) return;
  size_t q = t_->h2_queued();
  if (q < kLowWater) {
    if (!reading_ && !finished_) {
      reading_ = true;
      t_->h2_read(true);
    }
    send_pending();  // what waited for the queue to shrink
  }
  reap();
  if (q > 0 && !closed_) w_->timers().arm(&timer_, w_->site().server.send_timeout_ms, w_->now());  // progress
  update_timers();
}

void H2Conn::on_drain() {
  if (closed_ || finished_ || draining_ || !s_) return;
  draining_ = true;
  // GOAWAY(2^31-1) now: the client opens no new stream here; streams on
  // their way are still taken until the final GOAWAY names the last one.
  nghttp2_submit_shutdown_notice(s_);
  w_->timers().arm(&goaway_timer_, kGoawayDelayMs, w_->now());
  want_send();
}

void H2Conn::on_goaway_timer(TimerNode* t) {
  auto* c = static_cast<H2Conn*>(t->owner);
  if (c->closed_ || c->finished_) return;
  nghttp2_submit_goaway(c->s_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->s_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  c->reap();
  c->send_pending();
}

void H2Conn::on_close() {
  if (closed_) return;
  closed_ = true;
  timer_disarm(&timer_);
  timer_disarm(&goaway_timer_);
  timer_disarm(&reap_timer_);
  for (H2Stream* s = streams_; s; s = s->next) s->on_closed();
}

void H2Conn::want_send() {
  if (depth_ > 0) {
    resend_ = true;  // send_pending (or the end of mem_recv) goes on
    return;
  }
  if (closed_ || send_queued_) return;
  send_queued_ = true;
  w_->defer_send(this);
}

void H2Conn::send_pending() {
  if (closed_ || !s_) return;
  if (depth_ > 0) {
    resend_ = true;
    return;
  }
  depth_++;
  do {
    resend_ = false;
    while (!closed_ && t_->h2_queued() <= kHighWater) {
      const uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(s_, &data);
      if (n < 0) {
        depth_--;
        fail("nghttp2_session_mem_send", (int)n);
        return;
      }
      if (n == 0) break;
      if (!out_) {
        out_ = w_->take_buf();
        out_->clear();
      }
      out_->append(reinterpret_cast<const char*>(data), (size_t)n);
      if (out_->size() >= kWriteChunk && !write_out()) return;
    }
    if (!write_out()) return;
    // Streams whose producers waited and whose buffers fell low: they go on
    // (and may submit more: another round).
    std::vector<H2Stream*> d;
    d.swap(drained_);
    for (H2Stream* s : d) s->after_send();
  } while (resend_ && !closed_);
  depth_--;
  update_timers();
  check_done();
}

// False when the write failed: the connection is closed (depth_ undone).
bool H2Conn::write_out() {
  if (!out_ || out_->empty()) return true;
  uv_buf_t b = uv_buf_init(out_->data(), (unsigned)out_->size());
  int r = t_->h2_send(&b, 1);
  // Back to the worker's pool (which frees a grown one): an idle connection
  // keeps no gathered-frame buffer (found by review: ~100 KB each after one
  // large answer).
  w_->give_buf(out_);
  out_ = nullptr;
  if (r == 0) return true;
  depth_--;
  fail("write", r);
  return false;
}

void H2Conn::fail(const char* what, int rv) {
  PLOG_DEBUG("HTTP/2 connection from %s: %s failed (%d)", PeerText(*peer_).s, what, rv);
  if (!closed_) t_->h2_close(false);
}

void H2Conn::check_done() {
  if (closed_ || finished_ || depth_ > 0) return;
  if (eof_) cancel_window_stalled();
  if (closed_ || finished_ || depth_ > 0) return;
  bool done = !nghttp2_session_want_read(s_) && !nghttp2_session_want_write(s_);
  if (eof_ && live_ == 0 && !nghttp2_session_want_write(s_)) done = true;
  if (!done) return;
  finished_ = true;
  t_->h2_close(true);  // queued bytes (the GOAWAY) are written first
}

// Found by review (a client that never opened its window and then closed
// held ~200 KB per stream until send_timeout): with the client's half
// closed, a window that is shut stays shut.
void H2Conn::cancel_window_stalled() {
  bool conn_blocked = nghttp2_session_get_remote_window_size(s_) <= 0;
  bool any = false;
  depth_++;  // abort() asks for a send: it waits for the walk's end
  for (H2Stream* st = streams_; st && !closed_; st = st->next) {
    if (!st->stalled_by_window(conn_blocked)) continue;
    PLOG_DEBUG("HTTP/2 stream %d from %s: reset, its window cannot open after the client's EOF", st->id(), PeerText(*peer_).s);
    st->abort();
    any = true;
  }
  depth_--;
  if (any) send_pending();  // the RST_STREAMs; ends with check_done again
}

void H2Conn::reap() {
  if (dead_.empty()) return;
  std::vector<H2Stream*> d;
  d.swap(dead_);
  for (H2Stream* s : d) delete s;
}

// No stream: keepalive_timeout. Output queued: send_timeout, restarted by
// each write the client takes (on_write_done).
void H2Conn::update_timers() {
  if (closed_ || finished_) return;
  const conf::ServerSettings& srv = w_->site().server;
  if (t_->h2_queued() > 0) {
    if (!timer_.armed() || timer_.list->timeout_ms() != srv.send_timeout_ms)
      w_->timers().arm(&timer_, srv.send_timeout_ms, w_->now());
  } else if (live_ == 0) {
    if (!timer_.armed() || timer_.list->timeout_ms() != srv.keepalive_timeout_ms)
      w_->timers().arm(&timer_, srv.keepalive_timeout_ms, w_->now());
  } else {
    timer_disarm(&timer_);
  }
  if (!dead_.empty() && !reap_timer_.armed()) w_->timers().arm(&reap_timer_, kReapMs, w_->now());
}

void H2Conn::on_timer(TimerNode* t) {
  auto* c = static_cast<H2Conn*>(t->owner);
  if (c->closed_ || c->finished_) return;
  if (c->t_->h2_queued() > 0) {  // the client stopped reading
    c->fail("send timeout", 0);
    return;
  }
  // Idle: GOAWAY NO_ERROR, then the close (check_done).
  nghttp2_session_terminate_session(c->s_, NGHTTP2_NO_ERROR);
  c->send_pending();
}

void H2Conn::calm_down(const char* why) {
  if (calm_) return;
  calm_ = true;
  PLOG_INFO("HTTP/2 client %s: %s: GOAWAY ENHANCE_YOUR_CALM", PeerText(*peer_).s, why);
  w_->stats().h2_calm.add();
  nghttp2_session_terminate_session(s_, NGHTTP2_ENHANCE_YOUR_CALM);
}

void H2Conn::count_reset() {
  uint64_t now = w_->now();
  if (now - reset_window_ms_ >= 1000) {
    reset_window_ms_ = now;
    resets_ = 0;
  }
  if (++resets_ > w_->site().server.h2_max_resets) calm_down("RST_STREAM flood (rapid reset)");
}

// --- nghttp2 callbacks ------------------------------------------------------

int H2Conn::on_begin_headers(nghttp2_session* s, const nghttp2_frame* f, void* ud) {
  auto* c = static_cast<H2Conn*>(ud);
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto* st = new H2Stream(c, f->hd.stream_id);
  st->next = c->streams_;
  if (c->streams_) c->streams_->prev = st;
  c->streams_ = st;
  c->live_++;
  c->w_->stats().h2_streams.add();
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
  return 0;
}

int H2Conn::on_header(nghttp2_session* s, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void*) {
  H2Stream* st = stream_of(s, f->hd.stream_id);
  if (!st) return 0;
  return st->on_field({reinterpret_cast<const char*>(name), namelen},
                      {reinterpret_cast<const char*>(value), valuelen});
}

int H2Conn::on_frame_recv(nghttp2_session* s, const nghttp2_frame* f, void* ud) {
  auto* c = static_cast<H2Conn*>(ud);
  bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  switch (f->hd.type) {
    case NGHTTP2_HEADERS: {
      H2Stream* st = stream_of(s, f->hd.stream_id);
      if (!st) return 0;
      if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
        st->on_headers_done(end);
      else if (end)
        st->on_request_end();  // trailers: not forwarded
      return 0;
    }
    case NGHTTP2_DATA:
      if (end)
        if (H2Stream* st = stream_of(s, f->hd.stream_id)) st->on_request_end();
      return 0;
    case NGHTTP2_RST_STREAM:
      c->count_reset();
      return 0;
    default:
      return 0;
  }
}

int H2Conn::on_frame_send(nghttp2_session* s, const nghttp2_frame* f, void* ud) {
  // Streams nghttp2 reset for the client's protocol errors (DATA past a
  // content-length, a closed stream's frames...) count as the client's own
  // resets: each such stream may have cost a balancer pick and an upstream
  // connection ("MadeYouReset", CVE-2025-8671; found by review).
  if (f->hd.type == NGHTTP2_RST_STREAM) {
    uint32_t code = f->rst_stream.error_code;
    if (code == NGHTTP2_PROTOCOL_ERROR || code == NGHTTP2_FLOW_CONTROL_ERROR || code == NGHTTP2_STREAM_CLOSED ||
        code == NGHTTP2_FRAME_SIZE_ERROR)
      static_cast<H2Conn*>(ud)->count_reset();
  }
  if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    if (H2Stream* st = stream_of(s, f->hd.stream_id)) st->on_response_sent();
  return 0;
}

int H2Conn::on_data_chunk(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data, size_t len, void*) {
  // The connection's window reopens at once; a stream's as its exchange
  // takes the bytes (H2Stream::on_data).
  nghttp2_session_consume_connection(s, len);
  if (H2Stream* st = stream_of(s, id))
    st->on_data(reinterpret_cast<const char*>(data), len);
  else
    nghttp2_session_consume_stream(s, id, len);
  return 0;
}

int H2Conn::on_stream_close(nghttp2_session* s, int32_t id, uint32_t, void* ud) {
  auto* c = static_cast<H2Conn*>(ud);
  H2Stream* st = stream_of(s, id);
  if (!st) return 0;
  nghttp2_session_set_stream_user_data(s, id, nullptr);
  st->on_closed();
  if (st->prev) st->prev->next = st->next;
  else c->streams_ = st->next;
  if (st->next) st->next->prev = st->prev;
  st->prev = st->next = nullptr;
  c->live_--;
  c->dead_.push_back(st);  // deleted by reap(): its exchange may be on the stack
  return 0;
}

}  // namespace pasture::worker
