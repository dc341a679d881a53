// Dropping root after binding (issue 13 §5), with the real binary, as root:
// `user`/`group` in the server section and --user/--group make the master,
// its workers, the health checker and app processes run as `nobody` once
// every listener (a port below 1024 included) is bound; a reload cannot
// undo it; socket, pid and log files stay the user's to remove and rewrite;
// no process is dumpable unless core_dumps = true. Each test skips when not
// run as root or without a user `nobody`.
#include <gtest/gtest.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "tests/integration/pasture_server.h"

namespace pasture::test {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user, group;
};

// `nobody` in its primary group (nogroup on Debian).
std::optional<Account> nobody() {
  const passwd* pw = getpwnam("nobody");
  if (!pw || pw->pw_uid == 0) return std::nullopt;
  const group* gr = getgrgid(pw->pw_gid);
  if (!gr) return std::nullopt;
  return Account{pw->pw_uid, pw->pw_gid, pw->pw_name, gr->gr_name};
}

// The value of `key:` in /proc/PID/status, tabs kept.
std::string status_of(int pid, const std::string& key) {
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":\t", 0) == 0) return line.substr(key.size() + 2);
  return "?";
}

std::string four(unsigned id) {
  std::string n = std::to_string(id);
  return n + "\t" + n + "\t" + n + "\t" + n;
}

// Real, effective, saved and filesystem ids are all the account's.
void expect_runs_as(int pid, const Account& a) {
  EXPECT_EQ(status_of(pid, "Uid"), four(a.uid)) << "pid " << pid;
  EXPECT_EQ(status_of(pid, "Gid"), four(a.gid)) << "pid " << pid;
}

// Who owns /proc/PID/status: the process's user, or root when the process
// is not dumpable (the kernel hands a non-dumpable task's files to root).
uid_t status_file_owner(int pid) {
  struct stat st;
  return stat(("/proc/" + std::to_string(pid) + "/status").c_str(), &st) == 0 ? st.st_uid : (uid_t)-1;
}

// The master and its children (workers, health checker, app processes).
std::vector<int> tree(int master) {
  std::vector<int> out = children_of(master);
  out.insert(out.begin(), master);
  return out;
}

// A port below 1024 that nobody listens on (root may bind it), or 0.
uint16_t free_privileged_port() {
  for (uint16_t p = 990; p > 900; p--) {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(p);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0) return p;
  }
  return 0;
}

// Listening TCP sockets on 127.0.0.1:port, from /proc/net/tcp.
int listeners_on(uint16_t port) {
  std::istringstream in(slurp("/proc/net/tcp"));
  char want[16];
  snprintf(want, sizeof want, "0100007F:%04X", port);
  int n = 0;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, st;
    f >> sl >> local >> remote >> st;
    n += local == want && st == "0A";
  }
  return n;
}

// A directory `nobody` can read (the master re-reads the config on HUP as
// the user) holding site.ini.
class Site {
 public:
  Site() { chmod(dir_.path().c_str(), 0755); }
  std::string write(const std::string& name, const std::string& text) {
    std::string tmp = dir_.file(name + ".tmp"), path = dir_.file(name);
    std::ofstream(tmp) << text;
    chmod(tmp.c_str(), 0644);
    rename(tmp.c_str(), path.c_str());
    return path;
  }
  std::string file(const std::string& name) const { return dir_.file(name); }
  const std::string& dir() const { return dir_.path(); }

 private:
  TempDir dir_{"pasture-privs"};
};

std::string server(const std::string& listen, const std::string& extra, int workers = 2) {
  return "[server:main]\nuse = egg:pasture#main\nlisten = " + listen + "\nworkers = " + std::to_string(workers) +
         "\ngraceful_timeout = 2\n" + extra + "\n";
}

class Privileges : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    auto a = nobody();
    if (!a) GTEST_SKIP() << "no user nobody with a group";
    who_ = *a;
  }
  std::string user_lines() const { return "user = " + who_.user + "\ngroup = " + who_.group + "\n"; }
  Account who_;
};

