// An LD_PRELOAD shim for one test (ClientFlow.AnAnswerCutWhenEpollRefuses
// WriteSpaceEndsInAReset): epoll_ctl(EPOLL_CTL_MOD) adding EPOLLOUT fails with ENOMEM,
// the one path of EdgeSocket::write_out that no descriptor in the set can
// reach otherwise. Everything else goes to libc's epoll_ctl.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/epoll.h>

int epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) {
  static int (*real)(int, int, int, struct epoll_event*);
  if (!real) real = (int (*)(int, int, int, struct epoll_event*))dlsym(RTLD_NEXT, "epoll_ctl");
  // Only pasture's own (EdgeSocket adding EPOLLOUT to an edge-triggered
  // socket): libuv's level-triggered watchers abort the process on failure.
  if (op == EPOLL_CTL_MOD && ev && (ev->events & EPOLLOUT) && (ev->events & EPOLLET)) {
    errno = ENOMEM;
    return -1;
  }
  return real(epfd, op, fd, ev);
}
