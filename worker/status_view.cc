#include "worker/status_view.h"

#include <unistd.h>

#include <ctime>

#include "common/health_state.h"
#include "common/membership.h"
#include "worker/runtime.h"

namespace pasture::worker {
namespace {

const char* method_name(conf::BalanceMethod m) {
  switch (m) {
    case conf::BalanceMethod::RoundRobin: return "round_robin";
    case conf::BalanceMethod::LeastConn: return "least_conn";
    case conf::BalanceMethod::Random: return "random";
    case conf::BalanceMethod::Random2: return "random2";
    case conf::BalanceMethod::IpHash: return "ip_hash";
    case conf::BalanceMethod::Hash: return "hash";
    case conf::BalanceMethod::Cookie: return "cookie";
  }
  return "?";
}

const char* admin_state_name(shm::AdminState a) {
  switch (a) {
    case shm::AdminState::Ready: return "ready";
    case shm::AdminState::Drain: return "drain";
    case shm::AdminState::Maint: return "maint";
  }
  return "?";
}

// Series `series` of the ring's samples [first, end).
HistorySeries read_series(const shm::HistoryRing& ring, uint32_t series, uint64_t first, uint64_t end) {
  HistorySeries h;
  if (series >= ring.n_series) return h;
  for (uint64_t k = first; k < end; k++) {
    const shm::HistoryPoint& p = ring.point(k, series);
    h.requests.push_back(p.requests.get());
    h.errors.push_back(p.errors.get());
    h.active.push_back(p.active.get());
    h.p99_us.push_back(p.p99_us.get());
  }
  return h;
}

// A server's health record (ServerSlot's second line).
void read_health(const shm::ServerSlot& slot, const conf::Pool& cfg, uint64_t now_ms, ServerSnap& ss) {
  ss.checked = !cfg.health_check.empty();
  ss.rise = cfg.rise;
  ss.fall = cfg.fall;
  lb::CheckResult c = lb::unpack_check(slot.last_check.load(std::memory_order_relaxed));
  if (c.probed) {
    ss.check = c.ok ? "ok" : "fail";
    ss.check_reason = lb::check_reason_name(c.reason);
    ss.check_code = c.code;
    ss.check_duration_ms = c.duration_ms;
  }
  lb::ProbeCounts pc = lb::probe_progress(slot);
  ss.check_ok = pc.ok;
  ss.check_fail = pc.fail;
  ss.transitions = slot.down_transitions.load(std::memory_order_relaxed);
  uint64_t changed = slot.last_change_ms.load(std::memory_order_relaxed);
  ss.last_change_s = now_ms > changed ? (now_ms - changed) / 1000 : 0;
  ss.downtime_s = lb::total_downtime_ms(slot, now_ms) / 1000;
  ss.down_for_record = lb::down_for_record(slot.down_word.load(std::memory_order_relaxed));
}

void add_classes(uint64_t (&to)[shm::kStatusClasses], const shm::Counter (&from)[shm::kStatusClasses]) {
  for (int i = 0; i < shm::kStatusClasses; i++) to[i] += from[i].get();
}

}  // namespace

void HistSnap::add(const shm::Histogram& h) {
  for (int i = 0; i < shm::kLatencyBuckets; i++) bucket[i] += h.bucket[i].get();
  sum_us += h.sum_us.get();
  count += h.count.get();
}

Snapshot take_snapshot(Worker& w) {
  SnapshotSource src;
  src.site = &w.site();
  src.shm = &w.region();
  src.first_server = &w.pool_first_server();
  src.draining = w.ready_fails();
  src.now_ms = w.now();
  return take_snapshot(src);
}

Snapshot take_snapshot(const SnapshotSource& src) {
  shm::Region& r = *src.shm;
  const shm::LayoutSizes& sz = r.sizes();
  Snapshot s;
  s.generation = r.header().generation.load(std::memory_order_relaxed);
  s.counters_since = r.header().counters_since.load(std::memory_order_relaxed);
  s.now = (uint64_t)time(nullptr);
  s.self_pid = (int)getpid();
  s.draining = src.draining;
  uint64_t now_ms = src.now_ms;

  // Rows: live worker slots, slots whose process is gone but not yet folded
  // (counted all the same), and the retired row.
  std::vector<shm::StatsRow> rows;
  for (uint32_t i = 0; i <= sz.n_workers; i++) {
    shm::StatsRow row = r.stats_row(i);
    if (i < sz.n_workers) {
      const shm::WorkerSlot& ws = r.workers()[i];
      int pid = ws.pid.load(std::memory_order_relaxed);
      if (pid != 0) {
        WorkerSnap k;
        k.slot = (int)i;
        k.pid = pid;
        k.connections = ws.connections.load(std::memory_order_relaxed);
        k.served = ws.requests.load(std::memory_order_relaxed);
        k.generation = ws.generation.load(std::memory_order_relaxed);
        k.respawns = ws.respawns.load(std::memory_order_relaxed);
        uint64_t hb = ws.heartbeat_ms.load(std::memory_order_relaxed);
        k.heartbeat_age_ms = hb && now_ms > hb ? now_ms - hb : 0;
        const shm::WorkerStats& st = row.worker();
        k.accepted = st.accepted.get();
        k.requests = st.requests.get();
        k.bytes_in = st.bytes_in.get();
        k.bytes_out = st.bytes_out.get();
        k.h2_connections = st.h2_connections.get();
        k.h2_streams = st.h2_streams.get();
        k.h2_calm = st.h2_calm.get();
        k.tls_handshakes = st.tls_handshakes.get();
        k.tls_resumed = st.tls_resumed.get();
        k.tls_handshake_errors = st.tls_handshake_errors.get();
        add_classes(k.responses, st.responses);
        k.tunnels = st.tunnels.get();
        s.tunnels += k.tunnels;
        s.connections += k.connections;
        s.workers.push_back(k);
      } else if (row.worker().accepted.get() == 0 && row.worker().requests.get() == 0) {
        continue;  // never used (its pages stay untouched)
      }
    }
    const shm::WorkerStats& st = row.worker();
    s.accepted += st.accepted.get();
    s.requests += st.requests.get();
    s.bytes_in += st.bytes_in.get();
    s.bytes_out += st.bytes_out.get();
    s.h2_connections += st.h2_connections.get();
    s.h2_streams += st.h2_streams.get();
    s.h2_calm += st.h2_calm.get();
    s.tls_handshakes += st.tls_handshakes.get();
    s.tls_resumed += st.tls_resumed.get();
    s.tls_handshake_errors += st.tls_handshake_errors.get();
    add_classes(s.responses, st.responses);
    rows.push_back(row);
  }

  shm::HistoryRing ring = r.history();
  uint64_t h_first = 0, h_end = 0;
  ring.readable(&h_first, &h_end);
  s.history.interval_ms = ring.header().interval_ms.load(std::memory_order_relaxed);
  for (uint64_t k = h_first; k < h_end; k++)
    s.history.time.push_back(std::atomic_ref<uint64_t>(ring.time(k)).load(std::memory_order_relaxed));
  s.history.total = read_series(ring, 0, h_first, h_end);

  const conf::Site& site = *src.site;
  for (size_t pi = 0; pi < site.pools.size(); pi++) {
    bool hosted = false;
    for (const conf::PythonApp& a : site.python_apps) hosted |= a.pool == (int)pi;
    if (hosted) continue;
    const conf::Pool& cfg = site.pools[pi];
    uint32_t first = (*src.first_server)[pi];
    PoolSnap ps;
    ps.name = cfg.name;
    ps.method = method_name(cfg.method);
    ps.health_checked = !cfg.health_check.empty();
    ps.history = read_series(ring, 1 + (uint32_t)pi, h_first, h_end);
    for (const shm::StatsRow& row : rows) {
      const shm::PoolStats& st = row.pool((uint32_t)pi);
      ps.requests += st.requests.get();
      ps.no_server += st.no_server.get();
      ps.retries += st.retries.get();
      ps.budget_refusals += st.budget_refusals.get();
    }
    if (!cfg.sources.empty()) {
      const shm::PoolSlot& pslot = r.pools()[pi];
      ps.discovered = true;
      ps.member_changes = pslot.member_changes.load(std::memory_order_relaxed);
      uint64_t rw = pslot.resolve_word.load(std::memory_order_relaxed);
      ps.last_resolve = rw ? lb::resolve_result_name(lb::ResolveResult(rw & 0xff)) : "";
      ps.last_resolve_age_ms = rw && now_ms > (rw >> 8) ? now_ms - (rw >> 8) : 0;
    }
    for (size_t j = 0; j < cfg.servers.size(); j++) {
      conf::UpstreamServer us = cfg.servers[j];
      const shm::ServerSlot& slot = r.servers()[first + j];
      ServerSnap ss;
      ss.name = us.label();
      bool leaving = false;
      if (us.dynamic_slot >= 0) {  // a discovery slot: a row while it has a member
        lb::Member m = lb::read_member(r.members()[first + j]);
        if (m.state == lb::MemberState::Empty) continue;
        ss.name = m.id();
        us.weight = m.weight;
        us.backup = m.backup;
        leaving = m.state == lb::MemberState::Leaving;
      }
      ss.backup = us.backup;
      ss.weight = us.weight;
      ss.max_conns = us.max_conns;
      uint64_t recovered = slot.recovered_at_ms.load(std::memory_order_relaxed);
      ss.weight_override = slot.weight_override.load(std::memory_order_relaxed);
      ss.effective_weight = lb::effective_weight(ss.weight_override ? ss.weight_override : us.weight, recovered,
                                                 us.slow_start_ms, now_ms);
      ss.state_age_ms = recovered && now_ms > recovered ? now_ms - recovered : 0;
      uint64_t until = slot.down_until_ms.load(std::memory_order_relaxed);
      uint32_t control = slot.control.load(std::memory_order_relaxed);
      ss.admin = admin_state_name(shm::admin_state(control));
      shm::ForcedHealth forced = shm::forced_health(control);
      ss.forced = forced == shm::ForcedHealth::Up ? "up" : forced == shm::ForcedHealth::Down ? "down" : "";
      ss.checks_disabled = control & shm::kChecksDisabled;
      if (leaving)
        ss.state = "leaving";
      else if (us.down)
        ss.state = "disabled";
      else if (forced == shm::ForcedHealth::Down)
        ss.state = "down";
      else if (forced == shm::ForcedHealth::Up)
        ss.state = "up";
      else if (!ss.checks_disabled && (slot.flags.load(std::memory_order_relaxed) & shm::kServerDown))
        ss.state = "down";
      else if (until != 0 && now_ms < until)
        ss.state = "failing";
      if (std::string_view(ss.state) == "up" && shm::admin_state(control) == shm::AdminState::Ready) ps.up++;
      ss.active = slot.active.load(std::memory_order_relaxed);
      read_health(slot, cfg, now_ms, ss);
      ss.history = read_series(ring, 1 + sz.n_pools + first + (uint32_t)j, h_first, h_end);
      ss.sent = slot.requests.load(std::memory_order_relaxed);
      ss.failures = slot.failures.load(std::memory_order_relaxed);
      for (const shm::StatsRow& row : rows) {
        const shm::ServerStats& st = row.server(first + (uint32_t)j);
        ss.selected += st.selected.get();
        ss.tunnels += st.tunnels.get();
        ss.bytes_in += st.bytes_in.get();
        ss.bytes_out += st.bytes_out.get();
        ss.connect_errors += st.connect_errors.get();
        ss.response_errors += st.response_errors.get();
        ss.timeouts += st.timeouts.get();
        ss.retries += st.retries.get();
        add_classes(ss.responses, st.responses);
        ss.connect.add(st.connect);
        ss.ttfb.add(st.ttfb);
        ss.total.add(st.total);
      }
      for (int c = 0; c < shm::kStatusClasses; c++) ps.responses[c] += ss.responses[c];
      for (int b = 0; b < shm::kLatencyBuckets; b++) ps.total.bucket[b] += ss.total.bucket[b];
      ps.total.sum_us += ss.total.sum_us;
      ps.total.count += ss.total.count;
      ps.servers.push_back(std::move(ss));
    }
    s.pools.push_back(std::move(ps));
  }
  return s;
}

}  // namespace pasture::worker
