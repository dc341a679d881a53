#include "worker/runtime.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "worker/admin_socket.h"
#include "worker/client_conn.h"
#include "worker/upstream_conn.h"

namespace pasture::worker {
namespace {

char g_readbuf[Worker::kReadBufferSize];
// epoll data of a listener: its descriptor with this bit (a client socket's
// is its descriptor alone).
constexpr uint64_t kListenerTag = 1ull << 32;
constexpr uint64_t kLoopTag = 1ull << 33;  // libuv's own descriptor (Worker::run)
constexpr uint64_t kKickTag = 1ull << 34;  // Setup::accept_kick_fd (Worker::on_listener)
constexpr int kAcceptBatch = 8;
constexpr int kKickBatches = 16;  // of kAcceptBatch, per kick (Worker::on_kick)
// Out of descriptors or memory, accept4() fails but leaves the connection
// queued, so the listen socket stays readable: back off this long (or until
// one of our connections closes) instead of spinning, and say so at most once
// per kAcceptErrorLogMs.
constexpr uint64_t kAcceptStarvedMs = 100;
constexpr uint64_t kAcceptErrorLogMs = 5000;
constexpr uint64_t kOverSharePauseMs = 2;
// At max_connections: a closing connection resumes accepting; this is only
// a safety net.
constexpr uint64_t kFullPauseMs = 1000;

// accept4() errors that took their connection away: ECONNABORTED, and the
// network errors Linux passes on from the new connection (accept(2): "treat
// them like EAGAIN by retrying"). Any other (EMFILE, ENFILE, ENOBUFS,
// ENOMEM...) leaves the connection queued, and retrying at once fails again.
bool consumed_connection(int err) {
  switch (err) {
    case ECONNABORTED: case EPERM: case EPROTO: case ENOPROTOOPT: case ENETDOWN:
    case ENONET: case EHOSTDOWN: case EHOSTUNREACH: case ENETUNREACH: case EOPNOTSUPP:
    case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}

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

namespace {

lb::ServerParams server_params(const conf::UpstreamServer& s) {
  lb::ServerParams sp;
  sp.id = s.label();
  sp.weight = s.weight;
  sp.max_conns = s.max_conns;
  sp.backup = s.backup;
  sp.down = s.down;
  sp.slow_start_ms = s.slow_start_ms;
  sp.member = s.dynamic_slot < 0;
  return sp;
}

}  // namespace

lb::PoolState build_pool_state(const conf::Pool& pc, shm::PoolSlot* slot,
                               shm::ServerSlot* servers, shm::MemberSlot* members) {
  lb::PoolParams params;
  params.method = to_lb(pc.method);
  params.consistent = static_cast<lb::Consistency>(static_cast<int>(pc.consistent));
  params.hash_whole_ip = pc.hash_whole_ip;
  params.cookie_secret = pc.cookie_secret;
  params.cookie_max_age = pc.cookie_max_age_s;
  for (const conf::UpstreamServer& s : pc.servers) {
    if (s.dynamic_slot == 0) params.first_dynamic = params.servers.size();
    params.servers.push_back(server_params(s));
  }
  for (const conf::UpstreamServer& s : pc.sources) params.sources.push_back(server_params(s));
  lb::PoolState st;
  lb::build_tables(st, params);
  st.slot = slot;
  st.server_slots = servers;
  if (params.first_dynamic != SIZE_MAX) {
    st.member_slots = members;
    st.sync_members();  // a reload carried members over before the fork
  }
  return st;
}

Worker::Worker(const Setup& setup, uv_loop_t* loop)
    : loop_(loop),
      site_(setup.site),
      slot_(&setup.shm->workers()[setup.slot]),
      shm_(setup.shm),
      stats_(setup.shm->stats_row((uint32_t)setup.slot)),
      held_(setup.shm->held(setup.slot)),
      rng_(lb::seed_from_os()),
      tls_(setup.tls),
      embed_apps_(setup.embed_apps),
      graceful_timeout_ms_(setup.graceful_timeout_ms),
      max_requests_(setup.max_requests) {
  kick_fd_ = setup.accept_kick_fd;
  all_slots_ = setup.shm->workers();
  n_workers_ = setup.n_workers;
  log_file_ = setup.log_file;
  pool_first_server_ = setup.pool_first_server;
  const conf::Site& site = *setup.site;
  max_connections_ = site.server.max_connections;
  if (max_connections_ == 0) {
    // Half the descriptors (a proxied client may hold an upstream one too),
    // less a reserve for logs, the pools' idle connections and the app.
    rlimit rl{};
    uint64_t nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    nofile = std::min<uint64_t>(nofile, 1u << 24);
    max_connections_ = (uint32_t)(nofile > 128 ? (nofile - 64) / 2 : nofile);  // tiny: EMFILE back-off
  }
  if (!setup.access_log.empty() && !access_log_.open(loop, setup.access_log))
    PLOG_ERROR("cannot open access log %s: %s", setup.access_log.c_str(), strerror(errno));
  for (const conf::Handler& h : site.handlers)
    for (const conf::Filter& f : h.filters)
      if (f.kind == conf::FilterKind::TransLogger && f.setup_console_handler && !console_log_.enabled())
        console_log_.open_fd(loop, STDERR_FILENO);
  pools_.resize(site.pools.size());
  for (size_t i = 0; i < site.pools.size(); i++) {
    const conf::Pool& pc = site.pools[i];
    PoolRt& p = pools_[i];
    p.cfg = &pc;
    p.index = (int)i;
    p.state = &(*setup.pool_states)[i];
    p.balancer = lb::make_balancer(to_lb(pc.method));
    if (pc.method == conf::BalanceMethod::Hash) lb::parse_hash_key(pc.hash_key, &p.hash_key);
    for (const conf::PythonApp& a : site.python_apps) p.hosted |= a.pool == (int)i;
    p.targets.resize(pc.servers.size());
    for (size_t j = 0; j < pc.servers.size(); j++) {
      p.targets[j].addr = setup.servers[i][j];
      p.targets[j].shm_index = setup.pool_first_server[i] + (uint32_t)j;
      p.targets[j].label = pc.servers[j].label();
    }
    p.members_seen = ~0ull;
    sync_pool(p);
    if (pc.any_tls()) {
      std::string err;
      p.tls = UpstreamTlsContext::build(pc.tls, &err);
      if (!p.tls) PLOG_ERROR("pool %s: TLS to its https:// servers: %s", pc.name.c_str(), err.c_str());
    }
  }
}

void Worker::refresh_targets(PoolRt& p) {
  const lb::PoolState& st = *p.state;
  p.members_seen = st.members_epoch_seen;
  for (size_t k = 0; k < st.members.size(); k++) {
    const lb::Member& m = st.members[k];
    Target& t = p.targets[st.first_dynamic + k];
    bool same = t.member_generation == m.generation;
    t.member_gone = m.state != lb::MemberState::Active;
    if (same && m.state == lb::MemberState::Active) continue;
    // A new member in the slot, or its member left: the idle connections
    // go (to the old address, or to a server that gets no more requests).
    std::vector<UpstreamConn*> idle = t.idle;
    for (UpstreamConn* u : idle) u->abort();
    UpstreamTlsContext::forget(&t.tls_session);
    if (same || m.state == lb::MemberState::Empty) continue;
    // Another member took the slot: this worker's requests in flight there
    // are the old member's (Exchange::release_server leaves them alone).
    shm::drop_held(p.state->server_slots[st.first_dynamic + k], held(t.shm_index));
    t.member_generation = m.generation;
    t.label = m.id();
    t.addr = member_address(*p.cfg, m);
  }
}

ResolvedServer member_address(const conf::Pool& pc, const lb::Member& m) {
  ResolvedServer a;
  if (m.v6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.addr);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(m.port);
    memcpy(&sin6->sin6_addr, m.addr, 16);
    a.addrlen = sizeof(sockaddr_in6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&a.addr);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(m.port);
    memcpy(&sin->sin_addr, m.addr, 4);
    a.addrlen = sizeof(sockaddr_in);
  }
  // Host (preserve_host = off): the name asked for A/AAAA records, the
  // address for SRV targets.
  bool named = m.source < pc.sources.size() && pc.sources[m.source].discover == conf::UpstreamServer::Discover::Dns;
  a.host_header = named ? pc.sources[m.source].host + ":" + std::to_string(m.port) : m.id();
  return a;
}

Worker::~Worker() {
  for (PoolRt& p : pools_)
    for (Target& t : p.targets) UpstreamTlsContext::forget(&t.tls_session);
  for (auto* v : free_spans_) delete v;
  for (auto* s : free_bufs_) delete s;
}

void Worker::alloc_cb(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(g_readbuf, sizeof g_readbuf);
}

char* Worker::read_buffer() { return g_readbuf; }

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
  if (accept_starved_) resume_accepting();  // a descriptor (or a max_connections place) came back
  if (draining_) maybe_exit();
}

namespace {

// A private socket bound to the same address as `shared`, with SO_REUSEPORT:
// the kernel then spreads new connections over every worker's socket (and
// the shared one, which all workers still accept from). -1 on failure; -2
// for a unix socket (its path has one socket: all workers share it).
int reuse_port_socket(int shared) {
  sockaddr_storage ss{};
  socklen_t sl = sizeof ss;
  if (getsockname(shared, reinterpret_cast<sockaddr*>(&ss), &sl) < 0) return -1;
  if (ss.ss_family == AF_UNIX) return -2;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

// Setup::listen_fds[i] is the socket of site().server.listen[i].
static bool listener_tls(const conf::Site& site, const TlsContext* tls, size_t i) {
  return tls && i < site.server.listen.size() && site.server.listen[i].tls;
}

void Worker::bind_own_sockets(const std::vector<int>& listen_fds) {
  for (size_t i = 0; i < listen_fds.size(); i++) {
    int shared = listen_fds[i];
    int fd = reuse_port_socket(shared);
    if (fd == -2) continue;
    if (fd < 0) {
      PLOG_WARN("reuse_port: cannot bind a private socket (%s); using the shared one only", strerror(errno));
      continue;
    }
    own_fds_.push_back(fd);
    own_src_.push_back(i);
    if (listener_tls(*site_, tls_, i)) tls_fds_.push_back(fd);
  }
}

// The master opens the listen sockets in the order of the config's listen list.
bool Worker::h2c_listener(size_t i) const {
  const conf::ServerSettings& srv = site_->server;
  if (i >= srv.listen.size()) return false;
  return srv.listen[i].h2c || (srv.http2 && !srv.listen[i].tls);
}

const TlsContext* Worker::tls_of(int lfd) const {
  for (int fd : tls_fds_)
    if (fd == lfd) return tls_;
  return nullptr;
}

bool Worker::start_accepting(const std::vector<int>& listen_fds) {
  listen_fds_ = listen_fds;
  slot_->share_paused.store(0, std::memory_order_relaxed);  // a predecessor in the slot may have died paused
  slot_->waiting.store(0, std::memory_order_relaxed);
  for (size_t i = 0; i < listen_fds.size(); i++) {
    if (h2c_listener(i)) h2c_fds_.push_back(listen_fds[i]);
    if (listener_tls(*site_, tls_, i)) tls_fds_.push_back(listen_fds[i]);
  }
  for (size_t j = 0; j < own_fds_.size(); j++) {
    int fd = own_fds_[j];
    // Bound before the capabilities went (bind_own_sockets); listening
    // needs none. Not before now: a worker importing its app would be
    // handed connections it cannot take.
    if (listen(fd, (int)site_->server.backlog) < 0) {
      PLOG_WARN("reuse_port: listen() on the private socket failed (%s); using the shared one only",
                strerror(errno));
      continue;
    }
    listen_fds_.push_back(fd);
    if (h2c_listener(own_src_[j])) h2c_fds_.push_back(fd);
  }
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) {
    PLOG_ERROR("epoll_create1() failed: %s", strerror(errno));
    return false;
  }
  for (int fd : listen_fds_) {
    // Accepted TCP sockets inherit TCP_NODELAY on Linux: set once here, on
    // every listener whoever bound it (master, systemd, reuse_port), instead
    // of once per connection. A unix socket refuses it, harmlessly.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!watch_listener(fd)) {
      PLOG_ERROR("epoll_ctl(ADD, %d) failed: %s", fd, strerror(errno));
      return false;
    }
  }
  if (kick_fd_ >= 0) {
    // Edge-triggered, never read: every write is an edge for every worker.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = kKickTag;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, kick_fd_, &ev) < 0) {
      PLOG_ERROR("epoll_ctl(ADD, the accept kick) failed: %s", strerror(errno));
      return false;
    }
  }
  uv_check_init(loop_, &turn_check_);
  turn_check_.data = this;
  uv_check_start(&turn_check_, on_turn_check);
  uv_timer_init(loop_, &accept_pause_);
  accept_pause_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&accept_pause_));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kLoopTag;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, uv_backend_fd(loop_), &ev) < 0) {
    PLOG_ERROR("epoll_ctl(ADD, libuv's descriptor) failed: %s", strerror(errno));
    return false;
  }
  return true;
}

