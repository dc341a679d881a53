// Python WSGI apps hosted by pasture (master/apphost.h, python/pasture_wsgi.py),
// checked against `paster3 serve` (Debian's python3-pastescript) on the same
// INI file. The app is tests/wsgi/pasture_testapp.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace pasture::test {
namespace {

namespace fs = std::filesystem;

const std::string kWsgiDir = std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi";

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

bool have_paster() { return access("/usr/bin/paster3", X_OK) == 0; }

// One INI file with two server sections: [server:main] for pasture and
// [server:paster] (Paste's httpserver) for paster3, then the app sections of
// tests/wsgi/<ini>.
class WsgiSite {
 public:
  WsgiSite(const std::string& ini, int app_workers = 2, std::string pythonpath = kWsgiDir)
      : pythonpath_(std::move(pythonpath)), port_(free_port()), paster_port_(free_port()) {
    std::string text = "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " + std::to_string(port_) +
                       "\nworkers = 2\napp_workers = " + std::to_string(app_workers) +
                       "\ngraceful_timeout = 5\n\n[server:paster]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = " +
                       std::to_string(paster_port_) + "\n\n" + read_file(kWsgiDir + "/" + ini);
    path_ = dir_.write("site.ini", text);
  }
  bool start_pasture() {
    pasture_ = std::make_unique<Process>(std::vector<std::string>{PASTURE_BINARY, "serve", path_},
                                         Process::Env{{"PYTHONPATH", pythonpath_}});
    return wait_for_output(*pasture_, "serving on", Millis{20000}) && wait_for_port(port_);
  }
  bool start_paster() {
    paster_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/paster3", "serve", path_, "--server-name=paster"},
        Process::Env{{"PYTHONPATH", pythonpath_}});
    return wait_for_port(paster_port_, Millis{20000});
  }
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

  uint16_t port() const { return port_; }
  uint16_t paster_port() const { return paster_port_; }
  Process& pasture() { return *pasture_; }
  const std::string& path() const { return path_; }

 private:
  TempDir dir_;
  std::string pythonpath_;
  uint16_t port_, paster_port_;
  std::string path_;
  std::unique_ptr<Process> pasture_, paster_;
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
      {"GET", "/raise", "", {}, false},
      {"GET", "/nope", "", {}},
  };
  return r;
}

std::string normalize(std::string body, uint16_t port) {
  std::string p = std::to_string(port);
  for (size_t at; (at = body.find(p)) != std::string::npos;) body.replace(at, p.size(), "PORT");
  return body;
}

void expect_same_as_paster(const std::string& ini) {
  if (!have_paster()) GTEST_SKIP() << "paster3 (python3-pastescript) is not installed";
  WsgiSite site(ini);
  ASSERT_TRUE(site.start_pasture()) << site.pasture().output();
  ASSERT_TRUE(site.start_paster());
  for (const Req& q : requests()) {
    Response a = http_request(site.port(), q.method, q.target, q.headers, q.body);
    Response b = http_request(site.paster_port(), q.method, q.target, q.headers, q.body);
    ASSERT_TRUE(a.ok()) << q.method << " " << q.target << ": " << a.error;
    ASSERT_TRUE(b.ok()) << q.method << " " << q.target << ": " << b.error;
    EXPECT_EQ(a.status, b.status) << q.method << " " << q.target;
    if (q.compare_body) {
      EXPECT_EQ(normalize(a.body, site.port()), normalize(b.body, site.paster_port())) << q.method << " " << q.target;
    }
    if (q.compare_body) {
      EXPECT_EQ(a.header("Content-Type"), b.header("Content-Type")) << q.target;
    }
    EXPECT_EQ(a.header("X-Testapp-Filter"), b.header("X-Testapp-Filter")) << q.target;
  }
}

TEST(Wsgi, AppFactoryMatchesPasterServe) { expect_same_as_paster("app_factory.ini"); }
TEST(Wsgi, CallMatchesPasterServe) { expect_same_as_paster("call.ini"); }
TEST(Wsgi, PythonFilterPipelineMatchesPasterServe) { expect_same_as_paster("pipeline.ini"); }

// [filter:balancer] without servers: pasture balances over app processes
// that run the rest of the pipeline (paster has no such filter).
TEST(Wsgi, BalancerFilterWithoutServersHostsTheRest) {
  WsgiSite site("balancer.ini", 3);
  ASSERT_TRUE(site.start_pasture()) << site.pasture().output();
  EXPECT_EQ(site.app_pids().size(), 3u);
  for (int i = 0; i < 10; i++) {
    Response r = http_get(site.port(), "/text");
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "balanced from testapp\n");
    EXPECT_EQ(r.header("X-Testapp-Filter"), "on");
  }
  Response r = http_get(site.port(), "/environ");
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
  std::string last_error;
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
            last_error = std::to_string(r.status) + " " + r.error + " " + r.body;
          }
        }
      });
  }
  void join() {
    stop = true;
    for (auto& t : threads) t.join();
  }
};

