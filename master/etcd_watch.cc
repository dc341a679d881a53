#include "master/etcd_watch.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "conf/error.h"
#include "conf/json.h"
#include "conf/pyutil.h"
#include "conf/site_pool.h"
#include "master/master.h"

namespace pasture::master::etcd {
namespace {

using conf::json::Value;

// The longest watch message taken (one revision's events): as a range's answer.
constexpr size_t kMaxMessage = 64u << 20;

// An int64 of etcd's JSON (a string, as protobuf's JSON mapping writes them).
uint64_t number(const Value* v) {
  if (!v) return 0;
  if (v->type() == Value::Type::Number) return (uint64_t)v->as_number();
  if (v->type() == Value::Type::String) return strtoull(v->as_string().c_str(), nullptr, 10);
  return 0;
}

std::string text(const Value* v) { return v && v->type() == Value::Type::String ? v->as_string() : ""; }

const Value* at(const Value& v, const char* a, const char* b) {
  const Value* x = v.find(a);
  return x ? x->find(b) : nullptr;
}

// A key-value of an answer: its key without `prefix` (false if it is not
// under it or not base64) and its value.
bool key_value(const Value& kv, const std::string& prefix, Change* c) {
  std::string key;
  if (!unbase64(text(kv.find("key")), &key) || key.compare(0, prefix.size(), prefix) != 0) return false;
  c->key = key.substr(prefix.size());
  return unbase64(text(kv.find("value")), &c->value);
}

}  // namespace

bool member_from_value(const std::string& value, const conf::UpstreamServer& src, uint8_t source, lb::Member* m,
                       std::string* err) {
  std::vector<conf::UpstreamServer> list;
  try {
    list = conf::parse_servers(value, conf::SourceLoc{});
  } catch (const conf::ConfigError& e) {
    *err = e.message();
    return false;
  }
  const conf::UpstreamServer& s = list[0];
  const conf::UpstreamServer defaults;
  if (list.size() != 1) {
    *err = "one server per key";
  } else if (s.discover != conf::UpstreamServer::Discover::None || !s.unix_path.empty() || s.tls) {
    *err = "expected IP:PORT (plain http)";
  } else if (!m->set_ip(s.host)) {
    *err = "expected an IP address, not '" + s.host + "'";
  } else if (s.down) {
    *err = "marked down";
  } else if (s.max_conns != defaults.max_conns || s.max_fails != defaults.max_fails ||
             s.fail_timeout_ms != defaults.fail_timeout_ms || s.slow_start_ms != defaults.slow_start_ms) {
    *err = "only weight and backup are set per key (max_conns, max_fails, fail_timeout, slow_start: on servers_from)";
  } else {
    m->port = s.port;
    m->weight = value.find("weight=") != std::string::npos ? s.weight : src.weight;
    m->backup = s.backup || src.backup;
    m->source = source;
    m->state = lb::MemberState::Active;
    return true;
  }
  return false;
}

bool parse_admin_value(const std::string& value, AdminValue* out, std::string* err) {
  std::vector<std::string> w = conf::py::split(value);
  AdminValue a;
  if (w.empty() || w.size() > 2) {
    *err = "expected drain, maint or ready, maybe weight=N";
    return false;
  }
  if (w[0] == "drain")
    a.state = shm::AdminState::Drain;
  else if (w[0] == "maint")
    a.state = shm::AdminState::Maint;
  else if (w[0] != "ready") {
    *err = "unknown state '" + w[0] + "' (expected drain, maint or ready)";
    return false;
  }
  if (w.size() == 2) {
    const std::string& t = w[1];
    char* end = nullptr;
    unsigned long n = t.compare(0, 7, "weight=") == 0 ? strtoul(t.c_str() + 7, &end, 10) : 0;
    if (!end || *end || n < 1 || n > 65535) {
      *err = "expected weight=N (1-65535), got '" + t + "'";
      return false;
    }
    a.weight = (uint32_t)n;
  }
  *out = a;
  return true;
}

std::string admin_value_text(const AdminValue& a) {
  std::string s = a.state == shm::AdminState::Drain ? "drain" : a.state == shm::AdminState::Maint ? "maint" : "ready";
  return a.weight ? s + " weight=" + std::to_string(a.weight) : s;
}

bool canonical_server(const std::string& text, std::string* id) {
  bool bracket = !text.empty() && text[0] == '[';
  size_t colon = bracket ? text.find("]:") : text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = bracket ? text.substr(1, colon - 1) : text.substr(0, colon);
  std::string port = text.substr(colon + (bracket ? 2 : 1));
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  lb::Member m;
  unsigned long n = strtoul(port.c_str(), nullptr, 10);
  if (n < 1 || n > 65535 || !m.set_ip(host) || m.v6 != bracket) return false;
  m.port = (uint16_t)n;
  *id = m.id();
  return true;
}

Watch::Watch(const conf::Pool& pool, const conf::UpstreamServer& src)
    : pool_(pool), src_(src), end_(prefix_end(src.etcd_prefix)) {}

Watch::~Watch() { close_stream(); }

void Watch::close_stream() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  reader_ = ResponseReader();
  lines_.clear();
  created_ = false;
  unseen_ = 0;
}

