#include "common/hash_key.h"

namespace pasture::lb {
namespace {

std::string_view trim(std::string_view s, std::string_view chars = " \t") {
  size_t b = s.find_first_not_of(chars);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(chars);
  return s.substr(b, e - b + 1);
}

// Splits `s` at the first `sep`: returns the part before, leaves the rest in s.
std::string_view next_field(std::string_view& s, char sep) {
  size_t i = s.find(sep);
  std::string_view field = s.substr(0, i);
  s = i == std::string_view::npos ? std::string_view() : s.substr(i + 1);
  return field;
}

}  // namespace

bool parse_hash_key(std::string_view text, HashKeySpec* out) {
  std::string_view t = trim(text);
  static const std::pair<std::string_view, HashKeyKind> plain[] = {
      {"remote_addr", HashKeyKind::RemoteAddr},
      {"uri", HashKeyKind::Uri},
      {"path", HashKeyKind::Path}};
  for (const auto& [n, k] : plain) {
    if (t == n) {
      *out = HashKeySpec{k, {}};
      return true;
    }
  }
  static const std::pair<std::string_view, HashKeyKind> named[] = {{"header:", HashKeyKind::Header},
                                                                   {"cookie:", HashKeyKind::Cookie},
                                                                   {"arg:", HashKeyKind::Arg}};
  for (const auto& [prefix, k] : named) {
    if (t.substr(0, prefix.size()) != prefix) continue;
    std::string_view name = trim(t.substr(prefix.size()));
    if (name.empty() || name.find_first_of(" \t;=,") != std::string_view::npos) return false;
    *out = HashKeySpec{k, std::string(name)};
    return true;
  }
  return false;
}

std::string_view find_cookie(std::string_view cookie_header, std::string_view name) {
  std::string_view rest = cookie_header;
  while (!rest.empty()) {
    std::string_view pair = next_field(rest, ';');
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) continue;
    std::string_view v = trim(pair.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return v;
  }
  return {};
}

std::string_view find_arg(std::string_view query, std::string_view name) {
  std::string_view rest = query;
  while (!rest.empty()) {
    std::string_view pair = next_field(rest, '&');
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
  }
  return {};
}

std::string_view extract_hash_key(const HashKeySpec& spec, const KeySources& src,
                                  HeaderLookup header) {
  switch (spec.kind) {
    case HashKeyKind::RemoteAddr: return src.remote_addr;
    case HashKeyKind::Uri: return src.uri;
    case HashKeyKind::Path: return src.path;
    case HashKeyKind::Header: return trim(header(spec.name));
    case HashKeyKind::Cookie: return find_cookie(src.cookie_header, spec.name);
    case HashKeyKind::Arg: return find_arg(src.query, spec.name);
  }
  return {};
}

}  // namespace pasture::lb
