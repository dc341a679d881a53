// Small re-implementations of the Python behaviour paste.deploy relies on:
// str.strip()/split(), repr() of a str, os.path helpers, urllib unquote, and
// an insertion-ordered dict whose values remember where they came from.
#pragma once

#include <optional>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "conf/error.h"
#include "conf/model.h"

namespace pasture::conf::py {

// A Python exception as paste.deploy would raise it: `type` is the exception
// class name ("LookupError"), `text` is str(exc). what() = "file:line: type: text".
class Error : public ConfigError {
 public:
  Error(std::string file, int line, std::string type, std::string text)
      : ConfigError(std::move(file), line, type + ": " + text), type_(std::move(type)), text_(std::move(text)) {}
  const std::string& type() const { return type_; }
  const std::string& text() const { return text_; }
  // "Type: text", the form dump_pastedeploy.py prints.
  std::string py_str() const { return text_.empty() ? type_ : type_ + ": " + text_; }

 private:
  std::string type_;
  std::string text_;
};

// Python's str.isspace() for the ASCII range (plus the C0 separators 0x1c-0x1f).
bool is_space(char c);
std::string strip(const std::string& s);
std::string rstrip(const std::string& s);
// str.split() without arguments: split on runs of whitespace, no empty items.
std::vector<std::string> split(const std::string& s);
bool starts_with(const std::string& s, const std::string& prefix);

// repr() of a Python 3 str given as UTF-8.
std::string repr(const std::string& s);

// Appends code point `cp` as UTF-8.
void append_utf8(std::string& out, uint32_t cp);
// repr() of a list of str: ['a', 'b'].
std::string repr_list(const std::vector<std::string>& items);

// posixpath functions.
std::string dirname(const std::string& path);
std::string normpath(const std::string& path);
std::string abspath(const std::string& path);  // relative to the process cwd
bool isabs(const std::string& path);
// urllib.parse.unquote (UTF-8, invalid escapes kept as is).
std::string unquote(const std::string& s);

// A value of a paste.deploy conf dict, with the place it was written.
struct Value {
  std::string value;
  SourceLoc loc;  // line 0 = not from a file line (vars, here, __file__)
};

// Python dict semantics: insertion order; assigning an existing key keeps
// its position.
class Dict {
 public:
  using Item = std::pair<std::string, Value>;
  const Value* find(const std::string& key) const;
  bool contains(const std::string& key) const { return find(key) != nullptr; }
  void set(const std::string& key, Value v);
  void set(const std::string& key, const std::string& v) { set(key, Value{v, {}}); }
  std::optional<Value> pop(const std::string& key);
  void update(const Dict& other);
  std::vector<std::string> keys() const;
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  std::vector<Item>::const_iterator end() const { return items_.end(); }

 private:
  std::vector<Item> items_;
};

}  // namespace pasture::conf::py
