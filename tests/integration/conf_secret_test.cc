// A secret (cookie_secret, anything named *secret*, *password*, *token*,
// *key*) never appears in an error: `pasture check` and a reload's log line
// name the file, line and key, not the value. `check` and `inspect` show
// secrets as ***, and no log line shows cookie_secret's value.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <string>

#include "tests/integration/pasture_server.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace pasture::test {
namespace {

const std::string kSecret = "abc%zzz-s3cr3t";

// A cookie pool whose [app:main] has `extra` after its 3 lines (at line 7).
std::string pool_ini(uint16_t port, const std::string& extra) {
  return "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " + std::to_string(port) +
         "\n[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:1\nmethod = cookie\n" + extra;
}

struct Checked {
  int code = -1;
  std::string output;  // stdout and stderr: a failed check prints only its error
};

Checked check(const std::string& ini) {
  Process p({PASTURE_BINARY, "check", ini});
  std::optional<int> st = p.wait_exit();
  Checked c;
  if (st && WIFEXITED(*st)) c.code = WEXITSTATUS(*st);
  c.output = p.output();
  return c;
}

TEST(ConfSecret, InterpolationErrorNamesTheKeyNotTheSecret) {
  TempDir dir("pasture-secret");
  std::string ini = dir.write("site.ini", pool_ini(8080, "cookie_secret = " + kSecret + "\n"));
  Checked c = check(ini);
  EXPECT_EQ(c.code, 2);
  EXPECT_EQ(c.output.rfind(ini + ":9: InterpolationSyntaxError: ", 0), 0u) << c.output;
  EXPECT_NE(c.output.find("'cookie_secret'"), std::string::npos) << c.output;
  EXPECT_EQ(c.output.find("s3cr3t"), std::string::npos) << c.output;
}

// A DEFAULT key that cookie_secret refers to (%(shared)s) holds the secret
// too, and a DEFAULT password referring to a missing key is not quoted
// either.
TEST(ConfSecret, SecretReachedThroughAReferenceOrDefaultIsNotQuoted) {
  TempDir dir("pasture-secret");
  std::string ini = dir.write("site.ini", "[DEFAULT]\nshared = " + kSecret + "\n" +
                                              pool_ini(8080, "cookie_secret = %(shared)s\n"));
  Checked c = check(ini);
  EXPECT_EQ(c.code, 2);
  EXPECT_EQ(c.output.rfind(ini + ":2: InterpolationSyntaxError: ", 0), 0u) << c.output;
  EXPECT_NE(c.output.find("option 'shared' in section 'DEFAULT'"), std::string::npos) << c.output;
  EXPECT_EQ(c.output.find("s3cr3t"), std::string::npos) << c.output;

  ini = dir.write("site2.ini", "[DEFAULT]\ndb_password = s3cr3t%(nope)s\n" + pool_ini(8080, "cookie_secret = k\n"));
  c = check(ini);
  EXPECT_EQ(c.code, 2);
  EXPECT_EQ(c.output.rfind(ini + ":2: InterpolationMissingOptionError: ", 0), 0u) << c.output;
  EXPECT_NE(c.output.find("'db_password'"), std::string::npos) << c.output;
  EXPECT_EQ(c.output.find("s3cr3t"), std::string::npos) << c.output;
}

// A HUP with the bad secret: the reload fails (the old config serves on) and
// its log line names the file, line and key, not the value.
TEST(ConfSecret, ReloadLogDoesNotQuoteTheSecret) {
  TempDir dir("pasture-secret");
  uint16_t port = free_port();
  std::string ini = dir.write("site.ini", pool_ini(port, "cookie_secret = good\n"));
  Process p({PASTURE_BINARY, "serve", ini});
  ASSERT_TRUE(wait_for_output(p, "serving on")) << p.output();
  dir.write("next.ini", pool_ini(port, "cookie_secret = " + kSecret + "\n"));
  ASSERT_EQ(rename(dir.file("next.ini").c_str(), ini.c_str()), 0);
  p.signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(p, "reload failed")) << p.output();
  std::string out = p.output();
  EXPECT_NE(out.find(ini + ":9: InterpolationSyntaxError: "), std::string::npos) << out;
  EXPECT_NE(out.find("'cookie_secret'"), std::string::npos) << out;
  EXPECT_EQ(out.find("s3cr3t"), std::string::npos) << out;
  EXPECT_TRUE(p.running());
}

const std::string kCookieSecret = "Zq8-s3cr3t-4711";

std::string run(const std::vector<std::string>& args, int* code) {
  Process p(args);
  std::optional<int> st = p.wait_exit();
  *code = st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
  return p.output();
}

