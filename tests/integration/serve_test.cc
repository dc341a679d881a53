// End to end: the real binary, several workers, real upstream sockets.
#include <signal.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "tests/integration/pasture_server.h"
#include "tests/support/pattern.h"

namespace pasture::test {
namespace {

std::string balancer_ini(const std::vector<const FakeUpstream*>& ups, const std::string& extra = "") {
  std::string s = "[app:main]\nuse = egg:pasture#balancer\nservers =";
  for (auto* u : ups) s += " " + u->address();
  return s + "\n" + extra;
}

TEST(Serve, EchoAppAnswers) {
  PastureServer srv("[app:main]\nuse = egg:pasture#echo\nname = hello\n", 2);
  ASSERT_TRUE(srv.started()) << srv.output();
  Response r = http_get(srv.port(), "/x?y=1");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello GET /x?y=1\n");
}

TEST(Serve, GlobalRoundRobinOverNewConnections) {
  FakeUpstream a("a"), b("b");
  PastureServer srv(balancer_ini({&a, &b}), 3);
  ASSERT_TRUE(srv.started()) << srv.output();
  std::map<std::string, int> seen;
  for (int i = 0; i < 200; i++) {
    Response r = http_get(srv.port(), "/n");
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.status, 200);
    seen[r.header("X-Upstream")]++;
  }
  EXPECT_EQ(seen["a"], 100);
  EXPECT_EQ(seen["b"], 100);
}

}  // namespace
}  // namespace pasture::test
