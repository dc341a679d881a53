// Unix-domain sockets both ways, with the real binary: upstream servers at
// `unix:/path`, and pasture listening on `listen = unix:/path` / waitress's
// `unix_socket =`.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "tests/integration/pasture_server.h"

namespace pasture::test {
namespace {

sockaddr_un unix_addr(const std::string& path) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path.data(), std::min(path.size(), sizeof sun.sun_path - 1));
  return sun;
}

// A socket file nobody accepts on: bound, then closed without unlinking (what
// a crashed server leaves behind).
void make_stale_socket(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun = unix_addr(path);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0) << strerror(errno);
  close(fd);
}

// Sends `request` over a unix socket and reads until the server closes.
std::string unix_exchange(const std::string& path, const std::string& request) {
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sun = unix_addr(path);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0)
    return std::string("connect: ") + strerror(errno);
  if (send_all(fd.get(), request) != IoResult::kOk) return "send failed";
  std::string out;
  while (recv_some(fd.get(), out) == IoResult::kOk) {
  }
  return out;
}

std::string unix_get(const std::string& path, const std::string& target) {
  return unix_exchange(path, "GET " + target + " HTTP/1.1\r\nHost: unix.test\r\nConnection: close\r\n\r\n");
}

// A minimal HTTP/1.1 origin on a unix socket: answers every GET with
// "<name> GET <target>\n" (keep-alive) and records the Host headers.
class UnixUpstream {
 public:
  UnixUpstream(std::string path, std::string name) : path_(std::move(path)), name_(std::move(name)) {
    listener_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sun = unix_addr(path_);
    if (bind(listener_.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0 ||
        listen(listener_.get(), 64) != 0)
      throw std::runtime_error("bind/listen " + path_ + ": " + strerror(errno));
    acceptor_ = std::thread([this] {
      for (;;) {
        int c = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0 || stop_) {
          if (c >= 0) close(c);
          return;
        }
        std::lock_guard<std::mutex> l(mu_);
        conns_.emplace_back([this, c] { serve(Fd(c)); });
      }
    });
  }
  ~UnixUpstream() {
    stop_ = true;
    unix_exchange(path_, "");  // wakes accept()
    acceptor_.join();
    for (auto& t : conns_) t.join();
    unlink(path_.c_str());
  }
  int requests() const { return requests_; }
  std::vector<std::string> hosts() const {
    std::lock_guard<std::mutex> l(mu_);
    return hosts_;
  }

 private:
  void serve(Fd fd) {
    std::string buf;
    while (!stop_) {
      size_t end = buf.find("\r\n\r\n");
      if (end == std::string::npos) {
        IoResult r = recv_some(fd.get(), buf, Millis(200));
        if (r != IoResult::kOk && r != IoResult::kTimeout) return;
        continue;
      }
      std::string head = buf.substr(0, end);
      buf.erase(0, end + 4);
      std::string target = head.substr(head.find(' ') + 1);
      target = target.substr(0, target.find(' '));
      std::string host = "(none)";
      for (size_t p = head.find("\r\n"); p != std::string::npos; p = head.find("\r\n", p + 2)) {
        if (strncasecmp(head.c_str() + p + 2, "host:", 5) == 0) {
          size_t e = head.find("\r\n", p + 2);
          host = head.substr(p + 7, e == std::string::npos ? std::string::npos : e - p - 7);
          host.erase(0, host.find_first_not_of(' '));
        }
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        hosts_.push_back(host);
      }
      requests_++;
      std::string body = name_ + " GET " + target + "\n";
      std::string resp = "HTTP/1.1 200 OK\r\nX-Upstream: " + name_ + "\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\n\r\n" + body;
      if (send_all(fd.get(), resp) != IoResult::kOk) return;
    }
  }

  std::string path_, name_;
  Fd listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> conns_;
  std::vector<std::string> hosts_;
};

TEST(UnixSocket, BalancesOverAUnixAndATcpUpstream) {
  TempDir dir;
  UnixUpstream u(dir.file("u.sock"), "u");
  FakeUpstream t("t");
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = unix:" + dir.file("u.sock") + " " +
                        t.address() + "\n",
                    2);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::map<std::string, int> by;
  HttpConn c(srv.port());
  for (int i = 0; i < 8; i++) {
    Response r = c.request("GET", "/n" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.status, 200) << r.body;
    by[r.header("X-Upstream")]++;
    if (r.header("X-Upstream") == "u") {
      EXPECT_EQ(r.body, "u GET /n" + std::to_string(i) + "\n");
    }
  }
  EXPECT_EQ(by["u"], 4);
  EXPECT_EQ(by["t"], 4);
  // A balancer forwards the client's Host to a unix server too.
  for (const std::string& h : u.hosts()) EXPECT_EQ(h, "127.0.0.1:" + std::to_string(srv.port()));
}

