#include "conf/ini.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace pasture::conf::ini {

using py::repr;

const Option* Section::find(const std::string& key) const {
  for (const auto& o : options) {
    if (o.key == key) return &o;
  }
  return nullptr;
}

namespace {

constexpr int kMaxInterpolationDepth = 10;  // configparser.MAX_INTERPOLATION_DEPTH

// Python's text-mode file iteration: universal newlines, each line keeps its "\n".
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
      c = '\n';
    }
    cur += c;
    if (c == '\n') {
      lines.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) lines.push_back(std::move(cur));
  return lines;
}

// Byte offset of the first invalid UTF-8 sequence, or npos.
size_t invalid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    int n = b < 0x80 ? 0 : (b >= 0xc2 && b <= 0xdf) ? 1 : (b >> 4) == 0xe ? 2 : (b >= 0xf0 && b <= 0xf4) ? 3 : -1;
    if (n < 0 || i + n >= s.size() + (n == 0)) return i;
    for (int k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return i;
    }
    i += n + 1;
  }
  return std::string::npos;
}

std::string line_fmt(int lineno) {
  char buf[32];
  snprintf(buf, sizeof buf, "[line %2d]", lineno);
  return buf;
}

// Parse state mirroring the locals of RawConfigParser._read.
struct TmpOption {
  std::string key;
  std::vector<std::string> parts;  // value lines; empty + !is_list = constructor default
  bool is_list = false;
  std::string raw;
  int line = 0;
};

struct TmpSection {
  std::string name;
  int line = 0;
  std::vector<TmpOption> opts;
};

class Reader {
 public:
  Reader(const std::string& filename, std::vector<Option> defaults) : fname_(filename) {
    for (auto& d : defaults) defaults_.opts.push_back({d.key, {}, false, d.raw, d.line});
  }
  void run(const std::string& text);
  std::vector<Option> take_defaults() { return finish(defaults_); }
  std::vector<Section> take_sections();

 private:
  TmpSection* cur() { return cur_ == -1 ? &defaults_ : cur_ >= 0 ? &sects_[cur_] : nullptr; }
  void line(int lineno, const std::string& raw);
  void header(int lineno, const std::string& name);
  void option(int lineno, const std::string& raw, const std::string& value);
  void parse_error(int lineno, const std::string& raw);
  static std::vector<Option> finish(TmpSection& s);

  std::string fname_;
  TmpSection defaults_;
  std::vector<TmpSection> sects_;
  std::set<std::string> added_sections_;
  std::set<std::pair<std::string, std::string>> added_options_;
  int cur_ = -2;  // -2: no section yet, -1: DEFAULT, else index into sects_
  std::string sectname_;
  int opt_ = -1;  // index of the current option in cur(), -1 = none
  size_t indent_level_ = 0;
  std::string errors_;  // ParsingError message, empty = none
  int first_error_line_ = 0;
};

void Reader::run(const std::string& text) {
  auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) line(static_cast<int>(i + 1), lines[i]);
  if (!errors_.empty()) throw py::Error(fname_, first_error_line_, "ParsingError", errors_);
}

void Reader::line(int lineno, const std::string& raw) {
  std::string value = py::strip(raw);
  // Whole-line comments only (no inline_comment_prefixes); they neither end
  // nor extend the current value.
  if (!value.empty() && (value[0] == '#' || value[0] == ';')) return;
  if (value.empty()) {
    // empty_lines_in_values: kept, trailing ones are dropped when joining.
    if (cur() && opt_ >= 0) cur()->opts[opt_].parts.push_back("");
    return;
  }
  size_t indent = 0;
  while (indent < raw.size() && py::is_space(raw[indent])) ++indent;
  if (cur() && opt_ >= 0 && indent > indent_level_) {
    cur()->opts[opt_].parts.push_back(value);
    return;
  }
  indent_level_ = indent;
  // SECTCRE `\[(?P<header>.+)\]` with match(): greedy, so up to the last ']'.
  size_t close = value.rfind(']');
  if (value[0] == '[' && close != std::string::npos && close >= 2) {
    header(lineno, value.substr(1, close - 1));
  } else if (!cur()) {
    throw py::Error(fname_, lineno, "MissingSectionHeaderError",
                    "File contains no section headers.\nfile: " + repr(fname_) + ", line: " +
                        std::to_string(lineno) + "\n" + repr(raw));
  } else {
    option(lineno, raw, value);
  }
}

void Reader::header(int lineno, const std::string& name) {
  sectname_ = name;
  if (name == "DEFAULT") {
    cur_ = -1;
  } else {
    if (added_sections_.count(name)) {
      throw py::Error(fname_, lineno, "DuplicateSectionError",
                      "While reading from " + repr(fname_) + " " + line_fmt(lineno) + ": section " + repr(name) +
                          " already exists");
    }
    added_sections_.insert(name);
    sects_.push_back({name, lineno, {}});
    cur_ = static_cast<int>(sects_.size()) - 1;
  }
  opt_ = -1;
}

