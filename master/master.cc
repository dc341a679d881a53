#include "master/master.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <thread>

#include "common/balancer.h"
#include "common/log.h"
#include "common/sanitizer.h"
#include "conf/describe.h"
#include "conf/load.h"
#include "master/health.h"
#include "master/daemon.h"
#include "master/notify.h"

namespace pasture::master {
namespace {

// What identifies a file's content cheaply: inode, size, mtime.
std::string file_state(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "missing";
  return std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

constexpr uint64_t kFastDeathMs = 1000;  // a worker dying sooner failed to start
constexpr int kMaxFastDeaths = 10;       // ...this many times in a row: give up
constexpr uint32_t kWorkerSlots = 256;   // shm worker slots (TTIN beyond this is refused)

sigset_t handled_signals() {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU})
    sigaddset(&s, sig);
  return s;
}

// The address a configured listener binds, in socket_name() form, so an
// existing socket can be matched before binding anew.
std::string listener_key(const conf::Listener& l) {
  if (!l.unix_path.empty()) return l.url();
  addrinfo* res = nullptr;
  std::string port = std::to_string(l.port);
  if (resolve_listener(l, &res) != 0) return l.host + ":" + port;
  char buf[INET6_ADDRSTRLEN] = "";
  std::string key;
  if (res->ai_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr, buf, sizeof buf);
    key = "[" + std::string(buf) + "]:" + port;
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, buf, sizeof buf);
    key = std::string(buf) + ":" + port;
  }
  freeaddrinfo(res);
  return key;
}

bool wildcard_host(const std::string& h) { return h.empty() || h == "*" || h == "0.0.0.0" || h == "::"; }

// Socket activation: does the socket systemd passed (`l`, from its address)
// speak TLS? As the configured listener it stands for: the same unix path,
// or the same port on the same (or a wildcard) host. One the config does
// not name speaks TLS when every configured listener does (Paste's ssl_pem,
// gunicorn's certfile: the whole server is TLS), so a port meant to be
// encrypted is never served in cleartext because systemd bound it.
bool activated_tls(const conf::ServerSettings& s, const conf::Listener& l) {
  for (const conf::Listener& c : s.listen) {
    if (!l.unix_path.empty() || !c.unix_path.empty()) {
      if (c.unix_path == l.unix_path) return c.tls;
      continue;
    }
    if (c.port == l.port && (c.host == l.host || wildcard_host(c.host) || wildcard_host(l.host))) return c.tls;
  }
  return s.tls.enabled() && !s.listen.empty() &&
         std::all_of(s.listen.begin(), s.listen.end(), [](const conf::Listener& c) { return c.tls; });
}

}  // namespace

// Closes a listen socket; a unix socket's file goes too, unless a new master
// (USR2) serves on it now.
void Master::close_socket(const Socket& s) {
  close(s.fd);
  if (!s.unix_path.empty() && upgrade_pid_ == 0) remove_unix_socket(s.unix_path, s.unix_ino);
}

uint64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Master::Master(conf::LoadOptions load, conf::Site site, ServeOptions opts,
               std::vector<std::string> argv)
    : load_(std::move(load)), opts_(opts), argv_(std::move(argv)) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) self_exe_.assign(buf, n);
  std::string err;
  gen_ = std::make_unique<Generation>();
  gen_->site = std::move(site);
}

bool Master::resolve_upstreams(Generation& g, std::string* err) {
  g.setup.servers.assign(g.site.pools.size(), {});
  g.setup.pool_first_server.clear();
  uint32_t next = 0;
  for (size_t i = 0; i < g.site.pools.size(); i++) {
    const conf::Pool& p = g.site.pools[i];
    g.setup.pool_first_server.push_back(next);
    next += (uint32_t)p.servers.size();
    for (const conf::UpstreamServer& s : p.servers) {
      if (s.dynamic_slot >= 0) {  // a discovered member's: the workers take it from shm
        g.setup.servers[i].push_back(worker::ResolvedServer{});
        continue;
      }
      if (!s.unix_path.empty()) {  // a unix-domain socket (e.g. a hosted Python app)
        worker::ResolvedServer r;
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        if (s.unix_path.size() >= sizeof sun.sun_path) {
          *err = s.loc.str() + ": unix socket path too long: " + s.unix_path;
          return false;
        }
        memcpy(sun.sun_path, s.unix_path.data(), s.unix_path.size());
        memcpy(&r.addr, &sun, sizeof sun);
        r.addrlen = (socklen_t)(offsetof(sockaddr_un, sun_path) + s.unix_path.size() + 1);
        r.host_header = "localhost";
        g.setup.servers[i].push_back(r);
        continue;
      }
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_flags = AI_NUMERICSERV;
      addrinfo* res = nullptr;
      std::string port = std::to_string(s.port);
      int gai = getaddrinfo(s.host.c_str(), port.c_str(), &hints, &res);
      if (gai != 0 || !res) {
        *err = s.loc.str() + ": cannot resolve upstream " + s.label() + ": " + gai_strerror(gai);
        return false;
      }
      worker::ResolvedServer r;
      memcpy(&r.addr, res->ai_addr, res->ai_addrlen);
      r.addrlen = res->ai_addrlen;
      bool v6 = s.host.find(':') != std::string::npos;
      r.host_header = (v6 ? "[" + s.host + "]" : s.host) + ":" + port;
      freeaddrinfo(res);
      g.setup.servers[i].push_back(r);
    }
  }
  return true;
}

