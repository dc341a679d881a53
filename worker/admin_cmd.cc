#include "worker/admin_cmd.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "common/log.h"
#include "common/membership.h"
#include "worker/status_render.h"

namespace pasture::worker {
namespace {

constexpr std::string_view kHelp =
    "commands:\n"
    "  help\n"
    "  show info | pools | servers [POOL] | stat [json]\n"
    "  set server POOL/SERVER state ready|drain|maint\n"
    "  set weight POOL/SERVER N|N%\n"
    "  set health POOL/SERVER up|down|auto\n"
    "  enable|disable health POOL/SERVER\n"
    "  clear counters\n"
    "  drain [SECONDS]\n";

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) i++;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' && line[j] != '\n') j++;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

AdminResult fail(std::string why) { return {false, "error: " + why + "\n"}; }
AdminResult done(std::string text) { return {true, std::move(text)}; }

bool parse_uint(std::string_view s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (uint64_t)(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

// "app:backends" also answers to "backends".
bool pool_matches(const std::string& name, std::string_view want) {
  if (name == want) return true;
  size_t colon = name.find(':');
  return colon != std::string::npos && std::string_view(name).substr(colon + 1) == want;
}

struct Target {
  const conf::Pool* pool = nullptr;
  const conf::UpstreamServer* server = nullptr;
  shm::PoolSlot* pool_slot = nullptr;
  shm::ServerSlot* slot = nullptr;
  std::string name;  // "pool/server" as configured
};

// POOL/SERVER; SERVER may itself hold '/' (unix:/path): the pool name never does.
bool find_target(const SnapshotSource& src, std::string_view arg, Target* t, std::string* err) {
  size_t slash = arg.find('/');
  if (slash == std::string_view::npos) {
    *err = "expected POOL/SERVER, got '" + std::string(arg) + "'";
    return false;
  }
  std::string_view pool = arg.substr(0, slash), server = arg.substr(slash + 1);
  const conf::Site& site = *src.site;
  for (size_t i = 0; i < site.pools.size(); i++) {
    const conf::Pool& p = site.pools[i];
    if (!pool_matches(p.name, pool)) continue;
    for (size_t j = 0; j < p.servers.size(); j++) {
      uint32_t g = (*src.first_server)[i] + (uint32_t)j;
      std::string label = p.servers[j].label();
      if (p.servers[j].dynamic_slot >= 0) {  // a discovered member: by its ip:port
        lb::Member m = lb::read_member(src.shm->members()[g]);
        if (m.state == lb::MemberState::Empty) continue;
        label = m.id();
      }
      if (label != server) continue;
      t->pool = &p;
      t->server = &p.servers[j];
      t->pool_slot = &src.shm->pools()[i];
      t->slot = &src.shm->servers()[g];
      t->name = p.name + "/" + label;
      return true;
    }
    *err = "pool " + p.name + " has no server " + std::string(server);
    return false;
  }
  *err = "no pool " + std::string(pool);
  return false;
}

void set_bits(std::atomic<uint32_t>& control, uint32_t mask, uint32_t value) {
  uint32_t cur = control.load(std::memory_order_relaxed);
  while (!control.compare_exchange_weak(cur, (cur & ~mask) | value, std::memory_order_relaxed)) {
  }
}

void logged(const std::string& what, const std::string& who) {
  PLOG_NOTICE("admin: %s (by %s)", what.c_str(), who.c_str());
}

// A text table: columns padded to their widest cell.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); c++) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], r[c].size());
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); c++) {
      line += r[c];
      if (c + 1 < r.size()) line.append(width[c] - r[c].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string u(uint64_t v) { return std::to_string(v); }

std::string show_info(const Snapshot& s) {
  std::string since = "?";
  char buf[64];
  time_t t = (time_t)s.counters_since;
  tm tmv{};
  if (gmtime_r(&t, &tmv) && strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv)) since = buf;
  return table({{"generation:", u(s.generation)},
                {"workers:", u(s.workers.size())},
                {"state:", s.draining ? "draining" : "ready"},
                {"connections:", u(s.connections)},
                {"accepted:", u(s.accepted)},
                {"requests:", u(s.requests)},
                {"responses:", "1xx " + u(s.responses[0]) + " 2xx " + u(s.responses[1]) + " 3xx " +
                                   u(s.responses[2]) + " 4xx " + u(s.responses[3]) + " 5xx " + u(s.responses[4]) +
                                   " other " + u(s.responses[5])},
                {"bytes_in:", u(s.bytes_in)},
                {"bytes_out:", u(s.bytes_out)},
                {"counters_since:", since},
                {"pools:", u(s.pools.size())}});
}

std::string show_pools(const Snapshot& s) {
  std::vector<std::vector<std::string>> rows = {
      {"pool", "method", "servers", "up", "requests", "no_server", "retries", "2xx", "5xx"}};
  for (const PoolSnap& p : s.pools)
    rows.push_back({p.name, p.method, u(p.servers.size()), u((uint64_t)p.up), u(p.requests), u(p.no_server),
                    u(p.retries), u(p.responses[1]), u(p.responses[4])});
  return table(rows);
}

// The last probe, "ok 200 3ms fall 1/3", "fail timeout 2000ms rise 0/2"; "-"
// without active checks.
std::string check_text(const ServerSnap& v) {
  if (!v.checked) return "-";
  if (!*v.check) return "pending";
  std::string t = std::string(v.check) + " " + (v.check_code ? u(v.check_code) : std::string(v.check_reason)) + " " +
                  u(v.check_duration_ms) + "ms";
  if (std::string_view(v.state) == "down")
    t += " rise " + u(v.check_ok) + "/" + u(v.rise);
  else if (v.check_fail)
    t += " fall " + u(v.check_fail) + "/" + u(v.fall);
  return t;
}

std::string show_servers(const Snapshot& s, std::string_view only) {
  std::vector<std::vector<std::string>> rows = {{"pool", "server", "state", "admin", "health", "weight", "active",
                                                 "selected", "2xx", "4xx", "5xx", "errors", "check", "downs",
                                                 "downtime", "changed"}};
  for (const PoolSnap& p : s.pools) {
    if (!only.empty() && !pool_matches(p.name, only)) continue;
    for (const ServerSnap& v : p.servers) {
      std::string health = p.health_checked ? (v.checks_disabled ? "checks off" : "checked") : "-";
      if (*v.forced) health = std::string("forced ") + v.forced;
      std::string weight = u(v.effective_weight);
      if (v.effective_weight != v.weight) weight += "/" + u(v.weight);
      rows.push_back({p.name, v.name, v.state, v.admin, health, weight, u((uint64_t)std::max(v.active, 0)),
                      u(v.selected), u(v.responses[1]), u(v.responses[3]), u(v.responses[4]),
                      u(v.connect_errors + v.response_errors + v.timeouts), check_text(v), u(v.transitions),
                      u(v.downtime_s) + "s", u(v.last_change_s) + "s ago"});
    }
  }
  return table(rows);
}

// HAProxy's `show stat`: CSV, a header line starting with "# ", one line per
// server and one per pool (server "POOL").
std::string show_stat_csv(const Snapshot& s) {
  std::string out =
      "# pool,server,state,admin,weight,effective_weight,active,selected,sent,failures,"
      "1xx,2xx,3xx,4xx,5xx,other,bytes_in,bytes_out,connect_errors,response_errors,timeouts,retries,"
      "p50_ms,p99_ms\n";
  char ms[64];
  for (const PoolSnap& p : s.pools) {
    for (const ServerSnap& v : p.servers) {
      out += p.name + "," + v.name + "," + v.state + "," + v.admin + "," + u(v.weight) + "," +
             u(v.effective_weight) + "," + u((uint64_t)std::max(v.active, 0)) + "," + u(v.selected) + "," +
             u(v.sent) + "," + u(v.failures);
      for (uint64_t c : v.responses) out += "," + u(c);
      out += "," + u(v.bytes_in) + "," + u(v.bytes_out) + "," + u(v.connect_errors) + "," + u(v.response_errors) +
             "," + u(v.timeouts) + "," + u(v.retries);
      snprintf(ms, sizeof ms, ",%.3f,%.3f\n", v.total.quantile_ms(0.5), v.total.quantile_ms(0.99));
      out += ms;
    }
    out += p.name + ",POOL," + (p.up ? "up" : "down") + ",,,,,," + u(p.requests) + "," + u(p.no_server);
    for (uint64_t c : p.responses) out += "," + u(c);
    out += ",,,,,," + u(p.retries);
    snprintf(ms, sizeof ms, ",%.3f,%.3f\n", p.total.quantile_ms(0.5), p.total.quantile_ms(0.99));
    out += ms;
  }
  return out;
}

AdminResult show(const SnapshotSource& src, const std::vector<std::string_view>& w) {
  if (w.size() < 2) return fail("show what? info, pools, servers or stat");
  Snapshot s = take_snapshot(src);
  if (w[1] == "info" && w.size() == 2) return done(show_info(s));
  if (w[1] == "pools" && w.size() == 2) return done(show_pools(s));
  if (w[1] == "servers" && w.size() <= 3) return done(show_servers(s, w.size() == 3 ? w[2] : ""));
  if (w[1] == "stat" && w.size() == 2) return done(show_stat_csv(s));
  if (w[1] == "stat" && w.size() == 3 && w[2] == "json") return done(render_json(s) + "\n");
  return fail("show info | pools | servers [POOL] | stat [json]");
}

AdminResult set_state(const Target& t, std::string_view state, const std::string& who) {
  shm::AdminState a;
  if (state == "ready")
    a = shm::AdminState::Ready;
  else if (state == "drain")
    a = shm::AdminState::Drain;
  else if (state == "maint")
    a = shm::AdminState::Maint;
  else
    return fail("state is ready, drain or maint");
  set_bits(t.slot->control, shm::kAdminStateMask, (uint32_t)a);
  std::string what = "server " + t.name + " state " + std::string(state);
  logged("set " + what, who);
  return done(what + "\n");
}

AdminResult set_weight(const Target& t, std::string_view arg, const std::string& who) {
  bool percent = !arg.empty() && arg.back() == '%';
  uint64_t n = 0;
  if (!parse_uint(percent ? arg.substr(0, arg.size() - 1) : arg, percent ? 100000 : 65535, &n) || n == 0)
    return fail("weight is N (1-65535) or N% of the configured weight (use state drain or maint for none)");
  uint64_t w = percent ? (t.server->weight * n + 50) / 100 : n;
  w = std::clamp<uint64_t>(w, 1, 65535);
  // The configured weight again: no override (a reload then follows the config).
  uint32_t stored = w == t.server->weight ? 0 : (uint32_t)w;
  t.slot->weight_override.store(stored, std::memory_order_relaxed);
  t.pool_slot->weights_epoch.fetch_add(1, std::memory_order_release);
  std::string what = "weight " + t.name + " " + u(w) + " (configured " + u(t.server->weight) + ")";
  logged("set " + what, who);
  return done(what + "\n");
}

AdminResult set_health(const Target& t, std::string_view arg, const std::string& who) {
  shm::ForcedHealth f;
  if (arg == "up")
    f = shm::ForcedHealth::Up;
  else if (arg == "down")
    f = shm::ForcedHealth::Down;
  else if (arg == "auto")
    f = shm::ForcedHealth::None;
  else
    return fail("health is up, down or auto");
  set_bits(t.slot->control, shm::kForcedHealthMask, (uint32_t)f << shm::kForcedHealthShift);
  std::string what = "health " + t.name + " " + std::string(arg);
  logged("set " + what, who);
  return done(what + "\n");
}

AdminResult checks(const Target& t, bool enable, const std::string& who) {
  set_bits(t.slot->control, shm::kChecksDisabled, enable ? 0 : shm::kChecksDisabled);
  std::string what = std::string(enable ? "enable" : "disable") + " health " + t.name;
  if (t.pool->health_check.empty()) what += " (the pool has no health_check)";
  logged(what, who);
  return done(what + "\n");
}

AdminResult clear_counters(const SnapshotSource& src, const std::string& who) {
  shm::Region& r = *src.shm;
  // Each worker zeroes its own row on its next tick, the master the retired
  // row (the one writer of each); the balancer's own counts are atomics.
  r.header().counters_since.store((uint64_t)time(nullptr), std::memory_order_relaxed);
  r.header().clear_epoch.fetch_add(1, std::memory_order_release);
  for (uint32_t i = 0; i < r.sizes().n_servers; i++) {
    r.servers()[i].requests.store(0, std::memory_order_relaxed);
    r.servers()[i].failures.store(0, std::memory_order_relaxed);
  }
  logged("clear counters", who);
  return done("counters cleared\n");
}

AdminResult drain(const SnapshotSource& src, const std::vector<std::string_view>& w, const std::string& who) {
  uint64_t secs = kDrainDefaultSeconds;
  if (w.size() > 2 || (w.size() == 2 && !parse_uint(w[1], 86400, &secs))) return fail("drain [SECONDS]");
  uint64_t at = src.now_ms + secs * 1000;
  uint64_t expected = 0;
  if (!src.shm->header().drain_at_ms.compare_exchange_strong(expected, at, std::memory_order_relaxed))
    return done("already draining\n");
  logged("drain: /ready fails; stopping in " + u(secs) + " s", who);
  return done("draining: /ready answers 503; the server stops gracefully in " + u(secs) + " s\n");
}

}  // namespace

bool admin_command_writes(std::string_view line) {
  std::vector<std::string_view> w = words(line);
  if (w.empty()) return false;
  return w[0] != "show" && w[0] != "help";
}

AdminResult execute_admin(const SnapshotSource& src, std::string_view line, const std::string& who) {
  std::vector<std::string_view> w = words(line);
  if (w.empty() || w[0] == "help") return done(std::string(kHelp));
  if (src.shm->header().superseded.load(std::memory_order_acquire))
    return fail("this worker serves a configuration a reload is replacing: ask again (a new worker answers)");
  if (w[0] == "show") return show(src, w);
  if (w[0] == "clear" && w.size() == 2 && w[1] == "counters") return clear_counters(src, who);
  if (w[0] == "drain") return drain(src, w, who);
  Target t;
  std::string err;
  if (w[0] == "set" && w.size() == 5 && w[1] == "server" && w[3] == "state") {
    if (!find_target(src, w[2], &t, &err)) return fail(err);
    return set_state(t, w[4], who);
  }
  if (w[0] == "set" && w.size() == 4 && (w[1] == "weight" || w[1] == "health")) {
    if (!find_target(src, w[2], &t, &err)) return fail(err);
    return w[1] == "weight" ? set_weight(t, w[3], who) : set_health(t, w[3], who);
  }
  if ((w[0] == "enable" || w[0] == "disable") && w.size() == 3 && w[1] == "health") {
    if (!find_target(src, w[2], &t, &err)) return fail(err);
    return checks(t, w[0] == "enable", who);
  }
  return {false, "error: unknown command '" + std::string(line.substr(0, 200)) + "'\n" + std::string(kHelp)};
}

}  // namespace pasture::worker