void Worker::run() {
  epoll_event evs[64];
  uv_run(loop_, UV_RUN_NOWAIT);  // what was started before (timers, signals)
  while (!stop_) {
    // Work left for the end of a turn (a socket's read budget ran out, a
    // send queued by end_turn itself) does not wait for an event.
    bool pending = !ready_.empty() || !turn_sends_.empty() || !closed_.empty();
    int timeout = pending ? 0 : uv_backend_timeout(loop_);
    int64_t wait_us = timeout < 0 ? -1 : (int64_t)timeout * 1000;
    // Held output waits no longer than its gap (scan_holds): a poll that
    // finds nothing releases what has waited it (below).
    bool held = !holds_.empty();
    if (held && !pending) {
      int64_t due = scan_holds(false);
      if (due >= 0 && (wait_us < 0 || due < wait_us)) wait_us = due;
    }
    // Blocking with the listeners watched: a kick would find it at once.
    // Aside for its share, it comes back if kicked and within it (on_kick).
    bool waiting = wait_us != 0 && !draining_ && !listen_fds_.empty() &&
                   (!accept_paused_ || (aside_only_ && !accept_starved_));
    if (waiting) slot_->waiting.store(1, std::memory_order_relaxed);
    int n = poll(evs, 64, wait_us);
    if (waiting) slot_->waiting.store(0, std::memory_order_relaxed);
    if (n < 0) {
      if (errno != EINTR) {
        PLOG_ERROR("epoll_wait() failed: %s", strerror(errno));
        break;
      }
      n = 0;
    }
    uv_update_time(loop_);
    if (held && n == 0) scan_holds(true);  // nothing else to do: what has waited its gap goes
    bool libuv_ready = on_events(evs, n);
    end_turn();
    // libuv's turn: its descriptor was readable (a signal, the admin socket,
    // an app thread's wake-up), or a timer of its is due.
    if (!stop_ && (libuv_ready || uv_backend_timeout(loop_) == 0)) uv_run(loop_, UV_RUN_NOWAIT);
  }
}