// Reuse a socket the master already holds for the same address (kept across
// reloads, inherited in an upgrade, or passed by systemd); bind the rest into
// `opened`. On failure what this call bound is closed again.
bool Master::open_sockets(const conf::ServerSettings& s, std::vector<int>* fds,
                          std::vector<Socket>* opened, std::string* err) {
  for (const conf::Listener& l : s.listen) {
    std::string key = listener_key(l);
    auto find = [&](const std::vector<Socket>& set) -> const Socket* {
      for (const Socket& k : set)
        if (k.key == key) return &k;
      return nullptr;
    };
    const Socket* held = find(sockets_);
    if (!held) held = find(*opened);
    if (held) {
      fds->push_back(held->fd);
      continue;
    }
    conf::ServerSettings one = s;
    one.listen = {l};
    std::vector<BoundListener> bound;
    // Bound before the drop to user: reuse_port workers' sockets must have the same owner.
    uid_t owner = s.reuse_port && run_as_.set_user && !runs_as(run_as_) ? run_as_.uid : (uid_t)-1;
    if (!bind_listeners(one, &bound, err, owner)) {
      for (const Socket& o : *opened) close_socket(o);
      opened->clear();
      return false;
    }
    opened->push_back({bound[0].fd, socket_name(bound[0].fd), l.unix_path, bound[0].unix_ino});
    fds->push_back(bound[0].fd);
  }
  return true;
}

void Master::commit_sockets(Generation& g) {
  sockets_.insert(sockets_.end(), g.opened.begin(), g.opened.end());
  g.opened.clear();
}

void Master::discard_sockets(Generation& g) {
  for (const Socket& s : g.opened) close_socket(s);
  g.opened.clear();
}

std::unique_ptr<Master::Generation> Master::make_generation(conf::Site site, std::string* err) {
  auto g = std::make_unique<Generation>();
  g->site = std::move(site);
  g->id = next_gen_id_;
  // Python apps run in the workers (embedded, the default) or in app
  // processes the master supervises (app_mode = process, or another
  // interpreter named by `python =` / --python).
  g->embed_apps = !g->site.python_apps.empty() && opts_.python.empty() &&
                  g->site.server.app_mode == conf::ServerSettings::AppMode::Embedded;
  if (g->embed_apps) {
    worker::wsgi::Options& o = g->setup.app_options;
    o.vars = load_.vars;
    o.server_name = "localhost";
    o.server_port = "80";
    for (const conf::Listener& l : g->site.server.listen)
      if (l.unix_path.empty()) {
        o.server_name = l.host;
        o.server_port = std::to_string(l.port);
        break;
      }
    int workers = opts_.workers > 0 ? opts_.workers : g->site.server.workers;
    if (workers <= 0) workers = (int)std::max(1u, std::thread::hardware_concurrency());
    o.multiprocess = workers > 1;
    o.threads = g->site.server.threads;
    o.reload_interval = opts_.reload ? opts_.reload_interval : 0;
    g->setup.embed_apps = true;
  } else if (!g->site.python_apps.empty()) {
    AppHost::Options o;
    o.python = find_python(!opts_.python.empty() ? opts_.python : g->site.server.python, err);
    if (o.python.empty()) return nullptr;
    o.runner = find_runner(self_exe_);
    if (o.runner.empty()) {
      *err = "cannot find pasture_wsgi.py (the Python app runner) next to " + self_exe_ +
             " or in ../python relative to it; set PASTURE_WSGI_RUNNER";
      return nullptr;
    }
    o.processes = opts_.app_workers > 0 ? opts_.app_workers : g->site.server.app_workers;
    if (o.processes <= 0) o.processes = (int)std::max(1u, std::thread::hardware_concurrency());
    o.vars = load_.vars;
    // SERVER_NAME/SERVER_PORT: the first TCP listener; with unix sockets
    // only, what a client of the socket most likely sent (curl: localhost).
    o.public_host = "localhost";
    o.public_port = 80;
    for (const conf::Listener& l : g->site.server.listen)
      if (l.unix_path.empty()) {
        o.public_host = l.host;
        o.public_port = l.port;
        break;
      }
    o.graceful_timeout_ms = g->site.server.graceful_timeout_ms;
    o.reload_interval = opts_.reload ? opts_.reload_interval : 0;
    o.core_dumps = g->site.server.core_dumps;
    o.generation = g->id;
    g->apps = std::make_unique<AppHost>(std::move(o));
    if (!g->apps->prepare(g->site, err)) return nullptr;
  }
  for (const conf::Pool& p : g->site.pools) {
    bool app_pool = g->embed_apps && std::any_of(g->site.python_apps.begin(), g->site.python_apps.end(),
                                                 [&](const conf::PythonApp& a) { return &g->site.pools[a.pool] == &p; });
    if (p.servers.empty() && p.sources.empty() && !app_pool) {
      *err = p.loc.str() + ": pool " + p.name + " has no servers";
      return nullptr;
    }
  }
  add_discovery_slots(g->site);
  if (!resolve_upstreams(*g, err)) return nullptr;
  shm::LayoutSizes sz;
  sz.n_pools = (uint32_t)g->site.pools.size();
  for (const conf::Pool& p : g->site.pools) sz.n_servers += (uint32_t)p.servers.size();
  sz.n_workers = kWorkerSlots;
  g->shm = std::make_unique<shm::Region>();
  if (!g->shm->create(sz)) {
    *err = std::string("mmap(MAP_SHARED|MAP_ANONYMOUS, ") + std::to_string(sz.total()) +
           ") failed: " + strerror(errno);
    return nullptr;
  }
  g->shm->header().generation.store((uint64_t)g->id, std::memory_order_relaxed);
  g->shm->history().header().interval_ms.store(g->site.server.status_history_interval_ms, std::memory_order_relaxed);
  if (!setup_tls(*g, err)) return nullptr;
  // The last step that can fail: the caller commits or discards g->opened.
  std::vector<int> fds;
  if (!open_sockets(g->site.server, &fds, &g->opened, err)) return nullptr;
  for (const conf::Pool& p : g->site.pools)
    if (!p.servers_from.empty()) g->watched.emplace_back(p.servers_from, file_state(p.servers_from));
  g->setup.site = &g->site;
  g->setup.shm = g->shm.get();
  for (size_t i = 0; i < g->site.pools.size(); i++)
    g->pool_states.push_back(worker::build_pool_state(g->site.pools[i], &g->shm->pools()[i],
                                                      &g->shm->servers()[g->setup.pool_first_server[i]],
                                                      &g->shm->members()[g->setup.pool_first_server[i]]));
  g->setup.pool_states = &g->pool_states;
  g->setup.listen_fds = fds;
  g->setup.graceful_timeout_ms = g->site.server.graceful_timeout_ms;
  // Access log: `access_log =` (a file, "-" for stdout, "off"), else to
  // --log-file (which stdout is redirected to) when given.
  const std::string& al = g->site.server.access_log;
  if (al == "off" || al == "none")
    g->setup.access_log.clear();
  else if (!al.empty())
    g->setup.access_log = al;
  else if (!opts_.log_file.empty())
    g->setup.access_log = opts_.log_file;  // by path: workers reopen it on USR1 (logrotate)
  g->setup.log_file = opts_.log_file;
  g->setup.reuse_port = g->site.server.reuse_port;
  g->setup.admin_fd = admin_.fd;
  if (accept_kick_fd_ < 0) accept_kick_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  g->setup.accept_kick_fd = accept_kick_fd_;
  g->setup.master_pid = getpid();
  next_gen_id_++;
  return g;
}

