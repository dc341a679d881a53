#include "master/resolver.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "common/log.h"
#include "common/membership.h"
#include "master/dns_query.h"
#include "master/etcd_watch.h"
#include "master/helper_signals.h"
#include "master/master.h"

namespace pasture::master {
namespace {

// A member that left keeps its slot at least this long, even once idle:
// every worker has picked (and so seen it leave) by then, so no request can
// still be on its way to the old address when a new member takes the slot.
constexpr uint64_t kLeaveGraceMs = 2000;
// While a slot is leaving or a member waits for one: how often to look again.
constexpr uint64_t kCleanupTickMs = 250;
// At most one published change per pool this often: a source that flaps
// (a key put and deleted in a loop) costs every worker a table rebuild per
// change, so changes that come faster are gathered into one (found by
// review: 12,618 -> 2,450 req/s with max_servers = 4096).
constexpr uint64_t kCoalesceMs = 100;

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

struct Source {
  const conf::UpstreamServer* cfg = nullptr;
  uint8_t index = 0;
  std::vector<lb::Member> good;  // the last good answer's members
  bool has_good = false;
  uint64_t next_ms = 0;
  uint32_t failures = 0;  // in a row
  // An etcd source: the watch, its member keys and the keys whose value is
  // bad (as last logged).
  std::unique_ptr<etcd::Watch> watch;
  std::map<std::string, lb::Member> by_key;
  std::map<std::string, std::string> bad;
  // A dns+srv source: its targets that did not resolve, as last logged.
  std::map<std::string, lb::ResolveResult> skipped;
};

// An admin key applied to a server: where ("s3": static server 3, "d2.7":
// discovery slot 2's 7th member) and what.
struct Applied {
  std::string where;
  etcd::AdminValue value;
};

struct PoolRun {
  ResolverPool p;
  std::vector<dns::NameServer> servers;
  std::vector<Source> sources;
  std::vector<lb::Member> slots;  // as last published
  std::string dropped;            // the members that did not fit, as last logged
  std::map<std::string, etcd::AdminValue> admin;  // by id: the etcd source's admin keys
  std::map<std::string, Applied> applied;         // by id: admin keys applied
  std::set<std::string> odd_admin;  // admin ids that can match no server, as logged
  uint64_t quiet_until = 0;         // no change published before (kCoalesceMs after the last)
  std::string pending;              // why a change waits for quiet_until ("" = none waits)
};

// A member from a record and the source's parameters.
lb::Member member(const Source& s, const std::string& ip, uint16_t port, uint32_t weight, bool backup) {
  lb::Member m;
  m.set_ip(ip);
  m.port = port;
  m.weight = std::max<uint32_t>(weight, 1);
  m.backup = backup;
  m.source = s.index;
  m.state = lb::MemberState::Active;
  return m;
}

// Asks for `name`'s A and AAAA records: Ok with the addresses (maybe none),
// or the first failure when neither kind gave an address. One kind failing
// while the other answers is not the name failing (found by review: a
// server that never answers AAAA froze the source, or left it empty at
// start): the addresses that came are the members, the failure is in `err`.
lb::ResolveResult addresses(const PoolRun& r, const std::string& name, std::vector<dns::Record>* out, std::string* err) {
  lb::ResolveResult failed = lb::ResolveResult::Ok;
  size_t before = out->size();
  for (int type : {dns::kTypeA, dns::kTypeAAAA}) {
    dns::Answer a = dns::query(r.servers, name, type, r.p.cfg->resolve_timeout_ms);
    if (a.result != lb::ResolveResult::Ok) {
      if (failed == lb::ResolveResult::Ok) {
        failed = a.result;
        *err = (type == dns::kTypeA ? "A " : "AAAA ") + name + ": " + a.error;
      }
      continue;
    }
    for (dns::Record& rec : a.records)
      if (rec.type == type) out->push_back(std::move(rec));
  }
  return out->size() > before ? lb::ResolveResult::Ok : failed;
}

// An SRV target left out: why, for the log.
struct Skipped {
  lb::ResolveResult result;
  std::string why;
};

// One source asked: Ok with its members (never empty) and the smallest TTL,
// or why not; *skipped: the SRV targets that did not resolve.
lb::ResolveResult resolve(const PoolRun& r, const Source& s, std::vector<lb::Member>* out, uint32_t* ttl,
                          std::string* err, std::map<std::string, Skipped>* skipped) {
  const conf::UpstreamServer& c = *s.cfg;
  *ttl = UINT32_MAX;
  if (c.discover == conf::UpstreamServer::Discover::Dns) {
    std::vector<dns::Record> recs;
    lb::ResolveResult res = addresses(r, c.host, &recs, err);
    if (res != lb::ResolveResult::Ok) return res;
    for (const dns::Record& rec : recs) {
      out->push_back(member(s, rec.ip, c.port, c.weight, c.backup));
      *ttl = std::min(*ttl, rec.ttl);
    }
  } else {
    dns::Answer a = dns::query(r.servers, c.host, dns::kTypeSRV, r.p.cfg->resolve_timeout_ms);
    if (a.result != lb::ResolveResult::Ok) {
      *err = "SRV " + c.host + ": " + a.error;
      return a.result;
    }
    // RFC 2782: the lowest priority is tried first; here it is the
    // primaries, every higher one a backup tier. Weight 0 ("very small
    // chance") becomes 1; target "." means no service there.
    uint16_t lowest = UINT16_MAX;
    lb::ResolveResult target_failure = lb::ResolveResult::Ok;
    for (const dns::Record& rec : a.records)
      if (rec.type == dns::kTypeSRV && !rec.target.empty()) lowest = std::min(lowest, rec.priority);
    for (const dns::Record& srv : a.records) {
      if (srv.type != dns::kTypeSRV || srv.target.empty()) continue;
      *ttl = std::min(*ttl, srv.ttl);
      std::vector<dns::Record> recs;
      for (const dns::Record& add : a.additional)  // when the server filled it: the target's records only
        if (add.name == srv.target) recs.push_back(add);
      if (recs.empty()) {
        // A target that does not resolve is left out; the others serve
        // (found by review: one NXDOMAIN target failed the whole source).
        std::string why;
        lb::ResolveResult res = addresses(r, srv.target, &recs, &why);
        if (res != lb::ResolveResult::Ok) {
          skipped->emplace(srv.target, Skipped{res, why});
          if (target_failure == lb::ResolveResult::Ok) {
            target_failure = res;
            *err = why;
          }
          continue;
        }
      }
      for (const dns::Record& rec : recs) {
        out->push_back(member(s, rec.ip, srv.port, srv.weight, srv.priority != lowest || c.backup));
        *ttl = std::min(*ttl, rec.ttl);
      }
    }
  }
  if (out->empty()) {
    if (err->empty()) *err = "no address in the answer";
    return lb::ResolveResult::Empty;
  }
  return lb::ResolveResult::Ok;
}

void reset_server(shm::ServerSlot& s, uint64_t now, uint32_t slow_start_ms) {
  s.flags.store(0);
  s.requests.store(0);
  s.failures.store(0);
  s.down_until_ms.store(0);
  s.fail_window.store(0);
  s.recovered_at_ms.store(slow_start_ms ? now : 0);  // a new member ramps up like a recovered one
  s.control.store(0);
  s.weight_override.store(0);
  s.down_word.store(0);
  s.down_transitions.store(0);
  s.downtime_ms.store(0);
  s.last_change_ms.store(now);
  s.last_check.store(0);
  s.check_progress.store(0);
}

std::string join(const std::vector<std::string>& v, const char* prefix) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : " ") + std::string(prefix) + s;
  return out;
}

