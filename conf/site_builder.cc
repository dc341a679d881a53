// The app tree -> Handlers and Pools.
#include "conf/site_builder.h"

#include <map>
#include <set>

#include "conf/paste_eggs.h"
#include "conf/site_pool.h"
#include "conf/urlmap.h"

namespace pasture::conf {

namespace site_detail {

std::string section_of(const paste::ContextPtr& ctx) {
  return ctx->sections.empty() ? "" : ctx->sections.front().section;
}

SourceLoc section_loc(const paste::ContextPtr& ctx) {
  if (ctx->sections.empty()) return ctx->factory_loc;
  return {ctx->sections.front().file, ctx->sections.front().line};
}

std::string object_name(const std::string& section) {
  size_t colon = section.find(':');
  return colon == std::string::npos ? section : py::strip(section.substr(colon + 1));
}

bool is_egg(const paste::ContextPtr& ctx, const std::string& dist, const std::string& entry_point) {
  return ctx->factory.type == paste::FactoryRef::Type::Egg && paste::norm_dist(ctx->factory.dist) == dist &&
         ctx->factory.entry_point == entry_point;
}

void add_notice(Site& site, const SourceLoc& loc, const std::string& text) {
  site.notices.push_back(loc.file.empty() ? text : loc.str() + ": " + text);
}

void ignored_keys(Site& site, const paste::ContextPtr& ctx, const std::vector<std::string>& keys) {
  for (const auto& k : keys) {
    const py::Value* v = ctx->local_conf->find(k);
    add_notice(site, v ? v->loc : section_loc(ctx),
               "[" + section_of(ctx) + "] key '" + k + "' does not apply to pasture; ignored");
  }
}

}  // namespace site_detail

using namespace site_detail;
using paste::ContextPtr;

namespace {

[[noreturn]] void bad(const SourceLoc& loc, const std::string& msg) { throw ConfigError(loc.file, loc.line, msg); }

[[noreturn]] void unsupported(const ContextPtr& ctx, const std::string& what) {
  std::string where = "[" + (ctx->factory_section.empty() ? section_of(ctx) : ctx->factory_section) + "]";
  SourceLoc loc = ctx->factory_loc.line ? ctx->factory_loc : section_loc(ctx);
  const auto& f = ctx->factory;
  if (f.type == paste::FactoryRef::Type::Egg) {
    bad(loc, "not supported yet: egg:" + f.dist + "#" + f.entry_point + " in " + where);
  }
  bad(loc, "Python " + what + " " + f.str() + " in " + where + " not supported yet");
}

bool is_balancer_filter(const ContextPtr& f) {
  return f->object_type == paste::ObjectType::Filter && (is_egg(f, "paste", "balancer") || is_egg(f, "pasture", "balancer"));
}

class AppBuilder {
 public:
  AppBuilder(Site& site, paste::Resolver& resolver) : site_(site), resolver_(resolver) {}
  int build(const ContextPtr& ctx);

 private:
  int dispatch(const ContextPtr& ctx);
  int add(Handler h) {
    site_.handlers.push_back(std::move(h));
    return static_cast<int>(site_.handlers.size()) - 1;
  }
  int urlmap(const ContextPtr& ctx);
  int proxy(const ContextPtr& ctx);
  int balancer(const ContextPtr& ctx, const ContextPtr& pool_ctx, bool as_filter);
  int echo(const ContextPtr& ctx);
  int filtered(const ContextPtr& ctx, const ContextPtr& filter, const ContextPtr& next);
  ContextPtr resolve(const ContextPtr& composite, const py::Value& name);

