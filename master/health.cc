#include "master/health.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <map>
#include <memory>

#include "common/log.h"
#include "master/master.h"
#include "master/helper_signals.h"
#include "worker/upstream_tls_context.h"

namespace pasture::master {
namespace {

// The member in a discovery slot now, under the pool's sequence lock; false
// while the resolver writes it.
bool member_now(const HealthTarget& t, lb::Member* m) {
  std::vector<lb::Member> one;
  uint64_t epoch;
  if (!lb::read_members(*t.pool_slot, t.member, 1, &one, &epoch)) return false;
  *m = one[0];
  return true;
}

// A status line longer than this is not one.
constexpr size_t kMaxStatusLine = 4096;

volatile sig_atomic_t g_stop = 0;

void on_stop(int) { g_stop = 1; }

struct Probe {
  enum class State { Idle, Connecting, Handshake, Sending, Reading };
  HealthTarget t;
  const worker::UpstreamTlsContext* tls = nullptr;  // an https:// server
  SSL* ssl = nullptr;  // over fd, while a probe of an https:// server runs
  short want = 0;      // Handshake, and TLS reads and writes: the poll event OpenSSL waits for
  lb::ProbeCounts counts;
  State state = State::Idle;
  int fd = -1;
  uint64_t started_ms = 0;
  uint64_t deadline_ms = 0;
  uint64_t next_ms = 0;  // Idle: when the next probe starts
  uint32_t member_generation = 0;  // a discovery slot: the member the counts and the running probe are for
  std::string request;
  size_t sent = 0;
  std::string buf;
};

// "HTTP/1.1 200 OK" -> 200; -1 when it is not a status line.
int parse_status_line(const std::string& line) {
  if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ') return -1;
  for (int i = 9; i < 12; i++)
    if (line[i] < '0' || line[i] > '9') return -1;
  if (line.size() > 12 && line[12] != ' ' && line[12] != '\r') return -1;
  return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

// `why` classes the verdict for the status app; `code` is the status (0: none).
void finish(Probe& p, bool ok, lb::CheckReason why, int code, const std::string& reason, uint64_t now) {
  if (p.ssl) SSL_free(p.ssl);  // no close_notify: the probe is over either way
  p.ssl = nullptr;
  ERR_clear_error();
  if (p.fd >= 0) close(p.fd);
  p.fd = -1;
  p.state = Probe::State::Idle;
  p.buf.clear();
  p.next_ms = std::max(p.started_ms + p.t.interval_ms, now);
  const HealthTarget& t = p.t;
  // A discovery slot another member took (or left) while the probe ran:
  // the verdict is not the slot's.
  lb::Member m;
  if (t.member && (!member_now(t, &m) || m.generation != p.member_generation ||
                   m.state != lb::MemberState::Active))
    return;
  lb::Transition tr = lb::apply_probe(*t.slot, p.counts, ok, t.rise, t.fall, now);
  lb::CheckResult c;
  c.probed = true;
  c.ok = ok;
  c.reason = why;
  c.code = (uint16_t)code;
  c.duration_ms = (uint32_t)std::min<uint64_t>(now - p.started_ms, UINT32_MAX);
  lb::record_probe(*t.slot, c, p.counts);
  switch (tr) {
    case lb::Transition::Down:
      PLOG_WARN("pool %s: server %s down (health check %s: %s; %u consecutive failure%s)",
                t.pool.c_str(), t.server.c_str(), t.path.c_str(), reason.c_str(), t.fall,
                t.fall == 1 ? "" : "s");
      break;
    case lb::Transition::Up:
      PLOG_NOTICE("pool %s: server %s up (health check %s: %s; %u consecutive success%s)",
                  t.pool.c_str(), t.server.c_str(), t.path.c_str(), reason.c_str(), t.rise,
                  t.rise == 1 ? "" : "es");
      break;
    case lb::Transition::None:
      PLOG_DEBUG("pool %s: server %s: health check %s: %s", t.pool.c_str(), t.server.c_str(),
                 t.path.c_str(), reason.c_str());
      break;
  }
}

void fail_errno(Probe& p, const char* call, int err, uint64_t now) {
  bool io = strcmp(call, "send()") == 0 || strcmp(call, "recv()") == 0;
  finish(p, false, io ? lb::CheckReason::Io : lb::CheckReason::Connect, 0, std::string(call) + ": " + strerror(err),
         now);
}

// An SSL call that did not complete: wait for what it wants, or fail the probe.
void tls_wait_or_fail(Probe& p, int rc, const char* what, uint64_t now) {
  int e = SSL_get_error(p.ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    p.want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
    return;
  }
  if (e == SSL_ERROR_ZERO_RETURN)
    return finish(p, false, lb::CheckReason::Closed, 0, p.buf.empty() ? "closed without a response" : "closed in the status line", now);
  std::string why = worker::tls_failure(p.ssl, e);
  finish(p, false, p.state == Probe::State::Handshake ? lb::CheckReason::Tls : lb::CheckReason::Io,
         0, std::string(what) + ": " + why, now);
}

// The TLS handshake over the connected socket (reentered on each poll event).
void tls_handshake(Probe& p, uint64_t now) {
  if (!p.ssl) {
    p.ssl = p.tls ? p.tls->new_ssl(p.t.tls_host, nullptr) : nullptr;
    if (!p.ssl || SSL_set_fd(p.ssl, p.fd) != 1)
      return finish(p, false, lb::CheckReason::Tls, 0, p.tls ? "TLS: out of memory" : "TLS: no client context", now);
  }
  ERR_clear_error();
  int rc = SSL_connect(p.ssl);
  if (rc == 1) {
    p.state = Probe::State::Sending;
    p.want = POLLOUT;
    return;
  }
  tls_wait_or_fail(p, rc, "TLS handshake", now);
}

std::string probe_request(const HealthTarget& t) {
  return "GET " + t.path + " HTTP/1.1\r\nHost: " + t.host_header +
         "\r\nUser-Agent: pasture-health\r\nAccept: */*\r\nConnection: close\r\n\r\n";
}

// A discovery slot: the member in it now, or false (empty, leaving, being
// written) and the next look one interval later. A new member starts with
// fresh counts (the resolver reset its ServerSlot: it starts up).
bool follow_member(Probe& p, uint64_t now) {
  lb::Member m;
  if (!member_now(p.t, &m) || m.state != lb::MemberState::Active) {
    p.next_ms = now + std::min<uint32_t>(p.t.interval_ms, 1000);
    return false;
  }
  if (m.generation == p.member_generation) return true;
  p.member_generation = m.generation;
  p.counts = lb::ProbeCounts{};
  worker::ResolvedServer a = worker::member_address(*p.t.pool_cfg, m);
  p.t.addr = a.addr;
  p.t.addrlen = a.addrlen;
  p.t.host_header = a.host_header;
  p.t.server = m.id();
  p.request = probe_request(p.t);
  return true;
}

void start(Probe& p, uint64_t now) {
  if (p.t.member && !follow_member(p, now)) return;
  p.started_ms = now;
  p.deadline_ms = now + p.t.timeout_ms;
  p.sent = 0;
  p.buf.clear();
  p.fd = socket(p.t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p.fd < 0) return fail_errno(p, "socket()", errno, now);
  if (connect(p.fd, reinterpret_cast<const sockaddr*>(&p.t.addr), p.t.addrlen) == 0) {
    p.state = p.t.tls ? Probe::State::Handshake : Probe::State::Sending;
    if (p.t.tls) tls_handshake(p, now);
  } else if (errno == EINPROGRESS) {
    p.state = Probe::State::Connecting;
  } else {
    fail_errno(p, "connect()", errno, now);
  }
}

// Reads what is there; decides once a status line is complete or the peer closed.
void on_readable(Probe& p, uint64_t now) {
  char chunk[2048];
  for (;;) {
    ssize_t n;
    if (p.ssl) {
      ERR_clear_error();
      int rc = SSL_read(p.ssl, chunk, sizeof chunk);
      if (rc <= 0) {
        int e = SSL_get_error(p.ssl, rc);
        // A close without close_notify ends the response as a plain close does.
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
          n = 0;
        } else {
          return tls_wait_or_fail(p, rc, "TLS read", now);
        }
      } else {
        n = rc;
      }
      p.want = POLLIN;
    } else {
      n = recv(p.fd, chunk, sizeof chunk, 0);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) return fail_errno(p, "recv()", errno, now);
    if (n > 0) p.buf.append(chunk, (size_t)n);
    size_t eol = p.buf.find('\n');
    if (eol != std::string::npos) {
      std::string line = p.buf.substr(0, eol);
      int status = parse_status_line(line);
      if (status < 0) return finish(p, false, lb::CheckReason::Invalid, 0, "not an HTTP/1.x status line", now);
      bool ok = lb::status_in(p.t.ok_status, status);
      return finish(p, ok, lb::CheckReason::Status, status, "status " + std::to_string(status), now);
    }
    if (p.buf.size() > kMaxStatusLine)
      return finish(p, false, lb::CheckReason::Invalid, 0, "status line too long", now);
    if (n == 0) {
      return finish(p, false, lb::CheckReason::Closed, 0,
                    p.buf.empty() ? "closed without a response" : "closed in the status line", now);
    }
  }
}

void on_writable(Probe& p, uint64_t now) {
  if (p.state == Probe::State::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) return fail_errno(p, "connect()", err, now);
    p.state = p.t.tls ? Probe::State::Handshake : Probe::State::Sending;
  }
  if (p.state == Probe::State::Handshake) {
    tls_handshake(p, now);
    if (p.state != Probe::State::Sending) return;
  }
  while (p.sent < p.request.size()) {
    if (p.ssl) {
      ERR_clear_error();
      int rc = SSL_write(p.ssl, p.request.data() + p.sent, (int)(p.request.size() - p.sent));
      if (rc <= 0) return tls_wait_or_fail(p, rc, "TLS write", now);
      p.sent += (size_t)rc;
      continue;
    }
    ssize_t n = send(p.fd, p.request.data() + p.sent, p.request.size() - p.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) return fail_errno(p, "send()", errno, now);
    p.sent += (size_t)n;
  }
  p.state = Probe::State::Reading;
  p.want = POLLIN;
}

}  // namespace

