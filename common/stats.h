// Traffic counters in shared memory: one exact view of every worker.
//
// Each worker slot owns one row of counters and is its only writer, so a
// count is a relaxed load and store on a line no other process writes (no
// lock prefix, no cache-line contention); readers sum the rows. A row's
// counters are plain uint64_t accessed through std::atomic_ref, so the
// region's untouched rows stay untouched pages (nothing is constructed).
//
// Row layout, per worker slot, then once more for the retired row:
//   [WorkerStats][PoolStats x n_pools][ServerStats x n_servers]
// The retired row holds what reaped workers counted (Region::reclaim_worker
// folds a row into it, master only), so totals never go down when a worker
// dies or is recycled. `clear counters` bumps StatsHeader::clear_epoch; each
// worker zeroes its own row when it sees the new epoch (its only writer),
// the master zeroes the retired row.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pasture::shm {

#ifndef PASTURE_COUNTERS
#define PASTURE_COUNTERS 1
#endif
// False only in scripts/bench's comparison build (cmake -DPASTURE_COUNTERS=OFF):
// add() and observe() do nothing and the latency clock is not read.
inline constexpr bool kCounting = PASTURE_COUNTERS;

// A counter written by one process. add() is a load and a store: correct
// because nobody else writes it; readers may see it one add late.
struct Counter {
  uint64_t v;
  void add(uint64_t n = 1) {
    if constexpr (!kCounting) return;
    std::atomic_ref<uint64_t> a(v);
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(v)).load(std::memory_order_relaxed); }
  void set(uint64_t n) { std::atomic_ref<uint64_t>(v).store(n, std::memory_order_relaxed); }
};
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);

// Latency buckets: upper bounds in microseconds, 1-2-5 steps from 100 us to
// 60 s, then +Inf. Cumulative histograms are made when read (Prometheus
// `le`); rows store per-bucket counts.
inline constexpr int kLatencyBuckets = 19;
inline constexpr uint64_t kLatencyBoundsUs[kLatencyBuckets - 1] = {
    100,     200,     500,     1000,    2000,     5000,     10000,    20000,    50000,
    100000,  200000,  500000,  1000000, 2000000,  5000000,  10000000, 20000000, 60000000};
int latency_bucket(uint64_t us);

struct Histogram {
  Counter bucket[kLatencyBuckets];
  Counter sum_us;
  Counter count;
  void observe(uint64_t us) {
    if constexpr (!kCounting) return;
    bucket[latency_bucket(us)].add();
    sum_us.add(us);
    count.add();
  }
};

// Status classes: 1xx .. 5xx, then anything else (and no status at all).
inline constexpr int kStatusClasses = 6;
inline int status_class(int status) { return status >= 100 && status < 600 ? status / 100 - 1 : 5; }

// Per worker: its clients.
struct alignas(64) WorkerStats {
  Counter accepted;                    // connections accepted
  Counter requests;                    // request heads handled
  Counter responses[kStatusClasses];   // answers sent to clients, by class
  Counter bytes_in;                    // bytes read from clients
  Counter bytes_out;                   // response body bytes sent to clients
  Counter clear_epoch_seen;            // StatsHeader::clear_epoch this row was last cleared for
  Counter h2_connections;              // HTTP/2 connections (h2c by prior knowledge, ALPN h2)
  Counter h2_streams;                  // HTTP/2 streams opened by clients
  Counter h2_calm;                     // HTTP/2 connections ended for abuse (GOAWAY ENHANCE_YOUR_CALM, floods)
  // TLS listeners (after clear_epoch_seen: in what was the row's padding).
  Counter tls_handshakes;              // completed, resumed ones included
  Counter tls_resumed;                 // of those, resumed by a session ticket
  Counter tls_handshake_errors;        // failed, timed out, or abandoned after the first byte
  Counter tunnels;                     // gauge: upgraded connections open now (see gauge_dec)
};

// Per pool: what no single server accounts for.
struct alignas(64) PoolStats {
  Counter requests;          // requests routed to the pool
  Counter no_server;         // answered 503: no usable server
  Counter retries;           // attempts after the first
  Counter budget_refusals;   // retries the retry budget refused
};

