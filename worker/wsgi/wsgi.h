// In-process WSGI: the worker's one door to embedded CPython.
//
// Every Py* call of pasture lives behind this header, in worker/wsgi/*.cc;
// nothing here includes Python.h, so the rest of the worker (and the
// master) stays free of the C API and its reference counting.
//
// One interpreter per process. load() starts it and loads every
// Site::python_apps entry with paste.deploy, exactly as `paster serve`
// would (loadapp with the same global_conf, relative_to and name); it runs
// in a worker after fork, or once in the master with `preload` (then
// fork_prepare/fork_parent/fork_child bracket every fork). A request is a
// Call: the connection fills its Request, hands it the body, then run();
// the response comes back through the connection's Sink.
//
// threads = 1: the app is called on the event loop, inline (the GIL is
// taken for the call and let go after, so threads the app starts still
// run). threads = N > 1: calls run on N app threads; the loop hands them
// requests and gets responses back through a uv_async_t, so a slow app
// never stops the worker from accepting and answering other routes.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conf/model.h"

namespace pasture::worker::wsgi {

struct Options {
  // global_conf additions from the command line (`var=value`), as paster.
  std::vector<std::pair<std::string, std::string>> vars;
  std::string server_name = "localhost";  // SERVER_NAME/SERVER_PORT: the first TCP listener
  std::string server_port = "80";
  bool multiprocess = true;  // wsgi.multiprocess: more than one worker
  uint32_t threads = 1;      // wsgi.multithread = threads > 1
  // --reload: every reload_interval seconds, the files of the loaded
  // modules (and the config files) are checked; a change sends the master
  // HUP, whose new generation imports the new code. One worker watches.
  double reload_interval = 0;
  bool watch = false;
};

// Start CPython (once) and load the site's apps. False: *err says which app
// and holds Python's traceback. The apps stay loaded for the process's life.
bool load(const conf::Site& site, const Options& o, std::string* err);
bool loaded();
// Whether `site` asks for exactly the apps load() loaded (a preloaded
// master cannot load other ones on HUP).
bool same_apps(const conf::Site& site);
void freeze();  // gc.freeze() after a preload: forked workers share those pages

// Around fork() in a process that has loaded apps (no-ops otherwise).
void fork_prepare();
void fork_parent();
void fork_child();

// Worker: start the app threads (Options::threads > 1), reporting to `loop`.
bool start_threads(uv_loop_t* loop, std::string* err);
// A worker about to exit: the app's atexit handlers run (as when a
// gunicorn or paster process ends), and Python's output is flushed.
void shutdown();

// What the connection parsed, copied (the call may outlive its buffers).
struct Request {
  struct Span {
    uint32_t off = 0, len = 0;
  };
  std::string arena;  // every field's bytes
  Span method, path, query, protocol, remote_addr;
  Span url_scheme;     // "https" over TLS, or a trusted proxy's X-Forwarded-Proto; else "http"
  uint32_t script_len = 0;  // leading bytes of `path` (decoded) that are SCRIPT_NAME
  // SERVER_NAME / SERVER_PORT when a prefix filter set them (len 0: the listener's).
  Span server_name, server_port;
  std::vector<std::pair<Span, Span>> headers;  // as received, in order
  int64_t content_length = -1;  // -1: none given (set from the body for chunked)

  void clear() {
    arena.clear();
    headers.clear();
    script_len = 0;
    server_name = server_port = Span{};
    content_length = -1;
  }
  Span add(std::string_view s) {
    Span r{(uint32_t)arena.size(), (uint32_t)s.size()};
    arena.append(s.data(), s.size());
    return r;
  }
  std::string_view view(Span s) const { return {arena.data() + s.off, s.len}; }
};

// The connection's side of a call. Every method is called on the loop thread.
class Sink {
 public:
  virtual ~Sink() = default;
  // The response head: status code, the status line the app gave ("200 OK"),
  // its header lines ("Name: value\r\n" each, checked; framing and
  // hop-by-hop fields left out), Content-Length (-1: not known). An app
  // that fails before its head gets a 500 here. close_after: the app said
  // "Connection: close".
  virtual void app_head(int status, std::string_view status_line, std::string_view fields,
                        int64_t content_length, bool close_after) = 0;
  // Body bytes (copied or written at once). False: the client is behind;
  // nothing more comes until Call::resume().
  virtual bool app_body(const char* p, size_t n) = 0;
  // Body bytes from a regular file (wsgi.file_wrapper): up to n bytes at
  // `off` of `fd`, sent with sendfile(2) while the socket takes them.
  // Returns how many were consumed (-1: the connection failed); *more =
  // false when the client is behind (then resume() follows).
  virtual int64_t app_sendfile(int fd, uint64_t off, size_t n, bool* more) = 0;
  // The end. ok = false: the response broke after its head (an exception
  // while iterating, fewer bytes than its Content-Length): the connection
  // must close. The call frees itself after this returns.
  virtual void app_end(bool ok) = 0;
};

class Call {
 public:
  static Call* create(Sink* sink, int app);
  Request& request() { return req_; }
  // Request body bytes (chunked bodies decoded). False: more than the
  // limit (413).
  bool add_body(const char* p, size_t n);
  uint64_t body_size() const;
  // The body is complete: call the app (inline, or on an app thread).
  void run();
  // The sink drained: produce more.
  void resume();
  // The client is gone: no further Sink call; the app's iterable is still
  // closed (PEP 3333). The call frees itself.
  void cancel();

  struct Impl;

 private:
  Call() = default;
  ~Call();
  Request req_;
  Impl* impl_ = nullptr;
  friend struct Impl;
};

// Bodies past this many bytes are spooled to an unlinked temporary file;
// past kMaxBody a request is refused (413), as waitress's
// max_request_body_size.
inline constexpr size_t kSpoolAt = 1 << 20;
inline constexpr uint64_t kMaxBody = 1ull << 30;

}  // namespace pasture::worker::wsgi
