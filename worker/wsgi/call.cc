// One WSGI call: the app called with its environ, start_response checked,
// the iterable driven with back-pressure, close() always called. Inline on
// the loop (threads = 1) or on an app thread (threads.cc) — the same
// steps, with the Sink reached directly or through the loop's async.
#include <fcntl.h>
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <ctime>

#include "common/log.h"
#include "worker/stream_io.h"
#include "worker/wsgi/call_impl.h"

namespace pasture::worker::wsgi {

// ------------------------------------------------------------------ Body --
Body::~Body() {
  if (fd_ >= 0) ::close(fd_);
}

bool Body::add(const char* p, size_t n) {
  if (size_ + n > kMaxBody) return false;
  if (fd_ < 0 && mem_.size() + n <= kSpoolAt) {
    mem_.append(p, n);
    size_ += n;
    return true;
  }
  if (fd_ < 0) {
    const char* dir = getenv("TMPDIR");
    fd_ = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      PLOG_ERROR("cannot spool a request body: open(O_TMPFILE) failed: %s", strerror(errno));
      return false;
    }
    std::string m;
    m.swap(mem_);
    size_ = 0;
    if (!add(m.data(), m.size())) return false;
  }
  while (n > 0) {
    ssize_t w = pwrite(fd_, p, n, (off_t)size_);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      PLOG_ERROR("cannot spool a request body: %s", strerror(errno));
      return false;
    }
    p += w;
    n -= (size_t)w;
    size_ += (uint64_t)w;
  }
  return true;
}

int64_t Body::read(uint64_t off, char* dst, size_t n) const {
  if (off >= size_) return 0;
  if (n > size_ - off) n = (size_t)(size_ - off);
  if (fd_ < 0) {
    memcpy(dst, mem_.data() + off, n);
    return (int64_t)n;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd_, dst + got, n - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? -1 : (int64_t)got;
    got += (size_t)r;
  }
  return (int64_t)got;
}

// ------------------------------------------------------- response head --
namespace {

bool is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// Fields a WSGI app may not set (PEP 3333: hop-by-hop) or that pasture
// frames itself; "Connection: close" is honoured.
bool hop_by_hop(std::string_view n) {
  static constexpr std::string_view kNames[] = {"connection", "keep-alive", "proxy-connection", "te",
                                                "trailer",    "transfer-encoding", "upgrade"};
  for (std::string_view k : kNames)
    if (n.size() == k.size() && strncasecmp(n.data(), k.data(), k.size()) == 0) return true;
  return false;
}

bool ieq(std::string_view a, const char* b) { return a.size() == strlen(b) && strncasecmp(a.data(), b, a.size()) == 0; }

// A str as latin-1 bytes (PEP 3333: native strings); null with TypeError.
bool latin1_of(PyObject* o, const char* what, std::string_view* out) {
  if (!PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be a str, not %s", what, Py_TYPE(o)->tp_name);
    return false;
  }
  if (PyUnicode_READY(o) < 0) return false;
  if (PyUnicode_KIND(o) != PyUnicode_1BYTE_KIND) {
    PyErr_Format(PyExc_ValueError, "%s is not latin-1: %R", what, o);
    return false;
  }
  *out = std::string_view((const char*)PyUnicode_1BYTE_DATA(o), (size_t)PyUnicode_GET_LENGTH(o));
  return true;
}

// "Date: ...\r\n" for now, made once a second per thread.
std::string_view date_field() {
  thread_local time_t last = 0;
  thread_local char buf[64];
  thread_local size_t len = 0;
  time_t now = time(nullptr);
  if (now != last) {
    struct tm tm;
    gmtime_r(&now, &tm);
    len = strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    last = now;
  }
  return {buf, len};
}

}  // namespace