  Site& site_;
  paste::Resolver& resolver_;
  std::map<std::string, int> done_;   // "file\nsection" -> handler
  std::set<std::string> building_;    // cycle detection
};

int AppBuilder::build(const ContextPtr& ctx) {
  std::string key = ctx->sections.empty() ? "" : ctx->sections.front().file + "\n" + section_of(ctx);
  if (!key.empty()) {
    if (auto it = done_.find(key); it != done_.end()) return it->second;
    if (!building_.insert(key).second) bad(section_loc(ctx), "[" + section_of(ctx) + "] refers to itself");
  }
  int idx = dispatch(ctx);
  if (!key.empty()) {
    building_.erase(key);
    done_[key] = idx;
  }
  return idx;
}

int AppBuilder::dispatch(const ContextPtr& ctx) {
  std::string kind = ctx->kind();
  if (kind == "composite") {
    if (is_egg(ctx, "paste", "urlmap")) return urlmap(ctx);
    unsupported(ctx, "composite");
  }
  if (kind == "pipeline") {
    if (ctx->filter_contexts.empty()) return build(ctx->app_context);
    return filtered(ctx, ctx->filter_contexts.front(), ctx->app_context);
  }
  if (kind == "filter_app" || kind == "filter_with") return filtered(ctx, ctx->filter_context, ctx->next_context);
  if (kind != "app") bad(section_loc(ctx), "[" + section_of(ctx) + "] is not an application");
  if (is_egg(ctx, "paste", "proxy")) return proxy(ctx);
  if (is_egg(ctx, "pasture", "balancer")) return balancer(ctx, ctx, false);
  if (is_egg(ctx, "pasture", "echo")) return echo(ctx);
  unsupported(ctx, "app");
}

// A filter in front of an app: only the balancer filter is understood; it
// replaces the app (the app is what the upstream servers run).
int AppBuilder::filtered(const ContextPtr& ctx, const ContextPtr& filter, const ContextPtr& next) {
  if (!is_balancer_filter(filter)) {
    std::string where = section_of(filter).empty() ? filter->factory.str() : "[" + section_of(filter) + "]";
    SourceLoc loc = filter->factory_loc.line ? filter->factory_loc : section_loc(filter);
    if (loc.line == 0) loc = section_loc(ctx);
    bad(loc, "not supported yet: filter " + where + " (" + filter->factory.str() + ") in [" + section_of(ctx) +
                 "]; only the balancer filter (egg:pasture#balancer) is");
  }
  int h = balancer(ctx, filter, true);
  std::string rest = ctx->object_type == paste::ObjectType::Pipeline ? "" : section_of(next);
  for (size_t i = 1; i < ctx->pipeline_names.size(); ++i) rest += (rest.empty() ? "" : " ") + ctx->pipeline_names[i];
  add_notice(site_, section_loc(ctx),
             "[" + section_of(ctx) + "] requests go to the servers of [" + section_of(filter) + "]; the rest (" +
                 rest + ") is what those servers run");
  return h;
}

ContextPtr AppBuilder::resolve(const ContextPtr& composite, const py::Value& name) {
  try {
    return resolver_.get_context(composite->loader, paste::ObjectType::App, name.value, composite->global_conf);
  } catch (const py::Error& e) {
    if (e.line() > 0) throw;
    throw py::Error(name.loc.file, name.loc.line, e.type(), e.text());
  }
}

int AppBuilder::urlmap(const ContextPtr& ctx) {
  Handler h;
  h.kind = HandlerKind::UrlMap;
  h.name = section_of(ctx);
  h.loc = section_loc(ctx);
  py::Dict local = *ctx->local_conf;
  std::optional<py::Value> nf = local.pop("not_found_app");
  if (!nf) {
    if (const py::Value* g = ctx->global_conf->find("not_found_app")) nf = *g;
  }
  if (nf && !nf->value.empty()) h.not_found = build(resolve(ctx, *nf));
  std::vector<urlmap::Normalized> keys;
  std::vector<UrlMapEntry> entries;
  for (const auto& [key, v] : local) {
    urlmap::Normalized n;
    try {
      n = urlmap::normalize_url(urlmap::parse_path_expression(key));
    } catch (const py::Error& e) {
      bad(v.loc, "urlmap key '" + key + "' in [" + h.name + "]: " + e.py_str());
    }
    entries.push_back({n.domain.value_or(""), n.path, build(resolve(ctx, v)), v.loc});
    keys.push_back(n);
  }
  for (size_t i : urlmap::dispatch_order(keys)) h.entries.push_back(entries[i]);
  return add(std::move(h));
}

int AppBuilder::proxy(const ContextPtr& ctx) {
  const py::Value* address = ctx->local_conf->find("address");
  if (!address) bad(section_loc(ctx), "[" + section_of(ctx) + "] egg:Paste#proxy needs 'address ='");
  std::string a = py::strip(address->value);
  if (py::starts_with(a, "https://")) bad(address->loc, "not supported yet: https upstream address " + a);
  if (!py::starts_with(a, "http://")) bad(address->loc, "address must be an http:// URL, got '" + a + "'");
  std::string rest = a.substr(7);
  size_t slash = rest.find_first_of("/?");
  Pool p;
  p.name = section_of(ctx);
  p.loc = section_loc(ctx);
  p.preserve_host = false;
  p.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  Listener hp = parse_host_port(rest.substr(0, slash), 80, address->loc);
  p.servers.push_back({hp.host, hp.port, 1, 0, false, false, address->loc});
  std::vector<std::string> ignored;
  for (const auto& [k, v] : *ctx->local_conf) {
    if (k != "address") ignored.push_back(k);
  }
  ignored_keys(site_, ctx, ignored);
  site_.pools.push_back(std::move(p));
  Handler h;
  h.kind = HandlerKind::Proxy;
  h.name = section_of(ctx);
  h.loc = section_loc(ctx);
  h.pool = static_cast<int>(site_.pools.size()) - 1;
  return add(std::move(h));
}

// `owner` is the app-ish section; `pool_ctx` holds the balancer settings
// (the same context, or the balancer filter of a pipeline).
int AppBuilder::balancer(const ContextPtr& owner, const ContextPtr& pool_ctx, bool as_filter) {
  Pool p;
  p.name = section_of(pool_ctx);
  p.loc = section_loc(pool_ctx);
  p.preserve_host = true;
  ignored_keys(site_, pool_ctx, fill_pool(p, *pool_ctx->local_conf, p.loc));
  site_.pools.push_back(std::move(p));
  Handler h;
  h.kind = HandlerKind::Proxy;
  h.name = as_filter ? section_of(owner) : section_of(pool_ctx);
  h.loc = section_loc(owner);
  h.pool = static_cast<int>(site_.pools.size()) - 1;
  return add(std::move(h));
}

int AppBuilder::echo(const ContextPtr& ctx) {
  Handler h;
  h.kind = HandlerKind::Echo;
  h.name = section_of(ctx);
  h.loc = section_loc(ctx);
  const py::Value* name = ctx->local_conf->find("name");
  h.echo_name = name ? name->value : object_name(section_of(ctx));
  std::vector<std::string> ignored;
  for (const auto& [k, v] : *ctx->local_conf) {
    if (k != "name") ignored.push_back(k);
  }
  ignored_keys(site_, ctx, ignored);
  return add(std::move(h));
}

}  // namespace

void build_app(Site& site, paste::Resolver& resolver, const ContextPtr& app) {
  AppBuilder b(site, resolver);
  site.root = b.build(app);
}

}  // namespace pasture::conf
