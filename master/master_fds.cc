// Master, its descriptors across fork and exec: the children that never
// accept, and the binary upgrade that hands them to a new master.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/log.h"
#include "master/master.h"
#include "master/notify.h"

namespace pasture::master {

void Master::close_listeners_in_child() {
  for (const Socket& s : sockets_) close(s.fd);
  if (admin_.fd >= 0) close(admin_.fd);
  if (accept_kick_fd_ >= 0) close(accept_kick_fd_);
}

// nginx-style binary upgrade: start the (new) binary with our listen sockets;
// both masters serve until the operator stops the old one (TERM/QUIT).
void Master::upgrade_binary() {
  std::string exe = self_exe_;
  if (exe.size() > 10 && exe.compare(exe.size() - 10, 10, " (deleted)") == 0)
    exe.resize(exe.size() - 10);  // replaced on disk: run the new file at that path
  std::string fds;
  for (const Socket& s : sockets_) fds += (fds.empty() ? "" : ",") + std::to_string(s.fd);
  if (admin_.fd >= 0) fds += (fds.empty() ? "" : ",") + std::to_string(admin_.fd);
  pid_t pid = fork();
  if (pid < 0) {
    PLOG_ERROR("SIGUSR2: fork() failed: %s", strerror(errno));
    return;
  }
  if (pid == 0) {
    for (const Socket& s : sockets_) fcntl(s.fd, F_SETFD, 0);
    if (admin_.fd >= 0) fcntl(admin_.fd, F_SETFD, 0);
    setenv(kInheritEnv, fds.c_str(), 1);
    if (accept_kick_fd_ >= 0) {
      fcntl(accept_kick_fd_, F_SETFD, 0);
      setenv(kKickEnv, std::to_string(accept_kick_fd_).c_str(), 1);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> av;
    for (auto& a : argv_) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    execv(exe.c_str(), av.data());
    fprintf(stderr, "pasture: SIGUSR2: execv(%s) failed: %s\n", exe.c_str(), strerror(errno));
    _exit(127);
  }
  upgrade_pid_ = pid;
  PLOG_NOTICE("SIGUSR2: started new master %s, pid %d, with the listen sockets", exe.c_str(),
              (int)pid);
}

}  // namespace pasture::master