void Worker::stop() {
  stop_ = true;
  uv_stop(loop_);
}

void Worker::defer_send(TurnSender* s) { turn_sends_.push_back(s); }

namespace {
epoll_event socket_event(int fd, bool out) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0u);
  ev.data.u64 = (uint32_t)fd;
  return ev;
}
}  // namespace

int Worker::watch_socket(int fd, EdgeSocket* s, bool out) {
  epoll_event ev = socket_event(fd, out);
  if (epfd_ < 0) return -EBADF;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int err = errno;
    PLOG_WARN("epoll_ctl(ADD, %d) failed: %s", fd, strerror(err));
    return -err;
  }
  if ((size_t)fd >= sockets_.size()) sockets_.resize(std::max<size_t>((size_t)fd + 1, sockets_.size() * 2), nullptr);
  sockets_[fd] = s;
  return 0;
}

int Worker::watch_output(int fd) {
  epoll_event ev = socket_event(fd, true);
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) < 0) {
    int err = errno;
    PLOG_WARN("epoll_ctl(MOD, %d) failed: %s", fd, strerror(err));
    return -err;
  }
  return 0;
}

void Worker::forget_socket(int fd, EdgeSocket* s) {
  if ((size_t)fd < sockets_.size() && sockets_[fd] == s) sockets_[fd] = nullptr;
  if (s->in_held) {
    s->in_held = false;
    std::erase_if(holds_, [s](const Hold& h) { return h.s == s; });
  }
  if (s->in_ready) {
    s->in_ready = false;
    std::replace(ready_.begin(), ready_.end(), s, static_cast<EdgeSocket*>(nullptr));
    std::replace(ready_batch_.begin(), ready_batch_.end(), s, static_cast<EdgeSocket*>(nullptr));
  }
}

