#include "worker/tls_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/ticket_keys.h"
#include "conf/tls_check.h"

namespace pasture::worker {

struct TlsContext::Cert {
  SSL_CTX* ctx = nullptr;
  X509* x509 = nullptr;  // owned by ctx
  std::string ocsp;      // DER response, "" = none
  ~Cert() { SSL_CTX_free(ctx); }
};

namespace {

// How many CA certificates may stand between a client's certificate and
// ca_certs.
constexpr uint32_t kVerifyDepth = 8;

// The first OpenSSL error on this thread's queue as text, then the queue cleared.
std::string ssl_reason() {
  unsigned long e = ERR_peek_error();
  const char* reason = e ? ERR_reason_error_string(e) : nullptr;
  std::string r = reason ? reason : e ? "OpenSSL error " + std::to_string(e) : "unknown error";
  ERR_clear_error();
  return r;
}

const TlsContext* context_of(SSL* s) {
  // Every SSL_CTX of a TlsContext carries it as app data; SNI may have
  // switched the SSL to another of them.
  return static_cast<const TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(s)));
}

// SNI: the first certificate that holds the name (wildcards as RFC 6125
// allows, X509_check_host), else the default one.
int on_servername(SSL* s, int* /*alert*/, void* arg) {
  const auto* tc = static_cast<const TlsContext*>(arg);
  const char* name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
  if (!name || !*name) return SSL_TLSEXT_ERR_OK;
  const auto& certs = tc->certs();
  for (size_t i = 0; i < certs.size(); i++) {
    if (X509_check_host(certs[i]->x509, name, strlen(name), 0, nullptr) == 1) {
      if (i > 0 && !SSL_set_SSL_CTX(s, certs[i]->ctx)) return SSL_TLSEXT_ERR_ALERT_FATAL;
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

// ALPN in the server's order: h2 first when the listener serves it.
int on_alpn(SSL* s, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
            void* /*arg*/) {
  static const unsigned char kH2[] = "\x02h2\x08http/1.1";
  static const unsigned char kH1[] = "\x08http/1.1";
  bool h2 = context_of(s)->options().http2;
  unsigned char* sel = nullptr;
  int rc = h2 ? SSL_select_next_proto(&sel, outlen, kH2, sizeof kH2 - 1, in, inlen)
              : SSL_select_next_proto(&sel, outlen, kH1, sizeof kH1 - 1, in, inlen);
  if (rc != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

// OCSP stapling: the response read from tls_ocsp, for the certificate SNI picked.
int on_status(SSL* s, void* arg) {
  const auto* cert = static_cast<const TlsContext::Cert*>(arg);
  if (cert->ocsp.empty()) return SSL_TLSEXT_ERR_NOACK;
  // OpenSSL frees the copy once sent: one allocation per stapling handshake,
  // which its API requires.
  auto* copy = static_cast<unsigned char*>(OPENSSL_memdup(cert->ocsp.data(), cert->ocsp.size()));
  if (!copy) return SSL_TLSEXT_ERR_NOACK;
  SSL_set_tlsext_status_ocsp_resp(s, copy, (long)cert->ocsp.size());
  return SSL_TLSEXT_ERR_OK;
}

bool set_hmac_key(EVP_MAC_CTX* hctx, const uint8_t* key) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<uint8_t*>(key), 32),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

// Session tickets with the keys in shared memory (HAProxy's tls-ticket-keys,
// nginx's ssl_session_ticket_key, but rotated by the master). OpenSSL calls
// this on the context the SSL was created on, whatever SNI switched to.
int on_ticket(SSL* s, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX* cctx,
              EVP_MAC_CTX* hctx, int enc) {
  shm::TicketKeys* block = context_of(s)->options().tickets;
  shm::TicketKey keys[2];
  if (!block || !shm::read_ticket_keys(*block, keys)) return 0;  // no ticket / not recognised
  if (enc) {
    if (RAND_bytes(iv, 16) != 1) return -1;
    memcpy(key_name, keys[0].name, 16);
    if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, keys[0].aes, iv) != 1) return -1;
    return set_hmac_key(hctx, keys[0].hmac) ? 1 : -1;
  }
  for (int k = 0; k < 2; k++) {
    if (memcmp(key_name, keys[k].name, 16) != 0) continue;
    if (!set_hmac_key(hctx, keys[k].hmac)) return -1;
    if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, keys[k].aes, iv) != 1) return -1;
    return k == 0 ? 1 : 2;  // 2: the previous key: resume, and issue a ticket under the current one
  }
  return 0;  // an unknown or dropped key: a full handshake
}

