// conf/site_pool.cc: the balancing keys of a pool, on both spellings.
#include <gtest/gtest.h>

#include "conf/describe.h"
#include "conf/load.h"
#include "conf/yaml_writer.h"
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

// `cookie_max_age`: pool duration syntax plus h and d, whole seconds; the
// same key in YAML, and written back by `pasture convert`.
TEST_F(LbConf, CookieMaxAge) {
  EXPECT_EQ(load(app("")).pools.at(0).cookie_max_age_s, 0u);  // unset: a session cookie
  const std::pair<const char*, uint32_t> good[] = {{"1h", 3600},   {"90m", 5400}, {"1.5h", 5400},
                                                   {"2d", 172800}, {"45", 45},    {" 30s ", 30},
                                                   {"1500ms", 2},  {"400d", 34560000}};
  for (const auto& [text, s] : good) {
    EXPECT_EQ(load(app(std::string("cookie_max_age = ") + text + "\n")).pools.at(0).cookie_max_age_s, s)
        << text;
  }
  EXPECT_EQ(error(app("cookie_max_age = 0\n")),
            "6: cookie_max_age: expected a duration from 1s to 400d like 30m, 12h or 7d, got '0'");
  for (const char* bad : {"401d", "5x", "h", "1.2.3s", "-1h", "1 h", "0.4"}) {
    EXPECT_EQ(error(app(std::string("cookie_max_age = ") + bad + "\n")).substr(0, 18), "6: cookie_max_age:") << bad;
  }
  Site y = load_file("site.yaml",
                     "apps:\n  main:\n    use: balancer\n    servers: [a:1]\n    method: cookie\n"
                     "    cookie_secret: k\n    cookie_max_age: 12h\n");
  EXPECT_EQ(y.pools.at(0).cookie_max_age_s, 43200u);
  std::string text = site_to_yaml(y);
  EXPECT_NE(text.find("cookie_max_age: 43200s"), std::string::npos) << text;
  EXPECT_TRUE(same_site(y, load_file("back.yaml", text)));
}

}  // namespace
}  // namespace pasture::conf
