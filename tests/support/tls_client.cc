#include "tests/support/tls_client.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>

#include <chrono>
#include <cstring>

namespace pasture::test {
namespace {

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  std::string s = e ? ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "OpenSSL error" : "TLS error";
  ERR_clear_error();
  return s;
}

bool wait_fd(int fd, short ev, std::chrono::steady_clock::time_point end) {
  auto left = std::chrono::duration_cast<Millis>(end - std::chrono::steady_clock::now()).count();
  if (left <= 0) return false;
  pollfd p{fd, ev, 0};
  return poll(&p, 1, (int)left) > 0;
}

}  // namespace

std::unique_ptr<TlsConn> TlsConn::connect(uint16_t port, const TlsClientOptions& o, std::string* err,
                                          Millis timeout) {
  std::unique_ptr<TlsConn> c(new TlsConn);
  c->fd_ = connect_loopback(port, timeout, err);
  if (!c->fd_.valid()) return nullptr;
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(c->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(c->ctx_, o.max_version);
  if (!o.ca_pem.empty()) {
    BIO* b = BIO_new_mem_buf(o.ca_pem.data(), (int)o.ca_pem.size());
    X509* ca = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(c->ctx_), ca);
    X509_free(ca);
    SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
  }
  if (!o.cert_pem.empty()) {
    BIO* b = BIO_new_mem_buf(o.cert_pem.data(), (int)o.cert_pem.size());
    X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(o.key_pem.data(), (int)o.key_pem.size());
    EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    SSL_CTX_use_certificate(c->ctx_, x);
    SSL_CTX_use_PrivateKey(c->ctx_, k);
    X509_free(x);
    EVP_PKEY_free(k);
  }
  c->ssl_ = SSL_new(c->ctx_);
  SSL_set_fd(c->ssl_, c->fd_.get());
  if (!o.sni.empty()) {
    SSL_set_tlsext_host_name(c->ssl_, o.sni.c_str());
    if (!o.ca_pem.empty()) SSL_set1_host(c->ssl_, o.sni.c_str());
  }
  if (!o.alpn.empty()) {
    std::string wire(1, (char)o.alpn.size());
    wire += o.alpn;
    SSL_set_alpn_protos(c->ssl_, (const unsigned char*)wire.data(), (unsigned)wire.size());
  }
  if (o.session) SSL_set_session(c->ssl_, o.session);
  auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    ERR_clear_error();
    int rc = SSL_connect(c->ssl_);
    if (rc == 1) break;
    int e = SSL_get_error(c->ssl_, rc);
    if ((e == SSL_ERROR_WANT_READ && wait_fd(c->fd_.get(), POLLIN, end)) ||
        (e == SSL_ERROR_WANT_WRITE && wait_fd(c->fd_.get(), POLLOUT, end)))
      continue;
    if (err) {
      *err = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? "handshake timed out" : ssl_error();
      long v = SSL_get_verify_result(c->ssl_);
      if (v != X509_V_OK) *err += std::string(": ") + X509_verify_cert_error_string(v);
    }
    return nullptr;
  }
  return c;
}

TlsConn::~TlsConn() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

bool TlsConn::send(std::string_view data) {
  auto end = std::chrono::steady_clock::now() + kDefaultTimeout;
  while (!data.empty()) {
    size_t n = 0;
    ERR_clear_error();
    if (SSL_write_ex(ssl_, data.data(), data.size(), &n) == 1) {
      data.remove_prefix(n);
      continue;
    }
    int e = SSL_get_error(ssl_, 0);
    if ((e == SSL_ERROR_WANT_WRITE && wait_fd(fd_.get(), POLLOUT, end)) ||
        (e == SSL_ERROR_WANT_READ && wait_fd(fd_.get(), POLLIN, end)))
      continue;
    return false;
  }
  return true;
}

bool TlsConn::fill(Millis timeout) {
  if (eof_) return false;
  auto end = std::chrono::steady_clock::now() + timeout;
  char tmp[65536];
  for (;;) {
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl_, tmp, sizeof tmp, &n) == 1) {
      buf_.append(tmp, n);
      return true;
    }
    int e = SSL_get_error(ssl_, 0);
    if (e == SSL_ERROR_WANT_READ && wait_fd(fd_.get(), POLLIN, end)) continue;
    if (e == SSL_ERROR_WANT_WRITE && wait_fd(fd_.get(), POLLOUT, end)) continue;
    if (e == SSL_ERROR_ZERO_RETURN) closed_clean_ = true;
    if (e != SSL_ERROR_WANT_READ) eof_ = true;
    return false;
  }
}

