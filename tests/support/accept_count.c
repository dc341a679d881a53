// An LD_PRELOAD shim for one integration test: every accept4() that finds
// the queue empty (EAGAIN) appends one byte to the file named by
// $PASTURE_TEST_ACCEPT_LOG, so the test can count the accept4() calls a
// worker makes for nothing.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  static int (*real)(int, struct sockaddr*, socklen_t*, int);
  if (!real) real = (int (*)(int, struct sockaddr*, socklen_t*, int))dlsym(RTLD_NEXT, "accept4");
  int r = real(fd, addr, len, flags);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    int saved = errno;
    const char* file = getenv("PASTURE_TEST_ACCEPT_LOG");
    int log = file ? open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (log >= 0) {
      if (write(log, "e", 1) < 0) {
      }
      close(log);
    }
    errno = saved;
  }
  return r;
}
