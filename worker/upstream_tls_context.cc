#include "worker/upstream_tls_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace pasture::worker {

namespace {

std::string ssl_reason() {
  unsigned long e = ERR_peek_last_error();
  const char* reason = e ? ERR_reason_error_string(e) : nullptr;
  std::string r = reason ? reason : e ? "OpenSSL error " + std::to_string(e) : "unknown error";
  ERR_clear_error();
  return r;
}

// The ex_data slot of an SSL that points to its server's session cache
// (an SSL_SESSION* the caller owns), or holds null.
int cache_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// A session the server issued (TLS 1.2 at the handshake's end, TLS 1.3 in
// each NewSessionTicket): kept, replacing the previous one. Returning 1
// takes the reference OpenSSL hands over.
int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto** cache = static_cast<SSL_SESSION**>(SSL_get_ex_data(ssl, cache_index()));
  if (!cache) return 0;
  if (*cache) SSL_SESSION_free(*cache);
  *cache = session;
  return 1;
}

}  // namespace

std::string tls_failure(SSL* ssl, int ssl_error) {
  unsigned long e = ERR_peek_last_error();
  const char* reason = e ? ERR_reason_error_string(e) : nullptr;
  std::string out = reason                            ? reason
                    : ssl_error == SSL_ERROR_SYSCALL ? "unexpected end of the TLS stream"
                                                     : "TLS error " + std::to_string(ssl_error);
  // Without verification (tls_verify = off) the result is not what failed.
  long verify = ssl && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (verify != X509_V_OK) out += std::string(": ") + X509_verify_cert_error_string(verify);
  ERR_clear_error();
  return out;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::unique_ptr<UpstreamTlsContext> UpstreamTlsContext::build(const conf::UpstreamTls& t, std::string* err) {
  ERR_clear_error();
  std::unique_ptr<UpstreamTlsContext> c(new UpstreamTlsContext);
  c->server_name_ = t.server_name;
  c->verify_ = t.verify;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    *err = "SSL_CTX_new: " + ssl_reason();
    return nullptr;
  }
  c->ctx_ = ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // IGNORE_UNEXPECTED_EOF: an EOF without close_notify reads as a close (the
  // health checker's socket BIO; the workers see the EOF themselves).
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Idle kept-alive connections hold no read/write buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kAlpn[] = "\x08http/1.1";
  if (SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn - 1) != 0) {  // 0 = success here
    *err = "ALPN: " + ssl_reason();
    return nullptr;
  }
  if (t.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    int ok = t.ca_certs.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                                : SSL_CTX_load_verify_locations(ctx, t.ca_certs.c_str(), nullptr);
    if (ok != 1) {
      *err = (t.ca_certs.empty() ? std::string("the system CA store") : "tls_ca_certs " + t.ca_certs) + ": " +
             ssl_reason();
      return nullptr;
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!t.client_cert.empty()) {
    const std::string& key = t.client_key.empty() ? t.client_cert : t.client_key;
    if (SSL_CTX_use_certificate_chain_file(ctx, t.client_cert.c_str()) != 1) {
      *err = "tls_client_cert " + t.client_cert + ": " + ssl_reason();
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      *err = "tls_client_key " + key + ": " + ssl_reason();
      return nullptr;
    }
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  ERR_clear_error();
  return c;
}

UpstreamTlsContext::~UpstreamTlsContext() { SSL_CTX_free(ctx_); }

SSL* UpstreamTlsContext::new_ssl(const std::string& host, SSL_SESSION** cache) const {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) {
    ERR_clear_error();
    return nullptr;
  }
  const std::string& name = server_name_.empty() ? host : server_name_;
  bool ip = is_ip_literal(name);
  bool ok = ip || SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
  if (ok && verify_) {
    if (ip) {
      ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      ok = SSL_set1_host(ssl, name.c_str()) == 1;
    }
  }
  if (ok && cache) {
    SSL_set_ex_data(ssl, cache_index(), cache);
    if (*cache && SSL_SESSION_is_resumable(*cache)) ok = SSL_set_session(ssl, *cache) == 1;
  }
  if (!ok) {
    ERR_clear_error();
    SSL_free(ssl);
    return nullptr;
  }
  return ssl;
}

void UpstreamTlsContext::forget(SSL_SESSION** cache) {
  if (*cache) SSL_SESSION_free(*cache);
  *cache = nullptr;
}

}  // namespace pasture::worker