bool Watch::range(Update* out, std::string* err) {
  const Endpoint& ep = src_.etcd_endpoints[endpoint_];
  std::string body = "{\"key\":" + json_string(base64(src_.etcd_prefix)) + ",\"range_end\":" + json_string(base64(end_)) + "}";
  std::string answer;
  if (!post(ep, "/v3/kv/range", body, pool_.resolve_timeout_ms, &answer, err)) return false;
  Update u;
  u.reset = true;
  try {
    Value v = conf::json::parse(answer);
    revision_ = number(at(v, "header", "revision"));
    cluster_ = text(at(v, "header", "cluster_id"));
    if (const Value* kvs = v.find("kvs"))
      for (const Value& kv : kvs->items()) {
        Change c;
        if (key_value(kv, src_.etcd_prefix, &c)) u.changes.push_back(std::move(c));
      }
  } catch (const std::exception& e) {
    *err = std::string("range: etcd's answer: ") + e.what();
    return false;
  }
  if (revision_ == 0) {
    *err = "range: no revision in etcd's answer";
    return false;
  }
  *out = std::move(u);
  synced_ = true;
  PLOG_DEBUG("pool %s: %s: %zu key(s) at revision %llu", pool_.name.c_str(), label().c_str(), out->changes.size(),
             (unsigned long long)revision_);
  return true;
}

bool Watch::open_watch(std::string* err) {
  const Endpoint& ep = src_.etcd_endpoints[endpoint_];
  int fd = connect_to(ep, pool_.resolve_timeout_ms, err);
  if (fd < 0) return false;
  // A host that vanishes without a reset is noticed within ~25s.
  int on = 1, idle = 10, intvl = 5, cnt = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  std::string body = "{\"create_request\":{\"key\":" + json_string(base64(src_.etcd_prefix)) +
                     ",\"range_end\":" + json_string(base64(end_)) +
                     ",\"start_revision\":" + std::to_string(revision_ + 1) + ",\"progress_notify\":true}}";
  if (!send_all(fd, post_request(ep, "/v3/watch", body), pool_.resolve_timeout_ms, err)) {
    close(fd);
    return false;
  }
  close_stream();
  fd_ = fd;
  created_by_ = monotonic_ms() + pool_.resolve_timeout_ms;
  return true;
}

