// Worker process main: a fresh libuv loop, the inherited listen sockets, and
// signal handling. Accepting goes through a private epoll instance that
// watches the shared listen sockets with EPOLLEXCLUSIVE, so a new connection
// wakes one worker, not all of them (the thundering herd), and each wake-up
// accepts a bounded batch to keep workers' shares even.
#include "worker/worker.h"

#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "worker/client_conn.h"
#include "worker/runtime.h"

namespace pasture::worker {
namespace {

constexpr int kAcceptBatch = 8;

struct Acceptor {
  uv_poll_t poll;
  int epfd = -1;
  std::vector<int> fds;
  Worker* w = nullptr;
};

void on_acceptable(uv_poll_t* h, int status, int) {
  auto* a = static_cast<Acceptor*>(h->data);
  if (status < 0 || a->w->draining()) return;
  epoll_event evs[16];
  int n = epoll_wait(a->epfd, evs, 16, 0);
  for (int i = 0; i < n; i++) {
    int lfd = evs[i].data.fd;
    for (int k = 0; k < kAcceptBatch; k++) {
      sockaddr_storage ss;
      socklen_t sl = sizeof ss;
      int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&ss), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        if (errno == ECONNABORTED) continue;
        // EMFILE/ENFILE/ENOBUFS: stop for this tick; the socket stays readable.
        PLOG_WARN("accept4() failed: %s", strerror(errno));
        break;
      }
      ClientConn::accept_fd(a->w, fd, reinterpret_cast<sockaddr*>(&ss));
    }
  }
}

struct Signals {
  uv_signal_t term, quit, intr, hup;
};

void on_signal(uv_signal_t* h, int signum) {
  auto* w = static_cast<Worker*>(h->data);
  if (signum == SIGINT) {
    uv_stop(w->loop());
    return;
  }
  if (signum == SIGHUP) return;  // the master handles reloads
  PLOG_DEBUG("signal %d: draining", signum);
  w->start_drain();
}

}  // namespace

int run(const Setup& setup) {
  signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  if (int r = uv_loop_init(&loop); r < 0) {
    PLOG_ERROR("uv_loop_init() failed: %s", uv_strerror(r));
    return 1;
  }
  Worker w(setup, &loop);
  w.slot()->pid.store(getpid(), std::memory_order_relaxed);

  // One epoll instance per worker over all listen sockets.
  auto* acc = new Acceptor;
  acc->w = &w;
  acc->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (acc->epfd < 0) {
    PLOG_ERROR("epoll_create1() failed: %s", strerror(errno));
    return 1;
  }
  for (int fd : setup.listen_fds) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.fd = fd;
    if (epoll_ctl(acc->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      PLOG_ERROR("epoll_ctl(ADD, %d, EPOLLEXCLUSIVE) failed: %s", fd, strerror(errno));
      return 1;
    }
  }
  uv_poll_init(&loop, &acc->poll, acc->epfd);
  acc->poll.data = acc;
  uv_poll_start(&acc->poll, UV_READABLE, on_acceptable);
  w.add_listener(&acc->poll);

  Signals sig;
  for (auto [h, num] : {std::pair{&sig.term, SIGTERM}, std::pair{&sig.quit, SIGQUIT},
                        std::pair{&sig.intr, SIGINT}, std::pair{&sig.hup, SIGHUP}}) {
    uv_signal_init(&loop, h);
    h->data = &w;
    uv_signal_start(h, on_signal, num);
    uv_unref(reinterpret_cast<uv_handle_t*>(h));
  }

  // The master forks with its signals blocked; unblock only now that libuv
  // handles them, so a signal sent early is acted on rather than fatal.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  // Timers and heartbeat share one tick.
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  tick.data = &w;
  uv_timer_start(
      &tick,
      [](uv_timer_t* t) {
        auto* wk = static_cast<Worker*>(t->data);
        uint64_t now = uv_now(wk->loop());
        wk->timers().expire(now);
        wk->slot()->heartbeat_ms.store(now, std::memory_order_relaxed);
      },
      Timers::kTickMs, Timers::kTickMs);
  uv_unref(reinterpret_cast<uv_handle_t*>(&tick));

  uv_run(&loop, UV_RUN_DEFAULT);
  // Exiting: the kernel closes every socket; nothing in this process needs
  // an orderly teardown, and skipping it keeps shutdown fast.
  return 0;
}

}  // namespace pasture::worker
