// The WSGI environ, built from the request the connection already parsed:
// a copy of a prebuilt template, interned keys, and each header's key made
// once and kept (HTTP_ + the name upper-cased, '-' as '_').
#include <cstring>
#include <string>
#include <unordered_map>

#include "worker/wsgi/py.h"

namespace pasture::worker::wsgi {
namespace {

PyObject* latin1(std::string_view s) { return PyUnicode_DecodeLatin1(s.data(), (Py_ssize_t)s.size(), nullptr); }

// Header name (as received) -> environ key. Bounded: names past the cap
// get a fresh key each time rather than growing the table without end.
struct KeyCache {
  std::mutex mu;  // app threads build environs concurrently (under the GIL, but keep it plain)
  std::unordered_map<std::string, PyObject*> keys;
};
KeyCache& key_cache() {
  static KeyCache* c = new KeyCache;  // never destroyed: outlives the interpreter's users
  return *c;
}
constexpr size_t kMaxCachedKeys = 512;

// New reference to the environ key of a header name; null: skip the field.
PyObject* header_key(std::string_view name) {
  char buf[256];
  if (name.size() + 5 > sizeof buf) return nullptr;  // a name this long is dropped
  KeyCache& c = key_cache();
  std::string k(name);
  {
    std::lock_guard<std::mutex> l(c.mu);
    auto it = c.keys.find(k);
    if (it != c.keys.end()) {
      Py_INCREF(it->second);
      return it->second;
    }
  }
  size_t n = 0;
  bool plain = false;
  if (name.size() == 12 && strncasecmp(name.data(), "content-type", 12) == 0) plain = true;
  if (name.size() == 14 && strncasecmp(name.data(), "content-length", 14) == 0) plain = true;
  if (!plain) {
    memcpy(buf, "HTTP_", 5);
    n = 5;
  }
  for (char ch : name) {
    char u = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    buf[n++] = u;
  }
  PyObject* key = PyUnicode_FromStringAndSize(buf, (Py_ssize_t)n);
  if (!key) return nullptr;
  PyUnicode_InternInPlace(&key);
  std::lock_guard<std::mutex> l(c.mu);
  if (c.keys.size() < kMaxCachedKeys) {
    Py_INCREF(key);
    c.keys.emplace(std::move(k), key);
  }
  return key;
}

int set_latin1(PyObject* d, PyObject* key, std::string_view v) {
  Ref s(latin1(v));
  return s ? PyDict_SetItem(d, key, s.get()) : -1;
}

}  // namespace

PyObject* build_environ(const Request& r, PyObject* input) {
  Globals& G = g();
  Ref env(PyDict_Copy(G.environ_template));
  if (!env) return nullptr;
  PyObject* d = env.get();
  std::string_view method = r.view(r.method);
  int rc = 0;
  if (method == "GET")
    rc = PyDict_SetItem(d, G.k_method, G.method_get);
  else if (method == "POST")
    rc = PyDict_SetItem(d, G.k_method, G.method_post);
  else
    rc = set_latin1(d, G.k_method, method);
  // PEP 3333: PATH_INFO and SCRIPT_NAME are the decoded bytes as latin-1.
  std::string_view path = r.view(r.path);
  uint32_t sl = r.script_len <= path.size() ? r.script_len : 0;
  if (rc == 0 && sl) rc = set_latin1(d, G.k_script, path.substr(0, sl));
  if (rc == 0) rc = set_latin1(d, G.k_path, path.substr(sl));
  if (rc == 0) rc = r.query.len ? set_latin1(d, G.k_query, r.view(r.query)) : PyDict_SetItem(d, G.k_query, G.empty_str);
  std::string_view proto = r.view(r.protocol);
  if (rc == 0)
    rc = proto == "HTTP/1.1"   ? PyDict_SetItem(d, G.k_protocol, G.http_11)
         : proto == "HTTP/1.0" ? PyDict_SetItem(d, G.k_protocol, G.http_10)
                               : set_latin1(d, G.k_protocol, proto);
  if (rc == 0) rc = set_latin1(d, G.k_remote_addr, r.view(r.remote_addr));
  if (rc == 0 && r.url_scheme.len && r.view(r.url_scheme) != "http") {
    // HTTPS=on with it, as CGI servers (and Paste's httpserver) set it.
    if (r.view(r.url_scheme) == "https")
      rc = PyDict_SetItem(d, G.k_scheme, G.scheme_https) < 0 ? -1 : PyDict_SetItem(d, G.k_https, G.s_on);
    else
      rc = set_latin1(d, G.k_scheme, r.view(r.url_scheme));
  }
  if (rc == 0) rc = PyDict_SetItem(d, G.k_input, input);
  if (rc == 0 && r.server_name.len) {
    Ref v(latin1(r.view(r.server_name)));
    rc = v ? PyDict_SetItemString(d, "SERVER_NAME", v.get()) : -1;
  }
  if (rc == 0 && r.server_port.len) {
    Ref v(latin1(r.view(r.server_port)));
    rc = v ? PyDict_SetItemString(d, "SERVER_PORT", v.get()) : -1;
  }
  for (size_t i = 0; rc == 0 && i < r.headers.size(); i++) {
    std::string_view name = r.view(r.headers[i].first), value = r.view(r.headers[i].second);
    Ref key(header_key(name));
    if (!key) {
      if (PyErr_Occurred()) return nullptr;
      continue;
    }
    // Repeated fields join with ",", as wsgiref and waitress do; the
    // body's real length stands for a chunked request's.
    if (key.get() == G.k_clen) continue;
    PyObject* prev = PyDict_GetItemWithError(d, key.get());  // borrowed
    if (prev && PyUnicode_Check(prev) && key.get() != G.k_ctype) {
      Ref v(latin1(value));
      Ref comma(PyUnicode_FromString(","));
      Ref joined(v && comma ? PyUnicode_Concat(prev, comma.get()) : nullptr);
      Ref all(joined ? PyUnicode_Concat(joined.get(), v.get()) : nullptr);
      rc = all ? PyDict_SetItem(d, key.get(), all.get()) : -1;
    } else if (PyErr_Occurred()) {
      return nullptr;
    } else {
      rc = set_latin1(d, key.get(), value);
    }
  }
  if (rc == 0 && r.content_length >= 0) {
    Ref n(PyUnicode_FromFormat("%lld", (long long)r.content_length));
    rc = n ? PyDict_SetItem(d, G.k_clen, n.get()) : -1;
  }
  if (rc < 0) return nullptr;
  return env.release();
}

}  // namespace pasture::worker::wsgi
