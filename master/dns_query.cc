#include "master/dns_query.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "master/fd_wait.h"

namespace pasture::master::dns {
namespace {

constexpr size_t kMaxUdp = 4096;   // we advertise no EDNS: servers send 512 at most, some send more
constexpr size_t kMaxTcp = 65535;

std::string lower_name(const char* n) {
  std::string s(n);
  for (char& c : s) c = (char)std::tolower((unsigned char)c);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// A query: header (id, RD), one question. False if a label is too long.
bool build_query(const std::string& name, int type, uint16_t id, std::string* out) {
  std::string& q = *out;
  q.assign({(char)(id >> 8), (char)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0});
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    size_t len = dot - start;
    if (len == 0 || len > 63) return false;
    q.push_back((char)len);
    q.append(name, start, len);
    start = dot + 1;
  }
  q.push_back(0);
  q.append({(char)(type >> 8), (char)type, 0, 1});
  return true;
}

// `r` answers the query `q`: our ID, QR set, one question, the same as ours
// (the name's letters in any case: RFC 4343; some servers echo them
// randomised, DNS 0x20).
bool answers(const char* r, size_t n, const std::string& q) {
  if (n < q.size() || r[0] != q[0] || r[1] != q[1] || !(r[2] & 0x80) || r[4] != 0 || r[5] != 1) return false;
  size_t name_end = q.size() - 4;  // then QTYPE and QCLASS, compared as they are
  for (size_t i = 12; i < q.size(); i++) {
    unsigned char a = (unsigned char)r[i], b = (unsigned char)q[i];
    if (i < name_end ? std::tolower(a) != std::tolower(b) : a != b) return false;
  }
  return true;
}

// One exchange over UDP: the reply that answers `q` (others are ignored), or "".
std::string ask_udp(const NameServer& ns, const std::string& q, uint64_t deadline, std::string* err) {
  int fd = socket(ns.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket(): ") + strerror(errno);
    return "";
  }
  std::string out;
  int ignored = 0;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&ns.addr), ns.len) != 0 || send(fd, q.data(), q.size(), 0) < 0) {
    *err = std::string("send() to ") + ns.text + ": " + strerror(errno);
  } else {
    char buf[kMaxUdp];
    while (wait_fd(fd, POLLIN, deadline)) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n < 0) {  // ECONNREFUSED: nobody listens there
        *err = std::string("recv() from ") + ns.text + ": " + strerror(errno);
        break;
      }
      if (answers(buf, (size_t)n, q)) {
        out.assign(buf, (size_t)n);
        break;
      }
      ignored++;
    }
    if (out.empty() && err->empty())
      *err = "no answer from " + ns.text + " (timeout" +
             (ignored ? "; " + std::to_string(ignored) + " reply(ies) ignored: another ID or question)" : ")");
  }
  close(fd);
  return out;
}

bool io_all(int fd, char* p, size_t n, bool writing, uint64_t deadline) {
  while (n > 0) {
    if (!wait_fd(fd, writing ? POLLOUT : POLLIN, deadline)) return false;
    ssize_t r = writing ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
  }
  return true;
}

// The same over TCP (RFC 7766: a two-byte length before each message).
// *mismatch: a reply came, but not to `q` (our ID and question).
std::string ask_tcp(const NameServer& ns, const std::string& q, uint64_t deadline, std::string* err, bool* mismatch) {
  int fd = socket(ns.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket(): ") + strerror(errno);
    return "";
  }
  std::string out;
  std::string msg = {(char)(q.size() >> 8), (char)q.size()};
  msg += q;
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&ns.addr), ns.len);
  bool ok = rc == 0 || errno == EINPROGRESS;
  ok = ok && io_all(fd, msg.data(), msg.size(), true, deadline);
  unsigned char len[2];
  ok = ok && io_all(fd, reinterpret_cast<char*>(len), 2, false, deadline);
  if (ok) {
    out.resize((size_t)len[0] << 8 | len[1]);
    ok = io_all(fd, out.data(), out.size(), false, deadline) && out.size() >= 12;
  }
  if (!ok) {
    *err = "no answer from " + ns.text + " over TCP";
    out.clear();
  } else if (!answers(out.data(), out.size(), q)) {
    *err = "the answer from " + ns.text + " over TCP has another ID or question";
    *mismatch = true;
    out.clear();
  }
  close(fd);
  return out;
}

// A record of `rr` (A, AAAA, SRV); false for another type or a bad one.
bool record(const ns_msg& msg, const ns_rr& rr, Record* r) {
  r->type = ns_rr_type(rr);
  r->ttl = ns_rr_ttl(rr);
  r->name = lower_name(ns_rr_name(rr));
  const unsigned char* d = ns_rr_rdata(rr);
  int dlen = ns_rr_rdlen(rr);
  char text[INET6_ADDRSTRLEN];
  if (r->type == kTypeA && dlen == 4) {
    r->ip = inet_ntop(AF_INET, d, text, sizeof text);
  } else if (r->type == kTypeAAAA && dlen == 16) {
    r->ip = inet_ntop(AF_INET6, d, text, sizeof text);
  } else if (r->type == kTypeSRV && dlen > 6) {
    r->priority = (uint16_t)(d[0] << 8 | d[1]);
    r->weight = (uint16_t)(d[2] << 8 | d[3]);
    r->port = (uint16_t)(d[4] << 8 | d[5]);
    char target[NS_MAXDNAME];
    if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), d + 6, target, sizeof target) < 0) return false;
    r->target = lower_name(target);
  } else {
    return false;
  }
  return true;
}

