// UpstreamConn to an https:// server (issue 15, "Upstream TLS"): a
// client-side TlsSession over memory BIOs between the socket and the
// response parser, as client_tls.cc is for a TLS client.
//
//   sock_ --on_read--> tls_read --> TlsSession --> on_plaintext --> on_stream (llhttp, tunnel)
//   write_head_with / tunnel_send --> send_bufs --> tls_send --> TlsSession --> on_ciphertext --> sock_
//
// After the TCP connect the connection is kHandshake: the request waits in
// `pending_` and connect_timeout keeps running until the handshake is
// done. A failed handshake (verification included: "certificate verify
// failed: self-signed certificate", "...: hostname mismatch") is a connect
// failure (FailKind::kConnect): retried on another server, counted in
// connect_errors and against the server's health, logged once by the
// exchange with OpenSSL's reason, 502 for the client. What is queued
// (queued(), back-pressure, send_timeout) is ciphertext the socket has not
// taken: the session keeps none. The server's close_notify is its EOF
// (a close-delimited body ends, an idle connection is dropped, a tunnel's
// upstream half is done); ours goes out before our write side shuts (a
// tunnel) and, best effort, when the connection closes.
#include <cstring>

#include "common/log.h"
#include "worker/exchange.h"
#include "worker/upstream_conn.h"

namespace pasture::worker {

void UpstreamConn::tls_begin() {
  state_ = State::kHandshake;
  const conf::UpstreamServer& srv = pool_->cfg->servers[server_];
  SSL* ssl = pool_->tls ? pool_->tls->new_ssl(srv.host, &pool_->targets[server_].tls_session) : nullptr;
  tls_.reset(new TlsSession(ssl, static_cast<TlsSession::Sink&>(*this)));
  if (!ssl) {
    tls_handshake_failed(pool_->tls ? "out of memory" : "the pool has no TLS context (see the worker's start-up log)");
    return;
  }
  resume_read();
  TlsSession::Result r = tls_->start();  // the ClientHello
  if (state_ != State::kHandshake) return;
  if (tls_write_error_)
    tls_handshake_failed(uv_strerror(tls_write_error_));
  else if (r != TlsSession::Result::Ok)
    tls_handshake_failed(tls_->error().c_str());
}

void UpstreamConn::tls_read(ssize_t nread, const char* data) {
  if (state_ == State::kClosed) return;
  if (nread < 0) {  // the TCP EOF, or a read error
    if (state_ == State::kHandshake) {
      reading_ = false;
      tls_handshake_failed(nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
    } else if (tls_eof_) {
      reading_ = false;  // after close_notify: passed on already
    } else if (nread == UV_EOF && state_ == State::kActive && head_done_ && !msg_done_) {
      // A TCP FIN without close_notify in the middle of a response: a body
      // that ends at the EOF would look complete when it was cut (a
      // truncation attack; found by review). An error, as a body cut short
      // of its Content-Length is.
      on_stream(UV_ECONNRESET, nullptr);
    } else {
      on_stream(nread, nullptr);  // no close_notify, nothing in progress: an EOF all the same
    }
    return;
  }
  // One call of on_plaintext for all the records of this read (TlsSession::feed):
  // llhttp's "bytes after the response" check sees them all.
  TlsSession::Result r = tls_->feed(data, (size_t)nread);
  if (state_ == State::kClosed) return;
  if (tls_write_error_) {
    if (state_ == State::kHandshake)
      tls_handshake_failed(uv_strerror(tls_write_error_));
    else
      on_stream(tls_write_error_, nullptr);
    return;
  }
  switch (r) {
    case TlsSession::Result::Ok:
      if (state_ == State::kHandshake && tls_->open()) tls_opened();
      return;
    case TlsSession::Result::Closed:
      if (state_ == State::kHandshake) {
        tls_handshake_failed("the server closed the connection");
      } else if (!tls_eof_) {
        tls_eof_ = true;
        // Nothing counts after close_notify: stop reading, as libuv does at an EOF.
        sock_.read_stop();
        on_stream(UV_EOF, nullptr);
      }
      return;
    case TlsSession::Result::Failed:
      if (state_ == State::kHandshake) {
        tls_handshake_failed(tls_->error().c_str());
      } else {
        PLOG_DEBUG("pool %s: TLS with %s: %s", pool_->cfg->name.c_str(), pool_->targets[server_].label.c_str(),
                   tls_->error().c_str());
        sock_.read_stop();
        on_stream(UV_EPROTO, nullptr);
      }
      return;
  }
}

void UpstreamConn::tls_opened() {
  timer_disarm(&timer_);  // connect_timeout
  PLOG_DEBUG("pool %s: TLS to %s: %.*s %.*s%s", pool_->cfg->name.c_str(), pool_->targets[server_].label.c_str(),
             (int)tls_->version().size(), tls_->version().data(), (int)tls_->cipher().size(), tls_->cipher().data(),
             tls_->resumed() ? ", resumed" : "");
  on_ready();
}

void UpstreamConn::tls_handshake_failed(const char* why) {
  // The session offered may be what the server refused: the next
  // connection starts afresh.
  UpstreamTlsContext::forget(&pool_->targets[server_].tls_session);
  std::string msg = std::string("TLS handshake failed: ") + why;
  fail(502, FailKind::kConnect, msg.c_str());
}

void UpstreamConn::on_plaintext(const char* data, size_t len) {
  if (state_ == State::kHandshake) tls_opened();  // the first bytes came with the handshake's end
  if (state_ == State::kClosed) return;
  on_stream((ssize_t)len, data);
}

void UpstreamConn::on_ciphertext(const char* data, size_t len) {
  if (tls_write_error_ || state_ == State::kClosed) return;
  uv_buf_t b = uv_buf_init(const_cast<char*>(data), (unsigned)len);
  int r = sock_.send(&b, 1);
  if (r < 0) tls_write_error_ = r;  // acted on by the caller (tls_send, tls_read)
}

int UpstreamConn::tls_send(const uv_buf_t* bufs, unsigned n) {
  if (tls_write_error_) return tls_write_error_;
  TlsSession::Result r = tls_->write_gathered(bufs, n);
  if (tls_write_error_) return tls_write_error_;
  if (r == TlsSession::Result::Failed) {
    PLOG_DEBUG("pool %s: TLS with %s: %s", pool_->cfg->name.c_str(), pool_->targets[server_].label.c_str(),
               tls_->error().c_str());
    return UV_EPROTO;
  }
  return 0;
}

void UpstreamConn::tls_close_notify() {
  if (tls_) tls_->close();  // once; nothing before the handshake's end or after a failure
}

}  // namespace pasture::worker
