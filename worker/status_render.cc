#include "worker/status_render.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>

namespace pasture::worker {
namespace {

const char* kClassNames[shm::kStatusClasses] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

void append_u64(std::string& o, uint64_t v) {
  char b[24];
  int n = snprintf(b, sizeof b, "%" PRIu64, v);
  o.append(b, (size_t)n);
}

void append_double(std::string& o, double v) {
  char b[32];
  int n = snprintf(b, sizeof b, "%.6g", v);
  o.append(b, (size_t)n);
}

// JSON string, RFC 8259 escapes.
void json_str(std::string& o, std::string_view s) {
  o += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if ((unsigned char)c < 0x20) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", (unsigned)(unsigned char)c);
      o += b;
    } else {
      o += c;
    }
  }
  o += '"';
}

// One JSON object under construction: `"k": v` pairs with commas.
class Obj {
 public:
  explicit Obj(std::string& o) : o_(o) { o_ += '{'; }
  void key(std::string_view k) {
    if (n_++) o_ += ',';
    json_str(o_, k);
    o_ += ':';
  }
  void typed(std::string_view k, const char* type, uint64_t v) {
    key(k);
    o_ += "{\"type\":\"";
    o_ += type;
    o_ += "\",\"value\":";
    append_u64(o_, v);
    o_ += '}';
  }
  void str(std::string_view k, std::string_view v) {
    key(k);
    json_str(o_, v);
  }
  void classes(std::string_view k, const uint64_t (&c)[shm::kStatusClasses]) {
    key(k);
    Obj m(o_);
    for (int i = 0; i < shm::kStatusClasses; i++) m.typed(kClassNames[i], "counter", c[i]);
    m.close();
  }
  void hist(std::string_view k, const HistSnap& h) {
    key(k);
    Obj m(o_);
    m.key("bounds_us");
    o_ += '[';
    for (int i = 0; i < shm::kLatencyBuckets - 1; i++) {
      if (i) o_ += ',';
      append_u64(o_, shm::kLatencyBoundsUs[i]);
    }
    o_ += "],";
    m.n_++;
    o_ += "\"buckets\":{\"type\":\"counter\",\"value\":[";
    for (int i = 0; i < shm::kLatencyBuckets; i++) {
      if (i) o_ += ',';
      append_u64(o_, h.bucket[i]);
    }
    o_ += "]}";
    m.typed("sum_us", "counter", h.sum_us);
    m.typed("count", "counter", h.count);
    m.key("p50_ms");
    append_double(o_, h.quantile_ms(0.5));
    m.key("p99_ms");
    append_double(o_, h.quantile_ms(0.99));
    m.close();
  }
  // {"type": T, "value": [..]}; `scale` divides each value (µs -> ms).
  template <typename V>
  void typed_array(std::string_view k, const char* type, const std::vector<V>& v, double scale = 0) {
    key(k);
    o_ += "{\"type\":\"";
    o_ += type;
    o_ += "\",\"value\":[";
    for (size_t i = 0; i < v.size(); i++) {
      if (i) o_ += ',';
      if (scale)
        append_double(o_, (double)v[i] / scale);
      else
        append_u64(o_, v[i]);
    }
    o_ += "]}";
  }
  // One history series: per-sample counts of the interval, the active gauge
  // at its end, the interval's p99.
  void series(const HistorySeries& h) {
    typed_array("requests", "gauge", h.requests);
    typed_array("5xx", "gauge", h.errors);
    typed_array("active", "gauge", h.active);
    typed_array("p99_ms", "gauge", h.p99_us, 1000.0);
  }
  void health(const ServerSnap& v) {
    key("health");
    Obj m(o_);
    m.str("check", v.check);
    m.str("check_reason", v.check_reason);
    m.typed("check_code", "gauge", v.check_code);
    m.typed("check_duration_ms", "gauge", v.check_duration_ms);
    m.typed("consecutive_ok", "gauge", v.check_ok);
    m.typed("consecutive_fail", "gauge", v.check_fail);
    m.typed("rise", "gauge", v.rise);
    m.typed("fall", "gauge", v.fall);
    m.key("checked");
    o_ += v.checked ? "true" : "false";
    m.key("down");
    o_ += v.down_for_record ? "true" : "false";
    m.typed("transitions", "counter", v.transitions);
    m.typed("last_change", "age", v.last_change_s);
    m.typed("downtime", "counter", v.downtime_s);
    m.close();
  }
  void close() { o_ += '}'; }

