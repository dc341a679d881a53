// `pasture ctl` and `pasture status`: the admin socket's client.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <algorithm>

#include "conf/error.h"
#include "conf/load.h"
#include "master/commands.h"
#include "master/etcd_watch.h"

namespace pasture::master {
namespace {

// `set server POOL/SERVER state S --publish`, `set weight POOL/SERVER N
// --publish`: written to the pool's etcd prefix (`_admin/SERVER`), not sent
// to this server; every node watching the prefix, this one too, applies it.
int publish(const conf::Site& site, const std::vector<std::string>& w) {
  bool state = w.size() == 5 && w[0] == "set" && w[1] == "server" && w[3] == "state";
  bool weight = w.size() == 4 && w[0] == "set" && w[1] == "weight";
  if (!state && !weight) {
    fprintf(stderr, "pasture: --publish goes with set server POOL/SERVER state ready|drain|maint, "
                    "or set weight POOL/SERVER N\n");
    return 2;
  }
  const std::string& target = w[2];
  size_t slash = target.find('/');
  std::string pool = target.substr(0, slash), server = slash == std::string::npos ? "" : target.substr(slash + 1);
  const conf::UpstreamServer* src = nullptr;
  const conf::Pool* cfg = nullptr;
  for (const conf::Pool& p : site.pools) {
    size_t colon = p.name.find(':');
    if (p.name != pool && (colon == std::string::npos || p.name.substr(colon + 1) != pool)) continue;
    cfg = &p;
    for (const conf::UpstreamServer& s : p.sources)
      if (s.discover == conf::UpstreamServer::Discover::Etcd) src = &s;
  }
  if (server.empty() || !cfg || !src) {
    fprintf(stderr, "pasture: %s: %s\n", target.c_str(),
            server.empty() ? "expected POOL/SERVER" : !cfg ? "no such pool" : "the pool has no servers_from = etcd://");
    return 1;
  }
  // The server as nodes match it: a static server's own text, else
  // IP:PORT written as pasture writes addresses (found by review: any text
  // was published, matched nothing, and no node said so).
  std::vector<std::string> statics;
  for (const conf::UpstreamServer& s : cfg->servers)
    if (s.dynamic_slot < 0) statics.push_back(s.label());
  std::string err;
  if (std::find(statics.begin(), statics.end(), server) == statics.end()) {
    std::string id;
    if (!etcd::canonical_server(server, &id)) {
      fprintf(stderr, "pasture: %s: '%s' is not IP:PORT (10.0.0.5:8000, [2001:db8::5]:8000) nor a static server "
                      "of the pool; nodes match admin keys by address\n", target.c_str(), server.c_str());
      return 2;
    }
    server = id;
    std::vector<std::pair<std::string, std::string>> kvs;
    if (!etcd::range(src->etcd_endpoints, src->etcd_prefix, cfg->resolve_timeout_ms, &kvs, &err)) {
      fprintf(stderr, "pasture: etcd: %s\n", err.c_str());
      return 1;
    }
    bool known = std::find(statics.begin(), statics.end(), server) != statics.end();
    for (const auto& [k, v] : kvs) {
      lb::Member m;
      std::string why;
      known = known || (k.compare(0, strlen(etcd::kAdminDir), etcd::kAdminDir) != 0 &&
                        etcd::member_from_value(v, *src, 0, &m, &why) && m.id() == server);
    }
    bool dns = std::any_of(cfg->sources.begin(), cfg->sources.end(), [](const conf::UpstreamServer& s) {
      return s.discover == conf::UpstreamServer::Discover::Dns || s.discover == conf::UpstreamServer::Discover::DnsSrv;
    });
    if (!known)
      fprintf(stderr, "pasture: warning: %s is not a static server of %s nor a member under %s now%s; "
                      "the key applies when it joins\n", server.c_str(), cfg->name.c_str(), src->etcd_prefix.c_str(),
              dns ? " (members from DNS are not known here)" : "");
  }
  std::string key = src->etcd_prefix + etcd::kAdminDir + server, old;
  etcd::AdminValue a;
  if (etcd::get(src->etcd_endpoints, key, cfg->resolve_timeout_ms, &old, &err)) {
    etcd::parse_admin_value(old, &a, &err);  // keep the part not changed (a bad value: start over)
  } else if (!err.empty()) {
    fprintf(stderr, "pasture: etcd: %s\n", err.c_str());
    return 1;
  }
  std::string value = state ? w[4] + (a.weight ? " weight=" + std::to_string(a.weight) : "")
                            : etcd::admin_value_text(etcd::AdminValue{a.state, 0}) + " weight=" + w[3];
  if (!etcd::parse_admin_value(value, &a, &err)) {
    fprintf(stderr, "pasture: %s\n", err.c_str());
    return 1;
  }
  if (!etcd::put(src->etcd_endpoints, key, value, cfg->resolve_timeout_ms, &err)) {
    fprintf(stderr, "pasture: etcd: %s\n", err.c_str());
    return 1;
  }
  printf("published %s/%s %s as %s on %s (every node watching applies it)\n", cfg->name.c_str(), server.c_str(),
         value.c_str(), key.c_str(), src->label().c_str());
  return 0;
}

}  // namespace

int cmd_ctl(const conf::LoadOptions& opts, const std::vector<std::string>& words) {
  conf::Site site;
  try {
    site = conf::load_site(opts);
  } catch (const conf::ConfigError& e) {
    fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fprintf(stderr, "pasture: %s\n", e.what());
    return 2;
  }
  std::vector<std::string> w = words;
  if (auto it = std::find(w.begin(), w.end(), "--publish"); it != w.end()) {
    w.erase(it);
    return publish(site, w);
  }
  const std::string& path = site.server.admin_socket;
  if (path.empty()) {
    fprintf(stderr, "pasture: %s has no admin_socket in its server section\n", opts.config.c_str());
    return 1;
  }
  std::string line;
  for (const std::string& w : words) line += (line.empty() ? "" : " ") + w;
  line += "\n";
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) {
    fprintf(stderr, "pasture: admin_socket path too long: %s\n", path.c_str());
    return 1;
  }
  memcpy(sun.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) < 0) {
    fprintf(stderr, "pasture: connect(%s) failed: %s (is the server running?)\n", path.c_str(), strerror(errno));
    if (fd >= 0) close(fd);
    return 1;
  }
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "pasture: send(%s) failed: %s\n", path.c_str(), strerror(errno));
      close(fd);
      return 1;
    }
    sent += (size_t)n;
  }
  std::string answer;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buf, (size_t)n);
  }
  close(fd);
  if (answer.empty()) {
    fprintf(stderr, "pasture: no answer on %s\n", path.c_str());
    return 1;
  }
  bool error = answer.rfind("error:", 0) == 0;
  fputs(answer.c_str(), error ? stderr : stdout);
  return error ? 1 : 0;
}

}  // namespace pasture::master