void Reader::option(int lineno, const std::string& raw, const std::string& value) {
  size_t delim = value.find_first_of("=:");
  if (delim == std::string::npos) {
    parse_error(lineno, raw);
    return;
  }
  std::string key = py::rstrip(value.substr(0, delim));
  if (key.empty()) parse_error(lineno, raw);
  if (added_options_.count({sectname_, key})) {
    throw py::Error(fname_, lineno, "DuplicateOptionError",
                    "While reading from " + repr(fname_) + " " + line_fmt(lineno) + ": option " + repr(key) +
                        " in section " + repr(sectname_) + " already exists");
  }
  added_options_.insert({sectname_, key});
  TmpSection* s = cur();
  TmpOption opt{key, {py::strip(value.substr(delim + 1))}, true, "", lineno};
  opt_ = -1;
  for (size_t i = 0; i < s->opts.size(); ++i) {
    if (s->opts[i].key == key) {
      s->opts[i] = opt;  // a file DEFAULT entry replaces here/__file__ in place
      opt_ = static_cast<int>(i);
    }
  }
  if (opt_ < 0) {
    s->opts.push_back(opt);
    opt_ = static_cast<int>(s->opts.size()) - 1;
  }
  if (key.empty()) opt_ = -1;  // Python's optname '' is falsy: no continuation
}

void Reader::parse_error(int lineno, const std::string& raw) {
  if (errors_.empty()) {
    errors_ = "Source contains parsing errors: " + repr(fname_);
    first_error_line_ = lineno;
  }
  errors_ += "\n\t" + line_fmt(lineno) + ": " + repr(raw);
}

std::vector<Option> Reader::finish(TmpSection& s) {
  std::vector<Option> out;
  for (auto& o : s.opts) {
    std::string raw = o.raw;
    if (o.is_list) {
      raw.clear();
      for (size_t i = 0; i < o.parts.size(); ++i) raw += (i ? "\n" : "") + o.parts[i];
      raw = py::rstrip(raw);
    }
    out.push_back({o.key, raw, o.line});
  }
  return out;
}

std::vector<Section> Reader::take_sections() {
  std::vector<Section> out;
  for (auto& s : sects_) out.push_back({s.name, s.line, finish(s)});
  return out;
}

std::string read_text(const std::string& filename) {
  std::ifstream in(filename, std::ios::binary);
  errno = 0;
  if (!in) {
    int e = errno ? errno : ENOENT;
    const char* type = e == ENOENT ? "FileNotFoundError" : e == EACCES || e == EPERM ? "PermissionError" : "OSError";
    throw py::Error(filename, 0, type, "[Errno " + std::to_string(e) + "] " + strerror(e) + ": " + repr(filename));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    throw py::Error(filename, 0, "IsADirectoryError", "[Errno 21] Is a directory: " + repr(filename));
  }
  return ss.str();
}

}  // namespace

Parser Parser::read_file(const std::string& filename) {
  std::string abs = py::abspath(filename);
  return parse(read_text(filename), filename, {{"here", py::dirname(abs), 0}, {"__file__", abs, 0}});
}

Parser Parser::parse(const std::string& text, const std::string& filename, std::vector<Option> defaults) {
  size_t bad = invalid_utf8(text);
  if (bad != std::string::npos) {
    char buf[160];
    snprintf(buf, sizeof buf, "'utf-8' codec can't decode byte 0x%02x in position %zu: invalid start byte",
             static_cast<unsigned char>(text[bad]), bad);
    throw py::Error(filename, 0, "UnicodeDecodeError", buf);
  }
  Reader r(filename, std::move(defaults));
  r.run(text);
  Parser p;
  p.filename_ = filename;
  p.defaults_ = r.take_defaults();
  p.sections_ = r.take_sections();
  return p;
}

