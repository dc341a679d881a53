// An LD_PRELOAD shim for one test (ClientFlow.AnAnswerCutWhenEpollRefuses
// WriteSpaceEndsInAReset): every epoll_ctl(EPOLL_CTL_MOD) fails with ENOMEM,
// the one path of EdgeSocket::write_out that no descriptor in the set can
// reach otherwise. Everything else goes to libc's epoll_ctl.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/epoll.h>

int epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) {
  static int (*real)(int, int, int, struct epoll_event*);
  if (!real) real = (int (*)(int, int, int, struct epoll_event*))dlsym(RTLD_NEXT, "epoll_ctl");
  if (op == EPOLL_CTL_MOD) {
    errno = ENOMEM;
    return -1;
  }
  return real(epfd, op, fd, ev);
}
