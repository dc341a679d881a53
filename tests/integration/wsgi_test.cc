// Python WSGI apps served by pasture, in each app mode: embedded (the app
// called in-process by every worker, worker/wsgi/; threads = 1 inline on the
// loop, threads = 4 on app threads) and process (master/apphost.h,
// python/pasture_wsgi.py), checked against `paster3 serve` on the same INI
// file where paster can serve it, with the apps under wsgiref's validator
// (tests/integration/wsgi_site.h). The app is tests/wsgi/pasture_testapp.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/raw_http.h"
#include "tests/integration/wsgi_site.h"

namespace pasture::test {
namespace {

namespace fs = std::filesystem;
using ::testing::Values;

// Every mode with the apps under the validator (WsgiModes, WsgiCompare),
// and some tests with them unwrapped too (WsgiUnvalidated): the validator's
// iterator hides a list response (where pasture works out a Content-Length
// itself) from the server.

class WsgiCompare : public WsgiModes {};
INSTANTIATE_TEST_SUITE_P(Wsgi, WsgiCompare, Values(kEmbedded1, kEmbedded4, kProcess), mode_name);
INSTANTIATE_TEST_SUITE_P(Wsgi, WsgiModes, Values(kEmbedded1, kEmbedded4, kProcess), mode_name);

class WsgiProcessOnly : public WsgiTest {
 protected:
  WsgiProcessOnly() : WsgiTest(kProcess) {}
};

struct Req {
  std::string method, target, body;
  Headers headers;
  bool compare_body = true;  // false: the server writes the body (an error page)
};

const std::vector<Req>& requests() {
  static const std::vector<Req> r = {
      {"GET", "/text", "", {}},
      {"GET", "/json?a=1&b=two", "", {}},
      {"GET", "/stream", "", {}},
      {"POST", "/echo", std::string(100000, 'x') + "end", {{"Content-Type", "application/octet-stream"}}},
      {"GET", "/environ?q=1", "", {{"Host", "example.test:8080"}, {"X-Test", "yes"}}},
      {"GET", "/environ", "", {{"X-Forwarded-For", "203.0.113.7"}}},
      {"POST", "/environ", "k=v", {{"Content-Type", "application/x-www-form-urlencoded"}}},
      {"POST", "/lines", "a\nbb\n\nccc\ndddd", {{"Content-Type", "text/plain"}}},
      {"GET", "/write", "", {}},
      {"GET", "/exc_info", "", {}},
      {"GET", "/file", "", {}},
      {"GET", "/empty", "", {}},
      {"HEAD", "/text", "", {}},
      {"GET", "/raise", "", {}, false},
      {"GET", "/nope", "", {}},
  };
  return r;
}

std::string environ_value(const std::string& json, const std::string& key) {
  std::string k = "\"" + key + "\": \"";
  size_t at = json.find(k);
  if (at == std::string::npos) return "<absent>";
  at += k.size();
  return json.substr(at, json.find('"', at) - at);
}

// `skip`: targets the app stack cannot serve right under any server.
void expect_same_as_paster(WsgiSite& site, const std::vector<std::string>& skip = {}) {
  ASSERT_TRUE(site.start(/*with_paster=*/true)) << site.pasture().output();
  for (const Req& q : requests()) {
    if (std::find(skip.begin(), skip.end(), q.target) != skip.end()) continue;
    // Unwrapped, write() then a list is WsgiUnvalidated.WriteThenAListIsSentWhole's.
    if (!site.mode().validate && q.target == "/write") continue;
    SCOPED_TRACE(q.method + " " + q.target);
    Response a = http_request(site.port(), q.method, q.target, q.headers, q.body);
    Response b = http_request(site.paster_port(), q.method, q.target, q.headers, q.body);
    ASSERT_TRUE(a.ok()) << a.error;
    ASSERT_TRUE(b.ok()) << b.error;
    EXPECT_EQ(a.status, b.status);
    if (q.compare_body) {
      std::string pa = normalize_port(a.body, site.port()), pb = normalize_port(b.body, site.paster_port());
      EXPECT_TRUE(pa == pb) << "pasture: " << shorten(pa) << "\npaster: " << shorten(pb);
      EXPECT_EQ(a.header("Content-Type"), b.header("Content-Type"));
    }
    EXPECT_EQ(a.header("X-Testapp-Filter"), b.header("X-Testapp-Filter"));
  }
  // The switch reached the app (and paster's).
  const char* validated = site.mode().validate ? "yes\n" : "no\n";
  EXPECT_EQ(http_get(site.port(), "/validated").body, validated);
  EXPECT_EQ(http_get(site.paster_port(), "/validated").body, validated);
}

TEST_P(WsgiCompare, AppFactoryMatchesPasterServe) {
  if (!have_paster()) GTEST_SKIP() << "paster3 (python3-pastescript) is not installed";
  expect_same_as_paster(site("app_factory.ini"));
}
TEST_P(WsgiCompare, CallMatchesPasterServe) {
  if (!have_paster()) GTEST_SKIP() << "paster3 (python3-pastescript) is not installed";
  expect_same_as_paster(site("call.ini"));
}
TEST_P(WsgiCompare, PythonFilterPipelineMatchesPasterServe) {
  if (!have_paster()) GTEST_SKIP() << "paster3 (python3-pastescript) is not installed";
  // Paste's translogger drops exc_info (its start_response passes on only
  // status and headers): a second start_response is an error anywhere.
  expect_same_as_paster(site("pipeline.ini"), {"/exc_info"});
}

// The apps unwrapped: what the validator hides from the server (a list
// response) or stops before the app (an environ it rejects).
class WsgiUnvalidated : public WsgiModes {};
INSTANTIATE_TEST_SUITE_P(Wsgi, WsgiUnvalidated,
                         Values(HostMode{true, 1, false}, HostMode{true, 4, false}, HostMode{false, 1, false}),
                         mode_name);

TEST_P(WsgiUnvalidated, CallMatchesPasterServe) {
  if (!have_paster()) GTEST_SKIP() << "paster3 (python3-pastescript) is not installed";
  expect_same_as_paster(site("call.ini"));
}

// An app that sends part of its body with write() and returns the rest in
// a list: the list is not the whole body (nor its length).
TEST_P(WsgiUnvalidated, WriteThenAListIsSentWhole) {
  WsgiSite& s = site("call.ini", 1);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  for (int i = 0; i < 3; i++) {
    Response r = http_get(s.port(), "/write");
    EXPECT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.body == "written, then returned\n") << shorten(r.body, 100);
    EXPECT_TRUE(r.chunked || r.header("Content-Length") == "23") << r.header("Content-Length");
  }
  EXPECT_EQ(s.pasture().output().find("killed by signal"), std::string::npos) << s.pasture().output();
}

// PEP 3333: every CGI variable in the environ (a key without a dot) is a
// str, whatever the mode (the validator's first check, here by name).
TEST_P(WsgiUnvalidated, CgiVariablesAreStrings) {
  WsgiSite& s = site("call.ini", 1);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  for (const char* target : {"/not_str", "/not_str?q=1"}) {
    Response r = http_request(s.port(), "POST", target, {{"Content-Type", "text/plain"}, {"X-Test", "1"}}, "body");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "[]") << target;
  }
}

