// Master, the runtime-control side (worker/admin_cmd.h runs the commands in
// the workers): what only the master can do, on its tick.
#include "common/log.h"
#include "master/listener.h"
#include "master/master.h"

namespace pasture::master {

bool Master::admin_tick(uint64_t now) {
  shm::Region& r = *gen_->shm;
  // `clear counters`: each worker zeroes its own row; the retired row is ours.
  uint64_t epoch = r.header().clear_epoch.load(std::memory_order_acquire);
  shm::StatsRow retired = r.retired_row();
  if (retired.worker().clear_epoch_seen.get() != epoch) {
    shm::clear_row(retired, r.sizes().n_pools, r.sizes().n_servers);
    retired.worker().clear_epoch_seen.set(epoch);
  }
  // `drain`: /ready has been failing since it was asked; now stop.
  uint64_t at = r.header().drain_at_ms.load(std::memory_order_relaxed);
  if (at && now >= at) {
    PLOG_NOTICE("drain: the delay is over; graceful shutdown");
    return true;
  }
  return false;
}

bool Master::open_admin_socket(std::string* err) {
  const conf::ServerSettings& s = gen_->site.server;
  if (s.admin_socket.empty()) return true;
  // A USR2 upgrade hands it over with the listen sockets.
  std::string key = "unix:" + s.admin_socket;
  for (auto it = sockets_.begin(); it != sockets_.end(); ++it)
    if (it->key == key) {
      admin_ = *it;
      sockets_.erase(it);
      return true;
    }
  conf::ServerSettings one = s;
  conf::Listener l;
  l.unix_path = s.admin_socket;
  l.unix_perms = s.admin_socket_mode;
  one.listen = {l};
  one.reuse_port = false;
  std::vector<BoundListener> bound;
  if (!bind_listeners(one, &bound, err)) {
    *err = "admin_socket: " + *err;
    return false;
  }
  admin_ = {bound[0].fd, key, s.admin_socket, bound[0].unix_ino};
  return true;
}

}  // namespace pasture::master
