#include "conf/paste.h"

#include <algorithm>
#include <cctype>

#include "conf/paste_eggs.h"

namespace pasture::conf::paste {

using py::repr;
using Groups = std::vector<std::vector<std::string>>;

namespace {

constexpr int kMaxDepth = 200;  // stands in for Python's recursion limit (reference cycles)

const Groups& egg_protocols(ObjectType t) {
  static const Groups app = {{"paste.app_factory"}, {"paste.composite_factory"}, {"paste.composit_factory"}};
  static const Groups filter = {{"paste.filter_factory", "paste.filter_app_factory"}};
  static const Groups server = {{"paste.server_factory", "paste.server_runner"}};
  static const Groups none;
  return t == ObjectType::App ? app : t == ObjectType::Filter ? filter : t == ObjectType::Server ? server : none;
}

const Groups& config_prefixes(ObjectType t) {
  static const Groups app = {{"app", "application"}, {"composite", "composit"}, {"pipeline"}, {"filter-app"}};
  static const Groups filter = {{"filter"}};
  static const Groups server = {{"server"}};
  static const Groups none;
  return t == ObjectType::App ? app : t == ObjectType::Filter ? filter : t == ObjectType::Server ? server : none;
}

std::string join(const std::vector<std::string>& items, const std::string& sep, bool quote = false) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + (quote ? repr(items[i]) : items[i]);
  return out;
}

std::vector<std::string> flatten(const Groups& g) {
  std::vector<std::string> out;
  for (const auto& v : g) out.insert(out.end(), v.begin(), v.end());
  return out;
}

[[noreturn]] void lookup_error(const std::string& file, const std::string& msg) {
  throw py::Error(file, 0, "LookupError", msg);
}

// A LookupError about one section: at its header line, so that an error
// reached from the top (no `use =`/`next =` line to blame) still names a line.
[[noreturn]] void section_error(const ConfigLoader& loader, const std::string& section, const std::string& msg) {
  const ini::Section* s = loader.parser().section(section);
  throw py::Error(loader.filename(), s ? s->line : 0, "LookupError", msg);
}

// Python's recursion limit, reached by `use` cycles.
class DepthGuard {
 public:
  explicit DepthGuard(int& depth) : depth_(depth) {
    if (depth_ >= kMaxDepth) throw py::Error("", 0, "RecursionError", "maximum recursion depth exceeded");
    ++depth_;
  }
  ~DepthGuard() { --depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;

 private:
  int& depth_;
};

// Runs fn; a py::Error without a line gets `loc` (the key that referenced the
// failing object), so start-up errors point at a line. Type and text are kept.
template <typename F>
ContextPtr at(const SourceLoc& loc, F&& fn) {
  try {
    return fn();
  } catch (const py::Error& e) {
    if (e.line() > 0 || loc.line == 0) throw;
    throw py::Error(loc.file, loc.line, e.type(), e.text());
  }
}

void tag(const ContextPtr& ctx, const SectionRef& ref) { ctx->sections.insert(ctx->sections.begin(), ref); }

}  // namespace

std::string FactoryRef::str() const {
  switch (type) {
    case Type::Egg:
      return "egg:" + dist + "#" + entry_point;
    case Type::Call:
      return "call:" + spec;
    case Type::Explicit:
      return key + " = " + spec;
    case Type::None:
      break;
  }
  return "";
}

std::string Context::kind() const {
  switch (object_type) {
    case ObjectType::Pipeline:
      return "pipeline";
    case ObjectType::FilterApp:
      return "filter_app";
    case ObjectType::FilterWith:
      return "filter_with";
    case ObjectType::Filter:
      return "filter";
    case ObjectType::Server:
      return "server";
    case ObjectType::App:
      break;
  }
  return protocol == "paste.composite_factory" || protocol == "paste.composit_factory" ? "composite" : "app";
}

ConfigLoader::ConfigLoader(const std::string& filename)
    : filename_(py::strip(filename)), parser_(ini::Parser::read_file(filename_)) {}

bool absolute_name(const std::string& name) {
  size_t i = 0;
  while (i < name.size() && std::isalpha(static_cast<unsigned char>(name[i]))) ++i;
  return i > 0 && i < name.size() && name[i] == ':';
}

std::string find_config_section(const ConfigLoader& loader, ObjectType type, const std::string& name) {
  std::vector<std::string> possible;
  for (const auto& group : config_prefixes(type)) {
    std::vector<std::string> found;
    for (const auto& prefix : group) {
      for (const auto& s : loader.parser().sections()) {
        if (py::starts_with(s.name, prefix + ":") && py::strip(s.name.substr(prefix.size() + 1)) == name) {
          found.push_back(s.name);
        }
      }
      if (!found.empty()) break;
    }
    possible.insert(possible.end(), found.begin(), found.end());
  }
  std::string prefixes = join(flatten(config_prefixes(type)), " or ", true);
  if (possible.empty()) {
    lookup_error(loader.filename(), "No section " + repr(name) + " (prefixed by " + prefixes + ") found in config " +
                                        loader.filename());
  }
  if (possible.size() > 1) {
    lookup_error(loader.filename(), "Ambiguous section names " + py::repr_list(possible) + " for section " +
                                        repr(name) + " (prefixed by " + prefixes + ") found in config " +
                                        loader.filename());
  }
  return possible[0];
}

ContextPtr Resolver::loadcontext(ObjectType type, const std::string& uri_in, const std::string& name_in,
                                 const std::string& relative_to, DictPtr global_conf) {
  std::string uri = uri_in, name = name_in;
  size_t hash = uri.find('#');
  if (hash != std::string::npos) {
    if (name.empty()) name = uri.substr(hash + 1);
    uri = uri.substr(0, hash);
  }
  if (name.empty()) name = "main";
  size_t colon = uri.find(':');
  if (colon == std::string::npos) lookup_error("", "URI has no scheme: " + repr(uri));
  std::string scheme = uri.substr(0, colon), path = uri.substr(colon + 1);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (scheme == "config") return load_config(type, uri, path, name, relative_to, global_conf);
  if (scheme == "egg") return egg_get_context(path, type, name, global_conf);
  if (scheme == "call") {
    if (path.find(':') == std::string::npos) lookup_error("", "Configuration not in format module:function");
    return func_get_context(path, type, name, global_conf);
  }
  lookup_error("", "URI scheme not known: " + repr(scheme) + " (from config, egg, call)");
}

ContextPtr Resolver::load_config(ObjectType type, const std::string& uri, std::string path, const std::string& name,
                                 const std::string& relative_to, DictPtr global_conf) {
  bool isabs = py::isabs(path);
  std::replace(path.begin(), path.end(), '\\', '/');
  if (!isabs) {
    if (relative_to.empty()) {
      throw py::Error("", 0, "ValueError",
                      "Cannot resolve relative uri " + repr(uri) + "; no relative_to keyword argument given");
    }
    std::string base = relative_to;
    std::replace(base.begin(), base.end(), '\\', '/');
    path = base.back() == '/' ? base + path : base + "/" + path;
  }
  if (py::starts_with(path, "///")) path = path.substr(2);
  path = py::unquote(path);
  auto loader = std::make_shared<ConfigLoader>(path);
  if (global_conf && !global_conf->empty()) loader->parser().update_defaults(*global_conf, false);
  return config_get_context(loader, type, name, global_conf);
}

ContextPtr Resolver::get_context(const LoaderRef& loader, ObjectType type, const std::string& name,
                                 DictPtr global_conf) {
  switch (loader.kind) {
    case LoaderRef::Kind::Config:
      return config_get_context(loader.config, type, name, global_conf);
    case LoaderRef::Kind::Egg:
      return egg_get_context(loader.spec, type, name, global_conf);
    case LoaderRef::Kind::Func:
      return func_get_context(loader.spec, type, name, global_conf);
  }
  return nullptr;
}

ContextPtr Resolver::config_get_context(const std::shared_ptr<ConfigLoader>& loader, ObjectType type,
                                        const std::string& name, DictPtr global_conf) {
  DepthGuard guard(depth_);
  if (absolute_name(name)) return loadcontext(type, name, "", py::dirname(loader->filename()), global_conf);
  std::string section = find_config_section(*loader, type, name);
  ContextPtr ctx = section_context(loader, type, section, global_conf);
  // dump_pastedeploy.py tags every context a config section produced.
  SectionRef ref{loader->filename(), section, loader->parser().section(section)->line};
  tag(ctx, ref);
  if (ctx->object_type == ObjectType::FilterWith) tag(ctx->next_context, ref);
  return ctx;
}

ContextPtr Resolver::section_context(const std::shared_ptr<ConfigLoader>& loader, ObjectType type,
                                     const std::string& section, DictPtr passed_global) {
  const ini::Parser& parser = loader->parser();
  py::Dict defaults = parser.defaults();
  auto global_conf = std::make_shared<py::Dict>(defaults);
  if (passed_global) global_conf->update(*passed_global);
  auto local_conf = std::make_shared<py::Dict>();
  py::Dict additions, gets;
  for (const auto& option : parser.options(section)) {
    py::Value v{"", parser.loc(section, option)};
    if (py::starts_with(option, "set ")) {
      v.value = parser.get(section, option);
      additions.set(py::strip(option.substr(4)), v);
      global_conf->set(py::strip(option.substr(4)), v);
    } else if (py::starts_with(option, "get ")) {
      v.value = parser.get(section, option);
      gets.set(py::strip(option.substr(4)), v);
    } else if (!defaults.contains(option)) {
      v.value = parser.get(section, option);
      local_conf->set(option, v);
    }
  }
  for (const auto& [local_var, glob] : gets) {
    const py::Value* g = global_conf->find(glob.value);
    if (!g) throw py::Error(glob.loc.file, glob.loc.line, "KeyError", repr(glob.value));
    local_conf->set(local_var, py::Value{g->value, glob.loc});
  }
  std::optional<py::Value> filter_with;
  if (type == ObjectType::App || type == ObjectType::Filter) filter_with = local_conf->pop("filter-with");
  if (auto req = local_conf->pop("require")) {
    for (const auto& spec : py::split(req->value)) requires_.push_back(spec);
  }
  ContextPtr ctx;
  if (py::starts_with(section, "filter-app:")) {
    ctx = filter_app_context(loader, section, global_conf, local_conf, additions);
  } else if (py::starts_with(section, "pipeline:")) {
    ctx = pipeline_context(loader, section, global_conf, local_conf);
  } else if (local_conf->contains("use")) {
    ctx = context_from_use(loader, type, local_conf, global_conf, additions, section);
  } else {
    ctx = context_from_explicit(loader, type, local_conf, global_conf, section);
  }
  if (!filter_with) return ctx;
  auto fw = std::make_shared<Context>();
  fw->object_type = ObjectType::FilterWith;
  fw->global_conf = global_conf;
  fw->local_conf = local_conf;
  fw->loader = {LoaderRef::Kind::Config, loader, ""};
  fw->filter_context = at(filter_with->loc, [&] {
    return config_get_context(loader, ObjectType::Filter, filter_with->value, global_conf);
  });
  fw->filter_context->requested_name = filter_with->value;
  fw->next_context = ctx;
  return fw;
}

ContextPtr Resolver::context_from_use(const std::shared_ptr<ConfigLoader>& loader, ObjectType type,
                                      DictPtr local_conf, DictPtr global_conf, const py::Dict& additions,
                                      const std::string& section) {
  py::Value use = *local_conf->pop("use");
  ContextPtr ctx = at(use.loc, [&] { return config_get_context(loader, type, use.value, global_conf); });
  ctx->global_conf->update(additions);
  ctx->local_conf->update(*local_conf);
  // use sections shouldn't overwrite the original __file__
  if (const py::Value* f = global_conf->find("__file__")) ctx->global_conf->set("__file__", py::Value(*f));
  ctx->loader = {LoaderRef::Kind::Config, loader, ""};
  if (ctx->protocol.empty()) {
    std::string prefix = section.substr(0, section.find(':'));
    if (prefix == "application" || prefix == "app") {
      ctx->protocol = "paste.app_factory";
    } else if (prefix == "composit" || prefix == "composite") {
      ctx->protocol = "paste.composit_factory";
    } else {
      ctx->protocol = "paste." + prefix + "_factory";
    }
  }
  if (ctx->factory_loc.line == 0) {
    ctx->factory_loc = use.loc;
    ctx->factory_section = section;
  }
  return ctx;
}

ContextPtr Resolver::context_from_explicit(const std::shared_ptr<ConfigLoader>& loader, ObjectType type,
                                           DictPtr local_conf, DictPtr global_conf, const std::string& section) {
  std::vector<std::pair<std::string, std::string>> possible;
  for (const auto& group : egg_protocols(type)) {
    for (const auto& protocol : group) {
      if (const py::Value* v = local_conf->find(protocol)) {
        possible.emplace_back(protocol, v->value);
        break;
      }
    }
  }
  if (possible.size() > 1) {
    std::string list = "[";
    for (size_t i = 0; i < possible.size(); ++i) {
      list += (i ? ", (" : "(") + repr(possible[i].first) + ", " + repr(possible[i].second) + ")";
    }
    section_error(*loader, section, "Multiple protocols given in section " + repr(section) + ": " + list + "]");
  }
  if (possible.empty()) section_error(*loader, section, "No loader given in section " + repr(section));
  py::Value spec = *local_conf->pop(possible[0].first);
  auto ctx = std::make_shared<Context>();
  ctx->object_type = type;
  ctx->factory.type = FactoryRef::Type::Explicit;
  ctx->factory.spec = spec.value;
  ctx->factory.key = possible[0].first;
  ctx->protocol = possible[0].first;
  ctx->protocol_source = "explicit_key";
  ctx->global_conf = global_conf;
  ctx->local_conf = local_conf;
  ctx->loader = {LoaderRef::Kind::Config, loader, ""};
  ctx->factory_loc = spec.loc;
  ctx->factory_section = section;
  return ctx;
}

ContextPtr Resolver::filter_app_context(const std::shared_ptr<ConfigLoader>& loader, const std::string& section,
                                        DictPtr global_conf, DictPtr local_conf, const py::Dict& additions) {
  auto next = local_conf->pop("next");
  if (!next) {
    section_error(*loader, section,
                  "The [" + section + "] section in " + loader->filename() + " is missing a 'next' setting");
  }
  auto ctx = std::make_shared<Context>();
  ctx->object_type = ObjectType::FilterApp;
  ctx->global_conf = global_conf;
  ctx->local_conf = local_conf;
  ctx->loader = {LoaderRef::Kind::Config, loader, ""};
  ctx->next_name = next->value;
  ctx->next_context =
      at(next->loc, [&] { return config_get_context(loader, ObjectType::App, next->value, global_conf); });
  if (local_conf->contains("use")) {
    ctx->filter_context = context_from_use(loader, ObjectType::Filter, local_conf, global_conf, additions, section);
  } else {
    ctx->filter_context = context_from_explicit(loader, ObjectType::Filter, local_conf, global_conf, section);
  }
  tag(ctx->filter_context, {loader->filename(), section, loader->parser().section(section)->line});
  return ctx;
}

ContextPtr Resolver::pipeline_context(const std::shared_ptr<ConfigLoader>& loader, const std::string& section,
                                      DictPtr global_conf, DictPtr local_conf) {
  auto pipeline = local_conf->pop("pipeline");
  if (!pipeline) {
    section_error(*loader, section,
                  "The [" + section + "] section in " + loader->filename() + " is missing a 'pipeline' setting");
  }
  if (!local_conf->empty()) {
    std::string msg = "The [" + section + "] pipeline section in " + loader->filename() +
                      " has extra (disallowed) settings: " + join(local_conf->keys(), ", ");
    // At the first extra key's line, or else the header's.
    const SourceLoc& first = local_conf->begin()->second.loc;
    if (first.line > 0) throw py::Error(first.file, first.line, "LookupError", msg);
    section_error(*loader, section, msg);
  }
  auto ctx = std::make_shared<Context>();
  ctx->object_type = ObjectType::Pipeline;
  ctx->global_conf = global_conf;
  ctx->local_conf = local_conf;
  ctx->loader = {LoaderRef::Kind::Config, loader, ""};
  ctx->pipeline_names = py::split(pipeline->value);
  if (ctx->pipeline_names.empty()) {
    throw py::Error(pipeline->loc.file, pipeline->loc.line, "IndexError", "list index out of range");
  }
  const auto& names = ctx->pipeline_names;
  ctx->app_context =
      at(pipeline->loc, [&] { return config_get_context(loader, ObjectType::App, names.back(), global_conf); });
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    ctx->filter_contexts.push_back(
        at(pipeline->loc, [&] { return config_get_context(loader, ObjectType::Filter, names[i], global_conf); }));
  }
  return ctx;
}