// Bound as root, then nobody: master, workers and health checker, none of
// them with a capability left or dumpable; a reload's workers too.
TEST_F(Privileges, EveryProcessRunsAsTheUserAfterBindingAPortBelow1024) {
  uint16_t port = free_privileged_port();
  if (!port) GTEST_SKIP() << "no free port below 1024";
  FakeUpstream up("up");
  Site site;
  std::string pool = "[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() +
                     "\nhealth_check = /\nhealth_interval = 200ms\n";
  std::string ini = site.write("site.ini", server("127.0.0.1:" + std::to_string(port), user_lines()) + pool);
  Process p({PASTURE_BINARY, "serve", ini});
  ASSERT_TRUE(wait_for_output(p, "serving on") && wait_for_port(port)) << p.output();
  std::string changing = "Changing user to " + who_.user + ":" + who_.group + " (" + std::to_string(who_.uid) + ":" +
                         std::to_string(who_.gid) + ")\n";
  EXPECT_NE(p.output().find(changing), std::string::npos) << p.output();
  EXPECT_EQ(http_get(port, "/a").body, "up GET /a\n");
  ASSERT_TRUE(wait_until([&] { return tree(p.pid()).size() == 4; })) << p.output();  // 2 workers, 1 health checker
  for (int pid : tree(p.pid())) {
    expect_runs_as(pid, who_);
    EXPECT_EQ(status_of(pid, "CapPrm"), "0000000000000000") << pid;
    EXPECT_EQ(status_of(pid, "CapEff"), "0000000000000000") << pid;
    EXPECT_EQ(status_file_owner(pid), 0u) << "pid " << pid << " is dumpable";
  }
  std::vector<int> before = children_of(p.pid());
  site.write("site.ini", server("127.0.0.1:" + std::to_string(port), user_lines(), 3) + pool);
  p.signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(p, "reloaded: generation 2")) << p.output();
  ASSERT_TRUE(wait_until([&] {
    std::vector<int> now = children_of(p.pid());
    return now.size() == 4 && std::none_of(now.begin(), now.end(), [&](int c) {
             return std::find(before.begin(), before.end(), c) != before.end();
           });
  })) << p.output();
  for (int pid : tree(p.pid())) expect_runs_as(pid, who_);
  EXPECT_EQ(http_get(port, "/b").body, "up GET /b\n");
  p.signal(SIGTERM);
  EXPECT_TRUE(exited_with(p.wait_exit(), 0)) << p.output();
}

// The master is nobody now: a HUP wanting a new port below 1024, or another
// user, fails with a line saying why, and the running generation serves on.
TEST_F(Privileges, ReloadNeedingRootFailsAndTheOldGenerationServes) {
  uint16_t priv = free_privileged_port();
  if (!priv) GTEST_SKIP() << "no free port below 1024";
  uint16_t port = free_port();
  Site site;
  std::string app = "[app:main]\nuse = egg:pasture#echo\nname = old\n";
  std::string ini = site.write("site.ini", server("127.0.0.1:" + std::to_string(port), user_lines()) + app);
  Process p({PASTURE_BINARY, "serve", ini});
  ASSERT_TRUE(wait_for_output(p, "serving on") && wait_for_port(port)) << p.output();

  std::string both = "127.0.0.1:" + std::to_string(port) + " 127.0.0.1:" + std::to_string(priv);
  site.write("site.ini", server(both, user_lines()) + "[app:main]\nuse = egg:pasture#echo\nname = new\n");
  p.signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(p, "reload failed")) << p.output();
  std::string out = p.output();
  EXPECT_NE(out.find("cannot listen on 127.0.0.1:" + std::to_string(priv) + ": Permission denied (the master runs as user " +
                     who_.user),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("a new port below 1024, or a socket in a directory only root may write, needs a restart)"),
            std::string::npos)
      << out;
  EXPECT_EQ(listeners_on(priv), 0);
  EXPECT_EQ(http_get(port, "/x").body, "old GET /x\n");

  site.write("site.ini", server("127.0.0.1:" + std::to_string(port), "user = root\n") + app);
  p.signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return p.output().find("changing user or group needs a restart") != std::string::npos; }))
      << p.output();
  EXPECT_NE(p.output().find("site.ini:6: the master runs as user " + who_.user), std::string::npos) << p.output();
  EXPECT_EQ(http_get(port, "/y").body, "old GET /y\n");
  EXPECT_TRUE(p.running());
}

