// The OpenSSL client context of a pool's https:// servers (issue 15,
// "Upstream TLS"): what every TLS connection from this process to those
// servers shares. Built per pool from the validated conf model, by each
// worker at start (and by the health checker for its probes); never shared
// across processes.
//
// Policy: TLS 1.2 and 1.3, OpenSSL's default client suites, no
// renegotiation, no compression, ALPN `http/1.1` only (pasture speaks
// HTTP/1.1 upstream). Verification on unless `tls_verify = off`: the chain
// against `tls_ca_certs` or the system CA store (OpenSSL's default paths;
// on Debian /etc/ssl/certs), and the name: `tls_server_name`, else the
// server's host (a DNS name checked as RFC 6125 says, X509_check_host; an
// IP literal against the certificate's IP addresses, and no SNI, as RFC
// 6066 forbids IP literals there). Client-side session caching: the
// session a server issues is kept by the caller (one per server) and
// offered on the next connection (nginx's proxy_ssl_session_reuse on).
#pragma once

#include <memory>
#include <string>

#include "conf/model.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

namespace pasture::worker {

class UpstreamTlsContext {
 public:
  // Null + `err` (naming the file and OpenSSL's reason) when a file the
  // config names cannot be used any more (conf/ checked it at load time).
  static std::unique_ptr<UpstreamTlsContext> build(const conf::UpstreamTls& t, std::string* err);
  ~UpstreamTlsContext();
  UpstreamTlsContext(const UpstreamTlsContext&) = delete;
  UpstreamTlsContext& operator=(const UpstreamTlsContext&) = delete;

  // A client SSL for a server whose host is `host` (as configured): SNI
  // and the name to verify set (tls_server_name wins over `host`). `cache`
  // (may be null) is where the server's sessions are kept: one there is
  // offered for resumption, and each new one the server issues replaces it
  // (SSL_SESSION_free'd). `cache` must outlive the SSL. Null when out of
  // memory.
  SSL* new_ssl(const std::string& host, SSL_SESSION** cache) const;
  // Drops the session kept in `cache` (after a failed handshake).
  static void forget(SSL_SESSION** cache);
  bool verifies() const { return verify_; }

 private:
  UpstreamTlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  std::string server_name_;  // tls_server_name, "" = each server's host
  bool verify_ = true;
};

// True for an IPv4 or IPv6 literal (no SNI; verified as an IP address).
bool is_ip_literal(const std::string& host);

// Why an SSL call failed (`ssl_error` from SSL_get_error): OpenSSL's reason,
// with the verification result when the certificate did not verify
// ("certificate verify failed: hostname mismatch"). Clears the error queue.
std::string tls_failure(SSL* ssl, int ssl_error);

}  // namespace pasture::worker
