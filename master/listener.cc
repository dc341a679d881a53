#include "master/listener.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pasture::master {
namespace {

bool bind_one(const conf::Listener& l, uint32_t backlog, bool reuse_port, int* fd_out,
              std::string* err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(l.port);
  const char* host = l.host.empty() || l.host == "*" ? nullptr : l.host.c_str();
  int gai = getaddrinfo(host, port.c_str(), &hints, &res);
  if (gai != 0) {
    *err = "cannot resolve listen address " + l.host + ": " + gai_strerror(gai);
    return false;
  }
  int fd = -1;
  std::string last;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = std::string("socket() failed: ") + strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // reuse_port: workers bind their own sockets to the same address.
    if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    // Accepted sockets inherit TCP_NODELAY on Linux: one setsockopt here
    // instead of one per connection.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, (int)backlog) == 0) break;
    last = std::string(strerror(errno));
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    *err = "cannot listen on " + l.url().substr(7) + ": " + last;
    return false;
  }
  *fd_out = fd;
  return true;
}

}  // namespace

bool bind_listeners(const conf::ServerSettings& s, std::vector<BoundListener>* out,
                    std::string* err) {
  for (const conf::Listener& l : s.listen) {
    BoundListener b;
    b.cfg = l;
    if (!bind_one(l, s.backlog, s.reuse_port, &b.fd, err)) {
      if (l.loc.line) *err = l.loc.str() + ": " + *err;
      for (auto& o : *out) ::close(o.fd);
      out->clear();
      return false;
    }
    out->push_back(b);
  }
  return true;
}

}  // namespace pasture::master
