// The embedded interpreter: start-up, loading the apps with paste.deploy,
// fork hooks, and the environ template (see wsgi.h).
#include <unistd.h>

#include <cstdio>

#include "common/log.h"
#include "worker/wsgi/py.h"

namespace pasture::worker::wsgi {
namespace {

Globals g_;
bool loaded_ = false;
std::vector<conf::PythonApp> loaded_apps_;

// paste.deploy's loadapp, and for a pipeline whose leading filters pasture
// runs itself (its balancer), the rest built as paste.deploy builds a
// pipeline: python/pasture_wsgi.py's load_app, for the same result.
constexpr const char* kLoader = R"PY(
def _pasture_load(uri, name, relative_to, global_conf, pipeline):
    from paste.deploy import loadapp, loadfilter
    if not pipeline:
        return loadapp(uri, name=name or None, relative_to=relative_to, global_conf=global_conf)
    app = loadapp(uri, name=pipeline[-1], relative_to=relative_to, global_conf=global_conf)
    for f in reversed(pipeline[:-1]):
        app = loadfilter(uri, name=f, relative_to=relative_to, global_conf=global_conf)(app)
    return app

def _pasture_watch(interval, conf_files):
    import os, signal, sys, threading, time
    def mtimes():
        out = {}
        files = [getattr(m, '__file__', None) for m in list(sys.modules.values())] + list(conf_files)
        for f in files:
            if f:
                try:
                    out[f] = os.stat(f).st_mtime
                except OSError:
                    pass
        return out
    def run():
        seen = mtimes()
        while True:
            time.sleep(interval)
            for f, t in mtimes().items():
                if seen.get(f, t) != t:
                    sys.stderr.write('pasture: %s changed; reloading the app (HUP)\n' % f)
                    sys.stderr.flush()
                    os.kill(os.getppid(), signal.SIGHUP)
                    return
                seen[f] = t
    threading.Thread(target=run, daemon=True, name='pasture-reload').start()
)PY";

std::string fetch_traceback() {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  Ref t(type), v(value), b(tb);
  std::string out;
  Ref mod(PyImport_ImportModule("traceback"));
  if (mod) {
    Ref lines(PyObject_CallMethod(mod.get(), "format_exception", "OOO", t ? t.get() : Py_None,
                                  v ? v.get() : Py_None, b ? b.get() : Py_None));
    if (lines) {
      Ref joined(PyUnicode_Join(g_.empty_str, lines.get()));
      if (joined) {
        Py_ssize_t n;
        const char* s = PyUnicode_AsUTF8AndSize(joined.get(), &n);
        if (s) out.assign(s, (size_t)n);
      }
    }
  }
  PyErr_Clear();
  if (out.empty()) out = "(no traceback)\n";
  return out;
}

PyObject* intern(const char* s) { return PyUnicode_InternFromString(s); }

bool set_options(const Options& o);

bool init_globals(const Options& o) {
  g_.k_method = intern("REQUEST_METHOD");
  g_.k_script = intern("SCRIPT_NAME");
  g_.k_path = intern("PATH_INFO");
  g_.k_query = intern("QUERY_STRING");
  g_.k_protocol = intern("SERVER_PROTOCOL");
  g_.k_remote_addr = intern("REMOTE_ADDR");
  g_.k_scheme = intern("wsgi.url_scheme");
  g_.k_input = intern("wsgi.input");
  g_.k_ctype = intern("CONTENT_TYPE");
  g_.k_clen = intern("CONTENT_LENGTH");
  g_.empty_str = intern("");
  g_.http_11 = intern("HTTP/1.1");
  g_.http_10 = intern("HTTP/1.0");
  g_.scheme_http = intern("http");
  g_.scheme_https = intern("https");
  g_.k_https = intern("HTTPS");
  g_.s_on = intern("on");
  g_.method_get = intern("GET");
  g_.method_post = intern("POST");
  g_.s_close = intern("close");
  g_.stderr_obj = PySys_GetObject("stderr");  // borrowed; sys keeps it
  Py_XINCREF(g_.stderr_obj);
  return types_ready() && set_options(o);
}

// What depends on the generation (a preloaded interpreter serves several).
bool set_options(const Options& o) {
  g_.multithread = o.threads > 1;
  g_.threads = o.threads;
  // What every request's environ starts from (PyDict_Copy per request):
  // what `paster serve` sets that does not change per request, and
  // Paste's httpserver defaults for CONTENT_TYPE and CONTENT_LENGTH.
  Ref t(PyDict_New());
  if (!t) return false;
  Ref version(Py_BuildValue("(ii)", 1, 0));
  Ref name(PyUnicode_FromString(o.server_name.c_str()));
  Ref port(PyUnicode_FromString(o.server_port.c_str()));
  Ref zero(PyUnicode_FromString("0"));
  Ref software(PyUnicode_FromString("pasture"));
  if (!version || !name || !port || !zero || !software) return false;
  PyObject* d = t.get();
  if (PyDict_SetItemString(d, "wsgi.version", version.get()) < 0 ||
      PyDict_SetItemString(d, "wsgi.errors", g_.stderr_obj ? g_.stderr_obj : Py_None) < 0 ||
      PyDict_SetItemString(d, "wsgi.multithread", o.threads > 1 ? Py_True : Py_False) < 0 ||
      PyDict_SetItemString(d, "wsgi.multiprocess", o.multiprocess ? Py_True : Py_False) < 0 ||
      PyDict_SetItemString(d, "wsgi.run_once", Py_False) < 0 ||
      PyDict_SetItemString(d, "wsgi.file_wrapper", (PyObject*)&FileWrapperType) < 0 ||
      PyDict_SetItemString(d, "SERVER_NAME", name.get()) < 0 ||
      PyDict_SetItemString(d, "SERVER_PORT", port.get()) < 0 ||
      PyDict_SetItemString(d, "SERVER_SOFTWARE", software.get()) < 0 ||
      PyDict_SetItem(d, g_.k_script, g_.empty_str) < 0 || PyDict_SetItem(d, g_.k_ctype, g_.empty_str) < 0 ||
      PyDict_SetItem(d, g_.k_clen, zero.get()) < 0 || PyDict_SetItem(d, g_.k_scheme, g_.scheme_http) < 0)
    return false;
  Py_XSETREF(g_.environ_template, t.release());
  return true;
}

std::string app_label(const conf::PythonApp& a) {
  return a.loc.str() + ": cannot load " + (a.section.empty() ? a.uri : "[" + a.section + "]") + " (" +
         a.factory + ")";
}

bool load_one(PyObject* loader, const conf::PythonApp& a, const Options& o, std::string* err) {
  Ref gc(PyDict_New());
  for (const auto& [k, v] : o.vars) {
    Ref val(PyUnicode_FromString(v.c_str()));
    if (!val || PyDict_SetItemString(gc.get(), k.c_str(), val.get()) < 0) break;
  }
  Ref pipeline(PyList_New(0));
  for (const std::string& n : a.pipeline) {
    Ref s(PyUnicode_FromString(n.c_str()));
    if (s) PyList_Append(pipeline.get(), s.get());
  }
  std::string rel;
  size_t slash = a.uri.rfind('/');
  if (a.uri.compare(0, 7, "config:") == 0 && slash != std::string::npos) rel = a.uri.substr(7, slash - 7);
  if (rel.empty()) {
    char cwd[4096];
    rel = getcwd(cwd, sizeof cwd) ? cwd : "/";
  }
  Ref app;
  if (!PyErr_Occurred())
    app.reset(PyObject_CallFunction(loader, "sssOO", a.uri.c_str(), a.name.c_str(), rel.c_str(), gc.get(),
                                    pipeline.get()));
  if (!app) {
    *err = app_label(a) + " in Python:\n" + fetch_traceback();
    return false;
  }
  if (!PyCallable_Check(app.get())) {
    *err = app_label(a) + ": paste.deploy returned a " + Py_TYPE(app.get())->tp_name + ", not a WSGI callable";
    return false;
  }
  g_.apps.push_back(app.release());
  return true;
}

}  // namespace

