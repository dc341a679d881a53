// Master, discovery: the slots of pools with `dns:` sources and the
// resolver process that fills them (master/resolver.h).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/sanitizer.h"
#include "master/master.h"
#include "master/notify.h"
#include "master/resolver.h"

namespace pasture::master {

void Master::add_discovery_slots(conf::Site& site) {
  for (conf::Pool& p : site.pools) {
    if (p.sources.empty()) continue;
    for (uint32_t k = 0; k < p.max_servers; k++) {
      conf::UpstreamServer slot = p.sources[0];  // max_fails, fail_timeout: the first source's
      slot.discover = conf::UpstreamServer::Discover::None;
      slot.dynamic_slot = (int)k;
      slot.host.clear();
      slot.port = 0;
      p.servers.push_back(slot);
    }
  }
}

void Master::spawn_resolver() {
  resolver_respawn_at_ms_ = 0;
  Generation& g = *gen_;
  std::vector<ResolverPool> pools = resolver_pools(g.site, g.setup.pool_first_server, *g.shm);
  if (pools.empty()) return;
  pid_t pid = fork();
  if (pid < 0) {
    PLOG_ERROR("fork() failed: %s", strerror(errno));
    resolver_respawn_at_ms_ = monotonic_ms() + 1000;
    return;
  }
  if (pid == 0) {
    log::set_role("resolver");
    forget_notify_socket();
    worker::drop_capabilities();
    close_listeners_in_child();
    int rc = run_resolver(std::move(pools));
    fflush(nullptr);
    sanitizer::check_leaks_before_exit();
    _exit(rc);
  }
  resolver_pid_ = pid;
  PLOG_INFO("resolver is pid %d (generation %d, %zu pool%s)", (int)pid, g.id, pools.size(),
            pools.size() == 1 ? "" : "s");
}

void Master::stop_resolver() {
  if (resolver_pid_ > 0) retire(resolver_pid_, SIGTERM);
  resolver_pid_ = 0;
  resolver_respawn_at_ms_ = 0;
}

bool Master::reaped_resolver(pid_t pid, int status) {
  if (pid != resolver_pid_ || pid <= 0) return false;
  resolver_pid_ = 0;
  if (stopping_) return true;
  PLOG_WARN("resolver (pid %d) %s %d; restarting it (the pools keep their members)", (int)pid,
            WIFSIGNALED(status) ? "killed by signal" : "exited with status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  resolver_respawn_at_ms_ = monotonic_ms() + 1000;
  return true;
}

}  // namespace pasture::master
