// Python WSGI apps served by pasture, for the hosted-app tests (wsgi_test.cc,
// wsgi_pyramid_test.cc): a site INI in one of pasture's app modes, the
// `pasture serve` on it, and `paster3 serve` (Debian's python3-pastescript)
// on the same file for comparison.
//
// Every mode can run the apps under wsgiref.validate.validator (the test
// apps' PASTURE_TEST_VALIDATE switch, tests/wsgi/pasture_testapp): a WSGI
// violation then shows as an "AssertionError" traceback or an "Exception
// ignored" line in pasture's output, which WsgiTest::TearDown looks for
// once pasture has stopped.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace pasture::test {

inline const std::string kWsgiDir = std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi";

inline std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline bool have_paster() { return access("/usr/bin/paster3", X_OK) == 0; }

// How pasture runs the Python app in one test instance.
struct HostMode {
  bool embedded = true;  // app_mode = embedded (else process, with app_workers)
  int threads = 1;       // embedded: app threads per worker (1: inline on the event loop)
  bool validate = true;  // the apps wrapped in wsgiref's validator

  std::string name() const {
    std::string n = embedded ? "Embedded" + std::to_string(threads) : "Process";
    return validate ? n : n + "Unvalidated";
  }
};

inline const HostMode kEmbedded1{true, 1, true};
inline const HostMode kEmbedded4{true, 4, true};
inline const HostMode kProcess{false, 1, true};

// For gtest's test names and messages.
inline void PrintTo(const HostMode& m, std::ostream* os) { *os << m.name(); }

inline std::string mode_name(const ::testing::TestParamInfo<HostMode>& p) { return p.param.name(); }

// One INI file with two server sections: [server:main] for pasture (in
// `mode`) and [server:paster] (Paste's httpserver) for paster3, then
// `apps`, the app sections.
class WsgiSite {
 public:
  // `server_extra`: more [server:main] lines.
  WsgiSite(const HostMode& mode, const std::string& apps, int app_workers = 2, std::string pythonpath = kWsgiDir,
           const std::string& server_extra = "")
      : mode_(mode), pythonpath_(std::move(pythonpath)), port_(free_port()), paster_port_(free_port()) {
    std::string server = "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " + std::to_string(port_) +
                         "\nworkers = 2\ngraceful_timeout = 2\n" + server_extra;
    if (mode.embedded)
      server += "app_mode = embedded\nthreads = " + std::to_string(mode.threads) + "\n";
    else
      server += "app_mode = process\napp_workers = " + std::to_string(app_workers) + "\n";
    std::string paster = "[server:paster]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = " +
                         std::to_string(paster_port_) + "\n";
    path_ = dir_.write("site.ini", server + "\n" + paster + "\n" + apps);
  }

  // The test's environment for pasture and paster3. /usr/bin leads PATH:
  // process mode probes each python3 on it for paste.deploy, and a pyenv
  // shim ahead of Debian's costs a second per probe.
  Process::Env env() const {
    const char* path = getenv("PATH");
    return {{"PYTHONPATH", pythonpath_},
            {"PASTURE_TEST_VALIDATE", mode_.validate ? "1" : "0"},
            {"PATH", std::string("/usr/bin:/bin") + (path ? ":" + std::string(path) : "")}};
  }
  // `pasture serve` (and paster3 with `with_paster`, started alongside);
  // true once they answer. pasture says "serving on" before its workers
  // have imported the app (embedded): one answer from the app says one has.
  bool start(bool with_paster = false) {
    pasture_ = std::make_unique<Process>(std::vector<std::string>{PASTURE_BINARY, "serve", path_}, env());
    if (with_paster)
      paster_ = std::make_unique<Process>(
          std::vector<std::string>{"/usr/bin/paster3", "serve", path_, "--server-name=paster"}, env());
    bool ok = wait_for_output(*pasture_, "serving on", Millis{20000}) && wait_for_port(port_) &&
              http_get(port_, "/", {}, Millis{20000}).status != 0;
    return ok && (!with_paster || wait_for_port(paster_port_, Millis{20000}));
  }
  bool started() const { return pasture_ != nullptr; }

