// The app tree -> Handlers and Pools.
#include "conf/site_builder.h"

#include <unistd.h>

#include <map>
#include <set>

#include "conf/filters.h"
#include "conf/paste_eggs.h"
#include "conf/site_pool.h"
#include "conf/site_static.h"
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

bool is_balancer_filter(const ContextPtr& f) {
  return f->object_type == paste::ObjectType::Filter && (is_egg(f, "paste", "balancer") || is_egg(f, "pasture", "balancer"));
}

bool has_servers(const ContextPtr& pool_ctx) {
  return pool_ctx->local_conf->contains("servers") || pool_ctx->local_conf->contains("servers_from");
}

// A filter pasture runs itself (conf/filters.h): gzip, prefix, translogger.
bool is_native_filter(const ContextPtr& f) {
  return f->object_type == paste::ObjectType::Filter && f->factory.type == paste::FactoryRef::Type::Egg &&
         native_filter_kind(f->factory.dist, f->factory.entry_point).has_value();
}

size_t leading_native_filters(const ContextPtr& pipeline) {
  size_t n = 0;
  while (n < pipeline->filter_contexts.size() && is_native_filter(pipeline->filter_contexts[n])) n++;
  return n;
}

// What pasture serves itself; everything else is a Python app it hosts.
bool is_native(const ContextPtr& ctx) {
  std::string kind = ctx->kind();
  if (kind == "composite") return is_egg(ctx, "paste", "urlmap");
  if (kind == "pipeline") {
    size_t n = leading_native_filters(ctx);
    if (n == ctx->filter_contexts.size()) return is_native(ctx->app_context);
    const ContextPtr& f = ctx->filter_contexts[n];
    return is_balancer_filter(f) && has_servers(f);
  }
  if (kind == "filter_app" || kind == "filter_with") {
    if (is_native_filter(ctx->filter_context)) return is_native(ctx->next_context);
    return is_balancer_filter(ctx->filter_context) && has_servers(ctx->filter_context);
  }
  return is_egg(ctx, "paste", "proxy") || is_egg(ctx, "pasture", "balancer") || is_egg(ctx, "pasture", "echo") ||
         is_egg(ctx, "pasture", "status") || is_egg(ctx, "paste", "static") || is_egg(ctx, "pasture", "static");
}

std::string absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  return getcwd(cwd, sizeof cwd) ? std::string(cwd) + "/" + path : path;
}

// The loadapp() arguments that load exactly `ctx` again in a Python process.
PythonApp python_app_for(const ContextPtr& ctx, int skip_filters) {
  PythonApp a;
  a.skip_filters = skip_filters;
  a.factory = ctx->factory.type == paste::FactoryRef::Type::None ? ctx->kind() : ctx->factory.str();
  if (skip_filters > 0) {
    if (ctx->object_type == paste::ObjectType::Pipeline)
      a.pipeline.assign(ctx->pipeline_names.begin() + skip_filters, ctx->pipeline_names.end());
    else if (!ctx->next_name.empty())
      a.pipeline = {ctx->next_name};
    else
      a.pipeline = {object_name(section_of(ctx->next_context))};
  }
  if (!ctx->sections.empty()) {
    a.uri = "config:" + absolute(ctx->sections.front().file);
    a.section = section_of(ctx);
    a.name = object_name(a.section);
    a.loc = ctx->factory_loc.line ? ctx->factory_loc : section_loc(ctx);  // the use = line
  } else {
    a.uri = ctx->factory.str();  // a urlmap value such as egg:myapp or call:m:f
    a.loc = ctx->factory_loc;
  }
  return a;
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
  int status(const ContextPtr& ctx);
  int static_files(const ContextPtr& ctx, bool paste);
  int hosted(const ContextPtr& ctx, const ContextPtr& pool_ctx, int skip_filters);
  int filtered(const ContextPtr& ctx, const ContextPtr& filter, const ContextPtr& next);
  int native_filters(const ContextPtr& ctx);
  int wrap(int inner, const ContextPtr& ctx, const std::vector<ContextPtr>& filters);
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
    return hosted(ctx, nullptr, 0);
  }
  if (kind == "pipeline") {
    if (ctx->filter_contexts.empty()) return build(ctx->app_context);
    if (leading_native_filters(ctx) > 0) return native_filters(ctx);
    return filtered(ctx, ctx->filter_contexts.front(), ctx->app_context);
  }
  if (kind == "filter_app" || kind == "filter_with") {
    if (is_native_filter(ctx->filter_context)) return native_filters(ctx);
    return filtered(ctx, ctx->filter_context, ctx->next_context);
  }
  if (kind != "app") bad(section_loc(ctx), "[" + section_of(ctx) + "] is not an application");
  if (is_egg(ctx, "paste", "proxy")) return proxy(ctx);
  if (is_egg(ctx, "pasture", "balancer")) return balancer(ctx, ctx, false);
  if (is_egg(ctx, "pasture", "echo")) return echo(ctx);
  if (is_egg(ctx, "pasture", "status")) return status(ctx);
  if (is_egg(ctx, "paste", "static")) return static_files(ctx, true);
  if (is_egg(ctx, "pasture", "static")) return static_files(ctx, false);
  return hosted(ctx, nullptr, 0);
}

