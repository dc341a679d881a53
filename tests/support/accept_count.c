// An LD_PRELOAD shim for one integration test: every accept4() appends one
// byte to the file named by $PASTURE_TEST_ACCEPT_LOG, 'a' when it took a
// connection and 'e' when it found the queue empty (EAGAIN), so the test
// can count the accept4() calls a worker makes for nothing.
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
  int saved = errno;
  const char* mark = r >= 0 ? "a" : (errno == EAGAIN || errno == EWOULDBLOCK) ? "e" : NULL;
  const char* file = getenv("PASTURE_TEST_ACCEPT_LOG");
  int log = mark && file ? open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
  if (log >= 0) {
    if (write(log, mark, 1) < 0) {
    }
    close(log);
  }
  errno = saved;
  return r;
}