void Master::announce() {
  // paster serve prints these; scripts wait for "serving on".
  for (const conf::Listener& l : gen_->site.server.listen) {
    if (!l.unix_path.empty())
      printf("serving on %s\n", l.url().c_str());
    else if (l.host == "0.0.0.0")
      printf("serving on 0.0.0.0:%u view at %s://127.0.0.1:%u\n", l.port, l.tls ? "https" : "http", l.port);
    else
      printf("serving on %s\n", l.url().c_str());
  }
  fflush(stdout);
}

void Master::notify_status(const char* extra) {
  char buf[256];
  snprintf(buf, sizeof buf, "%sSTATUS=%d workers, generation %d", extra ? extra : "", n_alive(),
           gen_->id);
  sd_notify(buf);
}

// Descriptors: the soft limit up to the hard one (systemd's default soft
// limit, 1024, is for select() users), as HAProxy and Go do; every process
// forked from here inherits it. max_connections' default follows from it.
void Master::raise_nofile_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : std::min<rlim_t>(rl.rlim_max, (rlim_t)1 << 20);
  if (want <= rl.rlim_cur) return;
  rlim_t was = rl.rlim_cur;
  rl.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
    PLOG_DEBUG("descriptor limit raised from %llu to %llu", (unsigned long long)was, (unsigned long long)want);
  else
    PLOG_WARN("setrlimit(RLIMIT_NOFILE, %llu) failed: %s", (unsigned long long)want, strerror(errno));
}

int Master::n_alive() const {
  int n = 0;
  for (const WorkerProc& w : procs_) n += w.pid > 0;
  return n;
}

bool Master::start_apps(Generation& g, std::string* err) {
  if (g.embed_apps) return g.site.server.preload ? preload_apps(g, err) : probe_apps(g, err);
  if (!g.apps) return true;
  constexpr uint64_t kAppStartTimeoutMs = 60000;
  return g.apps->start(kAppStartTimeoutMs, err);
}

