// paster serve's process management: pid files, --stop-daemon and status,
// daemon mode and --log-file, with PasteScript 3.2.1's
// messages and exit codes (serve.py; pastedeploy.md §8). Messages go to
// stdout as paster prints them. --user/--group: master/privileges.h.
#pragma once

#include <sys/types.h>

#include <string>

namespace pasture::master {

// paster's defaults, relative to the (unchanged) working directory.
inline constexpr const char* kDefaultPidFile = "paster.pid";
inline constexpr const char* kDefaultLogFile = "paster.log";

// Pid and log files are opened with O_NOFOLLOW: a symbolic link there is an
// error naming the path, not a way to make root write elsewhere.
//
// read_pidfile: the integer in `path` (surrounding white space allowed), or
// 0 when the file is missing, a symbolic link, not a regular file,
// unreadable or holds no integer. `owner` (if given) gets the file's uid.
pid_t read_pid_file(const std::string& path, uid_t* owner = nullptr);
// live_pidfile: read_pid_file() if that process exists (kill(pid, 0)
// succeeds or fails with EPERM, and it is not a zombie) and is a pasture
// server (see stop_daemon), else 0.
pid_t live_pid_file(const std::string& path);

// `--stop-daemon` / `stop`. paster sends SIGINT; pasture's SIGINT is the
// fast stop, so this sends SIGTERM (graceful drain) once and waits up to
// 10 s, then SIGINT every second up to 10 times. Returns 0 (stopped, pid
// file removed), 1 (no pid file, no integer in it, or a dead pid: the file
// is deleted), 2 (a dead pid's file could not be deleted), 3 (still alive).
// Nothing is signalled (1, the file is kept) unless the pid runs this
// pasture binary as the file's owner (any user for a root-owned file): the
// file may have been written by the service user, and `stop` run as root.
int stop_daemon(const std::string& pid_file);
// `--status` / `status`: 0 when the pid in the file is alive, else 1.
int show_status(const std::string& pid_file);

// open(path, O_APPEND|O_CREAT) and close: paster's "is it writable" probe.
// On failure `err` is Python's IOError text: "[Errno 13] Permission
// denied: 'path'".
bool touch_file(const std::string& path, std::string* err);

// Double fork (each parent _exit(0)s, the first once the second has forked,
// so the daemon is out of the caller's process group when the command
// returns), setsid, closes every fd and opens /dev/null as 0, 1 and 2. cwd
// and umask are kept. Returns in the daemon.
void daemonize();

// Points fds 1 and 2 at `path`, opened for append (created if missing).
// Used at start-up and by the master on SIGUSR1 (logrotate). Processes
// forked later inherit the new file.
bool redirect_output(const std::string& path, std::string* err);

// A pid file this process wrote; removed when the owner is destroyed (in
// the writing process only, and only if it still holds our pid), printing
// "Removing PID file F" when verbosity > 0.
class PidFile {
 public:
  PidFile() = default;
  ~PidFile() { remove(); }
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

  // Writes getpid() without a newline ("Writing PID N to F" at verbosity > 1).
  bool write(const std::string& path, int verbosity, std::string* err);
  void remove();

 private:
  std::string path_;
  pid_t pid_ = 0;
  int verbosity_ = 1;
};

}  // namespace pasture::master
