// paste.deploy's resolution (paste/deploy/loadwsgi.py, loadcontext and
// ConfigLoader.get_context), ported line by line so that the quirks match:
// DEFAULT keys dropped from local_conf, set/get, `use` chains, config:
// includes with update_defaults(overwrite=False), pipelines, filter-app,
// filter-with, and even the dict aliasing between contexts (global_conf and
// local_conf are shared the same way Python shares them).
//
// Nothing is imported: egg: references are checked against an embedded
// entry-point table of Paste, PasteDeploy, PasteScript, waitress, gunicorn and
// pasture itself; other eggs, call: specs and explicit paste.*_factory keys
// are recorded as factory references.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "conf/ini.h"
#include "conf/pyutil.h"

namespace pasture::conf::paste {

enum class ObjectType { App, Filter, Server, Pipeline, FilterApp, FilterWith };

struct FactoryRef {
  enum class Type { None, Egg, Call, Explicit };
  Type type = Type::None;
  std::string dist;         // Egg: as written after "egg:"
  std::string entry_point;  // Egg: after '#', default "main"
  bool dist_known = false;  // Egg: dist is in the embedded table
  std::string spec;         // Call / Explicit: "module:obj"
  std::string key;          // Explicit: "paste.app_factory", ...
  // "egg:Dist#ep", "call:spec", "paste.app_factory = spec"
  std::string str() const;
};

struct SectionRef {
  std::string file;     // ConfigLoader.filename (as paste.deploy built it)
  std::string section;  // exact header text
  int line = 0;         // header line
};

class ConfigLoader;
struct Context;
using ContextPtr = std::shared_ptr<Context>;
using DictPtr = std::shared_ptr<py::Dict>;

// The loader a context came from (ctx.loader); composites resolve the names
// in their local_conf through it.
struct LoaderRef {
  enum class Kind { Config, Egg, Func };
  Kind kind = Kind::Config;
  std::shared_ptr<ConfigLoader> config;  // Kind::Config
  std::string spec;                      // Kind::Egg / Kind::Func
};

// LoaderContext plus what dump_pastedeploy.py records about it.
struct Context {
  ObjectType object_type = ObjectType::App;
  FactoryRef factory;
  std::string protocol;         // "" = None
  std::string protocol_source;  // entry_point | explicit_key | section_type | guessed_from_section
  DictPtr global_conf;
  DictPtr local_conf;
  LoaderRef loader;
  std::vector<SectionRef> sections;  // `use` chain, outermost first
  SourceLoc factory_loc;             // the `use =` / paste.*_factory line that named the factory
  std::string factory_section;       // the section holding factory_loc

  std::vector<std::string> pipeline_names;  // Pipeline: raw names
  std::vector<ContextPtr> filter_contexts;  // Pipeline: filters, outermost first
  ContextPtr app_context;                   // Pipeline: the app
  std::string next_name;                    // FilterApp
  std::string requested_name;               // a filter reached through filter-with: that name
  ContextPtr filter_context;                // FilterApp / FilterWith
  ContextPtr next_context;                  // FilterApp / FilterWith

  // dump kind: app | composite | filter | server | pipeline | filter_app | filter_with
  std::string kind() const;
};

class ConfigLoader {
 public:
  // Reads and parses `filename` (stripped, as paste.deploy does). Throws py::Error.
  explicit ConfigLoader(const std::string& filename);
  const std::string& filename() const { return filename_; }
  ini::Parser& parser() { return parser_; }
  const ini::Parser& parser() const { return parser_; }

 private:
  std::string filename_;
  ini::Parser parser_;
};

class Resolver {
 public:
  struct Options {
    // Accept pasture's spellings that real paste.deploy would reject
    // (egg:Paste#balancer as a filter). Off for corpus fidelity.
    bool pasture_aliases = false;
  };
  Resolver() = default;
  explicit Resolver(Options opts) : opts_(opts) {}

  // loadwsgi.loadcontext. `name` empty = none given ("main" unless the uri has
  // a #fragment). global_conf may be null. Throws py::Error.
  ContextPtr loadcontext(ObjectType type, const std::string& uri, const std::string& name,
                         const std::string& relative_to, DictPtr global_conf);
  // loader.get_context(type, name, global_conf) for any loader kind.
  ContextPtr get_context(const LoaderRef& loader, ObjectType type, const std::string& name, DictPtr global_conf);
  // `require =` specs seen (paste.deploy would check they are installed).
  const std::vector<std::string>& requires_seen() const { return requires_; }

 private:
  ContextPtr load_config(ObjectType type, const std::string& uri, std::string path, const std::string& name,
                         const std::string& relative_to, DictPtr global_conf);
  ContextPtr config_get_context(const std::shared_ptr<ConfigLoader>& loader, ObjectType type,
                                const std::string& name, DictPtr global_conf);
  ContextPtr section_context(const std::shared_ptr<ConfigLoader>& loader, ObjectType type,
                             const std::string& section, DictPtr global_conf);
  ContextPtr egg_get_context(const std::string& spec, ObjectType type, const std::string& name, DictPtr global_conf);
  ContextPtr func_get_context(const std::string& spec, ObjectType type, const std::string& name, DictPtr global_conf);
  ContextPtr context_from_use(const std::shared_ptr<ConfigLoader>& loader, ObjectType type, DictPtr local_conf,
                              DictPtr global_conf, const py::Dict& additions, const std::string& section);
  ContextPtr context_from_explicit(const std::shared_ptr<ConfigLoader>& loader, ObjectType type, DictPtr local_conf,
                                   DictPtr global_conf, const std::string& section);
  ContextPtr filter_app_context(const std::shared_ptr<ConfigLoader>& loader, const std::string& section,
                                DictPtr global_conf, DictPtr local_conf, const py::Dict& additions);
  ContextPtr pipeline_context(const std::shared_ptr<ConfigLoader>& loader, const std::string& section,
                              DictPtr global_conf, DictPtr local_conf);

  Options opts_;
  std::vector<std::string> requires_;
  int depth_ = 0;
};

// _Loader.absolute_name: the name starts with `[a-zA-Z]+:`.
bool absolute_name(const std::string& name);
// ConfigLoader.find_config_section. Throws py::Error (LookupError).
std::string find_config_section(const ConfigLoader& loader, ObjectType type, const std::string& name);

}  // namespace pasture::conf::paste