// A Python app: a Proxy handler over a pool the master fills with the app
// processes hosting it. `pool_ctx` (a balancer filter without servers, run by
// pasture in front) holds the pool settings; least_conn unless it says
// otherwise. `skip_filters`: leading filters of ctx that pasture runs itself.
int AppBuilder::hosted(const ContextPtr& ctx, const ContextPtr& pool_ctx, int skip_filters) {
  PythonApp app = python_app_for(ctx, skip_filters);
  Pool p;
  p.name = app.section.empty() ? app.uri : app.section;
  p.loc = app.loc;
  p.method = BalanceMethod::LeastConn;
  p.preserve_host = true;
  // Our own processes: an idempotent request on one that dies is always retried.
  p.retries = 2;
  p.retry_budget_percent = 100;
  // A status is the app's answer, not a sign of a dead process: no 502/503/504
  // marks an app process down or is retried (which would run the app twice),
  // unless the balancer filter's section says so.
  p.fail_on.clear();
  p.retry_on_status.clear();
  if (pool_ctx) {
    p.name = section_of(pool_ctx);
    p.loc = section_loc(pool_ctx);
    py::Dict local = *pool_ctx->local_conf;
    local.set("servers", "127.0.0.1:1");  // placeholder: fill_pool insists on servers
    ignored_keys(site_, pool_ctx, fill_pool(p, local, p.loc));
    p.servers.clear();
  }
  site_.pools.push_back(std::move(p));
  app.pool = static_cast<int>(site_.pools.size()) - 1;
  site_.python_apps.push_back(app);
  Handler h;
  h.kind = HandlerKind::Proxy;
  h.name = app.section.empty() ? app.uri : app.section;
  h.loc = app.loc;
  h.pool = app.pool;
  h.app = static_cast<int>(site_.python_apps.size()) - 1;
  return add(std::move(h));
}

// A filter in front of an app: only the balancer filter is understood; it
// replaces the app (the app is what the upstream servers run).
int AppBuilder::filtered(const ContextPtr& ctx, const ContextPtr& filter, const ContextPtr& next) {
  if (!is_balancer_filter(filter)) {
    // A Python filter: the whole pipeline runs in Python, as under paster serve.
    for (const ContextPtr& f : ctx->filter_contexts) {
      if (!is_balancer_filter(f)) continue;
      SourceLoc loc = f->factory_loc.line ? f->factory_loc : section_loc(f);
      if (loc.line == 0) loc = section_loc(ctx);
      bad(loc, "the balancer filter [" + section_of(f) + "] must come first in [" + section_of(ctx) +
                   "] (pasture runs it in front of the Python filters)");
    }
    return hosted(ctx, nullptr, 0);
  }
  if (!has_servers(filter)) {
    // No servers: balance over app processes hosting the rest, if it is Python.
    bool rest_python = ctx->object_type == paste::ObjectType::Pipeline
                           ? ctx->filter_contexts.size() > 1 || !is_native(ctx->app_context)
                           : !is_native(next);
    if (rest_python) return hosted(ctx, filter, 1);
  }
  int h = balancer(ctx, filter, true);
  std::string rest = ctx->object_type == paste::ObjectType::Pipeline ? "" : section_of(next);
  for (size_t i = 1; i < ctx->pipeline_names.size(); ++i) rest += (rest.empty() ? "" : " ") + ctx->pipeline_names[i];
  add_notice(site_, section_loc(ctx),
             "[" + section_of(ctx) + "] requests go to the servers of [" + section_of(filter) + "]; the rest (" +
                 rest + ") is what those servers run");
  return h;
}

