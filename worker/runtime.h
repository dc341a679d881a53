// Per-worker runtime state: the loop, the pools as this process sees them,
// buffer free lists and timers. One instance per worker process.
#pragma once

#include <sys/epoll.h>
#include <uv.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/balancer.h"
#include "common/hash_key.h"
#include "common/accept_share.h"
#include "common/shm_layout.h"
#include "conf/model.h"
#include "worker/access_log.h"
#include "worker/http_head.h"
#include "worker/stream_io.h"
#include "worker/timers.h"
#include "worker/upstream_tls_context.h"
#include "worker/worker.h"

namespace pasture::worker {

class H2Conn;


// The latency histograms' clock (uv_hrtime, a vDSO call), read at each
// stamp: a reading cached per loop turn (tried on 2026-12-04, 0.07 µs a
// request) charged whatever else the turn did to the timings taken after it
// (an inline app's close() on a client's disconnect: 0.5 s on an upstream
// that answered in 0.6 ms) and made every connect finished within its turn
// 0 µs (review 57). 0 in the build without counters, where nothing reads it.
inline uint64_t stats_clock_ns() {
  if constexpr (shm::kCounting) return uv_hrtime();
  return 0;
}

class UpstreamConn;
class ClientConn;
class EdgeSocket;
class AdminSocket;

// One upstream server as seen by this worker, with its keep-alive pool.
struct Target {
  ResolvedServer addr;
  uint32_t shm_index = 0;
  // A 1/8 moving average of its answer times in this worker (µs from the
  // server taken to the answer's end, the `total` histogram's figure: what
  // the next answer of a pipelined batch takes to complete).
  int64_t answer_us = 0;
  void note_answer(uint64_t us) { answer_us += ((int64_t)us - answer_us) / 8; }
  // How long an idle worker waits for its next answer to a pipelined
  // request before it writes the answers held before it: twice its recent
  // answer time, none over kHoldWaitMaxUs (answers that far apart are not
  // worth a wait; one slow answer turns it off for a while).
  static constexpr uint64_t kHoldWaitMaxUs = 5000;
  uint32_t hold_wait_us() const {
    uint64_t g = 2 * (uint64_t)answer_us;
    return g > kHoldWaitMaxUs ? 0 : (uint32_t)g;
  }
  std::vector<UpstreamConn*> idle;  // most recently used last
  // An https:// server: the last TLS session it issued, offered by the
  // next connection to resume (UpstreamTlsContext::new_ssl); owned.
  SSL_SESSION* tls_session = nullptr;
  std::string label;  // host:port (static: as configured; discovered: the member's ip:port)
  uint32_t member_generation = 0;  // a discovery slot: the shm::MemberSlot generation `addr` is for
  bool member_gone = false;        // a discovery slot whose member left (or none): no connection is pooled
};

struct PoolRt {
  const conf::Pool* cfg = nullptr;
  int index = 0;
  lb::PoolState* state = nullptr;  // built by the master before fork (Setup::pool_states)
  std::unique_ptr<lb::Balancer> balancer;
  lb::HashKeySpec hash_key;  // method hash
  bool hosted = false;       // balances over the master's Python app processes
  // Retry budget, per worker: retries in flight vs requests in flight.
  uint32_t in_flight = 0;
  uint32_t retries_in_flight = 0;
  uint64_t budget_logged_ms = 0;
  std::vector<Target> targets;
  // The pool has https:// servers: their client context, built at worker
  // start; null if that failed (their connects fail, logged once).
  std::unique_ptr<UpstreamTlsContext> tls;
  uint64_t members_seen = 0;  // the state's members_epoch_seen the targets were refreshed for
};

class Worker {
 public:
  Worker(const Setup& setup, uv_loop_t* loop);
  ~Worker();

