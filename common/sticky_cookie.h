// Signed sticky-session cookies for the cookie balancer.
//
// Value: "<id>.<mac>", where id = the first 8 bytes of SHA-256(server), hex
// (16 chars), and mac = HMAC-SHA256(secret, id), hex (64 chars). `server` is
// the server's stable identity, its "host:port" as configured, so a cookie
// survives reloads that add, remove or reorder other servers; the address
// itself is not revealed. All characters are cookie-value safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pasture::lb {

inline constexpr size_t kStickyIdLen = 16;
inline constexpr size_t kStickyCookieLen = kStickyIdLen + 1 + 64;

// The id part of a cookie for `server`.
std::string sticky_server_id(std::string_view server);

// The cookie value naming `server`, signed under `secret` (must not be empty).
std::string make_sticky_cookie(std::string_view secret, std::string_view server);

// The index in `servers` (stable identities, as for make_sticky_cookie) of
// the server `value` names, or -1 when the value is malformed, unsigned,
// forged, signed under another secret, or names a server not in the list.
// The MAC is compared in constant time. An empty secret verifies nothing.
// Computes one HMAC; the balancer itself uses precomputed values instead.
int verify_sticky_cookie(std::string_view secret, std::string_view value,
                         const std::vector<std::string>& servers);

// Constant-time equality of two equal-length byte strings (false if the
// lengths differ; the length itself is not secret).
bool equal_ct(std::string_view a, std::string_view b);

}  // namespace pasture::lb
