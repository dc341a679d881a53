// Raw-socket HTTP for integration tests: every byte is the test's. A client
// side (exchange(), drain(), Exchange) and an upstream whose connections run
// a script (RawUpstream), for desync and framing tests.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/pasture_server.h"

namespace pasture::test {

// What came back on one client connection.
struct Exchange {
  std::string bytes;
  bool closed = false;  // the server closed (EOF or reset)

  int status() const {  // of the first response, 0 if none
    if (bytes.compare(0, 9, "HTTP/1.1 ") != 0 || bytes.size() < 12) return 0;
    return std::atoi(bytes.substr(9, 3).c_str());
  }
  size_t responses() const {
    size_t n = 0;
    for (size_t p = 0; (p = bytes.find("HTTP/1.1 ", p)) != std::string::npos; p++) n++;
    return n;
  }
  std::string body() const {  // of the first response
    size_t p = bytes.find("\r\n\r\n");
    return p == std::string::npos ? "" : bytes.substr(p + 4);
  }
};

// Reads until the peer closes or is quiet for `quiet`.
inline void drain(int fd, Exchange& ex, Millis quiet) {
  for (;;) {
    IoResult r = recv_some(fd, ex.bytes, quiet);
    if (r == IoResult::kClosed || r == IoResult::kError) {
      ex.closed = true;
      return;
    }
    if (r != IoResult::kOk) return;
  }
}

// Sends `data` on a fresh connection and collects the answer.
inline Exchange exchange(uint16_t port, std::string_view data, Millis quiet = Millis(400)) {
  Exchange ex;
  Fd fd = connect_loopback(port);
  if (!fd.valid()) return ex;
  send_all(fd.get(), data);
  drain(fd.get(), ex, quiet);
  return ex;
}

inline std::string balancer(uint16_t port, const std::string& server_keys = "") {
  return server_keys + "\n[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:" +
         std::to_string(port) + "\nretries = 0\n";
}

// An upstream whose every connection runs a script: read up to a marker,
// write bytes, close. Records everything each connection received.
class RawUpstream {
 public:
  class Conn {
   public:
    explicit Conn(int fd) : fd_(fd) {}
    // Reads until `marker` appears in what this connection received (at
    // `from` or after).
    bool read_until(std::string_view marker, Millis timeout = Millis(5000), size_t from = 0) {
      auto end = std::chrono::steady_clock::now() + timeout;
      while (got.find(marker, from) == std::string::npos) {
        auto left = std::chrono::duration_cast<Millis>(end - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        if (recv_some(fd_, got, left) != IoResult::kOk) return false;
      }
      return true;
    }
    bool eof(Millis wait = Millis(3000)) {  // true once the proxy closed its side
      for (;;) {
        IoResult r = recv_some(fd_, got, wait);
        if (r == IoResult::kClosed || r == IoResult::kError) return true;
        if (r != IoResult::kOk) return false;
      }
    }
    void send(std::string_view s) { send_all(fd_, s); }
    // Small writes leave at once (no Nagle wait for the proxy's ACK).
    void no_delay() {
      int one = 1;
      setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    std::string got;

   private:
    int fd_;
  };
  using Script = std::function<void(Conn&)>;

  explicit RawUpstream(Script s) : script_(std::move(s)) {
    listener_ = listen_loopback(0);
    port_ = local_port(listener_.get());
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~RawUpstream() {
    stop_ = true;
    ::shutdown(listener_.get(), SHUT_RDWR);
    acceptor_.join();
    for (auto& t : threads_) t.join();
  }
  uint16_t port() const { return port_; }
  size_t connections() const { return accepted_; }
  // Bytes received on connection `i` (0-based), once its script ended.
  std::string received(size_t i) {
    std::lock_guard<std::mutex> lk(mu_);
    return i < log_.size() ? log_[i] : std::string();
  }
  bool wait_scripts(size_t n) {
    return wait_until([&] {
      std::lock_guard<std::mutex> lk(mu_);
      return log_.size() >= n;
    });
  }

 private:
  void accept_loop() {
    while (!stop_) {
      if (wait_fd(listener_.get(), POLLIN, Millis(100)) != IoResult::kOk) continue;
      int fd = ::accept(listener_.get(), nullptr, nullptr);
      if (fd < 0) continue;
      accepted_++;
      threads_.emplace_back([this, fd] {
        Fd owned(fd);
        Conn c(fd);
        script_(c);
        std::lock_guard<std::mutex> lk(mu_);
        log_.push_back(c.got);
      });
    }
  }

  Script script_;
  Fd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> accepted_{0};
  std::thread acceptor_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::vector<std::string> log_;
};

struct Case {
  const char* what;
  std::string bytes;
  int status;
};

// Each case: a fresh connection, the expected status, then close; nothing
// reaches the upstream.
inline void expect_rejected(PastureServer& srv, FakeUpstream& up, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    up.clear();
    Exchange ex = exchange(srv.port(), c.bytes);
    EXPECT_EQ(ex.status(), c.status) << ex.bytes;
    EXPECT_TRUE(ex.closed) << "the connection must close after a framing error";
    EXPECT_EQ(ex.responses(), 1u) << ex.bytes;
    EXPECT_EQ(up.request_count(), 0u) << "forwarded: " << up.requests()[0].target;
  }
}

}  // namespace pasture::test
