#include "master/listener.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace pasture::master {

int resolve_listener(const conf::Listener& l, addrinfo** res) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  std::string port = std::to_string(l.port);
  const char* host = l.host.empty() || l.host == "*" ? nullptr : l.host.c_str();
  *res = nullptr;
  int gai = getaddrinfo(host, port.c_str(), &hints, res);
  if (gai == 0 && !*res) gai = EAI_NONAME;
  return gai;
}

namespace {

bool bind_one(const conf::Listener& l, uint32_t backlog, bool reuse_port, uid_t owner, int* fd_out,
              std::string* err) {
  addrinfo* res = nullptr;
  int gai = resolve_listener(l, &res);
  if (gai != 0) {
    *err = "cannot resolve listen address " + l.host + ": " + gai_strerror(gai);
    return false;
  }
  int fd = -1;
  std::string last;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    // A socket belongs to the fsuid that created it, and the kernel lets
    // SO_REUSEPORT sockets share a port only when they belong to the same
    // user: the workers' own sockets, made once the master runs as `user`.
    int was = owner != (uid_t)-1 ? setfsuid(owner) : -1;
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (was != -1) setfsuid((uid_t)was);
    if (fd < 0) {
      last = std::string("socket() failed: ") + strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // reuse_port: workers bind their own sockets to the same address.
    if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
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

// Is anyone accepting on the unix socket at `sun`? A non-blocking connect:
// EAGAIN (full backlog) counts as alive, ECONNREFUSED as a stale file.
bool unix_socket_alive(const sockaddr_un& sun, socklen_t len) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;  // cannot tell: do not remove it
  bool alive = connect(fd, reinterpret_cast<const sockaddr*>(&sun), len) == 0 || errno == EAGAIN ||
               errno == EINPROGRESS;
  ::close(fd);
  return alive;
}

// `listen = unix:/path`, waitress's `unix_socket = /path`. A socket file left
// by a process that died is replaced; one somebody still accepts on is not
// (a second instance must not steal the first one's clients).
bool bind_unix(const conf::Listener& l, uint32_t backlog, int* fd_out, ino_t* ino_out, std::string* err) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  const std::string& path = l.unix_path;
  if (path.size() >= sizeof sun.sun_path) {
    *err = "cannot listen on unix:" + path + ": path too long";
    return false;
  }
  memcpy(sun.sun_path, path.data(), path.size());
  socklen_t len = (socklen_t)(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket(AF_UNIX) failed: ") + strerror(errno);
    return false;
  }
  auto fail = [&](const std::string& why) {
    *err = "cannot listen on unix:" + path + ": " + why;
    ::close(fd);
    return false;
  };
  // The file is created with unix_perms (umask), then chmod'ed to them
  // exactly before listen(): nobody connects while the mode is wrong.
  mode_t old_mask = umask(~l.unix_perms & 0777);
  int r = bind(fd, reinterpret_cast<sockaddr*>(&sun), len);
  if (r != 0 && errno == EADDRINUSE) {
    int e = errno;
    struct stat st;
    if (lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
      umask(old_mask);
      return fail("the path exists and is not a socket");
    }
    if (unix_socket_alive(sun, len)) {
      umask(old_mask);
      return fail("another process is listening on it (is pasture already running?)");
    }
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      e = errno;
      umask(old_mask);
      return fail(std::string("stale socket file, unlink() failed: ") + strerror(e));
    }
    r = bind(fd, reinterpret_cast<sockaddr*>(&sun), len);
  }
  int bind_errno = errno;
  umask(old_mask);
  if (r != 0) return fail(std::string("bind() failed: ") + strerror(bind_errno));
  if (chmod(path.c_str(), l.unix_perms) != 0) {
    int e = errno;
    unlink(path.c_str());
    return fail(std::string("chmod() failed: ") + strerror(e));
  }
  struct stat st;
  *ino_out = stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  if (listen(fd, (int)backlog) != 0) {
    int e = errno;
    unlink(path.c_str());
    return fail(std::string("listen() failed: ") + strerror(e));
  }
  *fd_out = fd;
  return true;
}

}  // namespace

bool remove_unix_socket(const std::string& path, ino_t ino) {
  struct stat st;
  if (path.empty() || lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != ino) return false;
  return unlink(path.c_str()) == 0;
}

bool bind_listeners(const conf::ServerSettings& s, std::vector<BoundListener>* out,
                    std::string* err, uid_t reuse_port_owner) {
  for (const conf::Listener& l : s.listen) {
    BoundListener b;
    b.cfg = l;
    bool ok = l.unix_path.empty() ? bind_one(l, s.backlog, s.reuse_port, reuse_port_owner, &b.fd, err)
                                  : bind_unix(l, s.backlog, &b.fd, &b.unix_ino, err);
    if (!ok) {
      if (l.loc.line) *err = l.loc.str() + ": " + *err;
      for (auto& o : *out) {
        ::close(o.fd);
        remove_unix_socket(o.cfg.unix_path, o.unix_ino);
      }
      out->clear();
      return false;
    }
    out->push_back(b);
  }
  return true;
}

}  // namespace pasture::master