// After a ticket decrypted (both TLS versions): with client certificates
// required, a session without one is not resumed, whatever its session-id
// context says (a defence in depth: set_session_context() already keeps
// sessions of another configuration out). The other statuses keep OpenSSL's
// own handling: a new ticket after a full handshake, or the error.
SSL_TICKET_RETURN on_ticket_decrypted(SSL* s, SSL_SESSION* sess, const unsigned char* /*keyname*/,
                                      size_t /*keyname_len*/, SSL_TICKET_STATUS status, void* /*arg*/) {
  switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
      if (context_of(s)->requires_client_cert() && !SSL_SESSION_get0_peer(sess))
        return SSL_TICKET_RETURN_IGNORE_RENEW;
      return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
    case SSL_TICKET_EMPTY:
    case SSL_TICKET_NO_DECRYPT:
      return SSL_TICKET_RETURN_IGNORE_RENEW;
    default:
      return SSL_TICKET_RETURN_ABORT;
  }
}

using Sha256 = std::array<unsigned char, 32>;

// The CA certificates and CRLs a context verifies clients against, each as
// its SHA-256, sorted (the store's own order is not part of what it says).
bool store_digests(X509_STORE* store, std::vector<Sha256>* out) {
  STACK_OF(X509_OBJECT)* objs = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
    X509_OBJECT* o = sk_X509_OBJECT_value(objs, i);
    Sha256 d{};
    unsigned n = 0;
    X509* x = X509_OBJECT_get0_X509(o);
    X509_CRL* crl = X509_OBJECT_get0_X509_CRL(o);
    bool ok = x ? X509_digest(x, EVP_sha256(), d.data(), &n) == 1
                : crl ? X509_CRL_digest(crl, EVP_sha256(), d.data(), &n) == 1 : true;
    if (!ok || (n && n != d.size())) return false;
    if (n) out->push_back(d);
  }
  std::sort(out->begin(), out->end());
  return true;
}

bool read_file(const std::string& path, std::string* out, std::string* err) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  if (in) ss << in.rdbuf();
  if (!in) {
    *err = path + ": cannot read: " + strerror(errno);
    return false;
  }
  *out = ss.str();
  return true;
}

// Paste's `ssl_pem = *`: an ECDSA P-256 key and a self-signed certificate
// for localhost, 127.0.0.1 and ::1, valid a year, made at every start.
bool make_self_signed(SSL_CTX* ctx, std::string* err) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  bool ok = key && x;
  if (ok) {
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    ok = X509_set_version(x, 2) && bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
         X509_gmtime_adj(X509_getm_notBefore(x), -3600) && X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
    BN_free(bn);
    X509_NAME* name = X509_get_subject_name(x);
    ok = ok &&
         X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                    (const unsigned char*)"pasture development certificate (self-signed)", -1, -1, 0) &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char*)"localhost", -1, -1, 0) &&
         X509_set_issuer_name(x, name) && X509_set_pubkey(x, key);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    ok = ok && san && X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0 && SSL_CTX_use_certificate(ctx, x) == 1 &&
         SSL_CTX_use_PrivateKey(ctx, key) == 1;
  }
  if (!ok) *err = "ssl_pem = *: cannot make the self-signed certificate: " + ssl_reason();
  X509_free(x);
  EVP_PKEY_free(key);
  return ok;
}

}  // namespace

