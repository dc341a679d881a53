// `pasture check` on broken configs (the in-process sweep is
// tests/unit/conf_fuzz_test.cc): a non-zero exit, one "file:line: ..."
// message on stderr, nothing on stdout, never a signal (crash, core dump).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace pasture::test {
namespace {

struct Case {
  const char* name;
  const char* ini;    // after a [server:main] of 3 lines
  const char* other;  // other.ini, beside it ("" = none)
  const char* file;   // the file the message must name
  int line;
  const char* want;
};

const Case kCases[] = {
    {"truncated in a continuation", "[app:main]\nuse = egg:pasture#balancer\nservers =\n", "", "site.ini", 6,
     "empty server list"},
    {"header removed", "use = egg:pasture#echo\n", "", "site.ini", 4, "DuplicateOptionError"},
    {"broken interpolation", "[app:main]\nuse = egg:pasture#echo\nname = %(here\n", "", "site.ini", 6,
     "InterpolationSyntaxError"},
    {"missing include", "[app:main]\nuse = config:missing.ini\n", "", "site.ini", 5, "No such file"},
    {"include cycle", "[app:main]\nuse = config:other.ini\n", "[app:main]\nuse = config:site.ini\n", "other.ini",
     2, "RecursionError"},
    {"pipeline cycle", "[pipeline:main]\npipeline = gz main\n[filter:gz]\nuse = egg:Paste#gzip\n", "", "site.ini",
     5, "RecursionError"},
    {"no loader", "[app:main]\nservers = 127.0.0.1:1\n", "", "site.ini", 4, "No loader given"},
    {"garbage timeout", "[app:main]\nuse = egg:pasture#balancer\nservers = 127.0.0.1:1\nread_timeout = abc\n", "",
     "site.ini", 7, "expected a duration"},
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ConfBroken, CheckExitsNonZeroWithFileLine) {
  for (const Case& c : kCases) {
    TempDir dir("pasture-broken");
    std::string site = dir.write("site.ini", std::string("[server:main]\nuse = egg:pasture#main\nport = 8080\n") + c.ini);
    if (*c.other) dir.write("other.ini", c.other);
    std::string cmd = "exec \"$0\" check \"$1\" >" + dir.file("out") + " 2>" + dir.file("err");
    Process p({"/bin/sh", "-c", cmd, PASTURE_BINARY, site});
    std::optional<int> st = p.wait_exit();
    ASSERT_TRUE(st.has_value()) << c.name << ": pasture check hung";
    ASSERT_TRUE(WIFEXITED(*st)) << c.name << ": killed by signal " << WTERMSIG(*st)
                                << (WCOREDUMP(*st) ? " (core dumped)" : "");
    EXPECT_NE(WEXITSTATUS(*st), 0) << c.name;
    std::string err = slurp(dir.file("err")), out = slurp(dir.file("out"));
    std::string want = dir.file(c.file) + ":" + std::to_string(c.line) + ": ";
    EXPECT_EQ(err.rfind(want, 0), 0u) << c.name << ": want " << want << "...\n got " << err;
    EXPECT_NE(err.find(c.want), std::string::npos) << c.name << ": " << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << c.name << ": " << err;
    EXPECT_EQ(out, "") << c.name;
  }
}

}  // namespace
}  // namespace pasture::test
