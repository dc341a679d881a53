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
