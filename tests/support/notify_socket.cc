#include "tests/support/notify_socket.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "tests/support/temp_dir.h"

namespace pasture::test {

NotifySocket::NotifySocket() : path_(test_temp_dir() + "/notify.sock") {
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path_.c_str());
  int on = 1;
  if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
    throw std::runtime_error("notify socket " + path_ + ": " + strerror(errno));
}

NotifySocket::~NotifySocket() {
  if (fd_ >= 0) close(fd_);
}

const std::vector<NotifySocket::Message>& NotifySocket::drain() {
  for (;;) {
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n < 0) return messages_;
    Message m{0, std::string(buf, n)};
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        memcpy(&cred, CMSG_DATA(c), sizeof cred);
        m.pid = cred.pid;
      }
    messages_.push_back(std::move(m));
  }
}

bool NotifySocket::got(pid_t pid, const std::string& needle) {
  for (const Message& m : drain())
    if ((pid == 0 || m.pid == pid) && m.text.find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace pasture::test
