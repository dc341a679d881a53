// ClientPeer (response_sink.h): a client's address, kept in binary.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>

#include "worker/response_sink.h"

namespace pasture::worker {
namespace {

// Dotted quad of the 4 bytes at B into OUT (at least 16 bytes): what
// inet_ntop writes, without its sprintf (1,700 instructions, a tenth of a
// request's when every request is a new connection: bench --shapes close).
void format_ipv4(const uint8_t* b, char* out) {
  for (int i = 0; i < 4; i++) {
    unsigned v = b[i];
    if (v >= 100) *out++ = (char)('0' + v / 100);
    if (v >= 10) *out++ = (char)('0' + v / 10 % 10);
    *out++ = (char)('0' + v % 10);
    *out++ = i < 3 ? '.' : 0;
  }
}

}  // namespace

void ClientPeer::set(const sockaddr* sa) {
  family = 0;
  if (!sa) return;
  if (sa->sa_family == AF_INET) {
    memcpy(addr, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    family = AF_INET;
  } else if (sa->sa_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      memcpy(addr, &s6->sin6_addr.s6_addr[12], 4);
      family = AF_INET;
    } else {
      memcpy(addr, &s6->sin6_addr, 16);
      family = AF_INET6;
    }
  } else if (sa->sa_family == AF_UNIX) {
    family = AF_UNIX;
  }
}

void ClientPeer::format(char* out) const {
  static_assert(kTextLen >= INET6_ADDRSTRLEN && kTextLen >= 16);
  out[0] = 0;
  if (family == AF_INET)
    format_ipv4(addr, out);
  else if (family == AF_INET6)
    inet_ntop(AF_INET6, addr, out, kTextLen);
  else if (family == AF_UNIX)
    memcpy(out, "unix:", 6);
}

}  // namespace pasture::worker
