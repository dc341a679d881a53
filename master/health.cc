#include "master/health.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "master/master.h"

namespace pasture::master {
namespace {

// A status line longer than this is not one.
constexpr size_t kMaxStatusLine = 4096;

volatile sig_atomic_t g_stop = 0;

void on_stop(int) { g_stop = 1; }

struct Probe {
  enum class State { Idle, Connecting, Sending, Reading };
  HealthTarget t;
  lb::ProbeCounts counts;
  State state = State::Idle;
  int fd = -1;
  uint64_t started_ms = 0;
  uint64_t deadline_ms = 0;
  uint64_t next_ms = 0;  // Idle: when the next probe starts
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
  if (p.fd >= 0) close(p.fd);
  p.fd = -1;
  p.state = Probe::State::Idle;
  p.buf.clear();
  p.next_ms = std::max(p.started_ms + p.t.interval_ms, now);
  const HealthTarget& t = p.t;
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

void start(Probe& p, uint64_t now) {
  p.started_ms = now;
  p.deadline_ms = now + p.t.timeout_ms;
  p.sent = 0;
  p.buf.clear();
  p.fd = socket(p.t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p.fd < 0) return fail_errno(p, "socket()", errno, now);
  if (connect(p.fd, reinterpret_cast<const sockaddr*>(&p.t.addr), p.t.addrlen) == 0) {
    p.state = Probe::State::Sending;
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
    ssize_t n = recv(p.fd, chunk, sizeof chunk, 0);
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
    p.state = Probe::State::Sending;
  }
  while (p.sent < p.request.size()) {
    ssize_t n = send(p.fd, p.request.data() + p.sent, p.request.size() - p.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) return fail_errno(p, "send()", errno, now);
    p.sent += (size_t)n;
  }
  p.state = Probe::State::Reading;
}

void install_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT}) sigaction(sig, &sa, nullptr);
  sa.sa_handler = SIG_IGN;
  for (int sig : {SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGPIPE}) sigaction(sig, &sa, nullptr);
  sa.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &sa, nullptr);
  // The master normally stops us; this covers its SIGKILL.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
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
      t.path = p.health_check;
      t.interval_ms = p.health_interval_ms;
      t.timeout_ms = p.health_timeout_ms;
      t.rise = p.rise;
      t.fall = p.fall;
      t.ok_status = p.health_status;
      out.push_back(std::move(t));
    }
  }
  return out;
}

int run_health_checker(std::vector<HealthTarget> targets) {
  pid_t parent = getppid();
  install_signals();
  std::vector<Probe> probes(targets.size());
  uint64_t now = monotonic_ms();
  for (size_t i = 0; i < targets.size(); i++) {
    Probe& p = probes[i];
    p.t = std::move(targets[i]);
    p.request = "GET " + p.t.path + " HTTP/1.1\r\nHost: " + p.t.host_header +
                "\r\nUser-Agent: pasture-health\r\nAccept: */*\r\nConnection: close\r\n\r\n";
    p.next_ms = now;  // first probe at once: a dead server is found within `fall` intervals
  }
  PLOG_INFO("health checker started: %zu server%s", probes.size(), probes.size() == 1 ? "" : "s");
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
      short ev = p.state == Probe::State::Reading ? POLLIN : POLLOUT;
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
        on_writable(p, now);
    }
  }
  for (Probe& p : probes)
    if (p.fd >= 0) close(p.fd);
  PLOG_INFO("health checker stopping");
  return 0;
}

}  // namespace pasture::master
