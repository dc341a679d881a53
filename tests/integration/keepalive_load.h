// Keep-alive load that does not retry, for fault tests (drain, upstream
// death). Each thread sends its next GET the moment the previous answer is
// read, on the same connection, as wrk does, so any instant the server picks
// to close an idle connection races a request already on its way. Like
// Python's http.client it never resends: a request that ends without a
// complete answer (EOF, reset, timeout, refused connect) is a failure, and
// so is any status but 200. A connection is replaced after an answer that
// said "Connection: close", or by the client itself after
// `requests_per_connection` answers (0 = never) so that connections keep
// moving between workers, as a client's connection pool does.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.h"

namespace pasture::test {

class KeepAliveLoad {
 public:
  // `paths[i % paths.size()]` is thread i's target.
  KeepAliveLoad(uint16_t port, int threads, std::vector<std::string> paths = {"/"},
                int requests_per_connection = 0)
      : paths_(std::move(paths)), per_conn_(requests_per_connection) {
    for (int i = 0; i < threads; i++)
      ts_.emplace_back([this, port, i] { run(port, paths_[i % paths_.size()]); });
  }
  ~KeepAliveLoad() { finish(); }
  KeepAliveLoad(const KeepAliveLoad&) = delete;
  KeepAliveLoad& operator=(const KeepAliveLoad&) = delete;

  void finish() {
    stop_ = true;
    for (auto& t : ts_)
      if (t.joinable()) t.join();
  }
  int ok() const { return ok_; }
  int failed() const { return failed_; }
  int closes() const { return closes_; }  // answers with Connection: close
  // "what: count" per kind of failure, for assertion messages.
  std::string failures() const {
    std::lock_guard<std::mutex> l(mu_);
    std::string s;
    for (const auto& [what, n] : errors_) s += what + ": " + std::to_string(n) + "\n";
    return s;
  }
  std::map<std::string, int> by_server() const {
    std::lock_guard<std::mutex> l(mu_);
    return by_server_;
  }

 private:
  void run(uint16_t port, const std::string& path) {
    while (!stop_) {
      HttpConn c(port);
      if (!c.connected()) {
        fail("connect: " + c.error());
        continue;
      }
      for (int n = 1; !stop_ && (per_conn_ == 0 || n <= per_conn_); n++) {
        Response r = c.request("GET", path);
        if (!r.ok()) {
          fail(r.error);
          break;
        }
        if (r.status != 200) {
          fail("status " + std::to_string(r.status));
        } else {
          ok_++;
          std::lock_guard<std::mutex> l(mu_);
          by_server_[r.header("X-Upstream")]++;
        }
        if (!r.keep_alive) {
          closes_++;
          break;
        }
      }
    }
  }
  void fail(const std::string& what) {
    failed_++;
    std::lock_guard<std::mutex> l(mu_);
    errors_[what]++;
  }

  std::vector<std::string> paths_;
  int per_conn_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0}, closes_{0};
  mutable std::mutex mu_;
  std::map<std::string, int> errors_;
  std::map<std::string, int> by_server_;
  std::vector<std::thread> ts_;
};

}  // namespace pasture::test