void Master::stop_drained_apps(uint64_t now, bool all) {
  for (auto it = draining_apps_.begin(); it != draining_apps_.end();) {
    bool busy = std::any_of(it->workers.begin(), it->workers.end(), [&](pid_t w) {
      return std::any_of(retiring_.begin(), retiring_.end(), [&](const Retiring& r) { return r.pid == w; });
    });
    if (!all && busy && now < it->stop_at_ms) {
      ++it;
      continue;
    }
    for (pid_t pid : it->apps->release()) retire(pid, SIGTERM);
    it = draining_apps_.erase(it);
  }
}

// The lowest worker slot no process of this generation holds: neither a
// current worker (running or due to respawn) nor a retired one still
// draining. -1 if all are taken.
int Master::free_slot() const {
  std::vector<bool> used(kWorkerSlots);
  for (const WorkerProc& w : procs_)
    if (w.slot >= 0) used[w.slot] = true;
  for (const Retiring& r : retiring_)
    if (r.slot >= 0 && r.gen == gen_->id) used[r.slot] = true;
  auto it = std::find(used.begin(), used.end(), false);
  return it == used.end() ? -1 : (int)(it - used.begin());
}

void Master::spawn(int i) {
  Generation& g = *gen_;
  if (procs_[i].slot < 0) procs_[i].slot = free_slot();
  int slot = procs_[i].slot;
  if (slot < 0) {
    PLOG_ERROR("no free worker slot (%u, some held by draining workers); retrying", kWorkerSlots);
    procs_[i].respawn_at_ms = monotonic_ms() + 1000;
    return;
  }
  g.setup.slot = slot;
  // Accept balance looks at slots 0..n_workers-1: include ours; workers
  // started before read the watermark (ShmHeader::worker_slots_used).
  g.setup.n_workers = std::max(n_workers_, slot + 1);
  std::atomic<uint32_t>& used = g.shm->header().worker_slots_used;
  if (used.load(std::memory_order_relaxed) < (uint32_t)slot + 1) used.store((uint32_t)slot + 1, std::memory_order_relaxed);
  const conf::ServerSettings& srv = g.site.server;
  g.setup.max_requests = srv.max_requests;
  if (srv.max_requests && srv.max_requests_jitter) {
    static std::mt19937_64 rng(std::random_device{}());
    g.setup.max_requests += rng() % (srv.max_requests_jitter + 1);
  }
  // A fresh heartbeat so the stuck-worker check measures this process.
  g.shm->workers()[slot].heartbeat_ms.store(0);
  worker::wsgi::fork_prepare();  // a preloaded interpreter crosses fork() as os.fork() does it
  pid_t pid = fork();
  if (pid != 0) worker::wsgi::fork_parent();
  if (pid < 0) {
    PLOG_ERROR("fork() failed: %s", strerror(errno));
    procs_[i].respawn_at_ms = monotonic_ms() + 1000;
    return;
  }
  if (pid == 0) {
    worker::wsgi::fork_child();
    forget_notify_socket();
    char role[32];
    snprintf(role, sizeof role, "worker %d", slot);
    log::set_role(role);
    int rc = worker::run(g.setup);
    fflush(nullptr);
    _exit(rc);
  }
  shm::WorkerSlot& ws = g.shm->workers()[slot];
  ws.generation.store((uint64_t)g.id, std::memory_order_relaxed);
  // started_ms is set once a process ran in this entry: this one replaces it.
  if (procs_[i].started_ms != 0) ws.respawns.fetch_add(1, std::memory_order_relaxed);
  ws.pid.store(pid, std::memory_order_relaxed);
  WorkerProc& w = procs_[i];
  w.pid = pid;
  w.gen = g.id;
  w.started_ms = monotonic_ms();
  w.respawn_at_ms = 0;
  PLOG_INFO("worker %d started, pid %d (generation %d)", slot, (int)pid, g.id);
}

void Master::spawn_health() {
  health_respawn_at_ms_ = 0;
  Generation& g = *gen_;
  std::vector<HealthTarget> targets =
      health_targets(g.site, g.setup.servers, g.setup.pool_first_server, *g.shm);
  if (targets.empty()) return;
  pid_t pid = fork();
  if (pid < 0) {
    PLOG_ERROR("fork() failed: %s", strerror(errno));
    health_respawn_at_ms_ = monotonic_ms() + 1000;
    return;
  }
  if (pid == 0) {
    log::set_role("health");
    forget_notify_socket();
    worker::drop_capabilities();  // binds nothing: no CAP_NET_BIND_SERVICE kept for reuse_port
    close_listeners_in_child();
    int rc = run_health_checker(std::move(targets));
    fflush(nullptr);
    sanitizer::check_leaks_before_exit();
    _exit(rc);
  }
  health_pid_ = pid;
  PLOG_INFO("health checker is pid %d (generation %d, %zu servers)", (int)pid, g.id,
            targets.size());
}

void Master::stop_health() {
  if (health_pid_ > 0) retire(health_pid_, SIGTERM);
  health_pid_ = 0;
  health_respawn_at_ms_ = 0;
}

void Master::retire(pid_t pid, int sig, const WorkerProc* w) {
  if (pid <= 0) return;
  kill(pid, sig);
  retiring_.push_back({pid, monotonic_ms() + gen_->site.server.graceful_timeout_ms + 1000,
                       w ? w->gen : 0, w ? w->slot : -1});
}