// The probe also asks for the oldest change under the prefix that the
// watch has not shown (a key whose mod_revision is past revision_): one
// that was there at the last probe, a resolve_interval ago, and has still
// not come means the stream stalled while etcd answers (a proxy or a
// gateway stuck on the stream only). Deletions leave no key to find; any
// put shows it.
bool Watch::probe(std::string* err) {
  const Endpoint& ep = src_.etcd_endpoints[endpoint_];
  std::string body = "{\"key\":" + json_string(base64(src_.etcd_prefix)) + ",\"range_end\":" + json_string(base64(end_)) +
                     ",\"min_mod_revision\":\"" + std::to_string(revision_ + 1) +
                     "\",\"keys_only\":true,\"limit\":\"1\",\"sort_order\":\"ASCEND\",\"sort_target\":\"MOD\"}";
  std::string answer;
  bool ok = post(ep, "/v3/kv/range", body, pool_.resolve_timeout_ms, &answer, err);
  probe_ms_ = monotonic_ms() + pool_.resolve_interval_ms;
  if (!ok) return false;
  uint64_t unseen = 0;
  try {
    Value v = conf::json::parse(answer);
    if (const Value* kvs = v.find("kvs"); kvs && !kvs->items().empty())
      unseen = number(kvs->items()[0].find("mod_revision"));
  } catch (const std::exception& e) {
    *err = std::string("etcd's answer: ") + e.what();
    return false;
  }
  if (unseen_ && revision_ < unseen_) {
    *err = "the watch stalled: etcd had revision " + std::to_string(unseen_) + " under the prefix one probe ago, " +
           "the watch is still at " + std::to_string(revision_);
    return false;
  }
  unseen_ = unseen;
  return true;
}

void Watch::step(uint64_t now, Update* out) {
  std::string err;
  if (fd_ >= 0) {
    if (!read(out, &err)) {
      close_stream();
      if (synced_) return failed(now, "watch", err);
      // Compacted, or another cluster: range again at once, but not twice
      // within resolve_min (found by review: a cluster that keeps answering
      // so looped ~500 times a second).
      next_ms_ = rerange_ms_ && now - rerange_ms_ < pool_.resolve_min_ms ? now + pool_.resolve_min_ms : now;
      rerange_ms_ = next_ms_;
      return;
    }
    if (!created_ && now >= created_by_) {
      close_stream();
      return failed(now, "watch",
                    "not created within " + std::to_string(pool_.resolve_timeout_ms) + "ms (resolve_timeout): etcd hung?");
    }
    if (created_ && now >= probe_ms_ && !probe(&err)) {
      close_stream();
      return failed(now, "probe", err);
    }
    return;
  }
  if (now < next_ms_) return;
  if (!synced_ && !range(out, &err)) return failed(now, "range", err);
  if (!open_watch(&err)) return failed(now, "watch", err);
}

bool Watch::read(Update* out, std::string* err) {
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      *err = n < 0 ? std::string("recv() failed: ") + strerror(errno) : "etcd closed the watch stream";
      return false;
    }
    std::string body;
    if (!reader_.feed(std::string_view(buf, (size_t)n), &body)) {
      *err = "watch: " + reader_.error();
      return false;
    }
    if (reader_.head_done() && reader_.status() != 200) {
      *err = "watch: status " + std::to_string(reader_.status());
      return false;
    }
    // grpc-gateway ends each message with a newline (JSON has none of its
    // own). Only the new bytes are searched, from where the last search
    // stopped, and a message may not grow past kMaxMessage (found by review:
    // a stream without newlines grew without bound, searched whole per read).
    size_t from = lines_.size();
    lines_ += body;
    size_t start = 0;
    for (size_t eol; (eol = lines_.find('\n', from)) != std::string::npos; from = start) {
      std::string_view line(lines_.data() + start, eol - start);
      start = eol + 1;
      if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
      if (!message(std::string(line), out, err)) return false;
    }
    lines_.erase(0, start);
    if (lines_.size() > kMaxMessage) {
      *err = "watch: a message longer than " + std::to_string(kMaxMessage >> 20) + " MiB";
      return false;
    }
    if (reader_.done()) {
      *err = "etcd ended the watch stream";
      return false;
    }
  }
  return true;
}

