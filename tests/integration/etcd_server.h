// The etcd discovery tests' etcd: the real `etcd` binary (Debian's
// etcd-server) on two free loopback ports with a data directory of its own,
// killed by PID (SIGKILL, as a crash) and started again on the same ports
// and data; keys changed through its v3 JSON gateway.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/integration/pasture_server.h"

namespace pasture::test {

inline const char* etcd_binary() {
  for (const char* p : {"/usr/bin/etcd", "/usr/local/bin/etcd"})
    if (access(p, X_OK) == 0) return p;
  return nullptr;
}

inline std::string b64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = (uint8_t)in[i] << 16 | (i + 1 < in.size() ? (uint8_t)in[i + 1] << 8 : 0) |
                 (i + 2 < in.size() ? (uint8_t)in[i + 2] : 0);
    out += k[v >> 18 & 63];
    out += k[v >> 12 & 63];
    out += i + 1 < in.size() ? k[v >> 6 & 63] : '=';
    out += i + 2 < in.size() ? k[v & 63] : '=';
  }
  return out;
}

class EtcdServer {
 public:
  EtcdServer() : client_(free_port()), peer_(free_port()) { start(); }
  ~EtcdServer() { kill(); }

  // Starts etcd (again: same ports, same data) and waits until it answers.
  bool start() {
    std::string c = "http://127.0.0.1:" + std::to_string(client_), p = "http://127.0.0.1:" + std::to_string(peer_);
    proc_ = std::make_unique<Process>(std::vector<std::string>{
        etcd_binary(), "--name", "t", "--data-dir", dir_.path() + "/data", "--listen-client-urls", c,
        "--advertise-client-urls", c, "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
        "--initial-cluster", "t=" + p, "--log-level", "warn"});
    return started_ = wait_until([&] { return post("/v3/kv/range", "{\"key\":\"" + b64("x") + "\"}").status == 200; },
                                 Millis(10000));
  }
  // SIGKILL by PID (a crash: no goodbye on the watch streams) and reaped.
  void kill() {
    if (proc_) proc_->signal(SIGKILL), proc_->wait_exit();
    proc_.reset();
  }
  bool started() const { return started_; }
  // SIGSTOP: hung (its sockets still accept); SIGCONT: back.
  void signal(int sig) {
    if (proc_) proc_->signal(sig);
  }
  // Stopped, its data gone: the next start() is a new, empty cluster.
  void wipe() {
    kill();
    std::string cmd = "rm -rf '" + dir_.path() + "/data'";
    if (system(cmd.c_str()) != 0) started_ = false;
  }
  uint16_t port() const { return client_; }
  std::string url(const std::string& prefix) const { return "etcd://127.0.0.1:" + std::to_string(client_) + prefix; }
  std::string output() const { return proc_ ? proc_->output() : ""; }

  Response post(const std::string& path, const std::string& body) const {
    return http_request(client_, "POST", path, {{"Content-Type", "application/json"}}, body, Millis(3000));
  }
  bool put(const std::string& key, const std::string& value) const {
    return post("/v3/kv/put", "{\"key\":\"" + b64(key) + "\",\"value\":\"" + b64(value) + "\"}").status == 200;
  }
  bool del(const std::string& key) const {
    return post("/v3/kv/deleterange", "{\"key\":\"" + b64(key) + "\"}").status == 200;
  }
  // The store's revision now.
  uint64_t revision() const {
    Response r = post("/v3/kv/range", "{\"key\":\"" + b64("x") + "\"}");
    size_t at = r.body.find("\"revision\":\"");
    return at == std::string::npos ? 0 : strtoull(r.body.c_str() + at + 12, nullptr, 10);
  }
  bool compact(uint64_t revision) const {
    return post("/v3/kv/compaction", "{\"revision\":\"" + std::to_string(revision) + "\",\"physical\":true}").status == 200;
  }
  // A key's value ("" if none).
  std::string get(const std::string& key) const {
    Response r = post("/v3/kv/range", "{\"key\":\"" + b64(key) + "\"}");
    size_t at = r.body.find("\"value\":\"");
    if (at == std::string::npos) return "";
    std::string v = r.body.substr(at + 9, r.body.find('"', at + 9) - at - 9);
    static const std::string k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char ch : v) {
      if (ch == '=') break;
      acc = acc << 6 | (uint32_t)k.find(ch);
      if ((bits += 6) >= 8) out += (char)(acc >> (bits -= 8) & 0xff);
    }
    return out;
  }

 private:
  TempDir dir_;
  uint16_t client_, peer_;
  std::unique_ptr<Process> proc_;
  bool started_ = false;
};

}  // namespace pasture::test
