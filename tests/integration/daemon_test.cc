// paster serve's process management with the real binary: --daemon and the
// pid file, --stop-daemon and start/stop/restart/status, --log-file and its
// SIGUSR1 reopen, --reload, --monitor-restart, --user. Every run has a temp
// dir as its cwd, so paster.pid and paster.log land there.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/integration/pasture_server.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace pasture::test {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// A zombie (exited, not yet reaped by init) counts as gone.
bool alive(int pid) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z';
}

struct CmdResult {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// A temp dir holding site.ini (an echo app answering "NAME METHOD PATH") and
// used as the working directory of every command.
class Site {
 public:
  explicit Site(const std::string& name = "one", int workers = 2) : port_(free_port()) {
    write_config(name, workers);
  }
  ~Site() { kill_daemon(); }

  const std::string& dir() const { return dir_.path(); }
  std::string file(const std::string& name) const { return dir_.file(name); }
  std::string config() const { return dir_.file("site.ini"); }
  uint16_t port() const { return port_; }

  // Replaced by rename, as editors and config management do.
  void write_config(const std::string& name, int workers = 2) {
    std::string tmp = file("site.ini.tmp");
    std::ofstream(tmp) << "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " << port_
                       << "\nworkers = " << workers << "\n\n[app:main]\nuse = egg:pasture#echo\nname = " << name
                       << "\n";
    ASSERT_EQ(rename(tmp.c_str(), config().c_str()), 0);
  }

