// The entry points of the eggs paste.deploy configs commonly name, embedded
// (the same table dump_pastedeploy.py embeds: Debian 12 Paste 3.5.2,
// PasteDeploy 3.0.1, PasteScript 3.2.1, waitress 2.1.2, gunicorn 20.1.0),
// plus pasture's own dist.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace pasture::conf::paste {

// entry-point name -> the groups (protocols) it is registered in.
using EntryPoints = std::map<std::string, std::vector<std::string>>;

// importlib.metadata's name normalisation: runs of -_. become '_', lower case.
std::string norm_dist(const std::string& name);

// Entry points of `dist` (any spelling), or nullptr for a dist not in the
// table. pasture_aliases adds egg:Paste#balancer (pasture's balancer filter).
const EntryPoints* known_egg(const std::string& dist, bool pasture_aliases);

}  // namespace pasture::conf::paste