// reuse_port on a port below 1024: each worker binds its own socket after
// fork, so the master keeps CAP_NET_BIND_SERVICE, and only it; the workers
// drop it once bound.
TEST_F(Privileges, ReusePortOnAPortBelow1024KeepsOnlyBindServiceInTheMaster) {
  uint16_t port = free_privileged_port();
  if (!port) GTEST_SKIP() << "no free port below 1024";
  Site site;
  std::string ini = site.write("site.ini", server("127.0.0.1:" + std::to_string(port), user_lines() + "reuse_port = true\n") +
                                               "[app:main]\nuse = egg:pasture#echo\n");
  Process p({PASTURE_BINARY, "serve", ini});
  ASSERT_TRUE(wait_for_output(p, "serving on") && wait_for_port(port)) << p.output();
  ASSERT_TRUE(wait_until([&] { return listeners_on(port) == 3; })) << listeners_on(port) << "\n" << p.output();
  EXPECT_EQ(p.output().find("cannot bind a private socket"), std::string::npos) << p.output();
  const std::string bind_service = "0000000000000400";
  expect_runs_as(p.pid(), who_);
  EXPECT_EQ(status_of(p.pid(), "CapEff"), bind_service);
  EXPECT_EQ(status_of(p.pid(), "CapPrm"), bind_service);
  for (int pid : children_of(p.pid())) {
    expect_runs_as(pid, who_);
    for (const char* set : {"CapPrm", "CapEff", "CapAmb"}) EXPECT_EQ(status_of(pid, set), "0000000000000000") << pid << " " << set;
  }
  EXPECT_EQ(http_get(port, "/r").body, "main GET /r\n");
}

