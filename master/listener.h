// Listen sockets, bound by the master before fork and shared by all workers.
#pragma once

#include <string>
#include <vector>

#include "conf/model.h"

namespace pasture::master {

struct BoundListener {
  int fd = -1;
  conf::Listener cfg;
};

// Bind and listen on every configured address. On failure returns false and
// sets `err` to a message naming the address and the errno text.
bool bind_listeners(const conf::ServerSettings& s, std::vector<BoundListener>* out,
                    std::string* err);

}  // namespace pasture::master
