#include "conf/tls_check.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "conf/error.h"

namespace pasture::conf {

const char kTlsDefaultCiphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

namespace {

[[noreturn]] void bad(const SourceLoc& loc, const std::string& msg) { throw ConfigError(loc.file, loc.line, msg); }

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string ssl_reason() {
  unsigned long e = ERR_peek_last_error();
  const char* r = e ? ERR_reason_error_string(e) : nullptr;
  ERR_clear_error();
  return r ? r : "no PEM data";
}

// Opens `path` for reading, or a ConfigError naming it and errno.
BioPtr open_file(const std::string& path, const SourceLoc& loc, const std::string& what) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) bad(loc, what + " " + path + ": " + strerror(errno));
  if (!S_ISREG(st.st_mode)) bad(loc, what + " " + path + ": not a regular file");
  BioPtr bio(BIO_new_file(path.c_str(), "rb"));
  if (!bio) {
    ERR_clear_error();
    bad(loc, what + " " + path + ": cannot read: " + strerror(errno));
  }
  return bio;
}

// No passphrase prompt on a terminal: an encrypted key is an error.
int no_passphrase(char*, int, int, void*) { return -1; }

std::vector<std::string> dns_names(X509* x) {
  std::vector<std::string> out;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
    if (g->type == GEN_DNS) {
      const ASN1_STRING* s = g->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), (size_t)ASN1_STRING_length(s));
    } else if (g->type == GEN_IPADD && (g->d.iPAddress->length == 4 || g->d.iPAddress->length == 16)) {
      char buf[64];
      const unsigned char* a = g->d.iPAddress->data;
      if (g->d.iPAddress->length == 4) {
        snprintf(buf, sizeof buf, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
        out.push_back(std::string("IP ") + buf);
      } else {
        out.push_back("IP (IPv6)");
      }
    }
  }
  GENERAL_NAMES_free(sans);
  if (out.empty()) {
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    if (n > 0) out.emplace_back(cn, (size_t)n);
  }
  return out;
}

std::string not_after_text(X509* x) {
  BioPtr mem(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(mem.get(), X509_get0_notAfter(x));
  char* p = nullptr;
  long n = BIO_get_mem_data(mem.get(), &p);
  return std::string(p, (size_t)std::max(0L, n));
}

void check_certificate(TlsCertificate& c, std::vector<std::string>* notices) {
  X509Ptr cert;
  {
    BioPtr in = open_file(c.cert_file, c.loc, "certificate");
    cert.reset(PEM_read_bio_X509(in.get(), nullptr, no_passphrase, nullptr));
    if (!cert) bad(c.loc, c.cert_file + ": not a PEM certificate (" + ssl_reason() + ")");
  }
  struct stat st;
  if (stat(c.key_file.c_str(), &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP))) {
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", (unsigned)(st.st_mode & 07777));
    bad(c.key_loc, "private key " + c.key_file + " is " +
                       ((st.st_mode & S_IROTH) ? "readable by others" : "writable by others than its owner") +
                       " (mode " + mode + "): chmod 600 it, or 640 with a group such as ssl-cert");
  }
  PkeyPtr key;
  {
    BioPtr in = open_file(c.key_file, c.key_loc, "private key");
    key.reset(PEM_read_bio_PrivateKey(in.get(), nullptr, no_passphrase, nullptr));
    if (!key) {
      ERR_clear_error();
      // OpenSSL's reason ("unsupported", "no start line") says little: say
      // whether the key is there but encrypted.
      (void)BIO_reset(in.get());
      char line[256];
      bool encrypted = false;
      while (BIO_gets(in.get(), line, sizeof line) > 0)
        if (strstr(line, "ENCRYPTED")) encrypted = true;
      if (encrypted)
        bad(c.key_loc, c.key_file + ": the private key is encrypted with a passphrase; pasture reads keys without one "
                                    "(openssl pkey -in KEY -out KEY.plain)");
      bad(c.key_loc, c.key_file + ": no PEM private key in it" +
                         (c.key_file == c.cert_file ? std::string(" (the certificate's key must follow it in the same "
                                                                  "file, or be named by keyfile / tls_key)")
                                                    : std::string()));
    }
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    bad(c.key_loc, "the private key in " + c.key_file + " does not match the certificate in " + c.cert_file);
  }
  c.names = dns_names(cert.get());
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0)
    notices->push_back(c.loc.str() + ": certificate " + c.cert_file + " expired on " + not_after_text(cert.get()));
  if (!c.ocsp_file.empty()) {
    BioPtr in = open_file(c.ocsp_file, c.ocsp_loc, "OCSP response");
    OCSP_RESPONSE* r = d2i_OCSP_RESPONSE_bio(in.get(), nullptr);
    int status = r ? OCSP_response_status(r) : -1;
    OCSP_RESPONSE_free(r);
    ERR_clear_error();
    if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL)
      bad(c.ocsp_loc, c.ocsp_file + (r ? ": not a successful OCSP response" : ": not a DER OCSP response"));
  }
}

// A PEM bundle of certificates to verify peers against (`what` names the key).
void check_ca_file(const std::string& path, const SourceLoc& loc, const std::string& what) {
  BioPtr in = open_file(path, loc, what);
  STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(in.get(), nullptr, no_passphrase, nullptr);
  int n = 0;
  for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++)
    if (sk_X509_INFO_value(infos, i)->x509) n++;
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  ERR_clear_error();
  if (n == 0) bad(loc, what + " " + path + ": no PEM certificate in it");
}

}  // namespace

void check_upstream_tls(UpstreamTls& t, std::vector<std::string>* notices) {
  ERR_clear_error();
  if (!t.ca_certs.empty()) check_ca_file(t.ca_certs, t.ca_loc, "tls_ca_certs");
  if (t.client_cert.empty()) return;
  TlsCertificate c;
  c.cert_file = t.client_cert;
  c.key_file = t.client_key.empty() ? t.client_cert : t.client_key;
  c.loc = t.client_cert_loc;
  c.key_loc = t.client_key.empty() ? t.client_cert_loc : t.client_key_loc;
  check_certificate(c, notices);
}

void check_tls_files(TlsSettings& tls, std::vector<std::string>* notices) {
  ERR_clear_error();
  if (tls.self_signed)
    notices->push_back(tls.loc.str() + ": ssl_pem = *: a self-signed certificate made at start, "
                                       "for development only (browsers will warn)");
  for (TlsCertificate& c : tls.certs) check_certificate(c, notices);
  if (!tls.ca_certs.empty()) check_ca_file(tls.ca_certs, tls.ca_loc, "ca_certs");
}

std::string check_cipher_list(const std::string& list) {
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) return "OpenSSL: " + ssl_reason();
  if (SSL_CTX_set_cipher_list(ctx.get(), list.c_str()) != 1) {
    ERR_clear_error();
    return "OpenSSL selects no TLS 1.2 cipher from '" + list + "'";
  }
  STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx.get());
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
    const SSL_CIPHER* c = sk_SSL_CIPHER_value(ciphers, i);
    int kx = SSL_CIPHER_get_kx_nid(c);
    if (kx == NID_kx_any) continue;  // a TLS 1.3 suite: always ephemeral
    if (kx != NID_kx_ecdhe)
      return std::string("'") + SSL_CIPHER_get_name(c) + "' has no forward secrecy (pasture takes ECDHE suites only)";
  }
  return "";
}

const char* client_certs_word(ClientCerts c) {
  switch (c) {
    case ClientCerts::None: return "none";
    case ClientCerts::Optional: return "optional";
    case ClientCerts::Required: return "required";
  }
  return "none";
}

}  // namespace pasture::conf
