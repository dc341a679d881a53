// systemd integration without libsystemd: sd_notify(3) and sd_listen_fds(3)
// semantics, plus the fd hand-over used by binary upgrades.
#pragma once

#include <string>
#include <vector>

namespace pasture::master {

// Send `state` ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET if set. Returns
// false only when the socket is set and sending failed.
bool sd_notify(const std::string& state);

// In a process the master forks (worker, health checker, hosted app): only
// the master may notify systemd (the unit's NotifyAccess=main), and code
// running here must not find a socket to try.
void forget_notify_socket();

// sd_listen_fds(): the sockets systemd passed (fd 3 ...), if LISTEN_PID is
// this process. Unsets LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES so children do
// not see them.
std::vector<int> sd_listen_fds();

// Listen sockets handed over by the previous master in a binary upgrade
// ($PASTURE_INHERIT_FDS = "fd,fd,..."). Unsets the variable.
std::vector<int> inherited_fds();
inline constexpr const char* kInheritEnv = "PASTURE_INHERIT_FDS";

// The accept kick (worker::Setup::accept_kick_fd) the previous master
// handed over in a binary upgrade ($PASTURE_ACCEPT_KICK_FD), so that the
// workers of both masters, on the same listen sockets, wake each other; -1
// if none. Only in an upgrade (`upgrade`: $PASTURE_INHERIT_FDS was set):
// otherwise the variable is some other process's. Unsets it; the
// descriptor is close-on-exec.
int inherited_kick_fd(bool upgrade);
inline constexpr const char* kKickEnv = "PASTURE_ACCEPT_KICK_FD";

// "host:port" of a bound socket, as listeners are matched on reload/upgrade.
std::string socket_name(int fd);

}  // namespace pasture::master
