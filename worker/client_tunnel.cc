// ClientConn as a tunnel's client half (kTunnel, ResponseSink::tunnel): the
// 101 head, then bytes both ways as they are. Reads go to the exchange
// (Exchange::tunnel_in; want_body() holds them back while the upstream is
// behind), writes come through body(), whose high-water mark pauses the
// upstream. The upstream's EOF shuts the write half once every byte is
// written; the connection closes when the client's EOF has come too. Its
// own timer is off: the upstream half keeps tunnel_timeout for both.
// Everything goes through send_out()/on_bytes(), so a TLS transport below
// them carries a tunnel unchanged (its shutdown would send close_notify
// first, as for a lingering close).
#include "common/log.h"
#include "worker/client_conn.h"

namespace pasture::worker {

bool ClientConn::tunnel(std::string* head) {
  if (state_ == State::kClosed || state_ == State::kLinger) {
    w_->give_buf(head);
    return false;
  }
  state_ = State::kTunnel;
  sock_.release();  // (a pipelined upgrade: what came before goes now)
  timer_disarm(&timer_);
  producer_paused_ = out_full_ = false;
  rechunk_ = false;
  std::string*& held = request().resp_head;
  if (held) {  // nothing is held back before a 101; drop it if so
    w_->give_buf(held);
    held = nullptr;
  }
  int r = send_out(head->data(), head->size());
  w_->give_buf(head);
  if (r < 0) {
    close();
    return false;
  }
  // Bytes the client sent after its request (parsed by nobody: llhttp
  // stopped at the request's end) belong to the new protocol.
  if (inbuf_) {
    std::string* b = inbuf_;
    inbuf_ = nullptr;
    ex().tunnel_in(b->data(), b->size());
    w_->give_buf(b);
    if (state_ != State::kTunnel) return false;
  }
  if (client_eof_) ex().tunnel_in_eof();
  update_reading();
  return state_ == State::kTunnel;
}

void ClientConn::tunnel_close_write() {
  if (state_ != State::kTunnel || tunnel_shut_) return;
  tunnel_shut_ = true;
  if (tls_) tls_close_notify();  // as shutdown_and_linger: wss ends with close_notify, not a bare FIN
  if (sock_.shutdown() < 0) close();  // after the queued writes (on_sock_shut)
}

void ClientConn::on_tunnel_shut(int status) {
  if (state_ != State::kTunnel) return;  // closed meanwhile (UV_ECANCELED)
  if (status < 0) {
    close();
    return;
  }
  tunnel_shut_done_ = true;
  if (client_eof_) close();
}

}  // namespace pasture::worker