void Master::reclaim_slot(int gen, int slot, pid_t pid) {
  if (slot < 0 || gen != gen_->id) return;
  int64_t held = gen_->shm->reclaim_worker((uint32_t)slot);
  if (held > 0)
    PLOG_WARN("worker %d (pid %d) died holding %lld request(s) in flight; their upstream "
              "counts are released", slot, (int)pid, (long long)held);
}

void Master::reap() {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    // A worker the kernel had just woken for a connection may have died
    // before taking it: the others try (the accept kick; review 53 M-2).
    if (accept_kick_fd_ >= 0) {
      uint64_t one = 1;
      if (write(accept_kick_fd_, &one, sizeof one) < 0) {
      }
    }
    auto r = std::find_if(retiring_.begin(), retiring_.end(),
                          [&](const Retiring& x) { return x.pid == pid; });
    if (r != retiring_.end()) {
      reclaim_slot(r->gen, r->slot, pid);
      retiring_.erase(r);
      if (!parked_stats_.empty()) fold_parked_stats();
      continue;
    }
    if (pid == probe_pid_ && pid > 0) {  // the app load probe (probe_apps waits for it)
      probe_status_ = status;
      probe_done_ = true;
      continue;
    }
    if (pid == upgrade_pid_) {  // the new master is gone: the socket files are ours again
      upgrade_pid_ = 0;
      continue;
    }
    if (reaped_resolver(pid, status)) continue;
    if (pid == health_pid_) {
      health_pid_ = 0;
      if (stopping_) continue;
      PLOG_WARN("health checker (pid %d) %s %d; restarting it", (int)pid,
                WIFSIGNALED(status) ? "killed by signal" : "exited with status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      health_respawn_at_ms_ = monotonic_ms() + 1000;
      continue;
    }
    if (gen_->apps && gen_->apps->on_exit(pid, status, monotonic_ms())) {
      if (!gen_->apps->fatal().empty() && !stopping_) fatal_ = gen_->apps->fatal();
      continue;
    }
    if (std::any_of(draining_apps_.begin(), draining_apps_.end(),
                    [&](DrainingApps& d) { return d.apps->on_exit(pid, status, monotonic_ms()); }))
      continue;
    auto old = std::find_if(handover_.old.begin(), handover_.old.end(),
                            [&](const WorkerProc& w) { return w.pid == pid; });
    if (old != handover_.old.end()) {  // a previous generation's worker, not retired yet
      PLOG_WARN("worker %d (pid %d) of generation %d exited during the reload", old->slot, (int)pid, old->gen);
      old->pid = 0;
      continue;
    }
    auto it = std::find_if(procs_.begin(), procs_.end(),
                           [&](const WorkerProc& w) { return w.pid == pid; });
    if (it == procs_.end()) continue;  // e.g. a new master started by an upgrade
    WorkerProc& w = *it;
    w.pid = 0;
    reclaim_slot(w.gen, w.slot, pid);
    if (stopping_) continue;
    uint64_t now = monotonic_ms();
    bool fast = now - w.started_ms < kFastDeathMs;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;  // recycled (max_requests)
    if (WIFSIGNALED(status))
      PLOG_WARN("worker %d (pid %d) killed by signal %d", w.slot, (int)pid, WTERMSIG(status));
    else if (!clean)
      PLOG_WARN("worker %d (pid %d) exited with status %d", w.slot, (int)pid, WEXITSTATUS(status));
    else
      PLOG_INFO("worker %d (pid %d) exited; replacing it", w.slot, (int)pid);
    fast = fast && !clean;
    fast_deaths_ = fast ? fast_deaths_ + 1 : 0;
    if (fast_deaths_ >= kMaxFastDeaths) {
      fatal_ = "workers keep dying at start-up (" + std::to_string(fast_deaths_) +
               " in a row); giving up";
      continue;
    }
    // Respawn at once; back off (up to 5 s) while workers die at start-up.
    uint64_t delay = fast ? std::min<uint64_t>(5000, 100ull << std::min(fast_deaths_, 6)) : 0;
    w.respawn_at_ms = now + std::max<uint64_t>(delay, 1);
  }
}

// A pool's servers_from file changed: apply it with a graceful reload (a
// broken file is reported with file:line and the old members stay).
bool Master::watched_files_changed() {
  for (auto& [path, state] : gen_->watched) {
    std::string now = file_state(path);
    if (now == state) continue;
    PLOG_NOTICE("%s changed: reloading its pool", path.c_str());
    state = now;  // a broken file is reported once, not every second
    return true;
  }
  return false;
}

// The old generation's workers (and app processes) are told to drain.
void Master::finish_handover() {
  if (!handover_.gen) return;
  for (WorkerProc& w : handover_.old) retire(w.pid, SIGTERM, &w);
  if (handover_.gen->apps) {
    DrainingApps d;
    d.apps = std::move(handover_.gen->apps);
    for (WorkerProc& w : handover_.old)
      if (w.pid > 0) d.workers.push_back(w.pid);
    d.stop_at_ms = monotonic_ms() + handover_.gen->site.server.graceful_timeout_ms + 1000;
    draining_apps_.push_back(std::move(d));
  }
  handover_.old.clear();
  park_stats(*handover_.gen);
  handover_.gen.reset();
}

