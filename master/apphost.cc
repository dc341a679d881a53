#include "master/apphost.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "master/master.h"
#include "master/notify.h"

namespace pasture::master {
namespace {

constexpr int kMaxFastDeaths = 10;  // app processes dying before ready, in a row: give up

// Undo what the master set up for itself before exec'ing a child, and keep
// what only the master may use: $NOTIFY_SOCKET, and ambient capabilities
// (systemd's AmbientCapabilities=CAP_NET_BIND_SERVICE is for pasture's
// listeners, not for the app's code).
void reset_for_exec() {
  forget_notify_socket();
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
}

// Runs `python -c "import paste.deploy"`; "" if it works, else why not.
std::string probe_python(const std::string& python) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return std::string("pipe2() failed: ") + strerror(errno);
  pid_t pid = fork();
  if (pid < 0) {
    close(out[0]);
    close(out[1]);
    return std::string("fork() failed: ") + strerror(errno);
  }
  if (pid == 0) {
    reset_for_exec();
    dup2(out[1], 1);
    dup2(out[1], 2);
    execlp(python.c_str(), python.c_str(), "-c", "import paste.deploy", (char*)nullptr);
    fprintf(stderr, "execvp(%s) failed: %s\n", python.c_str(), strerror(errno));
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, n);
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  size_t nl = text.rfind('\n');
  std::string last = nl == std::string::npos ? text : text.substr(nl + 1);
  return last.empty() ? "exit status " + std::to_string(WEXITSTATUS(status)) : last;
}

bool is_file(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

std::string find_python(const std::string& wanted, std::string* err) {
  std::vector<std::string> tried = wanted.empty()
                                       ? std::vector<std::string>{"python3", "/usr/bin/python3"}
                                       : std::vector<std::string>{wanted};
  std::string why;
  for (const std::string& py : tried) {
    std::string e = probe_python(py);
    if (e.empty()) return py;
    why += (why.empty() ? "" : "; ") + py + ": " + e;
  }
  *err = "no Python interpreter that can import paste.deploy for the Python apps (tried " + why +
         "); install python3-pastedeploy or name one with `python = /path/to/python3` in the "
         "server section or --python";
  return "";
}

std::string find_runner(const std::string& self_exe) {
  if (const char* env = getenv("PASTURE_WSGI_RUNNER"); env && *env) return is_file(env) ? env : "";
  std::string dir = self_exe.substr(0, self_exe.rfind('/') + 1);
  for (const std::string& p : {dir + "pasture_wsgi.py", dir + "../python/pasture_wsgi.py"})
    if (is_file(p)) return p;
  return "";
}

AppHost::~AppHost() {
  bool owner = getpid() == owner_pid_;  // not in a forked child that never exec'ed
  for (Proc& p : procs_) {
    if (p.pid > 0) kill(p.pid, SIGKILL);
    if (p.ready_fd >= 0) close(p.ready_fd);
    if (p.listen_fd >= 0) close(p.listen_fd);
    if (owner && !p.path.empty()) unlink(p.path.c_str());
  }
  if (owner && !dir_.empty()) rmdir(dir_.c_str());
}

bool AppHost::prepare(conf::Site& site, std::string* err) {
  apps_ = site.python_apps;
  owner_pid_ = getpid();
  // A private directory (0700: only this user's processes may connect) under
  // $XDG_RUNTIME_DIR, else /tmp, for one unix socket per app process.
  const char* runtime = getenv("XDG_RUNTIME_DIR");
  std::string base = runtime && *runtime == '/' && access(runtime, W_OK | X_OK) == 0 ? runtime : "/tmp";
  std::string tmpl = base + "/pasture-apps-XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    *err = "mkdtemp(" + tmpl + ") for the app processes' sockets failed: " + strerror(errno);
    return false;
  }
  dir_ = tmpl;
  for (size_t a = 0; a < apps_.size(); a++) {
    conf::Pool& pool = site.pools[apps_[a].pool];
    pool.servers.clear();
    for (int s = 0; s < opts_.processes; s++) {
      Proc p;
      p.app = (int)a;
      p.slot = s;
      p.path = dir_ + "/app" + std::to_string(a) + "-" + std::to_string(s) + ".sock";
      sockaddr_un sun{};
      sun.sun_family = AF_UNIX;
      if (p.path.size() >= sizeof sun.sun_path) {
        *err = "app process socket path too long: " + p.path + " (set XDG_RUNTIME_DIR to a shorter directory)";
        return false;
      }
      memcpy(sun.sun_path, p.path.data(), p.path.size());
      int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0 || listen(fd, 1024) != 0) {
        *err = "socket/bind/listen(unix:" + p.path + ") for app process failed: " + strerror(errno);
        if (fd >= 0) close(fd);
        return false;
      }
      p.listen_fd = fd;
      procs_.push_back(p);
      conf::UpstreamServer u;
      u.unix_path = p.path;
      u.loc = apps_[a].loc;
      pool.servers.push_back(u);
    }
  }
  return true;
}