Globals& g() { return g_; }

void log_exception(const char* what) {
  std::string tb = fetch_traceback();
  PLOG_ERROR("%s:\n%s", what, tb.c_str());
}

bool load(const conf::Site& site, const Options& o, std::string* err) {
  if (loaded_) {  // preloaded by the master: this generation's settings only
    PyEval_RestoreThread(g_.main_ts);
    bool ok = set_options(o);
    if (!ok) *err = "cannot set up the embedded interpreter:\n" + fetch_traceback();
    g_.main_ts = PyEval_SaveThread();
    return ok;
  }
  if (!Py_IsInitialized()) {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;  // libuv and the master own the signals
    config.parse_argv = 0;
    config.buffered_stdio = 0;  // tracebacks and prints reach the log at once
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
      *err = std::string("cannot start the embedded Python interpreter: ") + (st.err_msg ? st.err_msg : "?");
      return false;
    }
  } else {
    PyEval_RestoreThread(g_.main_ts);
  }
  bool ok = init_globals(o);
  if (!ok) *err = "cannot set up the embedded interpreter:\n" + fetch_traceback();
  Ref globals(PyDict_New());
  if (ok) {
    PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins());
    Ref r(PyRun_String(kLoader, Py_file_input, globals.get(), globals.get()));
    if (!r) {
      *err = "cannot set up the app loader:\n" + fetch_traceback();
      ok = false;
    }
  }
  PyObject* loader = ok ? PyDict_GetItemString(globals.get(), "_pasture_load") : nullptr;
  for (size_t i = 0; ok && i < site.python_apps.size(); i++) ok = load_one(loader, site.python_apps[i], o, err);
  if (ok && o.watch && o.reload_interval > 0) {
    Ref files(PyList_New(0));
    for (const conf::PythonApp& a : site.python_apps)
      if (a.uri.compare(0, 7, "config:") == 0) {
        Ref f(PyUnicode_FromString(a.uri.c_str() + 7));
        if (f) PyList_Append(files.get(), f.get());
      }
    Ref r(PyObject_CallFunction(PyDict_GetItemString(globals.get(), "_pasture_watch"), "dO", o.reload_interval,
                                files.get()));
    if (!r) log_exception("cannot watch the app's files for --reload");
  }
  g_.main_ts = PyEval_SaveThread();
  if (ok) {
    loaded_ = true;
    loaded_apps_ = site.python_apps;
  }
  return ok;
}