// Every worker of the new generation runs its loop (its first heartbeat).
bool Master::new_workers_up() const {
  for (const WorkerProc& w : procs_)
    if (w.pid <= 0 || gen_->shm->workers()[w.slot].heartbeat_ms.load(std::memory_order_relaxed) == 0) return false;
  return true;
}

void Master::supervise_tick(uint64_t now) {
  if (stopping_) return;
  if (handover_.gen && (now >= handover_.deadline_ms || new_workers_up())) finish_handover();
  if (now >= next_watch_ms_) {
    next_watch_ms_ = now + 1000;
    if (watched_files_changed()) reload();
  }
  if (health_respawn_at_ms_ && now >= health_respawn_at_ms_) spawn_health();
  if (resolver_respawn_at_ms_ && now >= resolver_respawn_at_ms_) spawn_resolver();
  history_.tick(*gen_->shm, gen_->site, gen_->setup.pool_first_server, now,
                gen_->site.server.status_history_interval_ms);
  tls_tick(now);
  if (gen_->apps) gen_->apps->tick(now);
  stop_drained_apps(now, false);
  for (size_t i = 0; i < procs_.size(); i++)
    if (procs_[i].pid == 0 && procs_[i].respawn_at_ms && now >= procs_[i].respawn_at_ms)
      spawn((int)i);
  // Stuck workers (gunicorn's timeout): no loop tick for worker_timeout.
  uint32_t limit = gen_->site.server.worker_timeout_ms;
  if (limit) {
    for (WorkerProc& w : procs_) {
      if (w.pid <= 0) continue;
      uint64_t hb = gen_->shm->workers()[w.slot].heartbeat_ms.load(std::memory_order_relaxed);
      uint64_t last = std::max(hb, w.started_ms);
      if (now > last + limit) {
        PLOG_ERROR("worker %d (pid %d) stuck for %llu ms (worker_timeout); killing it", w.slot,
                   (int)w.pid, (unsigned long long)(now - last));
        kill(w.pid, SIGKILL);
        w.started_ms = now;  // one kill per timeout period
      }
    }
  }
  for (Retiring& r : retiring_)
    if (now >= r.kill_at_ms) {
      kill(r.pid, SIGKILL);
      r.kill_at_ms = now + 5000;
    }
}

void Master::reload() {
  sd_notify("RELOADING=1");
  PLOG_NOTICE("SIGHUP: reloading %s", load_.config.c_str());
  auto failed = [&](const std::string& why) {
    set_dumpable(gen_->site.server.core_dumps);
    PLOG_ERROR("reload failed, still serving the previous configuration: %s", why.c_str());
    notify_status("READY=1\n");
  };
  conf::Site site;
  try {
    site = conf::load_site(load_);
  } catch (const std::exception& e) {
    return failed(e.what());
  }
  for (const std::string& secret : conf::site_secrets(site)) log::add_secret(secret);
  if (std::string why = run_as_mismatch(site); !why.empty()) return failed(why);
  set_dumpable(site.server.core_dumps);  // for the processes this generation starts
  std::string err;
  std::unique_ptr<Generation> g = make_generation(std::move(site), &err);
  if (!g) {
    // Binding a port below 1024, or a socket in a directory only root may
    // write, is for the root the master no longer is.
    if (run_as_.set_user && run_as_.uid != 0 && err.find(strerror(EACCES)) != std::string::npos)
      err += " (the master runs as " + run_as_.text() + " since it bound its listeners at start-up: "
             "a new port below 1024, or a socket in a directory only root may write, needs a restart)";
    return failed(err);
  }
  carry_over_state(*gen_, *g);
  history_.start(*g->shm);
  // The new app processes are up and ready before any old one is stopped.
  if (!start_apps(*g, &err)) {
    discard_sockets(*g);
    gen_->shm->header().superseded.store(0, std::memory_order_release);  // it goes on serving
    return failed(err);
  }
  commit_sockets(*g);
  for (const auto& n : g->site.notices) PLOG_NOTICE("%s", n.c_str());
  // Start the new generation first, then drain the old one: the shared
  // listen sockets never lack an acceptor.
  // A reload still waiting for its workers to import the app: they never
  // accepted a connection, so they are the ones to go; the generation
  // before them keeps accepting until this reload's workers are up.
  bool drop_pending = handover_.gen && !new_workers_up();
  if (!drop_pending) finish_handover();
  std::vector<WorkerProc> old = std::move(procs_);
  std::unique_ptr<Generation> old_gen = std::move(gen_);
  old_gen->shm->dont_fork();  // the new workers map their own region only
  gen_ = std::move(g);
  if (opts_.workers <= 0 && gen_->site.server.workers > 0) n_workers_ = gen_->site.server.workers;
  procs_.assign(n_workers_, WorkerProc{});
  for (int i = 0; i < n_workers_; i++) spawn(i);
  if (drop_pending) {
    for (WorkerProc& w : old) retire(w.pid, SIGTERM, &w);
    park_stats(*old_gen);
  } else {
    handover_.old = std::move(old);
    handover_.gen = std::move(old_gen);
  }
  handover_.deadline_ms = monotonic_ms() + kHandoverMaxMs;
  // Workers that import a Python app accept only once it is loaded: the old
  // ones keep accepting until then (supervise_tick), so a reload never
  // leaves the listen sockets without a worker that takes connections.
  if (!gen_->embed_apps) finish_handover();
  stop_health();
  stop_resolver();
  // Close sockets no longer configured (the draining workers hold their own).
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    bool used = std::find(gen_->setup.listen_fds.begin(), gen_->setup.listen_fds.end(),
                          it->fd) != gen_->setup.listen_fds.end();
    if (!used) {
      close_socket(*it);
      it = sockets_.erase(it);
    } else {
      ++it;
    }
  }
  spawn_health();  // after the sockets the new generation dropped are closed
  spawn_resolver();
  PLOG_NOTICE("reloaded: generation %d serving with %d workers", gen_->id, n_workers_);
  notify_status("READY=1\n");
}

