// The Python types a call hands the app: wsgi.input, start_response (with
// its write callable) and wsgi.file_wrapper.
#include <cstring>

#include "worker/wsgi/py.h"

namespace pasture::worker::wsgi {
namespace {

// A static type object: zeroed, one reference (PyVarObject_HEAD_INIT).
PyTypeObject blank_type() {
  PyTypeObject t;
  memset(static_cast<void*>(&t), 0, sizeof t);
  t.ob_base.ob_base.ob_refcnt = 1;
  return t;
}

// ------------------------------------------------------------ wsgi.input --
struct InputObject {
  PyObject_HEAD
  Call::Impl* call;  // null once the call is over
  uint64_t pos;
};

const Body* input_body(InputObject* self) {
  if (!self->call) {
    PyErr_SetString(PyExc_ValueError, "wsgi.input used after its request ended");
    return nullptr;
  }
  return &CallHooks::body(self->call);
}

// n bytes from the current position (fewer at the end).
PyObject* input_take(InputObject* self, const Body& b, uint64_t n) {
  uint64_t left = b.size() - self->pos;
  if (n > left) n = left;
  if (const char* m = b.mem_at(self->pos)) {
    self->pos += n;
    return PyBytes_FromStringAndSize(m, (Py_ssize_t)n);
  }
  PyObject* out = PyBytes_FromStringAndSize(nullptr, (Py_ssize_t)n);
  if (!out) return nullptr;
  int64_t got = b.read(self->pos, PyBytes_AS_STRING(out), n);
  if (got < 0 || (uint64_t)got != n) {
    Py_DECREF(out);
    PyErr_SetString(PyExc_OSError, "cannot read the spooled request body");
    return nullptr;
  }
  self->pos += n;
  return out;
}

Py_ssize_t size_arg(PyObject* const* args, Py_ssize_t nargs, bool* ok) {
  *ok = true;
  if (nargs == 0 || args[0] == Py_None) return -1;
  Py_ssize_t n = PyLong_AsSsize_t(args[0]);
  if (n == -1 && PyErr_Occurred()) *ok = false;
  return n;
}

PyObject* input_read(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = (InputObject*)o;
  bool ok;
  Py_ssize_t n = size_arg(args, nargs, &ok);
  if (!ok) return nullptr;
  const Body* b = input_body(self);
  if (!b) return nullptr;
  return input_take(self, *b, n < 0 ? b->size() : (uint64_t)n);
}

PyObject* input_readline(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = (InputObject*)o;
  bool ok;
  Py_ssize_t limit = size_arg(args, nargs, &ok);
  if (!ok) return nullptr;
  const Body* b = input_body(self);
  if (!b) return nullptr;
  uint64_t left = b->size() - self->pos;
  uint64_t max = limit < 0 ? left : std::min<uint64_t>(left, (uint64_t)limit);
  uint64_t n = 0;
  if (const char* m = b->mem_at(self->pos)) {
    const void* nl = memchr(m, '\n', max);
    n = nl ? (uint64_t)((const char*)nl - m) + 1 : max;
  } else {
    char buf[8192];
    while (n < max) {
      int64_t got = b->read(self->pos + n, buf, std::min<uint64_t>(sizeof buf, max - n));
      if (got <= 0) break;
      const void* nl = memchr(buf, '\n', (size_t)got);
      if (nl) {
        n += (uint64_t)((const char*)nl - buf) + 1;
        break;
      }
      n += (uint64_t)got;
    }
  }
  return input_take(self, *b, n);
}

PyObject* input_readlines(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  bool ok;
  Py_ssize_t hint = size_arg(args, nargs, &ok);
  if (!ok) return nullptr;
  Ref list(PyList_New(0));
  if (!list) return nullptr;
  Py_ssize_t total = 0;
  for (;;) {
    Ref line(input_readline(o, nullptr, 0));
    if (!line) return nullptr;
    Py_ssize_t n = PyBytes_GET_SIZE(line.get());
    if (n == 0) break;
    if (PyList_Append(list.get(), line.get()) < 0) return nullptr;
    total += n;
    if (hint > 0 && total >= hint) break;
  }
  return list.release();
}

PyObject* input_iternext(PyObject* o) {
  PyObject* line = input_readline(o, nullptr, 0);
  if (line && PyBytes_GET_SIZE(line) == 0) {
    Py_DECREF(line);
    return nullptr;  // StopIteration
  }
  return line;
}

PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, "read([size]) -> bytes"},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL, "readline([size]) -> bytes"},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL, "readlines([hint]) -> list"},
    {nullptr, nullptr, 0, nullptr}};