void Worker::socket_ready(EdgeSocket* s) { ready_.push_back(s); }

// epoll_wait for up to wait_us µs (-1: no limit): epoll_pwait2 when the
// wait is not whole milliseconds (a hold's wait), rounded up to them where
// that is refused: ENOSYS before Linux 5.11, EPERM (or anything else) from
// a seccomp filter that does not know it (older Docker, podman, snap
// profiles; review 62: a refusal taken for epoll_wait's ended the worker).
// (The system call, not glibc's wrapper: that needs glibc 2.35.)
int Worker::poll(epoll_event* evs, int n, int64_t wait_us) {
#ifdef SYS_epoll_pwait2
  if (wait_us > 0 && wait_us % 1000 != 0 && pwait2_) {
    // (The kernel's __kernel_timespec: 64-bit fields, as timespec's here.)
    static_assert(sizeof(time_t) == 8 && sizeof(long) == 8);
    timespec ts{(time_t)(wait_us / 1000000), (long)(wait_us % 1000000) * 1000};
    long r = syscall(SYS_epoll_pwait2, epfd_, evs, n, &ts, nullptr, 0);
    if (r >= 0 || errno == EINTR) return (int)r;
    PLOG_INFO("epoll_pwait2() refused (%s): held answers wait whole milliseconds", strerror(errno));
    pwait2_ = false;
  }
#endif
  return epoll_wait(epfd_, evs, n, wait_us < 0 ? -1 : (int)std::min<int64_t>((wait_us + 999) / 1000, INT_MAX));
}

// (Its first scan stamps it: no clock read per hold.)
void Worker::socket_held(EdgeSocket* s) { holds_.push_back({s, uv_now(loop_)}); }