// The socket file becomes the user's, so the dropped master may remove it
// at exit from a sticky directory such as /tmp (only a file's owner may).
TEST_F(Privileges, UnixSocketFileIsTheUsersAndRemovedAtExit) {
  Site site;
  ASSERT_EQ(chmod(site.dir().c_str(), 01777), 0);
  std::string sock = site.file("s.sock");
  std::string ini = site.write("site.ini", server("unix:" + sock, user_lines()) + "[app:main]\nuse = egg:pasture#echo\n");
  Process p({PASTURE_BINARY, "serve", ini});
  ASSERT_TRUE(wait_for_output(p, "serving on unix:" + sock)) << p.output();
  struct stat st;
  ASSERT_EQ(lstat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, who_.uid);
  EXPECT_EQ(st.st_gid, who_.gid);
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, sock.data(), sock.size());
  ASSERT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0) << strerror(errno);
  ASSERT_EQ(send_all(fd.get(), "GET /u HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), IoResult::kOk);
  std::string answer;
  while (recv_some(fd.get(), answer) == IoResult::kOk) {
  }
  EXPECT_NE(answer.find("main GET /u"), std::string::npos) << answer;
  p.signal(SIGTERM);
  EXPECT_TRUE(exited_with(p.wait_exit(), 0)) << p.output();
  EXPECT_NE(lstat(sock.c_str(), &st), 0) << "socket file left behind";
}

// --user as a daemon on a port paster could not bind as the user: the pid
// and log files become the user's (a USR2 upgrade's master rewrites them,
// USR1 reopens), and status/stop, run as root, reach it.
TEST_F(Privileges, DaemonWithUserOnAPortBelow1024StatusAndStop) {
  uint16_t port = free_privileged_port();
  if (!port) GTEST_SKIP() << "no free port below 1024";
  Site site;
  site.write("site.ini", server("127.0.0.1:" + std::to_string(port), "") + "[app:main]\nuse = egg:pasture#echo\n");
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), PASTURE_BINARY);
    Process c(args, {}, site.dir());
    std::optional<int> st = c.wait_exit(Millis(20000));
    return std::pair{st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1, c.output()};
  };
  auto [code, out] = run({"serve", "--daemon", "--user", who_.user, "--pid-file=p.pid", "--log-file=l.log", "site.ini"});
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out, "Changing user to " + who_.user + ":(unknown) (" + std::to_string(who_.uid) + ":" +
                     std::to_string(who_.gid) + ")\nEntering daemon mode\n");
  int pid = 0;
  struct Reaper {  // the daemon left the test's process group: stop it on failure
    int* pid;
    ~Reaper() {
      if (*pid > 0) kill(*pid, SIGKILL);
    }
  } reaper{&pid};
  ASSERT_TRUE(wait_until([&] {
    pid = atoi(slurp(site.file("p.pid")).c_str());
    return pid > 0 && http_get(port, "/d", {}, Millis(500)).status == 200;
  })) << slurp(site.file("l.log"));
  expect_runs_as(pid, who_);
  struct stat st;
  for (const char* f : {"p.pid", "l.log"}) {
    ASSERT_EQ(stat(site.file(f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_uid, who_.uid) << f;
  }
  std::tie(code, out) = run({"serve", "--pid-file=p.pid", "site.ini", "status"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "Server running in PID " + std::to_string(pid) + "\n");
  std::tie(code, out) = run({"serve", "--pid-file=p.pid", "site.ini", "stop"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(wait_until([&] { return kill(pid, 0) != 0; })) << "still running";
  EXPECT_NE(stat(site.file("p.pid").c_str(), &st), 0) << "pid file left";
}

// Python apps as the user: app processes (process mode) and embedded
// workers; none dumpable, unless core_dumps = true.
TEST_F(Privileges, PythonAppsRunAsTheUserAndCoreDumpsAreOptIn) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  const char* path = getenv("PATH");
  Process::Env env = {{"PYTHONPATH", std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi"},
                      {"PATH", std::string("/usr/bin:/bin") + (path ? ":" + std::string(path) : "")}};
  struct Case {
    const char* mode;
    bool core_dumps;
  };
  for (Case c : {Case{"process", false}, Case{"process", true}, Case{"embedded", false}}) {
    SCOPED_TRACE(std::string(c.mode) + (c.core_dumps ? " with core dumps" : ""));
    uint16_t port = free_port();
    Site site;
    std::string extra = user_lines() + "app_mode = " + c.mode + "\napp_workers = 1\n" +
                        (c.core_dumps ? "core_dumps = true\n" : "");
    std::string ini = site.write("site.ini", server("127.0.0.1:" + std::to_string(port), extra) +
                                                 "[app:main]\nuse = call:pasture_testapp:make_app\n");
    Process p({PASTURE_BINARY, "serve", ini}, env);
    ASSERT_TRUE(wait_for_output(p, "serving on", Millis(20000)) && wait_for_port(port)) << p.output();
    ASSERT_TRUE(wait_until([&] { return http_get(port, "/text", {}, Millis(2000)).body == "hello from testapp\n"; },
                           Millis(20000)))
        << p.output();
    size_t n = std::string(c.mode) == "process" ? 4 : 3;  // master, 2 workers (, the app process)
    ASSERT_TRUE(wait_until([&] { return tree(p.pid()).size() == n; })) << p.output();
    for (int pid : tree(p.pid())) {
      expect_runs_as(pid, who_);
      EXPECT_EQ(status_file_owner(pid), c.core_dumps ? who_.uid : 0u) << "pid " << pid << " dumpable: " << !c.core_dumps;
    }
  }
}

// Capabilities are per thread: with reuse_port on a port below 1024 the
// workers bind their own socket, then drop every capability before the app
// is imported or its threads start, so no thread of theirs keeps
// CAP_NET_BIND_SERVICE (review: app threads kept it and could bind port 99).
// preload would import the app in the master that keeps it: refused.
TEST_F(Privileges, NoThreadOfAWorkerKeepsACapabilityForTheApp) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  uint16_t port = free_privileged_port();
  if (!port) GTEST_SKIP() << "no free port below 1024";
  const char* path = getenv("PATH");
  Process::Env env = {{"PYTHONPATH", std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi"},
                      {"PATH", std::string("/usr/bin:/bin") + (path ? ":" + std::string(path) : "")}};
  Site site;
  std::string keys = user_lines() + "reuse_port = true\nthreads = 4\n";
  std::string ini = site.write("site.ini", server("127.0.0.1:" + std::to_string(port), keys) +
                                               "[app:main]\nuse = call:pasture_testapp:make_app\n");
  {
    Process p({PASTURE_BINARY, "serve", ini}, env);
    ASSERT_TRUE(wait_for_output(p, "serving on", Millis(20000)) && wait_for_port(port)) << p.output();
    ASSERT_TRUE(wait_until([&] { return http_get(port, "/text", {}, Millis(2000)).body == "hello from testapp\n"; },
                           Millis(20000)))
        << p.output();
    auto workers = children_of(p.pid());
    ASSERT_EQ(workers.size(), 2u) << p.output();
    for (int w : workers) {
      // The app threads start before the worker accepts.
      EXPECT_TRUE(wait_until([&] {
        return std::distance(std::filesystem::directory_iterator("/proc/" + std::to_string(w) + "/task"),
                             std::filesystem::directory_iterator{}) >= 5;
      })) << p.output();
      int threads = 0;
      for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(w) + "/task")) {
        std::string st = slurp(t.path().string() + "/status");
        for (const char* set : {"CapPrm:", "CapEff:", "CapAmb:"}) {
          size_t at = st.find(set);
          ASSERT_NE(at, std::string::npos);
          EXPECT_EQ(st.substr(at + strlen(set), st.find('\n', at) - at - strlen(set)), "\t0000000000000000")
              << "worker " << w << " thread " << t.path().filename() << " " << set;
        }
        threads++;
      }
      EXPECT_GE(threads, 5) << "the app threads run\n" << p.output();
    }
  }
  std::string preload = site.write("preload.ini", server("127.0.0.1:" + std::to_string(port), keys + "preload = true\n") +
                                                      "[app:main]\nuse = call:pasture_testapp:make_app\n");
  Process q({PASTURE_BINARY, "serve", preload}, env);
  auto st = q.wait_exit(Millis(20000));
  ASSERT_TRUE(st.has_value()) << q.output();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << q.output();
  EXPECT_NE(q.output().find("preload cannot be combined with reuse_port"), std::string::npos) << q.output();
}

// What a worker killed by SIGSEGV leaves, with RLIMIT_CORE unlimited and
// core_pattern a plain file name (written to the worker's working
// directory): nothing by default, a core file with core_dumps = true.
// (As whoever runs the test: the main() of every command turns dumping off.)
TEST(CoreDumps, NoCoreFileUnlessCoreDumpsIsOn) {
  std::string pattern = slurp("/proc/sys/kernel/core_pattern");
  if (pattern.empty() || pattern[0] == '|' || pattern.find('/') != std::string::npos || pattern.find('%') != std::string::npos)
    GTEST_SKIP() << "core_pattern is not a plain file name: " << pattern;
  pattern.erase(pattern.find_last_not_of("\n") + 1);
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_CORE, &saved), 0);
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  if (setrlimit(RLIMIT_CORE, &unlimited) != 0) GTEST_SKIP() << "cannot raise RLIMIT_CORE";
  struct Restore {
    rlimit r;
    ~Restore() { setrlimit(RLIMIT_CORE, &r); }
  } restore{saved};
  for (bool on : {false, true}) {
    SCOPED_TRACE(on ? "core_dumps = true" : "default");
    Site site;
    uint16_t port = free_port();
    std::string ini = site.write("site.ini", server("127.0.0.1:" + std::to_string(port), on ? "core_dumps = true\n" : "", 1) +
                                                 "[app:main]\nuse = egg:pasture#balancer\nmethod = cookie\n"
                                                 "cookie_secret = in-every-worker\nservers = 127.0.0.1:1\n");
    Process p({PASTURE_BINARY, "serve", ini}, {}, site.dir());
    ASSERT_TRUE(wait_for_output(p, "serving on") && wait_for_port(port)) << p.output();
    std::vector<int> workers = children_of(p.pid());
    ASSERT_EQ(workers.size(), 1u);
    kill(workers[0], SIGSEGV);
    ASSERT_TRUE(wait_for_output(p, "killed by signal 11")) << p.output();
    struct stat st;
    bool core = stat(site.file(pattern).c_str(), &st) == 0;
    EXPECT_EQ(core, on) << site.file(pattern);
  }
}

