#include "worker/tls_session.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>

#include "worker/tls_context.h"

namespace pasture::worker {

namespace {

// Input goes to the read BIO in steps of about a record, so that the BIO's
// buffer stays small whatever the socket read size.
constexpr size_t kFeedStep = 16384 + 2048;
constexpr size_t kRecord = 16384;  // TLS plaintext record limit
constexpr size_t kPlain = 64 * 1024;  // plaintext handed over at once (a socket read's worth)

}  // namespace

TlsSession::TlsSession(const TlsContext& ctx, Sink& sink) : sink_(sink) {
  ssl_ = ctx.new_ssl();
  attach_bios();
  if (ssl_ && rbio_) SSL_set_accept_state(ssl_);
}

TlsSession::TlsSession(SSL* ssl, Sink& sink) : sink_(sink) {
  ssl_ = ssl;
  attach_bios();
  if (ssl_ && rbio_) SSL_set_connect_state(ssl_);
}

void TlsSession::attach_bios() {
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !rbio_ || !wbio_) {
    BIO_free(rbio_);
    BIO_free(wbio_);
    rbio_ = wbio_ = nullptr;
    state_ = State::Failed;
    error_ = "out of memory";
    return;
  }
  BIO_set_mem_eof_return(rbio_, -1);  // empty = "want more", not end of stream
  SSL_set_bio(ssl_, rbio_, wbio_);   // ssl_ owns both now
}

TlsSession::Result TlsSession::start() {
  if (state_ == State::Failed) return Result::Failed;
  char plain[kPlain];  // (a ClientHello: nothing comes back yet)
  size_t used = 0;
  Result r = drive(plain, &used);
  flush();
  if (used > 0) sink_.on_plaintext(plain, used);
  return r;
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::flush() {
  char* p = nullptr;
  long n = BIO_get_mem_data(wbio_, &p);
  if (n <= 0) return;
  // The sink copies or writes the bytes during the call (it does not call
  // back into the session: Sink's contract); then the buffer is reused.
  sink_.on_ciphertext(p, (size_t)n);
  (void)BIO_reset(wbio_);
}

TlsSession::Result TlsSession::fail(int ssl_error) {
  unsigned long e = ERR_peek_last_error();
  const char* reason = e ? ERR_reason_error_string(e) : nullptr;
  if (reason)
    error_ = reason;
  else if (ssl_error == SSL_ERROR_SYSCALL)
    error_ = "unexpected end of the TLS stream";
  else
    error_ = "TLS error " + std::to_string(ssl_error);
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) error_ += std::string(": ") + X509_verify_cert_error_string(verify);
  ERR_clear_error();
  state_ = State::Failed;
  flush();  // the alert OpenSSL wrote, if any
  return Result::Failed;
}

// Runs the handshake, then decrypts what the read BIO holds into
// plain[*used..kPlain), handing the sink a full buffer as it goes; the
// caller hands over the rest.
TlsSession::Result TlsSession::drive(char* plain, size_t* used) {
  if (state_ == State::Handshake) {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl_);
    if (rc != 1) {
      int e = SSL_get_error(ssl_, rc);
      if (e == SSL_ERROR_WANT_READ) return Result::Ok;
      return fail(e);
    }
    state_ = State::Open;
  }
  while (state_ == State::Open) {
    if (*used == kPlain) {  // only past one read's worth (feed's callers read at most 64 KiB)
      sink_.on_plaintext(plain, *used);
      *used = 0;
      continue;  // the sink may have closed the session
    }
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl_, plain + *used, kPlain - *used, &n) == 1) {
      *used += n;
      continue;
    }
    int e = SSL_get_error(ssl_, 0);
    if (e == SSL_ERROR_WANT_READ) return Result::Ok;
    if (e == SSL_ERROR_ZERO_RETURN) {
      state_ = State::Closed;
      return Result::Closed;
    }
    return fail(e);
  }
  return state_ == State::Closed ? Result::Closed : state_ == State::Failed ? Result::Failed : Result::Ok;
}

TlsSession::Result TlsSession::feed(const char* data, size_t len) {
  if (state_ == State::Failed) return Result::Failed;
  if (state_ == State::Closed) return Result::Closed;  // nothing counts after close_notify
  // The plaintext of every record a read brings goes to the sink in one
  // call (a socket read is at most 64 KiB, so its plaintext fits): a parser
  // sees at once all that came, as from a plain socket's read (found by
  // review: record by record, an upstream connection went back to the pool
  // with the server's unasked next answer still to come).
  char plain[kPlain];
  size_t used = 0;
  Result r = Result::Ok;
  do {
    size_t step = std::min(len, kFeedStep);
    if (step > 0 && BIO_write(rbio_, data, (int)step) != (int)step) {
      error_ = "out of memory";
      state_ = State::Failed;
      return Result::Failed;
    }
    data += step;
    len -= step;
    r = drive(plain, &used);
    flush();
  } while (r == Result::Ok && len > 0);
  if (used > 0) sink_.on_plaintext(plain, used);  // before a close_notify or an error is reported
  return r;
}

TlsSession::Result TlsSession::write(const char* data, size_t len) {
  if (state_ == State::Failed) return Result::Failed;
  if (state_ == State::Handshake || close_sent_) {
    error_ = state_ == State::Handshake ? "write before the TLS handshake finished" : "write after close_notify";
    return Result::Failed;
  }
  // Once the peer's close_notify came, data may still go the other way
  // (half-close), as HTTP/1.1 finishing a response needs.
  while (len > 0) {
    size_t step = std::min(len, kRecord);
    size_t done = 0;
    ERR_clear_error();
    if (SSL_write_ex(ssl_, data, step, &done) != 1) return fail(SSL_get_error(ssl_, 0));
    data += done;
    len -= done;
    flush();
  }
  return Result::Ok;
}

void TlsSession::close() {
  if (close_sent_ || !ssl_ || state_ == State::Failed || state_ == State::Handshake) {
    close_sent_ = true;
    return;
  }
  close_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // writes close_notify; the peer's reply is not awaited
  ERR_clear_error();
  flush();
}

std::string_view TlsSession::alpn() const {
  const unsigned char* p = nullptr;
  unsigned n = 0;
  if (ssl_) SSL_get0_alpn_selected(ssl_, &p, &n);
  return p ? std::string_view(reinterpret_cast<const char*>(p), n) : std::string_view();
}

std::string_view TlsSession::server_name() const {
  const char* name = ssl_ ? SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name) : nullptr;
  return name ? name : "";
}

std::string_view TlsSession::version() const { return ssl_ ? SSL_get_version(ssl_) : ""; }

std::string_view TlsSession::cipher() const {
  const SSL_CIPHER* c = ssl_ ? SSL_get_current_cipher(ssl_) : nullptr;
  return c ? SSL_CIPHER_get_name(c) : "";
}

bool TlsSession::resumed() const { return ssl_ && SSL_session_reused(ssl_); }

std::string TlsSession::peer_subject() const {
  X509* peer = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  if (!peer || SSL_get_verify_result(ssl_) != X509_V_OK) return "";
  BIO* mem = BIO_new(BIO_s_mem());
  if (!mem) return "";
  X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
  char* p = nullptr;
  long n = BIO_get_mem_data(mem, &p);
  std::string out(p, (size_t)std::max(0L, n));
  BIO_free(mem);
  return out;
}

}  // namespace pasture::worker
