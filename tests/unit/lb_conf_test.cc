// conf/site_pool.cc: the balancing keys of a pool, on both spellings.
#include <gtest/gtest.h>

#include "conf/load.h"
#include "conf_test_util.h"

namespace pasture::conf {
namespace {

class LbConf : public testing::SiteFixture {
 protected:
  // A balancer app (line 3 on) followed by `keys`.
  std::string app(const std::string& keys) {
    return "[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\n"
           "servers = 127.0.0.1:9001 127.0.0.1:9002\n" +
           keys;
  }
};

TEST_F(LbConf, Defaults) {
  const Pool p = load(app("")).pools.at(0);
  EXPECT_EQ(p.hash_key, "remote_addr");
  EXPECT_EQ(p.consistent, HashConsistency::Maglev);
  EXPECT_FALSE(p.hash_whole_ip);
  EXPECT_EQ(p.cookie_name, "pasture_sticky");
}

TEST_F(LbConf, HashKeys) {
  const Pool p = load(app("method = hash\nhash_key = header:X-User \nconsistent = ring\n"
                          "hash_whole_ip = Yes\ncookie_name = sid\n"))
                     .pools.at(0);
  EXPECT_EQ(p.method, BalanceMethod::Hash);
  EXPECT_EQ(p.hash_key, "header:X-User");
  EXPECT_EQ(p.consistent, HashConsistency::Ring);
  EXPECT_TRUE(p.hash_whole_ip);
  EXPECT_EQ(p.cookie_name, "sid");
  EXPECT_EQ(load(app("consistent = none\n")).pools.at(0).consistent, HashConsistency::None);
  EXPECT_FALSE(load(app("hash_whole_ip = off\n")).pools.at(0).hash_whole_ip);
}

TEST_F(LbConf, PasteBalancerFilterSpelling) {
  Site s = load(
      "[pipeline:main]\npipeline = balancer myapp\n[filter:balancer]\nuse = egg:Paste#balancer\n"
      "servers = 127.0.0.1:9001 127.0.0.1:9002\nmethod = cookie\ncookie_secret = k\n"
      "cookie_name = route\nhash_key = cookie:sid\nconsistent = none\n"
      "[app:myapp]\nuse = egg:Foo#main\n[server:main]\nuse = egg:Paste#http\n");
  const Pool& p = s.pools.at(0);
  EXPECT_EQ(p.method, BalanceMethod::Cookie);
  EXPECT_EQ(p.cookie_name, "route");
  EXPECT_EQ(p.hash_key, "cookie:sid");
  EXPECT_EQ(p.consistent, HashConsistency::None);
}

TEST_F(LbConf, Errors) {
  EXPECT_EQ(error(app("method = cookie\n")),
            "6: method = cookie needs 'cookie_secret =' in [app:main] (the key that signs the "
            "sticky cookies)");
  EXPECT_EQ(error(app("hash_key = url\n")),
            "6: hash_key: unknown key 'url' (expected remote_addr, uri, path, header:NAME, "
            "cookie:NAME or arg:NAME)");
  EXPECT_EQ(error(app("method = hash\nhash_key = header:\n")).substr(0, 24),
            "7: hash_key: unknown key");
  EXPECT_EQ(error(app("consistent = yes\n")),
            "6: consistent: expected maglev, ring or none, got 'yes'");
  EXPECT_EQ(error(app("hash_whole_ip = maybe\n")),
            "6: hash_whole_ip: expected true or false, got 'maybe'");
  EXPECT_EQ(error(app("cookie_name = a;b\n")), "6: cookie_name: 'a;b' is not a valid cookie name");
}

}  // namespace
}  // namespace pasture::conf
