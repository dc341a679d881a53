#include "worker/runtime.h"

#include <algorithm>

#include "common/log.h"
#include "worker/client_conn.h"

namespace pasture::worker {
namespace {

char g_readbuf[64 * 1024];

lb::Method to_lb(conf::BalanceMethod m) {
  switch (m) {
    case conf::BalanceMethod::RoundRobin: return lb::Method::RoundRobin;
    case conf::BalanceMethod::LeastConn: return lb::Method::LeastConn;
    case conf::BalanceMethod::Random: return lb::Method::Random;
    case conf::BalanceMethod::Random2: return lb::Method::Random2;
    case conf::BalanceMethod::IpHash: return lb::Method::IpHash;
    case conf::BalanceMethod::Hash: return lb::Method::Hash;
    case conf::BalanceMethod::Cookie: return lb::Method::Cookie;
  }
  return lb::Method::RoundRobin;
}

}  // namespace

Worker::Worker(const Setup& setup, uv_loop_t* loop)
    : loop_(loop),
      site_(setup.site),
      slot_(&setup.shm->workers()[setup.slot]),
      graceful_timeout_ms_(setup.graceful_timeout_ms) {
  const conf::Site& site = *setup.site;
  pools_.resize(site.pools.size());
  for (size_t i = 0; i < site.pools.size(); i++) {
    const conf::Pool& pc = site.pools[i];
    PoolRt& p = pools_[i];
    p.cfg = &pc;
    p.index = (int)i;
    for (const conf::UpstreamServer& s : pc.servers) {
      lb::ServerParams sp;
      sp.weight = s.weight;
      sp.max_conns = s.max_conns;
      sp.backup = s.backup;
      sp.down = s.down;
      p.state.servers.push_back(sp);
    }
    p.state.slot = &setup.shm->pools()[i];
    p.state.server_slots = &setup.shm->servers()[setup.pool_first_server[i]];
    lb::build_schedules(p.state);
    p.balancer = lb::make_balancer(to_lb(pc.method));
    p.targets.resize(pc.servers.size());
    for (size_t j = 0; j < pc.servers.size(); j++) {
      p.targets[j].addr = setup.servers[i][j];
      p.targets[j].shm_index = setup.pool_first_server[i] + (uint32_t)j;
    }
  }
}

Worker::~Worker() {
  for (auto* v : free_spans_) delete v;
  for (auto* s : free_bufs_) delete s;
}

void Worker::alloc_cb(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(g_readbuf, sizeof g_readbuf);
}

std::vector<HeaderSpan>* Worker::take_spans() {
  if (free_spans_.empty()) {
    auto* v = new std::vector<HeaderSpan>;
    v->reserve(32);
    return v;
  }
  auto* v = free_spans_.back();
  free_spans_.pop_back();
  v->clear();
  return v;
}

void Worker::give_spans(std::vector<HeaderSpan>* v) {
  if (v->capacity() > 1024 || free_spans_.size() > 256) {
    delete v;
    return;
  }
  free_spans_.push_back(v);
}

std::string* Worker::take_buf() {
  if (free_bufs_.empty()) {
    auto* s = new std::string;
    s->reserve(1024);
    return s;
  }
  auto* s = free_bufs_.back();
  free_bufs_.pop_back();
  s->clear();
  return s;
}

void Worker::give_buf(std::string* s) {
  // Keep the free list from pinning memory after a burst of large heads.
  if (s->capacity() > 64 * 1024 || free_bufs_.size() > 256) {
    delete s;
    return;
  }
  free_bufs_.push_back(s);
}

void Worker::client_opened(ClientConn* c) {
  c->registry_index = (uint32_t)clients_.size();
  clients_.push_back(c);
  slot_->connections.fetch_add(1, std::memory_order_relaxed);
}

void Worker::client_closed(ClientConn* c) {
  uint32_t i = c->registry_index;
  if (i < clients_.size() && clients_[i] == c) {
    clients_[i] = clients_.back();
    clients_[i]->registry_index = i;
    clients_.pop_back();
  }
  slot_->connections.fetch_sub(1, std::memory_order_relaxed);
  if (draining_) maybe_exit();
}

void Worker::start_drain() {
  if (draining_) return;
  draining_ = true;
  for (uv_poll_t* p : listeners_) {
    uv_poll_stop(p);
    uv_close(reinterpret_cast<uv_handle_t*>(p), nullptr);  // owned by run(); the process exits
  }
  listeners_.clear();
  // Busy connections get graceful_timeout to finish, then the loop stops.
  uv_timer_init(loop_, &drain_timer_);
  drain_timer_.data = this;
  uv_timer_start(&drain_timer_, [](uv_timer_t* t) { uv_stop(t->loop); }, graceful_timeout_ms_, 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&drain_timer_));
  // Idle keep-alive connections go now; busy ones close after their response.
  std::vector<ClientConn*> snapshot = clients_;
  for (ClientConn* c : snapshot) c->close_if_idle();
  maybe_exit();
}

void Worker::maybe_exit() {
  if (clients_.empty()) uv_stop(loop_);
}

}  // namespace pasture::worker
