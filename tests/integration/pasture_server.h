// Starts the real `pasture` binary on a free port with a given INI body.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include "conf/json.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/upstream.h"

namespace pasture::test {

// Polls `pred` every 20 ms until it holds or `timeout` passes.
inline bool wait_until(const std::function<bool()>& pred, Millis timeout = Millis(5000)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// Live children of `pid` (a master's workers), from /proc.
// `pasture ARGS` (a shell command line after the binary): exit code and
// stdout+stderr.
inline std::pair<int, std::string> run_pasture(const std::string& args) {
  std::string cmd = std::string(PASTURE_BINARY) + " " + args + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int rc = pclose(f);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

// Starts `pasture serve INI` as systemd's socket activation does: `lfd`
// as fd 3, LISTEN_PID/LISTEN_FDS=1, stdout and stderr to `out`, in its own
// process group. Returns the child's pid (the caller owns it).
inline pid_t spawn_socket_activated(int lfd, const std::string& ini, const std::string& out) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);
  dup2(lfd, 3);
  fcntl(3, F_SETFD, 0);
  int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(o, 1);
  dup2(o, 2);
  std::string p = std::to_string(getpid());
  setenv("LISTEN_PID", p.c_str(), 1);
  setenv("LISTEN_FDS", "1", 1);
  execl(PASTURE_BINARY, PASTURE_BINARY, "serve", ini.c_str(), (char*)nullptr);
  _exit(127);
}

// `v["a"]["b"]...["value"]` of a typed field of the status app's JSON;
// ~0 when absent.
inline uint64_t typed_value(const conf::json::Value& v, std::initializer_list<const char*> path) {
  const conf::json::Value* p = &v;
  for (const char* k : path) {
    p = p->find(k);
    if (!p) return ~0ull;
  }
  const conf::json::Value* x = p->find("value");
  return x ? (uint64_t)x->as_number() : ~0ull;
}

// How many times `needle` is in `text` (a server's output, say).
inline int occurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = 0; (at = text.find(needle, at)) != std::string::npos; at++) n++;
  return n;
}

inline std::vector<int> children_of(int pid) {
  std::vector<int> out;
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  int c;
  while (f >> c) out.push_back(c);
  return out;
}

class PastureServer {
 public:
  // `ini_rest` is appended after a [server:main] section listening on a free
  // port with `workers` workers. Use {PORT} in ini_rest if needed. `extra`:
  // more arguments; `env`: more environment (Process).
  PastureServer(const std::string& ini_rest, int workers, std::vector<std::string> extra = {},
                Process::Env env = {})
      : port_(free_port()) {
    std::string ini = "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " +
                      std::to_string(port_) + "\nworkers = " + std::to_string(workers) + "\n\n" +
                      ini_rest;
    path_ = dir_.write("site.ini", ini);
    std::vector<std::string> argv = {PASTURE_BINARY, "serve", path_};
    for (auto& e : extra) argv.push_back(e);
    proc_ = std::make_unique<Process>(argv, std::move(env));
    started_ = wait_for_output(*proc_, "serving on") && wait_for_port(port_);
  }
  bool started() const { return started_; }
  uint16_t port() const { return port_; }
  Process& proc() { return *proc_; }
  const std::string& path() const { return path_; }
  std::string output() const { return proc_->output(); }

  // Worker pids as the master logs them ("worker N started, pid P").
  std::vector<int> worker_pids() const {
    std::vector<int> pids;
    std::string out = proc_->output();
    size_t pos = 0;
    while ((pos = out.find("started, pid ", pos)) != std::string::npos) {
      pos += 13;
      pids.push_back(atoi(out.c_str() + pos));
    }
    return pids;
  }

 private:
  TempDir dir_;
  uint16_t port_;
  std::string path_;
  std::unique_ptr<Process> proc_;
  bool started_ = false;
};

}  // namespace pasture::test