TEST(Wsgi, KillNineAnAppProcessUnderLoadFailsNothing) {
  WsgiSite site("kill.ini", 2);
  ASSERT_TRUE(site.start_pasture()) << site.pasture().output();
  std::vector<int> pids = site.app_pids();
  ASSERT_EQ(pids.size(), 2u);
  GetLoop loop(site.port(), "/text", 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(kill(pids[0], SIGKILL), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  loop.join();
  EXPECT_EQ(loop.failed.load(), 0) << loop.last_error;
  EXPECT_GT(loop.ok.load(), 50);
  EXPECT_TRUE(wait_for_output(site.pasture(), "killed by signal 9; respawning"));
  EXPECT_EQ(site.app_pids().size(), 3u) << site.pasture().output();  // respawned
  Response r = http_get(site.port(), "/text");
  EXPECT_EQ(r.status, 200);
}

TEST(Wsgi, AppThatCannotImportExitsWithTheTraceback) {
  WsgiSite site("broken.ini", 2);
  auto t0 = std::chrono::steady_clock::now();
  Process p({PASTURE_BINARY, "serve", site.path()}, {{"PYTHONPATH", kWsgiDir}});
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
}

TEST(Wsgi, NoInterpreterWithPasteDeployIsAClearError) {
  WsgiSite site("call.ini", 1);
  Process p({PASTURE_BINARY, "serve", site.path(), "--python", "/bin/false"}, {{"PYTHONPATH", kWsgiDir}});
  std::optional<int> st = p.wait_exit(Millis{10000});
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(exited_with(st, 0));
  EXPECT_NE(p.output().find("no Python interpreter that can import paste.deploy"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("/bin/false"), std::string::npos) << p.output();
}

TEST(Wsgi, HupUnderLoadServesTheNewCodeAndFailsNothing) {
  TempDir code;
  fs::copy(kWsgiDir + "/pasture_testapp", code.path() + "/pasture_testapp", fs::copy_options::recursive);
  WsgiSite site("call.ini", 2, code.path());
  ASSERT_TRUE(site.start_pasture()) << site.pasture().output();
  ASSERT_EQ(http_get(site.port(), "/version").body, "v1\n");
  std::atomic<int> v2{0};
  GetLoop loop(site.port(), "/version", 4, &v2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::ofstream(code.path() + "/pasture_testapp/version.py") << "VERSION = 'v2-new'\n";
  ASSERT_TRUE(site.pasture().signal(SIGHUP));
  for (int i = 0; i < 100 && v2.load() == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  loop.join();
  EXPECT_EQ(loop.failed.load(), 0) << loop.last_error;
  EXPECT_GT(v2.load(), 0);
  EXPECT_EQ(http_get(site.port(), "/version").body, "v2-new\n");
  EXPECT_TRUE(wait_for_output(site.pasture(), "generation 2 serving"));
}

}  // namespace
}  // namespace pasture::test

namespace pasture::test {
namespace {

TEST(Wsgi, UrlmapMountSetsScriptNameLikePaster) {
  if (!have_paster()) GTEST_SKIP() << "paster3 (python3-pastescript) is not installed";
  WsgiSite site("urlmap.ini");
  ASSERT_TRUE(site.start_pasture()) << site.pasture().output();
  ASSERT_TRUE(site.start_paster());
  for (const char* target : {"/mnt/environ?x=1", "/mnt/text", "/mnt", "/mntx/text"}) {
    // A client cannot forge the prefix.
    Headers h = {{"X-Pasture-Script-Name", "/forged"}};
    Response a = http_request(site.port(), "GET", target, h, "");
    Response b = http_request(site.paster_port(), "GET", target, h, "");
    ASSERT_TRUE(a.ok() && b.ok()) << target;
    EXPECT_EQ(a.status, b.status) << target;
    if (std::string(target).find("environ") != std::string::npos) {
      EXPECT_NE(a.body.find("\"SCRIPT_NAME\": \"/mnt\""), std::string::npos) << a.body;
      EXPECT_NE(a.body.find("\"PATH_INFO\": \"/environ\""), std::string::npos) << a.body;
      EXPECT_NE(b.body.find("\"SCRIPT_NAME\": \"/mnt\""), std::string::npos) << b.body;
    } else if (a.status == 200) {
      EXPECT_EQ(a.body, b.body) << target;
    }
  }
}

}  // namespace
}  // namespace pasture::test

#include "tests/integration/raw_http.h"

namespace pasture::test {
namespace {

std::string environ_value(const std::string& json, const std::string& key) {
  std::string k = "\"" + key + "\": \"";
  size_t at = json.find(k);
  if (at == std::string::npos) return "<absent>";
  at += k.size();
  return json.substr(at, json.find('"', at) - at);
}

// Issue 20 #4: the app behind a urlmap prefix gets SCRIPT_NAME/PATH_INFO as
// paste.urlmap gives them for the normalized path, whatever the spelling;
// paster3 agrees wherever Paste's server decodes the same way.
TEST(Wsgi, UrlmapMountSeesTheNormalizedPathLikePaster) {
  if (!have_paster()) GTEST_SKIP() << "paster3 (python3-pastescript) is not installed";
  WsgiSite site("urlmap.ini");
  ASSERT_TRUE(site.start_pasture()) << site.pasture().output();
  ASSERT_TRUE(site.start_paster());
  for (const char* target : {"/mnt/environ", "//mnt/environ", "/%6Dnt/environ", "/mnt//environ",
                             "/%6d%6e%74/%65nviron", "/x/../mnt/environ", "/mnt/./environ",
                             "/mnt/a/%2e%2e/environ", "/x%2F..%2Fmnt/environ"}) {
    SCOPED_TRACE(target);
    Response a = http_request(site.port(), "GET", target, {}, "");
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(environ_value(a.body, "SCRIPT_NAME"), "/mnt") << a.body;
    EXPECT_EQ(environ_value(a.body, "PATH_INFO"), "/environ") << a.body;
    if (std::string(target).find('.') == std::string::npos) {
      Response b = http_request(site.paster_port(), "GET", target, {}, "");
      EXPECT_EQ(environ_value(b.body, "SCRIPT_NAME"), "/mnt") << b.body;
      EXPECT_EQ(environ_value(b.body, "PATH_INFO"), "/environ") << b.body;
    }
  }
  Response up = http_request(site.port(), "GET", "/../mnt/environ", {}, "");
  EXPECT_EQ(up.status, 400) << up.body;
}

// Issue 20 #6: a client's spelling of X-Pasture-Script-Name with '_' that
// wsgiref (the fallback when waitress is missing) maps to the same environ
// key cannot set SCRIPT_NAME. A stub `waitress` package forces the fallback.
TEST(Wsgi, UnderscoreSpellingsCannotSetScriptName) {
  TempDir stub;
  fs::create_directories(stub.path() + "/waitress");
  stub.write("waitress/__init__.py", "");
  for (bool wsgiref : {true, false}) {
    SCOPED_TRACE(wsgiref ? "wsgiref" : "waitress");
    WsgiSite site("call.ini", 1, wsgiref ? stub.path() + ":" + kWsgiDir : kWsgiDir);
    ASSERT_TRUE(site.start_pasture()) << site.pasture().output();
    Response r;
    for (const char* name : {"X_Pasture_Script_Name", "x_pasture-script_NAME"}) {
      r = http_request(site.port(), "GET", "/admin/environ", {{name, "/admin"}}, "");
      EXPECT_EQ(r.header("Server").find("WSGIServer") != std::string::npos, wsgiref) << r.header("Server");
      EXPECT_EQ(r.status, 404) << name << ": " << r.body;
      EXPECT_EQ(r.body, "not found: /admin/environ\n") << name;
    }
    r = http_request(site.port(), "GET", "/environ",
                     {{"X_Forwarded_For", "6.6.6.6"}, {"X_Forwarded_Proto", "https"}, {"X_Custom", "1"}}, "");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(environ_value(r.body, "SCRIPT_NAME"), "");
    EXPECT_EQ(environ_value(r.body, "REMOTE_ADDR"), "127.0.0.1");
    EXPECT_EQ(environ_value(r.body, "wsgi.url_scheme"), "http");
    EXPECT_EQ(r.body.find("6.6.6.6"), std::string::npos) << r.body;
  }
}

// Issue 20 #5: an absolute-form target's authority is what the app sees as
// HTTP_HOST.
TEST(Wsgi, AbsoluteFormAuthorityIsTheAppsHost) {
  WsgiSite site("call.ini", 1);
  ASSERT_TRUE(site.start_pasture()) << site.pasture().output();
  Exchange ex = exchange(site.port(),
                         "GET http://shop.test:8080/environ HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
                         Millis(3000));
  ASSERT_EQ(ex.status(), 200) << ex.bytes;
  EXPECT_EQ(environ_value(ex.body(), "HTTP_HOST"), "shop.test:8080") << ex.body();
  EXPECT_EQ(ex.body().find("evil.test"), std::string::npos) << ex.body();
}

}  // namespace
}  // namespace pasture::test
