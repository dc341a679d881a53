// The sticky-cookie verifier (common/sticky_cookie.cc: StickyCookies with
// its cache of values per issue-time step) and the Cookie header reader
// (find_cookie), against a reference verifier without a cache that
// recomputes every HMAC (make_sticky_cookie). Also: a value issued for a
// server verifies to that server (the first with its id), and no value one
// byte away from a genuine one verifies at all.
//
// Input: byte 0 picks max_age, bytes 1-4 the clock (2023 to 2092); then lines: the secret,
// server identities until an empty line, then probes at moving times. A
// probe "<t>=<header>" checks the sticky cookie of a Cookie header; a probe
// "<t>#<k><pos><byte>" takes the value issued for server k and changes one
// byte. <t> is one byte: the clock moves by (t - 128) * max_age / 32.
#include <string>
#include <vector>

#include "common/hash_key.h"
#include "common/sticky_cookie.h"
#include "tests/fuzz/fuzz_util.h"

using namespace pasture;

namespace {

struct Ref {
  std::string secret;
  std::vector<std::string> servers, ids;
  uint32_t max_age;

  int check(std::string_view v, uint64_t now, bool* fresh) const {
    *fresh = false;
    if (secret.empty() || v.size() != lb::kStickyCookieLen || v[16] != '.' || v[25] != '.') return -1;
    uint64_t issued = 0;
    for (char c : v.substr(17, 8)) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return -1;
      issued = issued * 16 + uint64_t(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    if (issued > now + lb::kStickyClockSkew) return -1;
    uint64_t age = now > issued ? now - issued : 0;
    if (age >= max_age) return -1;
    for (size_t i = 0; i < servers.size(); i++) {
      if (ids[i] != v.substr(0, 16)) continue;
      if (lb::make_sticky_cookie(secret, servers[i], issued) != v) return -1;
      *fresh = age < max_age / 2;
      return (int)i;
    }
    return -1;
  }
  int first_with_id(size_t k) const {
    for (size_t i = 0; i < ids.size(); i++)
      if (ids[i] == ids[k]) return (int)i;
    return -1;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  static const uint32_t kAges[] = {0, 1, 2, 15, 16, 17, 60, 3600, 86400, 7 * 86400};
  uint32_t max_age = kAges[in.byte() % 10];
  uint64_t now = 1700000000;
  for (int i = 0; i < 3; i++) now += (uint64_t)in.byte() << (8 * i);
  now += (uint64_t)(in.byte() & 0x7f) << 24;  // until 2092
  Ref ref;
  ref.secret = std::string(in.until('\n'));
  ref.max_age = max_age ? max_age : lb::kStickyDefaultMaxAge;
  for (std::string_view l; !in.empty() && !(l = in.until('\n')).empty();) ref.servers.emplace_back(l);
  if (ref.servers.size() > 100) return 0;
  for (const std::string& s : ref.servers) ref.ids.push_back(lb::sticky_server_id(ref.secret, s));
  lb::StickyCookies sc(ref.secret, ref.servers, max_age);
  FUZZ_CHECK(sc.enabled() == !ref.secret.empty(), "enabled() is not 'has a secret'", "");
  while (!in.empty()) {
    std::string_view probe = in.until('\n');
    if (probe.size() < 2) continue;
    int64_t delta = ((int64_t)(uint8_t)probe[0] - 128) * (int64_t)ref.max_age / 32;
    if (delta < 0 && (uint64_t)-delta > now) continue;
    // The issue time is 8 hex digits: cookies are valid until 2106.
    if (now + delta + 2 * ref.max_age >= (1ull << 32)) continue;
    now += delta;
    std::string value;
    bool mutated = false;
    if (probe[1] == '#' && probe.size() >= 5 && sc.enabled() && !ref.servers.empty()) {
      size_t k = (uint8_t)probe[2] % ref.servers.size();
      value = sc.issue(sc.id(k), now);
      FUZZ_CHECK(value.size() == lb::kStickyCookieLen, "an issued value of the wrong length", value);
      lb::StickyCookies::Check c = sc.check(value, now);
      FUZZ_CHECK(c.server == ref.first_with_id(k), "an issued value does not verify to its server", value);
      FUZZ_CHECK(c.fresh || ref.max_age < 2, "a value issued now is not fresh", value);
      FUZZ_CHECK(lb::verify_sticky_cookie(ref.secret, value, ref.servers, max_age, now) == c.server,
                 "verify_sticky_cookie disagrees with StickyCookies", value);
      size_t pos = (uint8_t)probe[3] % value.size();
      mutated = value[pos] != probe[4];
      value[pos] = probe[4];
    } else if (probe[1] == '=') {
      std::string_view header = probe.substr(2);
      value = std::string(lb::find_cookie(header, "sticky"));
      FUZZ_CHECK(value.size() <= header.size(), "a cookie value longer than its header", header);
    } else {
      continue;
    }
    bool fresh = false;
    int want = ref.check(value, now, &fresh);
    lb::StickyCookies::Check got = sc.check(value, now);
    FUZZ_CHECK(got.server == want, "StickyCookies and the reference disagree on a value", value);
    FUZZ_CHECK(got.server < 0 || got.fresh == fresh, "StickyCookies and the reference disagree on freshness", value);
    FUZZ_CHECK(!mutated || got.server < 0, "a value one byte from a genuine one verifies", value);
  }
  return 0;
}
