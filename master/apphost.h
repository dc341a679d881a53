// The app host: the Python processes that serve a generation's Python WSGI
// apps (conf::Site::python_apps), supervised by the master like workers.
//
// Each app gets `processes` slots. For every slot the master binds one
// listening unix socket (in a private 0700 directory under $XDG_RUNTIME_DIR
// or /tmp, removed with the AppHost) once and keeps it for the life of the
// generation, so no TCP port is used; each incarnation of the slot's process (python/pasture_wsgi.py)
// inherits it, loads the app with paste.deploy, then reports "ready" on a
// pipe. Because the socket outlives the process, connections made while a
// slot respawns wait in its backlog instead of failing.
//
// Not thread-safe; lives in the master and only forks/execs and reads pipes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "conf/model.h"

namespace pasture::master {

// The interpreter that will run the apps: `wanted` (--python or `python =`)
// if given, else the first of `python3` on PATH and /usr/bin/python3 that can
// import paste.deploy. Empty and `*err` naming everything tried on failure.
std::string find_python(const std::string& wanted, std::string* err);

// python/pasture_wsgi.py: $PASTURE_WSGI_RUNNER, next to the binary, or in
// ../python relative to it. Empty if none exists.
std::string find_runner(const std::string& self_exe);

class AppHost {
 public:
  struct Options {
    std::string python;   // interpreter (find_python)
    std::string runner;   // pasture_wsgi.py (find_runner)
    int processes = 1;    // per app
    std::vector<std::pair<std::string, std::string>> vars;  // global_conf overrides
    std::string public_host;  // the first public listener: SERVER_NAME/SERVER_PORT
    uint16_t public_port = 0;
    uint32_t graceful_timeout_ms = 30000;
    double reload_interval = 0;  // > 0: processes restart when a loaded module changes
    bool core_dumps = false;     // else the runner makes itself non-dumpable (the app's config holds secrets)
    int generation = 0;          // for logs
  };

  explicit AppHost(Options opts) : opts_(std::move(opts)) {}
  // SIGKILLs processes still tracked, closes the sockets and removes their
  // files; the master's reap() collects the children.
  ~AppHost();
  AppHost(const AppHost&) = delete;
  AppHost& operator=(const AppHost&) = delete;

  // Binds one socket per process and fills each app's pool in `site` with
  // them. Before the shm layout is sized (the pools gain their servers here).
  bool prepare(conf::Site& site, std::string* err);
  // Starts every process and waits until all are ready, up to `timeout_ms`.
  // On failure `*err` says which app failed and how (its traceback went to
  // stderr); the processes started are left for the destructor.
  bool start(uint64_t timeout_ms, std::string* err);

  // A child exited: true if it was one of ours (respawned later by tick()).
  bool on_exit(pid_t pid, int status, uint64_t now);
  // Respawns due slots; notices processes becoming ready.
  void tick(uint64_t now);
  // Stop respawning and forget the processes: the caller retires (signals and
  // reaps) the returned pids.
  std::vector<pid_t> release();
  // Why the apps cannot be kept up ("" while fine): every process of an app
  // died before getting ready, many times in a row.
  const std::string& fatal() const { return fatal_; }
  std::vector<pid_t> pids() const;

 private:
  struct Proc {
    int app = 0;
    int slot = 0;
    int listen_fd = -1;
    std::string path;       // the unix socket's file
    pid_t pid = 0;
    int ready_fd = -1;      // read end of the ready pipe; -1 once ready or dead
    bool ready = false;
    uint64_t started_ms = 0;
    uint64_t respawn_at_ms = 0;  // 0: running or not scheduled
    int fast_deaths = 0;         // consecutive deaths before getting ready
  };

  bool spawn(Proc& p, uint64_t now);
  bool poll_ready(Proc& p, int wait_ms);
  std::string what(const Proc& p) const;

  Options opts_;
  std::vector<conf::PythonApp> apps_;
  std::vector<Proc> procs_;
  bool released_ = false;
  std::string dir_;       // holds the sockets' files; "" until prepare()
  pid_t owner_pid_ = 0;   // the process that made them (forked copies leave them)
  std::string fatal_;
};

}  // namespace pasture::master