ContextPtr Resolver::egg_get_context(const std::string& spec, ObjectType type, const std::string& name,
                                     DictPtr global_conf) {
  if (absolute_name(name)) return loadcontext(type, name, "", "", global_conf);
  const EntryPoints* table = known_egg(spec, opts_.pasture_aliases);
  std::string protocol;
  if (table) {
    std::vector<std::string> possible;
    auto it = table->find(name);
    for (const auto& group : egg_protocols(type)) {
      for (const auto& prot : group) {
        if (it != table->end() && std::count(it->second.begin(), it->second.end(), prot)) {
          possible.push_back(prot);
          break;
        }
      }
    }
    if (possible.empty()) {
      lookup_error("", "Entry point " + repr(name) + " not found in egg " + repr(spec) +
                           " (protocols: " + join(flatten(egg_protocols(type)), ", ") + ")");
    }
    if (possible.size() > 1) lookup_error("", "Ambiguous entry points for " + repr(name) + " in egg " + repr(spec));
    protocol = possible[0];
  }
  auto ctx = std::make_shared<Context>();
  ctx->object_type = type;
  ctx->factory = {FactoryRef::Type::Egg, spec, name, table != nullptr, "", ""};
  ctx->protocol = protocol;
  ctx->protocol_source = table ? "entry_point" : "guessed_from_section";
  ctx->global_conf = global_conf && !global_conf->empty() ? global_conf : std::make_shared<py::Dict>();
  ctx->local_conf = std::make_shared<py::Dict>();
  ctx->loader = {LoaderRef::Kind::Egg, nullptr, spec};
  return ctx;
}

ContextPtr Resolver::func_get_context(const std::string& spec, ObjectType type, const std::string&,
                                      DictPtr global_conf) {
  auto ctx = std::make_shared<Context>();
  ctx->object_type = type;
  ctx->factory.type = FactoryRef::Type::Call;
  ctx->factory.spec = spec;
  ctx->protocol_source = "section_type";
  ctx->global_conf = global_conf && !global_conf->empty() ? global_conf : std::make_shared<py::Dict>();
  ctx->local_conf = std::make_shared<py::Dict>();
  ctx->loader = {LoaderRef::Kind::Func, nullptr, spec};
  return ctx;
}

}  // namespace pasture::conf::paste