// Where server `id` is in the pool ("s<static index>" or
// "d<slot>.<generation>"; "" = not there) and its ServerSlot.
std::string where(const PoolRun& r, const std::string& id, shm::ServerSlot** slot) {
  for (size_t j = 0; j < r.p.static_ids.size(); j++)
    if (r.p.static_ids[j] == id) {
      *slot = &r.p.static_servers[j];
      return "s" + std::to_string(j);
    }
  for (size_t k = 0; k < r.slots.size(); k++)
    if (r.slots[k].state != lb::MemberState::Empty && r.slots[k].id() == id) {
      *slot = &r.p.servers[k];
      return "d" + std::to_string(k) + "." + std::to_string(r.slots[k].generation);
    }
  return "";
}

// The admin state and weight override, as `pasture ctl` writes them.
void set_admin(PoolRun& r, shm::ServerSlot& s, const etcd::AdminValue& a) {
  uint32_t cur = s.control.load(std::memory_order_relaxed);
  while (!s.control.compare_exchange_weak(cur, (cur & ~shm::kAdminStateMask) | (uint32_t)a.state,
                                          std::memory_order_relaxed)) {
  }
  if (s.weight_override.exchange(a.weight, std::memory_order_relaxed) != a.weight)
    r.p.slot->weights_epoch.fetch_add(1, std::memory_order_release);
}

