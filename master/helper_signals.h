// Signals of the master's helper processes (the health checker, the
// resolver): SIGTERM, SIGINT and SIGQUIT call `on_stop`; HUP, USR1/2,
// TTIN/TTOU and PIPE are ignored (the master's, not theirs); SIGCHLD back
// to its default; and SIGTERM when the master dies (its SIGKILL included).
#pragma once

#include <signal.h>
#include <sys/prctl.h>

namespace pasture::master {

inline void install_helper_signals(void (*on_stop)(int)) {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT}) sigaction(sig, &sa, nullptr);
  sa.sa_handler = SIG_IGN;
  for (int sig : {SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGPIPE}) sigaction(sig, &sa, nullptr);
  sa.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &sa, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
}

}  // namespace pasture::master