// Releases held output that waited kHoldMs; forgets the sockets no longer
// held (their owner released them).
void Worker::release_held() {
  uint64_t now = uv_now(loop_);
  std::erase_if(holds_, [&](const Hold& h) {
    if (h.s->held() && now - h.since < kHoldMs) return false;
    h.s->in_held = false;
    h.s->release();
    return true;
  });
}

// The holds' waits (Worker::kHoldMs): notes whose owner completed an
// answer since the last scan, releases (`release`) those that waited as
// long as their owner allows (SocketOwner::hold_wait), and answers how
// long until the next is due (µs; 0: one is due now; -1: none held).
int64_t Worker::scan_holds(bool release) {
  uint64_t now = uv_hrtime() / 1000;
  uint64_t now_ms = uv_now(loop_);  // kHoldMs is counted in uv_now's milliseconds
  int64_t next = -1;
  std::erase_if(holds_, [&](Hold& h) {
    if (!h.s->held()) {  // released by its owner
      h.s->in_held = false;
      return true;
    }
    SocketOwner::HoldWait w = h.s->owner()->hold_wait();
    if (h.seen_us == 0 || w.answers != h.seen_answers) {
      h.seen_answers = w.answers;
      h.seen_us = now;
    }
    uint64_t left = h.seen_us + w.wait_us > now ? h.seen_us + w.wait_us - now : 0;
    if (left == 0 && release) {
      h.s->in_held = false;
      h.s->release();
      return true;
    }
    uint64_t held_ms = now_ms - h.since;
    left = std::min(left, held_ms >= kHoldMs ? 0 : (kHoldMs - held_ms) * 1000);
    if (next < 0 || (int64_t)left < next) next = (int64_t)left;
    return false;
  });
  return next;
}

void Worker::defer_free(void (*fn)(void*), void* p) { closed_.push_back({fn, p}); }

void Worker::finish() {
  // The process exits with connections open (graceful_timeout ran out): one
  // in the middle of an answer framed by the close is closed here with a
  // reset rather than left to the exit's FIN (review 50); the kernel closes
  // the others. (A closed connection stays in clients_ until free_closed.)
  for (ClientConn* c : clients_) c->on_exit();
  for (PoolRt& p : pools_)
    for (Target& t : p.targets) {
      std::vector<UpstreamConn*> idle = t.idle;
      for (UpstreamConn* u : idle) u->abort();
    }
  free_closed();
}

void Worker::free_closed() {
  while (!closed_.empty()) {
    Closed c = closed_.back();
    closed_.pop_back();
    c.fn(c.p);
  }
}

void Worker::on_turn_check(uv_check_t* h) { static_cast<Worker*>(h->data)->end_turn(); }

void Worker::end_turn() {
  if (!holds_.empty()) release_held();  // (first: the ready list below writes it)
  // Sockets with bytes to read that this turn's events did not read (read
  // restarted, or a budget ran out): first, so that what they produce
  // leaves with the rest below. One queued again meanwhile waits a turn.
  ready_batch_.swap(ready_);
  for (size_t i = 0; i < ready_batch_.size(); i++)
    if (EdgeSocket* s = ready_batch_[i]) s->on_ready();
  ready_batch_.clear();
  // Those queued now; one queued again meanwhile waits a turn. One deleted
  // meanwhile has taken itself off (cancel_send).
  turn_batch_.swap(turn_sends_);
  for (size_t i = 0; i < turn_batch_.size(); i++)
    if (TurnSender* s = turn_batch_[i]) s->send_deferred();
  turn_batch_.clear();
  free_closed();  // last: nothing of this turn refers to them any more
}

// The step-aside (share_view, common/accept_share.cc; balance below). The
// last worker accepting steps aside only to hand a queue over: with short
// connections (bench --shapes close) the counts swing fast, and all workers
// stepping aside together left nobody accepting for up to kOverSharePauseMs
// (2 workers: 0.6x the req/s, 2x the p99). Several may (review 33: after a
// respawn every full worker steps aside, so the empty one fills up). The
// view from shared memory can be wrong for a moment (a worker still
// importing its app counts as accepting until start_accepting, one just
// killed until it is reaped): since a worker steps aside only after taking
// what woke it, and for 2 ms, a wrong view delays a connection by that much
// at most (review 35 H-1). The last worker accepting, over its share, calls
// the others back (the accept kick; on_kick): in a burst of connects (wrk
// opening 50 at once) the one that stepped aside first would otherwise stay
// aside while the other took the rest (2 workers: 41 and 9 connections,
// where nginx had 25 and 25).
shm::ShareView Worker::share(bool others) const {
  // The slots the master has forked into, TTIN's after this worker's too
  // (review 35 M-2: they were not seen, and the spread went uneven).
  int n = std::max<int>(n_workers_, (int)shm_->header().worker_slots_used.load(std::memory_order_relaxed));
  n = std::min<int>(n, (int)shm_->sizes().n_workers);
  return shm::share_view(all_slots_, n, slot_, clients_.size(), uv_now(loop_), others);
}

