#include "conf/filters.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "conf/error.h"
#include "conf/paste_eggs.h"
#include "conf/site_pool.h"

namespace pasture::conf {
namespace {

[[noreturn]] void bad(const SourceLoc& loc, const std::string& msg) { throw ConfigError(loc.file, loc.line, msg); }

// Python logging's level names (logging.getLevelName), or a number.
int parse_level(const py::Value& v, const std::string& what) {
  std::string s = py::strip(v.value);
  static const std::pair<const char*, int> kNames[] = {{"NOTSET", 0},  {"DEBUG", 10},    {"INFO", 20},
                                                       {"WARNING", 30}, {"WARN", 30},    {"ERROR", 40},
                                                       {"CRITICAL", 50}, {"FATAL", 50}};
  for (const auto& [name, level] : kNames)
    if (s == name) return level;
  if (!s.empty() && s.size() < 6 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::stoi(s);
  bad(v.loc, what + ": expected a logging level (DEBUG, INFO, WARNING, ERROR, CRITICAL or a number), got '" +
                 v.value + "'");
}

}  // namespace

std::optional<FilterKind> native_filter_kind(const std::string& dist, const std::string& entry_point) {
  std::string d = paste::norm_dist(dist);
  if (d == "paste" && entry_point == "gzip") return FilterKind::Gzip;
  if (d == "paste" && entry_point == "translogger") return FilterKind::TransLogger;
  if (d == "pastedeploy" && entry_point == "prefix") return FilterKind::Prefix;
  return std::nullopt;
}

const char* filter_short_name(FilterKind k) {
  switch (k) {
    case FilterKind::Gzip: return "gzip";
    case FilterKind::Prefix: return "prefix";
    case FilterKind::TransLogger: return "translogger";
  }
  return "?";
}

const char* filter_egg(FilterKind k) {
  switch (k) {
    case FilterKind::Gzip: return "egg:Paste#gzip";
    case FilterKind::Prefix: return "egg:PasteDeploy#prefix";
    case FilterKind::TransLogger: return "egg:Paste#translogger";
  }
  return "?";
}

std::optional<FilterKind> filter_kind_from_name(const std::string& use) {
  for (FilterKind k : {FilterKind::Gzip, FilterKind::Prefix, FilterKind::TransLogger})
    if (use == filter_short_name(k) || use == filter_egg(k)) return k;
  size_t hash = use.find('#');
  if (use.compare(0, 4, "egg:") == 0 && hash != std::string::npos)
    return native_filter_kind(use.substr(4, hash - 4), use.substr(hash + 1));
  return std::nullopt;
}

bool apply_filter_key(Filter& f, const std::string& key, const py::Value& v) {
  switch (f.kind) {
    case FilterKind::Gzip:
      if (key == "compress_level") {
        // int(compress_level); zlib takes 0-9 (-1 is its default, 6).
        std::string s = py::strip(v.value);
        if (s == "-1") s = "6";
        f.compress_level = (int)parse_uint(s, 9, v.loc, "compress_level");
        return true;
      }
      if (key == "min_length") {  // pasture's own (YAML): nginx's gzip_min_length
        f.min_length = parse_uint(v.value, UINT32_MAX, v.loc, "min_length");
        return true;
      }
      return false;
    case FilterKind::Prefix:
      if (key == "prefix") {
        std::string p = v.value;  // not stripped of spaces: Paste does not strip it either
        while (!p.empty() && p.back() == '/') p.pop_back();
        for (char c : p) {
          if (std::strchr("\\^$*+?{}[]()|", c))
            bad(v.loc, "prefix '" + v.value + "': pasture reads a prefix as a path ('.' as Paste's regex reads it, "
                       "any character); regular expression characters such as '" + std::string(1, c) +
                       "' are not supported");
        }
        f.prefix = p;
        return true;
      }
      if (key == "translate_forwarded_server") {
        f.translate_forwarded_server = parse_bool(v.value, v.loc, key);
        return true;
      }
      if (key == "force_port") {
        f.has_force_port = true;
        f.force_port = v.value;
        return true;
      }
      if (key == "scheme") {
        f.has_scheme = true;
        f.scheme = v.value;
        return true;
      }
      return false;
    case FilterKind::TransLogger:
      if (key == "logger_name") {
        f.logger_name = v.value;
        return true;
      }
      if (key == "format") {
        std::string why = check_translogger_format(v.value);
        if (!why.empty()) bad(v.loc, "format: " + why);
        f.format = v.value;  // "" = the default (Paste: format or None)
        return true;
      }
      if (key == "setup_console_handler") {
        f.setup_console_handler = parse_bool(v.value, v.loc, key);
        return true;
      }
      if (key == "logging_level") {
        f.logging_level = parse_level(v, key);
        return true;
      }
      if (key == "set_logger_level") {
        f.set_logger_level = parse_level(v, key);
        return true;
      }
      return false;
  }
  return false;
}

void finish_filter(const Filter& f) {
  if (f.kind == FilterKind::Prefix && f.has_force_port && !f.force_port.empty()) {
    for (char c : f.force_port)
      if (c <= ' ' || c == ':' || c == '/' || c >= 0x7f) bad(f.loc, "force_port '" + f.force_port + "' is not a port");
  }
  if (f.kind == FilterKind::Prefix && f.has_scheme) {
    for (char c : f.scheme)
      if (!std::isalnum((unsigned char)c) && c != '+' && c != '-' && c != '.')
        bad(f.loc, "scheme '" + f.scheme + "' is not a URL scheme");
  }
}

std::string check_translogger_format(const std::string& format) {
  static const char* const kKeys[] = {"REMOTE_ADDR", "REMOTE_USER", "REQUEST_METHOD", "REQUEST_URI",
                                      "HTTP_VERSION", "time", "status", "bytes", "HTTP_REFERER",
                                      "HTTP_USER_AGENT"};
  for (size_t i = 0; i < format.size(); i++) {
    if (format[i] != '%') continue;
    if (i + 1 < format.size() && format[i + 1] == '%') {
      i++;
      continue;
    }
    if (i + 1 >= format.size() || format[i + 1] != '(') return "a '%' must be '%%' or start %(KEY)s";
    size_t close = format.find(')', i);
    if (close == std::string::npos) return "unclosed %(";
    std::string key = format.substr(i + 2, close - i - 2);
    bool known = false;
    for (const char* k : kKeys) known |= key == k;
    if (!known)
      return "unknown key '" + key + "' (TransLogger has REMOTE_ADDR, REMOTE_USER, REQUEST_METHOD, REQUEST_URI, "
             "HTTP_VERSION, time, status, bytes, HTTP_REFERER, HTTP_USER_AGENT)";
    size_t j = close + 1;
    if (j < format.size() && format[j] == '-') j++;
    while (j < format.size() && std::isdigit((unsigned char)format[j])) j++;
    if (j >= format.size() || format[j] != 's') return "only %(KEY)s conversions are supported (at '" + key + "')";
    i = j;
  }
  return "";
}

}  // namespace pasture::conf
