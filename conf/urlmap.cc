#include "conf/urlmap.h"

#include <algorithm>

#include "conf/pyutil.h"

namespace pasture::conf::urlmap {

namespace {

[[noreturn]] void value_error(const std::string& msg) { throw py::Error("", 0, "ValueError", msg); }

size_t py_len(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

// sort_apps key: (domain or '\xff', -len(path)), ties broken by (domain, path).
// UTF-8 byte order equals code point order, so '\xff' is "\xc3\xbf".
bool sort_less(const Normalized& a, const Normalized& b) {
  const std::string ka = a.domain && !a.domain->empty() ? *a.domain : "\xc3\xbf";
  const std::string kb = b.domain && !b.domain->empty() ? *b.domain : "\xc3\xbf";
  if (ka != kb) return ka < kb;
  size_t la = py_len(a.path), lb = py_len(b.path);
  if (la != lb) return la > lb;
  return a.path < b.path;
}

}  // namespace

std::string parse_path_expression(const std::string& key) {
  std::vector<std::string> parts = py::split(key);
  std::string domain, port, path;
  for (size_t i = 0; i < parts.size();) {
    if (parts[i] == "domain") {
      if (++i >= parts.size()) value_error("'domain' must be followed with a domain name");
      if (!domain.empty()) value_error("'domain' given twice");
      domain = parts[i++];
    } else if (parts[i] == "port") {
      if (++i >= parts.size()) value_error("'port' must be followed with a port number");
      if (!port.empty()) value_error("'port' given twice");
      port = parts[i++];
    } else {
      if (!path.empty()) {
        value_error("more than one path given (have " + py::repr(path) + ", got " + py::repr(parts[i]) + ")");
      }
      path = parts[i++];
    }
  }
  std::string s;
  if (!domain.empty()) s = "http://" + domain;
  if (!port.empty()) {
    if (domain.empty()) value_error("If you give a port, you must also give a domain");
    s += ":" + port;
  }
  if (!path.empty()) {
    if (!s.empty()) s += "/";
    s += path;
  }
  return s;
}

Normalized normalize_url(const std::string& url_in) {
  std::string url = url_in;
  size_t scheme = py::starts_with(url, "http://") ? 7 : py::starts_with(url, "https://") ? 8 : 0;
  if (!(url.empty() || url[0] == '/' || scheme)) {
    throw py::Error("", 0, "AssertionError",
                    "URL fragments must start with / or http:// (you gave " + py::repr(url) + ")");
  }
  Normalized out;
  if (scheme) {
    url = url.substr(scheme);
    size_t slash = url.find('/');
    if (slash != std::string::npos) {
      out.domain = url.substr(0, slash);
      url = url.substr(slash);
    } else {
      out.domain = url;
      url.clear();
    }
  }
  for (char c : url) {
    if (c != '/' || out.path.empty() || out.path.back() != '/') out.path += c;
  }
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  return out;
}

std::vector<size_t> dispatch_order(const std::vector<Normalized>& entries) {
  std::vector<size_t> apps;
  for (size_t i = 0; i < entries.size(); ++i) {
    auto same = std::find_if(apps.begin(), apps.end(), [&](size_t j) { return entries[j] == entries[i]; });
    if (same != apps.end()) apps.erase(same);
    apps.push_back(i);
  }
  std::stable_sort(apps.begin(), apps.end(), [&](size_t a, size_t b) { return sort_less(entries[a], entries[b]); });
  return apps;
}

}  // namespace pasture::conf::urlmap