  // `pasture ARGS...` to completion, stdout and stderr apart.
  CmdResult run(const std::vector<std::string>& args) {
    std::string cmd = "exec \"$0\"";
    for (size_t i = 0; i < args.size(); i++) cmd += " \"${" + std::to_string(i + 1) + "}\"";
    cmd += " >" + file(".out") + " 2>" + file(".err");
    std::vector<std::string> argv = {"/bin/sh", "-c", cmd, PASTURE_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(argv, {}, dir());
    CmdResult r;
    std::optional<int> st = p.wait_exit(Millis(30000));
    if (st && WIFEXITED(*st)) r.code = WEXITSTATUS(*st);
    r.out = slurp(file(".out"));
    r.err = slurp(file(".err"));
    return r;
  }
  // A long-running `pasture ARGS...` in the foreground.
  std::unique_ptr<Process> start(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {PASTURE_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<Process>(argv, Process::Env{}, dir());
  }

  // Waits for a daemon to have written `pid_file` and to answer; its pid.
  int wait_daemon(const std::string& pid_file = "paster.pid") {
    int pid = 0;
    wait_until([&] {
      std::string s = slurp(file(pid_file));
      pid = atoi(s.c_str());
      return pid > 0 && http_get(port_, "/", {}, Millis(500)).status == 200;
    });
    if (pid > 0) daemons_.push_back(pid);
    return pid;
  }

  // Stopped (if still running) when the test ends.
  void adopt(int pid) { daemons_.push_back(pid); }

  std::string body(const std::string& path = "/") { return http_get(port_, path).body; }

 private:
  // Daemons left its own session, out of reach of ~Process: stop them here.
  void kill_daemon() {
    for (int pid : daemons_) {
      if (!alive(pid)) continue;
      kill(pid, SIGINT);
      if (!wait_until([&] { return !alive(pid); }, Millis(3000))) kill(pid, SIGKILL);
    }
  }

  TempDir dir_{"pasture-daemon"};
  uint16_t port_;
  std::vector<int> daemons_;
};

TEST(Daemon, DaemonPidFileStopDaemonRoundTrip) {
  Site site;
  CmdResult r = site.run({"serve", "--daemon", "site.ini"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Entering daemon mode\n");
  EXPECT_EQ(r.err, "");
  int pid = site.wait_daemon();
  ASSERT_GT(pid, 0) << slurp(site.file("paster.log"));
  EXPECT_EQ(slurp(site.file("paster.pid")), std::to_string(pid));  // no newline
  EXPECT_EQ(site.body("/d"), "one GET /d\n");
  EXPECT_TRUE(wait_until([&] { return slurp(site.file("paster.log")).find("serving on http://127.0.0.1:") != std::string::npos; }));
  std::string log = slurp(site.file("paster.log"));
  EXPECT_NE(log.find("Starting server in PID " + std::to_string(pid) + ".\n"), std::string::npos) << log;
  // A daemon: its own session, not a child of anything we started.
  EXPECT_NE(getsid(pid), getsid(0));

  r = site.run({"serve", "--stop-daemon"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(alive(pid));
  EXPECT_FALSE(exists(site.file("paster.pid")));
  log = slurp(site.file("paster.log"));
  EXPECT_NE(log.find("Removing PID file paster.pid\n"), std::string::npos) << log;
}

// `serve --daemon` returns only once the daemon has left the caller's
// process group: killing that group the moment the command returns (job
// control, a harness cleaning up) does not take the new daemon with it.
TEST(Daemon, DaemonHasLeftTheCallersProcessGroupOnReturn) {
  Site site;
  for (int i = 0; i < 10; i++) {
    pid_t starter = fork();
    ASSERT_GE(starter, 0);
    if (starter == 0) {
      setpgid(0, 0);
      int null_fd = open("/dev/null", O_WRONLY);
      if (chdir(site.dir().c_str()) != 0 || null_fd < 0) _exit(126);
      dup2(null_fd, 1);
      dup2(null_fd, 2);
      execl(PASTURE_BINARY, PASTURE_BINARY, "serve", "--daemon", "site.ini", (char*)nullptr);
      _exit(127);
    }
    setpgid(starter, starter);  // whichever of the two runs first
    int st = 0;
    ASSERT_EQ(waitpid(starter, &st, 0), starter);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << describe_status(st);
    killpg(starter, SIGKILL);  // ESRCH once everything left the group
    int pid = site.wait_daemon();
    ASSERT_GT(pid, 0) << "start " << i << ": the daemon died with its caller's process group";
    ASSERT_EQ(site.run({"serve", "--stop-daemon"}).code, 0);
  }
}

TEST(Daemon, StartStatusRestartStopWords) {
  Site site;
  CmdResult r = site.run({"serve", "site.ini", "start"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "Entering daemon mode\n");
  int pid = site.wait_daemon();
  ASSERT_GT(pid, 0);
  r = site.run({"serve", "site.ini", "status"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "Server running in PID " + std::to_string(pid) + "\n");
  r = site.run({"serve", "--status", "site.ini"});
  EXPECT_EQ(r.out, "Server running in PID " + std::to_string(pid) + "\n");

  r = site.run({"serve", "site.ini", "restart"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "Entering daemon mode\n");
  EXPECT_FALSE(alive(pid));
  int pid2 = site.wait_daemon();
  ASSERT_GT(pid2, 0);
  EXPECT_NE(pid2, pid);
  EXPECT_EQ(site.body(), "one GET /\n");

  r = site.run({"serve", "site.ini", "stop"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(alive(pid2));
  r = site.run({"serve", "site.ini", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "No PID file paster.pid\n");
}

TEST(Daemon, AlreadyRunningExitsZero) {
  Site site;
  ASSERT_EQ(site.run({"serve", "--daemon", "--pid-file=my.pid", "site.ini"}).code, 0);
  int pid = site.wait_daemon("my.pid");
  ASSERT_GT(pid, 0);
  CmdResult r = site.run({"serve", "--daemon", "--pid-file=my.pid", "site.ini"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "Daemon is already running (PID: " + std::to_string(pid) + " from PID file my.pid)\n");
  r = site.run({"serve", "--pid-file=my.pid", "site.ini", "start"});
  EXPECT_EQ(r.out, "Daemon is already running (PID: " + std::to_string(pid) + " from PID file my.pid)\n");
  r = site.run({"serve", "-q", "--pid-file=my.pid", "site.ini", "start"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(site.run({"serve", "--stop-daemon", "--pid-file=my.pid"}).code, 0);
  EXPECT_FALSE(alive(pid));
}

TEST(Daemon, NoPidFile) {
  Site site;
  CmdResult r = site.run({"serve", "--stop-daemon"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "No PID file exists in paster.pid\n");
  r = site.run({"serve", "site.ini", "stop"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "No PID file exists in paster.pid\nCould not stop daemon\n");
  r = site.run({"serve", "site.ini", "restart"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "No PID file exists in paster.pid\nCould not stop daemon; aborting\n");
  r = site.run({"serve", "site.ini", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "No PID file paster.pid\n");
  EXPECT_FALSE(exists(site.file("paster.log")));  // nothing was started
}

TEST(Daemon, StaleAndInvalidPidFile) {
  Site site;
  // A pid that surely is dead: a child we reaped.
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  std::ofstream(site.file("paster.pid")) << dead;
  CmdResult r = site.run({"serve", "site.ini", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "PID None in paster.pid is not running\n");  // sic, as paster prints it
  r = site.run({"serve", "--stop-daemon"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "PID in paster.pid is not valid (deleting)\n");
  EXPECT_FALSE(exists(site.file("paster.pid")));

  std::ofstream(site.file("paster.pid")) << "not a pid";
  r = site.run({"serve", "site.ini", "status"});
  EXPECT_EQ(r.out, "No PID in file paster.pid\n");
  r = site.run({"serve", "--stop-daemon"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "Not a valid PID file in paster.pid\n");

  // A stale pid does not stop a new daemon.
  std::ofstream(site.file("paster.pid")) << dead;
  r = site.run({"serve", "--daemon", "site.ini"});
  EXPECT_EQ(r.out, "Entering daemon mode\n");
  int pid = site.wait_daemon();
  ASSERT_GT(pid, 0);
  EXPECT_NE(pid, dead);
  EXPECT_EQ(site.run({"serve", "--stop-daemon"}).code, 0);
}

TEST(Daemon, LogFileAndUsr1ReopenAfterRename) {
  Site site;
  auto p = site.start({"serve", "--log-file=app.log", "--pid-file=app.pid", "site.ini"});
  ASSERT_TRUE(wait_until([&] { return slurp(site.file("app.log")).find("serving on") != std::string::npos; }))
      << p->output() << slurp(site.file("app.log"));
  EXPECT_EQ(p->output(), "");  // everything went to the log
  EXPECT_EQ(slurp(site.file("app.pid")), std::to_string(p->pid()));
  std::string log = slurp(site.file("app.log"));
  EXPECT_NE(log.find("Starting server in PID " + std::to_string(p->pid()) + ".\n"), std::string::npos) << log;
  EXPECT_NE(log.find("worker 0 started"), std::string::npos) << log;

  // logrotate: rename, then USR1; the master writes to the new file.
  ASSERT_EQ(rename(site.file("app.log").c_str(), site.file("app.log.1").c_str()), 0);
  p->signal(SIGUSR1);
  ASSERT_TRUE(wait_until([&] { return exists(site.file("app.log")); })) << slurp(site.file("app.log.1"));
  p->signal(SIGTTIN);
  EXPECT_TRUE(wait_until([&] { return slurp(site.file("app.log")).find("workers: 3") != std::string::npos; }))
      << slurp(site.file("app.log"));
  EXPECT_EQ(slurp(site.file("app.log.1")).find("workers: 3"), std::string::npos);
  EXPECT_EQ(site.body("/rotated"), "one GET /rotated\n");
  // The workers' access log follows too.
  EXPECT_TRUE(wait_until([&] { return slurp(site.file("app.log")).find("GET /rotated") != std::string::npos; }))
      << slurp(site.file("app.log"));
  EXPECT_EQ(slurp(site.file("app.log.1")).find("GET /rotated"), std::string::npos);

  p->signal(SIGTERM);
  auto st = p->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(exited_with(st, 0)) << describe_status(*st);
  EXPECT_FALSE(exists(site.file("app.pid")));
  EXPECT_NE(slurp(site.file("app.log")).find("Removing PID file app.pid\n"), std::string::npos);
}

TEST(Daemon, UnwritableLogFile) {
  Site site;
  CmdResult r = site.run({"serve", "--log-file=no/such/dir/x.log", "site.ini"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out,
            "Error: Unable to write to log file: [Errno 2] No such file or directory: 'no/such/dir/x.log'\n");
}

// The pid file may be written by the service user while `stop` runs as
// root: a pid that is not a pasture server gets no signal, and its file is
// kept (it is no stale pid: something runs there).
TEST(Daemon, StopSignalsNoProcessButAPastureServer) {
  Site site;
  Process sleeper({"sleep", "30"});
  const std::string pid = std::to_string(sleeper.pid());
  std::ofstream(site.file("paster.pid")) << pid;
  std::string refusal = "PID " + pid + " in paster.pid is not a pasture server (it runs ";
  CmdResult r = site.run({"serve", "--stop-daemon"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out.rfind(refusal, 0), 0u) << r.out;
  char self[PATH_MAX];
  ASSERT_TRUE(realpath(PASTURE_BINARY, self));
  EXPECT_NE(r.out.find("sleep, not " + std::string(self) + "); not signalling it\n"), std::string::npos)
      << r.out;
  r = site.run({"serve", "site.ini", "stop"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out.rfind(refusal, 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\nCould not stop daemon\n"), std::string::npos) << r.out;
  r = site.run({"serve", "site.ini", "restart"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("\nCould not stop daemon; aborting\n"), std::string::npos) << r.out;
  EXPECT_TRUE(sleeper.running());
  EXPECT_EQ(slurp(site.file("paster.pid")), pid);
  r = site.run({"serve", "site.ini", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "PID None in paster.pid is not running\n");
  // Nor does it count as a running daemon: `start` starts one.
  r = site.run({"serve", "site.ini", "start"});
  EXPECT_EQ(r.out, "Entering daemon mode\n");
  int daemon = site.wait_daemon();
  ASSERT_GT(daemon, 0);
  EXPECT_NE(std::to_string(daemon), pid);
  EXPECT_EQ(site.run({"serve", "site.ini", "stop"}).code, 0);
  EXPECT_TRUE(sleeper.running());
}

// A pid file the service user owns cannot aim root's `stop` at a pasture
// server that runs as another user (here root's own).
TEST(Daemon, StopRefusesAServerOfAnotherUserThanThePidFiles) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  const passwd* pw = getpwnam("nobody");
  if (!pw) GTEST_SKIP() << "no user nobody";
  Site site;
  auto p = site.start({"serve", "site.ini"});
  ASSERT_TRUE(wait_for_output(*p, "serving on")) << p->output();
  std::ofstream(site.file("paster.pid")) << p->pid();
  ASSERT_EQ(chown(site.file("paster.pid").c_str(), pw->pw_uid, pw->pw_gid), 0);
  CmdResult r = site.run({"serve", "--stop-daemon"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "PID " + std::to_string(p->pid()) + " in paster.pid runs as uid 0 but the file belongs to uid " +
                       std::to_string(pw->pw_uid) + "; not signalling it\n");
  EXPECT_TRUE(p->running());
  // Owned by root (or by the server's user), the same file is trusted.
  ASSERT_EQ(chown(site.file("paster.pid").c_str(), 0, 0), 0);
  r = site.run({"serve", "--stop-daemon"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(exited_with(p->wait_exit(), 0));
}

// Pid and log files are opened with O_NOFOLLOW: a symbolic link planted
// where they go is an error naming the path, and its target is not written.
TEST(Daemon, SymlinkedPidAndLogFilesAreRefused) {
  Site site;
  std::ofstream(site.file("victim")) << "keep";
  ASSERT_EQ(symlink("victim", site.file("app.pid").c_str()), 0);
  ASSERT_EQ(symlink("victim", site.file("app.log").c_str()), 0);
  const std::string loop = "[Errno 40] Too many levels of symbolic links: ";
  CmdResult r = site.run({"serve", "--pid-file=app.pid", "site.ini"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "Error: Unable to write to pid file: " + loop + "'app.pid' (a symbolic link: not followed)\n");
  r = site.run({"serve", "--log-file=app.log", "site.ini"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "Error: Unable to write to log file: " + loop + "'app.log' (a symbolic link: not followed)\n");
  r = site.run({"serve", "--pid-file=app.pid", "--stop-daemon"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "PID file app.pid is a symbolic link; not following it\n");
  r = site.run({"serve", "--pid-file=app.pid", "site.ini", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "PID file app.pid is a symbolic link; not following it\n");
  EXPECT_EQ(slurp(site.file("victim")), "keep");
  // Nor does a FIFO in the pid file's place hang `stop`.
  ASSERT_EQ(mkfifo(site.file("fifo.pid").c_str(), 0600), 0);
  r = site.run({"serve", "--pid-file=fifo.pid", "--stop-daemon"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "Not a valid PID file in fifo.pid\n");

  // logrotate's USR1 reopen: a link put in the log file's place is refused
  // and the master keeps writing to the file it had.
  ASSERT_EQ(unlink(site.file("app.log").c_str()), 0);
  auto p = site.start({"serve", "--log-file=app.log", "site.ini"});
  ASSERT_TRUE(wait_until([&] { return slurp(site.file("app.log")).find("serving on") != std::string::npos; }))
      << p->output();
  ASSERT_EQ(rename(site.file("app.log").c_str(), site.file("app.log.1").c_str()), 0);
  ASSERT_EQ(symlink("victim", site.file("app.log").c_str()), 0);
  p->signal(SIGUSR1);
  EXPECT_TRUE(wait_until([&] {
    return slurp(site.file("app.log.1")).find("SIGUSR1: open(app.log, O_APPEND) failed: Too many levels of "
                                              "symbolic links (a symbolic link: not followed)") != std::string::npos;
  })) << slurp(site.file("app.log.1"));
  EXPECT_EQ(slurp(site.file("victim")), "keep");
}

// Workers open the access log the same way; the system's links (/dev/stdout,
// the usual container set-up) are followed.
TEST(Daemon, AccessLogSymlinkRefusedButDevStdoutFollowed) {
  Site site;
  std::ofstream(site.file("victim")) << "keep";
  ASSERT_EQ(symlink("victim", site.file("access.log").c_str()), 0);
  {
    std::string ini = slurp(site.config());
    ini.replace(ini.find("\n\n[app:main]"), 0, "\naccess_log = access.log");
    std::ofstream(site.config()) << ini;
  }
  auto p = site.start({"serve", "site.ini"});
  ASSERT_TRUE(wait_until([&] { return http_get(site.port(), "/x", {}, Millis(500)).status == 200; }))
      << p->output();
  EXPECT_TRUE(wait_until([&] {
    return p->output().find("cannot open access log access.log: Too many levels of symbolic links") !=
           std::string::npos;
  })) << p->output();
  EXPECT_EQ(slurp(site.file("victim")), "keep");
  p.reset();
  site.write_config("one");  // no access_log: it goes to --log-file
  auto q = site.start({"serve", "--log-file=/dev/stdout", "site.ini"});
  ASSERT_TRUE(wait_until([&] { return q->output().find("serving on") != std::string::npos; }))
      << q->output();
  ASSERT_EQ(http_get(site.port(), "/logged").status, 200);
  EXPECT_TRUE(wait_until([&] { return q->output().find("GET /logged") != std::string::npos; }))
      << q->output();
}

TEST(Daemon, ReloadRestartsOnConfigChange) {
  Site site("one", 1);
  auto p = site.start({"serve", "--reload", "--reload-interval=0.2", "site.ini"});
  ASSERT_TRUE(wait_for_output(*p, "serving on") && wait_for_port(site.port())) << p->output();
  EXPECT_EQ(p->output().rfind("Starting subprocess with file monitor\n", 0), 0u) << p->output();
  EXPECT_EQ(site.body("/a"), "one GET /a\n");
  site.write_config("two", 1);
  ASSERT_TRUE(wait_until([&] { return site.body("/b") == "two GET /b\n"; }, Millis(10000))) << p->output();
  std::string out = p->output();
  EXPECT_NE(out.find(site.config() + " changed; reloading...\n"), std::string::npos) << out;
  EXPECT_NE(out.find("-------------------- Restarting --------------------\n"), std::string::npos) << out;
  // The monitor stops the server with itself.
  p->signal(SIGTERM);
  auto st = p->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(exited_with(st, 0)) << describe_status(*st);
  EXPECT_FALSE(wait_for_port(site.port(), Millis(200)));
}

TEST(Daemon, MonitorRestartAfterTheServerDies) {
  Site site("one", 1);
  auto p = site.start({"serve", "--monitor-restart", "--pid-file=m.pid", "site.ini"});
  ASSERT_TRUE(wait_for_output(*p, "serving on") && wait_for_port(site.port())) << p->output();
  EXPECT_EQ(p->output().rfind("Starting subprocess with monitor parent\n", 0), 0u) << p->output();
  // The pid file names the monitor, so --stop-daemon stops it for good.
  EXPECT_EQ(slurp(site.file("m.pid")), std::to_string(p->pid()));
  auto kids = children_of(p->pid());
  ASSERT_EQ(kids.size(), 1u);
  ASSERT_EQ(kill(kids[0], SIGKILL), 0);  // its workers are orphaned; the monitor ends them
  ASSERT_TRUE(wait_until([&] {
    auto now = children_of(p->pid());
    return now.size() == 1 && now[0] != kids[0] && site.body() == "one GET /\n";
  }, Millis(10000))) << p->output();
  EXPECT_NE(p->output().find("-------------------- Restarting --------------------\n"), std::string::npos);
  CmdResult r = site.run({"serve", "--stop-daemon", "--pid-file=m.pid"});
  EXPECT_EQ(r.code, 0) << r.out;
  auto st = p->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(wait_for_port(site.port(), Millis(200)));
}

// The "Key:\t..." line of /proc/PID/status, without the key.
std::string proc_status(int pid, const std::string& key) {
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":\t", 0) == 0) return line.substr(key.size() + 2);
  return "?";
}

// `pw`'s groups as the Groups: line of /proc/PID/status lists them: its
// primary group `gid` and those of the group database, ascending.
std::string groups_line(const passwd* pw, gid_t gid) {
  int n = 64;
  std::vector<gid_t> groups(n);
  if (getgrouplist(pw->pw_name, gid, groups.data(), &n) < 0) return "getgrouplist failed";
  groups.resize(n);
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  std::string out;
  for (gid_t g : groups) out += std::to_string(g) + " ";
  return out;
}

// `pasture serve --user USER` as root: the master and every worker run as
// the user, in its primary group, with its groups as the supplementary ones
// (never root's group 0).
void expect_runs_as(const std::string& user_arg, const passwd& pw) {
  Site site("one", 2);
  ASSERT_EQ(chmod(site.dir().c_str(), 0755), 0);
  ASSERT_EQ(chmod(site.config().c_str(), 0644), 0);
  auto p = site.start({"serve", "--user", user_arg, "site.ini"});
  ASSERT_TRUE(wait_for_output(*p, "serving on") && wait_for_port(site.port())) << p->output();
  EXPECT_EQ(p->output().rfind("Changing user to " + std::string(pw.pw_name) + ":(unknown) (" +
                                  std::to_string(pw.pw_uid) + ":" + std::to_string(pw.pw_gid) + ")\n",
                              0),
            0u)
      << p->output();
  std::vector<int> procs = children_of(p->pid());
  procs.push_back(p->pid());
  ASSERT_GE(procs.size(), 3u);
  std::string uid = std::to_string(pw.pw_uid), gid = std::to_string(pw.pw_gid);
  for (int pid : procs) {
    EXPECT_EQ(proc_status(pid, "Uid"), uid + "\t" + uid + "\t" + uid + "\t" + uid) << pid;
    EXPECT_EQ(proc_status(pid, "Gid"), gid + "\t" + gid + "\t" + gid + "\t" + gid) << pid;
    EXPECT_EQ(proc_status(pid, "Groups"), groups_line(&pw, pw.pw_gid)) << pid;
  }
  EXPECT_EQ(site.body(), "one GET /\n");
}

TEST(Daemon, UserNobodyWhenRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  const passwd* pw = getpwnam("nobody");
  if (!pw) GTEST_SKIP() << "no user nobody";
  expect_runs_as("nobody", *pw);
}

// A numeric uid gets the same: its passwd entry's primary group, not gid 0.
TEST(Daemon, NumericUserGetsItsPrimaryGroupNotRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  const passwd* pw = getpwnam("nobody");
  if (!pw || pw->pw_gid == 0) GTEST_SKIP() << "no user nobody outside group 0";
  passwd copy = *pw;
  std::string name = pw->pw_name;
  copy.pw_name = name.data();
  expect_runs_as(std::to_string(pw->pw_uid), copy);
}

TEST(Daemon, BinaryUpgradeTakesOverThePidFile) {
  Site site;
  ASSERT_EQ(site.run({"serve", "--daemon", "site.ini"}).code, 0);
  int old_pid = site.wait_daemon();
  ASSERT_GT(old_pid, 0) << slurp(site.file("paster.log"));
  kill(old_pid, SIGUSR2);  // the new master must neither daemonize again nor see "already running"
  int new_pid = 0;
  ASSERT_TRUE(wait_until([&] {
    new_pid = atoi(slurp(site.file("paster.pid")).c_str());  // 0 while the new master writes it
    return new_pid > 0 && new_pid != old_pid;
  }))
      << slurp(site.file("paster.log"));
  site.adopt(new_pid);
  kill(old_pid, SIGTERM);
  ASSERT_TRUE(wait_until([&] { return !alive(old_pid); }));
  EXPECT_EQ(site.body(), "one GET /\n");
  std::string log = slurp(site.file("paster.log"));
  EXPECT_NE(log.find("PID file paster.pid contains " + std::to_string(new_pid) + ", not expected PID " +
                     std::to_string(old_pid) + "\n"),
            std::string::npos)
      << log;
  CmdResult r = site.run({"serve", "site.ini", "stop"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(alive(new_pid));
}

TEST(Daemon, DaemonAndReloadRefused) {
  Site site;
  CmdResult r = site.run({"serve", "--daemon", "--reload", "site.ini"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "The --daemon and --reload options may not be used together\n");
}

}  // namespace
}  // namespace pasture::test
