// ip_hash: the hash balancer keyed on the client address. Like nginx, an IPv4
// address counts by its first three octets (a /24 keeps the clients of one
// NAT pool or office together), unless hash_whole_ip; an IPv6 address counts
// whole; an IPv4-mapped IPv6 address counts as IPv4. Uses the pool's hash
// table (`consistent =`, Maglev by default), so a change of servers moves
// about 1/N of the clients, unlike nginx's ip_hash.
#include <arpa/inet.h>

#include <cstring>

#include "common/balancer.h"

namespace pasture::lb {
namespace {

constexpr uint64_t kIpSeed = 0x7061737475726532ull;  // "pasture2"

class IpHash final : public Balancer {
 public:
  int pick(const RequestView& req, PoolState& pool, uint64_t now_ms) override {
    if (req.client_addr.empty()) return round_robin_pick(pool, now_ms);
    return hash_table_pick(pool, ip_hash_key(req.client_addr, pool.hash_whole_ip), now_ms);
  }
};

// Dotted-quad IPv4 without inet_pton's generality (leading zeros and
// the like fall through to it); the common case costs a few ns.
bool parse_ipv4(std::string_view s, unsigned char out[4]) {
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part && (i >= s.size() || s[i++] != '.')) return false;
    unsigned v = 0, digits = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9' && digits < 4; i++, digits++) {
      v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (digits == 0 || digits > 3 || v > 255) return false;
    out[part] = (unsigned char)v;
  }
  return i == s.size();
}

}  // namespace

uint64_t ip_hash_key(std::string_view addr, bool whole_ip) {
  unsigned char v4[4];
  if (parse_ipv4(addr, v4)) {
    return hash64({reinterpret_cast<const char*>(v4), whole_ip ? 4u : 3u}, kIpSeed);
  }
  char text[INET6_ADDRSTRLEN];
  if (addr.size() >= sizeof text) return hash64(addr, kIpSeed);
  std::memcpy(text, addr.data(), addr.size());
  text[addr.size()] = 0;
  unsigned char bytes[16];
  const char* b = reinterpret_cast<const char*>(bytes);
  if (inet_pton(AF_INET, text, bytes) == 1) return hash64({b, whole_ip ? 4u : 3u}, kIpSeed);
  if (inet_pton(AF_INET6, text, bytes) == 1) {
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(bytes, v4mapped, 12) == 0) return hash64({b + 12, whole_ip ? 4u : 3u}, kIpSeed);
    return hash64({b, 16}, kIpSeed);
  }
  return hash64(addr, kIpSeed);
}

std::unique_ptr<Balancer> make_ip_hash() { return std::make_unique<IpHash>(); }

}  // namespace pasture::lb
