// The master process: owns sockets, shared memory and workers. It does no
// request I/O; it waits for signals (sigtimedwait) and acts on them.
#pragma once

#include <sys/types.h>

#include <memory>

#include <string>
#include <vector>

#include "common/shm_layout.h"
#include "conf/model.h"
#include "master/history_writer.h"
#include "master/stats_carry.h"
#include "master/apphost.h"
#include "master/listener.h"
#include "master/privileges.h"
#include "worker/tls_context.h"
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
  // Set by main, not an option: this process wrote pid_file (a
  // --reload/--monitor-restart child did not: its parent did, and keeps it).
  bool owns_pid_file = false;
};

class Master {
 public:
  // `load` is kept to re-read the config on SIGHUP; `argv` to re-exec on SIGUSR2.
  Master(conf::LoadOptions load, conf::Site site, ServeOptions opts,
         std::vector<std::string> argv);
  // Bind, map, fork, supervise until stopped. Returns the exit code.
  int run();

 private:
  struct Socket {
    int fd = -1;
    std::string key;  // "host:port" (or "unix:/path") as getsockname() reports it
    // A unix socket this master unlinks when it stops (not systemd's): its
    // path and the inode of the file, so a file bound there since is left alone.
    std::string unix_path = {};
    ino_t unix_ino = 0;
  };
  // Everything one configuration needs; a reload builds a new one.
  struct Generation {
    int id = 0;
    conf::Site site;
    std::unique_ptr<shm::Region> shm;
    std::vector<lb::PoolState> pool_states;
    // servers_from files and their state when loaded: a change reloads.
    std::vector<std::pair<std::string, std::string>> watched;
    worker::Setup setup;
    std::unique_ptr<AppHost> apps;  // the Python app processes; null without Python apps
    bool embed_apps = false;        // Python apps run inside the workers (worker/wsgi/)
    // Listen sockets bound for this generation that the master did not hold
    // before: they join sockets_ only when the generation takes over, and
    // are closed if it never does (a failed reload keeps the old set).
    std::vector<Socket> opened;
    // Its counters as carried into the next generation at the reload.
    std::unique_ptr<StatsTotals> carried;
    // The TLS listeners' context (master_tls.cc); null without TLS.
    std::unique_ptr<worker::TlsContext> tls;
  };
  struct WorkerProc {
    pid_t pid = 0;
    int gen = 0;
    int slot = -1;  // shm worker slot; kept across respawns; -1 until first spawned
    uint64_t started_ms = 0;
    uint64_t respawn_at_ms = 0;  // 0: running or not scheduled
  };
  // Draining: a worker of an older generation or a removed one, an app
  // process, a health checker. A current-generation worker keeps its shm
  // slot (`slot`) until it is reaped.
  struct Retiring {
    pid_t pid = 0;
    uint64_t kill_at_ms = 0;
    int gen = 0;
    int slot = -1;  // -1: not a worker
  };
  // An older generation's app processes: stopped once the old workers that
  // may still send them requests have exited (or at stop_at_ms).
  struct DrainingApps {
    std::unique_ptr<AppHost> apps;
    std::vector<pid_t> workers;
    uint64_t stop_at_ms = 0;
  };
  void close_socket(const Socket& s);

  // master_tls.cc. The TLS context of `site` (null without TLS), reading
  // its certificates and keys as the master runs now: at start before it
  // drops privileges (kept in first_tls_ for the first generation), as the
  // user on a reload.
  bool build_tls(const conf::Site& site, std::unique_ptr<worker::TlsContext>* out, std::string* err);
  // g takes its TLS context (first_tls_ or a new one) and fresh ticket keys
  // in its region (a reload then carries the previous generation's over
  // them, carry_over_state); false + err if the context cannot be built.
  bool setup_tls(Generation& g, std::string* err);
  // Rotates the current generation's ticket keys once the current key is
  // ticket_rotation_ms_ old. The age is kept with the keys in the region and
  // carried over a reload: reloading does not restart the schedule.
  void tls_tick(uint64_t now);
  static constexpr uint64_t kTicketRotationMs = 3600 * 1000;
  // kTicketRotationMs, or PASTURE_TICKET_ROTATION_MS (a test hook,
  // undocumented); a ticket lives twice as long.
  uint64_t ticket_rotation_ms_ = ticket_rotation_from_env(kTicketRotationMs);
  static uint64_t ticket_rotation_from_env(uint64_t fallback);
  uint64_t ticket_retry_at_ms_ = 0;  // after a failed rotation (RAND_bytes)
  std::unique_ptr<worker::TlsContext> first_tls_;

