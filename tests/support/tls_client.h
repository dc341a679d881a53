// A blocking TLS client over a loopback socket for the integration tests
// (OpenSSL, TLS 1.2/1.3): SNI, ALPN, a CA to verify against, an optional
// client certificate, session resumption; HTTP/1.1 responses read off it
// (Content-Length, chunked, or until close).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tests/support/http_client.h"
#include "tests/support/net.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

namespace pasture::test {

struct TlsClientOptions {
  std::string sni = "localhost";
  std::string ca_pem;             // verify the server against it ("" = no verification)
  std::string alpn = "http/1.1";  // one protocol name; "" = no ALPN
  std::string cert_pem, key_pem;  // a client certificate
  SSL_SESSION* session = nullptr; // resume this one (not owned)
  int max_version = 0;            // e.g. TLS1_2_VERSION; 0 = the highest (TLS 1.3)
};

class TlsConn {
 public:
  // Connects and completes the handshake; null and `err` on failure.
  static std::unique_ptr<TlsConn> connect(uint16_t port, const TlsClientOptions& o, std::string* err,
                                          Millis timeout = kDefaultTimeout);
  ~TlsConn();
  TlsConn(const TlsConn&) = delete;
  TlsConn& operator=(const TlsConn&) = delete;

  bool send(std::string_view data);
  // One response (HEAD: no body); Response::error says what went wrong.
  Response read_response(bool head_request = false, Millis timeout = kDefaultTimeout);
  // Everything until the server closes (close_notify or EOF); `clean` says
  // whether a close_notify came first.
  std::string read_until_close(bool* clean = nullptr, Millis timeout = kDefaultTimeout);

  bool resumed() const;
  std::string alpn() const;
  std::string version() const;
  std::string peer_subject() const;  // the server certificate's, RFC 2253
  std::string peer_serial() const;   // hex
  SSL_SESSION* get1_session() const;  // SSL_SESSION_free it
  SSL* ssl() const { return ssl_; }

 private:
  TlsConn() = default;
  // Reads more plaintext into buf_; false on close/error/timeout (`closed_clean_` set on close_notify).
  bool fill(Millis timeout);
  Fd fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buf_;
  bool eof_ = false;
  bool closed_clean_ = false;
};

}  // namespace pasture::test
