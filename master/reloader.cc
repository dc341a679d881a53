#include "master/reloader.h"

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>

#include "common/log.h"
#include "conf/pyutil.h"
#include "master/daemon.h"
#include "master/master.h"

namespace pasture::master {
namespace {

constexpr uint64_t kTickMs = 100;
constexpr uint64_t kHurryAfterMs = 2000;  // a restart sends SIGINT after TERM this long
constexpr uint64_t kKillAfterMs = 7000;   // ...and SIGKILL
constexpr uint64_t kMinLifeMs = 1000;     // --monitor-restart: slower than this, no pause

struct Stamp {
  int64_t mtime_ns = 0;
  off_t size = 0;
  ino_t ino = 0;
  bool operator!=(const Stamp& o) const {
    return mtime_ns != o.mtime_ns || size != o.size || ino != o.ino;
  }
};
using Snapshot = std::map<std::string, Stamp>;

Snapshot snapshot(const std::string& config_file) {
  Snapshot snap;
  for (const std::string& f : reload_watch_list(config_file)) {
    struct stat st;
    if (stat(f.c_str(), &st) != 0) continue;  // gone for now (an editor's rename)
    snap[f] = {(int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, st.st_size, st.st_ino};
  }
  return snap;
}

// The first file of `before` that is there now with another stamp. Files
// that appear or vanish do not count: paster too only compares mtimes.
std::string first_change(const Snapshot& before, const Snapshot& now) {
  for (const auto& [path, stamp] : now) {
    auto it = before.find(path);
    if (it != before.end() && it->second != stamp) return path;
  }
  return "";
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "/proc/self/exe";
  std::string exe(buf, n);
  if (exe.size() > 10 && exe.compare(exe.size() - 10, 10, " (deleted)") == 0)
    exe.resize(exe.size() - 10);  // rebuilt: run the new file at that path
  return exe;
}

pid_t start_child(const std::string& exe, const std::vector<std::string>& argv, const char* env_key) {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid != 0) {
    if (pid < 0) fprintf(stderr, "pasture: fork() failed: %s\n", strerror(errno));
    return pid;
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  setenv(env_key, "true", 1);
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  execv(exe.c_str(), av.data());
  fprintf(stderr, "pasture: execv(%s) failed: %s\n", exe.c_str(), strerror(errno));
  _exit(127);
}

int exit_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// What ended a child's run.
enum class End { kExited, kRestart, kStop, kInterrupt };

struct ChildRun {
  End end = End::kExited;
  int status = 0;
};

// Supervises one child until it exits.
ChildRun watch_child(pid_t child, const MonitorOptions& o, const sigset_t& set) {
  ChildRun run;
  int status = 0;
  Snapshot snap = o.reload ? snapshot(o.config_file) : Snapshot{};
  const uint64_t interval_ms = std::max<uint64_t>(10, (uint64_t)(o.interval * 1000));
  uint64_t next_check = monotonic_ms() + interval_ms;
  uint64_t stop_sent = 0;
  int stage = 0;  // restart escalation: 0 TERM sent, 1 INT sent, 2 KILL sent
  for (;;) {
    timespec ts{0, (long)kTickMs * 1000000};
    int sig = sigtimedwait(&set, nullptr, &ts);
    // Orphans of a dead child master are ours too (subreaper): reap them all.
    for (pid_t r; (r = waitpid(-1, &status, WNOHANG)) > 0;) {
      if (r != child) continue;
      run.status = status;
      return run;
    }
    switch (sig) {
      case SIGTERM:
      case SIGQUIT:
        kill(child, sig);
        run.end = End::kStop;
        break;
      case SIGINT:
        kill(child, SIGINT);
        run.end = End::kInterrupt;
        break;
      case SIGUSR1:
        if (!o.log_file.empty()) {
          std::string err;
          if (!redirect_output(o.log_file, &err)) PLOG_ERROR("SIGUSR1: %s", err.c_str());
        }
        kill(child, sig);
        break;
      case SIGHUP:
      case SIGTTIN:
      case SIGTTOU:
        kill(child, sig);
        break;
      default:
        break;
    }
    uint64_t now = monotonic_ms();
    if (o.reload && run.end == End::kExited && now >= next_check) {
      next_check = now + interval_ms;
      std::string changed = first_change(snap, snapshot(o.config_file));
      if (!changed.empty()) {
        fprintf(stderr, "%s changed; reloading...\n", changed.c_str());
        fflush(stderr);
        kill(child, SIGTERM);
        run.end = End::kRestart;
        stop_sent = now;
      }
    }
    if (run.end == End::kRestart && stage == 0 && now >= stop_sent + kHurryAfterMs) {
      kill(child, SIGINT);
      stage = 1;
    } else if (run.end == End::kRestart && stage == 1 && now >= stop_sent + kKillAfterMs) {
      kill(-child, SIGKILL);  // no group of its own: harmless ESRCH
      kill(child, SIGKILL);
      stage = 2;
    }
  }
}

// A child master that died without stopping its workers (SIGKILL, crash)
// leaves them holding the listen sockets the next child must bind. As the
// subreaper they became our children: end them before starting anew.
void kill_orphans() {
  std::ifstream f("/proc/self/task/" + std::to_string(getpid()) + "/children");
  int pid = 0;
  while (f >> pid) {
    PLOG_WARN("killing pid %d, left over by the previous server", pid);
    kill(pid, SIGKILL);
  }
  while (waitpid(-1, nullptr, 0) > 0) {
  }
}

}  // namespace

std::vector<std::string> reload_watch_list(const std::string& config_file) {
  std::string config = conf::py::abspath(config_file);
  std::vector<std::string> files = {config};
  std::string dir = conf::py::dirname(config);
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      auto ends = [&](const char* ext) {
        size_t n = strlen(ext);
        return name.size() > n && name.compare(name.size() - n, n, ext) == 0;
      };
      if (name[0] == '.' || !(ends(".ini") || ends(".yaml") || ends(".yml"))) continue;
      std::string path = dir + "/" + name;
      if (path != config) files.push_back(path);
    }
    closedir(d);
  }
  std::sort(files.begin() + 1, files.end());
  return files;
}