// The names the answer section's CNAMEs lead to from `qname` (and qname),
// each with the smallest CNAME TTL on the way to it. A recursive server
// puts the chain before the records it ends at (RFC 1034 3.6.2).
std::map<std::string, uint32_t> cname_chain(ns_msg& msg, const std::string& qname) {
  std::map<std::string, std::pair<std::string, uint32_t>> cnames;  // owner -> target, TTL
  for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) != 0) break;
    char target[NS_MAXDNAME];
    if (ns_rr_type(rr) == ns_t_cname &&
        dn_expand(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr), target, sizeof target) >= 0)
      cnames.emplace(lower_name(ns_rr_name(rr)), std::make_pair(lower_name(target), ns_rr_ttl(rr)));
  }
  std::map<std::string, uint32_t> names{{qname, UINT32_MAX}};
  std::string at = qname;
  for (auto it = cnames.find(at); it != cnames.end() && !names.count(it->second.first); it = cnames.find(at)) {
    names[it->second.first] = std::min(names[at], it->second.second);  // a loop ends at a name seen
    at = it->second.first;
  }
  return names;
}

// Parses a reply to `qname` into `a`.
void parse(const std::string& reply, const std::string& qname, Answer* a) {
  ns_msg msg;
  const auto* p = reinterpret_cast<const unsigned char*>(reply.data());
  if (ns_initparse(p, (int)reply.size(), &msg) != 0) {
    a->result = lb::ResolveResult::Error;
    a->error = "malformed answer from " + a->server;
    return;
  }
  int rcode = ns_msg_getflag(msg, ns_f_rcode);
  if (rcode == ns_r_nxdomain) {
    a->result = lb::ResolveResult::NxDomain;
    a->error = "NXDOMAIN from " + a->server;
    return;
  }
  if (rcode != ns_r_noerror) {
    a->result = rcode == ns_r_servfail ? lb::ResolveResult::ServFail : lb::ResolveResult::Error;
    a->error = std::string(rcode == ns_r_servfail ? "SERVFAIL" : "error code " + std::to_string(rcode)) + " from " + a->server;
    return;
  }
  a->result = lb::ResolveResult::Ok;
  std::map<std::string, uint32_t> owners = cname_chain(msg, qname);
  for (ns_sect sect : {ns_s_an, ns_s_ar}) {
    for (int i = 0; i < ns_msg_count(msg, sect); i++) {
      ns_rr rr;
      Record r;
      if (ns_parserr(&msg, sect, i, &rr) != 0) break;
      if (!record(msg, rr, &r)) continue;
      if (sect == ns_s_ar) {
        if (r.type != kTypeSRV) a->additional.push_back(std::move(r));
        continue;
      }
      auto owner = owners.find(r.name);
      if (owner == owners.end()) continue;
      r.ttl = std::min(r.ttl, owner->second);
      a->records.push_back(std::move(r));
    }
  }
}

}  // namespace

bool name_server(const std::string& ip, uint16_t port, NameServer* out) {
  *out = NameServer{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->addr);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out->len = sizeof *v4;
    out->text = ip + ":" + std::to_string(port);
    return true;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out->len = sizeof *v6;
    out->text = "[" + ip + "]:" + std::to_string(port);
    return true;
  }
  return false;
}

std::vector<NameServer> system_name_servers(const char* path) {
  std::vector<NameServer> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string key, ip;
    NameServer ns;
    if (in >> key >> ip && key == "nameserver") {
      ip = ip.substr(0, ip.find('%'));  // fe80::1%eth0: the zone is not kept
      if (name_server(ip, 53, &ns)) out.push_back(ns);
    }
  }
  NameServer local;
  if (out.empty() && name_server("127.0.0.1", 53, &local)) out.push_back(local);
  return out;
}

Answer query(const std::vector<NameServer>& servers, const std::string& name, int type, uint32_t timeout_ms) {
  Answer a;
  uint16_t id = 0;
  if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id) id = (uint16_t)(monotonic_ms() * 40503u);
  std::string q;
  if (!build_query(name, type, id, &q)) {
    a.result = lb::ResolveResult::Error;
    a.error = "'" + name + "' is not a valid DNS name";
    return a;
  }
  for (const NameServer& ns : servers) {
    a = Answer{};
    a.server = ns.text;
    uint64_t deadline = monotonic_ms() + timeout_ms;
    std::string err;
    bool mismatch = false;
    std::string reply = ask_udp(ns, q, deadline, &err);
    if (!reply.empty() && (reply[2] & 0x02)) reply = ask_tcp(ns, q, deadline, &err, &mismatch);  // TC: truncated
    if (reply.empty()) {
      a.result = mismatch ? lb::ResolveResult::Error : lb::ResolveResult::Timeout;
      a.error = err;
      continue;
    }
    parse(reply, lower_name(name.c_str()), &a);
    if (a.result == lb::ResolveResult::Ok || a.result == lb::ResolveResult::NxDomain) return a;
  }
  if (servers.empty()) {
    a.result = lb::ResolveResult::Error;
    a.error = "no name server";
  }
  return a;
}

}  // namespace pasture::master::dns
