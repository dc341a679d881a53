// Media types (worker/static_mime.h).
#include "worker/static_mime.h"

#include <cctype>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace pasture::worker::files {
namespace {

std::string g_file = "/etc/mime.types";

// Used when the file cannot be read: the types static sites need most.
constexpr std::pair<const char*, const char*> kBuiltin[] = {
    {"html", "text/html"},         {"htm", "text/html"},        {"css", "text/css"},
    {"js", "text/javascript"},     {"mjs", "text/javascript"},  {"json", "application/json"},
    {"txt", "text/plain"},         {"xml", "application/xml"},  {"svg", "image/svg+xml"},
    {"png", "image/png"},          {"jpg", "image/jpeg"},       {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},          {"webp", "image/webp"},      {"ico", "image/vnd.microsoft.icon"},
    {"woff", "font/woff"},         {"woff2", "font/woff2"},     {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},    {"tar", "application/x-tar"}, {"gz", "application/gzip"},
    {"zip", "application/zip"},    {"mp4", "video/mp4"},        {"webm", "video/webm"},
};

struct Table {
  std::unordered_map<std::string, std::string> types;  // lower-case extension without '.' -> type
};

Table* g_table = nullptr;

const Table& table() {
  if (g_table) return *g_table;
  g_table = new Table;
  std::ifstream in(g_file);
  if (!in) {
    for (const auto& [e, t] : kBuiltin) g_table->types[e] = t;
    return *g_table;
  }
  std::string line;
  while (std::getline(in, line)) {
    size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string type, ext;
    if (!(words >> type)) continue;
    // Later lines win, as in Python's MimeTypes.readfp (add_type).
    while (words >> ext) g_table->types[ext] = type;
  }
  return *g_table;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = (char)std::tolower((unsigned char)c);
  return o;
}

// posixpath.splitext on a base name: the extension from the last '.', not
// counting leading dots (".bashrc" has none). Returns the '.'-led extension.
std::string_view splitext(std::string_view name, std::string_view* base) {
  size_t slash = name.rfind('/');
  size_t start = slash == std::string_view::npos ? 0 : slash + 1;
  size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot < start) {
    *base = name;
    return {};
  }
  for (size_t i = start; i < dot; i++) {
    if (name[i] != '.') {
      *base = name.substr(0, dot);
      return name.substr(dot);
    }
  }
  *base = name;
  return {};
}

std::string_view lookup(std::string_view dot_ext) {
  if (dot_ext.size() < 2) return {};
  const auto& t = table().types;
  auto it = t.find(lower(dot_ext.substr(1)));
  return it == t.end() ? std::string_view() : std::string_view(it->second);
}

}  // namespace

void set_mime_file(const std::string& path) {
  g_file = path;
  delete g_table;
  g_table = nullptr;
}

MediaType guess_paste(std::string_view name) {
  static const std::pair<std::string_view, std::string_view> kSuffix[] = {
      {".svgz", ".svg.gz"}, {".tgz", ".tar.gz"}, {".taz", ".tar.gz"},
      {".tz", ".tar.gz"},   {".tbz2", ".tar.bz2"}, {".txz", ".tar.xz"}};
  static const std::pair<std::string_view, std::string_view> kEncoding[] = {
      {".gz", "gzip"}, {".Z", "compress"}, {".bz2", "bzip2"}, {".xz", "xz"}, {".br", "br"}};
  std::string name_buf(name);
  std::string_view base;
  std::string_view ext = splitext(name_buf, &base);
  // At most one substitution applies (none of the replacements is itself a key).
  for (const auto& [from, to] : kSuffix) {
    if (lower(ext) == from) {
      name_buf = std::string(base) + std::string(to);
      ext = splitext(name_buf, &base);
      break;
    }
  }
  MediaType m;
  for (const auto& [e, enc] : kEncoding) {
    if (ext == e) {
      m.encoding = enc;
      ext = splitext(base, &base);
      break;
    }
  }
  m.type = lookup(ext);
  return m;
}

std::string_view guess_plain(std::string_view name) {
  std::string_view base;
  return lookup(splitext(name, &base));
}

}  // namespace pasture::worker::files