// An app's exception is a 500 and its whole traceback in pasture's output,
// down to the exception's own line, however deep the stack: what the check
// every validated test ends with relies on. An app that breaks WSGI
// (headers as a tuple) gets the validator's AssertionError there.
TEST_P(WsgiModes, AppErrorsReachTheOutputWhole) {
  WsgiSite s(mode(), read_text(kWsgiDir + "/call.ini"), 1);  // not the fixture's: TearDown would object
  ASSERT_TRUE(s.start()) << s.pasture().output();
  Response r = http_get(s.port(), "/invalid");
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_TRUE(wait_for_output(s.pasture(), "AssertionError: Headers", Millis{3000})) << s.pasture().output();
  r = http_get(s.port(), "/deep_raise");
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_TRUE(wait_for_output(s.pasture(), "RuntimeError: testapp: the end of a deep stack", Millis{3000}))
      << "the traceback lost its last line (see the output below)";
  EXPECT_EQ(http_get(s.port(), "/text").status, 200);
}

// An app's own 503 (a maintenance page) is its answer, as under paster: sent
// to the client, the app called once, and the app still in service after
// (not taken for a failing upstream: neither retried nor marked down).
TEST_P(WsgiModes, AppsOwn503IsAnAnswerNotAFailure) {
  WsgiSite& s = site("call.ini", 2);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  TempDir tmp;
  std::string count = tmp.path() + "/calls";
  Response r = http_get(s.port(), "/unavailable?" + count);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "down for maintenance\n");
  EXPECT_EQ(read_text(count), "x") << "the app was called more than once";
  for (int i = 0; i < 4; i++) {
    Response t = http_get(s.port(), "/text");
    EXPECT_EQ(t.status, 200) << t.body;
  }
}

