// A small DNS stub client for the resolver process (master/resolver.h).
//
// Why not res_nquery(): it takes its timeout in whole seconds from the
// resolver state, reaches IPv6 name servers and non-default ports only
// through glibc's private fields, and cannot tell a timeout from SERVFAIL
// from NXDOMAIN (all are -1 with h_errno, and TRY_AGAIN covers two of
// them), while the resolver must log which one it was and keep the last
// good answer for each. So the query is built here (a dozen bytes), sent
// over UDP with a millisecond deadline, asked again over TCP when the answer
// is truncated (RFC 7766), and the answer parsed with libresolv's
// ns_initparse/ns_parserr (part of libc6-dev: no new package).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/membership.h"

namespace pasture::master::dns {

inline constexpr int kTypeA = 1;
inline constexpr int kTypeAAAA = 28;
inline constexpr int kTypeSRV = 33;

struct NameServer {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;  // "10.0.0.2:53", "[::1]:5353"
};

// An IP literal and port; false if `ip` is not one.
bool name_server(const std::string& ip, uint16_t port, NameServer* out);
// /etc/resolv.conf's `nameserver` lines (port 53); 127.0.0.1:53 if none.
std::vector<NameServer> system_name_servers(const char* path = "/etc/resolv.conf");

struct Record {
  int type = 0;
  uint32_t ttl = 0;
  std::string name;    // the owner name, lower case, no trailing dot
  std::string ip;      // A, AAAA: the address as text
  uint16_t priority = 0, weight = 0, port = 0;  // SRV
  std::string target;  // SRV: lower case, no trailing dot ("" = the root: no service)
};

struct Answer {
  lb::ResolveResult result = lb::ResolveResult::None;  // Ok (NOERROR, maybe no record), or why not
  // The answer section's A/AAAA/SRV records whose owner is the name asked
  // or a name its CNAME chain (in that section) leads to, their TTL at
  // most the chain's; records of other owners are dropped (found by
  // review: a record for an unrelated name became a member).
  std::vector<Record> records;
  // The additional section's A/AAAA records, any owner: the caller takes
  // those of an SRV target it asked about (RFC 2782), nothing else.
  std::vector<Record> additional;
  std::string error;            // what went wrong, for the log
  std::string server;           // the name server that answered (or last tried)
};

// Asks `servers` in turn for `name` / `type` (class IN, recursion desired)
// until one answers NOERROR or NXDOMAIN; each try waits at most timeout_ms.
// A reply counts only with our ID, the QR bit and our question echoed (name
// compared case-insensitively, type, class): over UDP others are ignored
// (spoofed or late), over TCP they fail that server.
// Blocking: the resolver process does nothing else meanwhile.
Answer query(const std::vector<NameServer>& servers, const std::string& name, int type, uint32_t timeout_ms);

}  // namespace pasture::master::dns
