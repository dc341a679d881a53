// One consistent reading of the shared-memory counters (common/stats.h,
// common/shm_layout.h) for the status app: every worker's row summed, per
// pool and server, with the states and weights the balancers see. Plain
// data; the renderers (status_render.cc) turn it into HTML, typed JSON and
// Prometheus text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/shm_layout.h"
#include "common/stats.h"
#include "conf/model.h"

namespace pasture::worker {

class Worker;

struct HistSnap {
  uint64_t bucket[shm::kLatencyBuckets] = {};
  uint64_t sum_us = 0;
  uint64_t count = 0;
  void add(const shm::Histogram& h);
  double quantile_ms(double q) const { return shm::histogram_quantile(bucket, q) / 1000.0; }
};

// The shared ring of recent samples (common/history.h), oldest first.
struct HistorySeries {
  std::vector<uint32_t> requests, errors, active, p99_us;
};

struct ServerSnap {
  std::string name;       // host:port or unix:/path, as configured; a discovered member's ip:port
  bool backup = false;
  const char* state = "up";  // up, down (health check or forced), failing (passive), disabled (down in config),
                             // leaving (a discovered member gone from its source, finishing what it has)
  const char* admin = "ready";   // admin state: ready, drain, maint (`set server … state`)
  const char* forced = "";       // `set health`: "", "up" or "down"
  bool checks_disabled = false;  // `disable health`
  uint32_t weight_override = 0;  // `set weight`; 0 = none
  uint64_t state_age_ms = 0;  // since it last came back up (0: unknown / never went down)
  uint32_t weight = 0;        // configured
  uint32_t effective_weight = 0;  // with a weight override and slow start applied
  uint32_t max_conns = 0;     // 0 = unlimited
  int32_t active = 0;         // requests in flight, all workers (tunnels included)
  uint64_t tunnels = 0;       // upgraded connections open now, this generation's workers
  uint64_t sent = 0;          // requests sent (ServerSlot::requests; survives reloads)
  uint64_t failures = 0;      // connect errors, timeouts, fail_on statuses (ServerSlot::failures)
  uint64_t selected = 0, bytes_in = 0, bytes_out = 0, connect_errors = 0, response_errors = 0, timeouts = 0,
           retries = 0;
  uint64_t responses[shm::kStatusClasses] = {};
  HistSnap connect, ttfb, total;
  // The health record (ServerSlot's second line, lb::mark_down/mark_up).
  bool checked = false;            // its pool has active checks
  const char* check = "";          // last probe: "ok", "fail", "" (none yet)
  const char* check_reason = "";   // lb::check_reason_name()
  uint32_t check_code = 0;         // status of the last probe; 0: none
  uint32_t check_duration_ms = 0;
  uint32_t rise = 0, fall = 0;     // configured
  uint32_t check_ok = 0, check_fail = 0;  // consecutive
  uint64_t transitions = 0;        // up->down, active and passive
  uint64_t last_change_s = 0;      // since the last transition (or since it was configured)
  uint64_t downtime_s = 0;         // the current down period included
  bool down_for_record = false;    // down by check or passive mark-down (until a success)
  HistorySeries history;
};

struct PoolSnap {
  std::string name;
  std::string method;
  bool health_checked = false;
  uint64_t requests = 0, no_server = 0, retries = 0, budget_refusals = 0;
  uint64_t responses[shm::kStatusClasses] = {};  // summed over its servers
  HistSnap total;                                 // summed over its servers
  int up = 0;                                     // servers that take requests
  // Discovery (conf::Pool::sources): members added or removed so far, and
  // the last resolve: its result ("" = none yet) and age.
  bool discovered = false;
  uint64_t member_changes = 0;
  const char* last_resolve = "";
  uint64_t last_resolve_age_ms = 0;
  std::vector<ServerSnap> servers;
  HistorySeries history;
};

struct WorkerSnap {
  int slot = 0;
  int pid = 0;
  uint32_t connections = 0;
  uint64_t generation = 0;      // the reload generation it was forked for
  uint32_t respawns = 0;        // its slot's process was forked again after exiting
  uint64_t served = 0;          // WorkerSlot::requests (since this process started)
  uint64_t heartbeat_age_ms = 0;
  uint64_t accepted = 0, requests = 0, bytes_in = 0, bytes_out = 0;
  uint64_t h2_connections = 0, h2_streams = 0, h2_calm = 0;
  uint64_t responses[shm::kStatusClasses] = {};
  uint64_t tls_handshakes = 0, tls_resumed = 0, tls_handshake_errors = 0;
  uint64_t tunnels = 0;         // upgraded connections open now
};

struct HistorySnap {
  uint32_t interval_ms = 0;     // 0: off
  std::vector<uint64_t> time;   // unix seconds, one per sample
  HistorySeries total;          // the whole server (PoolSnap/ServerSnap hold theirs)
};

struct Snapshot {
  uint64_t generation = 0;
  uint64_t counters_since = 0;  // unix seconds
  uint64_t now = 0;             // unix seconds
  int self_pid = 0;             // the worker that answered
  bool draining = false;        // the answering worker is draining (/ready says 503)
  // Every worker slot and the retired row summed: all client traffic.
  uint64_t accepted = 0, requests = 0, bytes_in = 0, bytes_out = 0;
  uint64_t h2_connections = 0, h2_streams = 0, h2_calm = 0;
  uint64_t responses[shm::kStatusClasses] = {};
  uint64_t tls_handshakes = 0, tls_resumed = 0, tls_handshake_errors = 0;
  uint32_t connections = 0;
  uint64_t tunnels = 0;             // upgraded connections open now (live workers of this generation)
  std::vector<WorkerSnap> workers;  // live worker slots only
  std::vector<PoolSnap> pools;      // Python app pools left out (their servers are pasture's own)
  HistorySnap history;              // series in the order of `pools`
};

// What a snapshot is read from: the site, its region and the global index
// of each pool's first server (worker::Setup::pool_first_server).
struct SnapshotSource {
  const conf::Site* site = nullptr;
  shm::Region* shm = nullptr;
  const std::vector<uint32_t>* first_server = nullptr;
  bool draining = false;  // the reader drains (or `drain` was asked)
  uint64_t now_ms = 0;    // CLOCK_MONOTONIC ms
};

Snapshot take_snapshot(const SnapshotSource& src);
Snapshot take_snapshot(Worker& w);

}  // namespace pasture::worker