std::string AppHost::what(const Proc& p) const {
  const conf::PythonApp& a = apps_[p.app];
  std::string name = a.section.empty() ? a.uri : "[" + a.section + "]";
  return "app " + name + " process " + std::to_string(p.slot);
}

bool AppHost::spawn(Proc& p, uint64_t now) {
  const conf::PythonApp& app = apps_[p.app];
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    PLOG_ERROR("pipe2() failed: %s", strerror(errno));
    p.respawn_at_ms = now + 1000;
    return false;
  }
  std::vector<std::string> args = {opts_.python, opts_.runner, "--uri", app.uri,
                                   "--listen-fd", std::to_string(p.listen_fd),
                                   "--ready-fd", std::to_string(ready[1])};
  if (!app.name.empty()) args.insert(args.end(), {"--name", app.name});
  for (const std::string& n : app.pipeline) args.insert(args.end(), {"--pipeline", n});
  size_t slash = app.uri.rfind('/');
  if (app.uri.compare(0, 7, "config:") == 0 && slash != std::string::npos)
    args.insert(args.end(), {"--relative-to", app.uri.substr(7, slash - 7)});
  for (const auto& [k, v] : opts_.vars) args.insert(args.end(), {"--var", k + "=" + v});
  pid_t master = getpid();  // compared in the child: getppid() after fork could already be 1
  pid_t pid = fork();
  if (pid < 0) {
    PLOG_ERROR("fork() failed: %s", strerror(errno));
    close(ready[0]);
    close(ready[1]);
    p.respawn_at_ms = now + 1000;
    return false;
  }
  if (pid == 0) {
    reset_for_exec();
    // If the master dies (even by SIGKILL), the app process stops too, as
    // workers do, instead of serving a socket nobody forwards to forever.
    // Checked after arming: the master may be gone already.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master) _exit(0);
    fcntl(p.listen_fd, F_SETFD, 0);
    fcntl(ready[1], F_SETFD, 0);
    setenv("PASTURE_SERVER_HOST", opts_.public_host.c_str(), 1);
    setenv("PASTURE_SERVER_PORT", std::to_string(opts_.public_port).c_str(), 1);
    setenv("PASTURE_GRACEFUL_TIMEOUT", std::to_string(opts_.graceful_timeout_ms / 1000.0).c_str(), 1);
    if (opts_.reload_interval > 0)
      setenv("PASTURE_RELOAD", std::to_string(opts_.reload_interval).c_str(), 1);
    // exec made the process dumpable again; the runner undoes that.
    if (!opts_.core_dumps) setenv("PASTURE_NO_CORE_DUMPS", "1", 1);
    std::vector<char*> av;
    for (auto& s : args) av.push_back(const_cast<char*>(s.c_str()));
    av.push_back(nullptr);
    execvp(av[0], av.data());
    fprintf(stderr, "pasture: execvp(%s) failed: %s\n", av[0], strerror(errno));
    _exit(127);
  }
  close(ready[1]);
  p.pid = pid;
  p.ready_fd = ready[0];
  p.ready = false;
  p.started_ms = now;
  p.respawn_at_ms = 0;
  PLOG_INFO("%s started, pid %d (generation %d)", what(p).c_str(), (int)pid, opts_.generation);
  return true;
}

