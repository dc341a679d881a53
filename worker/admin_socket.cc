#include "worker/admin_socket.h"

#include <sys/socket.h>
#include <uv.h>

#include <string>

#include "common/log.h"
#include "worker/admin_cmd.h"
#include "worker/runtime.h"

namespace pasture::worker {

class AdminSocket {
 public:
  uv_pipe_t listener;
  Worker* w = nullptr;
};

namespace {

// A command is one line; a client that sends none in this time is dropped.
constexpr size_t kMaxLine = 4096;
constexpr uint64_t kLineTimeoutMs = 10000;

struct AdminConn {
  uv_pipe_t pipe;
  uv_timer_t timer;
  uv_write_t wr;
  Worker* w = nullptr;
  std::string in, out, who;
  int open_handles = 0;
  bool answered = false;
};

void on_closed(uv_handle_t* h) {
  auto* c = static_cast<AdminConn*>(h->data);
  if (--c->open_handles == 0) delete c;
}

void close_conn(AdminConn* c) {
  uv_timer_stop(&c->timer);
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&c->pipe), reinterpret_cast<uv_handle_t*>(&c->timer)})
    if (!uv_is_closing(h)) uv_close(h, on_closed);
}

void answer(AdminConn* c, const std::string& text) {
  c->answered = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->pipe));
  c->out = text;
  uv_buf_t b = uv_buf_init(c->out.data(), (unsigned)c->out.size());
  int r = uv_write(&c->wr, reinterpret_cast<uv_stream_t*>(&c->pipe), &b, 1,
                   [](uv_write_t* req, int) { close_conn(static_cast<AdminConn*>(req->data)); });
  if (r < 0) close_conn(c);
}

void run_line(AdminConn* c, std::string_view line) {
  Worker& w = *c->w;
  AdminResult r = execute_admin(
      SnapshotSource{&w.site(), &w.region(), &w.pool_first_server(), w.ready_fails(), w.now()}, line, c->who);
  answer(c, r.text);
}

void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<AdminConn*>(s->data);
  if (c->answered) return;
  if (n > 0) {
    c->in.append(buf->base, (size_t)n);
    size_t nl = c->in.find('\n');
    if (nl != std::string::npos) return run_line(c, std::string_view(c->in).substr(0, nl));
    if (c->in.size() > kMaxLine) return answer(c, "error: one command line, at most 4096 bytes\n");
    return;
  }
  if (n == UV_EOF && !c->in.empty()) return run_line(c, c->in);  // no newline: the whole input
  if (n < 0) close_conn(c);
}

std::string peer_of(uv_pipe_t* p) {
  uv_os_fd_t fd;
  ucred cr{};
  socklen_t len = sizeof cr;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(p), &fd) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
    return "admin socket, uid " + std::to_string(cr.uid) + " pid " + std::to_string(cr.pid);
  return "admin socket";
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* a = static_cast<AdminSocket*>(server->data);
  auto* c = new AdminConn;
  c->w = a->w;
  uv_pipe_init(a->w->loop(), &c->pipe, 0);
  c->pipe.data = c;
  c->open_handles = 1;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->pipe)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->pipe), on_closed);  // another worker took it
    return;
  }
  c->who = peer_of(&c->pipe);
  uv_timer_init(a->w->loop(), &c->timer);
  c->timer.data = c;
  c->open_handles = 2;
  c->wr.data = c;
  uv_timer_start(&c->timer, [](uv_timer_t* t) { close_conn(static_cast<AdminConn*>(t->data)); }, kLineTimeoutMs,
                 0);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->pipe), Worker::alloc_cb, on_read);
}

}  // namespace

AdminSocket* start_admin_socket(Worker& w, int fd) {
  auto* a = new AdminSocket;
  a->w = &w;
  uv_pipe_init(w.loop(), &a->listener, 0);
  a->listener.data = a;
  int r = uv_pipe_open(&a->listener, fd);
  if (r == 0) r = uv_listen(reinterpret_cast<uv_stream_t*>(&a->listener), 64, on_connection);
  if (r < 0) {
    PLOG_ERROR("admin socket: cannot accept on fd %d: %s", fd, uv_strerror(r));
    uv_close(reinterpret_cast<uv_handle_t*>(&a->listener),
             [](uv_handle_t* h) { delete static_cast<AdminSocket*>(h->data); });
    return nullptr;
  }
  // The loop's life is its client connections (Worker::maybe_exit), not this.
  uv_unref(reinterpret_cast<uv_handle_t*>(&a->listener));
  return a;
}

void stop_admin_socket(AdminSocket* a) {
  if (!a) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&a->listener),
           [](uv_handle_t* h) { delete static_cast<AdminSocket*>(h->data); });
}

}  // namespace pasture::worker