// Applies the admin keys to the servers they name that are in the pool now:
// once per key value and server slot (a later local `pasture ctl` stands
// until the key changes); a deleted key puts its server back to ready.
void apply_admin(PoolRun& r) {
  std::set<std::string> ids;
  for (const auto& [id, a] : r.admin) ids.insert(id);
  for (const auto& [id, a] : r.applied) ids.insert(id);
  const std::string& pool = r.p.cfg->name;
  for (const std::string& id : ids) {
    shm::ServerSlot* slot = nullptr;
    std::string at = where(r, id, &slot);
    auto want = r.admin.find(id);
    auto done = r.applied.find(id);
    if (want == r.admin.end()) {
      if (!at.empty() && at == done->second.where) {
        set_admin(r, *slot, etcd::AdminValue{});
        PLOG_NOTICE("pool %s: server %s ready (its etcd admin key is gone)", pool.c_str(), id.c_str());
      }
      r.applied.erase(done);
      continue;
    }
    if (at.empty()) {  // not in the pool (yet): applied when it joins
      if (done != r.applied.end()) r.applied.erase(done);
      continue;
    }
    if (done != r.applied.end() && done->second.where == at && done->second.value == want->second) continue;
    set_admin(r, *slot, want->second);
    r.applied[id] = Applied{at, want->second};
    PLOG_NOTICE("pool %s: server %s %s (etcd admin key)", pool.c_str(), id.c_str(),
                etcd::admin_value_text(want->second).c_str());
  }
}

