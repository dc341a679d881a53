#include "conf/inspect.h"

#include <algorithm>
#include <set>

#include "conf/ini.h"
#include "conf/paste.h"
#include "conf/paste_eggs.h"
#include "conf/urlmap.h"

namespace pasture::conf {

using json::Value;
using paste::ContextPtr;
using paste::ObjectType;

namespace {

constexpr int kMaxNodeDepth = 60;  // dump_pastedeploy.node()'s own recursion guard

Value err_of(const std::exception& e) {
  Value v = Value::object();
  if (auto* p = dynamic_cast<const py::Error*>(&e)) {
    v["error"] = p->type() == "RecursionError" ? std::string("RecursionError") : p->py_str();
  } else {
    v["error"] = std::string("Exception: ") + e.what();
  }
  return v;
}

Value dict_json(const py::Dict& d) {
  Value v = Value::object();
  for (const auto& [k, val] : d) v[k] = val.value;
  return v;
}

Value factory_json(const paste::FactoryRef& f) {
  Value v = Value::object();
  using T = paste::FactoryRef::Type;
  if (f.type == T::Egg) {
    v["type"] = "egg";
    v["dist"] = f.dist;
    v["entry_point"] = f.entry_point;
    v["dist_known"] = f.dist_known;
  } else if (f.type == T::Call) {
    v["type"] = "call";
    v["spec"] = f.spec;
  } else if (f.type == T::Explicit) {
    v["type"] = "explicit";
    v["spec"] = f.spec;
    v["key"] = f.key;
  } else {
    v["type"] = "unknown";
  }
  return v;
}

// dump_pastedeploy._urlmap_semantics: "paste", "assumed" or "" (none).
std::string urlmap_semantics(const paste::FactoryRef& f) {
  if (f.type == paste::FactoryRef::Type::Egg) {
    return paste::norm_dist(f.dist) == "paste" && f.entry_point == "urlmap" ? "paste" : "";
  }
  std::string func = f.spec.substr(f.spec.rfind(':') == std::string::npos ? 0 : f.spec.rfind(':') + 1);
  std::transform(func.begin(), func.end(), func.begin(), [](unsigned char c) { return std::tolower(c); });
  bool root = func.size() >= 16 && func.compare(func.size() - 16, 16, "root_app_factory") == 0;
  return func.find("urlmap") != std::string::npos || root ? "assumed" : "";
}

class Dumper {
 public:
  Value node(const ContextPtr& ctx, int depth);
  Value load(ObjectType type, const std::string& uri, const std::string& name, const py::Dict& vars);
  paste::Resolver& resolver() { return resolver_; }

 private:
  Value node_children(const ContextPtr& ctx, int depth, Value out);
  Value urlmap(const ContextPtr& ctx, int depth);
  Value urlmap_app(const ContextPtr& ctx, const std::string& name, int depth, Value& out);

