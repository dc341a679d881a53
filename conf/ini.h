// A clone of Python 3 configparser.ConfigParser as paste.deploy configures it
// (NicerConfigParser: optionxform = str, strict, BasicInterpolation, defaults
// here/__file__), that also keeps the line number of every header and option.
//
// Errors are py::Error with Python's exception type and wording (the corpus
// dumps compare them), and the file:line of the offending line.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "conf/pyutil.h"

namespace pasture::conf::ini {

// Whether a key's value is a credential, by its name: it contains secret,
// password, passwd, token or credential, or ends in "key" (cookie_secret,
// db_password, api_key; not pasture's hash_key). Errors name such a key and
// never quote its value; `pasture inspect` shows it as "***".
bool is_secret_key(const std::string& key);

struct Option {
  std::string key;
  std::string raw;  // continuation lines joined with "\n", trailing blank lines dropped
  int line = 0;     // line of `key = ...`; 0 for constructor/merged defaults
};

struct Section {
  std::string name;  // exact header text between the brackets
  int line = 0;
  std::vector<Option> options;
  const Option* find(const std::string& key) const;
};

class Parser {
 public:
  // ConfigLoader(filename): read `filename` (as given; used in messages) with
  // defaults here = dirname(abspath(f)), __file__ = abspath(f).
  static Parser read_file(const std::string& filename);
  // Parse `text` as if read from `filename`, starting from `defaults`.
  static Parser parse(const std::string& text, const std::string& filename, std::vector<Option> defaults);

  const std::string& filename() const { return filename_; }
  const std::vector<Section>& sections() const { return sections_; }
  const Section* section(const std::string& name) const;
  const std::vector<Option>& defaults_raw() const { return defaults_; }
  const Option* find_default(const std::string& key) const;

  // ConfigLoader.update_defaults: add (overwrite=false: only missing) keys.
  void update_defaults(const py::Dict& values, bool overwrite);

  // parser.get(section, option): interpolated (BasicInterpolation, lookups in
  // the section then DEFAULT). section "DEFAULT" reads the defaults only.
  // Throws py::Error (Interpolation*Error, NoOptionError, NoSectionError).
  std::string get(const std::string& section, const std::string& option) const;
  // Where get(section, option) reads its raw value from.
  SourceLoc loc(const std::string& section, const std::string& option) const;
  // NicerConfigParser.defaults(): every DEFAULT value interpolated, with the
  // `or raw` quirk (an empty result gives the raw text). Throws on the first bad value.
  py::Dict defaults() const;
  // parser.options(section): the section's keys in file order, then DEFAULT keys.
  std::vector<std::string> options(const std::string& section) const;

 private:
  const Option* lookup(const std::string& section, const std::string& option) const;
  // `source` names the key whose raw text `rest` is (option itself at depth 1).
  void interpolate(const std::string& section, const std::string& option, const std::string& rawval,
                   std::string& accum, const std::string& rest, int depth, const std::string& source) const;
  // is_secret_key(key), or key is referred to (%(key)s, transitively) by such a key.
  bool is_secret(const std::string& key) const;
  [[noreturn]] void fail(const std::string& section, const std::string& option, const std::string& type,
                         const std::string& msg) const;

  std::string filename_;
  std::vector<Option> defaults_;
  std::vector<Section> sections_;
};

}  // namespace pasture::conf::ini
