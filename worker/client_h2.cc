// ClientConn as the transport of an HTTP/2 connection (worker/h2_conn.h):
// the h2c preface check on a listener that serves HTTP/2 by prior
// knowledge, and the H2Transport calls. A TLS transport below ClientConn
// (send_out, on_bytes) changes nothing here: after a handshake that chose
// ALPN "h2", the TLS glue calls start_h2() and its plaintext reaches the
// H2Conn through on_bytes as the socket's bytes do for h2c.
#include <cstring>

#include "common/log.h"
#include "worker/client_conn.h"

namespace pasture::worker {
namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";  // RFC 9113 3.4
constexpr size_t kPrefaceLen = sizeof kPreface - 1;

}  // namespace

// The first bytes of a connection on an h2c listener: the preface makes it
// HTTP/2, anything else HTTP/1.1. A preface split across reads is held back
// (it is a constant: only its length is kept).
bool ClientConn::h2_probe(const char* data, size_t n) {
  size_t have = probe_len_;
  size_t k = std::min(n, kPrefaceLen - have);
  if (memcmp(data, kPreface + have, k) != 0) {
    h2c_ = false;
    if (have == 0) return false;
    std::string all(kPreface, have);  // HTTP/1.1 after all: what was held back first
    all.append(data, n);
    on_bytes(all.data(), all.size());
    return true;
  }
  probe_len_ = (uint8_t)(have + k);
  if (probe_len_ < kPrefaceLen) return true;
  h2c_ = false;
  w_->stats().bytes_in.add(n + have);
  start_h2();
  if (state_ != State::kH2) return true;
  h2_->on_bytes(kPreface, kPrefaceLen);
  if (state_ == State::kH2 && n > k) h2_->on_bytes(data + k, n - k);
  return true;
}

void ClientConn::start_h2() {
  state_ = State::kH2;
  sock_.release();  // (frames are written once per turn: H2Conn)
  timer_disarm(&timer_);  // the H2Conn keeps its own timeouts
  h2_ = new H2(this);
  if (!h2_->start()) close();
}

void ClientConn::h2_read(bool on) {
  if (on)
    start_reading();
  else
    stop_reading();
}

// Graceful: queued bytes (a GOAWAY) are written, the write side shut, and
// input read until the client's EOF, so no RST destroys them.
void ClientConn::h2_close(bool graceful) {
  if (graceful)
    shutdown_and_linger();
  else
    close();
}

}  // namespace pasture::worker