  paste::Resolver resolver_;
};

Value Dumper::load(ObjectType type, const std::string& uri, const std::string& name, const py::Dict& vars) {
  try {
    return node(resolver_.loadcontext(type, uri, name, "", std::make_shared<py::Dict>(vars)), 0);
  } catch (const std::exception& e) {
    return err_of(e);
  }
}

Value Dumper::node(const ContextPtr& ctx, int depth) {
  if (depth > kMaxNodeDepth) throw py::Error("", 0, "RecursionError", "");
  Value out = Value::object();
  std::string kind = ctx->kind();
  out["kind"] = kind;
  Value sections = Value::array();
  for (const auto& s : ctx->sections) {
    Value ref = Value::object();
    ref["file"] = s.file;
    ref["section"] = s.section;
    sections.push(ref);
  }
  out["sections"] = sections;
  if (kind == "pipeline" || kind == "filter_app" || kind == "filter_with") return node_children(ctx, depth, out);
  out["factory"] = factory_json(ctx->factory);
  std::string protocol = ctx->protocol, source = ctx->protocol_source;
  if (source == "guessed_from_section") {
    static const std::set<std::string> valid[] = {
        {"paste.app_factory", "paste.composite_factory", "paste.composit_factory"},
        {"paste.filter_factory", "paste.filter_app_factory"},
        {"paste.server_factory", "paste.server_runner"}};
    int t = ctx->object_type == ObjectType::App ? 0 : ctx->object_type == ObjectType::Filter ? 1 : 2;
    if (!valid[t].count(protocol)) protocol.clear();
  }
  out["protocol"] = protocol.empty() ? Value() : Value(protocol);
  out["protocol_source"] = protocol.empty() || source.empty() ? Value() : Value(source);
  out["local_conf"] = dict_json(*ctx->local_conf);
  out["global_conf"] = dict_json(*ctx->global_conf);
  if (kind == "composite" && !urlmap_semantics(ctx->factory).empty()) out["urlmap"] = urlmap(ctx, depth);
  return out;
}

Value Dumper::node_children(const ContextPtr& ctx, int depth, Value out) {
  if (ctx->object_type == ObjectType::Pipeline) {
    out["names"] = Value::array();
    for (const auto& n : ctx->pipeline_names) out["names"].push(n);
    Value items = Value::array();
    for (const auto& f : ctx->filter_contexts) items.push(node(f, depth + 1));
    items.push(node(ctx->app_context, depth + 1));
    out["items"] = items;
    return out;
  }
  if (ctx->object_type == ObjectType::FilterApp) {
    out["next_name"] = ctx->next_name;
  } else {
    out["filter_name"] = ctx->filter_context->requested_name;
  }
  out["filter"] = node(ctx->filter_context, depth + 1);
  out["next"] = node(ctx->next_context, depth + 1);
  return out;
}

// Loads `name` as an APP through the composite's loader, like
// urlmap_factory's loader.get_app(); records the first error in out["error"].
Value Dumper::urlmap_app(const ContextPtr& ctx, const std::string& name, int depth, Value& out) {
  try {
    return node(resolver_.get_context(ctx->loader, ObjectType::App, name, ctx->global_conf), depth + 1);
  } catch (const std::exception& e) {
    Value v = err_of(e);
    if (out["error"].is_null()) out["error"] = v["error"];
    return v;
  }
}

// dump_pastedeploy._urlmap: emulates paste.urlmap.urlmap_factory.
Value Dumper::urlmap(const ContextPtr& ctx, int depth) {
  Value out = Value::object();
  out["urlmap_semantics"] = urlmap_semantics(ctx->factory);
  out["not_found_app"] = Value();
  out["error"] = Value();
  py::Dict local = *ctx->local_conf;
  std::optional<py::Value> nf = local.pop("not_found_app");
  if (!nf) {
    if (const py::Value* g = ctx->global_conf->find("not_found_app")) nf = *g;
  }
  if (nf && !nf->value.empty()) {
    Value v = Value::object();
    v["name"] = nf->value;
    v["app"] = urlmap_app(ctx, nf->value, depth, out);
    out["not_found_app"] = v;
  }
  std::vector<Value> good, bad;
  std::vector<urlmap::Normalized> keys;
  for (const auto& [key, app_name] : local) {
    Value ent = Value::object();
    ent["key"] = key;
    ent["app_name"] = app_name.value;
    try {
      std::string expr = urlmap::parse_path_expression(key);
      ent["path_expression"] = expr;
      ent["app"] = urlmap_app(ctx, app_name.value, depth, out);
      urlmap::Normalized n = urlmap::normalize_url(expr);
      ent["domain"] = n.domain ? Value(*n.domain) : Value();
      ent["path"] = n.path;
      keys.push_back(n);
      good.push_back(ent);
    } catch (const py::Error& e) {
      ent["error"] = e.py_str();
      if (out["error"].is_null()) out["error"] = e.py_str();
      bad.push_back(ent);
    }
  }
  Value entries = Value::array();
  for (size_t i : urlmap::dispatch_order(keys)) entries.push(good[i]);
  for (auto& b : bad) entries.push(b);
  out["entries"] = entries;
  return out;
}

// dump_pastedeploy._section_info: (prefix if known, else ""; object name).
std::pair<std::string, std::string> section_info(const std::string& name) {
  static const std::set<std::string> known = {"app",        "application", "composite", "composit",
                                              "pipeline",   "filter-app",  "filter",    "server"};
  size_t colon = name.find(':');
  if (colon == std::string::npos) return {"", ""};
  std::string prefix = name.substr(0, colon);
  return {known.count(prefix) ? prefix : "", py::strip(name.substr(colon + 1))};
}

}  // namespace

json::Value inspect(const std::string& config_path_in,
                    const std::vector<std::pair<std::string, std::string>>& var_list) {
  std::string config_path = py::abspath(config_path_in);
  py::Dict vars;
  for (const auto& [k, v] : var_list) vars.set(k, v);
  std::string uri = "config:" + config_path;
  Value out = Value::object();
  out["format"] = "pastedeploy-dump/1";
  out["file"] = config_path;
  out["vars"] = dict_json(vars);
  out["parse_error"] = Value();
  out["defaults_raw"] = Value::object();
  out["defaults"] = Value::object();
  out["sections"] = Value::array();
  Value& objects = out["objects"];
  for (const char* t : {"application", "filter", "server"}) objects[t] = Value::object();
  out["serve"] = Value::object();
  std::unique_ptr<paste::ConfigLoader> loader;
  try {
    loader = std::make_unique<paste::ConfigLoader>(config_path);
  } catch (const std::exception& e) {
    Value err = err_of(e);
    out["parse_error"] = err["error"];
    out["serve"]["application"] = err;
    out["serve"]["server"] = err;
    return out;
  }
  ini::Parser& parser = loader->parser();
  if (!vars.empty()) parser.update_defaults(vars, false);
  for (const auto& d : parser.defaults_raw()) {
    out["defaults_raw"][d.key] = d.raw;
    try {
      std::string v = parser.get("DEFAULT", d.key);
      out["defaults"][d.key] = v.empty() ? d.raw : v;
    } catch (const std::exception& e) {
      out["defaults"][d.key] = err_of(e);
    }
  }
  std::vector<std::pair<std::string, std::string>> names;  // (type, object name), file order
  for (const auto& s : parser.sections()) {
    auto [prefix, oname] = section_info(s.name);
    Value sec = Value::object();
    sec["name"] = s.name;
    sec["prefix"] = prefix.empty() ? Value() : Value(prefix);
    sec["object_name"] = prefix.empty() ? Value() : Value(oname);
    sec["options"] = Value::array();
    for (const auto& o : s.options) {
      Value kv = Value::array();
      kv.push(o.key);
      kv.push(o.raw);
      sec["options"].push(kv);
    }
    out["sections"].push(sec);
    if (!prefix.empty()) {
      names.emplace_back(prefix == "filter" ? "filter" : prefix == "server" ? "server" : "application", oname);
    }
  }
  Dumper dumper;
  for (const char* t : {"application", "filter", "server"}) {
    ObjectType type = t[0] == 'a' ? ObjectType::App : t[0] == 'f' ? ObjectType::Filter : ObjectType::Server;
    for (const auto& [tname, oname] : names) {
      if (tname != t || objects[t].find(oname)) continue;
      objects[t][oname] = dumper.load(type, uri, oname, vars);
    }
  }
  out["serve"]["application"] = dumper.load(ObjectType::App, uri, "", vars);
  out["serve"]["server"] = dumper.load(ObjectType::Server, uri, "", vars);
  std::set<std::string> reqs(dumper.resolver().requires_seen().begin(), dumper.resolver().requires_seen().end());
  if (!reqs.empty()) {
    out["require_specs"] = Value::array();
    for (const auto& r : reqs) out["require_specs"].push(r);
  }
  return out;
}

std::string inspect_json(const std::string& config_path,
                         const std::vector<std::pair<std::string, std::string>>& vars) {
  return json::dump(inspect(config_path, vars));
}

namespace {

// Masks the values of secret-named keys, collecting what they were.
void mask_secret_keys(Value& v, std::set<std::string>& found) {
  if (v.type() == Value::Type::Array) {
    for (Value& item : v.items()) mask_secret_keys(item, found);
  } else if (v.type() == Value::Type::Object) {
    for (auto& [key, m] : v.members()) {
      if (m.type() == Value::Type::String && !m.as_string().empty() && ini::is_secret_key(key)) {
        found.insert(m.as_string());
        m.set_string("***");
      } else {
        mask_secret_keys(m, found);
      }
    }
  }
}

void mask_secret_values(Value& v, const std::set<std::string>& secrets) {
  constexpr size_t kMinPart = 6;  // shorter secrets are masked only as whole values
  if (v.type() == Value::Type::String) {
    std::string s = v.as_string();
    for (const std::string& secret : secrets) {
      if (s == secret) {
        s = "***";
        break;
      }
      if (secret.size() < kMinPart) continue;
      for (size_t at = s.find(secret); at != std::string::npos; at = s.find(secret, at + 3)) s.replace(at, secret.size(), "***");
    }
    v.set_string(s);
  } else if (v.type() == Value::Type::Array) {
    for (Value& item : v.items()) mask_secret_values(item, secrets);
  } else if (v.type() == Value::Type::Object) {
    for (auto& [key, m] : v.members()) mask_secret_values(m, secrets);
  }
}

}  // namespace

void hide_secrets(Value& dump) {
  std::set<std::string> found;
  mask_secret_keys(dump, found);
  found.erase("***");
  if (!found.empty()) mask_secret_values(dump, found);
}

}  // namespace pasture::conf
