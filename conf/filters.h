// The paste.deploy filters pasture runs natively (conf::Filter): which
// entry points they are, and their keys, read with the arguments'
// meaning in Paste (paste/gzipper.py, paste/deploy/config.py
// PrefixMiddleware, paste/translogger.py). A key the Paste factory does not
// take is an error, as the factory's TypeError would be.
#pragma once

#include <optional>
#include <string>

#include "conf/model.h"
#include "conf/pyutil.h"

namespace pasture::conf {

// egg:Paste#gzip, egg:PasteDeploy#prefix, egg:Paste#translogger (any
// spelling of the dist, as importlib.metadata normalises it); nullopt for
// any other entry point.
std::optional<FilterKind> native_filter_kind(const std::string& dist, const std::string& entry_point);

// The short names the YAML form uses (`use: gzip`), and the egg spelled in
// INI files ("egg:Paste#gzip").
const char* filter_short_name(FilterKind k);
const char* filter_egg(FilterKind k);
std::optional<FilterKind> filter_kind_from_name(const std::string& use);

// One key of a filter section into `f`. False for a key its factory does
// not take; throws ConfigError for a bad value (at v.loc).
bool apply_filter_key(Filter& f, const std::string& key, const py::Value& v);
// After the keys: checks that need all of them. Throws ConfigError.
void finish_filter(const Filter& f);

// TransLogger's format: every %(KEY)s names one of its keys, `%%` is a
// '%'. Returns "" when usable, else what is wrong.
std::string check_translogger_format(const std::string& format);

}  // namespace pasture::conf
