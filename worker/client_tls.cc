// ClientConn's TLS transport (issue 15): a TlsSession over memory BIOs
// between the socket and the HTTP/1.1 connection.
//
//   sock_ --on_sock_read--> tls_feed --> TlsSession --> on_plaintext --> on_bytes
//   send_out --> tls_send --> TlsSession --> on_ciphertext --> send_raw --> sock_
//
// Everything the connection does with the plain socket it does here with
// the decrypted stream; what is queued (queued(), back-pressure) is
// ciphertext the socket has not taken, the session itself keeps none. The
// handshake runs in kIdle under client_header_timeout. A failed one is
// logged at debug with OpenSSL's reason and counted
// (WorkerStats::tls_handshake_errors).
#include <cstring>

#include "common/log.h"
#include "worker/client_conn.h"
#include "worker/runtime.h"
#include "worker/tls_context.h"

namespace pasture::worker {

void ClientConn::tls_start(const TlsContext& ctx) {
  peer_.tls = true;
  tls_.reset(new Tls(ctx, this));
  if (tls_->state() == TlsSession::State::Failed) {
    PLOG_WARN("TLS with %s: %s", PeerText(peer_).s, tls_->error().c_str());
    close();
  }
}

void ClientConn::tls_feed(const char* data, size_t n) {
  if (state_ == State::kClosed) return;
  tls_bytes_in_ = true;
  TlsSession::Result r = tls_->feed(data, n);
  tls_check_open();
  if (state_ == State::kClosed) return;
  if (tls_->write_error) {
    close();
    return;
  }
  switch (r) {
    case TlsSession::Result::Ok:
      return;
    case TlsSession::Result::Closed:
      // close_notify: the client sends nothing more; answers still go out.
      stop_reading();
      on_eof();
      return;
    case TlsSession::Result::Failed:
      if (!tls_open_)
        tls_handshake_failed(tls_->error().c_str());
      else
        PLOG_DEBUG("TLS with %s: %s", PeerText(peer_).s, tls_->error().c_str());
      close();  // the alert, if any, went out with the session's last bytes
      return;
  }
}

void ClientConn::tls_check_open() {
  if (tls_open_ || !tls_->writable()) return;
  tls_open_ = true;
  shm::WorkerStats& st = w_->stats();
  st.tls_handshakes.add();
  if (tls_->resumed()) st.tls_resumed.add();
  if (!w_->site().server.tls.client_subject_header.empty()) tls_->keep_peer_subject();
  // ALPN chose HTTP/2 (offered with `http2 = on` only): from here this
  // connection is the H2Conn's transport, as for h2c.
  if (tls_->alpn() == "h2") start_h2();
}

void ClientConn::tls_handshake_failed(const char* why) {
  w_->stats().tls_handshake_errors.add();
  PLOG_DEBUG("TLS handshake with %s failed: %s", PeerText(peer_).s, why);
}

void ClientConn::on_plaintext(const char* data, size_t len) {
  tls_check_open();  // the first bytes may come with the handshake's end
  on_bytes(data, len);
}

void ClientConn::on_ciphertext(const char* data, size_t len) {
  if (tls_->write_error || state_ == State::kClosed) return;
  int r = send_raw(data, len);
  if (r < 0) tls_->write_error = r;  // acted on by the caller (tls_send, tls_feed)
}

int ClientConn::tls_send(const uv_buf_t* bufs, unsigned n) {
  if (tls_->write_error) return tls_->write_error;
  if (!tls_->writable()) return UV_EPROTO;  // no write before the handshake's end or after a failure
  TlsSession::Result r = tls_->write_gathered(bufs, n);
  if (tls_->write_error) return tls_->write_error;
  if (r == TlsSession::Result::Failed) {
    PLOG_DEBUG("TLS with %s: %s", PeerText(peer_).s, tls_->error().c_str());
    return UV_EPROTO;
  }
  return 0;
}

void ClientConn::tls_close_notify() {
  if (tls_open_) tls_->close();  // once; the bytes go out before the write side is shut
}

}  // namespace pasture::worker
