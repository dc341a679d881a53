// What only the master may have. It alone talks to systemd (the unit's
// NotifyAccess=main): children that run other code do not inherit
// $NOTIFY_SOCKET, and a USR2 upgrade hands MAINPID over from the old master
// instead of announcing STOPPING=1. Hosted apps do not inherit the ambient
// capability (CAP_NET_BIND_SERVICE) the unit gives the master.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/integration/pasture_server.h"
#include "tests/support/notify_socket.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace pasture::test {
namespace {

// /proc/PID/environ as text, one "K=V" per line. Exact for a process that
// exec'ed; a forked one shows its parent's environment at exec time.
std::string environ_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/environ");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (char& c : s)
    if (c == '\0') c = '\n';
  return s;
}

// "... started, pid N" lines of `out` after `what`: their pids.
std::vector<pid_t> started_pids(const std::string& out, const std::string& what) {
  std::vector<pid_t> pids;
  for (size_t at = out.find(what); at != std::string::npos; at = out.find(what, at + 1)) {
    size_t pid = out.find("started, pid ", at);
    if (pid != std::string::npos && pid < out.find('\n', at)) pids.push_back(atoi(out.c_str() + pid + 13));
  }
  return pids;
}

// The "Key:\t..." line of /proc/PID/status, without the key.
std::string proc_status(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind(key + ":\t", 0) == 0) return line.substr(key.size() + 2);
  return "?";
}

bool have_paste_deploy() { return system("/usr/bin/python3 -c 'import paste.deploy' 2>/dev/null") == 0; }