TEST(UnixSocket, HostForAUnixServerIsLocalhostWhenTheClientSentNone) {
  TempDir dir;
  UnixUpstream u(dir.file("u.sock"), "u");
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nservers = unix:" + dir.file("u.sock") + "\n", 1);
  ASSERT_TRUE(srv.started()) << srv.output();
  HttpConn c(srv.port());
  ASSERT_TRUE(c.send_raw("GET /old HTTP/1.0\r\n\r\n"));
  Response r = c.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(u.hosts().size(), 1u);
  EXPECT_EQ(u.hosts()[0], "localhost");  // nginx's $proxy_host for a unix: upstream
}

// A socket file nobody accepts on, and a missing file: connect errors like a
// refused TCP port, so each request is retried on the live server and the
// dead ones are marked down.
TEST(UnixSocket, DeadUnixUpstreamsAreRetriedAndMarkedDown) {
  TempDir dir;
  make_stale_socket(dir.file("stale.sock"));
  FakeUpstream ok("ok");
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nretries = 2\nservers = unix:" + dir.file("stale.sock") +
                        " unix:" + dir.file("missing.sock") + " " + ok.address() + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  for (int i = 0; i < 6; i++) {
    Response r = http_get(srv.port(), "/r" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("X-Upstream"), "ok");
  }
  EXPECT_EQ(ok.request_count(), 6u);
  std::string out = srv.output();
  EXPECT_NE(out.find("server unix:" + dir.file("stale.sock") + " down"), std::string::npos) << out;
  EXPECT_NE(out.find("server unix:" + dir.file("missing.sock") + " down"), std::string::npos) << out;
  EXPECT_NE(out.find("connection refused"), std::string::npos) << out;
  EXPECT_NE(out.find("no such file or directory"), std::string::npos) << out;
}

TEST(UnixSocket, ActiveHealthCheckProbesAUnixServer) {
  TempDir dir;
  UnixUpstream u(dir.file("u.sock"), "u");
  make_stale_socket(dir.file("stale.sock"));
  PastureServer srv("[app:main]\nuse = egg:pasture#balancer\nhealth_check = /health\nhealth_interval = 100ms\n"
                    "fall = 1\nservers = unix:" + dir.file("u.sock") + " unix:" + dir.file("stale.sock") + "\n",
                    1);
  ASSERT_TRUE(srv.started()) << srv.output();
  ASSERT_TRUE(wait_until([&] { return srv.output().find("stale.sock down") != std::string::npos; }))
      << srv.output();
  EXPECT_TRUE(wait_until([&] { return u.requests() >= 2; }));  // the probes of the live one
  for (int i = 0; i < 4; i++) EXPECT_EQ(http_get(srv.port(), "/x").header("X-Upstream"), "u");
}

// pasture itself on a unix socket (plus a TCP port), as `listen = unix:...`.
TEST(UnixSocket, ListensOnAUnixSocketWithPermsAndRemovesItOnTerm) {
  TempDir dir;
  std::string sock = dir.file("site.sock");
  uint16_t port = free_port();
  std::string ini = dir.write("site.ini", "[server:main]\nuse = egg:pasture#main\nlisten = unix:" + sock +
                                              " 127.0.0.1:" + std::to_string(port) +
                                              "\nunix_socket_perms = 660\nworkers = 2\n"
                                              "[app:main]\nuse = egg:pasture#echo\nname = hi\n");
  Process p({PASTURE_BINARY, "serve", ini});
  ASSERT_TRUE(wait_for_output(p, "serving on unix:" + sock)) << p.output();
  ASSERT_TRUE(wait_for_port(port));
  struct stat st;
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  for (int i = 0; i < 4; i++) {
    std::string resp = unix_get(sock, "/u" + std::to_string(i));
    EXPECT_EQ(resp.rfind("HTTP/1.1 200 ", 0), 0u) << resp;
    EXPECT_NE(resp.find("\r\n\r\nhi GET /u" + std::to_string(i)), std::string::npos) << resp;
  }
  // HUP keeps the socket (same file), and it still answers.
  ino_t ino = st.st_ino;
  ASSERT_TRUE(p.signal(SIGHUP));
  ASSERT_TRUE(wait_for_output(p, "reloaded")) << p.output();
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, ino);
  EXPECT_NE(unix_get(sock, "/after").find("hi GET /after"), std::string::npos);
  ASSERT_TRUE(p.signal(SIGTERM));
  EXPECT_TRUE(exited_with(p.wait_exit(), 0)) << p.output();
  EXPECT_NE(stat(sock.c_str(), &st), 0) << "socket file left behind";
}