bool Worker::own_listener(int fd) const {
  return std::find(own_fds_.begin(), own_fds_.end(), fd) != own_fds_.end();
}

// shared_only (stepping aside): reuse_port's own sockets stay, since the
// kernel queues connections on them whoever else accepts; stepping aside
// from them would only delay those (review 35 H-2).
void Worker::pause_accepting(uint64_t ms, bool shared_only) {
  for (int fd : listen_fds_) {
    bool in_set = !accept_paused_ || (aside_only_ && own_listener(fd));
    if (in_set && (!shared_only || !own_listener(fd))) epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  }
  aside_only_ = shared_only;
  accept_paused_ = true;
  uv_timer_start(&accept_pause_, [](uv_timer_t* t) {
    static_cast<Worker*>(t->data)->resume_accepting();
  }, ms, 0);
}

void Worker::resume_accepting() {
  accept_starved_ = false;
  if (draining_ || epfd_ < 0) return;  // a draining worker stays aside (review 35 M-1)
  slot_->share_paused.store(0, std::memory_order_relaxed);
  if (!accept_paused_) return;
  accept_paused_ = false;
  uv_timer_stop(&accept_pause_);
  for (int fd : listen_fds_) {
    if (aside_only_ && own_listener(fd)) continue;  // never left the set
    watch_listener(fd);
  }
  aside_only_ = false;
}

// Level-triggered; EPOLLEXCLUSIVE when there is a kick to pass on what this
// worker cannot take (on_listener). A kernel without it (before 4.5)
// refuses the flag: every worker is woken then.
bool Worker::watch_listener(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN | (kick_fd_ >= 0 ? (uint32_t)EPOLLEXCLUSIVE : 0u);
  ev.data.u64 = kListenerTag | (uint32_t)fd;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) return true;
  if (errno != EINVAL || kick_fd_ < 0) return false;
  kick_fd_ = -1;
  ev.events = EPOLLIN;
  return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void Worker::write_kick() {
  uint64_t one = 1;
  if (kick_fd_ >= 0 && write(kick_fd_, &one, sizeof one) < 0) {
    // EAGAIN only at a count of 2^64 - 2: never, at one per pause.
  }
}

// Another worker could not take a connection it was woken for: take it if
// this one can. A paused worker (full, out of descriptors) leaves it, as
// does a draining one; one that stepped aside comes back if it is within
// its share now (the last one accepting is over its own). Not passed on
// again from here (woken = false): two full workers would kick each other
// for ever. The kicked worker takes all that is queued, not one batch: a kick comes
// once, and the listener's next event, if any, may go to the kicker again
// (review 53 L-2). Over its share in the middle of a queue, it steps aside
// and kicks the others for the rest if one waits to take it (balance);
// otherwise it looks at its share once,
// after every listener (stepping aside after an empty first one, it
// skipped the others: L-3).
void Worker::on_kick() {
  if (draining_ || full()) return;
  if (accept_paused_) {
    if (!aside_only_ || accept_starved_ || share().share != Share::kFair) return;
    resume_accepting();
  }
  bool rest = false;  // a flood: the rest in a later turn, by whoever is kicked then
  for (int fd : listen_fds_) {
    if (own_listener(fd)) continue;
    for (int n = 0; !accept_paused_ && on_listener(fd, false);) {
      balance(false, false);  // over its share: aside, and the others kicked for the rest
      if (++n == kKickBatches) {
        rest = true;
        break;
      }
    }
  }
  balance(true, false);
  kick_due_ |= rest;
}

// The epoll set's events: accept on a listener's, read or write on a
// socket's (looked up by descriptor: see worker/edge_socket.h). True when
// libuv's descriptor was among them.
bool Worker::on_events(const epoll_event* evs, int n) {
  bool libuv_ready = false;
  for (int i = 0; i < n; i++) {
    uint64_t d = evs[i].data.u64;
    int fd = (int)(uint32_t)d;
    if (d & kListenerTag)
      on_listener(fd);
    else if (d & kLoopTag)
      libuv_ready = true;  // its turn comes after this one's (run)
    else if (d & kKickTag)
      on_kick();
    else if ((size_t)fd < sockets_.size() && sockets_[fd])
      sockets_[fd]->on_event(evs[i].events);
  }
  if (kick_due_) {
    kick_due_ = false;
    write_kick();
  }
  return libuv_ready;
}