// Request bodies as the app reads them: chunked (CONTENT_LENGTH then says
// how long it was), past the size pasture spools to a file (1 MiB), by
// lines, and on a keep-alive connection after an "Expect: 100-continue".
TEST_P(WsgiModes, ChunkedAndLargeBodiesReachTheApp) {
  WsgiSite& s = site("call.ini", 1);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  std::string big;
  for (int i = 0; big.size() < (3u << 19); i++) big += "line " + std::to_string(i) + "\n";
  HttpConn c(s.port());
  const Headers octets = {{"Content-Type", "application/octet-stream"}};
  Response r = c.request("POST", "/echo", octets, big, /*chunked=*/true);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body == big) << r.body.size() << " bytes of " << big.size();
  r = c.request("POST", "/echo", octets, big);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body == big) << r.body.size() << " bytes of " << big.size();
  r = c.request("POST", "/lines", {{"Content-Type", "text/plain"}}, "a\nbb\n\nccc\ndddd", /*chunked=*/true);
  EXPECT_EQ(r.body, R"(["a\n", "bb", "\n", "\n", "ccc\n", "dddd"])");
  r = c.request("POST", "/echo", {{"Content-Type", "application/octet-stream"}, {"Expect", "100-continue"}}, "after");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "after");
  r = c.request("POST", "/environ", {{"Content-Type", "text/plain"}}, "four", /*chunked=*/true);
  EXPECT_EQ(environ_value(r.body, "CONTENT_LENGTH"), "4") << r.body;
}

// [filter:balancer] without servers (paster has no such filter): process
// mode balances over app processes that run the rest of the pipeline;
// embedded mode runs the rest in every worker. Either way the request gets
// through the test app's filter to the app, from the client's address.
TEST_P(WsgiModes, BalancerFilterWithoutServersHostsTheRest) {
  WsgiSite& s = site("balancer.ini", 3);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  EXPECT_EQ(s.app_pids().size(), mode().embedded ? 0u : 3u) << s.pasture().output();
  for (int i = 0; i < 10; i++) {
    Response r = http_get(s.port(), "/text");
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "balanced from testapp\n");
    EXPECT_EQ(r.header("X-Testapp-Filter"), "on");
  }
  Response r = http_get(s.port(), "/environ");
  EXPECT_NE(r.body.find("\"testapp.filtered\": \"yes\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"REMOTE_ADDR\": \"127.0.0.1\""), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("HTTP_X_FORWARDED"), std::string::npos) << r.body;
}

// GETs in a loop from `threads` threads until `stop`, a new connection each
// (a keep-alive connection a draining worker closes is the client's to retry);
// counts failures.
struct GetLoop {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::string last_error;  // under mu
  std::vector<std::thread> threads;
  GetLoop(uint16_t port, const std::string& target, int n, std::atomic<int>* v2 = nullptr) {
    for (int i = 0; i < n; i++)
      threads.emplace_back([this, port, target, v2] {
        while (!stop) {
          Response r = http_get(port, target);
          if (r.status == 200) {
            ok++;
            if (v2 && r.body == "v2-new\n") (*v2)++;
          } else {
            failed++;
            std::lock_guard<std::mutex> l(mu);
            last_error = std::to_string(r.status) + " " + r.error + " " + shorten(r.body);
          }
        }
      });
  }
  void join() {
    stop = true;
    for (auto& t : threads) t.join();
  }
  std::string error() {
    std::lock_guard<std::mutex> l(mu);
    return last_error;
  }
};