Response TlsConn::read_response(bool head_request, Millis timeout) {
  Response r;
  size_t he;
  while ((he = buf_.find("\r\n\r\n")) == std::string::npos)
    if (!fill(timeout)) {
      r.error = eof_ ? "closed before a response head" : "timed out waiting for a response head";
      return r;
    }
  std::string head = buf_.substr(0, he + 2);
  buf_.erase(0, he + 4);
  size_t eol = head.find("\r\n");
  std::string line = head.substr(0, eol);
  if (sscanf(line.c_str(), "HTTP/%d.%d %d", &r.http_major, &r.http_minor, &r.status) != 3) {
    r.error = "bad status line: " + line;
    return r;
  }
  size_t sp = line.find(' ', line.find(' ') + 1);
  if (sp != std::string::npos) r.reason = line.substr(sp + 1);
  for (size_t p = eol + 2; p < head.size();) {
    size_t e = head.find("\r\n", p);
    std::string f = head.substr(p, e - p);
    size_t colon = f.find(':');
    std::string v = f.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    r.headers.emplace_back(f.substr(0, colon), v);
    p = e + 2;
  }
  r.keep_alive = !iequals(r.header("connection"), "close");
  if (head_request || r.status == 204 || r.status == 304 || r.status / 100 == 1) return r;
  std::string cl = r.header("content-length");
  if (iequals(r.header("transfer-encoding"), "chunked")) {
    r.chunked = true;
    for (;;) {
      size_t le;
      while ((le = buf_.find("\r\n")) == std::string::npos)
        if (!fill(timeout)) {
          r.error = "truncated chunked body";
          return r;
        }
      size_t n = strtoul(buf_.c_str(), nullptr, 16);
      buf_.erase(0, le + 2);
      while (buf_.size() < n + 2)
        if (!fill(timeout)) {
          r.error = "truncated chunk";
          return r;
        }
      r.body.append(buf_, 0, n);
      buf_.erase(0, n + 2);
      if (n == 0) return r;  // no trailer fields expected
    }
  }
  if (!cl.empty()) {
    size_t n = strtoull(cl.c_str(), nullptr, 10);
    while (buf_.size() < n)
      if (!fill(timeout)) {
        r.error = "truncated body (" + std::to_string(buf_.size()) + " of " + cl + ")";
        return r;
      }
    r.body = buf_.substr(0, n);
    buf_.erase(0, n);
    return r;
  }
  while (fill(timeout)) {
  }
  r.body = std::move(buf_);
  buf_.clear();
  r.keep_alive = false;
  return r;
}

std::string TlsConn::read_until_close(bool* clean, Millis timeout) {
  while (fill(timeout)) {
  }
  if (clean) *clean = closed_clean_;
  std::string out = std::move(buf_);
  buf_.clear();
  return out;
}

bool TlsConn::resumed() const { return SSL_session_reused(ssl_) == 1; }

std::string TlsConn::alpn() const {
  const unsigned char* p = nullptr;
  unsigned n = 0;
  SSL_get0_alpn_selected(ssl_, &p, &n);
  return p ? std::string((const char*)p, n) : "";
}

std::string TlsConn::version() const { return SSL_get_version(ssl_); }

std::string TlsConn::peer_subject() const {
  X509* x = SSL_get0_peer_certificate(ssl_);
  if (!x) return "";
  BIO* mem = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(mem, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
  char* p = nullptr;
  long n = BIO_get_mem_data(mem, &p);
  std::string out(p, n > 0 ? (size_t)n : 0);
  BIO_free(mem);
  return out;
}

std::string TlsConn::peer_serial() const {
  X509* x = SSL_get0_peer_certificate(ssl_);
  if (!x) return "";
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string s = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  return s;
}

SSL_SESSION* TlsConn::get1_session() const { return SSL_get1_session(ssl_); }

}  // namespace pasture::test
