// Embedded Python apps, the master's part: make sure a generation's apps
// load before its workers start (see Master::probe_apps, preload_apps).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"
#include "master/master.h"
#include "master/notify.h"

namespace pasture::master {

// A child loads the apps exactly as each worker will, then exits: 0, or 3
// after printing the traceback (to the master's stderr, the log). A broken
// app stops start-up with that message, or leaves the previous generation
// serving on HUP, instead of workers that die one after the other.
bool Master::probe_apps(Generation& g, std::string* err) {
  constexpr uint64_t kLoadTimeoutMs = 120000;
  pid_t pid = fork();
  if (pid < 0) {
    *err = std::string("fork() failed: ") + strerror(errno);
    return false;
  }
  if (pid == 0) {
    forget_notify_socket();
    worker::drop_capabilities();
    log::set_role("app loader");
    close_listeners_in_child();
    std::string why;
    int rc = worker::wsgi::load(g.site, g.setup.app_options, &why) ? 0 : 3;
    if (rc) fprintf(stderr, "%s\n", why.c_str());
    fflush(nullptr);
    _exit(rc);
  }
  uint64_t deadline = monotonic_ms() + kLoadTimeoutMs;
  // While the app imports (seconds, for a large one), the generation that
  // serves is still looked after: its dead workers are reaped (reap() hands
  // the probe's status back through probe_pid_) and replaced.
  probe_pid_ = pid;
  probe_done_ = false;
  for (;;) {
    reap();
    if (probe_done_) break;
    uint64_t now = monotonic_ms();
    for (size_t i = 0; i < procs_.size(); i++)
      if (procs_[i].pid == 0 && procs_[i].respawn_at_ms && now >= procs_[i].respawn_at_ms) spawn((int)i);
    if (now >= deadline) {
      kill(pid, SIGKILL);
      int ignored;
      waitpid(pid, &ignored, 0);
      probe_pid_ = 0;
      *err = "loading the Python apps took more than " + std::to_string(kLoadTimeoutMs / 1000) + " s; gave up";
      return false;
    }
    usleep(5000);
  }
  probe_pid_ = 0;
  int status = probe_status_;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  const conf::PythonApp& a = g.site.python_apps.front();
  *err = WIFEXITED(status) && WEXITSTATUS(status) == 3
             ? "the Python app could not be loaded (the error is above)"
             : a.loc.str() + ": loading the Python apps " +
                   (WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                        : "exited with status " + std::to_string(WEXITSTATUS(status)));
  return false;
}

// gunicorn's --preload: the master imports the apps once; workers are
// forked with them loaded (copy-on-write, gc.freeze()). A HUP re-reads the
// configuration but cannot import the apps' code again in this process:
// new code needs a restart or a binary upgrade (USR2).
bool Master::preload_apps(Generation& g, std::string* err) {
  if (worker::wsgi::loaded()) {
    if (worker::wsgi::same_apps(g.site)) {
      PLOG_NOTICE("preload: the apps loaded at start-up keep serving (their code is not re-imported on HUP; "
                  "restart or USR2 for new code)");
      return true;
    }
    *err = "preload: the configuration now names other Python apps than the master loaded at start-up; "
           "restart pasture (or upgrade with USR2) to load them";
    return false;
  }
  std::string why;
  if (!worker::wsgi::load(g.site, g.setup.app_options, &why)) {
    fprintf(stderr, "%s\n", why.c_str());
    *err = "the Python app could not be loaded (the error is above)";
    return false;
  }
  worker::wsgi::freeze();
  return true;
}

}  // namespace pasture::master