void Master::change_workers(int delta) {
  if (delta > 0) {
    if (procs_.size() >= kWorkerSlots || free_slot() < 0) {
      PLOG_WARN("SIGTTIN: all %u worker slots are taken (draining workers hold theirs)",
                kWorkerSlots);
      return;
    }
    procs_.push_back(WorkerProc{});
    n_workers_ = (int)procs_.size();
    spawn(n_workers_ - 1);
  } else {
    if (procs_.size() <= 1) {
      PLOG_WARN("SIGTTOU: keeping the last worker");
      return;
    }
    retire(procs_.back().pid, SIGTERM, &procs_.back());  // its slot stays taken until reaped
    procs_.pop_back();
    n_workers_ = (int)procs_.size();
  }
  PLOG_NOTICE("workers: %d", n_workers_);
  notify_status();
}


// The app processes stop last: until the workers are gone they may still be
// finishing requests on them.
void Master::stop_apps(bool graceful) {
  std::vector<pid_t> pids;
  if (gen_->apps) pids = gen_->apps->release();
  for (DrainingApps& d : draining_apps_)
    for (pid_t pid : d.apps->release()) pids.push_back(pid);
  draining_apps_.clear();
  int sig = graceful ? SIGTERM : SIGINT;
  for (pid_t pid : pids) kill(pid, sig);
  uint64_t deadline = monotonic_ms() + (graceful ? gen_->site.server.graceful_timeout_ms + 1000 : 2000);
  sigset_t set = handled_signals();
  while (!pids.empty()) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      pids.erase(std::remove(pids.begin(), pids.end(), pid), pids.end());
      continue;
    }
    if (pid < 0 && errno == ECHILD) break;
    uint64_t now = monotonic_ms();
    if (now >= deadline) {
      for (pid_t p : pids) kill(p, SIGKILL);
      deadline = now + 5000;
    }
    timespec ts{0, 50 * 1000000};
    sigtimedwait(&set, nullptr, &ts);
  }
}

int Master::shutdown(bool graceful) {
  finish_handover();
  stopping_ = true;
  // After a USR2 upgrade the new master carries on: make it systemd's main
  // process (only the main one may notify under NotifyAccess=main) rather
  // than announce a stop.
  sd_notify(upgrade_pid_ > 0 ? "MAINPID=" + std::to_string(upgrade_pid_) : "STOPPING=1");
  stop_health();
  stop_resolver();
  int sig = graceful ? SIGTERM : SIGINT;
  for (WorkerProc& w : procs_)
    if (w.pid > 0) kill(w.pid, sig);
  for (Retiring& r : retiring_) kill(r.pid, sig);
  uint64_t deadline =
      monotonic_ms() + (graceful ? gen_->site.server.graceful_timeout_ms + 1000 : 2000);
  sigset_t set = handled_signals();
  for (;;) {
    reap();
    bool any = !retiring_.empty();
    for (WorkerProc& w : procs_) any |= w.pid > 0;
    if (!any) break;
    uint64_t now = monotonic_ms();
    if (now >= deadline) {
      for (WorkerProc& w : procs_)
        if (w.pid > 0) kill(w.pid, SIGKILL);
      for (Retiring& r : retiring_) kill(r.pid, SIGKILL);
      deadline = now + 5000;
      continue;
    }
    timespec ts{0, 100 * 1000000};
    int s = sigtimedwait(&set, nullptr, &ts);
    if (s == SIGINT && graceful) {  // Ctrl-C during a graceful stop: hurry up
      for (WorkerProc& w : procs_)
        if (w.pid > 0) kill(w.pid, SIGINT);
      for (Retiring& r : retiring_) kill(r.pid, SIGINT);
    }
  }
  stop_apps(graceful);
  for (Socket& s : sockets_) close_socket(s);
  if (admin_.fd >= 0) close_socket(admin_);
  return 0;
}