 private:
  std::string& o_;
  int n_ = 0;
};

// "history": the ring of recent samples, oldest first (common/history.h).
void render_history(Obj& top, std::string& o, const Snapshot& s) {
  top.key("history");
  Obj h(o);
  h.typed("interval_ms", "gauge", s.history.interval_ms);
  h.key("time");
  o += '[';
  for (size_t i = 0; i < s.history.time.size(); i++) {
    if (i) o += ',';
    append_u64(o, s.history.time[i]);
  }
  o += ']';
  h.key("total");
  Obj t(o);
  t.series(s.history.total);
  t.close();
  h.key("pools");
  o += '[';
  for (size_t i = 0; i < s.pools.size(); i++) {
    const PoolSnap& p = s.pools[i];
    if (i) o += ',';
    Obj q(o);
    q.str("name", p.name);
    q.series(p.history);
    q.key("servers");
    o += '[';
    for (size_t j = 0; j < p.servers.size(); j++) {
      if (j) o += ',';
      Obj v(o);
      v.str("name", p.servers[j].name);
      v.series(p.servers[j].history);
      v.close();
    }
    o += ']';
    q.close();
  }
  o += ']';
  h.close();
}

}  // namespace

std::string render_json(const Snapshot& s) {
  std::string o;
  o.reserve(4096);
  Obj top(o);
  top.typed("generation", "gauge", s.generation);
  top.typed("uptime", "age", s.now > s.counters_since ? s.now - s.counters_since : 0);
  top.typed("counters_since", "gauge", s.counters_since);
  top.typed("pid", "gauge", (uint64_t)s.self_pid);
  top.str("ready", s.draining ? "draining" : "ready");
  top.typed("connections", "gauge", s.connections);
  top.typed("tunnels", "gauge", s.tunnels);
  top.typed("accepted", "counter", s.accepted);
  top.typed("requests", "counter", s.requests);
  top.classes("responses", s.responses);
  top.typed("bytes_in", "counter", s.bytes_in);
  top.typed("bytes_out", "counter", s.bytes_out);
  top.typed("h2_connections", "counter", s.h2_connections);
  top.typed("h2_streams", "counter", s.h2_streams);
  top.typed("h2_calm", "counter", s.h2_calm);
  top.typed("tls_handshakes", "counter", s.tls_handshakes);
  top.typed("tls_resumed", "counter", s.tls_resumed);
  top.typed("tls_handshake_errors", "counter", s.tls_handshake_errors);
  top.key("workers");
  o += '[';
  for (size_t i = 0; i < s.workers.size(); i++) {
    const WorkerSnap& w = s.workers[i];
    if (i) o += ',';
    Obj k(o);
    k.typed("slot", "gauge", (uint64_t)w.slot);
    k.typed("pid", "gauge", (uint64_t)w.pid);
    k.typed("generation", "gauge", w.generation);
    k.typed("respawns", "counter", w.respawns);
    k.typed("connections", "gauge", w.connections);
    k.typed("tunnels", "gauge", w.tunnels);
    k.typed("served", "counter", w.served);
    k.typed("heartbeat_age_ms", "age", w.heartbeat_age_ms);
    k.typed("accepted", "counter", w.accepted);
    k.typed("requests", "counter", w.requests);
    k.classes("responses", w.responses);
    k.typed("bytes_in", "counter", w.bytes_in);
    k.typed("bytes_out", "counter", w.bytes_out);
    k.typed("h2_connections", "counter", w.h2_connections);
    k.typed("h2_streams", "counter", w.h2_streams);
    k.typed("h2_calm", "counter", w.h2_calm);
    k.typed("tls_handshakes", "counter", w.tls_handshakes);
    k.typed("tls_resumed", "counter", w.tls_resumed);
    k.typed("tls_handshake_errors", "counter", w.tls_handshake_errors);
    k.close();
  }
  o += ']';
  top.key("pools");
  o += '[';
  for (size_t i = 0; i < s.pools.size(); i++) {
    const PoolSnap& p = s.pools[i];
    if (i) o += ',';
    Obj q(o);
    q.str("name", p.name);
    q.str("method", p.method);
    q.typed("servers_up", "gauge", (uint64_t)p.up);
    q.typed("requests", "counter", p.requests);
    q.typed("no_server", "counter", p.no_server);
    q.typed("retries", "counter", p.retries);
    q.typed("budget_refusals", "counter", p.budget_refusals);
    if (p.discovered) {
      q.typed("member_changes", "counter", p.member_changes);
      q.str("last_resolve", p.last_resolve);
      q.typed("last_resolve_age_ms", "age", p.last_resolve_age_ms);
    }
    q.classes("responses", p.responses);
    q.hist("total", p.total);
    q.key("servers");
    o += '[';
    for (size_t j = 0; j < p.servers.size(); j++) {
      const ServerSnap& v = p.servers[j];
      if (j) o += ',';
      Obj m(o);
      m.str("name", v.name);
      m.str("state", v.state);
      m.str("admin", v.admin);
      m.str("health_forced", v.forced);
      m.str("checks", v.checks_disabled ? "disabled" : "enabled");
      m.key("backup");
      o += v.backup ? "true" : "false";
      m.typed("since_recovery_ms", "age", v.state_age_ms);
      m.typed("weight", "gauge", v.weight);
      m.typed("effective_weight", "gauge", v.effective_weight);
      m.typed("max_conns", "gauge", v.max_conns);
      m.typed("active", "gauge", (uint64_t)(v.active > 0 ? v.active : 0));
      m.typed("tunnels", "gauge", v.tunnels);
      m.typed("selected", "counter", v.selected);
      m.typed("sent", "counter", v.sent);
      m.typed("failures", "counter", v.failures);
      m.classes("responses", v.responses);
      m.typed("bytes_in", "counter", v.bytes_in);
      m.typed("bytes_out", "counter", v.bytes_out);
      m.typed("connect_errors", "counter", v.connect_errors);
      m.typed("response_errors", "counter", v.response_errors);
      m.typed("timeouts", "counter", v.timeouts);
      m.typed("retries", "counter", v.retries);
      m.hist("connect", v.connect);
      m.hist("ttfb", v.ttfb);
      m.hist("total", v.total);
      m.health(v);
      m.close();
    }
    o += ']';
    q.close();
  }
  o += ']';
  render_history(top, o, s);
  top.close();
  o += '\n';
  return o;
}

