// Signed, expiring sticky-session cookies for the cookie balancer.
//
// Value: "<id>.<issued>.<mac>", 90 characters, all cookie-value safe:
//  - id: the first 8 bytes of HMAC-SHA256(secret, "id:" + server), hex (16
//    chars). `server` is the server's stable identity, its "host:port" as
//    configured. Keyed, so without the secret the id says nothing about the
//    address (an unkeyed hash is reversed by hashing the few likely
//    addresses); fixed for one secret and address, so a cookie survives
//    reloads (also ones that add, remove or reorder other servers) and means
//    the same in every worker.
//  - issued: the Unix time it was issued, in seconds, 8 hex digits, rounded
//    down to a step of max_age / 16 (at least 1 s). A cookie is honoured
//    while issued + max_age is ahead (so for max_age minus up to one step).
//  - mac: HMAC-SHA256(secret, "<id>.<issued>"), hex (64 chars).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pasture::lb {

inline constexpr size_t kStickyIdLen = 16;
inline constexpr size_t kStickyTimeLen = 8;
inline constexpr size_t kStickyCookieLen = kStickyIdLen + 1 + kStickyTimeLen + 1 + 64;

// Server-side validity when the pool sets no cookie_max_age.
inline constexpr uint32_t kStickyDefaultMaxAge = 24 * 3600;
// How far in the future an issue time may be (another host sharing the
// secret with a clock ahead of ours).
inline constexpr uint32_t kStickyClockSkew = 60;

// Wall-clock Unix time in seconds (CLOCK_REALTIME_COARSE: no system call).
uint64_t unix_seconds();

// The id part of a cookie for `server` under `secret`.
std::string sticky_server_id(std::string_view secret, std::string_view server);

// The cookie value naming `server`, issued at `issued` (Unix seconds, used
// as given, not rounded), signed under `secret` (must not be empty).
std::string make_sticky_cookie(std::string_view secret, std::string_view server, uint64_t issued);

// One pool's cookies in one process: the secret, each server's id, and a
// cache of cookie values by (server, issue time). Rounding issue times to a
// step leaves ~17 live values per server, so an HMAC is computed only when a
// step begins (to issue) or a cookie of a step not seen yet arrives; every
// other check is a table lookup and one constant-time compare. The cache
// makes check() and issue() writers: one instance per thread (each worker
// has its own copy of the pool's state).
class StickyCookies {
 public:
  StickyCookies() = default;  // no secret: issues nothing, trusts nothing
  // `servers`: stable identities in server index order. max_age 0 =
  // kStickyDefaultMaxAge.
  StickyCookies(std::string secret, const std::vector<std::string>& servers, uint32_t max_age);

  bool enabled() const { return !secret_.empty(); }
  uint32_t max_age() const { return max_age_; }

  struct Check {
    int server = -1;     // -1: not a cookie to honour
    bool fresh = false;  // issued less than max_age / 2 ago: no need to re-issue
  };
  // The server index `value` names, or -1 when the value is malformed,
  // unsigned, forged, signed under another secret, names a server not in
  // the list, or is expired at `now` (issued max_age or more before it, or
  // more than kStickyClockSkew after it). The MAC is compared in constant
  // time.
  Check check(std::string_view value, uint64_t now);

  // The value of a cookie for the server whose id is `id` (one of id()'s
  // views), issued at `now`; empty if no server has that id. Valid until
  // the next check() or issue().
  const std::string& issue(std::string_view id, uint64_t now);

  const std::string& id(size_t server) const { return ids_[server]; }

  // Discovery: server index `server` is now `server` (a new member took a
  // slot). Its id keeps its length and buffer: views from id() stay valid.
  void set_server(size_t server, std::string_view name);

 private:
  struct Entry {
    uint64_t issued = UINT64_MAX;
    size_t server = 0;
    std::string value;
  };
  const std::string& value(size_t server, uint64_t issued);

  std::string secret_;
  uint32_t max_age_ = kStickyDefaultMaxAge;
  uint32_t step_ = 1;
  std::vector<std::string> ids_;
  std::vector<Entry> cache_;
};

// The index in `servers` of the server `value` names, or -1 (see
// StickyCookies::check). Computes one HMAC per id and one for the value.
int verify_sticky_cookie(std::string_view secret, std::string_view value,
                         const std::vector<std::string>& servers, uint32_t max_age, uint64_t now);

// Constant-time equality of two equal-length byte strings (false if the
// lengths differ; the length itself is not secret).
bool equal_ct(std::string_view a, std::string_view b);

}  // namespace pasture::lb