// check and inspect (text and JSON) print *** for every secret-named key,
// for the DEFAULT a secret took its value from, and inside a value built
// with %(db_password)s; inspect --show-secrets and convert (a config to
// use) print them.
TEST(ConfSecret, CheckAndInspectShowStars) {
  TempDir dir("pasture-secret");
  std::string ini = dir.write(
      "site.ini", "[DEFAULT]\nshared = " + kCookieSecret + "\ndb_password = hunter2-db\n" +
                      pool_ini(8080, "cookie_secret = %(shared)s\nhash_key = path\n"
                                     "sqlalchemy.url = postgresql://app:%(db_password)s@db/app\n"));
  int code = -1;
  std::string out = run({PASTURE_BINARY, "check", ini}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("signed with cookie_secret = ***"), std::string::npos) << out;
  EXPECT_EQ(out.find("s3cr3t"), std::string::npos) << out;

  for (bool json : {false, true}) {
    std::vector<std::string> args = {PASTURE_BINARY, "inspect", ini};
    if (json) args.insert(args.begin() + 2, "--json");
    out = run(args, &code);
    EXPECT_EQ(code, 0) << out;
    EXPECT_EQ(out.find("s3cr3t"), std::string::npos) << out;
    EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
    for (const char* shown : json ? std::vector<const char*>{"\"cookie_secret\": \"***\"", "\"shared\": \"***\"",
                                                             "\"db_password\": \"***\"", "postgresql://app:***@db/app",
                                                             "\"hash_key\": \"path\""}
                                  : std::vector<const char*>{"cookie_secret = ***", "shared = ***", "db_password = ***",
                                                             "postgresql://app:***@db/app", "hash_key = path"})
      EXPECT_NE(out.find(shown), std::string::npos) << shown << " in\n" << out;
  }
  out = run({PASTURE_BINARY, "inspect", "--show-secrets", ini}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("cookie_secret = " + kCookieSecret), std::string::npos) << out;
  EXPECT_NE(out.find("postgresql://app:hunter2-db@db/app"), std::string::npos) << out;

  out = run({PASTURE_BINARY, "convert", ini}, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.rfind("# holds secrets (cookie_secret): keep this file private\n", 0), 0u) << out;
  EXPECT_NE(out.find("cookie_secret: " + kCookieSecret), std::string::npos) << out;
}

// A whole run at debug level (-vv) with a cookie pool and an embedded
// Python app that raises with the secret in its message (the client put it
// in the query string): the traceback is logged with *** in its place, and
// neither the start, the requests, a reload nor the stop shows the value.
TEST(ConfSecret, NoLogLineShowsTheSecret) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  FakeUpstream up("up");
  TempDir dir("pasture-secret");
  uint16_t port = free_port();
  std::string ini = dir.write(
      "site.ini", "[server:main]\nuse = egg:pasture#main\nhost = 127.0.0.1\nport = " + std::to_string(port) +
                      "\nworkers = 1\n[composite:main]\nuse = egg:Paste#urlmap\n/ = pool\n/app = py\n"
                      "[app:pool]\nuse = egg:pasture#balancer\nmethod = cookie\ncookie_secret = " + kCookieSecret +
                      "\nservers = " + up.address() + "\n[app:py]\nuse = call:pasture_testapp:make_app\n");
  Process p({PASTURE_BINARY, "serve", "-vv", ini},
            {{"PYTHONPATH", std::string(PASTURE_SOURCE_DIR) + "/tests/wsgi"}, {"PATH", "/usr/bin:/bin"}});
  ASSERT_TRUE(wait_for_output(p, "serving on") && wait_for_port(port)) << p.output();
  ASSERT_TRUE(wait_until([&] { return http_get(port, "/app/text").status == 200; }, Millis(20000))) << p.output();
  Response r = http_get(port, "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.header("Set-Cookie").find("pasture_sticky="), std::string::npos);
  EXPECT_EQ(http_get(port, "/app/raise?" + kCookieSecret).status, 500);
  EXPECT_TRUE(wait_for_output(p, "RuntimeError: testapp: /raise was asked to fail: ***")) << p.output();
  p.signal(SIGHUP);
  ASSERT_TRUE(wait_for_output(p, "reloaded: generation 2")) << p.output();
  p.signal(SIGTERM);
  EXPECT_TRUE(exited_with(p.wait_exit(), 0)) << p.output();
  std::string out = p.output();
  EXPECT_EQ(out.find("s3cr3t"), std::string::npos) << out;
}

}  // namespace
}  // namespace pasture::test
