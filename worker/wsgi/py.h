// Inside the WSGI layer (worker/wsgi/*.cc only): Python.h, owned references,
// and what the layer's files share.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "worker/wsgi/wsgi.h"

namespace pasture::worker::wsgi {

// An owned reference (Py_XDECREF on destruction; the GIL must be held then).
class Ref {
 public:
  Ref() = default;
  explicit Ref(PyObject* o) : o_(o) {}  // steals
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  Ref(Ref&& r) noexcept : o_(r.o_) { r.o_ = nullptr; }
  Ref& operator=(Ref&& r) noexcept {
    if (this != &r) {
      Py_XDECREF(o_);
      o_ = r.o_;
      r.o_ = nullptr;
    }
    return *this;
  }
  ~Ref() { Py_XDECREF(o_); }
  PyObject* get() const { return o_; }
  PyObject* release() {
    PyObject* o = o_;
    o_ = nullptr;
    return o;
  }
  void reset(PyObject* o = nullptr) {
    Py_XDECREF(o_);
    o_ = o;
  }
  explicit operator bool() const { return o_ != nullptr; }

 private:
  PyObject* o_ = nullptr;
};

// A request body: in memory up to kSpoolAt, then in an unlinked temporary
// file. Written by the loop before the call runs; read by the app.
class Body {
 public:
  ~Body();
  bool add(const char* p, size_t n);  // false: over kMaxBody or the spool file failed
  uint64_t size() const { return size_; }
  // Up to n bytes at `off` into dst; returns how many (0 at the end, -1 on an I/O error).
  int64_t read(uint64_t off, char* dst, size_t n) const;
  // Memory-resident bytes at `off` (no file): a view, else nullptr.
  const char* mem_at(uint64_t off) const { return fd_ < 0 ? mem_.data() + off : nullptr; }

 private:
  std::string mem_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Shared by the layer's files (interp.cc builds them at load).
struct Globals {
  std::vector<PyObject*> apps;  // by Site::python_apps index (owned)
  PyObject* environ_template = nullptr;
  PyObject* stderr_obj = nullptr;
  // Interned environ keys.
  PyObject *k_method, *k_script, *k_path, *k_query, *k_protocol, *k_remote_addr, *k_scheme,
      *k_input, *k_ctype, *k_clen, *k_https;
  PyObject* empty_str = nullptr;
  PyObject* http_11 = nullptr;  // "HTTP/1.1"
  PyObject* http_10 = nullptr;
  PyObject* scheme_http = nullptr;
  PyObject* scheme_https = nullptr;
  PyObject* s_on = nullptr;  // "on": HTTPS=on over TLS
  PyObject* method_get = nullptr;
  PyObject* method_post = nullptr;
  PyObject* s_close = nullptr;  // "close"
  PyThreadState* main_ts = nullptr;  // the loading thread's state, GIL released
  bool multithread = false;
  uint32_t threads = 1;
};
Globals& g();

// Types (types.cc); ready() before first use, under the GIL.
bool types_ready();
PyObject* new_input(Call::Impl* call);           // wsgi.input over the call's body
PyObject* new_start_response(Call::Impl* call);  // start_response; its write() too
void detach(PyObject* input, PyObject* start_response);  // the call is over: later use raises
extern PyTypeObject FileWrapperType;
PyObject* file_wrapper_file(PyObject* wrapper);  // borrowed: its filelike

// Python's traceback of the pending exception, to pasture's log (stderr).
void log_exception(const char* what);
// The environ of a request (environ.cc). New reference, or null with an exception set.
PyObject* build_environ(const Request& r, PyObject* input);

// call.cc: the part of a call the types act on.
struct CallHooks {
  // start_response(status, headers, exc_info): 0, or -1 with an exception set.
  static int start_response(Call::Impl* c, PyObject* status, PyObject* headers, PyObject* exc_info);
  // write(data): 0, or -1 with an exception set.
  static int write(Call::Impl* c, PyObject* data);
  static const Body& body(Call::Impl* c);
};

}  // namespace pasture::worker::wsgi
