// UpstreamConn after a 101 (kTunnel): the upstream half of a tunnel. Bytes
// from the server go to the exchange as they come (paused while the client
// does not take them); the client's bytes are written as they are (the
// exchange stops reading the client while more than kHighWater wait
// here). Each EOF is passed on as a shutdown of the other side's write
// half; the connection closes once it has read its server's EOF and shut
// its own write half, or on an error, or after tunnel_timeout without a
// byte either way. Never reused: a switched connection speaks another
// protocol.
#include <algorithm>
#include <cstdio>

#include "common/log.h"
#include "worker/exchange.h"
#include "worker/upstream_conn.h"

namespace pasture::worker {
namespace {

// How long a detached upstream half (its client gone after half-closing)
// may wait for its server's EOF, at most: it is no longer counted against
// its server, so a server that never closes must not keep it.
constexpr uint32_t kDetachedMaxMs = 10000;

}  // namespace

// `p`: just past the 101's head, inside this read's [base, end).
const char* UpstreamConn::start_tunnel(const char* base, const char* p, const char* end) {
  (void)base;
  state_ = State::kTunnel;
  head_done_ = true;
  timer_disarm(&send_timer_);
  arm_tunnel_timer();
  // The client half opens first (its early bytes come back here through
  // tunnel_send, hence kTunnel before the call).
  if (!client_->on_upgrade(base, head_, &parser_)) return end;
  if (client_ && p < end) client_->on_tunnel_bytes(p, end - p);  // the new protocol's first bytes
  return end;
}

void UpstreamConn::arm_tunnel_timer() {
  w_->timers().arm(&timer_, pool_->cfg->tunnel_timeout_ms, w_->now());
}

void UpstreamConn::tunnel_read(ssize_t nread, const char* data) {
  if (nread > 0) {
    // Detached, bytes go nowhere and do not keep it (found by review: a
    // server that streamed kept it, uncounted, past tunnel_timeout).
    if (client_) {
      arm_tunnel_timer();
      client_->on_tunnel_bytes(data, (size_t)nread);
    }
    return;
  }
  reading_ = false;  // libuv stops reading at EOF and on errors
  if (nread != UV_EOF) {
    PLOG_DEBUG("pool %s: tunnel to %s: read failed: %s", pool_->cfg->name.c_str(),
               pool_->targets[server_].label.c_str(), uv_strerror((int)nread));
    tunnel_end(false);
    return;
  }
  read_eof_ = true;
  if (client_) client_->on_tunnel_eof();
  if (shut_done_ && state_ == State::kTunnel) tunnel_end(true);
}

void UpstreamConn::tunnel_send(const char* p, size_t n) {
  if (state_ != State::kTunnel || shut_asked_ || !client_) return;
  arm_tunnel_timer();
  uv_buf_t b = uv_buf_init(const_cast<char*>(p), (unsigned)n);
  int r = send_bufs(&b, 1);
  if (r < 0) {
    PLOG_DEBUG("pool %s: tunnel to %s: write failed: %s", pool_->cfg->name.c_str(),
               pool_->targets[server_].label.c_str(), uv_strerror(r));
    tunnel_end(false);
  }
}

// The socket's shutdown waits for the queued writes, then shuts the write
// half (on_sock_shut).
void UpstreamConn::tunnel_shutdown() {
  if (state_ != State::kTunnel || shut_asked_) return;
  shut_asked_ = true;
  tls_close_notify();  // a wss upstream: close_notify goes out before the write side shuts
  if (sock_.shutdown() < 0) tunnel_end(false);
}

void UpstreamConn::on_sock_shut(int status) {
  if (state_ != State::kTunnel) return;
  if (status < 0) {
    tunnel_end(false);
    return;
  }
  shut_done_ = true;
  if (read_eof_) tunnel_end(true);
}

void UpstreamConn::tunnel_detach() {
  client_ = nullptr;
  if (state_ != State::kTunnel) return;
  if (!shut_asked_) tunnel_shutdown();
  if (state_ == State::kTunnel && !read_eof_) resume_read();  // the server's EOF ends it
  // ...or this deadline, armed once: nothing re-arms it any more.
  if (state_ == State::kTunnel)
    w_->timers().arm(&timer_, std::min(pool_->cfg->tunnel_timeout_ms, kDetachedMaxMs), w_->now());
}

// The tunnel's upstream half is over: the exchange is told (an unclean end
// closes the client too) and the connection closes.
void UpstreamConn::tunnel_end(bool clean) {
  Exchange* c = client_;
  client_ = nullptr;
  close();
  if (c) c->on_tunnel_end(clean);
}

}  // namespace pasture::worker
