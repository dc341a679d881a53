// Helpers of the embedded-mode WSGI tests (wsgi_embedded_test.cc,
// wsgi_embedded_review_test.cc): pasture serving tests/wsgi/embed_app.ini
// (EmbedSite) and a raw client connection (RawConn).
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/raw_http.h"
#include "tests/support/pattern.h"
#include "tests/support/sanitized.h"

namespace pasture::test {
namespace {


using Clock = std::chrono::steady_clock;
constexpr size_t kNpos = std::string::npos;

const std::string kWsgiDir = std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi";

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

[[maybe_unused]] long ms_since(Clock::time_point t0) {
  return (long)std::chrono::duration_cast<Millis>(Clock::now() - t0).count();
}

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = 0; (p = hay.find(needle, p)) != kNpos; p += needle.size()) n++;
  return n;
}

// VmRSS of a process in KiB (0 if gone).
[[maybe_unused]] long rss_kb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.compare(0, 6, "VmRSS:") == 0) return atol(line.c_str() + 6);
  return 0;
}

// pasture serving tests/wsgi/embed_app.ini in embedded mode (the default
// app_mode): `workers` workers of `threads` app threads each, plus `keys`
// in [server:main]. The app records into rec(). started() has served one
// request (/pid). `env` is added to the test's environment.
class EmbedSite {
 public:
  explicit EmbedSite(int threads, int workers = 1, const std::string& keys = "", Process::Env env = {})
      : port_(free_port()) {
    std::string ini = "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " + std::to_string(port_) +
                      "\nworkers = " + std::to_string(workers) + "\nthreads = " + std::to_string(threads) +
                      "\ngraceful_timeout = 2\n" + keys + "\n\n" + slurp(kWsgiDir + "/embed_app.ini");
    path_ = dir_.write("site.ini", ini);
    env.insert(env.end(), {{"PYTHONPATH", kWsgiDir}, {"EMBEDAPP_IMPORTS", rec_.file("imports")}});
    proc_ = std::make_unique<Process>(
        std::vector<std::string>{PASTURE_BINARY, "serve", path_, "record_dir=" + rec_.path()},
        env);
    // Up once the app answers: a worker loading Python on a busy box can
    // take seconds, which no test's own timeouts should have to absorb.
    started_ = wait_for_output(*proc_, "serving on", Millis(20000)) && wait_for_port(port_) &&
               http_get(port_, "/pid", {}, Millis(20000)).status == 200;
  }
  bool started() const { return started_; }
  uint16_t port() const { return port_; }
  Process& proc() { return *proc_; }
  std::string log() const { return proc_->output(); }
  const TempDir& rec() const { return rec_; }
  std::string record(const std::string& name) const { return slurp(rec_.file(name)); }
  bool wait_record(const std::string& name, const std::string& needle, Millis t = Millis(3000)) const {
    return wait_until([&] { return record(name).find(needle) != kNpos; }, t);
  }
  // The pid of the worker that answers a fresh connection; 0 if none did.
  int worker_pid(int sleep_ms = 0) const {
    Response r = http_get(port_, sleep_ms ? "/pid?ms=" + std::to_string(sleep_ms) : "/pid");
    return r.status == 200 ? atoi(r.body.c_str()) : 0;
  }

 private:
  TempDir dir_;
  TempDir rec_;
  uint16_t port_;
  std::string path_;
  std::unique_ptr<Process> proc_;
  bool started_ = false;
};

// One client connection, bytes in and out, nothing interpreted.
class RawConn {
 public:
  explicit RawConn(uint16_t port, int rcvbuf = 0) : fd_(connect_loopback(port)) {
    if (rcvbuf) setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  bool send(std::string_view s) { return send_all(fd_.get(), s) == IoResult::kOk; }
  // Reads until `got` holds `needle`; false on close or timeout first.
  bool read_until(std::string_view needle, Millis t = Millis(3000)) {
    auto end = Clock::now() + t;
    while (got.find(needle) == kNpos) {
      if (closed || !read_once(end)) return false;
    }
    return true;
  }
  // Reads until `got` holds `n` bytes.
  bool read_bytes(size_t n, Millis t = Millis(3000)) {
    auto end = Clock::now() + t;
    while (got.size() < n) {
      if (closed || !read_once(end)) return false;
    }
    return true;
  }
  // Reads until the peer closes (true) or `t` passes (false).
  bool closed_within(Millis t) {
    auto end = Clock::now() + t;
    while (!closed)
      if (!read_once(end)) return false;
    return true;
  }
  // Reads what arrives until `quiet` passes without a byte; true if closed.
  bool quiet(Millis q = Millis(200)) {
    while (!closed)
      if (!read_once(Clock::now() + q)) break;
    return closed;
  }
  std::string head() const { return got.substr(0, got.find("\r\n\r\n") + 4); }
  std::string body() const {
    size_t p = got.find("\r\n\r\n");
    return p == kNpos ? "" : got.substr(p + 4);
  }
  std::string got;
  bool closed = false;

 private:
  bool read_once(Clock::time_point end) {
    auto left = std::chrono::duration_cast<Millis>(end - Clock::now());
    if (left.count() <= 0) return false;
    IoResult r = recv_some(fd_.get(), got, left);
    if (r == IoResult::kClosed || r == IoResult::kError) closed = true;
    return r == IoResult::kOk || closed;
  }
  Fd fd_;
};

std::string lower(std::string s) {
  for (char& c : s) c = (char)tolower((unsigned char)c);
  return s;
}

bool head_has(const std::string& head, const std::string& field) { return lower(head).find(lower(field)) != kNpos; }

// A chunked body decoded; "<bad chunking>" if it is not one, complete.
std::string dechunk(const std::string& b) {
  std::string out;
  size_t p = 0;
  for (;;) {
    size_t eol = b.find("\r\n", p);
    if (eol == kNpos) return "<bad chunking>";
    size_t n = strtoul(b.substr(p, eol - p).c_str(), nullptr, 16);
    p = eol + 2;
    if (n == 0) return b.compare(p, kNpos, "\r\n") == 0 ? out : "<bad chunking>";
    if (p + n + 2 > b.size() || b.compare(p + n, 2, "\r\n") != 0) return "<bad chunking>";
    out.append(b, p, n);
    p += n + 2;
  }
}

// At most 200 bytes of `s`, for failure messages (a body can be megabytes).
std::string brief(const std::string& s) {
  return s.size() <= 200 ? s : s.substr(0, 200) + "... (" + std::to_string(s.size()) + " bytes)";
}

const std::string kGet = " HTTP/1.1\r\nHost: t\r\n\r\n";

}  // namespace
}  // namespace pasture::test
