// The admin socket on a worker's loop (HAProxy's CLI style): the master binds
// `admin_socket` once; every worker accepts from it. A connection sends one
// command line, gets the answer (worker/admin_cmd.h), and is closed.
#pragma once

namespace pasture::worker {

class Worker;
class AdminSocket;

// Starts accepting on the inherited listening unix socket `fd`. Null on
// failure (logged): the worker serves on without it.
AdminSocket* start_admin_socket(Worker& w, int fd);
// Stops accepting (a draining worker); connections in progress finish.
void stop_admin_socket(AdminSocket* a);

}  // namespace pasture::worker