  // App process pids as the master logs them ("app [...] process N started, pid P").
  std::vector<int> app_pids() const {
    std::vector<int> pids;
    std::string out = pasture_->output();
    for (size_t pos = 0; (pos = out.find(" process ", pos)) != std::string::npos;) {
      pos += 9;
      size_t eol = out.find('\n', pos);
      std::string line = out.substr(pos, eol - pos);
      size_t at = line.find("started, pid ");
      if (at != std::string::npos) pids.push_back(atoi(line.c_str() + at + 13));
    }
    return pids;
  }

  // Stops pasture gracefully (the validator's complaints about iterables
  // never closed come as they are collected) and checks that its output
  // holds none.
  void expect_validator_quiet() {
    if (!pasture_ || !mode_.validate) return;
    if (pasture_->running()) {
      pasture_->signal(SIGTERM);
      EXPECT_TRUE(pasture_->wait_exit(Millis{8000}).has_value()) << "no graceful stop";
    }
    std::string out = pasture_->output();
    for (const char* needle : {"AssertionError", "Exception ignored"}) {
      size_t at = out.find(needle);
      size_t from = at == std::string::npos ? 0 : at - std::min<size_t>(at, 2000);
      EXPECT_EQ(at, std::string::npos) << "wsgiref.validate complained:\n" << out.substr(from, 2400);
    }
  }

  const HostMode& mode() const { return mode_; }
  uint16_t port() const { return port_; }
  uint16_t paster_port() const { return paster_port_; }
  Process& pasture() { return *pasture_; }
  const std::string& path() const { return path_; }

 private:
  HostMode mode_;
  TempDir dir_;
  std::string pythonpath_;
  uint16_t port_, paster_port_;
  std::string path_;
  std::unique_ptr<Process> pasture_, paster_;
};

// A fixture whose test makes one site; TearDown checks the validator's verdict.
class WsgiTest : public ::testing::Test {
 protected:
  explicit WsgiTest(HostMode m) : mode_(m) {}
  // The site for tests/wsgi/<ini>.
  WsgiSite& site(const std::string& ini, int app_workers = 2, const std::string& pythonpath = kWsgiDir) {
    return site_text(read_text(kWsgiDir + "/" + ini), app_workers, pythonpath);
  }
  WsgiSite& site_text(const std::string& apps, int app_workers = 2, const std::string& pythonpath = kWsgiDir,
                      const std::string& server_extra = "") {
    site_ = std::make_unique<WsgiSite>(mode_, apps, app_workers, pythonpath, server_extra);
    return *site_;
  }
  void TearDown() override {
    if (site_ && site_->started()) site_->expect_validator_quiet();
  }
  const HostMode& mode() const { return mode_; }

 private:
  HostMode mode_;
  std::unique_ptr<WsgiSite> site_;
};

// The same test in each mode: INSTANTIATE_TEST_SUITE_P(..., Values(...), mode_name).
class WsgiModes : public WsgiTest, public ::testing::WithParamInterface<HostMode> {
 protected:
  WsgiModes() : WsgiTest(GetParam()) {}
};

// A body for a failure message: at most `max` bytes of it (a server that
// over-reads would otherwise flood the log with its memory).
inline std::string shorten(const std::string& body, size_t max = 300) {
  if (body.size() <= max) return body;
  return body.substr(0, max) + "... (" + std::to_string(body.size()) + " bytes)";
}

// Bodies with the server's port number (a URL the app built) made comparable.
inline std::string normalize_port(std::string body, uint16_t port) {
  std::string p = std::to_string(port);
  for (size_t at; (at = body.find(p)) != std::string::npos;) body.replace(at, p.size(), "PORT");
  return body;
}

}  // namespace pasture::test
