// Process lifecycle: reload, supervision, signals, systemd integration.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <sstream>
#include <fstream>
#include <thread>

#include "tests/integration/pasture_server.h"

namespace pasture::test {
namespace {

std::string echo_ini(const std::string& name) {
  return "[app:main]\nuse = egg:pasture#echo\nname = " + name + "\n";
}

// Rewrites the app part of a PastureServer's config, keeping [server:main].
void rewrite_app(const PastureServer& srv, const std::string& app_ini) {
  std::ifstream in(srv.path());
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t cut = all.find("[app:");
  std::string tmp = srv.path() + ".tmp";
  std::ofstream(tmp) << all.substr(0, cut) << app_ini;
  ASSERT_EQ(rename(tmp.c_str(), srv.path().c_str()), 0);
}

// A client loop on fresh connections, counting answers that are not 200.
struct Loop {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string last_fail;
  std::thread t;
  explicit Loop(uint16_t port) {
    t = std::thread([this, port] {
      while (!stop) {
        Response r = http_get(port, "/loop");
        if (r.ok() && r.status == 200) {
          ok++;
        } else {
          failed++;
          last_fail = r.ok() ? std::to_string(r.status) : r.error;
        }
      }
    });
  }
  ~Loop() { finish(); }
  void finish() {
    stop = true;
    if (t.joinable()) t.join();
  }
};

TEST(Lifecycle, ReloadTenTimesUnderLoadDropsNothing) {
  PastureServer srv(echo_ini("v0"), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  Loop loop(srv.port());
  for (int i = 1; i <= 10; i++) {
    std::string name = "v" + std::to_string(i);
    rewrite_app(srv, echo_ini(name));
    srv.proc().signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return http_get(srv.port(), "/").body.rfind(name + " ", 0) == 0; }))
        << "generation " << i << " not serving\n" << srv.output();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  loop.finish();
  EXPECT_GT(loop.ok.load(), 100);
  EXPECT_EQ(loop.failed.load(), 0) << loop.last_fail;
  // Old generations are gone: exactly the configured workers remain.
  EXPECT_TRUE(wait_until([&] { return children_of(srv.proc().pid()).size() == 2; }))
      << children_of(srv.proc().pid()).size();
}

TEST(Lifecycle, BrokenConfigOnReloadKeepsServing) {
  PastureServer srv(echo_ini("good"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  rewrite_app(srv, "[app:main]\nuse = egg:pasture#echo\nname = x\n[app:main]\n");
  srv.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(srv.proc(), "reload failed", Millis(5000))) << srv.output();
  EXPECT_NE(srv.output().find("site.ini:"), std::string::npos) << srv.output();
  Response r = http_get(srv.port(), "/");
  EXPECT_EQ(r.body, "good GET /\n");
}

// A reload that fails after binding some of its new listeners (here the
// third address is taken) keeps the old socket set: the new port it did bind
// is closed again rather than left accepting connections nobody serves.
TEST(Lifecycle, FailedReloadClosesTheListenersItOpened) {
  PastureServer srv(echo_ini("old"), 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Fd taken = listen_loopback(0);
  ASSERT_TRUE(taken.valid());
  uint16_t p1 = srv.port(), p2 = free_port(), p3 = local_port(taken.get());
  auto addr = [](uint16_t p) { return "127.0.0.1:" + std::to_string(p); };
  std::string server = "[server:main]\nuse = egg:pasture#main\nworkers = 1\nlisten = " + addr(p1) +
                       " " + addr(p2) + " " + addr(p3) + "\n";
  std::ofstream(srv.path()) << server << echo_ini("new");
  srv.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(srv.proc(), "reload failed", Millis(5000))) << srv.output();
  EXPECT_NE(srv.output().find(addr(p3)), std::string::npos) << srv.output();
  std::string err;
  EXPECT_FALSE(connect_loopback(p2, Millis(1000), &err).valid()) << "port " << p2 << " left bound";
  EXPECT_EQ(http_get(p1, "/").body, "old GET /\n");
  // Once the address is free the same config loads, on all three ports.
  taken.reset();
  srv.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(srv.proc(), "reloaded: generation")) << srv.output();
  for (uint16_t p : {p1, p2, p3})
    EXPECT_TRUE(wait_until([&] { return http_get(p, "/").body == "new GET /\n"; })) << p;
}

// The same when the last step fails: a hosted Python app that cannot start
// (its module does not import), after the new port was bound.
TEST(Lifecycle, ReloadWhoseAppFailsToStartClosesItsNewListener) {
  if (system("/usr/bin/python3 -c 'import paste.deploy' 2>/dev/null") != 0)
    GTEST_SKIP() << "no python3 with paste.deploy";
  TempDir d;
  uint16_t p1 = free_port(), p2 = free_port();
  auto server = [](const std::string& listen) {
    return "[server:main]\nuse = egg:pasture#main\nworkers = 1\napp_workers = 1\nlisten = " + listen +
           "\n";
  };
  std::string a1 = "127.0.0.1:" + std::to_string(p1), a2 = "127.0.0.1:" + std::to_string(p2);
  std::string ini = d.write("site.ini", server(a1) + echo_ini("old"));
  Process p({PASTURE_BINARY, "serve", ini},
            {{"PYTHONPATH", std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi"}});
  ASSERT_TRUE(wait_for_output(p, "serving on") && wait_for_port(p1)) << p.output();
  std::ofstream(ini) << server(a1 + " " + a2)
                     << "[app:main]\npaste.app_factory = pasture_testapp.broken:make_app\n";
  p.signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(p, "reload failed", Millis(15000))) << p.output();
  EXPECT_NE(p.output().find("cannot load [app:main]"), std::string::npos) << p.output();
  std::string err;
  EXPECT_FALSE(connect_loopback(p2, Millis(1000), &err).valid()) << "port " << p2 << " left bound";
  EXPECT_EQ(http_get(p1, "/").body, "old GET /\n");
}

// At start-up too: a master whose app cannot start leaves no socket file.
TEST(Lifecycle, StartWhoseAppFailsLeavesNoUnixSocketFile) {
  if (system("/usr/bin/python3 -c 'import paste.deploy' 2>/dev/null") != 0)
    GTEST_SKIP() << "no python3 with paste.deploy";
  TempDir d;
  std::string sock = d.file("s.sock");
  std::string ini = d.write("site.ini", "[server:main]\nuse = egg:pasture#main\nworkers = 1\n"
                                        "app_workers = 1\nlisten = unix:" + sock + "\n"
                                        "[app:main]\npaste.app_factory = pasture_testapp.broken:make_app\n");
  Process p({PASTURE_BINARY, "serve", ini},
            {{"PYTHONPATH", std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi"}});
  std::optional<int> st = p.wait_exit(Millis(15000));
  ASSERT_TRUE(st.has_value()) << p.output();
  EXPECT_FALSE(exited_with(st, 0));
  EXPECT_NE(p.output().find("cannot load [app:main]"), std::string::npos) << p.output();
  EXPECT_NE(access(sock.c_str(), F_OK), 0) << sock << " left behind";
}

TEST(Lifecycle, KilledWorkerReplacedWithinASecondUnderLoad) {
  PastureServer srv(echo_ini("k"), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  Loop loop(srv.port());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto before = children_of(srv.proc().pid());
  ASSERT_EQ(before.size(), 2u);
  ASSERT_EQ(kill(before[0], SIGKILL), 0);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] {
    auto now = children_of(srv.proc().pid());
    return now.size() == 2 && std::find(now.begin(), now.end(), before[0]) == now.end();
  }, Millis(1000))) << srv.output();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  loop.finish();
  // Only requests the killed worker held in flight may fail: with one client
  // thread, at most one.
  EXPECT_LE(loop.failed.load(), 1) << loop.last_fail;
  RecordProperty("replaced_ms", (int)ms);
  RecordProperty("failed_requests", loop.failed.load());
}

TEST(Lifecycle, TermWaitsForInFlightRequest) {
  FakeUpstream up("slow");
  up.set_delay(Millis(3000));
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = " + up.address() + "\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r;
  std::thread client([&] { r = http_get(srv.port(), "/slow"); });
  ASSERT_TRUE(up.wait_for_requests(1));
  srv.proc().signal(SIGTERM);
  client.join();
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  auto st = srv.proc().wait_exit(Millis(5000));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(exited_with(st, 0)) << describe_status(*st);
}

TEST(Lifecycle, TtinTtouChangeWorkerCount) {
  PastureServer srv(echo_ini("t"), 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  int pid = srv.proc().pid();
  srv.proc().signal(SIGTTIN);
  EXPECT_TRUE(wait_until([&] { return children_of(pid).size() == 3; })) << srv.output();
  // One signal at a time: pending signals of one kind coalesce.
  srv.proc().signal(SIGTTOU);
  EXPECT_TRUE(wait_until([&] { return children_of(pid).size() == 2; })) << srv.output();
  srv.proc().signal(SIGTTOU);
  EXPECT_TRUE(wait_until([&] { return children_of(pid).size() == 1; })) << srv.output();
  EXPECT_EQ(http_get(srv.port(), "/").status, 200);
}

TEST(Lifecycle, MaxRequestsRecyclesWorkers) {
  PastureServer srv("[app:main]\nuse = egg:pasture#echo\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  // Rewrite the server section with max_requests and reload.
  std::ifstream in(srv.path());
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  all.replace(all.find("workers = 1"), 11, "workers = 1\nmax_requests = 10");
  std::ofstream(srv.path()) << all;
  srv.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(srv.proc(), "generation 2 serving"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto first = children_of(srv.proc().pid());
  ASSERT_EQ(first.size(), 1u);
  for (int i = 0; i < 25; i++) ASSERT_EQ(http_get(srv.port(), "/").status, 200);
  EXPECT_TRUE(wait_until([&] {
    auto now = children_of(srv.proc().pid());
    return now.size() == 1 && now[0] != first[0];
  })) << srv.output();
  EXPECT_NE(srv.output().find("max_requests"), std::string::npos);
}

TEST(Lifecycle, StuckWorkerIsKilledAndReplaced) {
  PastureServer srv("[app:main]\nuse = egg:pasture#echo\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::ifstream in(srv.path());
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  all.replace(all.find("workers = 1"), 11, "workers = 1\nworker_timeout = 1");
  std::ofstream(srv.path()) << all;
  srv.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(srv.proc(), "generation 2 serving"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto w = children_of(srv.proc().pid());
  ASSERT_EQ(w.size(), 1u);
  kill(w[0], SIGSTOP);  // frozen: no heartbeat
  EXPECT_TRUE(wait_for_output(srv.proc(), "worker_timeout", Millis(4000))) << srv.output();
  EXPECT_TRUE(wait_until([&] {
    auto now = children_of(srv.proc().pid());
    return now.size() == 1 && now[0] != w[0];
  })) << srv.output();
  EXPECT_EQ(http_get(srv.port(), "/").status, 200);
}

// A unix datagram socket standing in for systemd's NOTIFY_SOCKET.
class NotifySocket {
 public:
  NotifySocket() {
    path_ = test_temp_dir() + "/notify.sock";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path_.c_str());
    bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    timeval tv{0, 100000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { close(fd_); }
  const std::string& path() const { return path_; }
  // Everything received so far, messages joined by '|'.
  std::string drain() {
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd_, buf, sizeof buf, 0)) > 0) log_ += std::string(buf, n) + "|";
    return log_;
  }

 private:
  std::string path_, log_;
  int fd_;
};

TEST(Lifecycle, SystemdNotifyOrder) {
  NotifySocket ns;
  TempDir d;
  uint16_t port = free_port();
  std::string ini = d.write("n.ini", "[server:main]\nuse = egg:pasture#main\nport = " +
                                         std::to_string(port) +
                                         "\nworkers = 1\n[app:main]\nuse = egg:pasture#echo\n");
  Process p({PASTURE_BINARY, "serve", ini}, {{"NOTIFY_SOCKET", ns.path()}});
  ASSERT_TRUE(wait_for_output(p, "serving on"));
  ASSERT_TRUE(wait_until([&] { return ns.drain().find("READY=1") != std::string::npos; }));
  p.signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return ns.drain().find("RELOADING=1") != std::string::npos; }));
  p.signal(SIGTERM);
  ASSERT_TRUE(p.wait_exit(Millis(5000)).has_value());
  std::string log = ns.drain();
  size_t ready = log.find("READY=1"), reloading = log.find("RELOADING=1"),
         ready2 = log.find("READY=1", reloading), stopping = log.find("STOPPING=1");
  ASSERT_NE(ready, std::string::npos) << log;
  ASSERT_NE(reloading, std::string::npos) << log;
  ASSERT_NE(ready2, std::string::npos) << log;
  ASSERT_NE(stopping, std::string::npos) << log;
  EXPECT_LT(ready, reloading);
  EXPECT_LT(reloading, ready2);
  EXPECT_LT(ready2, stopping);
  EXPECT_NE(log.find("STATUS=1 workers, generation 1"), std::string::npos) << log;
  EXPECT_NE(log.find("MAINPID="), std::string::npos) << log;
}

// Socket activation: the test binds the socket and passes it as fd 3, as
// systemd does; pasture serves on it without binding (the config names
// another port).
TEST(Lifecycle, SocketActivation) {
  Fd lfd = listen_loopback(0);
  ASSERT_TRUE(lfd.valid());
  uint16_t port = local_port(lfd.get());
  TempDir d;
  std::string ini = d.write("a.ini",
                            "[server:main]\nuse = egg:pasture#main\nport = 1\nworkers = 1\n"
                            "[app:main]\nuse = egg:pasture#echo\nname = act\n");
  std::string out = d.file("out.log");
  pid_t pid = spawn_socket_activated(lfd.get(), ini, out);
  ASSERT_GE(pid, 0);
  lfd.reset();  // only the child holds the socket now
  Response r;
  bool served = wait_until([&] {
    r = http_get(port, "/sa", {}, Millis(500));
    return r.ok();
  }, Millis(5000));
  kill(-pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  std::ifstream f(out);
  std::string log((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(served) << log;
  EXPECT_EQ(r.body, "act GET /sa\n");
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << log;
}

}  // namespace
}  // namespace pasture::test

namespace pasture::test {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

TEST(Lifecycle, AccessLogCombinedFormatAndReopenOnUsr1) {
  TempDir d;
  std::string log = d.file("access.log");
  uint16_t port = free_port();
  std::string ini = d.write("l.ini", "[server:main]\nuse = egg:pasture#main\nport = " +
                                         std::to_string(port) + "\nworkers = 2\naccess_log = " +
                                         log + "\n[app:main]\nuse = egg:pasture#echo\nname = e\n");
  Process p({PASTURE_BINARY, "serve", ini});
  ASSERT_TRUE(wait_for_output(p, "serving on"));
  Response r = http_get(port, "/a?b=1", {{"User-Agent", "ua \"x\""}, {"Referer", "http://r/"}});
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(wait_until([&] { return slurp(log).find("/a?b=1") != std::string::npos; }))
      << p.output();
  std::string line = slurp(log);
  EXPECT_NE(line.find("127.0.0.1 - - ["), std::string::npos) << line;
  EXPECT_NE(line.find("] \"GET /a?b=1 HTTP/1.1\" 200 " + std::to_string(r.body.size()) +
                      " \"http://r/\" \"ua \\x22x\\x22\"\n"),
            std::string::npos)
      << line;
  // logrotate: move the file away, USR1, new lines go to a new file.
  ASSERT_EQ(rename(log.c_str(), (log + ".1").c_str()), 0);
  p.signal(SIGUSR1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(wait_until([&] {
    http_get(port, "/after");
    return slurp(log).find("/after") != std::string::npos;
  })) << p.output();
  EXPECT_EQ(slurp(log + ".1").find("/after"), std::string::npos);
  EXPECT_TRUE(p.running()) << "USR1 must not kill anything";
  EXPECT_EQ(children_of(p.pid()).size(), 2u);
}

}  // namespace
}  // namespace pasture::test

namespace pasture::test {
namespace {

TEST(Lifecycle, WorkersLeaveWhenTheMasterIsKilled) {
  PastureServer srv("[app:main]\nuse = egg:pasture#echo\n", 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  auto workers = children_of(srv.proc().pid());
  ASSERT_EQ(workers.size(), 2u);
  ASSERT_TRUE(srv.proc().signal(SIGKILL));
  srv.proc().wait_exit(Millis(2000));
  // Orphaned workers drain and exit, releasing the port.
  EXPECT_TRUE(wait_until([&] {
    for (int w : workers)
      if (kill(w, 0) == 0) return false;
    return true;
  }, Millis(5000)));
  EXPECT_TRUE(wait_until([&] { return !http_get(srv.port(), "/", {}, Millis(200)).ok(); }));
}

}  // namespace
}  // namespace pasture::test

namespace pasture::test {
namespace {

// Listening sockets on `port` (IPv4), from /proc/net/tcp.
int listeners_on(uint16_t port) {
  std::ifstream f("/proc/net/tcp");
  std::string line;
  char want[8];
  snprintf(want, sizeof want, ":%04X", port);
  int n = 0;
  std::getline(f, line);
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string sl, local, remote, st;
    in >> sl >> local >> remote >> st;
    if (st == "0A" && local.size() > 5 && local.substr(local.size() - 5) == want) n++;
  }
  return n;
}

TEST(Lifecycle, ReusePortGivesEachWorkerItsOwnSocket) {
  PastureServer srv("[app:main]\nuse = egg:pasture#echo\nname = rp\n", 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  EXPECT_EQ(listeners_on(srv.port()), 1);
  std::ifstream in(srv.path());
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  all.replace(all.find("workers = 2"), 11, "workers = 2\nreuse_port = true");
  std::ofstream(srv.path()) << all;
  // reuse_port applies to sockets bound from now on: restart, not reload.
  srv.proc().signal(SIGTERM);
  ASSERT_TRUE(srv.proc().wait_exit(Millis(5000)).has_value());
  Process p({PASTURE_BINARY, "serve", srv.path()});
  ASSERT_TRUE(wait_for_output(p, "serving on"));
  EXPECT_TRUE(wait_until([&] { return listeners_on(srv.port()) == 3; })) << listeners_on(srv.port());
  for (int i = 0; i < 50; i++) ASSERT_EQ(http_get(srv.port(), "/").body, "rp GET /\n");
}

}  // namespace
}  // namespace pasture::test