unsigned parse_scope(std::string_view name) {
  if (name == "info") return kScopeInfo;
  if (name == "worker") return kScopeWorker;
  if (name == "pool") return kScopePool;
  if (name == "server") return kScopeServer;
  return 0;
}

namespace {

// Prometheus text format: label values escape \, " and newline.
std::string label_value(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      o += '\\';
      o += c;
    } else if (c == '\n') {
      o += "\\n";
    } else {
      o += c;
    }
  }
  return o;
}

class Prom {
 public:
  explicit Prom(std::string& o) : o_(o) {}
  void family(const char* name, const char* type, const char* help) {
    o_ += "# HELP ";
    o_ += name;
    o_ += ' ';
    o_ += help;
    o_ += "\n# TYPE ";
    o_ += name;
    o_ += ' ';
    o_ += type;
    o_ += '\n';
  }
  void sample(std::string_view name, const std::string& labels, uint64_t v) {
    head(name, labels);
    append_u64(o_, v);
    o_ += '\n';
  }
  void sample_d(std::string_view name, const std::string& labels, double v) {
    head(name, labels);
    append_double(o_, v);
    o_ += '\n';
  }
  // A histogram's samples (the family line is the caller's).
  void hist(const std::string& name, const std::string& labels, const HistSnap& h) {
    uint64_t cum = 0;
    std::string sep = labels.empty() ? "" : labels + ",";
    for (int i = 0; i < shm::kLatencyBuckets; i++) {
      cum += h.bucket[i];
      char le[32];
      if (i == shm::kLatencyBuckets - 1)
        snprintf(le, sizeof le, "+Inf");
      else
        snprintf(le, sizeof le, "%g", (double)shm::kLatencyBoundsUs[i] / 1e6);
      sample(name + "_bucket", sep + "le=\"" + le + "\"", cum);
    }
    sample_d(name + "_sum", labels, (double)h.sum_us / 1e6);
    sample(name + "_count", labels, h.count);
  }

 private:
  void head(std::string_view name, const std::string& labels) {
    o_.append(name.data(), name.size());
    if (!labels.empty()) {
      o_ += '{';
      o_ += labels;
      o_ += '}';
    }
    o_ += ' ';
  }
  std::string& o_;
};

