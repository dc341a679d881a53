#include "master/daemon.h"

#include <fcntl.h>
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
#include <thread>
#include <vector>

#include "common/log.h"
#include "conf/pyutil.h"

namespace pasture::master {
namespace {

// lstat: a dangling symbolic link exists too (and is refused when opened).
bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool is_symlink(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
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

// Why an open with O_NOFOLLOW failed with ELOOP, if that was the reason.
std::string symlink_note(int err, const std::string& path) {
  return err == ELOOP && is_symlink(path) ? " (a symbolic link: not followed)" : "";
}

// Python's str(OSError): "[Errno 2] No such file or directory: 'x'".
std::string os_error(int err, const std::string& path) {
  return "[Errno " + std::to_string(err) + "] " + strerror(err) + ": " + conf::py::repr(path) +
         symlink_note(err, path);
}

// Pid and log files are opened by whoever runs pasture, often root, in a
// directory the service user may write: a symbolic link planted there must
// not steer the open to another file.
int open_no_follow(const std::string& path, int flags, mode_t mode = 0) {
  return log::open_no_follow(path.c_str(), flags, mode);
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// The program /proc/PID/exe names ("self" for this process), without the
// " (deleted)" of a binary replaced on disk since; "" when unreadable
// (EACCES without CAP_SYS_PTRACE for another user's process).
std::string program_of(const std::string& pid) {
  char buf[4096];
  ssize_t n = readlink(("/proc/" + pid + "/exe").c_str(), buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string exe(buf, n);
  const std::string deleted = " (deleted)";
  if (exe.size() > deleted.size() && exe.compare(exe.size() - deleted.size(), deleted.size(), deleted) == 0)
    exe.resize(exe.size() - deleted.size());
  return exe;
}

// argv of `pid` from /proc/PID/cmdline (readable for any process).
std::vector<std::string> cmdline_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> argv;
  for (std::string arg; std::getline(f, arg, '\0');) argv.push_back(arg);
  return argv;
}

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// The real uid of `pid` (the Uid: line of /proc/PID/status), or -1.
long uid_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("Uid:", 0) == 0) return strtol(line.c_str() + 4, nullptr, 10);
  return -1;
}

// "" when the live process `pid`, read from a pid file owned by `owner`, is
// a pasture server this command may signal; else why not. It must run this
// binary: /proc/PID/exe, or where that is unreadable (we are not root, or
// lack CAP_SYS_PTRACE) an argv of "<this program's name> serve ...". A
// file not owned by root must belong to the process's user: the service
// user, who can write the file, cannot aim root at another user's server.
std::string not_our_server(pid_t pid, uid_t owner) {
  std::string self = program_of("self"), them = program_of(std::to_string(pid));
  if (them.empty()) {
    std::vector<std::string> argv = cmdline_of(pid);
    if (argv.size() < 2 || base_name(argv[0]) != base_name(self) || argv[1] != "serve")
      return "is not a pasture server (" + (argv.empty() ? std::string("its program is unknown") : "it runs " + argv[0]) + ")";
  } else if (them != self) {
    return "is not a pasture server (it runs " + them + ", not " + self + ")";
  }
  long uid = uid_of(pid);
  if (owner != 0 && uid != (long)owner)
    return "runs as uid " + std::to_string(uid) + " but the file belongs to uid " + std::to_string(owner);
  return "";
}

}  // namespace

pid_t read_pid_file(const std::string& path, uid_t* owner) {
  // O_NONBLOCK and regular files only: a FIFO put there must not hang `stop`.
  int fd = open_no_follow(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return 0;
  }
  if (owner) *owner = st.st_uid;
  std::string s;
  char buf[64];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && s.size() < 4096) s.append(buf, n);
  close(fd);
  s = conf::py::strip(s);
  char* end = nullptr;
  long v = strtol(s.c_str(), &end, 10);
  if (s.empty() || *end || v <= 0 || v > 0x7fffffff) return 0;
  return static_cast<pid_t>(v);
}

pid_t live_pid_file(const std::string& path) {
  uid_t owner = 0;
  pid_t pid = read_pid_file(path, &owner);
  return pid > 0 && alive(pid) && not_our_server(pid, owner).empty() ? pid : 0;
}

int stop_daemon(const std::string& pid_file) {
  if (!exists(pid_file)) {
    printf("No PID file exists in %s\n", pid_file.c_str());
    return 1;
  }
  if (is_symlink(pid_file)) {
    printf("PID file %s is a symbolic link; not following it\n", pid_file.c_str());
    return 1;
  }
  uid_t owner = 0;
  pid_t pid = read_pid_file(pid_file, &owner);
  if (!pid) {
    printf("Not a valid PID file in %s\n", pid_file.c_str());
    return 1;
  }
  if (!alive(pid)) {
    printf("PID in %s is not valid (deleting)\n", pid_file.c_str());
    if (unlink(pid_file.c_str()) != 0) {
      printf("Could not delete: %s\n", os_error(errno, pid_file).c_str());
      return 2;
    }
    return 1;
  }
  // Checked before any signal: the file may have been written by a less
  // privileged user than the one running `stop`. A live process that is not
  // ours keeps its file too (it may be ours under another binary's path).
  if (std::string why = not_our_server(pid, owner); !why.empty()) {
    printf("PID %d in %s %s; not signalling it\n", (int)pid, pid_file.c_str(), why.c_str());
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
  if (is_symlink(pid_file)) {
    printf("PID file %s is a symbolic link; not following it\n", pid_file.c_str());
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

bool touch_file(const std::string& path, std::string* err) {
  int fd = open_no_follow(path, O_WRONLY | O_CREAT | O_APPEND, 0666);
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
  int fd = open_no_follow(path, O_WRONLY | O_CREAT | O_APPEND, 0666);
  if (fd < 0) {
    int e = errno;
    *err = "open(" + path + ", O_APPEND) failed: " + strerror(e) + symlink_note(e, path);
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
  int fd = open_no_follow(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
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
    int fd = open_no_follow(path, O_WRONLY | O_TRUNC);
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