// Fits the sources' last good members into the slots and publishes a change.
void publish(PoolRun& r, uint64_t now, const std::string& why) {
  if (now < r.quiet_until) {
    if (r.pending.empty() || why != "cleanup") r.pending = why;
    return;
  }
  r.pending.clear();
  std::vector<lb::Member> wanted;
  for (const Source& s : r.sources)
    for (const lb::Member& m : s.good)
      if (std::find(r.p.static_ids.begin(), r.p.static_ids.end(), m.id()) == r.p.static_ids.end()) wanted.push_back(m);
  std::vector<int32_t> active(r.p.n);
  for (size_t i = 0; i < r.p.n; i++) active[i] = r.p.servers[i].active.load(std::memory_order_relaxed);
  lb::Plan plan = lb::plan_members(r.slots, wanted, active, now, kLeaveGraceMs);
  const std::string& pool = r.p.cfg->name;
  std::string dropped = join(plan.dropped, "");
  if (dropped != r.dropped && !dropped.empty())
    PLOG_WARN("pool %s: %zu member(s) do not fit in max_servers = %zu (%s:%d), left out until a slot is free: %s",
              pool.c_str(), plan.dropped.size(), r.p.n, r.p.cfg->loc.file.c_str(), r.p.cfg->loc.line, dropped.c_str());
  r.dropped = dropped;
  if (!plan.changed) return;
  r.quiet_until = now + kCoalesceMs;
  // The new members first, then their slots' health reset: a worker that
  // charges a failure to a slot checks the member's generation first
  // (Exchange::same_member), so the old member's last failures cannot
  // land after the reset.
  lb::write_members(*r.p.slot, r.p.members, r.slots);
  for (size_t i : plan.fresh) {
    const lb::Member& m = r.slots[i];
    uint32_t slow = m.source < r.p.cfg->sources.size() ? r.p.cfg->sources[m.source].slow_start_ms : 0;
    reset_server(r.p.servers[i], now, slow);
  }
  apply_admin(r);  // a member that took a fresh slot gets its published state
  size_t n = plan.added.size() + plan.removed.size();
  if (n == 0) return;
  r.p.slot->member_changes.fetch_add(n, std::memory_order_relaxed);
  std::string line = join(plan.added, "+");
  std::string gone = join(plan.removed, "-");
  if (!gone.empty()) line += (line.empty() ? "" : " ") + gone;
  PLOG_NOTICE("pool %s: %s (%s)", pool.c_str(), line.c_str(), why.c_str());
}

// The SRV targets left out by an answer that was used, logged when one
// is left out, for another reason, or no more (found by review: a target
// that stopped resolving was skipped without a word). Not at every answer.
void log_skipped(const PoolRun& r, Source& s, const std::map<std::string, Skipped>& now) {
  const char* pool = r.p.cfg->name.c_str();
  std::string label = s.cfg->label();
  for (const auto& [target, k] : now) {
    auto was = s.skipped.find(target);
    if (was == s.skipped.end() || was->second != k.result)
      PLOG_WARN("pool %s: %s: SRV target %s left out: %s (%s); the other targets serve", pool, label.c_str(),
                target.c_str(), lb::resolve_result_name(k.result), k.why.c_str());
  }
  for (const auto& [target, result] : s.skipped)
    if (!now.count(target))
      PLOG_NOTICE("pool %s: %s: SRV target %s no longer left out", pool, label.c_str(), target.c_str());
  s.skipped.clear();
  for (const auto& [target, k] : now) s.skipped[target] = k.result;
}

void ask(PoolRun& r, Source& s, uint64_t now) {
  const conf::Pool& cfg = *r.p.cfg;
  std::vector<lb::Member> got;
  uint32_t ttl = 0;
  std::string err;
  std::map<std::string, Skipped> skipped;
  lb::ResolveResult res = resolve(r, s, &got, &ttl, &err, &skipped);
  uint64_t done = monotonic_ms();
  r.p.slot->resolve_word.store(done << 8 | (uint64_t)res, std::memory_order_relaxed);
  if (res != lb::ResolveResult::Ok) {
    // Retry sooner than the period, backing off to it.
    s.failures++;
    uint64_t retry = std::min<uint64_t>(cfg.resolve_interval_ms, (uint64_t)cfg.resolve_min_ms << std::min<uint32_t>(s.failures - 1, 16));
    s.next_ms = done + retry;
    PLOG_WARN("pool %s: %s: %s (%s); keeping its last good members (%zu); next try in %llums", cfg.name.c_str(),
              s.cfg->label().c_str(), lb::resolve_result_name(res), err.c_str(), s.good.size(), (unsigned long long)retry);
    return;
  }
  if (s.failures) PLOG_NOTICE("pool %s: %s answers again", cfg.name.c_str(), s.cfg->label().c_str());
  s.failures = 0;
  uint64_t period = std::clamp<uint64_t>((uint64_t)ttl * 1000, cfg.resolve_min_ms, cfg.resolve_max());
  s.next_ms = done + period;
  PLOG_DEBUG("pool %s: %s: %zu address(es), TTL %us: next in %llums", cfg.name.c_str(), s.cfg->label().c_str(),
             got.size(), ttl, (unsigned long long)period);
  s.good = std::move(got);
  s.has_good = true;
  log_skipped(r, s, skipped);
  publish(r, now, s.cfg->label());
}