int CallHooks::start_response(Call::Impl* c, PyObject* status, PyObject* headers, PyObject* exc_info) {
  if (exc_info != Py_None) {
    if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
      PyErr_SetString(PyExc_TypeError, "exc_info must be a (type, value, traceback) tuple or None");
      return -1;
    }
    if (c->head_sent) {
      // PEP 3333: too late to change the response: re-raise the app's error.
      PyObject* t = PyTuple_GET_ITEM(exc_info, 0);
      PyObject* v = PyTuple_GET_ITEM(exc_info, 1);
      PyObject* tb = PyTuple_GET_ITEM(exc_info, 2);
      Py_INCREF(t);
      Py_INCREF(v);
      Py_INCREF(tb);
      PyErr_Restore(t, v, tb == Py_None ? nullptr : tb);
      if (tb == Py_None) Py_DECREF(tb);
      return -1;
    }
  } else if (c->have_status) {
    PyErr_SetString(PyExc_AssertionError, "start_response() called a second time without exc_info");
    return -1;
  }
  std::string_view st;
  if (!latin1_of(status, "status", &st)) return -1;
  if (st.size() < 4 || st[3] != ' ' || !isdigit((unsigned char)st[0]) || !isdigit((unsigned char)st[1]) ||
      !isdigit((unsigned char)st[2]) || st[0] < '2' ||
      std::any_of(st.begin(), st.end(), [](char ch) { return ((unsigned char)ch < 0x20 && ch != '\t') || ch == 0x7f; })) {
    PyErr_Format(PyExc_ValueError, "status must be 'NNN reason' with NNN from 200 to 999: %R", status);
    return -1;
  }
  Ref seq(PySequence_Fast(headers, "headers must be a list of (name, value) tuples"));
  if (!seq) return -1;
  std::string fields;
  int64_t clen = -1;
  bool conn_close = false, have_date = false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.get());
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq.get(), i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
      PyErr_Format(PyExc_TypeError, "header %zd must be a (name, value) tuple, not %R", i, item);
      return -1;
    }
    std::string_view name, value;
    if (!latin1_of(PyTuple_GET_ITEM(item, 0), "header name", &name) ||
        !latin1_of(PyTuple_GET_ITEM(item, 1), "header value", &value))
      return -1;
    bool ok = !name.empty();
    for (char ch : name) ok = ok && is_tchar((unsigned char)ch);
    for (char ch : value) ok = ok && ((unsigned char)ch >= 0x20 || ch == '\t') && ch != 0x7f;
    if (!ok) {
      PyErr_Format(PyExc_ValueError, "invalid header field: %R", item);
      return -1;
    }
    if (hop_by_hop(name)) {
      if (ieq(name, "connection") && strcasestr(std::string(value).c_str(), "close")) conn_close = true;
      continue;
    }
    if (ieq(name, "content-length")) {
      int64_t v = 0;
      bool digits = !value.empty() && value.size() < 19;
      for (char ch : value) {
        digits = digits && ch >= '0' && ch <= '9';
        v = v * 10 + (ch - '0');
      }
      if (!digits || (clen >= 0 && clen != v)) {
        PyErr_Format(PyExc_ValueError, "invalid Content-Length: %R", item);
        return -1;
      }
      clen = v;
      continue;  // the connection writes the framing
    }
    if (ieq(name, "date")) have_date = true;
    fields.append(name).append(": ").append(value).append("\r\n");
  }
  if (!have_date) fields.append(date_field());
  c->status = (st[0] - '0') * 100 + (st[1] - '0') * 10 + (st[2] - '0');
  c->status_line.assign(st);
  c->fields.swap(fields);
  c->clen = clen;
  c->conn_close = conn_close;
  c->have_status = true;
  return 0;
}

int CallHooks::write(Call::Impl* c, PyObject* data) {
  if (!PyBytes_Check(data)) {
    PyErr_Format(PyExc_TypeError, "write() takes bytes, not %s", Py_TYPE(data)->tp_name);
    return -1;
  }
  if (!c->have_status) {
    PyErr_SetString(PyExc_AssertionError, "write() before start_response()");
    return -1;
  }
  // Only from the app call itself: another thread of the app (or the call
  // after it returned, paused by back-pressure) would reach the connection
  // from outside the loop.
  if (!pthread_equal(c->runner, pthread_self()) || (!c->threaded && !c->busy)) {
    PyErr_SetString(PyExc_RuntimeError, "write() may only be called by the app while it runs its request");
    return -1;
  }
  if (!c->send(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)) && c->cancelled) {
    PyErr_SetString(PyExc_OSError, "the client disconnected");
    return -1;
  }
  return 0;
}

const Body& CallHooks::body(Call::Impl* c) { return c->body; }

// --------------------------------------------------------------- driving --
// Calls the app. GIL held.
Call::Impl::Step Call::Impl::start() {
  Globals& G = g();
  runner = pthread_self();
  input = new_input(this);
  start_fn = new_start_response(this);
  if (!input || !start_fn) return fail();
  env = build_environ(call->req_, input);
  if (!env) return fail();
  PyObject* args[2] = {env, start_fn};
  result = PyObject_Vectorcall(G.apps[app], args, 2, nullptr);
  if (!result) return fail();
  if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
    list_i = 0;
    // One pass over a list of bytes gives the length a head without
    // Content-Length can carry (waitress does the same), so the answer
    // keeps the connection without chunking.
    if (have_status && clen < 0 && !head_sent) {  // (write() may have sent some already)
      int64_t total = 0;
      Py_ssize_t n = PySequence_Fast_GET_SIZE(result);
      for (Py_ssize_t i = 0; i < n && total >= 0; i++) {
        PyObject* it = PySequence_Fast_GET_ITEM(result, i);
        total = PyBytes_Check(it) ? total + PyBytes_GET_SIZE(it) : -1;
      }
      if (total >= 0) clen = total;
    }
  } else if (!threaded && Py_TYPE(result) == &FileWrapperType && open_file()) {
    return produce_file();
  } else {
    iter = PyObject_GetIter(result);
    if (!iter) return fail();
  }
  return produce();
}

