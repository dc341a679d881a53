// paster serve's --reload and --monitor-restart: a small parent process
// that runs the real server (this binary, the same arguments) as a child
// and starts it again. The child is an ordinary pasture master; it knows it
// is monitored by paster's environment variables.
//
// --reload: the parent polls the watched files every --reload-interval
// seconds. When one changes it prints "<file> changed; reloading..." on
// stderr, stops the child (SIGTERM; SIGINT after 2 s) and starts a new one.
// Watched: the config file, and every *.ini, *.yaml and *.yml file in its
// directory (stand-ins for the files it pulls in with `config:` and
// `servers_from`). A child that exits on its own ends the parent with the
// child's exit code (paster: a config error stops the loop).
//
// --monitor-restart: the child is started again whenever it exits (after
// 1 s if it lived less than that).
//
// Both print "-------------------- Restarting --------------------" before
// each new child. Signals to the parent: TERM/QUIT/INT stop the child and
// then the parent (INT prints "^C caught in monitor process", exits 1);
// HUP, USR1 (after reopening --log-file), TTIN and TTOU are passed on.
#pragma once

#include <string>
#include <vector>

namespace pasture::master {

inline constexpr const char* kReloaderEnv = "PYTHON_RELOADER_SHOULD_RUN";
inline constexpr const char* kMonitorEnv = "PASTE_MONITOR_SHOULD_RUN";

struct MonitorOptions {
  bool reload = false;       // --reload; else --monitor-restart
  double interval = 1;       // --reload-interval, seconds
  std::string config_file;   // CONFIG as given (a "config:" prefix and "#name" are dropped)
  std::string log_file;      // reopened on SIGUSR1; "" = none
  int verbosity = 1;
};

// Runs the loop; returns the parent's exit code. `argv` is this process's.
int run_monitor(const MonitorOptions& opts, const std::vector<std::string>& argv);

// The files --reload watches for `config_file`, as absolute paths.
std::vector<std::string> reload_watch_list(const std::string& config_file);

}  // namespace pasture::master