// USR2 (binary upgrade): the new master inherits the unix listener; the old
// one, told to quit, leaves the file to it; the new one removes it on TERM.
TEST(UnixSocket, BinaryUpgradeHandsTheSocketFileOver) {
  TempDir dir;
  std::string sock = dir.file("up.sock");
  std::string ini = dir.write("site.ini", "[server:main]\nuse = egg:pasture#main\nlisten = unix:" + sock +
                                              "\nworkers = 1\n[app:main]\nuse = egg:pasture#echo\nname = u\n");
  Process p({PASTURE_BINARY, "serve", ini});
  ASSERT_TRUE(wait_for_output(p, "serving on unix:" + sock)) << p.output();
  struct stat st;
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  const ino_t ino = st.st_ino;
  ASSERT_TRUE(p.signal(SIGUSR2));
  ASSERT_TRUE(wait_for_output(p, "started new master")) << p.output();
  // "SIGUSR2: started new master EXE, pid N, ...": the new master's pid.
  std::string out = p.output();
  size_t at = out.find(", pid ", out.find("started new master"));
  ASSERT_NE(at, std::string::npos) << out;
  const pid_t new_pid = static_cast<pid_t>(atoi(out.c_str() + at + 6));
  ASSERT_GT(new_pid, 0) << out;
  ASSERT_TRUE(wait_until([&] {
    size_t n = 0;
    for (size_t i = p.output().find("serving on unix:" + sock); i != std::string::npos;
         i = p.output().find("serving on unix:" + sock, i + 1))
      n++;
    return n >= 2;  // the new master serves on the inherited socket
  })) << p.output();
  ASSERT_TRUE(p.signal(SIGQUIT));  // the old master drains and exits
  EXPECT_TRUE(exited_with(p.wait_exit(), 0)) << p.output();
  ASSERT_EQ(stat(sock.c_str(), &st), 0) << "the old master removed the new master's socket";
  EXPECT_EQ(st.st_ino, ino);
  EXPECT_NE(unix_get(sock, "/new").find("u GET /new"), std::string::npos);
  ASSERT_EQ(::kill(new_pid, SIGTERM), 0);
  EXPECT_TRUE(wait_until([&] { return ::kill(new_pid, 0) != 0; }));
  EXPECT_TRUE(wait_until([&] { return stat(sock.c_str(), &st) != 0; })) << "socket file left behind";
}

// waitress's unix_socket: a stale file is replaced; a live one is not stolen.
TEST(UnixSocket, StaleSocketFileIsReplacedLiveOneIsNotStolen) {
  TempDir dir;
  std::string sock = dir.file("w.sock");
  make_stale_socket(sock);
  std::string ini = dir.write("site.ini", "[server:main]\nuse = egg:waitress#main\nunix_socket = " + sock +
                                              "\nworkers = 1\n[app:main]\nuse = egg:pasture#echo\nname = w\n");
  Process a({PASTURE_BINARY, "serve", ini});
  ASSERT_TRUE(wait_for_output(a, "serving on unix:" + sock)) << a.output();
  struct stat st;
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);  // waitress's default unix_socket_perms
  EXPECT_NE(unix_get(sock, "/a").find("w GET /a"), std::string::npos);

  Process b({PASTURE_BINARY, "serve", ini});
  std::optional<int> status = b.wait_exit();
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(exited_with(status, 0));
  EXPECT_NE(b.output().find(ini + ":3: cannot listen on unix:" + sock +
                            ": another process is listening on it"),
            std::string::npos)
      << b.output();
  // The first instance keeps its socket.
  EXPECT_NE(unix_get(sock, "/still").find("w GET /still"), std::string::npos);
  ASSERT_TRUE(a.signal(SIGTERM));
  EXPECT_TRUE(exited_with(a.wait_exit(), 0)) << a.output();
  EXPECT_NE(stat(sock.c_str(), &st), 0) << "socket file left behind";
}

}  // namespace
}  // namespace pasture::test