// A file_wrapper whose file has a descriptor on a regular file: its bytes
// from the current position to the end, with sendfile. Else (a BytesIO,
// a pipe) the wrapper is iterated. GIL held.
bool Call::Impl::open_file() {
  PyObject* f = file_wrapper_file(result);
  Ref fileno(f ? PyObject_CallMethod(f, "fileno", nullptr) : nullptr);
  int fd = fileno ? (int)PyLong_AsLong(fileno.get()) : -1;
  if (fd < 0) {
    PyErr_Clear();
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  Ref pos(PyObject_CallMethod(f, "tell", nullptr));
  long long off = pos ? PyLong_AsLongLong(pos.get()) : -1;
  if (off < 0) {
    PyErr_Clear();
    off = lseek(fd, 0, SEEK_CUR);
  }
  if (off < 0 || off > st.st_size) return false;
  file_fd = fd;
  file_off = (uint64_t)off;
  file_left = (uint64_t)(st.st_size - off);
  if (have_status && clen < 0) clen = (int64_t)file_left;  // known: no chunking
  if (clen >= 0) file_left = std::min<uint64_t>(file_left, (uint64_t)clen - std::min<uint64_t>(sent, (uint64_t)clen));
  return true;
}

Call::Impl::Step Call::Impl::produce_file() {
  if (!have_status) {
    PyErr_SetString(PyExc_AssertionError, "the app returned without calling start_response()");
    return fail();
  }
  if (!head_sent) send_head();
  while (file_left > 0 && !cancelled) {
    bool more = true;
    int64_t k = sink->app_sendfile(file_fd, file_off, (size_t)std::min<uint64_t>(file_left, 1 << 20), &more);
    if (k < 0 || cancelled) return finish(false);
    file_off += (uint64_t)k;
    file_left -= (uint64_t)k;
    sent += (uint64_t)k;
    if (!more) return kPaused;
  }
  return finish(!cancelled);
}

// Items of the iterable to the sink until it is behind (kPaused) or the
// iterable ends (kDone). GIL held.
Call::Impl::Step Call::Impl::produce() {
  if (file_fd >= 0) return produce_file();
  for (;;) {
    if (cancelled) return finish(false);
    PyObject* item;
    if (list_i >= 0) {
      if (list_i >= PySequence_Fast_GET_SIZE(result)) return finish(true);
      item = PySequence_Fast_GET_ITEM(result, list_i);
      Py_INCREF(item);
      list_i++;
    } else {
      item = PyIter_Next(iter);
      if (!item) return PyErr_Occurred() ? fail() : finish(true);
    }
    Ref it(item);
    if (!PyBytes_Check(item)) {
      PyErr_Format(PyExc_TypeError, "the app's iterable yielded %s, not bytes", Py_TYPE(item)->tp_name);
      return fail();
    }
    size_t n = (size_t)PyBytes_GET_SIZE(item);
    if (n == 0) continue;
    if (!have_status) {
      PyErr_SetString(PyExc_AssertionError, "the app's iterable yielded before start_response()");
      return fail();
    }
    if (!send(PyBytes_AS_STRING(item), n)) {
      if (cancelled) return finish(false);
      if (!threaded) return kPaused;
    }
    if (clen >= 0 && sent >= (uint64_t)clen) return finish(true);  // more than it said is dropped
  }
}

// Body bytes (and the head before the first): false when the sink is
// behind (inline) or the call was cancelled.
bool Call::Impl::send(const char* p, size_t n) {
  if (cancelled) return false;
  if (!head_sent) send_head();
  if (clen >= 0 && sent + n > (uint64_t)clen) n = sent >= (uint64_t)clen ? 0 : (size_t)((uint64_t)clen - sent);
  sent += n;
  if (n == 0) return !cancelled;
  if (threaded) return thread_send(p, n);
  bool more = sink->app_body(p, n);
  return more && !cancelled;
}

void Call::Impl::send_head() {
  head_sent = true;
  if (threaded) {
    thread_head();
    return;
  }
  sink->app_head(status, status_line, fields, clen, conn_close);
}

// The iterable ended (or the client left). GIL held.
Call::Impl::Step Call::Impl::finish(bool complete) {
  if (complete && !cancelled) {
    if (!have_status) {
      PyErr_SetString(PyExc_AssertionError, "the app returned without calling start_response()");
      return fail();
    }
    if (!head_sent) {
      if (clen < 0) clen = 0;  // nothing came: an empty body, framed as such
      send_head();
    }
    // A body shorter than its Content-Length cannot end the message.
    // A HEAD, 204 or 304 answer carries no body, whatever its Content-Length says.
    bool no_body = call->req_.view(call->req_.method) == "HEAD" || status == 204 || status == 304;
    if (!no_body && clen >= 0 && sent < (uint64_t)clen) {
      std::string path(call->req_.view(call->req_.path));
      PLOG_WARN("app response to %s ended after %llu of its Content-Length %lld bytes; closing the connection",
                path.c_str(), (unsigned long long)sent, (long long)clen);
      ok = false;
    }
  }
  close_result();
  return kDone;
}

// The app raised. GIL held, exception set.
Call::Impl::Step Call::Impl::fail() {
  if (cancelled) {
    PyErr_Clear();  // the client is gone: nothing to report
  } else {
    std::string what = "app error on " + std::string(call->req_.view(call->req_.method)) + " " +
                       std::string(call->req_.view(call->req_.path));
    log_exception(what.c_str());
  }
  if (!cancelled) {
    if (!head_sent) {
      static constexpr std::string_view kBody = "500 Internal Server Error\n";
      status = 500;
      status_line = "500 Internal Server Error";
      fields = "Content-Type: text/plain; charset=utf-8\r\n";
      fields.append(date_field());
      clen = (int64_t)kBody.size();
      have_status = true;
      conn_close = false;
      send(kBody.data(), kBody.size());
    } else {
      ok = false;
    }
  }
  close_result();
  return kDone;
}

// PEP 3333: close() whatever happened; then nothing of the call stays
// reachable from Python. GIL held.
void Call::Impl::close_result() {
  // A list or tuple has no close(); anything else is asked without raising
  // (an AttributeError per request would cost more than the app).
  if (result && !PyList_CheckExact(result) && !PyTuple_CheckExact(result)) {
    PyObject *exc_t, *exc_v, *exc_tb;
    PyErr_Fetch(&exc_t, &exc_v, &exc_tb);
    PyObject* m = nullptr;
    if (_PyObject_LookupAttr(result, g().s_close, &m) < 0) PyErr_Clear();
    Ref close_m(m);
    if (close_m) {
      Ref r(PyObject_CallNoArgs(close_m.get()));
      if (!r) log_exception("the app iterable's close() raised");
    }
    PyErr_Restore(exc_t, exc_v, exc_tb);
    PyErr_Clear();
  }
  detach(input, start_fn);
  Py_CLEAR(iter);
  Py_CLEAR(result);
  Py_CLEAR(env);
  Py_CLEAR(input);
  Py_CLEAR(start_fn);
}

// ------------------------------------------------------------- inline --
void Call::Impl::run_inline(bool first) {
  busy = true;
  PyEval_RestoreThread(g().main_ts);
  Step s = first ? start() : produce();
  g().main_ts = PyEval_SaveThread();
  busy = false;
  if (s == kPaused && !cancelled) return;
  if (s == kPaused) {  // cancelled from inside a sink call while paused
    PyEval_RestoreThread(g().main_ts);
    finish(false);
    g().main_ts = PyEval_SaveThread();
  }
  Call* c = call;
  if (!cancelled) sink->app_end(ok);
  delete c;
}

// ---------------------------------------------------------------- Call --
Call* Call::create(Sink* sink, int app) {
  Call* c = new Call;
  c->impl_ = new Impl;
  c->impl_->call = c;
  c->impl_->sink = sink;
  c->impl_->app = app;
  c->impl_->threaded = g().multithread;
  return c;
}

Call::~Call() { delete impl_; }

bool Call::add_body(const char* p, size_t n) { return impl_->body.add(p, n); }
uint64_t Call::body_size() const { return impl_->body.size(); }

void Call::run() {
  // CONTENT_LENGTH: the body's real length (a chunked body's too); without
  // a body, the template's "0".
  req_.content_length = impl_->body.size() ? (int64_t)impl_->body.size() : -1;
  impl_->started = true;
  if (impl_->threaded)
    impl_->thread_submit();
  else
    impl_->run_inline(true);
}

void Call::resume() {
  if (impl_->threaded) {
    impl_->loop_resume();
    return;
  }
  if (!impl_->busy && impl_->started) impl_->run_inline(false);
}

void Call::cancel() {
  Impl* i = impl_;
  if (i->threaded) {
    i->loop_cancel();
    return;
  }
  i->cancelled = true;
  if (i->busy) return;  // run_inline sees it
  if (i->started) {
    PyEval_RestoreThread(g().main_ts);
    i->close_result();
    g().main_ts = PyEval_SaveThread();
  }
  delete this;
}

}  // namespace pasture::worker::wsgi
