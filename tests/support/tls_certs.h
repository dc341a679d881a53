// Certificates for the TLS tests, made in memory with OpenSSL (ECDSA P-256,
// fast): a CA, and leaf certificates it signs (servers with DNS names,
// clients with a subject).
#pragma once

#include <string>
#include <vector>

namespace pasture::test {

struct TestCert {
  std::string cert_pem;  // the leaf certificate
  std::string key_pem;   // its private key (PKCS#8 PEM)
};

class TestCa {
 public:
  explicit TestCa(const std::string& common_name = "pasture test CA");
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  // A certificate for `dns_names` (subjectAltName; the first is also the
  // CN; "IP:127.0.0.1" names an IP address instead), or for a client whose subject is CN=common_name,O=organization.
  // `days` < 0 makes one that expired that many days ago.
  TestCert server(const std::vector<std::string>& dns_names, int days = 30) const;
  TestCert client(const std::string& common_name, const std::string& organization = "pasture tests") const;
  const std::string& cert_pem() const { return cert_pem_; }
  // A successful (empty) OCSP response signed by the CA, DER: what a
  // stapling file holds.
  std::string ocsp_der() const;

 private:
  TestCert issue(const std::string& cn, const std::string& org, const std::string& san, bool client, int days) const;
  void* key_ = nullptr;   // EVP_PKEY*
  void* cert_ = nullptr;  // X509*
  std::string cert_pem_;
};

}  // namespace pasture::test