// Filters pasture runs itself in front of what follows them: the leading
// native filters of a pipeline (or the filter of a filter-with or
// [filter-app:]) go on a handler for the rest. The rest is native (any
// handler: urlmap, pool, proxy, echo, status...), a balancer filter and
// what follows it, or Python: then paste.deploy loads the rest without the
// native filters (PythonApp::skip_filters), except behind filter-with,
// whose app can only be loaded with its filter (all of it stays Python).
int AppBuilder::native_filters(const ContextPtr& ctx) {
  if (ctx->object_type != paste::ObjectType::Pipeline) {
    const ContextPtr& next = ctx->next_context;
    // filter-with: `next` is the same section as ctx (built, not looked up).
    if (is_native(next)) return wrap(ctx->next_name.empty() ? dispatch(next) : build(next), ctx, {ctx->filter_context});
    if (ctx->next_name.empty()) return hosted(ctx, nullptr, 0);  // filter-with in front of Python
    return wrap(hosted(ctx, nullptr, 1), ctx, {ctx->filter_context});
  }
  size_t n = leading_native_filters(ctx);
  std::vector<ContextPtr> mine(ctx->filter_contexts.begin(), ctx->filter_contexts.begin() + (long)n);
  if (n == ctx->filter_contexts.size()) {
    if (is_native(ctx->app_context)) return wrap(build(ctx->app_context), ctx, mine);
    return wrap(hosted(ctx, nullptr, (int)n), ctx, mine);
  }
  if (is_balancer_filter(ctx->filter_contexts[n])) {
    // The same pipeline without its native filters, for the balancer filter's rules.
    auto rest = std::make_shared<paste::Context>(*ctx);
    rest->filter_contexts.erase(rest->filter_contexts.begin(), rest->filter_contexts.begin() + (long)n);
    rest->pipeline_names.erase(rest->pipeline_names.begin(), rest->pipeline_names.begin() + (long)n);
    return wrap(filtered(rest, rest->filter_contexts.front(), rest->app_context), ctx, mine);
  }
  return wrap(hosted(ctx, nullptr, (int)n), ctx, mine);
}

// A handler like `inner` (shared with whoever else routes to it) with
// `filters` in front of its own.
int AppBuilder::wrap(int inner, const ContextPtr& ctx, const std::vector<ContextPtr>& filters) {
  Handler h = site_.handlers[inner];
  std::vector<Filter> chain;
  for (const ContextPtr& fc : filters) {
    Filter f;
    f.kind = *native_filter_kind(fc->factory.dist, fc->factory.entry_point);
    f.name = section_of(fc);
    f.loc = fc->factory_loc.line ? fc->factory_loc : section_loc(fc);
    for (const auto& [k, v] : *fc->local_conf) {
      if (!apply_filter_key(f, k, v) || k == "min_length")
        bad(v.loc.line ? v.loc : f.loc, "[" + f.name + "] " + filter_egg(f.kind) + " takes no argument '" + k +
                                            "' (Paste's factory would raise TypeError)");
    }
    finish_filter(f);
    chain.push_back(std::move(f));
  }
  chain.insert(chain.end(), h.filters.begin(), h.filters.end());
  if (chain.size() > 16) bad(section_loc(ctx), "[" + section_of(ctx) + "]: more than 16 filters in front of one app");
  h.filters = std::move(chain);
  h.loc = section_loc(ctx);
  return add(std::move(h));
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
  Pool p = proxy_pool(py::strip(address->value), address->loc);
  p.name = section_of(ctx);
  p.loc = section_loc(ctx);
  std::vector<std::string> ignored;
  for (const auto& [k, v] : *ctx->local_conf) {
    if (k != "address" && !fill_tls_key(p, k, v)) ignored.push_back(k);
  }
  check_tls_keys(p);
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

int AppBuilder::status(const ContextPtr& ctx) {
  Handler h;
  h.kind = HandlerKind::Status;
  h.name = section_of(ctx);
  h.loc = section_loc(ctx);
  const py::Value* allow = ctx->local_conf->find("allow");
  h.allow = allow ? parse_address_ranges(*allow, "allow") : default_status_allow();
  if (const py::Value* hosts = ctx->local_conf->find("hosts")) h.status_hosts = parse_status_hosts(*hosts);
  std::vector<std::string> ignored;
  for (const auto& [k, v] : *ctx->local_conf) {
    if (k != "allow" && k != "hosts") ignored.push_back(k);
  }
  ignored_keys(site_, ctx, ignored);
  return add(std::move(h));
}

int AppBuilder::static_files(const ContextPtr& ctx, bool paste) {
  Handler h;
  h.kind = HandlerKind::Static;
  h.name = section_of(ctx);
  h.loc = section_loc(ctx);
  py::Value fallback;
  ignored_keys(site_, ctx, fill_static(h.files, paste, *ctx->local_conf, h.name, h.loc, &fallback));
  int idx = add(std::move(h));
  // After add(): the fallback may name an app built later (or this one: refused).
  if (!fallback.value.empty()) {
    int fb = build(resolve(ctx, fallback));
    if (fb == idx) bad(fallback.loc, "fallback: [" + section_of(ctx) + "] cannot fall back to itself");
    if (site_.handlers[fb].kind == HandlerKind::UrlMap)
      bad(fallback.loc, "fallback: '" + fallback.value + "' is a urlmap; name one of its apps");
    site_.handlers[idx].files.fallback = fb;
  }
  return idx;
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