bool loaded() { return loaded_; }

void shutdown() {
  if (!loaded_) return;
  PyEval_RestoreThread(g_.main_ts);
  Ref atexit(PyImport_ImportModule("atexit"));
  Ref r(atexit ? PyObject_CallMethod(atexit.get(), "_run_exitfuncs", nullptr) : nullptr);
  if (!r) log_exception("the app's atexit handlers");
  for (const char* name : {"stdout", "stderr"}) {
    PyObject* f = PySys_GetObject(name);  // borrowed
    Ref fr(f ? PyObject_CallMethod(f, "flush", nullptr) : nullptr);
    if (!fr) PyErr_Clear();
  }
  g_.main_ts = PyEval_SaveThread();
}

bool same_apps(const conf::Site& site) {
  if (site.python_apps.size() != loaded_apps_.size()) return false;
  for (size_t i = 0; i < loaded_apps_.size(); i++) {
    const conf::PythonApp &a = loaded_apps_[i], &b = site.python_apps[i];
    if (a.uri != b.uri || a.name != b.name || a.pipeline != b.pipeline) return false;
  }
  return true;
}

void freeze() {
  if (!loaded_) return;
  PyEval_RestoreThread(g_.main_ts);
  Ref gc(PyImport_ImportModule("gc"));
  Ref r(gc ? PyObject_CallMethod(gc.get(), "freeze", nullptr) : nullptr);
  if (!r) PyErr_Clear();
  g_.main_ts = PyEval_SaveThread();
}

// As os.fork(): the GIL held across fork(), the interpreter's locks taken
// before and reinitialized in the child.
void fork_prepare() {
  if (!loaded_) return;
  PyEval_RestoreThread(g_.main_ts);
  PyOS_BeforeFork();
}

void fork_parent() {
  if (!loaded_) return;
  PyOS_AfterFork_Parent();
  g_.main_ts = PyEval_SaveThread();
}

void fork_child() {
  if (!loaded_) return;
  PyOS_AfterFork_Child();
  g_.main_ts = PyEval_SaveThread();
}

}  // namespace pasture::worker::wsgi
