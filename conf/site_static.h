// The keys of a static-files app (egg:Paste#static, egg:pasture#static),
// shared by the INI builder and the YAML loader.
#pragma once

#include <string>
#include <vector>

#include "conf/model.h"
#include "conf/pyutil.h"

namespace pasture::conf {

// Fills `f` from a section's keys (`paste`: egg:Paste#static, which takes
// document_root and cache_max_age only, as make_static does; a pasture key
// there is an error, since paster serve would fail on it). `section` names
// the section in messages. Returns the keys it does not know (the caller
// reports them); `fallback` gets the `fallback =` app's name ("" = none),
// which the caller resolves. Checks that document_root is a directory.
std::vector<std::string> fill_static(StaticFiles& f, bool paste, const py::Dict& keys, const std::string& section,
                                     const SourceLoc& section_loc, py::Value* fallback);

// "off", "beneath", "on"
const char* symlinks_word(StaticFiles::Symlinks s);

}  // namespace pasture::conf
