// An LD_PRELOAD shim for one integration test: the first accept4() made
// after the file named by $PASTURE_TEST_DIE_AT_ACCEPT appears kills its
// process (SIGKILL) before it takes the connection, as a crash or the OOM
// killer would between a worker's wake-up for a connection and its accept.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  static int (*real)(int, struct sockaddr*, socklen_t*, int);
  if (!real) real = (int (*)(int, struct sockaddr*, socklen_t*, int))dlsym(RTLD_NEXT, "accept4");
  const char* file = getenv("PASTURE_TEST_DIE_AT_ACCEPT");
  if (file && unlink(file) == 0) raise(SIGKILL);
  return real(fd, addr, len, flags);
}
