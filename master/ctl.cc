// `pasture ctl` and `pasture status`: the admin socket's client.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "conf/error.h"
#include "conf/load.h"
#include "master/commands.h"

namespace pasture::master {

int cmd_ctl(const conf::LoadOptions& opts, const std::vector<std::string>& words) {
  conf::Site site;
  try {
    site = conf::load_site(opts);
  } catch (const conf::ConfigError& e) {
    fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fprintf(stderr, "pasture: %s\n", e.what());
    return 2;
  }
  const std::string& path = site.server.admin_socket;
  if (path.empty()) {
    fprintf(stderr, "pasture: %s has no admin_socket in its server section\n", opts.config.c_str());
    return 1;
  }
  std::string line;
  for (const std::string& w : words) line += (line.empty() ? "" : " ") + w;
  line += "\n";
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) {
    fprintf(stderr, "pasture: admin_socket path too long: %s\n", path.c_str());
    return 1;
  }
  memcpy(sun.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) < 0) {
    fprintf(stderr, "pasture: connect(%s) failed: %s (is the server running?)\n", path.c_str(), strerror(errno));
    if (fd >= 0) close(fd);
    return 1;
  }
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "pasture: send(%s) failed: %s\n", path.c_str(), strerror(errno));
      close(fd);
      return 1;
    }
    sent += (size_t)n;
  }
  std::string answer;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buf, (size_t)n);
  }
  close(fd);
  if (answer.empty()) {
    fprintf(stderr, "pasture: no answer on %s\n", path.c_str());
    return 1;
  }
  bool error = answer.rfind("error:", 0) == 0;
  fputs(answer.c_str(), error ? stderr : stdout);
  return error ? 1 : 0;
}

}  // namespace pasture::master