// Per upstream server (global server index).
struct alignas(64) ServerStats {
  Counter selected;            // times the balancer chose it (first attempts and retries)
  Counter responses[kStatusClasses];
  Counter bytes_in;            // request body bytes sent to it
  Counter bytes_out;           // response body bytes received from it
  Counter connect_errors;      // refused, unreachable, connect timeout
  Counter response_errors;     // reset, closed or invalid before or while answering
  Counter timeouts;            // read/send timeouts
  Counter retries;             // attempts on it that were retries
  Histogram connect;           // connect time of new connections (a reused one has none)
  Histogram ttfb;              // server taken -> response head (connect included)
  Histogram total;             // taken -> response complete
  Counter tunnels;             // gauge: upgraded connections to it open now (this worker's)
};

// The gauges in rows (`tunnels`) are the row's process's own state, not
// traffic: never folded into the retired row nor carried across a reload
// (the tunnels of a dead worker or an older generation are not ours to
// show), and kept by `clear counters` (a drop below zero would wrap).
inline void gauge_dec(Counter& c) {
  if (c.get() > 0) c.set(c.get() - 1);
}

// Every stats struct above is a run of Counters (padding included, always
// zero): folding, clearing and carrying walk them as one array.
template <typename T>
Counter* counter_array(T& t) {
  return reinterpret_cast<Counter*>(&t);
}
template <typename T>
constexpr size_t counter_count() {
  return sizeof(T) / sizeof(Counter);
}
// Every counter of `t` to 0, the padding's too. A copy made outside the
// region needs it: value-initialising a vector's elements zeroes their
// members only (found by review 31: a reload's carried totals walked heap
// garbage in PoolStats' padding and added it to the new region's row).
template <typename T>
void zero_counters(T& t) {
  Counter* c = counter_array(t);
  for (size_t i = 0; i < counter_count<T>(); i++) c[i].set(0);
}

struct StatsSizes {
  uint32_t n_pools = 0, n_servers = 0, n_workers = 0;
  size_t row_bytes() const {
    return sizeof(WorkerStats) + n_pools * sizeof(PoolStats) + n_servers * sizeof(ServerStats);
  }
  size_t total() const { return (size_t)(n_workers + 1) * row_bytes(); }  // + the retired row
};

// One row's view. `base` points at a row inside the region.
struct StatsRow {
  char* base = nullptr;
  uint32_t n_pools = 0;
  WorkerStats& worker() const { return *reinterpret_cast<WorkerStats*>(base); }
  PoolStats& pool(uint32_t p) const {
    return reinterpret_cast<PoolStats*>(base + sizeof(WorkerStats))[p];
  }
  ServerStats& server(uint32_t s) const {
    return reinterpret_cast<ServerStats*>(base + sizeof(WorkerStats) + n_pools * sizeof(PoolStats))[s];
  }
};

// Adds every counter of `from` into `to` and zeroes `from`'s (both rows of
// one region; the caller is the only writer of both). `from`'s
// clear_epoch_seen is kept.
void fold_row(const StatsRow& from, const StatsRow& to, uint32_t n_pools, uint32_t n_servers);
// Zeroes a row's counters, keeping clear_epoch_seen (and the gauges with
// `keep_gauges`: a live worker's `clear counters`).
void clear_row(const StatsRow& row, uint32_t n_pools, uint32_t n_servers, bool keep_gauges = false);
// Adds `from` into `to` (different regions, a reload's carry-over: the
// master, with the from-row's writers possibly still running: a snapshot).
void add_server(const ServerStats& from, ServerStats& to);
void add_pool(const PoolStats& from, PoolStats& to);
void add_worker(const WorkerStats& from, WorkerStats& to);

// Estimated quantile q (0..1) of a histogram, interpolated inside its
// bucket, in microseconds; 0 when empty.
double histogram_quantile(const uint64_t (&buckets)[kLatencyBuckets], double q);

}  // namespace pasture::shm