  uv_loop_t* loop() const { return loop_; }
  const conf::Site& site() const { return *site_; }
  bool embed_apps() const { return embed_apps_; }  // Python apps run in this process
  uint64_t now() const { return uv_now(loop_); }
  Timers& timers() { return timers_; }
  std::vector<PoolRt>& pools() { return pools_; }
  // Before a pick: a pool with discovery takes the latest membership
  // (lb::PoolState::sync_members) and its targets follow (addresses, idle
  // connections of members that left or were replaced). One acquire load
  // when nothing changed.
  void sync_pool(PoolRt& p) {
    p.state->sync_members();
    if (p.state->members_epoch_seen != p.members_seen) refresh_targets(p);
  }
  // On the tick: pools with discovery sources follow a change even when no
  // request picks, so idle connections to a member that left close.
  void sync_discovered() {
    for (PoolRt& p : pools_)
      if (!p.cfg->sources.empty()) sync_pool(p);
  }
  shm::WorkerSlot* slot() { return slot_; }
  shm::Region& region() { return *shm_; }
  // This worker's row of traffic counters (common/stats.h): it is their only writer.
  shm::WorkerStats& stats() { return stats_.worker(); }
  shm::PoolStats& pool_stats(int pool) { return stats_.pool((uint32_t)pool); }
  shm::ServerStats& server_stats(uint32_t global_server) { return stats_.server(global_server); }
  // On the tick: a `clear counters` the master announced zeroes this row.
  void check_clear_counters();
  // This worker's held counts (shm::HeldCount), by global server index.
  shm::HeldCount& held(uint32_t server) { return held_[server]; }
  // Its output goes at the end of this loop turn, after every callback of
  // the poll (cancel_send when it is deleted before).
  void defer_send(TurnSender* s);
  void cancel_send(TurnSender* s) {
    std::erase(turn_sends_, s);
    std::replace(turn_batch_.begin(), turn_batch_.end(), s, static_cast<TurnSender*>(nullptr));
  }
  lb::Random& rng() { return rng_; }
  AccessLog& access_log() { return access_log_; }
  // stderr, for translogger filters with setup_console_handler (open only when the site has one).
  AccessLog& console_log() { return console_log_; }
  void reopen_logs();  // SIGUSR1

  // A read buffer shared by every stream of this worker: reads are processed
  // synchronously, and bytes that must outlive the callback are copied out.
  static void alloc_cb(uv_handle_t*, size_t, uv_buf_t* buf);
  static constexpr size_t kReadBufferSize = 64 * 1024;
  static char* read_buffer();

  // Client sockets (worker/edge_socket.h) share the listeners' epoll set.
  // watch_socket adds one (or fails as epoll_ctl did), with EPOLLOUT if
  // `out`; watch_output adds EPOLLOUT to one added without it (EPOLL_CTL_MOD,
  // which reports a readiness already there: no edge is lost); forget_socket
  // drops it from the descriptor table before its close; socket_ready reads
  // it at the end of this loop turn; defer_free frees a closed connection
  // then (callers may still be on the stack when it closes): fn(p).
  int watch_socket(int fd, EdgeSocket* s, bool out);  // 0 or a negative errno
  int watch_output(int fd);                            // 0 or a negative errno
  void forget_socket(int fd, EdgeSocket* s);
  void socket_ready(EdgeSocket* s);
  // A socket whose output is held back (EdgeSocket::hold): released after
  // kHoldMs, or by a poll that finds nothing to do once its owner has
  // completed no answer for as long as it may wait for the next
  // (SocketOwner::hold_wait: while the next answer is awaited from an
  // upstream server, twice that server's recent answer time,
  // Target::hold_wait_us; else not at all). A poll that would block waits
  // no longer than the next hold's wait.
  static constexpr uint64_t kHoldMs = 10;
  void socket_held(EdgeSocket* s);
  void defer_free(void (*fn)(void*), void* p);
  // Frees what defer_free queued, at the end of each loop turn.
  void free_closed();
  // After the loop stopped: the pools' idle connections closed and all of
  // it freed, so that nothing is left that only the Worker's vectors
  // pointed to (review 33: valgrind called such a connection lost).
  void finish();

