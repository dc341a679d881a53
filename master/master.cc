#include "master/master.h"

#include <netdb.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>

#include "common/balancer.h"
#include "common/log.h"

namespace pasture::master {
namespace {

constexpr uint64_t kFastDeathMs = 1000;  // a worker dying sooner failed to start
constexpr int kMaxFastDeaths = 10;       // ...this many times in a row: give up

sigset_t handled_signals() {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU})
    sigaddset(&s, sig);
  return s;
}

}  // namespace

uint64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Master::Master(conf::Site site, ServeOptions opts) : site_(std::move(site)), opts_(opts) {
  n_workers_ = opts_.workers > 0 ? opts_.workers : site_.server.workers;
  if (n_workers_ <= 0) n_workers_ = (int)std::max(1u, std::thread::hardware_concurrency());
}

bool Master::resolve_upstreams(std::string* err) {
  setup_.servers.resize(site_.pools.size());
  uint32_t next = 0;
  for (size_t i = 0; i < site_.pools.size(); i++) {
    const conf::Pool& p = site_.pools[i];
    setup_.pool_first_server.push_back(next);
    next += (uint32_t)p.servers.size();
    for (const conf::UpstreamServer& s : p.servers) {
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
      setup_.servers[i].push_back(r);
    }
  }
  return true;
}

bool Master::prepare(std::string* err) {
  for (const conf::Pool& p : site_.pools) {
    if (p.servers.empty()) {
      *err = p.loc.str() + ": pool " + p.name + " has no servers";
      return false;
    }
    lb::Method m = static_cast<lb::Method>(static_cast<int>(p.method));
    if (!lb::make_balancer(m)) {
      *err = p.loc.str() + ": balancing method " + lb::method_name(m) + " in [" + p.name +
             "] is not supported yet";
      return false;
    }
  }
  if (!resolve_upstreams(err)) return false;
  if (!bind_listeners(site_.server, &listeners_, err)) return false;
  shm::LayoutSizes sz;
  sz.n_pools = (uint32_t)site_.pools.size();
  for (const conf::Pool& p : site_.pools) sz.n_servers += (uint32_t)p.servers.size();
  sz.n_workers = (uint32_t)std::max(n_workers_, 64);
  if (!shm_.create(sz)) {
    *err = std::string("mmap(MAP_SHARED|MAP_ANONYMOUS, ") + std::to_string(sz.total()) +
           ") failed: " + strerror(errno);
    return false;
  }
  setup_.site = &site_;
  setup_.shm = &shm_;
  for (const BoundListener& l : listeners_) setup_.listen_fds.push_back(l.fd);
  return true;
}

void Master::announce() {
  // paster serve prints these two lines; scripts wait for "serving on".
  for (const BoundListener& l : listeners_) {
    if (l.cfg.host == "0.0.0.0")
      printf("serving on 0.0.0.0:%u view at http://127.0.0.1:%u\n", l.cfg.port, l.cfg.port);
    else
      printf("serving on %s\n", l.cfg.url().c_str());
  }
  fflush(stdout);
}

void Master::spawn(int slot) {
  setup_.slot = slot;
  pid_t pid = fork();
  if (pid < 0) {
    PLOG_ERROR("fork() failed: %s", strerror(errno));
    procs_[slot].respawn_at_ms = monotonic_ms() + 1000;
    return;
  }
  if (pid == 0) {
    char role[32];
    snprintf(role, sizeof role, "worker %d", slot);
    log::set_role(role);
    int rc = worker::run(setup_);
    fflush(nullptr);
    _exit(rc);
  }
  procs_[slot].pid = pid;
  procs_[slot].started_ms = monotonic_ms();
  procs_[slot].respawn_at_ms = 0;
  PLOG_INFO("worker %d started, pid %d", slot, (int)pid);
}

void Master::reap() {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (size_t i = 0; i < procs_.size(); i++) {
      WorkerProc& w = procs_[i];
      if (w.pid != pid) continue;
      w.pid = 0;
      if (stopping_) break;
      uint64_t now = monotonic_ms();
      bool fast = now - w.started_ms < kFastDeathMs;
      if (WIFSIGNALED(status))
        PLOG_WARN("worker %zu (pid %d) killed by signal %d", i, (int)pid, WTERMSIG(status));
      else
        PLOG_WARN("worker %zu (pid %d) exited with status %d", i, (int)pid, WEXITSTATUS(status));
      fast_deaths_ = fast ? fast_deaths_ + 1 : 0;
      if (fast_deaths_ >= kMaxFastDeaths) {
        fatal_ = "workers keep dying at start-up (" + std::to_string(fast_deaths_) +
                 " in a row); giving up";
        break;
      }
      // Respawn at once; back off (up to 5 s) while workers die at start-up.
      uint64_t delay = fast ? std::min<uint64_t>(5000, 100ull << std::min(fast_deaths_, 6)) : 0;
      w.respawn_at_ms = now + delay;
      break;
    }
  }
}

void Master::supervise_tick(uint64_t now) {
  if (stopping_) return;
  for (size_t i = 0; i < procs_.size(); i++)
    if (procs_[i].pid == 0 && procs_[i].respawn_at_ms && now >= procs_[i].respawn_at_ms)
      spawn((int)i);
}

int Master::shutdown(bool graceful) {
  stopping_ = true;
  int sig = graceful ? SIGTERM : SIGINT;
  for (WorkerProc& w : procs_)
    if (w.pid > 0) kill(w.pid, sig);
  uint64_t deadline = monotonic_ms() + (graceful ? setup_.graceful_timeout_ms + 1000 : 2000);
  sigset_t set = handled_signals();
  for (;;) {
    reap();
    bool any = false;
    for (WorkerProc& w : procs_) any |= w.pid > 0;
    if (!any) break;
    uint64_t now = monotonic_ms();
    if (now >= deadline) {
      for (WorkerProc& w : procs_)
        if (w.pid > 0) kill(w.pid, SIGKILL);
      deadline = now + 5000;
      continue;
    }
    timespec ts{0, 100 * 1000000};
    int s = sigtimedwait(&set, nullptr, &ts);
    if (s == SIGINT && graceful) {  // Ctrl-C during a graceful stop: hurry up
      for (WorkerProc& w : procs_)
        if (w.pid > 0) kill(w.pid, SIGINT);
    }
  }
  for (BoundListener& l : listeners_) close(l.fd);
  return 0;
}

int Master::run() {
  sigset_t set = handled_signals();
  sigprocmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::string err;
  if (!prepare(&err)) {
    fprintf(stderr, "pasture: %s\n", err.c_str());
    return 1;
  }
  procs_.resize(n_workers_);
  for (int i = 0; i < n_workers_; i++) spawn(i);
  announce();  // after the fork: whoever waits for "serving on" finds workers up

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
      default:
        break;
    }
    supervise_tick(monotonic_ms());
  }
}

}  // namespace pasture::master
