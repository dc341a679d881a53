// Worker process main: a fresh libuv loop, the inherited listen sockets
// (accepted through Worker::start_accepting), and signal handling.
#include "worker/worker.h"

#include <signal.h>
#include <sys/epoll.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/sanitizer.h"
#include "worker/client_conn.h"
#include "worker/runtime.h"

namespace pasture::worker {
namespace {

struct Signals {
  uv_signal_t term, quit, intr, hup, usr1;
};

void on_signal(uv_signal_t* h, int signum) {
  auto* w = static_cast<Worker*>(h->data);
  if (signum == SIGINT) {
    w->stop();
    return;
  }
  if (signum == SIGHUP) return;  // the master handles reloads
  if (signum == SIGUSR1) {       // logrotate: reopen the logs
    w->reopen_logs();
    return;
  }
  PLOG_DEBUG("signal %d: draining", signum);
  w->start_drain();
}

}  // namespace

// Ambient capabilities cleared; a non-root worker also empties its
// permitted and effective sets (root keeps being root).
void drop_capabilities() {
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (getuid() == 0 || geteuid() == 0) return;
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &hdr, data) != 0) PLOG_WARN("capset() failed: %s", strerror(errno));
}

int run(const Setup& setup) {
  signal(SIGPIPE, SIG_IGN);
  // If the master dies (even by SIGKILL) drain and exit rather than hold the
  // port forever. Checked after arming: the master may already be gone.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (setup.master_pid && getppid() != setup.master_pid) return 0;

  uv_loop_t loop;
  if (int r = uv_loop_init(&loop); r < 0) {
    PLOG_ERROR("uv_loop_init() failed: %s", uv_strerror(r));
    return 1;
  }
  Worker w(setup, &loop);
  w.slot()->pid.store(getpid(), std::memory_order_relaxed);
  // Aside until it accepts (start_accepting clears it): a worker importing
  // its app takes no connection, so the others must not step aside for it
  // (review 35 H-1).
  w.slot()->share_paused.store(1, std::memory_order_relaxed);

  // A worker binds its own reuse_port sockets first, then drops every
  // capability the master kept for binding ports (systemd's
  // AmbientCapabilities, or the CAP_NET_BIND_SERVICE a master dropped to
  // `user` keeps for reuse_port), before any app code runs in any of its
  // threads (capabilities are per thread: app threads started later
  // inherit none). It accepts only once the app is loaded: registered
  // earlier, it would be handed connections it cannot take for the whole
  // import.
  if (setup.reuse_port) w.bind_own_sockets(setup.listen_fds);
  drop_capabilities();
  if (!setup.embed_apps) {
    if (!w.start_accepting(setup.listen_fds)) return 1;
  }
  if (setup.embed_apps) {
    // After fork (unless the master preloaded): each worker imports the
    // app itself, as gunicorn without --preload.
    std::string err;
    wsgi::Options o = setup.app_options;
    o.watch = setup.slot == 0;  // one watcher is enough for --reload
    if (!wsgi::load(*setup.site, o, &err) || !wsgi::start_threads(&loop, &err)) {
      PLOG_ERROR("%s", err.c_str());
      return 3;
    }
    // An app that set SIGPIPE back to SIG_DFL at import (CLI habit) would
    // have the first write to a peer that went away kill the worker: every
    // socket write here counts on EPIPE instead (review 28).
    struct sigaction sa{};
    if (sigaction(SIGPIPE, nullptr, &sa) == 0 && sa.sa_handler != SIG_IGN) {
      PLOG_NOTICE("the app changed SIGPIPE's handling; pasture ignores SIGPIPE again");
      signal(SIGPIPE, SIG_IGN);
    }
    if (!w.start_accepting(setup.listen_fds)) return 1;
  }

  w.start_admin(setup.admin_fd);

  Signals sig;
  for (auto [h, num] : {std::pair{&sig.term, SIGTERM}, std::pair{&sig.quit, SIGQUIT},
                        std::pair{&sig.intr, SIGINT}, std::pair{&sig.hup, SIGHUP},
                        std::pair{&sig.usr1, SIGUSR1}}) {
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
        wk->access_log().flush();
        wk->console_log().flush();
        wk->slot()->heartbeat_ms.store(now, std::memory_order_relaxed);
        wk->check_clear_counters();
        wk->sync_discovered();
      },
      Timers::kTickMs, Timers::kTickMs);
  uv_unref(reinterpret_cast<uv_handle_t*>(&tick));

  w.run();
  w.finish();
  w.access_log().finish();
  w.console_log().finish();
  if (setup.embed_apps) wsgi::shutdown();
  // Exiting: the kernel closes every socket; nothing in this process needs
  // an orderly teardown, and skipping it keeps shutdown fast. So the leak
  // check runs here, while the loop and `w` still hold what they own: what
  // none of them reaches any more is a real leak.
  sanitizer::check_leaks_before_exit();
  return 0;
}

}  // namespace pasture::worker