  // Free lists, so steady-state requests allocate nothing and idle
  // connections hold no buffers.
  std::vector<HeaderSpan>* take_spans();
  void give_spans(std::vector<HeaderSpan>* v);
  std::string* take_buf();
  void give_buf(std::string* s);

  // Connection bookkeeping for graceful drain.
  void client_opened(ClientConn* c);
  void client_closed(ClientConn* c);
  bool draining() const { return draining_; }
  // /ready answers 503: this worker drains, or `drain` was asked (ShmHeader::drain_at_ms).
  bool ready_fails() const {
    return draining_ || shm_->header().drain_at_ms.load(std::memory_order_relaxed) != 0;
  }
  const std::vector<uint32_t>& pool_first_server() const { return pool_first_server_; }
  // Draining, or the next request to finish is the last before
  // max_requests recycles this worker: answers say Connection: close.
  bool closing_soon() const { return draining_ || (max_requests_ && requests_ + 1 >= max_requests_); }
  // Stop accepting, close idle connections after drain_idle_grace_ms() and
  // busy ones after their response, exit when none is left (or after
  // graceful_timeout).
  void start_drain();
  // drain_idle_grace, never more than keepalive_timeout: a client may not
  // count on an idle connection for longer than that anyway.
  uint32_t drain_idle_grace_ms() const {
    return std::min(site_->server.drain_idle_grace_ms, site_->server.keepalive_timeout_ms);
  }
  size_t clients() const { return clients_.size(); }

  // Watch the shared listen sockets through a private epoll instance
  // (level-triggered, one waiting worker woken: see on_listener); the
  // connections' sockets join the same instance (watch_socket). Returns
  // false on error.
  bool start_accepting(const std::vector<int>& listen_fds);
  // The worker's loop, after start_accepting, until stop(): one epoll_wait
  // on the worker's own set per turn. libuv's descriptor is in that set
  // (its timers, signals, the admin socket, the app threads' wake-ups), and
  // its loop runs a non-blocking turn when that descriptor is readable or a
  // libuv timer is due; the sockets' events never pass through libuv.
  void run();
  void stop();  // run() returns after this turn (uv_stop for a libuv turn in progress)
  // reuse_port: this worker's own SO_REUSEPORT sockets, bound (not yet
  // listening) while it may still hold CAP_NET_BIND_SERVICE.
  void bind_own_sockets(const std::vector<int>& listen_fds);
  // The admin socket (worker/admin_socket.h): accepted until the worker drains.
  void start_admin(int fd);
  // Count a finished request; past max_requests the worker drains and exits
  // (the master starts a fresh one), as gunicorn's max_requests.
  void note_request();

 private:
  void maybe_exit();
  void refresh_targets(PoolRt& p);

