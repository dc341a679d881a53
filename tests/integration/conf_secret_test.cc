// A secret (cookie_secret, anything named *secret*, *password*, *token*,
// *key*) never appears in an error: `pasture check` and a reload's log line
// name the file, line and key, not the value.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <string>

#include "tests/integration/pasture_server.h"
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

}  // namespace
}  // namespace pasture::test