TEST_F(WsgiProcessOnly, KillNineAnAppProcessUnderLoadFailsNothing) {
  WsgiSite& s = site("kill.ini", 2);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  std::vector<int> pids = s.app_pids();
  ASSERT_EQ(pids.size(), 2u);
  GetLoop loop(s.port(), "/text", 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(kill(pids[0], SIGKILL), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  loop.join();
  EXPECT_EQ(loop.failed.load(), 0) << loop.error();
  EXPECT_GT(loop.ok.load(), 50);
  EXPECT_TRUE(wait_for_output(s.pasture(), "killed by signal 9; respawning"));
  EXPECT_EQ(s.app_pids().size(), 3u) << s.pasture().output();  // respawned
  Response r = http_get(s.port(), "/text");
  EXPECT_EQ(r.status, 200);
}

// A master that dies (SIGKILL, a crash) takes its app processes with it, as
// it takes its workers (PR_SET_PDEATHSIG): left behind they would hold their
// memory for good, and a restarted pasture would start as many again.
TEST_F(WsgiProcessOnly, AppProcessesExitWhenTheMasterDies) {
  WsgiSite& s = site("call.ini", 2);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  std::vector<int> pids = s.app_pids();
  ASSERT_EQ(pids.size(), 2u) << s.pasture().output();
  auto alive = [](int pid) {  // a zombie is dead
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), {});
    size_t paren = stat.rfind(')');
    return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
  };
  ASSERT_TRUE(alive(pids[0]) && alive(pids[1]));
  ASSERT_EQ(kill(s.pasture().pid(), SIGKILL), 0);
  bool gone = wait_until([&] { return !alive(pids[0]) && !alive(pids[1]); }, Millis{3000});
  EXPECT_TRUE(gone) << "app processes " << pids[0] << " and " << pids[1] << " outlive their master";
  for (int pid : pids)
    if (alive(pid)) kill(pid, SIGKILL);
}

