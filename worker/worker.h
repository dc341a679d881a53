// The worker process: one libuv loop serving client connections accepted
// from the listen sockets inherited from the master.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/balancer.h"
#include "common/shm_layout.h"
#include "conf/model.h"
#include "worker/wsgi/wsgi.h"

namespace pasture::worker {

class TlsContext;

// One upstream server's address, resolved by the master at start-up.
struct ResolvedServer {
  sockaddr_storage addr{};
  socklen_t addrlen = 0;
  std::string host_header;  // "host:port" as written in the config
};

// A discovered member's address and Host (preserve_host = off): the name
// asked for A/AAAA records, the address for SRV targets (and etcd).
ResolvedServer member_address(const conf::Pool& pool, const lb::Member& m);

// What the master hands a worker at fork. Everything is read-only for the
// worker except the shared-memory region.
struct Setup {
  const conf::Site* site = nullptr;
  std::vector<int> listen_fds;
  shm::Region* shm = nullptr;
  int slot = 0;                                      // worker slot in shm
  std::vector<std::vector<ResolvedServer>> servers;  // [pool][server]
  std::vector<uint32_t> pool_first_server;           // global shm server index per pool
  // Balancer tables per pool (schedules, Maglev/ring tables), computed once
  // before fork; workers only read them.
  std::vector<lb::PoolState>* pool_states = nullptr;
  uint32_t graceful_timeout_ms = 30000;
  std::string access_log;     // "" = off, "-" = stdout, else a file
  std::string log_file;       // --log-file: reopened onto fds 1/2 on USR1
  pid_t master_pid = 0;       // the worker exits (gracefully) if this process dies
  uint64_t max_requests = 0;  // drain and exit after this many (0 = never); jitter applied
  int n_workers = 1;          // accept balance looks at slots 0..n-1 (this one among them)
  bool reuse_port = false;    // also accept on a private SO_REUSEPORT socket per listener
  int admin_fd = -1;          // the admin socket (listening, unix), or -1 (worker/admin_socket.h)
  // An eventfd in every worker's set: a worker woken alone (EPOLLEXCLUSIVE)
  // for a connection it cannot take wakes the others with it (-1: the
  // listeners wake every worker instead). See Worker::on_listener.
  int accept_kick_fd = -1;
  // The TLS listeners' context (worker/tls_context.h), built by the master
  // before fork; null when no listener speaks TLS. Listener i speaks TLS
  // when site->server.listen[i].tls.
  const TlsContext* tls = nullptr;
  // Python apps in-process (app_mode = embedded): loaded after fork unless
  // the master preloaded them.
  bool embed_apps = false;
  wsgi::Options app_options;
};

// The balancer view of a pool: tables from the config, counters in shm.
// `members`: the pool's shm::MemberSlots (indexed like `servers`), for a
// pool with discovery sources (master/resolver.h); the master appends
// conf::Pool::max_servers slots (UpstreamServer::dynamic_slot) to such a pool.
lb::PoolState build_pool_state(const conf::Pool& pool, shm::PoolSlot* slot,
                               shm::ServerSlot* servers, shm::MemberSlot* members = nullptr);

// Before a process runs a Python app's code, and once a worker has bound
// what it binds: ambient capabilities cleared (systemd's
// AmbientCapabilities, or the CAP_NET_BIND_SERVICE a master dropped to
// `user` keeps for reuse_port, are for binding listeners); a non-root
// process also empties its permitted, effective and inheritable sets.
void drop_capabilities();

// Run the worker until told to stop. Returns the process exit code.
int run(const Setup& setup);

}  // namespace pasture::worker