bool same_member(const lb::Member& a, const lb::Member& b) {
  return a.same_endpoint(b) && a.weight == b.weight && a.backup == b.backup;
}

// An etcd key or value as a log shows it: control bytes as \xNN (a newline
// in a value must not forge a log line: found by review), at most 200 bytes.
std::string loggable(std::string_view s) {
  std::string o;
  for (size_t i = 0; i < s.size() && i < 200; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f || c == '\\') {
      char b[8];
      snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    } else {
      o += (char)c;
    }
  }
  if (s.size() > 200) o += "...";
  return o;
}

// What an etcd source's watch learnt: its members, and the pool's admin keys.
void etcd_update(PoolRun& r, Source& s, const etcd::Update& u, uint64_t now) {
  const std::string& pool = r.p.cfg->name;
  std::string label = s.cfg->label();
  bool members = u.reset, admin = false;
  if (u.reset) {  // a range: the keys not in it are gone
    std::set<std::string> keys;
    for (const etcd::Change& c : u.changes) keys.insert(c.key);
    std::erase_if(s.by_key, [&](const auto& kv) { return !keys.count(kv.first); });
    std::erase_if(s.bad, [&](const auto& kv) { return !keys.count(kv.first); });
    admin = std::erase_if(r.admin, [&](const auto& kv) { return !keys.count(etcd::kAdminDir + kv.first); }) > 0;
    std::erase_if(r.odd_admin, [&](const std::string& id) { return !keys.count(etcd::kAdminDir + id); });
  }
  for (const etcd::Change& c : u.changes) {
    std::string err;
    if (c.key.compare(0, strlen(etcd::kAdminDir), etcd::kAdminDir) == 0) {
      std::string id = c.key.substr(strlen(etcd::kAdminDir));
      etcd::AdminValue a;
      admin = true;
      if (c.deleted) {
        r.admin.erase(id);
        r.odd_admin.erase(id);
        continue;
      }
      std::string canon;
      bool matchable = (etcd::canonical_server(id, &canon) && canon == id) ||
                       std::find(r.p.static_ids.begin(), r.p.static_ids.end(), id) != r.p.static_ids.end();
      if (!matchable && r.odd_admin.insert(id).second)  // once per key (found by review: silently matched nothing)
        PLOG_WARN("pool %s: %s: admin key %s names no server: %s", pool.c_str(), label.c_str(), loggable(c.key).c_str(),
                  canon.empty() ? "expected IP:PORT (or a static server of the pool)"
                                : ("addresses are written " + canon).c_str());
      if (etcd::parse_admin_value(c.value, &a, &err)) {
        r.admin[id] = a;
      } else {
        PLOG_WARN("pool %s: %s: key %s = '%s': %s; ignored", pool.c_str(), label.c_str(), loggable(c.key).c_str(),
                  loggable(c.value).c_str(), loggable(err).c_str());
        r.admin.erase(id);
      }
      continue;
    }
    lb::Member m;
    if (c.deleted || !etcd::member_from_value(c.value, *s.cfg, s.index, &m, &err)) {
      if (!c.deleted && s.bad[c.key] != c.value)
        PLOG_WARN("pool %s: %s: key %s = '%s': %s; skipped", pool.c_str(), label.c_str(), loggable(c.key).c_str(),
                  loggable(c.value).c_str(), loggable(err).c_str());
      if (c.deleted)
        s.bad.erase(c.key);
      else
        s.bad[c.key] = c.value;
      members = s.by_key.erase(c.key) > 0 || members;
      continue;
    }
    s.bad.erase(c.key);
    auto it = s.by_key.find(c.key);
    if (it != s.by_key.end() && same_member(it->second, m)) continue;
    s.by_key[c.key] = m;
    members = true;
  }
  // A fresh read (start, reconnect to a restarted or another cluster,
  // compaction) that finds no member keeps the last ones, as an empty DNS
  // answer does (found by review: an etcd restarted empty emptied every
  // node's pool at once). Keys deleted one by one through the watch do
  // empty the pool: that is someone's decision.
  if (u.reset && s.by_key.empty() && s.has_good && !s.good.empty()) {
    PLOG_WARN("pool %s: %s: a fresh read of etcd finds no member; keeping the last %zu (delete keys to empty the pool)",
              pool.c_str(), label.c_str(), s.good.size());
    members = false;
  }
  r.p.slot->resolve_word.store(monotonic_ms() << 8 | (uint64_t)lb::ResolveResult::Ok, std::memory_order_relaxed);
  if (members) {
    s.good.clear();
    for (const auto& [key, m] : s.by_key) s.good.push_back(m);
    s.has_good = true;
    publish(r, now, label);
  }
  if (admin) apply_admin(r);
}