// A listener is in every worker's set, level-triggered, with EPOLLEXCLUSIVE:
// the kernel wakes one worker waiting in epoll_wait per connection (and
// puts it on the ready list of every busy one it passes on the way), not
// every idle worker to race accept4 (8 workers, 2 clients connecting for
// one request at a time: 67.3 µs of CPU per request instead of 96.6, see
// the README). A worker so woken that cannot take the
// connection (at max_connections, out of descriptors, a second listener's
// event behind a pause in the same batch) would leave it queued with
// nobody woken until the next connection came (review 36 H-1): it writes
// the accept kick instead, an eventfd in every worker's set, and the
// others try (on_kick). A worker over its share still accepts a batch of
// what woke it, then steps aside (share()) and kicks the others for what is
// still queued when one of them waits to take it (a burst of connects would
// otherwise go to whichever worker got the CPU first: 40 of 40; balance);
// with the herd, only once the queue was empty. A worker paused with connections still queued finds them when it
// resumes: re-adding the listener reports it readable.
bool Worker::on_listener(int lfd, bool woken) {
  if (draining_) return false;
  // Paused by an earlier event of this batch: resuming polls the socket.
  bool kick = woken && kick_fd_ >= 0 && !own_listener(lfd);
  if (accept_paused_ && !(aside_only_ && own_listener(lfd))) {
    kick_due_ |= kick;
    return false;
  }
  // Woken by its event, one connection, as nginx without multi_accept: the
  // listener is level-triggered, so its event comes back next turn while
  // more wait, and an accept4 made only to meet EAGAIN is not cheap (the
  // kernel makes a socket and a file for it before it looks at the queue,
  // and undoes them): 2.2 µs of CPU a connection less in bench --shapes
  // close (~45 µs, 1 worker, 6 of 6 alternating rounds); taking a batch to
  // EAGAIN only after two events in a row saved 1.5 µs less. Over its
  // share, balance needs to know whether the queue is drained: the rest of
  // a batch then (so does a kick: on_kick).
  int max = woken ? 1 : kAcceptBatch;
  bool drained = false;
  bool starved = !full() && !accept_batch(lfd, max, true, &drained);
  if (!starved && woken && !drained && !full()) {
    if (share().share == Share::kFair) {
      called_back_ = false;  // as balance() would
      return true;
    }
    starved = !accept_batch(lfd, kAcceptBatch - 1, true, &drained);
  }
  if (starved) {
    // Pausing, not nginx's spin nor libuv's accept-and-close of a reserved
    // descriptor: the connection stays queued for a worker that has
    // descriptors to spare (the socket is shared), or for us once ours
    // come back.
    accept_starved_ = true;
    pause_accepting(kAcceptStarvedMs);
    kick_due_ |= kick;
    return false;
  }
  if (full()) {
    // New connections wait in the listen queue, for any worker with room.
    uint64_t now = uv_now(loop_);
    if (!full_log_ms_ || now - full_log_ms_ >= kAcceptErrorLogMs) {
      PLOG_WARN("max_connections (%u) reached: not accepting until a connection closes",
                max_connections_);
      full_log_ms_ = now;
    }
    accept_starved_ = true;
    pause_accepting(kFullPauseMs);
    kick_due_ |= kick && !drained;
    return false;
  }
  if (woken) balance(drained, own_listener(lfd));
  return !drained && !accept_paused_;
}

// After accepting: over its share, a worker steps aside (see share()).
// With connections still queued, only when another worker waits in
// epoll_wait to take them, kicked at once: one blocked in an app call (the
// app called inline), out of descriptors or full counts as accepting but
// takes nothing, and stepping aside for it took a burst at 8 connections
// per 2 ms (200 connects: 57 ms instead of 12; review 54 M-1). So does the
// last one accepting, when one aside waits to be called back: the
// kicked worker, woken in some tens of µs, found the queue drained by the
// one still accepting (2 workers under wrk -c50: 8 and 43; M-2). With the
// queue drained, the last one accepting calls the others back and stays.
void Worker::balance(bool drained, bool own) {
  if (accept_paused_) return;
  shm::ShareView v = share(true);
  Share s = v.share;
  bool hand_over = !drained && !own && kick_fd_ >= 0 && (v.accepting || v.aside);
  if ((s == Share::kOver && (drained || hand_over)) || (s == Share::kOverAlone && hand_over)) {
    slot_->share_paused.store(1, std::memory_order_relaxed);
    pause_accepting(kOverSharePauseMs, /*shared_only=*/true);
    if (hand_over) write_kick();
  } else if (s == Share::kOverAlone && !called_back_) {
    write_kick();
  }
  called_back_ = s == Share::kOverAlone;
}