// False: the stream is no good (synced_ false: range again at once).
bool Watch::message(const std::string& line, Update* out, std::string* err) {
  Value v;
  try {
    v = conf::json::parse(line);
  } catch (const std::exception& e) {
    *err = std::string("watch: etcd's message: ") + e.what();
    return false;
  }
  if (const Value* e = v.find("error")) {
    *err = "watch: " + (e->type() == Value::Type::Object ? text(e->find("message")) : text(e));
    return false;
  }
  const Value* r = v.find("result");
  if (!r) return true;
  const std::string& pool = pool_.name;
  if (uint64_t compact = number(r->find("compact_revision"))) {
    PLOG_NOTICE("pool %s: %s: revision %llu was compacted (etcd keeps %llu on): reading all keys again", pool.c_str(),
                label().c_str(), (unsigned long long)(revision_ + 1), (unsigned long long)compact);
    synced_ = false;
    *err = "compacted";
    return false;
  }
  if (r->find("canceled") && r->find("canceled")->as_bool()) {
    *err = "watch canceled: " + text(r->find("cancel_reason"));
    return false;
  }
  if (r->find("created") && r->find("created")->as_bool()) {
    std::string cluster = text(at(*r, "header", "cluster_id"));
    uint64_t rev = number(at(*r, "header", "revision"));
    if ((!cluster_.empty() && cluster != cluster_) || rev < revision_) {
      PLOG_NOTICE("pool %s: %s: another etcd cluster answers (cluster %s revision %llu, was %s revision %llu): "
                  "reading all keys again", pool.c_str(), label().c_str(), cluster.c_str(), (unsigned long long)rev,
                  cluster_.c_str(), (unsigned long long)revision_);
      synced_ = false;
      *err = "another cluster";
      return false;
    }
    created_ = true;
    probe_ms_ = monotonic_ms() + pool_.resolve_interval_ms;
    failures_ = 0;
    if (!down_.empty())
      PLOG_NOTICE("pool %s: %s: etcd answers again (%s:%u): watching from revision %llu", pool.c_str(),
                  label().c_str(), src_.etcd_endpoints[endpoint_].first.c_str(), src_.etcd_endpoints[endpoint_].second,
                  (unsigned long long)(revision_ + 1));
    down_.clear();
  }
  if (const Value* events = r->find("events")) {
    for (const Value& ev : events->items()) {
      const Value* kv = ev.find("kv");
      if (!kv) continue;
      Change c;
      c.deleted = text(ev.find("type")) == "DELETE";
      if (!key_value(*kv, src_.etcd_prefix, &c)) continue;
      if (c.deleted) c.value.clear();
      revision_ = std::max(revision_, number(kv->find("mod_revision")));
      out->changes.push_back(std::move(c));
    }
  }
  return true;
}

void Watch::failed(uint64_t now, const std::string& what, const std::string& err) {
  failures_++;
  // The next endpoint at once; after a round through all of them, wait
  // resolve_min, doubling each round up to resolve_interval.
  size_t n = src_.etcd_endpoints.size();
  uint32_t rounds = (uint32_t)((failures_ - 1) / n);
  uint64_t retry = failures_ % n ? 0
                                 : std::min<uint64_t>(pool_.resolve_interval_ms,
                                                      (uint64_t)pool_.resolve_min_ms << std::min<uint32_t>(rounds, 16));
  next_ms_ = now + retry;
  const Endpoint& ep = src_.etcd_endpoints[endpoint_];
  if (down_.empty())
    PLOG_WARN("pool %s: %s: %s:%u: %s: %s; keeping the last members; retrying from %ums up to every %ums",
              pool_.name.c_str(), label().c_str(), ep.first.c_str(), ep.second, what.c_str(), err.c_str(),
              pool_.resolve_min_ms, pool_.resolve_interval_ms);
  else
    PLOG_DEBUG("pool %s: %s: %s:%u still down: %s", pool_.name.c_str(), label().c_str(), ep.first.c_str(), ep.second,
               err.c_str());
  down_ = what + ": " + err;
  endpoint_ = (endpoint_ + 1) % src_.etcd_endpoints.size();
}

}  // namespace pasture::master::etcd
