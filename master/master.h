// The master process: owns sockets, shared memory and workers. It does no
// request I/O; it waits for signals (sigtimedwait) and acts on them.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/shm_layout.h"
#include "conf/model.h"
#include "master/listener.h"
#include "worker/worker.h"

namespace pasture::master {

struct ServeOptions {
  int workers = 0;  // 0: from the config, else number of CPUs
  int verbosity = 1;
  // paster serve's command line, parsed (and checked) by master/cli.cc.
  std::string command;           // "start" "stop" "restart" "status" (the word after CONFIG), or ""
  bool daemon = false;           // --daemon, or implied by start/restart
  std::string pid_file;          // --pid-file; "" = not given (paster.pid when daemonizing/stopping)
  std::string log_file;          // --log-file; "" = not given (paster.log when daemonizing)
  bool reload = false;           // --reload (never together with an explicit --daemon)
  double reload_interval = 1;    // --reload-interval SECS
  bool monitor_restart = false;  // --monitor-restart
  bool stop_daemon = false;      // --stop-daemon: needs no CONFIG; handled before anything else
  std::string user, group;       // --user / --group as given (names or numbers; checked to exist)
  std::string server_type;       // -s/--server TYPE: egg:PasteScript#TYPE (a Python server)
  int app_workers = 0;           // --app-workers N: processes hosting Python apps (later issue)
  std::string python;            // --python PATH: interpreter for Python apps (later issue)
};

class Master {
 public:
  Master(conf::Site site, ServeOptions opts);
  // Bind, map, fork, supervise until stopped. Returns the exit code.
  int run();

 private:
  struct WorkerProc {
    pid_t pid = 0;
    uint64_t started_ms = 0;
    uint64_t respawn_at_ms = 0;  // 0: running or not scheduled
  };

  bool prepare(std::string* err);
  bool resolve_upstreams(std::string* err);
  void spawn(int slot);
  void reap();
  void supervise_tick(uint64_t now);
  int shutdown(bool graceful);
  void announce();

  conf::Site site_;
  ServeOptions opts_;
  int n_workers_ = 1;
  std::vector<BoundListener> listeners_;
  shm::Region shm_;
  worker::Setup setup_;
  std::vector<WorkerProc> procs_;
  int fast_deaths_ = 0;     // consecutive workers that died right after start
  bool stopping_ = false;
  std::string fatal_;       // why the master gives up, if it does
};

uint64_t monotonic_ms();

}  // namespace pasture::master