PyTypeObject InputType = [] {
  PyTypeObject t = blank_type();
  t.tp_name = "pasture.Input";
  t.tp_basicsize = sizeof(InputObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "wsgi.input: the request body";
  t.tp_methods = input_methods;
  t.tp_iter = PyObject_SelfIter;
  t.tp_iternext = input_iternext;
  t.tp_dealloc = [](PyObject* o) { PyObject_Free(o); };
  return t;
}();

// -------------------------------------------------------- start_response --
struct StartObject {
  PyObject_HEAD
  Call::Impl* call;
};

PyObject* start_write(PyObject* o, PyObject* data) {
  auto* self = (StartObject*)o;
  if (!self->call) {
    PyErr_SetString(PyExc_ValueError, "write() used after its request ended");
    return nullptr;
  }
  if (CallHooks::write(self->call, data) < 0) return nullptr;
  Py_RETURN_NONE;
}

PyMethodDef write_def = {"write", (PyCFunction)start_write, METH_O, "write(data): body bytes, sent at once"};

PyObject* start_call(PyObject* o, PyObject* args, PyObject* kwargs) {
  auto* self = (StartObject*)o;
  static const char* kw[] = {"status", "headers", "exc_info", nullptr};
  PyObject *status, *headers, *exc_info = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", const_cast<char**>(kw), &status,
                                   &headers, &exc_info))
    return nullptr;
  if (!self->call) {
    PyErr_SetString(PyExc_ValueError, "start_response() called after its request ended");
    return nullptr;
  }
  if (CallHooks::start_response(self->call, status, headers, exc_info) < 0) return nullptr;
  // A new write callable each time: it holds start_response, not the other
  // way round, so no reference cycle is left for the collector per request.
  return PyCFunction_New(&write_def, o);
}

PyTypeObject StartType = [] {
  PyTypeObject t = blank_type();
  t.tp_name = "pasture.StartResponse";
  t.tp_basicsize = sizeof(StartObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "start_response(status, headers, exc_info=None)";
  t.tp_call = start_call;
  t.tp_dealloc = [](PyObject* o) { PyObject_Free(o); };
  return t;
}();

// ------------------------------------------------------ wsgi.file_wrapper --
struct FileWrapperObject {
  PyObject_HEAD
  PyObject* filelike;
  Py_ssize_t blksize;
};

int fw_init(PyObject* o, PyObject* args, PyObject* kwargs) {
  auto* self = (FileWrapperObject*)o;
  static const char* kw[] = {"filelike", "block_size", nullptr};
  PyObject* f;
  Py_ssize_t blk = 65536;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:file_wrapper", const_cast<char**>(kw), &f, &blk))
    return -1;
  Py_INCREF(f);
  Py_XSETREF(self->filelike, f);
  self->blksize = blk > 0 ? blk : 65536;
  return 0;
}

PyObject* fw_next(PyObject* o) {
  auto* self = (FileWrapperObject*)o;
  PyObject* data = PyObject_CallMethod(self->filelike, "read", "n", self->blksize);
  if (!data) return nullptr;
  if (PyBytes_Check(data) && PyBytes_GET_SIZE(data) == 0) {
    Py_DECREF(data);
    return nullptr;
  }
  return data;
}

PyObject* fw_close(PyObject* o, PyObject*) {
  auto* self = (FileWrapperObject*)o;
  if (self->filelike && PyObject_HasAttrString(self->filelike, "close")) {
    PyObject* r = PyObject_CallMethod(self->filelike, "close", nullptr);
    if (!r) return nullptr;
    Py_DECREF(r);
  }
  Py_RETURN_NONE;
}

PyMethodDef fw_methods[] = {{"close", fw_close, METH_NOARGS, "close the file"}, {nullptr, nullptr, 0, nullptr}};

}  // namespace

PyTypeObject FileWrapperType = [] {
  PyTypeObject t = blank_type();
  t.tp_name = "pasture.FileWrapper";
  t.tp_basicsize = sizeof(FileWrapperObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  t.tp_doc = "wsgi.file_wrapper(filelike, block_size=65536)";
  t.tp_new = PyType_GenericNew;
  t.tp_init = fw_init;
  t.tp_iter = PyObject_SelfIter;
  t.tp_iternext = fw_next;
  t.tp_methods = fw_methods;
  t.tp_traverse = [](PyObject* o, visitproc visit, void* arg) {
    Py_VISIT(((FileWrapperObject*)o)->filelike);
    return 0;
  };
  t.tp_clear = [](PyObject* o) {
    Py_CLEAR(((FileWrapperObject*)o)->filelike);
    return 0;
  };
  t.tp_dealloc = [](PyObject* o) {
    PyObject_GC_UnTrack(o);
    Py_CLEAR(((FileWrapperObject*)o)->filelike);
    Py_TYPE(o)->tp_free(o);
  };
  return t;
}();

PyObject* file_wrapper_file(PyObject* wrapper) { return ((FileWrapperObject*)wrapper)->filelike; }

bool types_ready() {
  return PyType_Ready(&InputType) == 0 && PyType_Ready(&StartType) == 0 && PyType_Ready(&FileWrapperType) == 0;
}

PyObject* new_input(Call::Impl* call) {
  auto* o = PyObject_New(InputObject, &InputType);
  if (!o) return nullptr;
  o->call = call;
  o->pos = 0;
  return (PyObject*)o;
}

PyObject* new_start_response(Call::Impl* call) {
  auto* o = PyObject_New(StartObject, &StartType);
  if (!o) return nullptr;
  o->call = call;
  return (PyObject*)o;
}

void detach(PyObject* input, PyObject* start_response) {
  if (input) ((InputObject*)input)->call = nullptr;
  if (start_response) ((StartObject*)start_response)->call = nullptr;
}

}  // namespace pasture::worker::wsgi