// Embedded: the master's load probe fails before any worker starts.
TEST_P(WsgiModes, AppThatCannotImportExitsWithTheTraceback) {
  WsgiSite& s = site("broken.ini", 2);
  auto t0 = std::chrono::steady_clock::now();
  Process p({PASTURE_BINARY, "serve", s.path()}, s.env());
  std::optional<int> st = p.wait_exit(Millis{10000});
  ASSERT_TRUE(st.has_value()) << "still running:\n" << p.output();
  EXPECT_FALSE(exited_with(st, 0));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  std::string out = p.output();
  EXPECT_NE(out.find("Traceback (most recent call last)"), std::string::npos) << out;
  EXPECT_NE(out.find("No module named 'pasture_testapp_no_such_module'"), std::string::npos) << out;
  EXPECT_NE(out.find("cannot load [app:main] (paste.app_factory = pasture_testapp.broken:make_app)"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("serving on"), std::string::npos) << out;
  EXPECT_EQ(out.find("worker 0 started"), std::string::npos) << out;
}

TEST_F(WsgiProcessOnly, NoInterpreterWithPasteDeployIsAClearError) {
  WsgiSite& s = site("call.ini", 1);
  Process p({PASTURE_BINARY, "serve", s.path(), "--python", "/bin/false"}, s.env());
  std::optional<int> st = p.wait_exit(Millis{10000});
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(exited_with(st, 0));
  EXPECT_NE(p.output().find("no Python interpreter that can import paste.deploy"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("/bin/false"), std::string::npos) << p.output();
}

// Process mode: new app processes; embedded: new workers import the new code.
TEST_P(WsgiModes, HupUnderLoadServesTheNewCodeAndFailsNothing) {
  TempDir code;
  fs::copy(kWsgiDir + "/pasture_testapp", code.path() + "/pasture_testapp", fs::copy_options::recursive);
  WsgiSite& s = site("call.ini", 2, code.path());
  ASSERT_TRUE(s.start()) << s.pasture().output();
  ASSERT_EQ(http_get(s.port(), "/version").body, "v1\n");
  std::atomic<int> v2{0};
  GetLoop loop(s.port(), "/version", 4, &v2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::ofstream(code.path() + "/pasture_testapp/version.py") << "VERSION = 'v2-new'\n";
  ASSERT_TRUE(s.pasture().signal(SIGHUP));
  // "serving on" does not wait for the workers' imports: a first-generation
  // worker may load the new code too. What counts is after the reload.
  EXPECT_TRUE(wait_for_output(s.pasture(), "generation 2 serving", Millis{20000}));
  int v2_then = v2.load();
  for (int i = 0; i < 100 && v2.load() == v2_then; i++) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  loop.join();
  EXPECT_EQ(loop.failed.load(), 0) << loop.error();
  EXPECT_GT(v2.load(), v2_then);
  // The old workers accept until every new one has imported the code (the
  // handover): then only the new code answers, 10 times in a row.
  Response last;
  int in_a_row = 0;
  for (int i = 0; i < 200 && in_a_row < 10; i++) {
    last = http_get(s.port(), "/version");
    in_a_row = last.body == "v2-new\n" ? in_a_row + 1 : 0;
    if (in_a_row == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(in_a_row, 10) << "last from pid " << last.header("X-Testapp-Pid") << ": " << last.body;
  s.expect_validator_quiet();  // stopped while `code` is still there to import from
}

// Embedded: a HUP's new workers import the app before they accept; the old
// ones must go on accepting until then, or every connection waits out the
// import (a large app takes seconds) in the listen queue.
void expect_acceptor_while_importing(const std::string& keys) {
  TempDir code;
  fs::copy(kWsgiDir + "/pasture_testapp", code.path() + "/pasture_testapp", fs::copy_options::recursive);
  WsgiSite s(kEmbedded1, read_text(kWsgiDir + "/slow.ini"), 2, code.path(), keys);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  std::atomic<bool> stop{false};
  std::atomic<long> worst_ms{0};
  std::atomic<int> failed{0};
  std::thread probe([&] {
    while (!stop) {
      auto t0 = std::chrono::steady_clock::now();
      Response r = http_get(s.port(), "/text");
      long ms = (long)std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
                    .count();
      if (r.status != 200) failed++;
      if (ms > worst_ms) worst_ms = ms;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::ofstream(code.path() + "/pasture_testapp/SLOW_IMPORT") << "";
  ASSERT_TRUE(s.pasture().signal(SIGHUP));
  EXPECT_TRUE(wait_for_output(s.pasture(), "generation 2 serving", Millis{10000}));
  // The new workers' 1.5 s imports, and a little more.
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  stop = true;
  probe.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_LT(worst_ms.load(), 1000) << "no worker accepted for that long during the reload";
  s.expect_validator_quiet();
}

TEST(WsgiHostedReload, HupKeepsAnAcceptorWhileTheNewWorkersImport) { expect_acceptor_while_importing(""); }

// reuse_port: a new worker listens on its own socket only once the app is
// loaded (the kernel spread connections to importing workers: ~2 s stalls).
TEST(WsgiHostedReload, HupWithReusePortKeepsAnAcceptorWhileTheNewWorkersImport) {
  expect_acceptor_while_importing("reuse_port = true\n");
}

// While a HUP's load probe imports the app (1.5 s here), the master still
// looks after the serving generation: a worker killed meanwhile is replaced
// at once, not after the import (review: with workers = 1 that was an outage).
TEST(WsgiHostedReload, WorkersAreReplacedWhileTheNewCodeImports) {
  TempDir code;
  fs::copy(kWsgiDir + "/pasture_testapp", code.path() + "/pasture_testapp", fs::copy_options::recursive);
  WsgiSite s(kEmbedded1, read_text(kWsgiDir + "/slow.ini"), 1, code.path());
  ASSERT_TRUE(s.start()) << s.pasture().output();
  std::string out = s.pasture().output();
  size_t at = out.find("worker 0 started, pid ");
  ASSERT_NE(at, std::string::npos) << out;
  int worker = atoi(out.c_str() + at + 22);
  ASSERT_GT(worker, 0);
  std::ofstream(code.path() + "/pasture_testapp/SLOW_IMPORT") << "";
  ASSERT_TRUE(s.pasture().signal(SIGHUP));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the probe is importing
  ASSERT_EQ(kill(worker, SIGKILL), 0);
  // Replaced while the probe still sleeps: a generation-1 worker starts
  // before generation 2 does.
  ASSERT_TRUE(wait_for_output(s.pasture(), "generation 2 serving", Millis{10000})) << s.pasture().output();
  auto gen1_starts = [](const std::string& text) {
    size_t n = 0;
    for (size_t p = text.find("(generation 1)"); p != std::string::npos; p = text.find("(generation 1)", p + 1)) n++;
    return n;
  };
  size_t before = gen1_starts(out);  // the first generation's workers
  out = s.pasture().output();
  std::string until_gen2 = out.substr(0, out.find("(generation 2)"));
  EXPECT_EQ(gen1_starts(until_gen2), before + 1) << out;
  EXPECT_EQ(http_get(s.port(), "/text").status, 200);
}

// preload: the master imports the app once; a HUP re-reads the INI but keeps
// that code (as gunicorn's preload_app), and says so.
TEST(WsgiHostedReload, HupKeepsThePreloadedCode) {
  TempDir code;
  fs::copy(kWsgiDir + "/pasture_testapp", code.path() + "/pasture_testapp", fs::copy_options::recursive);
  WsgiSite s(kEmbedded1, read_text(kWsgiDir + "/call.ini"), 2, code.path(), "preload = true\n");
  ASSERT_TRUE(s.start()) << s.pasture().output();
  ASSERT_EQ(http_get(s.port(), "/version").body, "v1\n");
  std::ofstream(code.path() + "/pasture_testapp/version.py") << "VERSION = 'v2-new'\n";
  ASSERT_TRUE(s.pasture().signal(SIGHUP));
  EXPECT_TRUE(wait_for_output(s.pasture(), "generation 2 serving")) << s.pasture().output();
  EXPECT_NE(s.pasture().output().find("preload: the apps loaded at start-up keep serving"), std::string::npos);
  for (int i = 0; i < 4; i++) EXPECT_EQ(http_get(s.port(), "/version").body, "v1\n");
  s.expect_validator_quiet();
}

// The app behind a urlmap prefix gets SCRIPT_NAME/PATH_INFO as paste.urlmap
// gives them, and a client cannot forge the prefix. Issue 20 #4: for the
// normalized path, whatever the spelling; paster3 agrees wherever Paste's
// server decodes the same way.
TEST_P(WsgiModes, UrlmapMountSetsScriptNameLikePaster) {
  if (!have_paster()) GTEST_SKIP() << "paster3 (python3-pastescript) is not installed";
  WsgiSite& s = site("urlmap.ini");
  ASSERT_TRUE(s.start(/*with_paster=*/true)) << s.pasture().output();
  for (const char* target : {"/mnt/environ?x=1", "/mnt/text", "/mnt", "/mntx/text"}) {
    SCOPED_TRACE(target);
    Headers h = {{"X-Pasture-Script-Name", "/forged"}};
    Response a = http_request(s.port(), "GET", target, h, "");
    Response b = http_request(s.paster_port(), "GET", target, h, "");
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a.status, b.status);
    if (std::string(target).find("environ") != std::string::npos) {
      EXPECT_EQ(environ_value(a.body, "SCRIPT_NAME"), "/mnt") << a.body;
      EXPECT_EQ(environ_value(a.body, "PATH_INFO"), "/environ") << a.body;
      EXPECT_EQ(environ_value(b.body, "SCRIPT_NAME"), "/mnt") << b.body;
    } else if (a.status == 200) {
      EXPECT_EQ(a.body, b.body);
    }
  }
  for (const char* target : {"/mnt/environ", "//mnt/environ", "/%6Dnt/environ", "/mnt//environ",
                             "/%6d%6e%74/%65nviron", "/x/../mnt/environ", "/mnt/./environ",
                             "/mnt/a/%2e%2e/environ", "/x%2F..%2Fmnt/environ"}) {
    SCOPED_TRACE(target);
    Response a = http_request(s.port(), "GET", target, {}, "");
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(environ_value(a.body, "SCRIPT_NAME"), "/mnt") << a.body;
    EXPECT_EQ(environ_value(a.body, "PATH_INFO"), "/environ") << a.body;
    if (std::string(target).find('.') == std::string::npos) {
      Response b = http_request(s.paster_port(), "GET", target, {}, "");
      EXPECT_EQ(environ_value(b.body, "SCRIPT_NAME"), "/mnt") << b.body;
      EXPECT_EQ(environ_value(b.body, "PATH_INFO"), "/environ") << b.body;
    }
  }
  Response up = http_request(s.port(), "GET", "/../mnt/environ", {}, "");
  EXPECT_EQ(up.status, 400) << up.body;
}

// Issue 20 #6: a client's spelling of X-Pasture-Script-Name (or of the
// forwarding fields) with '_', which maps to the same environ key, cannot
// set SCRIPT_NAME, REMOTE_ADDR or the scheme.
void expect_underscore_spellings_ignored(uint16_t port) {
  Response r;
  for (const char* name : {"X_Pasture_Script_Name", "x_pasture-script_NAME"}) {
    r = http_request(port, "GET", "/admin/environ", {{name, "/admin"}}, "");
    EXPECT_EQ(r.status, 404) << name << ": " << r.body;
    EXPECT_EQ(r.body, "not found: /admin/environ\n") << name;
  }
  r = http_request(port, "GET", "/environ",
                   {{"X_Forwarded_For", "6.6.6.6"}, {"X_Forwarded_Proto", "https"}, {"X_Custom", "1"}}, "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(environ_value(r.body, "SCRIPT_NAME"), "");
  EXPECT_EQ(environ_value(r.body, "REMOTE_ADDR"), "127.0.0.1");
  EXPECT_EQ(environ_value(r.body, "wsgi.url_scheme"), "http");
  EXPECT_EQ(r.body.find("6.6.6.6"), std::string::npos) << r.body;
}

TEST_P(WsgiModes, UnderscoreSpellingsCannotSetScriptName) {
  WsgiSite& s = site("call.ini", 1);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  expect_underscore_spellings_ignored(s.port());
}

// Process mode without waitress: the app processes fall back on wsgiref,
// which maps '_' and '-' to the same environ key. A stub `waitress` package
// forces the fallback.
TEST_F(WsgiProcessOnly, UnderscoreSpellingsCannotSetScriptNameUnderWsgiref) {
  TempDir stub;
  fs::create_directories(stub.path() + "/waitress");
  stub.write("waitress/__init__.py", "");
  WsgiSite& s = site("call.ini", 1, stub.path() + ":" + kWsgiDir);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  Response r = http_get(s.port(), "/text");
  EXPECT_NE(r.header("Server").find("WSGIServer"), std::string::npos) << r.header("Server");
  expect_underscore_spellings_ignored(s.port());
}

// Issue 20 #5: an absolute-form target's authority is what the app sees as
// HTTP_HOST (RFC 9112 §3.2.2: the Host field is then ignored).
TEST_P(WsgiModes, AbsoluteFormAuthorityIsTheAppsHost) {
  WsgiSite& s = site("call.ini", 1);
  ASSERT_TRUE(s.start()) << s.pasture().output();
  Exchange ex = exchange(s.port(),
                         "GET http://shop.test:8080/environ HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
                         Millis(3000));
  ASSERT_EQ(ex.status(), 200) << ex.bytes;
  EXPECT_EQ(environ_value(ex.body(), "HTTP_HOST"), "shop.test:8080") << ex.body();
  EXPECT_EQ(ex.body().find("evil.test"), std::string::npos) << ex.body();
}

}  // namespace
}  // namespace pasture::test