void Worker::note_accept_failure(int err, bool pausing) {
  uint64_t now = uv_now(loop_);
  if (accept_failure_log_ms_ && now - accept_failure_log_ms_ < kAcceptErrorLogMs) {
    accept_failures_++;  // counted in the next message
    return;
  }
  char more[80] = "";
  if (accept_failures_)
    snprintf(more, sizeof more, " (%llu more since the last such message)",
             (unsigned long long)accept_failures_);
  if (pausing)
    PLOG_WARN("accept4() failed: %s; not accepting for %llu ms or until a connection closes%s",
              strerror(err), (unsigned long long)kAcceptStarvedMs, more);
  else
    PLOG_WARN("accept4() failed: %s%s", strerror(err), more);
  accept_failures_ = 0;
  accept_failure_log_ms_ = now;
}

// A bounded batch per wake-up keeps workers' shares even.
bool Worker::accept_batch(int lfd, int max, bool capped, bool* drained) {
  const TlsContext* tls = tls_of(lfd);
  for (int k = 0; k < max && !(capped && full()); k++) {
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&ss), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
        if (drained) *drained = err != EINTR;
        return true;
      }
      bool queued = !consumed_connection(err);
      if (err != ECONNABORTED) note_accept_failure(err, queued);
      if (queued) return false;
      continue;
    }
    bool h2c = std::find(h2c_fds_.begin(), h2c_fds_.end(), lfd) != h2c_fds_.end();
    ClientConn::accept_fd(this, fd, reinterpret_cast<sockaddr*>(&ss), tls, h2c);
  }
  return true;
}

void Worker::start_admin(int fd) {
  if (fd >= 0) admin_ = start_admin_socket(*this, fd);
}

void Worker::start_drain() {
  if (draining_) return;
  draining_ = true;
  stop_admin_socket(admin_);
  admin_ = nullptr;
  if (epfd_ >= 0 && !listen_fds_.empty()) {
    // Leave the listen sockets' wait queues first, then take what may already
    // have been signalled to us, so that no connection is left behind in a
    // queue this process no longer watches.
    // The epoll set stays: the client sockets are in it.
    for (int fd : listen_fds_) epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    if (kick_fd_ >= 0) epoll_ctl(epfd_, EPOLL_CTL_DEL, kick_fd_, nullptr);
    uv_timer_stop(&accept_pause_);
    slot_->share_paused.store(1, std::memory_order_relaxed);  // accepts no more (share())
    for (int fd : listen_fds_) {
      accept_batch(fd, 1 << 16, false);
      close(fd);  // this process will not accept again; let the port go with the master
    }
    listen_fds_.clear();
    // What it could not take (EMFILE & co) goes to the others (review 53 L-1).
    write_kick();
  }
  // Closing an idle keep-alive connection at once would race the request its
  // client may be sending right now (it would meet a closed socket): idle
  // connections get drain_idle_grace, and a request in it is answered with
  // Connection: close. Busy connections, and new ones that have not sent
  // their first request yet, close after one response.
  std::vector<ClientConn*> snapshot = clients_;
  for (ClientConn* c : snapshot) c->on_drain();
  // Busy connections get graceful_timeout to finish, then the loop stops.
  uv_timer_init(loop_, &drain_timer_);
  drain_timer_.data = this;
  uv_timer_start(&drain_timer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->stop(); },
                 graceful_timeout_ms_, 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&drain_timer_));
  maybe_exit();
}

void Worker::reopen_logs() {
  access_log_.reopen();
  if (log_file_.empty()) return;
  int fd = log::open_no_follow(log_file_.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) {
    PLOG_ERROR("SIGUSR1: cannot reopen %s: %s", log_file_.c_str(), strerror(errno));
    return;
  }
  dup2(fd, STDOUT_FILENO);
  dup2(fd, STDERR_FILENO);
  close(fd);
}

void Worker::check_clear_counters() {
  uint64_t epoch = shm_->header().clear_epoch.load(std::memory_order_acquire);
  if (stats_.worker().clear_epoch_seen.get() == epoch) return;
  const shm::LayoutSizes& sz = shm_->sizes();
  shm::clear_row(stats_, sz.n_pools, sz.n_servers, /*keep_gauges=*/true);
  stats_.worker().clear_epoch_seen.set(epoch);
}

void Worker::note_request() {
  slot_->requests.fetch_add(1, std::memory_order_relaxed);
  if (max_requests_ && ++requests_ == max_requests_) {
    PLOG_INFO("served %llu requests (max_requests): recycling", (unsigned long long)requests_);
    start_drain();
  }
}

void Worker::maybe_exit() {
  if (clients_.empty()) stop();
}

}  // namespace pasture::worker
