#include "common/sticky_cookie.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

namespace pasture::lb {
namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  return out;
}

std::string mac_hex(std::string_view secret, std::string_view id) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), (int)secret.size(),
       reinterpret_cast<const unsigned char*>(id.data()), id.size(), md, &len);
  return hex(md, len);
}

}  // namespace

bool equal_ct(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string sticky_server_id(std::string_view server) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(server.data()), server.size(), md);
  return hex(md, kStickyIdLen / 2);
}

std::string make_sticky_cookie(std::string_view secret, std::string_view server) {
  std::string id = sticky_server_id(server);
  return id + "." + mac_hex(secret, id);
}

int verify_sticky_cookie(std::string_view secret, std::string_view value,
                         const std::vector<std::string>& servers) {
  if (secret.empty() || value.size() != kStickyCookieLen || value[kStickyIdLen] != '.') return -1;
  std::string_view id = value.substr(0, kStickyIdLen);
  if (!equal_ct(value.substr(kStickyIdLen + 1), mac_hex(secret, id))) return -1;
  for (size_t i = 0; i < servers.size(); i++) {
    if (sticky_server_id(servers[i]) == id) return (int)i;
  }
  return -1;
}

}  // namespace pasture::lb