  uv_loop_t* loop_;
  const conf::Site* site_;
  shm::WorkerSlot* slot_;
  shm::Region* shm_;
  shm::StatsRow stats_;
  shm::HeldCount* held_;
  lb::WyRand rng_;  // seeded per process after fork
  AccessLog access_log_;
  AccessLog console_log_;
  std::vector<PoolRt> pools_;
  std::vector<uint32_t> pool_first_server_;
  AdminSocket* admin_ = nullptr;
  Timers timers_;
  std::vector<std::vector<HeaderSpan>*> free_spans_;
  std::vector<std::string*> free_bufs_;
  std::vector<ClientConn*> clients_;  // unordered; ClientConn keeps its index
  bool on_events(const epoll_event* evs, int n);
  // woken: by its event, not by a kick. True when it stopped at the batch
  // bound and may accept more now.
  bool on_listener(int lfd, bool woken = true);
  void balance(bool drained, bool own);
  void write_kick();
  void on_kick();
  bool watch_listener(int fd);  // EPOLL_CTL_ADD, exclusive when kick_fd_ >= 0
  int kick_fd_ = -1;            // Setup::accept_kick_fd; -1 when listeners wake every worker
  bool kick_due_ = false;       // a connection this worker was woken for is left queued
  void end_turn();  // the ready sockets, the turn's sends, the closed connections freed
  using Share = shm::Share;  // common/accept_share.h
  // others: also who would take a connection if kicked now.
  shm::ShareView share(bool others = false) const;
  bool called_back_ = false;  // kOverAlone, and the others were kicked
  void pause_accepting(uint64_t ms, bool shared_only = false);
  bool own_listener(int fd) const;  // reuse_port: one of own_fds_
  void resume_accepting();
  // False when accept4() failed in a way that leaves the connection queued
  // (out of descriptors or memory): the caller backs off.
  // *drained: it stopped at EAGAIN (the queue was empty), not at `max`.
  bool accept_batch(int lfd, int max, bool capped = true, bool* drained = nullptr);
  bool full() const { return clients_.size() >= max_connections_; }
  uint32_t max_connections_ = 0;      // max_connections, resolved (never 0)
  uint64_t full_log_ms_ = 0;          // last "max_connections reached" line
  void note_accept_failure(int err, bool pausing);  // one log line per 5 s at most
  std::vector<int> listen_fds_;
  std::vector<int> own_fds_;  // reuse_port: this worker's private sockets
  std::vector<size_t> own_src_;  // ...and the index of the shared socket each one doubles
  std::vector<int> h2c_fds_;     // listen sockets where HTTP/2 by prior knowledge is served
  bool h2c_listener(size_t i) const;  // site().server.listen[i] serves h2c
  // The TLS listeners' context (Setup::tls) and the listening sockets that
  // speak TLS (shared and reuse_port ones): few, searched per accept batch.
  const TlsContext* tls_ = nullptr;
  std::vector<int> tls_fds_;
  const TlsContext* tls_of(int lfd) const;
  int epfd_ = -1;  // listeners (level), sockets (edge), libuv's (level)
  bool stop_ = false;
  std::vector<EdgeSocket*> sockets_;  // by descriptor
  std::vector<EdgeSocket*> ready_;    // to read at the end of the turn
  std::vector<EdgeSocket*> ready_batch_;
  struct Hold {
    EdgeSocket* s;
    uint64_t since;        // uv_now (ms) when it was held: kHoldMs
    uint64_t seen_us = 0;   // uv_hrtime (µs) when a scan saw its answer count change (0: not yet)
    uint32_t seen_answers = 0;  // its owner's count then (SocketOwner::hold_wait)
  };
  std::vector<Hold> holds_;
  bool pwait2_ = true;  // epoll_pwait2 may be used (Worker::poll)
  void release_held();
  int64_t scan_holds(bool release);
  int poll(epoll_event* evs, int n, int64_t wait_us);
  struct Closed {
    void (*fn)(void*);
    void* p;
  };
  std::vector<Closed> closed_;  // to free at the end of the turn
  uv_timer_t accept_pause_;
  // HTTP/2 connections with frames to send, written once per loop turn
  // (after all of the turn's reads): the answers of many streams that came
  // in one poll leave in one TLS record and one write, not one each.
  std::vector<TurnSender*> turn_sends_;
  std::vector<TurnSender*> turn_batch_;  // those on_turn_check walks now
  // end_turn for the callbacks of a libuv turn (timers, the app threads'
  // completions); referenced, so that libuv computes its timeout (a loop
  // with no referenced handle answers 0) for run()'s epoll_wait.
  uv_check_t turn_check_;
  static void on_turn_check(uv_check_t* h);
  bool accept_paused_ = false;
  bool aside_only_ = false;  // the pause is a step-aside: own_fds_ stay in the set
  bool accept_starved_ = false;       // paused by EMFILE & co: a closed connection resumes
  uint64_t accept_failures_ = 0;      // not logged yet
  uint64_t accept_failure_log_ms_ = 0;
  shm::WorkerSlot* all_slots_;
  int n_workers_;
  bool draining_ = false;
  bool embed_apps_ = false;
  uint32_t graceful_timeout_ms_;
  std::string log_file_;
  uint64_t max_requests_;
  uint64_t requests_ = 0;
  uv_timer_t drain_timer_;
};

}  // namespace pasture::worker
