#include "master/notify.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace pasture::master {
namespace {

std::vector<int> parse_fd_list(const char* s) {
  std::vector<int> out;
  while (s && *s) {
    char* end = nullptr;
    long fd = strtol(s, &end, 10);
    if (end == s) break;
    if (fd >= 0 && fcntl((int)fd, F_GETFD) >= 0) out.push_back((int)fd);
    s = *end == ',' ? end + 1 : end;
  }
  return out;
}

}  // namespace

bool sd_notify(const std::string& state) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return true;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof sa.sun_path) return false;
  memcpy(sa.sun_path, path, len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';  // abstract namespace
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  socklen_t sl = (socklen_t)(offsetof(sockaddr_un, sun_path) + len);
  ssize_t n = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                     reinterpret_cast<sockaddr*>(&sa), sl);
  close(fd);
  return n == (ssize_t)state.size();
}

void forget_notify_socket() { unsetenv("NOTIFY_SOCKET"); }

std::vector<int> sd_listen_fds() {
  std::vector<int> out;
  const char* pid = getenv("LISTEN_PID");
  const char* n = getenv("LISTEN_FDS");
  if (pid && n && atol(pid) == (long)getpid()) {
    int count = atoi(n);
    for (int i = 0; i < count; i++) {
      int fd = 3 + i;
      if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) continue;  // not open: ignore
      // Workers accept in batches until EAGAIN: a blocking socket would hang them.
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      out.push_back(fd);
    }
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return out;
}

std::vector<int> inherited_fds() {
  std::vector<int> out = parse_fd_list(getenv(kInheritEnv));
  for (int fd : out) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  unsetenv(kInheritEnv);
  return out;
}

int inherited_kick_fd(bool upgrade) {
  const char* s = getenv(kKickEnv);
  int fd = s && upgrade ? atoi(s) : -1;
  unsetenv(kKickEnv);
  if (fd <= 2 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return -1;
  // An eventfd, as the old master made it; without /proc, trusted as such.
  char link[64];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link, sizeof link - 1);
  if (n > 0 && std::string(link, (size_t)n) != "anon_inode:[eventfd]") return -1;
  return fd;
}

std::string socket_name(int fd) {
  sockaddr_storage ss{};
  socklen_t sl = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) < 0) return "";
  char host[INET6_ADDRSTRLEN] = "";
  unsigned port = 0;
  if (ss.ss_family == AF_INET) {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
    port = ntohs(s4->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_UNIX) {
    auto* su = reinterpret_cast<sockaddr_un*>(&ss);
    size_t n = sl > offsetof(sockaddr_un, sun_path) ? sl - offsetof(sockaddr_un, sun_path) : 0;
    std::string path(su->sun_path, strnlen(su->sun_path, n));
    return path.empty() || path[0] == 0 ? "" : "unix:" + path;
  }
  if (ss.ss_family == AF_INET6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
    port = ntohs(s6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "";
}

}  // namespace pasture::master