int Master::run() {
  sigset_t set = handled_signals();
  sigprocmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  raise_nofile_limit();
  // Sockets handed over by systemd or by the previous master in an upgrade.
  accept_kick_fd_ = inherited_kick_fd(getenv(kInheritEnv) != nullptr);
  for (int fd : inherited_fds()) {
    Socket s{fd, socket_name(fd)};
    struct stat st;
    if (s.key.compare(0, 5, "unix:") == 0 && stat(s.key.c_str() + 5, &st) == 0) {
      s.unix_path = s.key.substr(5);  // ours now: the old master leaves it (upgrade_pid_)
      s.unix_ino = st.st_ino;
    }
    sockets_.push_back(s);
  }
  std::vector<int> activated = sd_listen_fds();
  for (int fd : activated) sockets_.push_back({fd, socket_name(fd)});  // systemd removes its files
  if (!activated.empty()) {
    // Socket activation: serve on exactly the sockets systemd passed, each
    // with the TLS mark of the configured listener it stands for.
    std::vector<conf::Listener> listen;
    for (int fd : activated) {
      std::string name = socket_name(fd);
      size_t colon = name.rfind(':');
      conf::Listener l;
      if (name.compare(0, 5, "unix:") == 0) {
        l.unix_path = name.substr(5);
      } else {
        l.host = name.substr(0, colon);
        if (l.host.size() > 2 && l.host.front() == '[') l.host = l.host.substr(1, l.host.size() - 2);
        l.port = (uint16_t)atoi(name.c_str() + colon + 1);
      }
      l.tls = activated_tls(gen_->site.server, l);
      listen.push_back(l);
    }
    gen_->site.server.listen = std::move(listen);
  }
  n_workers_ = opts_.workers > 0 ? opts_.workers : gen_->site.server.workers;
  if (n_workers_ <= 0) n_workers_ = (int)std::max(1u, std::thread::hardware_concurrency());
  std::string err;
  // Every listener is bound first, then the master drops to user/group:
  // a port below 1024 works, and everything started from here on (app
  // processes, workers, the health checker) runs as the user.
  std::vector<int> fds;
  std::vector<Socket> bound;
  // Private keys are read now, before the master drops privileges.
  bool ok = wanted_run_as(gen_->site.server, opts_, &run_as_, &err) && build_tls(gen_->site, &first_tls_, &err) &&
            open_sockets(gen_->site.server, &fds, &bound, &err) && open_admin_socket(&err);
  sockets_.insert(sockets_.end(), bound.begin(), bound.end());
  auto fail = [&](const std::string& why) {
    discard_sockets(*gen_);
    if (admin_.fd >= 0) close_socket(admin_);
    for (const Socket& s : bound) close_socket(s);
    fprintf(stderr, "pasture: %s\n", why.c_str());
    return 1;
  };
  if (!ok || !drop_to_user(bound, &err)) return fail(err);
  set_dumpable(gen_->site.server.core_dumps);
  std::unique_ptr<Generation> g = make_generation(std::move(gen_->site), &err);
  if (!g) return fail(err);
  gen_ = std::move(g);
  history_.start(*gen_->shm);
  if (!start_apps(*gen_, &err)) return fail(err);
  commit_sockets(*gen_);
  procs_.assign(n_workers_, WorkerProc{});
  for (int i = 0; i < n_workers_; i++) spawn(i);
  spawn_health();
  spawn_resolver();
  announce();  // after the fork: whoever waits for "serving on" finds workers up
  char mainpid[64];
  snprintf(mainpid, sizeof mainpid, "READY=1\nMAINPID=%d\n", (int)getpid());
  notify_status(mainpid);

  for (;;) {
    timespec ts{0, 200 * 1000000};
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGCHLD || sig < 0) reap();
    if (!fatal_.empty()) {
      PLOG_ERROR("%s", fatal_.c_str());
      shutdown(false);
      return 1;
    }
    switch (sig) {
      case SIGTERM:
      case SIGQUIT:
        PLOG_INFO("signal %d: graceful shutdown", sig);
        return shutdown(true);
      case SIGINT:
        PLOG_INFO("SIGINT: fast shutdown");
        return shutdown(false);
      case SIGHUP:
        reload();
        break;
      case SIGTTIN:
        change_workers(+1);
        break;
      case SIGTTOU:
        change_workers(-1);
        break;
      case SIGUSR2:
        upgrade_binary();
        break;
      case SIGUSR1:
        if (!opts_.log_file.empty()) {  // logrotate: reopen --log-file onto fds 1 and 2
          std::string lerr;
          if (!redirect_output(opts_.log_file, &lerr)) PLOG_ERROR("SIGUSR1: %s", lerr.c_str());
        }
        for (WorkerProc& w : procs_)
          if (w.pid > 0) kill(w.pid, SIGUSR1);
        break;
      default:
        break;
    }
    supervise_tick(monotonic_ms());
    if (admin_tick(monotonic_ms())) return shutdown(true);
  }
}

}  // namespace pasture::master
