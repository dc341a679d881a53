// Listen sockets, bound by the master before fork and shared by all workers.
#pragma once

#include <netdb.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "conf/model.h"

namespace pasture::master {

struct BoundListener {
  int fd = -1;
  conf::Listener cfg;
  ino_t unix_ino = 0;  // a unix socket: the inode of the file bind() made
};

// getaddrinfo() for a TCP listener (host "" or "*": every address), as
// bind_listeners() binds it: 0 and a list to freeaddrinfo(), or an EAI_* code.
int resolve_listener(const conf::Listener& l, addrinfo** res);

// Bind and listen on every configured address. On failure returns false and
// sets `err` to a message naming the address and the errno text. A unix
// socket's file is chmod'ed to its unix_perms; a stale one (nobody accepting)
// is replaced, a live one is an error. With reuse_port, `reuse_port_owner`
// (not -1) creates the TCP sockets as that user, whom the workers binding
// their own sockets to the same port will run as (master/privileges.h).
bool bind_listeners(const conf::ServerSettings& s, std::vector<BoundListener>* out,
                    std::string* err, uid_t reuse_port_owner = (uid_t)-1);

// Unlinks the unix socket file at `path` if it is still the socket with inode
// `ino` (not a file another instance has since bound there).
bool remove_unix_socket(const std::string& path, ino_t ino);

}  // namespace pasture::master