  std::unique_ptr<Generation> make_generation(conf::Site site, std::string* err);
  bool resolve_upstreams(Generation& g, std::string* err);
  bool open_sockets(const conf::ServerSettings& s, std::vector<int>* fds,
                    std::vector<Socket>* opened, std::string* err);
  // g's new listen sockets join the master's (g takes over), or are closed
  // (g failed to start).
  void commit_sockets(Generation& g);
  void discard_sockets(Generation& g);
  void carry_over_state(Generation& from, Generation& to);
  // A replaced generation's counters keep coming in while its workers drain:
  // its region is parked, and folded into the current one once they are gone.
  void park_stats(Generation& g);
  void fold_parked_stats();
  std::vector<ParkedStats> parked_stats_;
  HistoryWriter history_;  // the status page's ring in the current region
  // Once the first generation's listeners (`bound`) are bound: hands the
  // files the master must still write or remove to run_as_ (resolved
  // before binding), then drops to it (master/privileges.h).
  bool drop_to_user(const std::vector<Socket>& bound, std::string* err);
  // A reload's site must run as the master does: "" or why not.
  std::string run_as_mismatch(const conf::Site& site) const;
  // Starts g's app processes and waits for them (before its workers).
  bool start_apps(Generation& g, std::string* err);
  // Embedded apps (master/app_load.cc): loaded once in a throw-away child
  // so a broken app fails start-up or the reload, not every worker; or,
  // with `preload`, in the master itself before the workers fork.
  bool probe_apps(Generation& g, std::string* err);
  bool preload_apps(Generation& g, std::string* err);
  // Retires the draining app hosts whose workers are gone (all when `all`).
  void stop_drained_apps(uint64_t now, bool all);
  void stop_apps(bool graceful);
  // Starts procs_[i]'s process, in its shm slot (a free one the first time).
  void spawn(int i);
  int free_slot() const;
  // The process in worker slot `slot` of generation `gen` is gone: return
  // what it held in shm (current generation only; older regions are unmapped).
  void reclaim_slot(int gen, int slot, pid_t pid);
  // The current generation's health checker (master/health.h), if any pool
  // has health_check; stop_health() retires the running one.
  void spawn_health();
  // In a child that never accepts (health checker, resolver, app-load
  // probe): the listen sockets, the admin socket and the accept kick
  // closed, so that no port stays bound by it.
  void close_listeners_in_child();
  void stop_health();
  // master_resolver.cc: the current generation's resolver (master/resolver.h),
  // if any pool has discovery sources; reaped_resolver() is true when `pid`
  // was it (and schedules a restart unless stopping).
  void spawn_resolver();
  void stop_resolver();
  bool reaped_resolver(pid_t pid, int status);
  // Before the region is sized: max_servers slots after the static servers
  // of each pool with sources.
  static void add_discovery_slots(conf::Site& site);
  void reap();
  void supervise_tick(uint64_t now);
  // master_admin.cc: `clear counters` on the retired row; true once a
  // `drain` is due (the caller stops gracefully).
  bool admin_tick(uint64_t now);
  // Binds `admin_socket` (or takes it from a previous master in a USR2
  // upgrade) into admin_; false + err if it cannot be bound.
  bool open_admin_socket(std::string* err);
  Socket admin_;  // the admin socket; fd -1 without one
  // worker::Setup::accept_kick_fd, one eventfd for the workers of every
  // generation, and of the next master after USR2 (the master never reads
  // or writes it); -1 if eventfd failed.
  int accept_kick_fd_ = -1;
  void retire(pid_t pid, int sig, const WorkerProc* w = nullptr);
  void reload();
  bool watched_files_changed();
  void change_workers(int delta);
  void upgrade_binary();
  int shutdown(bool graceful);
  void announce();
  void notify_status(const char* extra = nullptr);
  int n_alive() const;
  static void raise_nofile_limit();

  conf::LoadOptions load_;
  ServeOptions opts_;
  std::vector<std::string> argv_;
  std::string self_exe_;
  RunAs run_as_;  // who the master became after binding (inactive: as started)
  std::unique_ptr<Generation> gen_;
  int next_gen_id_ = 1;
  int n_workers_ = 1;
  std::vector<Socket> sockets_;   // every listen socket the master holds
  std::vector<WorkerProc> procs_; // current generation, one per slot
  std::vector<Retiring> retiring_;
  std::vector<DrainingApps> draining_apps_;
  // A reload whose new workers import a Python app: the old generation keeps
  // accepting until every new worker runs its loop (or kHandoverMaxMs).
  struct Handover {
    std::vector<WorkerProc> old;
    std::unique_ptr<Generation> gen;
    uint64_t deadline_ms = 0;
  };
  static constexpr uint64_t kHandoverMaxMs = 60000;
  Handover handover_;
  // The app load probe in flight (probe_apps): reap() records its end.
  pid_t probe_pid_ = 0;
  int probe_status_ = 0;
  bool probe_done_ = false;
  void finish_handover();
  bool new_workers_up() const;
  pid_t upgrade_pid_ = 0;               // a new master started by USR2, while it runs
  pid_t health_pid_ = 0;               // the current generation's health checker
  uint64_t health_respawn_at_ms_ = 0;  // 0: running or not needed
  pid_t resolver_pid_ = 0;             // the current generation's resolver
  uint64_t resolver_respawn_at_ms_ = 0;
  uint64_t next_watch_ms_ = 0;
  int fast_deaths_ = 0;     // consecutive workers that died right after start
  bool stopping_ = false;
  std::string fatal_;       // why the master gives up, if it does
};

uint64_t monotonic_ms();

}  // namespace pasture::master
