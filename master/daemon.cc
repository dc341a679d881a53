#include "master/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "conf/pyutil.h"

namespace pasture::master {
namespace {

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// A zombie still answers kill(pid, 0); it is not running all the same.
bool is_zombie(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

bool alive(pid_t pid) {
  if (kill(pid, 0) != 0 && errno != EPERM) return false;
  return !is_zombie(pid);
}

// Python's str(OSError): "[Errno 2] No such file or directory: 'x'".
std::string os_error(int err, const std::string& path) {
  return "[Errno " + std::to_string(err) + "] " + strerror(err) + ": " + conf::py::repr(path);
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

pid_t read_pid_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return 0;
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = conf::py::strip(ss.str());
  char* end = nullptr;
  long n = strtol(s.c_str(), &end, 10);
  if (s.empty() || *end || n <= 0 || n > 0x7fffffff) return 0;
  return static_cast<pid_t>(n);
}

pid_t live_pid_file(const std::string& path) {
  pid_t pid = read_pid_file(path);
  return pid > 0 && alive(pid) ? pid : 0;
}

int stop_daemon(const std::string& pid_file) {
  if (!exists(pid_file)) {
    printf("No PID file exists in %s\n", pid_file.c_str());
    return 1;
  }
  pid_t pid = read_pid_file(pid_file);
  if (!pid) {
    printf("Not a valid PID file in %s\n", pid_file.c_str());
    return 1;
  }
  if (!live_pid_file(pid_file)) {
    printf("PID in %s is not valid (deleting)\n", pid_file.c_str());
    if (unlink(pid_file.c_str()) != 0) {
      printf("Could not delete: %s\n", os_error(errno, pid_file).c_str());
      return 2;
    }
    return 1;
  }
  // Graceful first: the master drains its workers on SIGTERM.
  kill(pid, SIGTERM);
  bool gone = false;
  for (int i = 0; i < 100 && !(gone = !alive(pid)); i++) sleep_ms(100);
  // Then paster's way: SIGINT (pasture's fast stop) once a second.
  for (int i = 0; i < 10 && !gone; i++) {
    kill(pid, SIGINT);
    for (int j = 0; j < 10 && !(gone = !alive(pid)); j++) sleep_ms(100);
  }
  if (!gone) {
    printf("failed to kill web process %d\n", (int)pid);
    return 3;
  }
  unlink(pid_file.c_str());  // usually removed already by the exiting master
  return 0;
}

int show_status(const std::string& pid_file) {
  if (!exists(pid_file)) {
    printf("No PID file %s\n", pid_file.c_str());
    return 1;
  }
  if (!read_pid_file(pid_file)) {
    printf("No PID in file %s\n", pid_file.c_str());
    return 1;
  }
  pid_t pid = live_pid_file(pid_file);
  if (!pid) {
    printf("PID None in %s is not running\n", pid_file.c_str());  // sic: paster prints None
    return 1;
  }
  printf("Server running in PID %d\n", (int)pid);
  return 0;
}

bool change_user_group(const std::string& user, const std::string& group, int verbosity,
                       std::string* err) {
  if (user.empty() && group.empty()) return true;
  auto number = [](const std::string& s, long* out) {
    char* end = nullptr;
    *out = strtol(s.c_str(), &end, 10);
    return !s.empty() && !*end && *out >= 0;
  };
  long n = 0;
  gid_t gid = 0;
  std::string group_name = group;
  if (!group.empty()) {
    const struct group* g = number(group, &n) ? getgrgid((gid_t)n) : getgrnam(group.c_str());
    if (!g) {
      *err = "Bad group: " + conf::py::repr(group) + "; no such group exists";
      return false;
    }
    gid = g->gr_gid;
    group_name = g->gr_name;
  }
  if (user.empty()) {
    if (verbosity > 0) printf("Changing group to %s (%d)\n", group_name.c_str(), (int)gid);
    fflush(stdout);
    if (setgroups(1, &gid) != 0 || setgid(gid) != 0) {
      *err = "setgid(" + std::to_string(gid) + ") failed: " + strerror(errno);
      return false;
    }
    return true;
  }
  const struct passwd* pw = number(user, &n) ? getpwuid((uid_t)n) : getpwnam(user.c_str());
  if (!pw) {
    *err = "Bad username: " + conf::py::repr(user) + "; no such user exists";
    return false;
  }
  std::string user_name = pw->pw_name;
  uid_t uid = pw->pw_uid;
  // The user's primary group unless --group names one, for a numeric uid too
  // (paster keeps gid 0 there, and initgroups(user, 0) makes root a
  // supplementary group of every process).
  if (group.empty()) gid = pw->pw_gid;
  if (verbosity > 0) {
    printf("Changing user to %s:%s (%d:%d)\n", user_name.c_str(),
           group.empty() ? "(unknown)" : group_name.c_str(), (int)uid, (int)gid);
    fflush(stdout);
  }
  // Supplementary groups: the user's groups (from the group database) plus gid.
  if (initgroups(user_name.c_str(), gid) != 0) {
    *err = "initgroups(" + user_name + ", " + std::to_string(gid) + ") failed: " + strerror(errno);
    return false;
  }
  if (setgid(gid) != 0) {
    *err = "setgid(" + std::to_string(gid) + ") failed: " + strerror(errno);
    return false;
  }
  if (setuid(uid) != 0) {
    *err = "setuid(" + std::to_string(uid) + ") failed: " + strerror(errno);
    return false;
  }
  return true;
}

bool touch_file(const std::string& path, std::string* err) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) {
    *err = os_error(errno, path);
    return false;
  }
  close(fd);
  return true;
}

void daemonize() {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "pasture: fork() failed: %s\n", strerror(errno));
    _exit(1);
  }
  if (pid > 0) {
    // Returns before the config is loaded, as paster does, but only once the
    // session leader below has forked the daemon: whatever kills the
    // caller's process group as soon as this returns (a shell's job
    // control, a test harness) must not catch the daemon still in it.
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  setsid();
  pid = fork();
  if (pid < 0) _exit(1);
  if (pid > 0) _exit(0);
  if (syscall(SYS_close_range, 0U, ~0U, 0U) != 0)
    for (int fd = 0; fd < 1024; fd++) close(fd);
  int null_fd = open("/dev/null", O_RDWR);  // fd 0
  if (null_fd == 0) {
    dup2(0, 1);
    dup2(0, 2);
  }
}