// user/group are checked when the config is read, with file:line (a typo
// fails `pasture check`, not the start after binding); YAML has the keys
// too, and `convert` carries them over.
TEST(PrivilegesConf, UnknownUserOrGroupFailsCheckAtItsLine) {
  auto account = nobody();
  if (!account) GTEST_SKIP() << "no user nobody with a group";
  Site site;
  auto run = [](const std::vector<std::string>& args) {
    Process c(args);
    std::optional<int> st = c.wait_exit();
    return std::pair{st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1, c.output()};
  };
  std::string app = "[app:main]\nuse = egg:pasture#echo\n";
  std::string ini = site.write("a.ini", server("127.0.0.1:8080", "user = no-such-user-pasture\n") + app);
  auto [code, out] = run({PASTURE_BINARY, "check", ini});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(out, ini + ":6: user: no such user 'no-such-user-pasture'\n");
  ini = site.write("b.ini", server("127.0.0.1:8080", "group = no-such-group-pasture\n") + app);
  std::tie(code, out) = run({PASTURE_BINARY, "check", ini});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(out, ini + ":6: group: no such group 'no-such-group-pasture'\n");
  std::string yaml = site.write("c.yaml", "server:\n  port: 8080\n  user: no-such-user-pasture\napps:\n  main: {use: echo}\n");
  std::tie(code, out) = run({PASTURE_BINARY, "check", yaml});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(out, yaml + ":3: user: no such user 'no-such-user-pasture'\n");

  // gunicorn's keys under egg:gunicorn#main; numbers too.
  ini = site.write("d.ini", "[server:main]\nuse = egg:gunicorn#main\nbind = 127.0.0.1:8080\nuser = " +
                                std::to_string(account->uid) + "\ngroup = " + account->group + "\n\n" + app);
  std::tie(code, out) = run({PASTURE_BINARY, "check", ini});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("runs as user " + std::to_string(account->uid) + ", group " + account->group), std::string::npos)
      << out;
  std::tie(code, out) = run({PASTURE_BINARY, "convert", ini});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\n  user: " + std::to_string(account->uid) + "\n  group: " + account->group + "\n"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace pasture::test