// Reads the runner's "ready <pid> <server>" line, waiting up to wait_ms.
bool AppHost::poll_ready(Proc& p, int wait_ms) {
  if (p.ready_fd < 0) return p.ready;
  pollfd pfd{p.ready_fd, POLLIN, 0};
  if (poll(&pfd, 1, wait_ms) <= 0) return false;
  char buf[128];
  ssize_t n = read(p.ready_fd, buf, sizeof buf - 1);
  if (n < 0 && errno == EINTR) return false;
  close(p.ready_fd);
  p.ready_fd = -1;
  if (n > 5 && memcmp(buf, "ready", 5) == 0) {
    p.ready = true;
    p.fast_deaths = 0;
    buf[n] = 0;
    if (char* nl = strchr(buf, '\n')) *nl = 0;
    PLOG_INFO("%s ready (%s)", what(p).c_str(), buf);
  }
  return p.ready;
}

bool AppHost::start(uint64_t timeout_ms, std::string* err) {
  uint64_t now = monotonic_ms();
  for (Proc& p : procs_)
    if (!spawn(p, now)) {
      *err = "cannot start " + what(p);
      return false;
    }
  uint64_t deadline = now + timeout_ms;
  for (;;) {
    bool all = true;
    for (Proc& p : procs_) {
      if (p.ready) continue;
      poll_ready(p, 0);
      if (p.ready) continue;
      int status = 0;
      if (waitpid(p.pid, &status, WNOHANG) == p.pid) {
        p.pid = 0;
        const conf::PythonApp& a = apps_[p.app];
        std::string how = WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                              : "exited with status " + std::to_string(WEXITSTATUS(status));
        *err = a.loc.str() + ": cannot load " + (a.section.empty() ? a.uri : "[" + a.section + "]") +
               " (" + a.factory + ") in Python: its process " + how +
               (WIFEXITED(status) && WEXITSTATUS(status) == 3 ? " (the traceback is above)" : "");
        return false;
      }
      all = false;
    }
    if (all) return true;
    if (monotonic_ms() >= deadline) {
      for (const Proc& p : procs_)
        if (!p.ready) {
          *err = what(p) + " not ready after " + std::to_string(timeout_ms / 1000) + " s";
          return false;
        }
    }
    usleep(20 * 1000);
  }
}

bool AppHost::on_exit(pid_t pid, int status, uint64_t now) {
  auto it = std::find_if(procs_.begin(), procs_.end(), [&](const Proc& p) { return p.pid == pid; });
  if (it == procs_.end()) return false;
  Proc& p = *it;
  p.pid = 0;
  if (p.ready_fd >= 0) poll_ready(p, 0);  // it may have got ready just before dying
  if (p.ready_fd >= 0) close(p.ready_fd);
  p.ready_fd = -1;
  if (released_) return true;
  bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;  // e.g. --reload saw a change
  if (WIFSIGNALED(status))
    PLOG_WARN("%s (pid %d) killed by signal %d; respawning", what(p).c_str(), (int)pid, WTERMSIG(status));
  else if (!clean)
    PLOG_WARN("%s (pid %d) exited with status %d; respawning", what(p).c_str(), (int)pid,
              WEXITSTATUS(status));
  else
    PLOG_INFO("%s (pid %d) exited; respawning", what(p).c_str(), (int)pid);
  bool fast = !p.ready && !clean;
  p.ready = false;
  p.fast_deaths = fast ? p.fast_deaths + 1 : 0;
  if (p.fast_deaths >= kMaxFastDeaths)
    fatal_ = what(p) + " keeps dying before it is ready (" + std::to_string(p.fast_deaths) +
             " in a row); giving up";
  // Back off (up to 5 s) while it cannot start; else at once: the socket keeps
  // the connections meanwhile.
  uint64_t delay = fast ? std::min<uint64_t>(5000, 100ull << std::min(p.fast_deaths, 6)) : 1;
  p.respawn_at_ms = now + delay;
  return true;
}

void AppHost::tick(uint64_t now) {
  if (released_) return;
  for (Proc& p : procs_) {
    if (p.pid == 0 && p.respawn_at_ms && now >= p.respawn_at_ms)
      spawn(p, now);
    else if (p.pid > 0 && !p.ready)
      poll_ready(p, 0);
  }
}

std::vector<pid_t> AppHost::release() {
  released_ = true;
  std::vector<pid_t> out;
  for (Proc& p : procs_) {
    if (p.pid > 0) out.push_back(p.pid);
    p.pid = 0;
    p.respawn_at_ms = 0;
  }
  return out;
}

std::vector<pid_t> AppHost::pids() const {
  std::vector<pid_t> out;
  for (const Proc& p : procs_)
    if (p.pid > 0) out.push_back(p.pid);
  return out;
}

}  // namespace pasture::master
