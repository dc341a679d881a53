// One TLS connection as a transport engine over memory BIOs: what sits
// between a socket and the HTTP/1.1 (or HTTP/2) connection: a client's
// connection to a TLS listener (server side), or an upstream connection
// to an https:// server (client side, worker/upstream_tls.cc). It knows
// no socket and no libuv: the owner feeds it the bytes it read, writes the
// bytes it is handed, and gets the decrypted stream back (h2o's
// lib/common/socket.c does the same with its ssl part).
//
//   socket --read--> feed() --> Sink::on_plaintext   --> HTTP parser
//   HTTP writer --> write() --> Sink::on_ciphertext  --> socket
//
// Handshake replies, session tickets, key updates, alerts and close_notify
// all come out of on_ciphertext, in the order they must be sent, from
// whichever call produced them. No allocation per record beyond OpenSSL's
// own: plaintext is read into a stack buffer, ciphertext is handed out of
// OpenSSL's write BIO, input goes to its read BIO in record-sized steps.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace pasture::worker {

class TlsContext;

class TlsSession {
 public:
  // Where the session's output goes. The data is valid during the call
  // only. on_plaintext may call write() or close() on its session;
  // on_ciphertext must not call into it (it only queues the bytes for the
  // socket). Neither may destroy the session (defer that, as a libuv close
  // does).
  class Sink {
   public:
    virtual ~Sink() = default;
    // Decrypted application data, in order.
    // All that one feed() of up to 64 KiB decrypts comes in one call.
    virtual void on_plaintext(const char* data, size_t len) = 0;
    // Bytes to send on the socket, in order.
    virtual void on_ciphertext(const char* data, size_t len) = 0;
  };

  enum class State {
    Handshake,  // until the handshake completes; write() is refused
    Open,       // application data both ways
    Closed,     // the peer sent close_notify: nothing more will come from it
    Failed,     // a fatal error (error() says which); an alert may have been sent
  };
  // What feed() and write() report: go on, the peer closed cleanly
  // (close_notify), or the connection is done for (see error()).
  enum class Result { Ok, Closed, Failed };

  // Server side. `ctx` must outlive the session.
  TlsSession(const TlsContext& ctx, Sink& sink);
  // Client side, on `ssl` (owned from here; its SSL_CTX and the name to
  // verify set by the caller): start() sends the ClientHello, feed() runs
  // the rest of the handshake. A null `ssl` makes a Failed session.
  TlsSession(SSL* ssl, Sink& sink);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Client side: the first handshake flight (on_ciphertext). Ok or Failed.
  Result start();
  // Bytes read from the socket, any amount (partial records are kept until
  // the rest comes). Runs the handshake, then hands the plaintext to the sink.
  Result feed(const char* data, size_t len);
  // Application data; only once the handshake is done (else Failed). Sent
  // in records of at most 16 KiB.
  Result write(const char* data, size_t len);
  // Several pieces (any type with `base` and `len`, such as uv_buf_t): small
  // ones (a head, a chunk line, a body) together in one record, one
  // encryption and 22 bytes of framing less per piece; larger ones in turn.
  template <typename Buf>
  Result write_gathered(const Buf* bufs, unsigned n);
  // Sends close_notify, once (later calls do nothing). The owner then
  // closes the socket after writing what on_ciphertext gave it; waiting for
  // the peer's close_notify is not needed (RFC 8446 6.1).
  void close();

  State state() const { return state_; }
  bool open() const { return state_ == State::Open; }
  // The handshake is done and nothing failed: application data may go out,
  // also after the peer's close_notify (a half-close: the answer to what
  // it sent before still goes).
  bool writable() const { return state_ == State::Open || (state_ == State::Closed && !close_sent_); }
  // Why the session failed: OpenSSL's reason ("unsupported protocol", "no
  // shared cipher", "peer did not return a certificate", "no application
  // protocol", "certificate verify failed: ..."), "" otherwise.
  const std::string& error() const { return error_; }

  // Known once the handshake is done.
  std::string_view alpn() const;         // "h2", "http/1.1", or "" (the client sent no ALPN)
  std::string_view server_name() const;  // SNI host name, or ""
  std::string_view version() const;      // "TLSv1.3", "TLSv1.2"
  std::string_view cipher() const;       // "TLS_AES_128_GCM_SHA256", ...
  bool resumed() const;                  // by a session ticket (or, client side, a cached session)
  // The client certificate's subject in RFC 2253 form ("CN=alice,O=Example"),
  // when the client sent one and it verified against ca_certs; else "". No
  // control characters (OpenSSL escapes them), so it may go into a header.
  std::string peer_subject() const;
  // peer_subject() made once and kept with the session (a server-side
  // connection's, at the handshake's end): kept_subject() until then "".
  void keep_peer_subject() { subject_ = peer_subject(); }
  std::string_view kept_subject() const { return subject_; }

 private:
  void attach_bios();
  Result drive(char* plain, size_t* used);
  Result fail(int ssl_error);
  void flush();

  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // ciphertext from the socket (owned by ssl_)
  BIO* wbio_ = nullptr;  // ciphertext for the socket (owned by ssl_)
  Sink& sink_;
  State state_ = State::Handshake;
  bool close_sent_ = false;
  std::string error_;
  std::string subject_;  // keep_peer_subject()
};

template <typename Buf>
TlsSession::Result TlsSession::write_gathered(const Buf* bufs, unsigned n) {
  constexpr size_t kGather = 16384;
  size_t total = 0;
  for (unsigned i = 0; i < n; i++) total += bufs[i].len;
  if (n > 1 && total <= kGather) {
    char one[kGather];
    size_t k = 0;
    for (unsigned i = 0; i < n; i++) {
      std::memcpy(one + k, bufs[i].base, bufs[i].len);
      k += bufs[i].len;
    }
    return write(one, k);
  }
  Result r = Result::Ok;
  for (unsigned i = 0; i < n && r == Result::Ok; i++)
    if (bufs[i].len) r = write(bufs[i].base, bufs[i].len);
  return r;
}

}  // namespace pasture::worker