const Section* Parser::section(const std::string& name) const {
  for (const auto& s : sections_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const Option* Parser::find_default(const std::string& key) const {
  for (const auto& o : defaults_) {
    if (o.key == key) return &o;
  }
  return nullptr;
}

void Parser::update_defaults(const py::Dict& values, bool overwrite) {
  for (const auto& [key, v] : values) {
    const std::string& k = key;  // clang 14 cannot capture a structured binding
    auto it = std::find_if(defaults_.begin(), defaults_.end(), [&](const Option& o) { return o.key == k; });
    if (it == defaults_.end()) {
      defaults_.push_back({key, v.value, 0});
    } else if (overwrite) {
      it->raw = v.value;
    }
  }
}

const Option* Parser::lookup(const std::string& section, const std::string& option) const {
  if (section != "DEFAULT") {
    const Section* s = this->section(section);
    if (!s) throw py::Error(filename_, 0, "NoSectionError", "No section: " + repr(section));
    if (const Option* o = s->find(option)) return o;
  }
  return find_default(option);
}

SourceLoc Parser::loc(const std::string& section, const std::string& option) const {
  const Option* o = lookup(section, option);
  return {filename_, o ? o->line : 0};
}

void Parser::fail(const std::string& section, const std::string& option, const std::string& type,
                  const std::string& msg) const {
  // NicerConfigParser.InterpolateWrapper prefixes the file name.
  throw py::Error(filename_, loc(section, option).line, type, "Error in file " + filename_ + ": " + msg);
}

std::string Parser::get(const std::string& section, const std::string& option) const {
  const Option* o = lookup(section, option);
  if (!o) {
    throw py::Error(filename_, 0, "NoOptionError", "No option " + repr(option) + " in section: " + repr(section));
  }
  std::string out;
  interpolate(section, option, o->raw, out, o->raw, 1, option);
  return out;
}

void Parser::interpolate(const std::string& section, const std::string& option, const std::string& rawval,
                         std::string& accum, const std::string& rest_in, int depth,
                         const std::string& source) const {
  // Python quotes the raw value in these messages; for a secret (the value
  // of `option` or of the key `source` it reached) the message names the
  // key instead: it lands in logs (a reload's) and terminals.
  bool hide = is_secret(option) || is_secret(source);
  const std::string where = "option " + repr(option) + " in section " + repr(section);
  const std::string hidden = " (its value is a secret: not shown)";
  if (depth > kMaxInterpolationDepth) {
    fail(section, option, "InterpolationDepthError",
         "Recursion limit exceeded in value substitution: " + where +
             " contains an interpolation key which cannot be substituted in 10 steps. " +
             (hide ? "Raw value not shown: a secret" : "Raw value: " + repr(rawval)));
  }
  std::string rest = rest_in;
  while (!rest.empty()) {
    size_t p = rest.find('%');
    if (p == std::string::npos) {
      accum += rest;
      return;
    }
    accum += rest.substr(0, p);
    rest = rest.substr(p);
    char c = rest.size() > 1 ? rest[1] : '\0';
    if (c == '%') {
      accum += '%';
      rest = rest.substr(2);
    } else if (c == '(') {
      size_t close = rest.find(')', 2);
      if (close == std::string::npos || close == 2 || close + 1 >= rest.size() || rest[close + 1] != 's') {
        fail(section, option, "InterpolationSyntaxError",
             hide ? "bad interpolation variable reference in " + where + hidden
                  : "bad interpolation variable reference " + repr(rest));
      }
      std::string var = rest.substr(2, close - 2);
      rest = rest.substr(close + 2);
      const Option* v = lookup(section, var);
      if (!v) {
        fail(section, option, "InterpolationMissingOptionError",
             hide ? "Bad value substitution: " + where +
                        " contains an interpolation key which is not a valid option name" + hidden
                  : "Bad value substitution: " + where + " contains an interpolation key " + repr(var) +
                        " which is not a valid option name. Raw value: " + repr(rawval));
      }
      if (v->raw.find('%') != std::string::npos) {
        interpolate(section, option, rawval, accum, v->raw, depth + 1, var);
      } else {
        accum += v->raw;
      }
    } else {
      fail(section, option, "InterpolationSyntaxError",
           hide ? "'%' must be followed by '%' or '(' in " + where + " (its value is a secret: not shown; " +
                      "write %% for a literal %)"
                : "'%' must be followed by '%' or '(', found: " + repr(rest));
    }
  }
}

bool is_secret_key(const std::string& key) {
  std::string k = key;
  std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
  if (k == "hash_key") return false;  // pasture's balancer: what to hash, not a key
  for (const char* word : {"secret", "password", "passwd", "token", "credential"})
    if (k.find(word) != std::string::npos) return true;
  return k.size() >= 3 && k.compare(k.size() - 3, 3, "key") == 0;  // api_key, private_key...
}

// Computed only on the error path. Keys are matched by name in every
// section: over-inclusive, which only costs a quoted value in a message.
bool Parser::is_secret(const std::string& key) const {
  std::set<std::string> secret;
  std::vector<const Option*> all;
  for (const Option& o : defaults_) all.push_back(&o);
  for (const Section& sec : sections_)
    for (const Option& o : sec.options) all.push_back(&o);
  for (const Option* o : all)
    if (is_secret_key(o->key)) secret.insert(o->key);
  // What a secret refers to with %(name)s holds (part of) the secret too.
  for (bool grew = true; grew;) {
    grew = false;
    for (const Option* o : all) {
      if (!secret.count(o->key)) continue;
      for (size_t at = o->raw.find("%("); at != std::string::npos; at = o->raw.find("%(", at + 2)) {
        size_t close = o->raw.find(")s", at + 2);
        if (close != std::string::npos && secret.insert(o->raw.substr(at + 2, close - at - 2)).second) grew = true;
      }
    }
  }
  return secret.count(key) > 0;
}

py::Dict Parser::defaults() const {
  py::Dict out;
  for (const auto& o : defaults_) {
    std::string v = get("DEFAULT", o.key);
    out.set(o.key, py::Value{v.empty() ? o.raw : v, {filename_, o.line}});
  }
  return out;
}

std::vector<std::string> Parser::options(const std::string& section) const {
  const Section* s = this->section(section);
  if (!s) throw py::Error(filename_, 0, "NoSectionError", "No section: " + repr(section));
  std::vector<std::string> out;
  for (const auto& o : s->options) out.push_back(o.key);
  for (const auto& o : defaults_) {
    if (!s->find(o.key)) out.push_back(o.key);
  }
  return out;
}

}  // namespace pasture::conf::ini
