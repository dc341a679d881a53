#include "tls_certs.h"

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <stdexcept>

namespace pasture::test {

namespace {

std::string pem_of(X509* x) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  std::string out(p, (size_t)n);
  BIO_free(b);
  return out;
}

std::string pem_of(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  std::string out(p, (size_t)n);
  BIO_free(b);
  return out;
}

void add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
  if (!e) throw std::runtime_error("X509V3_EXT_conf_nid " + value);
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

X509* new_cert(EVP_PKEY* key, const std::string& cn, const std::string& org, int days) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  unsigned char serial[8];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  if (days >= 0) {
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
  } else {
    X509_gmtime_adj(X509_getm_notBefore(x), (long)(days - 30) * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
  }
  X509_NAME* name = X509_get_subject_name(x);
  if (!org.empty()) X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char*)org.c_str(), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char*)cn.c_str(), -1, -1, 0);
  X509_set_pubkey(x, key);
  return x;
}

}  // namespace

TestCa::TestCa(const std::string& common_name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = new_cert(key, common_name, "", 30);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(x, x, NID_subject_key_identifier, "hash");
  X509_sign(x, key, EVP_sha256());
  key_ = key;
  cert_ = x;
  cert_pem_ = pem_of(x);
}

TestCa::~TestCa() {
  X509_free(static_cast<X509*>(cert_));
  EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
}

TestCert TestCa::issue(const std::string& cn, const std::string& org, const std::string& san, bool client,
                       int days) const {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* ca = static_cast<X509*>(cert_);
  X509* x = new_cert(key, cn, org, days);
  X509_set_issuer_name(x, X509_get_subject_name(ca));
  add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(x, ca, NID_ext_key_usage, client ? "clientAuth" : "serverAuth");
  add_ext(x, ca, NID_authority_key_identifier, "keyid");
  if (!san.empty()) add_ext(x, ca, NID_subject_alt_name, san);
  X509_sign(x, static_cast<EVP_PKEY*>(key_), EVP_sha256());
  TestCert out{pem_of(x), pem_of(key)};
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

TestCert TestCa::server(const std::vector<std::string>& dns_names, int days) const {
  std::string san;
  for (const auto& n : dns_names) san += (san.empty() ? "" : ",") + (n.rfind("IP:", 0) == 0 ? n : "DNS:" + n);
  return issue(dns_names.empty() ? "server" : dns_names[0], "", san, false, days);
}

TestCert TestCa::client(const std::string& common_name, const std::string& organization) const {
  return issue(common_name, organization, "", true, 30);
}

std::string TestCa::ocsp_der() const {
  OCSP_BASICRESP* bs = OCSP_BASICRESP_new();
  OCSP_basic_sign(bs, static_cast<X509*>(cert_), static_cast<EVP_PKEY*>(key_), EVP_sha256(), nullptr, OCSP_NOCERTS);
  OCSP_RESPONSE* r = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
  unsigned char* der = nullptr;
  int n = i2d_OCSP_RESPONSE(r, &der);
  std::string out(reinterpret_cast<char*>(der), n > 0 ? (size_t)n : 0);
  OPENSSL_free(der);
  OCSP_RESPONSE_free(r);
  OCSP_BASICRESP_free(bs);
  return out;
}

}  // namespace pasture::test
