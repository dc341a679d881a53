// Static-files app keys (conf/site_static.h).
#include "conf/site_static.h"

#include <sys/stat.h>

#include "conf/site_pool.h"

namespace pasture::conf {

namespace {

[[noreturn]] void bad(const SourceLoc& loc, const std::string& msg) { throw ConfigError(loc.file, loc.line, msg); }

// An index file name: one path segment, not `.`/`..`.
std::vector<std::string> parse_index(const py::Value& v) {
  std::vector<std::string> out;
  for (const std::string& n : py::split(v.value)) {
    if (n == "." || n == ".." || n.find('/') != std::string::npos || n.find('\0') != std::string::npos)
      bad(v.loc, "index: '" + n + "' is not a file name");
    out.push_back(n);
  }
  return out;
}

StaticFiles::Symlinks parse_symlinks(const py::Value& v) {
  std::string s = py::strip(v.value);
  if (s == "beneath" || s == "inside") return StaticFiles::Symlinks::Beneath;
  int b = as_bool(s);
  if (b == 1) return StaticFiles::Symlinks::On;
  if (b == 0) return StaticFiles::Symlinks::Off;
  bad(v.loc, "follow_symlinks: expected off, beneath or on, got '" + s + "'");
}

void parse_precompressed(StaticFiles& f, const py::Value& v) {
  f.gzip_static = f.br_static = false;
  for (const std::string& w : py::split(v.value)) {
    if (w == "gzip")
      f.gzip_static = true;
    else if (w == "br")
      f.br_static = true;
    else if (as_bool(w) == 0 && py::split(v.value).size() == 1)
      return;
    else if (as_bool(w) == 1 && py::split(v.value).size() == 1)
      f.gzip_static = f.br_static = true;
    else
      bad(v.loc, "precompressed: expected gzip, br, both, on or off, got '" + w + "'");
  }
}

std::string parse_charset(const py::Value& v) {
  std::string s = py::strip(v.value);
  if (as_bool(s) == 0) return "";
  for (char c : s)
    if (!isalnum((unsigned char)c) && c != '-' && c != '_' && c != '.' && c != ':')
      bad(v.loc, "charset: '" + s + "' is not a charset name");
  return s;
}

}  // namespace

const char* symlinks_word(StaticFiles::Symlinks s) {
  switch (s) {
    case StaticFiles::Symlinks::Off: return "off";
    case StaticFiles::Symlinks::Beneath: return "beneath";
    case StaticFiles::Symlinks::On: return "on";
  }
  return "?";
}

std::vector<std::string> fill_static(StaticFiles& f, bool paste, const py::Dict& keys, const std::string& section,
                                     const SourceLoc& section_loc, py::Value* fallback) {
  f = StaticFiles{};
  f.paste = paste;
  f.dotfiles = paste;  // Paste serves them; pasture's own flavour does not by default
  std::vector<std::string> unknown;
  const py::Value* root = nullptr;
  for (const auto& [key, v] : keys) {
    if (key == "document_root") {
      root = &v;
    } else if (key == "cache_max_age") {
      // Paste: int(cache_max_age), and 0 sends nothing (`if self.cache_max_age`).
      f.cache_max_age = parse_uint(py::strip(v.value), 0x7fffffff, v.loc, "cache_max_age");
      if (paste && f.cache_max_age == 0) f.cache_max_age = -1;
    } else if (key == "index" || key == "follow_symlinks" || key == "dotfiles" || key == "precompressed" ||
               key == "charset" || key == "fallback" || key == "autoindex") {
      if (paste)
        bad(v.loc, "[" + section + "] '" + key +
                       "' is a key of egg:pasture#static; egg:Paste#static takes document_root and cache_max_age "
                       "(paster serve would refuse it)");
      if (key == "index") f.index = parse_index(v);
      if (key == "follow_symlinks") f.symlinks = parse_symlinks(v);
      if (key == "dotfiles") f.dotfiles = parse_bool(py::strip(v.value), v.loc, "dotfiles");
      if (key == "precompressed") parse_precompressed(f, v);
      if (key == "charset") f.charset = parse_charset(v);
      if (key == "fallback") *fallback = {py::strip(v.value), v.loc};
      if (key == "autoindex") {
        f.autoindex = parse_bool(py::strip(v.value), v.loc, "autoindex");
      }
    } else {
      unknown.push_back(key);
    }
  }
  if (!root || py::strip(root->value).empty()) bad(section_loc, "[" + section + "] needs 'document_root ='");
  std::string r = py::strip(root->value);
  // Paste: os.path.abspath (the working directory); pasture: the config file's directory.
  if (!py::isabs(r)) r = paste ? py::abspath(r) : py::dirname(section_loc.file) + "/" + r;
  r = py::normpath(r);
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  struct stat st;
  if (stat(r.c_str(), &st) != 0) bad(root->loc, "document_root " + r + ": no such directory");
  if (!S_ISDIR(st.st_mode)) bad(root->loc, "document_root " + r + " is not a directory");
  f.root = r;
  return unknown;
}

}  // namespace pasture::conf
