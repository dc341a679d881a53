// Active health checks: one process per generation, forked by the master
// after the workers, probes every server of every pool that has
// `health_check = /path`, once per health_interval for the whole server
// (never once per worker). Results land in shared memory: ServerSlot::flags
// kServerDown, set after `fall` consecutive failed probes and cleared after
// `rise` consecutive good ones (lb::apply_probe). Servers start up.
//
// A probe: a non-blocking TCP connect to the resolved address, then
// "GET /path HTTP/1.1" with Host = the server's host:port and "Connection:
// close"; the status line decides (health_status, default 200-399); no
// status line within health_timeout, a connect error or an early close is a
// failure. One poll(2) loop, no threads, no libuv. An https:// server is
// probed over TLS with its pool's settings (worker/upstream_tls_context.h:
// the same verification and SNI as the workers'), non-blocking OpenSSL on
// the probe's socket, all within health_timeout; a failed handshake
// (verification included) is a failed check with reason `tls`.

#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/health_state.h"
#include "common/membership.h"
#include "common/shm_layout.h"
#include "conf/model.h"
#include "worker/worker.h"

namespace pasture::master {

// One server to probe, with its pool's check settings.
struct HealthTarget {
  std::string pool;    // pool name, for logs
  std::string server;  // "host:port" as configured, for logs
  sockaddr_storage addr{};
  socklen_t addrlen = 0;
  std::string host_header;
  shm::ServerSlot* slot = nullptr;
  std::string path;
  uint32_t interval_ms = 5000;
  uint32_t timeout_ms = 2000;
  uint32_t rise = 2;
  uint32_t fall = 3;
  lb::StatusRanges ok_status;
  // An https:// server: its pool's TLS settings (the Site outlives the
  // checker) and its host as configured (SNI, the name verified).
  const conf::UpstreamTls* tls = nullptr;
  std::string tls_host;
  // A discovery slot (conf::UpstreamServer::dynamic_slot): the member in it
  // now is probed, its address read from the record at each probe (the
  // fields above are set then); an empty or leaving slot is not probed.
  const shm::PoolSlot* pool_slot = nullptr;
  const shm::MemberSlot* member = nullptr;
  const conf::Pool* pool_cfg = nullptr;
};

// The targets of a generation: every server (but those `down` in the
// config) of every pool with a health_check, and its discovery slots. `servers` and `first_server`
// are worker::Setup's (resolved addresses, global shm index per pool).
std::vector<HealthTarget> health_targets(const conf::Site& site,
                                         const std::vector<std::vector<worker::ResolvedServer>>& servers,
                                         const std::vector<uint32_t>& first_server,
                                         shm::Region& shm);

// The health checker's main loop, in the forked child: probes until SIGTERM,
// SIGINT or SIGQUIT, or until the parent (the master) is gone. The caller
// keeps TERM/INT/QUIT blocked (as the master does); the loop takes them only
// while waiting. Returns the exit code.
int run_health_checker(std::vector<HealthTarget> targets);

}  // namespace pasture::master