std::unique_ptr<TlsContext> TlsContext::build(const conf::TlsSettings& s, const Options& o, std::string* err) {
  std::unique_ptr<TlsContext> tc(new TlsContext);
  tc->opts_ = o;
  tc->client_subject_header_ = s.client_subject_header;
  tc->verify_clients_ = s.client_certs != conf::ClientCerts::None;
  tc->require_client_cert_ = s.client_certs == conf::ClientCerts::Required;
  size_t n = s.self_signed ? 1 : s.certs.size();
  if (n == 0) {
    *err = "TLS without a certificate";
    return nullptr;
  }
  ERR_clear_error();
  for (size_t i = 0; i < n; i++) {
    auto cert = std::make_unique<Cert>();
    SSL_CTX* ctx = cert->ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
      *err = "SSL_CTX_new: " + ssl_reason();
      return nullptr;
    }
    SSL_CTX_set_app_data(ctx, tc.get());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    // Idle connections give their record buffers back (as nginx does):
    // keep-alive connections are mostly idle.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    const std::string& ciphers = s.ciphers.empty() ? std::string(conf::kTlsDefaultCiphers) : s.ciphers;
    if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
      *err = "ciphers '" + ciphers + "': " + ssl_reason();
      return nullptr;
    }
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
      *err = "key exchange groups: " + ssl_reason();
      return nullptr;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_timeout(ctx, o.ticket_lifetime_s);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket);
    SSL_CTX_set_session_ticket_cb(ctx, nullptr, on_ticket_decrypted, nullptr);
    if (!o.tickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
    if (s.self_signed) {
      if (!make_self_signed(ctx, err)) return nullptr;
    } else {
      const conf::TlsCertificate& c = s.certs[i];
      if (SSL_CTX_use_certificate_chain_file(ctx, c.cert_file.c_str()) != 1) {
        *err = c.cert_file + ": " + ssl_reason();
        return nullptr;
      }
      if (SSL_CTX_use_PrivateKey_file(ctx, c.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        *err = c.key_file + ": " + (mismatch ? "the key does not match the certificate in " + c.cert_file : ssl_reason());
        ERR_clear_error();
        return nullptr;
      }
      if (SSL_CTX_check_private_key(ctx) != 1) {
        *err = c.key_file + ": the key does not match the certificate in " + c.cert_file;
        ERR_clear_error();
        return nullptr;
      }
      if (!c.ocsp_file.empty() && !read_file(c.ocsp_file, &cert->ocsp, err)) return nullptr;
    }
    cert->x509 = SSL_CTX_get0_certificate(ctx);
    SSL_CTX_set_tlsext_status_cb(ctx, on_status);
    SSL_CTX_set_tlsext_status_arg(ctx, cert.get());
    if (tc->verify_clients_) {
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_certs.c_str());
      if (!names || SSL_CTX_load_verify_locations(ctx, s.ca_certs.c_str(), nullptr) != 1) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        *err = s.ca_certs + ": " + ssl_reason();
        return nullptr;
      }
      SSL_CTX_set_client_CA_list(ctx, names);
      int mode = SSL_VERIFY_PEER;
      if (s.client_certs == conf::ClientCerts::Required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_CTX_set_verify(ctx, mode, nullptr);
      SSL_CTX_set_verify_depth(ctx, kVerifyDepth);
    }
    tc->certs_.push_back(std::move(cert));
  }
  if (!tc->set_session_context(err)) return nullptr;
  SSL_CTX_set_tlsext_servername_callback(tc->certs_[0]->ctx, on_servername);
  SSL_CTX_set_tlsext_servername_arg(tc->certs_[0]->ctx, tc.get());
  return tc;
}

TlsContext::~TlsContext() = default;

// One digest for all the certificates' SSL_CTXs: SNI may switch a connection
// to another of them after OpenSSL looked at a TLS 1.2 ticket, and a session
// made on one certificate may resume on another of the same context (as
// before). Each context's own CA store goes in (each loaded ca_certs itself).
bool TlsContext::set_session_context(std::string* err) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1;
  auto add = [&](const void* p, size_t n) { ok = ok && EVP_DigestUpdate(md, p, n) == 1; };
  static const char kTag[] = "pasture session context 1";
  add(kTag, sizeof kTag);
  const uint32_t mode = verify_clients_ ? (require_client_cert_ ? 2 : 1) : 0, depth = kVerifyDepth;
  add(&mode, sizeof mode);
  add(&depth, sizeof depth);
  for (const auto& c : certs_) {
    Sha256 d{};
    unsigned n = 0;
    ok = ok && X509_digest(c->x509, EVP_sha256(), d.data(), &n) == 1;
    add(d.data(), d.size());
    std::vector<Sha256> cas;
    if (verify_clients_) ok = ok && store_digests(SSL_CTX_get_cert_store(c->ctx), &cas);
    const uint64_t count = cas.size();
    add(&count, sizeof count);
    for (const Sha256& ca : cas) add(ca.data(), ca.size());
  }
  Sha256 out{};
  unsigned n = 0;
  ok = ok && EVP_DigestFinal_ex(md, out.data(), &n) == 1 && n == out.size();
  EVP_MD_CTX_free(md);
  for (const auto& c : certs_)
    ok = ok && SSL_CTX_set_session_id_context(c->ctx, out.data(), (unsigned)out.size()) == 1;
  if (!ok) {
    *err = "session-id context: " + ssl_reason();
    return false;
  }
  session_context_.assign(reinterpret_cast<const char*>(out.data()), out.size());
  return true;
}

void TlsContext::set_ticket_keys(shm::TicketKeys* keys) {
  opts_.tickets = keys;
  for (const auto& c : certs_) {
    if (keys)
      SSL_CTX_clear_options(c->ctx, SSL_OP_NO_TICKET);
    else
      SSL_CTX_set_options(c->ctx, SSL_OP_NO_TICKET);
  }
}

SSL* TlsContext::new_ssl() const { return SSL_new(certs_[0]->ctx); }

}  // namespace pasture::worker
