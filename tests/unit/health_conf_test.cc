// conf/site_pool.cc: health, passive-check and retry keys of a pool and the
// per-server max_fails / fail_timeout / slow_start parameters.
#include <gtest/gtest.h>

#include "conf/load.h"
#include "conf/error.h"
#include "conf_test_util.h"

namespace pasture::conf {
namespace {

using Ranges = std::vector<std::pair<uint16_t, uint16_t>>;

class HealthConf : public testing::SiteFixture {
 protected:
  // A balancer app whose servers line (line 5) ends with `params`, then `keys` (line 6 on).
  std::string app(const std::string& keys, const std::string& params = "") {
    return "[server:main]\nuse = egg:pasture#main\n[app:main]\nuse = egg:pasture#balancer\n"
           "servers = 127.0.0.1:9001 127.0.0.1:9002" +
           params + "\n" + keys;
  }
};

TEST_F(HealthConf, Defaults) {
  const Pool p = load(app("")).pools.at(0);
  EXPECT_EQ(p.fail_on, (Ranges{{502, 502}, {503, 503}, {504, 504}}));
  EXPECT_EQ(p.retries, 1u);
  EXPECT_EQ(p.retry_on, kRetryError | kRetryTimeout);
  EXPECT_EQ(p.retry_on_status, (Ranges{{502, 502}, {503, 503}, {504, 504}}));
  EXPECT_EQ(p.retry_budget_percent, 20u);
  EXPECT_EQ(p.health_check, "");
  EXPECT_EQ(p.health_interval_ms, 5000u);
  EXPECT_EQ(p.health_timeout_ms, 2000u);
  EXPECT_EQ(p.rise, 2u);
  EXPECT_EQ(p.fall, 3u);
  EXPECT_EQ(p.health_status, (Ranges{{200, 399}}));
  for (const UpstreamServer& s : p.servers) {
    EXPECT_EQ(s.max_fails, 1u);
    EXPECT_EQ(s.fail_timeout_ms, 10000u);
    EXPECT_EQ(s.slow_start_ms, 0u);
  }
}

TEST_F(HealthConf, Keys) {
  const Pool p = load(app("health_check = /healthz?full=1\nhealth_interval = 0.2\n"
                          "health_timeout = 500ms\nrise = 1\nfall = 5\nhealth_status = 200 204 300-302\n"
                          "fail_on = 500-599\nretries = 3\nretry_on = error http_503 http_429 non_idempotent\n"
                          "retry_budget = 35%%\n",
                          " max_fails=3 fail_timeout=30s slow_start=1m weight=2"))
                    .pools.at(0);
  EXPECT_EQ(p.health_check, "/healthz?full=1");
  EXPECT_EQ(p.health_interval_ms, 200u);
  EXPECT_EQ(p.health_timeout_ms, 500u);
  EXPECT_EQ(p.rise, 1u);
  EXPECT_EQ(p.fall, 5u);
  EXPECT_EQ(p.health_status, (Ranges{{200, 200}, {204, 204}, {300, 302}}));
  EXPECT_EQ(p.fail_on, (Ranges{{500, 599}}));
  EXPECT_EQ(p.retries, 3u);
  EXPECT_EQ(p.retry_on, kRetryError | kRetryNonIdempotent);
  EXPECT_EQ(p.retry_on_status, (Ranges{{503, 503}, {429, 429}}));
  EXPECT_EQ(p.retry_budget_percent, 35u);
  EXPECT_EQ(p.servers[0].max_fails, 1u);  // parameters attach to the server before them
  EXPECT_EQ(p.servers[1].max_fails, 3u);
  EXPECT_EQ(p.servers[1].fail_timeout_ms, 30000u);
  EXPECT_EQ(p.servers[1].slow_start_ms, 60000u);
  EXPECT_EQ(p.servers[1].weight, 2u);
  const Pool q = load(app("fail_on = off\nretry_on = off\nretry_budget = 100\n", " max_fails=0"))
                     .pools.at(0);
  EXPECT_TRUE(q.fail_on.empty());
  EXPECT_EQ(q.retry_on, 0u);
  EXPECT_TRUE(q.retry_on_status.empty());
  EXPECT_EQ(q.retry_budget_percent, 100u);
  EXPECT_EQ(q.servers[1].max_fails, 0u);
}

TEST_F(HealthConf, YamlServersCarryParameters) {
  file_ = dir_.write("site.yaml",
                     "apps:\n  main:\n    use: balancer\n    servers:\n"
                     "      - 127.0.0.1:9001 max_fails=2 fail_timeout=5s\n      - 127.0.0.1:9002\n"
                     "    health_check: /up\n    fall: 2\n    retry_budget: 50%\n");
  LoadOptions opts;
  opts.config = file_;
  Site s = load_site(opts);
  const Pool& p = s.pools.at(0);
  EXPECT_EQ(p.health_check, "/up");
  EXPECT_EQ(p.fall, 2u);
  EXPECT_EQ(p.servers[0].max_fails, 2u);
  EXPECT_EQ(p.servers[0].fail_timeout_ms, 5000u);
  EXPECT_EQ(p.servers[1].max_fails, 1u);
  EXPECT_EQ(p.retry_budget_percent, 50u);
}

TEST_F(HealthConf, ErrorsWithLines) {
  EXPECT_EQ(error(app("", " max_fails=x")),
            "5: max_fails of 127.0.0.1:9002: expected a whole number from 0 to 1000000, got 'x'");
  EXPECT_EQ(error(app("", " fail_timeout=0")),
            "5: servers: fail_timeout of 127.0.0.1:9002 must be more than 0");
  EXPECT_EQ(error(app("", " slow_start=soon")),
            "5: servers: slow_start of 127.0.0.1:9002: expected a duration like 5, 0.5, 250ms, 5s "
            "or 2m, got 'soon'");
  EXPECT_EQ(error(app("", " max_failz=1")).substr(0, 50),
            "5: servers: unknown parameter 'max_failz=1' for 12");
  EXPECT_EQ(error(app("\nhealth_check = health\n")),
            "7: health_check: expected a path like /health, got 'health'");
  EXPECT_EQ(error(app("health_interval = 0\n")), "6: health_interval: must be more than 0");
  EXPECT_EQ(error(app("health_timeout = 2h\n")),
            "6: health_timeout: expected a duration like 5, 0.5, 250ms, 5s or 2m, got '2h'");
  EXPECT_EQ(error(app("rise = 0\n")), "6: rise: must be at least 1");
  EXPECT_EQ(error(app("fall = -1\n")),
            "6: fall: expected a whole number from 0 to 1000, got '-1'");
  EXPECT_EQ(error(app("health_status = 399-200\n")),
            "6: health_status: '399-200' is not a status code (100-599) or a range like 200-399");
  EXPECT_EQ(error(app("fail_on = 5xx\n")),
            "6: fail_on: '5xx' is not a status code (100-599) or a range like 200-399");
  EXPECT_EQ(error(app("retries = many\n")),
            "6: retries: expected a whole number from 0 to 100, got 'many'");
  EXPECT_EQ(error(app("retry_on = error http_200\n")),
            "6: retry_on: unknown condition 'http_200' (expected error, timeout, invalid_header, "
            "non_idempotent, http_NNN or off)");
  EXPECT_EQ(error(app("retry_budget = 120%%\n")),
            "6: retry_budget (a percentage like 20%): expected a whole number from 0 to 100, got "
            "'120'");
}

}  // namespace
}  // namespace pasture::conf
