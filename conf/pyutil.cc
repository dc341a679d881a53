#include "conf/pyutil.h"

#include <unistd.h>

#include <cstdio>

namespace pasture::conf::py {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
         (c >= 0x1c && c <= 0x1f);
}

std::string strip(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string rstrip(const std::string& s) {
  size_t e = s.size();
  while (e > 0 && is_space(s[e - 1])) --e;
  return s.substr(0, e);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

namespace {

// Decodes one UTF-8 sequence at s[i]; invalid bytes decode as themselves
// (U+0080..U+00FF), which only matters for repr of undecodable input.
uint32_t next_cp(const std::string& s, size_t& i) {
  auto b = static_cast<unsigned char>(s[i]);
  int n = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1;
  if (n < 0 || i + n >= s.size() + (n == 0 ? 1 : 0)) {
    ++i;
    return b;
  }
  uint32_t cp = n == 0 ? b : n == 1 ? (b & 0x1f) : n == 2 ? (b & 0x0f) : (b & 0x07);
  for (int k = 1; k <= n; ++k) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xc0) != 0x80) {
      ++i;
      return b;
    }
    cp = (cp << 6) | (c & 0x3f);
  }
  i += n + 1;
  return cp;
}

// Approximation of str.isprintable() for non-ASCII code points: separators
// (other than ' '), format characters, controls and private use are not.
bool printable(uint32_t cp) {
  if (cp < 0xa1) return cp >= 0x20 && cp < 0x7f;
  if (cp == 0xad || cp == 0x1680 || cp == 0x180e || cp == 0x202f || cp == 0x205f || cp == 0x3000) return false;
  if ((cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f))
    return false;
  if (cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) || (cp >= 0xd800 && cp <= 0xf8ff)) return false;
  if (cp >= 0xf0000) return false;
  return true;
}


}  // namespace

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

std::string repr(const std::string& s) {
  char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = next_cp(s, i);
    if (cp == '\\' || cp == static_cast<uint32_t>(quote)) {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (printable(cp)) {
      append_utf8(out, cp);
    } else {
      const char* fmt = cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x";
      snprintf(buf, sizeof buf, fmt, cp);
      out += buf;
    }
  }
  out += quote;
  return out;
}

std::string repr_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + repr(items[i]);
  return out + "]";
}

std::string dirname(const std::string& path) {
  size_t i = path.rfind('/');
  std::string head = i == std::string::npos ? "" : path.substr(0, i + 1);
  if (!head.empty() && head.find_first_not_of('/') != std::string::npos) {
    while (!head.empty() && head.back() == '/') head.pop_back();
  }
  return head;
}

bool isabs(const std::string& path) { return !path.empty() && path[0] == '/'; }

std::string normpath(const std::string& path) {
  if (path.empty()) return ".";
  // POSIX allows exactly two leading slashes to be special; Python keeps them.
  int initial = path[0] == '/' ? (path.size() > 1 && path[1] == '/' && (path.size() < 3 || path[2] != '/') ? 2 : 1) : 0;
  std::vector<std::string> comps;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string c = path.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c != ".." || (!initial && comps.empty()) || (!comps.empty() && comps.back() == "..")) {
      comps.push_back(c);
    } else if (!comps.empty()) {
      comps.pop_back();
    }
  }
  std::string out(initial, '/');
  for (size_t k = 0; k < comps.size(); ++k) out += (k ? "/" : "") + comps[k];
  return out.empty() ? "." : out;
}

std::string abspath(const std::string& path) {
  if (isabs(path)) return normpath(path);
  char buf[4096];
  std::string cwd = getcwd(buf, sizeof buf) ? buf : "/";
  return normpath(cwd + "/" + path);
}

std::string unquote(const std::string& s) {
  std::string out;
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() + 0 && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

const Value* Dict::find(const std::string& key) const {
  for (const auto& it : items_) {
    if (it.first == key) return &it.second;
  }
  return nullptr;
}

void Dict::set(const std::string& key, Value v) {
  for (auto& it : items_) {
    if (it.first == key) {
      it.second = std::move(v);
      return;
    }
  }
  items_.emplace_back(key, std::move(v));
}

std::optional<Value> Dict::pop(const std::string& key) {
  for (auto it = items_.begin(); it != items_.end(); ++it) {
    if (it->first == key) {
      Value v = std::move(it->second);
      items_.erase(it);
      return v;
    }
  }
  return std::nullopt;
}

void Dict::update(const Dict& other) {
  for (const auto& it : other.items_) set(it.first, it.second);
}

std::vector<std::string> Dict::keys() const {
  std::vector<std::string> out;
  for (const auto& it : items_) out.push_back(it.first);
  return out;
}

}  // namespace pasture::conf::py