// An etcd source's turn: what its watch has to do or read.
void follow(PoolRun& r, Source& s, uint64_t now) {
  etcd::Update u;
  bool was_down = s.watch->down();
  s.watch->step(now, &u);
  if (!u.empty()) etcd_update(r, s, u, now);
  if (s.watch->down() != was_down)  // the status page's last_resolve: error while etcd is away
    r.p.slot->resolve_word.store(
        monotonic_ms() << 8 | (uint64_t)(was_down ? lb::ResolveResult::Ok : lb::ResolveResult::Error),
        std::memory_order_relaxed);
}

}  // namespace

std::vector<ResolverPool> resolver_pools(const conf::Site& site, const std::vector<uint32_t>& first_server,
                                         shm::Region& shm) {
  std::vector<ResolverPool> out;
  for (size_t i = 0; i < site.pools.size(); i++) {
    const conf::Pool& p = site.pools[i];
    if (p.sources.empty()) continue;
    ResolverPool r;
    r.cfg = &p;
    r.slot = &shm.pools()[i];
    size_t first = 0;
    while (first < p.servers.size() && p.servers[first].dynamic_slot < 0) r.static_ids.push_back(p.servers[first++].label());
    r.static_servers = &shm.servers()[first_server[i]];
    r.servers = &shm.servers()[first_server[i] + first];
    r.members = &shm.members()[first_server[i] + first];
    r.n = p.servers.size() - first;
    out.push_back(std::move(r));
  }
  return out;
}

void carry_members(const conf::Pool& from_cfg, shm::PoolSlot& from, const shm::MemberSlot* from_members,
                   const conf::Pool& to_cfg, shm::PoolSlot& to, shm::MemberSlot* to_members) {
  std::vector<lb::Member> slots(to_cfg.max_servers);
  size_t kept = 0;
  for (size_t k = 0; k < std::min(from_cfg.max_servers, to_cfg.max_servers); k++) {
    lb::Member m = lb::read_member(from_members[k]);
    if (m.state != lb::MemberState::Active || m.source >= from_cfg.sources.size()) continue;
    // The same source in the new configuration (by its text), else the member goes.
    std::string label = from_cfg.sources[m.source].label();
    auto it = std::find_if(to_cfg.sources.begin(), to_cfg.sources.end(),
                           [&](const conf::UpstreamServer& s) { return s.label() == label; });
    if (it == to_cfg.sources.end()) continue;
    m.source = (uint8_t)(it - to_cfg.sources.begin());
    slots[k] = m;
    kept++;
  }
  lb::write_members(to, to_members, slots);
  to.member_changes.store(from.member_changes.load());
  to.resolve_word.store(from.resolve_word.load());
  if (kept) PLOG_NOTICE("reload: pool %s keeps %zu discovered member(s) until its sources answer", to_cfg.name.c_str(), kept);
}