int run_monitor(const MonitorOptions& o, const std::vector<std::string>& argv) {
  if (o.verbosity > 0) {
    printf("%s\n", o.reload ? "Starting subprocess with file monitor"
                            : "Starting subprocess with monitor parent");
    fflush(stdout);
  }
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU})
    sigaddset(&set, sig);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  log::set_role("monitor");
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const std::string exe = self_exe();
  const char* env_key = o.reload ? kReloaderEnv : kMonitorEnv;
  for (;;) {
    uint64_t started = monotonic_ms();
    pid_t child = start_child(exe, argv, env_key);
    if (child < 0) return 1;
    ChildRun run = watch_child(child, o, set);
    kill_orphans();
    if (run.end == End::kInterrupt) {
      printf("^C caught in monitor process\n");
      fflush(stdout);
      return 1;
    }
    if (run.end == End::kStop) return exit_code(run.status);
    // paster's protocol: a reloading child exits 3 to be started again.
    if (o.reload && run.end == End::kExited && exit_code(run.status) != 3)
      return exit_code(run.status);
    if (!o.reload && monotonic_ms() - started < kMinLifeMs) {
      // Dying at start-up: pause instead of spinning, still obeying signals.
      timespec ts{1, 0};
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig == SIGTERM || sig == SIGQUIT) return exit_code(run.status);
      if (sig == SIGINT) {
        printf("^C caught in monitor process\n");
        fflush(stdout);
        return 1;
      }
    }
    if (o.verbosity > 0) {
      printf("-------------------- Restarting --------------------\n");
      fflush(stdout);
    }
  }
}

}  // namespace pasture::master