std::vector<HealthTarget> health_targets(const conf::Site& site,
                                         const std::vector<std::vector<worker::ResolvedServer>>& servers,
                                         const std::vector<uint32_t>& first_server,
                                         shm::Region& shm) {
  std::vector<HealthTarget> out;
  for (size_t i = 0; i < site.pools.size(); i++) {
    const conf::Pool& p = site.pools[i];
    if (p.health_check.empty()) continue;
    for (size_t j = 0; j < p.servers.size(); j++) {
      if (p.servers[j].down) continue;
      const worker::ResolvedServer& r = servers[i][j];
      HealthTarget t;
      t.pool = p.name;
      t.server = p.servers[j].label();
      t.addr = r.addr;
      t.addrlen = r.addrlen;
      t.host_header = r.host_header;
      t.slot = &shm.servers()[first_server[i] + j];
      if (p.servers[j].dynamic_slot >= 0) {
        t.pool_slot = &shm.pools()[i];
        t.member = &shm.members()[first_server[i] + j];
        t.pool_cfg = &p;
      }
      t.path = p.health_check;
      t.interval_ms = p.health_interval_ms;
      t.timeout_ms = p.health_timeout_ms;
      t.rise = p.rise;
      t.fall = p.fall;
      t.ok_status = p.health_status;
      if (p.servers[j].tls) {
        t.tls = &p.tls;
        t.tls_host = p.servers[j].host;
      }
      out.push_back(std::move(t));
    }
  }
  return out;
}