std::string with_class(const std::string& labels, int c) {
  return (labels.empty() ? "" : labels + ",") + "code=\"" + kClassNames[c] + "\"";
}

}  // namespace

std::string render_prometheus(const Snapshot& s, unsigned scopes) {
  if (scopes == 0) scopes = kScopeInfo | kScopeWorker | kScopePool | kScopeServer;
  std::string o;
  o.reserve(8192);
  Prom p(o);
  if (scopes & kScopeInfo) {
    p.family("pasture_generation", "gauge", "Configuration generation (reloads + 1).");
    p.sample("pasture_generation", "", s.generation);
    p.family("pasture_start_time_seconds", "gauge", "When the counters began (start or last clear), unix time.");
    p.sample("pasture_start_time_seconds", "", s.counters_since);
    p.family("pasture_workers", "gauge", "Worker processes alive.");
    p.sample("pasture_workers", "", s.workers.size());
    p.family("pasture_connections", "gauge", "Open client connections.");
    p.sample("pasture_connections", "", s.connections);
    p.family("pasture_tunnels", "gauge", "Upgraded (WebSocket) connections open now.");
    p.sample("pasture_tunnels", "", s.tunnels);
    p.family("pasture_accepted_connections_total", "counter", "Client connections accepted.");
    p.sample("pasture_accepted_connections_total", "", s.accepted);
    p.family("pasture_requests_total", "counter", "Client requests handled.");
    p.sample("pasture_requests_total", "", s.requests);
    p.family("pasture_responses_total", "counter", "Answers sent to clients, by status class.");
    for (int c = 0; c < shm::kStatusClasses; c++) p.sample("pasture_responses_total", with_class("", c), s.responses[c]);
    p.family("pasture_received_bytes_total", "counter", "Bytes read from clients.");
    p.sample("pasture_received_bytes_total", "", s.bytes_in);
    p.family("pasture_sent_bytes_total", "counter", "Response body bytes sent to clients.");
    p.sample("pasture_sent_bytes_total", "", s.bytes_out);
    p.family("pasture_http2_connections_total", "counter", "HTTP/2 client connections (h2c, ALPN h2).");
    p.sample("pasture_http2_connections_total", "", s.h2_connections);
    p.family("pasture_http2_streams_total", "counter", "HTTP/2 streams clients opened.");
    p.sample("pasture_http2_streams_total", "", s.h2_streams);
    p.family("pasture_http2_abuse_total", "counter",
             "HTTP/2 connections ended for abuse (rapid reset, HPACK bomb, floods).");
    p.sample("pasture_http2_abuse_total", "", s.h2_calm);
    p.family("pasture_tls_handshakes_total", "counter", "TLS handshakes completed (resumed ones included).");
    p.sample("pasture_tls_handshakes_total", "", s.tls_handshakes);
    p.family("pasture_tls_resumed_total", "counter", "TLS handshakes that resumed a session by ticket.");
    p.sample("pasture_tls_resumed_total", "", s.tls_resumed);
    p.family("pasture_tls_handshake_errors_total", "counter", "TLS handshakes that failed, timed out or were abandoned.");
    p.sample("pasture_tls_handshake_errors_total", "", s.tls_handshake_errors);
  }
  if (scopes & kScopeWorker) {
    auto each = [&](const char* name, const char* type, const char* help, auto get) {
      p.family(name, type, help);
      for (const WorkerSnap& w : s.workers) p.sample(name, "worker=\"" + std::to_string(w.slot) + "\"", get(w));
    };
    each("pasture_worker_pid", "gauge", "Process id of the worker in this slot.",
         [](const WorkerSnap& w) { return (uint64_t)w.pid; });
    each("pasture_worker_generation", "gauge", "Reload generation the worker was forked for.",
         [](const WorkerSnap& w) { return w.generation; });
    each("pasture_worker_respawns_total", "counter", "Times the slot's process was forked again after exiting.",
         [](const WorkerSnap& w) { return (uint64_t)w.respawns; });
    each("pasture_worker_connections", "gauge", "Open client connections of the worker.",
         [](const WorkerSnap& w) { return (uint64_t)w.connections; });
    each("pasture_worker_tunnels", "gauge", "Upgraded (WebSocket) connections of the worker open now.",
         [](const WorkerSnap& w) { return w.tunnels; });
    each("pasture_worker_accepted_connections_total", "counter", "Connections the worker accepted.",
         [](const WorkerSnap& w) { return w.accepted; });
    each("pasture_worker_requests_total", "counter", "Requests the worker handled.",
         [](const WorkerSnap& w) { return w.requests; });
    each("pasture_worker_http2_streams_total", "counter", "HTTP/2 streams the worker's clients opened.",
         [](const WorkerSnap& w) { return w.h2_streams; });
    each("pasture_worker_tls_handshakes_total", "counter", "TLS handshakes the worker completed.",
         [](const WorkerSnap& w) { return w.tls_handshakes; });
    each("pasture_worker_tls_handshake_errors_total", "counter", "TLS handshakes that failed on the worker.",
         [](const WorkerSnap& w) { return w.tls_handshake_errors; });
    p.family("pasture_worker_heartbeat_age_seconds", "gauge", "Since the worker's event loop last ticked.");
    for (const WorkerSnap& w : s.workers)
      p.sample_d("pasture_worker_heartbeat_age_seconds", "worker=\"" + std::to_string(w.slot) + "\"",
                 (double)w.heartbeat_age_ms / 1000);
  }
  auto pool_label = [](const PoolSnap& q) { return "pool=\"" + label_value(q.name) + "\""; };
  if (scopes & kScopePool) {
    auto each = [&](const char* name, const char* type, const char* help, auto get) {
      p.family(name, type, help);
      for (const PoolSnap& q : s.pools) p.sample(name, pool_label(q), get(q));
    };
    each("pasture_pool_servers_up", "gauge", "Servers of the pool taking requests.",
         [](const PoolSnap& q) { return (uint64_t)q.up; });
    each("pasture_pool_requests_total", "counter", "Requests routed to the pool.",
         [](const PoolSnap& q) { return q.requests; });
    each("pasture_pool_no_server_total", "counter", "Requests answered 503: no usable server.",
         [](const PoolSnap& q) { return q.no_server; });
    each("pasture_pool_retries_total", "counter", "Attempts after the first.",
         [](const PoolSnap& q) { return q.retries; });
    each("pasture_pool_retry_budget_refusals_total", "counter", "Retries the retry budget refused.",
         [](const PoolSnap& q) { return q.budget_refusals; });
    if (std::any_of(s.pools.begin(), s.pools.end(), [](const PoolSnap& q) { return q.discovered; })) {
      p.family("pasture_pool_member_changes_total", "counter", "Discovered members added or removed.");
      for (const PoolSnap& q : s.pools)
        if (q.discovered) p.sample("pasture_pool_member_changes_total", pool_label(q), q.member_changes);
    }
  }
  if (scopes & kScopeServer) {
    auto label = [&](const PoolSnap& q, const ServerSnap& v) {
      return pool_label(q) + ",server=\"" + label_value(v.name) + "\"";
    };
    auto each = [&](const char* name, const char* type, const char* help, auto get) {
      p.family(name, type, help);
      for (const PoolSnap& q : s.pools)
        for (const ServerSnap& v : q.servers) p.sample(name, label(q, v), get(v));
    };
    each("pasture_server_up", "gauge", "1 when the server takes requests.",
         [](const ServerSnap& v) { return (uint64_t)(std::string_view(v.state) == "up"); });
    each("pasture_server_weight", "gauge", "Configured weight.", [](const ServerSnap& v) { return (uint64_t)v.weight; });
    each("pasture_server_effective_weight", "gauge", "Weight with slow start applied.",
         [](const ServerSnap& v) { return (uint64_t)v.effective_weight; });
    each("pasture_server_active", "gauge", "Requests in flight on the server, all workers.",
         [](const ServerSnap& v) { return (uint64_t)(v.active > 0 ? v.active : 0); });
    each("pasture_server_tunnels", "gauge", "Upgraded (WebSocket) connections to the server open now.",
         [](const ServerSnap& v) { return v.tunnels; });
    each("pasture_server_selected_total", "counter", "Times the balancer chose the server.",
         [](const ServerSnap& v) { return v.selected; });
    each("pasture_server_failures_total", "counter", "Failures passive health counted.",
         [](const ServerSnap& v) { return v.failures; });
    p.family("pasture_server_responses_total", "counter", "Responses from the server, by status class.");
    for (const PoolSnap& q : s.pools)
      for (const ServerSnap& v : q.servers)
        for (int c = 0; c < shm::kStatusClasses; c++)
          p.sample("pasture_server_responses_total", with_class(label(q, v), c), v.responses[c]);
    each("pasture_server_sent_bytes_total", "counter", "Request body bytes sent to the server.",
         [](const ServerSnap& v) { return v.bytes_in; });
    each("pasture_server_received_bytes_total", "counter", "Response body bytes received from the server.",
         [](const ServerSnap& v) { return v.bytes_out; });
    each("pasture_server_connect_errors_total", "counter", "Connects refused, unreachable or timed out.",
         [](const ServerSnap& v) { return v.connect_errors; });
    each("pasture_server_response_errors_total", "counter", "Connections reset, closed or invalid while answering.",
         [](const ServerSnap& v) { return v.response_errors; });
    each("pasture_server_timeouts_total", "counter", "Read and send timeouts.",
         [](const ServerSnap& v) { return v.timeouts; });
    each("pasture_server_retries_total", "counter", "Attempts on the server that were retries.",
         [](const ServerSnap& v) { return v.retries; });
    each("pasture_server_down_transitions_total", "counter", "Up to down transitions (health checks or passive).",
         [](const ServerSnap& v) { return v.transitions; });
    each("pasture_server_downtime_seconds_total", "counter", "Seconds down, the current down period included.",
         [](const ServerSnap& v) { return v.downtime_s; });
    each("pasture_server_last_change_seconds", "gauge", "Seconds since the server last went down or up.",
         [](const ServerSnap& v) { return v.last_change_s; });
    // Active checks: only the servers of pools that have them.
    auto checked = [&](const char* name, const char* type, const char* help, auto get) {
      p.family(name, type, help);
      for (const PoolSnap& q : s.pools)
        for (const ServerSnap& v : q.servers)
          if (v.checked) p.sample(name, label(q, v), get(v));
    };
    p.family("pasture_server_check_success", "gauge", "1 when the last health check passed; reason classes the verdict.");
    for (const PoolSnap& q : s.pools)
      for (const ServerSnap& v : q.servers)
        if (v.checked && *v.check)
          p.sample("pasture_server_check_success", label(q, v) + ",reason=\"" + v.check_reason + "\"",
                   (uint64_t)(std::string_view(v.check) == "ok"));
    checked("pasture_server_check_status_code", "gauge", "HTTP status of the last health check; 0 = none.",
            [](const ServerSnap& v) { return (uint64_t)v.check_code; });
    p.family("pasture_server_check_duration_seconds", "gauge", "How long the last health check took.");
    for (const PoolSnap& q : s.pools)
      for (const ServerSnap& v : q.servers)
        if (v.checked) p.sample_d("pasture_server_check_duration_seconds", label(q, v), v.check_duration_ms / 1000.0);
    checked("pasture_server_check_consecutive_ok", "gauge", "Consecutive passed checks (up again at rise).",
            [](const ServerSnap& v) { return (uint64_t)v.check_ok; });
    checked("pasture_server_check_consecutive_fail", "gauge", "Consecutive failed checks (down at fall).",
            [](const ServerSnap& v) { return (uint64_t)v.check_fail; });
    checked("pasture_server_check_rise", "gauge", "Passed checks that bring the server up.",
            [](const ServerSnap& v) { return (uint64_t)v.rise; });
    checked("pasture_server_check_fall", "gauge", "Failed checks that take the server down.",
            [](const ServerSnap& v) { return (uint64_t)v.fall; });
    struct H {
      const char* name;
      const char* help;
      HistSnap ServerSnap::*h;
    };
    for (const H& h : {H{"pasture_server_connect_seconds", "Connect time of new upstream connections.",
                         &ServerSnap::connect},
                       H{"pasture_server_first_byte_seconds", "Server chosen to response head (connect included).",
                         &ServerSnap::ttfb},
                       H{"pasture_server_response_seconds", "Server chosen to response complete.",
                         &ServerSnap::total}}) {
      p.family(h.name, "histogram", h.help);
      for (const PoolSnap& q : s.pools)
        for (const ServerSnap& v : q.servers) p.hist(h.name, label(q, v), v.*h.h);
    }
  }
  return o;
}

}  // namespace pasture::worker
