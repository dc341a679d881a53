#include "tests/support/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pasture::test {

namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

void set_err(std::string* err, const std::string& what) {
  if (err) *err = what + ": " + std::strerror(errno);
}

int to_poll_ms(Millis t) { return t.count() < 0 ? 0 : static_cast<int>(t.count()); }

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string find_header(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return "";
}

size_t count_header(const Headers& headers, std::string_view name) {
  size_t n = 0;
  for (const auto& kv : headers)
    if (iequals(kv.first, name)) ++n;
  return n;
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Fd listen_loopback(uint16_t port, std::string* err) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    set_err(err, "socket()");
    return {};
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa = loopback(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    set_err(err, "bind(127.0.0.1:" + std::to_string(port) + ")");
    return {};
  }
  if (::listen(fd.get(), 128) != 0) {
    set_err(err, "listen()");
    return {};
  }
  return fd;
}

Fd listen_on(const std::string& ip, uint16_t port, std::string* err) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  socklen_t len = 0;
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    if (err) *err = "not an IP address: " + ip;
    return {};
  }
  Fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    set_err(err, "socket()");
    return {};
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    set_err(err, "bind(" + ip + ":" + std::to_string(port) + ")");
    return {};
  }
  if (::listen(fd.get(), 128) != 0) {
    set_err(err, "listen()");
    return {};
  }
  return fd;
}

uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

Fd connect_loopback(uint16_t port, Millis timeout, std::string* err) {
  // Non-blocking connect so the timeout applies; loopback normally completes
  // or is refused immediately.
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    set_err(err, "socket()");
    return {};
  }
  sockaddr_in sa = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (errno != EINPROGRESS) {
      set_err(err, "connect(127.0.0.1:" + std::to_string(port) + ")");
      return {};
    }
    if (wait_fd(fd.get(), POLLOUT, timeout) != IoResult::kOk) {
      if (err) *err = "connect(127.0.0.1:" + std::to_string(port) + "): timed out";
      return {};
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (so_error != 0) {
      errno = so_error;
      set_err(err, "connect(127.0.0.1:" + std::to_string(port) + ")");
      return {};
    }
  }
  // TCP self-connect: with no listener on an ephemeral-range port, the
  // kernel may pick that very port as our source and "connect" us to
  // ourselves. That is no server.
  if (local_port(fd.get()) == port) {
    if (err) *err = "connect(127.0.0.1:" + std::to_string(port) + "): connected to itself";
    return {};
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

IoResult wait_fd(int fd, short events, Millis timeout, int wake_fd) {
  pollfd p[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
  const nfds_t n = wake_fd >= 0 ? 2 : 1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Round up, and re-poll after an early wakeup, so delays built on this
    // are never short.
    auto left = std::chrono::ceil<Millis>(deadline - std::chrono::steady_clock::now());
    int r = ::poll(p, n, to_poll_ms(left));
    if (r < 0) {
      if (errno == EINTR) continue;
      return IoResult::kError;
    }
    if (r == 0) {
      if (std::chrono::steady_clock::now() < deadline) continue;
      return IoResult::kTimeout;
    }
    if (n == 2 && p[1].revents) return IoResult::kWoken;
    // POLLHUP/POLLERR count as ready: the following read/write reports them.
    return IoResult::kOk;
  }
}

IoResult send_all(int fd, std::string_view data, Millis timeout, int wake_fd) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      IoResult w = wait_fd(fd, POLLOUT, timeout, wake_fd);
      if (w != IoResult::kOk) return w;
      continue;
    }
    return (errno == EPIPE || errno == ECONNRESET) ? IoResult::kClosed : IoResult::kError;
  }
  return IoResult::kOk;
}

IoResult recv_some(int fd, std::string& out, Millis timeout, int wake_fd, size_t max) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const size_t old = out.size();
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    IoResult w = wait_fd(fd, POLLIN, left, wake_fd);
    if (w != IoResult::kOk) return w;
    out.resize(old + max);
    ssize_t n = ::recv(fd, out.data() + old, max, MSG_DONTWAIT);
    const int e = errno;
    out.resize(old + static_cast<size_t>(n > 0 ? n : 0));
    if (n > 0) return IoResult::kOk;
    if (n == 0 || e == ECONNRESET) return IoResult::kClosed;
    if (e != EINTR && e != EAGAIN && e != EWOULDBLOCK) return IoResult::kError;
  }
}

IoResult recv_to_fin(int fd, std::string& out, Millis timeout) {
  char buf[64 * 1024];
  for (;;) {
    IoResult w = wait_fd(fd, POLLIN, timeout);
    if (w != IoResult::kOk) return w;
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return IoResult::kClosed;
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return IoResult::kError;
  }
}

const char* to_string(IoResult r) {
  switch (r) {
    case IoResult::kOk: return "ok";
    case IoResult::kTimeout: return "timeout";
    case IoResult::kClosed: return "closed";
    case IoResult::kError: return "error";
    case IoResult::kWoken: return "stopped";
  }
  return "?";
}

Fd connect_slow_reader(uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int small = 4096;
  if (setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) != 0) return Fd();
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Fd();
  return fd;
}

ReadToEnd read_to_end(int fd, Millis timeout) {
  ReadToEnd out;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{(time_t)(timeout.count() / 1000), (suseconds_t)(timeout.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[64 * 1024];
  ssize_t r;
  while ((r = ::recv(fd, buf, sizeof buf, 0)) > 0) out.got.append(buf, (size_t)r);
  out.end = r < 0 ? errno : 0;
  return out;
}

std::string ReadToEnd::how() const {
  return (end == 0 ? std::string("a clean end") : std::string(strerror(end))) + " after " + std::to_string(got.size()) +
         " bytes";
}

}  // namespace pasture::test