int run_health_checker(std::vector<HealthTarget> targets) {
  pid_t parent = getppid();
  install_helper_signals(on_stop);
  std::vector<Probe> probes(targets.size());
  // One client context per pool with https:// servers, built here (after
  // fork) as each worker builds its own.
  std::map<const conf::UpstreamTls*, std::unique_ptr<worker::UpstreamTlsContext>> tls;
  uint64_t now = monotonic_ms();
  for (size_t i = 0; i < targets.size(); i++) {
    Probe& p = probes[i];
    p.t = std::move(targets[i]);
    if (p.t.tls) {
      auto [it, fresh] = tls.try_emplace(p.t.tls);
      std::string err;
      if (fresh) it->second = worker::UpstreamTlsContext::build(*p.t.tls, &err);
      if (fresh && !it->second) PLOG_ERROR("pool %s: TLS to its https:// servers: %s", p.t.pool.c_str(), err.c_str());
      p.tls = it->second.get();
    }
    if (!p.t.member) p.request = probe_request(p.t);
    p.next_ms = now;  // first probe at once: a dead server is found within `fall` intervals
  }
  size_t slots = std::count_if(probes.begin(), probes.end(), [](const Probe& p) { return p.t.member != nullptr; });
  PLOG_INFO("health checker started: %zu server%s, %zu discovery slot%s", probes.size() - slots,
            probes.size() - slots == 1 ? "" : "s", slots, slots == 1 ? "" : "s");
  std::vector<pollfd> fds;
  std::vector<Probe*> polled;
  sigset_t none;
  sigemptyset(&none);
  while (!g_stop && getppid() == parent) {
    now = monotonic_ms();
    uint64_t wake = now + 1000;  // also re-checks the parent once a second
    fds.clear();
    polled.clear();
    for (Probe& p : probes) {
      if (p.state == Probe::State::Idle && now >= p.next_ms) {
        // `disable health POOL/SERVER`: left alone (its last verdict no
        // longer counts, PoolState::usable); probed again once enabled.
        if (p.t.slot->control.load(std::memory_order_relaxed) & shm::kChecksDisabled)
          p.next_ms = now + p.t.interval_ms;
        else
          start(p, now);
      }
      if (p.state != Probe::State::Idle && now >= p.deadline_ms)
        finish(p, false, lb::CheckReason::Timeout, 0, "no status line within " + lb::format_ms(p.t.timeout_ms),
               now);
      if (p.state == Probe::State::Idle) {
        wake = std::min(wake, p.next_ms);
        continue;
      }
      wake = std::min(wake, p.deadline_ms);
      short ev = p.ssl ? p.want : p.state == Probe::State::Reading ? POLLIN : POLLOUT;
      fds.push_back({p.fd, ev, 0});
      polled.push_back(&p);
    }
    uint64_t wait = wake > now ? wake - now : 0;
    timespec ts{(time_t)(wait / 1000), (long)(wait % 1000) * 1000000};
    int n = ppoll(fds.data(), fds.size(), &ts, &none);
    if (n < 0 && errno != EINTR) {
      PLOG_ERROR("ppoll() failed: %s", strerror(errno));
      return 1;
    }
    if (n <= 0) continue;
    now = monotonic_ms();
    for (size_t i = 0; i < fds.size(); i++) {
      Probe& p = *polled[i];
      if (!fds[i].revents || p.fd != fds[i].fd) continue;
      if (p.state == Probe::State::Reading)
        on_readable(p, now);
      else
        on_writable(p, now);  // also the TLS handshake, whichever way it waits
    }
  }
  for (Probe& p : probes) {
    if (p.ssl) SSL_free(p.ssl);
    if (p.fd >= 0) close(p.fd);
  }
  PLOG_INFO("health checker stopping");
  return 0;
}

}  // namespace pasture::master