// A hosted Python app runs the app's code: its processes must not find the
// socket (a library seeing $NOTIFY_SOCKET would send READY=1 or worse).
TEST(MasterOnly, AppProcessesDoNotInheritNotifySocket) {
  if (!have_paste_deploy()) GTEST_SKIP() << "python3-pastedeploy is not installed";
  NotifySocket ns;
  TempDir d;
  uint16_t port = free_port();
  std::string ini = d.write("a.ini", "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " +
                                         std::to_string(port) +
                                         "\nworkers = 1\napp_mode = process\napp_workers = 2\n\n[app:main]\n"
                                         "paste.app_factory = pasture_testapp:make_app\n");
  Process p({PASTURE_BINARY, "serve", ini},
            {{"NOTIFY_SOCKET", ns.path()}, {"PYTHONPATH", std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi"}});
  ASSERT_TRUE(wait_for_output(p, "serving on", Millis(20000))) << p.output();
  ASSERT_TRUE(wait_until([&] { return ns.got(p.pid(), "READY=1"); })) << p.output();
  std::vector<pid_t> apps = started_pids(p.output(), "app [app:main] process");
  ASSERT_EQ(apps.size(), 2u) << p.output();
  for (pid_t app : apps) {
    std::string env = environ_of(app);
    EXPECT_NE(env.find("PASTURE_SERVER_PORT="), std::string::npos) << app << "\n" << env;
    EXPECT_EQ(env.find("NOTIFY_SOCKET="), std::string::npos) << app << "\n" << env;
  }
  for (const NotifySocket::Message& m : ns.drain()) EXPECT_EQ(m.pid, p.pid()) << m.text;
}

// USR2 then TERM to the old master, as the unit's comment tells: the old
// master (systemd's main process) names the new one MAINPID= before it
// leaves, and does not say STOPPING=1 for a service that carries on.
TEST(MasterOnly, UpgradeHandsMainPidToTheNewMaster) {
  NotifySocket ns;
  TempDir d;
  uint16_t port = free_port();
  std::string ini = d.write("u.ini", "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " +
                                         std::to_string(port) + "\nworkers = 1\n[app:main]\nuse = egg:pasture#echo\n");
  Process p({PASTURE_BINARY, "serve", ini}, {{"NOTIFY_SOCKET", ns.path()}});
  ASSERT_TRUE(wait_until([&] { return ns.got(p.pid(), "READY=1"); })) << p.output();
  ASSERT_TRUE(p.signal(SIGUSR2));
  ASSERT_TRUE(wait_for_output(p, "started new master")) << p.output();
  std::string out = p.output();
  size_t at = out.find(", pid ", out.find("started new master"));
  ASSERT_NE(at, std::string::npos) << out;
  const pid_t new_pid = atoi(out.c_str() + at + 6);
  ASSERT_GT(new_pid, 0);
  ASSERT_TRUE(wait_until([&] { return ns.got(new_pid, "READY=1"); })) << p.output();
  ASSERT_TRUE(p.signal(SIGTERM));
  EXPECT_TRUE(exited_with(p.wait_exit(), 0)) << p.output();
  std::string from_old;
  for (const NotifySocket::Message& m : ns.drain())
    if (m.pid == p.pid()) from_old += "\n" + m.text + "\n";
  EXPECT_NE(from_old.find("\nMAINPID=" + std::to_string(new_pid) + "\n"), std::string::npos) << from_old;
  EXPECT_EQ(from_old.find("STOPPING=1"), std::string::npos) << from_old;
  EXPECT_EQ(http_get(port, "/").status, 200);
  // The new master, main now, says STOPPING=1 when it stops.
  ASSERT_EQ(kill(new_pid, SIGTERM), 0);
  EXPECT_TRUE(wait_until([&] { return ns.got(new_pid, "STOPPING=1"); }));
  EXPECT_TRUE(wait_until([&] { return kill(new_pid, 0) != 0; }));
}

// As systemd starts the unit: an unprivileged user with the ambient
// capability to bind ports < 1024. The master keeps it (a HUP may bind a new
// port; workers bind their reuse_port sockets); the app processes, running
// the app's code, get none.
TEST(MasterOnly, AppProcessesDoNotInheritAmbientCapabilities) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv (util-linux)";
  if (!have_paste_deploy()) GTEST_SKIP() << "python3-pastedeploy is not installed";
  TempDir d;
  ASSERT_EQ(chmod(d.path().c_str(), 0755), 0);
  uint16_t port = free_port();
  std::string ini = d.write("c.ini", "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " +
                                         std::to_string(port) +
                                         "\nworkers = 1\napp_mode = process\napp_workers = 1\n\n[app:main]\n"
                                         "paste.app_factory = pasture_testapp:make_app\n");
  ASSERT_EQ(chmod(ini.c_str(), 0644), 0);
  Process p({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+net_bind_service",
             "--ambient-caps=+net_bind_service", PASTURE_BINARY, "serve", ini},
            {{"PYTHONPATH", std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi"}});
  ASSERT_TRUE(wait_for_output(p, "serving on", Millis(20000))) << p.output();
  const std::string bind_service = "0000000000000400";  // 1 << CAP_NET_BIND_SERVICE
  EXPECT_EQ(proc_status(p.pid(), "CapAmb"), bind_service);
  std::vector<pid_t> apps = started_pids(p.output(), "app [app:main] process");
  ASSERT_EQ(apps.size(), 1u) << p.output();
  EXPECT_EQ(proc_status(apps[0], "Uid").substr(0, 6), "65534\t");
  EXPECT_EQ(proc_status(apps[0], "CapAmb"), "0000000000000000");
  EXPECT_EQ(proc_status(apps[0], "CapEff"), "0000000000000000");
  EXPECT_EQ(http_get(port, "/text").status, 200);
}

// Embedded apps (app_mode = embedded, the default) run the app's code in the
// workers: what the app sees of the process (os.environ, capabilities) is
// what it would in an app process. The app reports both.
const char* kProcApp = R"PY(
import os
def make_app(global_conf, **local):
    def app(environ, start_response):
        caps = {}
        for line in open('/proc/self/status'):
            k, _, v = line.partition(':')
            if k in ('CapAmb', 'CapEff', 'CapPrm'):
                caps[k] = v.strip()
        body = ('NOTIFY_SOCKET=%s %s' % (os.environ.get('NOTIFY_SOCKET', '-'),
                ' '.join('%s=%s' % kv for kv in sorted(caps.items())))).encode()
        start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
        return [body]
    return app
)PY";

TEST(MasterOnly, EmbeddedAppsSeeNoNotifySocket) {
  if (!have_paste_deploy()) GTEST_SKIP() << "python3-pastedeploy is not installed";
  NotifySocket ns;
  TempDir d;
  d.write("procapp.py", kProcApp);
  uint16_t port = free_port();
  std::string ini = d.write("e.ini", "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " +
                                         std::to_string(port) +
                                         "\nworkers = 1\n\n[app:main]\npaste.app_factory = procapp:make_app\n");
  Process p({PASTURE_BINARY, "serve", ini}, {{"NOTIFY_SOCKET", ns.path()}, {"PYTHONPATH", d.path()}});
  ASSERT_TRUE(wait_for_output(p, "serving on", Millis(20000))) << p.output();
  ASSERT_TRUE(wait_until([&] { return ns.got(p.pid(), "READY=1"); })) << p.output();
  Response r = http_get(port, "/");
  ASSERT_EQ(r.status, 200) << r.error << p.output();
  EXPECT_EQ(r.body.rfind("NOTIFY_SOCKET=- ", 0), 0u) << r.body;
  for (const NotifySocket::Message& m : ns.drain()) EXPECT_EQ(m.pid, p.pid()) << m.text;
}

TEST(MasterOnly, EmbeddedAppsRunWithoutTheMastersCapabilities) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv (util-linux)";
  if (!have_paste_deploy()) GTEST_SKIP() << "python3-pastedeploy is not installed";
  TempDir d;
  ASSERT_EQ(chmod(d.path().c_str(), 0755), 0);
  std::string mod = d.write("procapp.py", kProcApp);
  ASSERT_EQ(chmod(mod.c_str(), 0644), 0);
  uint16_t port = free_port();
  std::string ini = d.write("c.ini", "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " +
                                         std::to_string(port) + "\nworkers = 1\nreuse_port = true\n\n[app:main]\n"
                                         "paste.app_factory = procapp:make_app\n");
  ASSERT_EQ(chmod(ini.c_str(), 0644), 0);
  Process p({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+net_bind_service",
             "--ambient-caps=+net_bind_service", PASTURE_BINARY, "serve", ini},
            {{"PYTHONPATH", d.path()}});
  ASSERT_TRUE(wait_for_output(p, "serving on", Millis(20000))) << p.output();
  EXPECT_EQ(proc_status(p.pid(), "CapAmb"), "0000000000000400");  // the master keeps it
  Response r = http_get(port, "/");
  ASSERT_EQ(r.status, 200) << r.error << p.output();
  EXPECT_NE(r.body.find("CapAmb=0000000000000000 CapEff=0000000000000000 CapPrm=0000000000000000"),
            std::string::npos)
      << r.body;
}

}  // namespace
}  // namespace pasture::test