int run_resolver(std::vector<ResolverPool> pools) {
  pid_t parent = getppid();
  install_helper_signals(on_stop);
  std::vector<PoolRun> runs;
  uint64_t now = monotonic_ms();
  for (ResolverPool& p : pools) {
    PoolRun r;
    r.p = p;
    for (const auto& [ip, port] : p.cfg->resolvers) {
      dns::NameServer ns;
      if (dns::name_server(ip, port, &ns)) r.servers.push_back(ns);
    }
    if (r.servers.empty()) r.servers = dns::system_name_servers();
    for (size_t k = 0; k < p.n; k++) r.slots.push_back(lb::read_member(p.members[k]));  // carried over a reload
    for (size_t s = 0; s < p.cfg->sources.size() && s < 256; s++) {
      Source src;
      src.cfg = &p.cfg->sources[s];
      src.index = (uint8_t)s;
      for (const lb::Member& m : r.slots)
        if (m.state == lb::MemberState::Active && m.source == s) src.good.push_back(m);
      src.has_good = !src.good.empty();
      src.next_ms = now;
      if (src.cfg->discover == conf::UpstreamServer::Discover::Etcd) src.watch = std::make_unique<etcd::Watch>(*p.cfg, *src.cfg);
      r.sources.push_back(std::move(src));
    }
    std::string names;
    for (const Source& s : r.sources)
      if (s.watch) names += (names.empty() ? "" : ", ") + s.cfg->label();
    if (std::any_of(r.sources.begin(), r.sources.end(), [](const Source& s) { return !s.watch; }))
      for (const dns::NameServer& ns : r.servers) names += (names.empty() ? "" : ", ") + ns.text;
    PLOG_INFO("resolver: pool %s: %zu source(s), %zu slot(s), asking %s", p.cfg->name.c_str(), r.sources.size(), p.n,
              names.c_str());
    runs.push_back(std::move(r));
  }
  sigset_t none;
  sigemptyset(&none);
  std::vector<pollfd> fds;
  while (!g_stop && getppid() == parent) {
    now = monotonic_ms();
    uint64_t wake = now + 1000;  // also re-checks the parent once a second
    fds.clear();
    for (PoolRun& r : runs) {
      for (Source& s : r.sources) {
        if (g_stop) break;
        if (s.watch) {
          follow(r, s, monotonic_ms());
          wake = std::min(wake, s.watch->next_ms());
          if (s.watch->fd() >= 0) fds.push_back(pollfd{s.watch->fd(), POLLIN, 0});
          continue;
        }
        if (monotonic_ms() >= s.next_ms) ask(r, s, monotonic_ms());
        wake = std::min(wake, s.next_ms);
      }
      bool waiting = !r.dropped.empty() ||
                     std::any_of(r.slots.begin(), r.slots.end(), [](const lb::Member& m) { return m.state == lb::MemberState::Leaving; });
      if (waiting) {
        publish(r, monotonic_ms(), "cleanup");
        wake = std::min(wake, monotonic_ms() + kCleanupTickMs);
      }
      if (!r.pending.empty()) {
        if (monotonic_ms() >= r.quiet_until) publish(r, monotonic_ms(), std::string(r.pending));
        if (!r.pending.empty()) wake = std::min(wake, r.quiet_until);
      }
    }
    now = monotonic_ms();
    uint64_t wait = wake > now ? wake - now : 0;
    timespec ts{(time_t)(wait / 1000), (long)(wait % 1000) * 1000000};
    if (ppoll(fds.data(), fds.size(), &ts, &none) < 0 && errno != EINTR) {
      PLOG_ERROR("ppoll() failed: %s", strerror(errno));
      return 1;
    }
  }
  PLOG_INFO("resolver stopping");
  return 0;
}

}  // namespace pasture::master