bool redirect_output(const std::string& path, std::string* err) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) {
    *err = "open(" + path + ", O_APPEND) failed: " + strerror(errno);
    return false;
  }
  fflush(stdout);
  fflush(stderr);
  dup2(fd, STDOUT_FILENO);
  dup2(fd, STDERR_FILENO);
  close(fd);
  return true;
}

bool PidFile::write(const std::string& path, int verbosity, std::string* err) {
  pid_t pid = getpid();
  if (verbosity > 1) printf("Writing PID %d to %s\n", (int)pid, path.c_str());
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  std::string s = std::to_string(pid);
  if (fd < 0 || ::write(fd, s.data(), s.size()) != (ssize_t)s.size()) {
    *err = "Error: Unable to write to pid file: " + os_error(errno, path);
    if (fd >= 0) close(fd);
    return false;
  }
  close(fd);
  path_ = path;
  pid_ = pid;
  verbosity_ = verbosity;
  return true;
}

// paster's _remove_pid_file, messages included.
void PidFile::remove() {
  if (path_.empty() || pid_ != getpid()) return;
  std::string path = std::exchange(path_, "");
  if (!exists(path)) return;
  pid_t in_file = read_pid_file(path);
  if (in_file && in_file != pid_) {
    // A binary upgrade's new master took the file over.
    printf("PID file %s contains %d, not expected PID %d\n", path.c_str(), (int)in_file, (int)pid_);
    fflush(stdout);
    return;
  }
  if (verbosity_ > 0) printf("Removing PID file %s\n", path.c_str());
  if (unlink(path.c_str()) != 0) {
    printf("Cannot remove PID file: %s\n", os_error(errno, path).c_str());
    int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) {
      printf("Stale PID left in file: %s (%s)\n", path.c_str(), strerror(errno));
    } else {
      close(fd);
      printf("Stale PID removed\n");
    }
  }
  fflush(stdout);
}

}  // namespace pasture::master
