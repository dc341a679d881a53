// load_site: `paster serve CONFIG[#name] [var=value ...]` -> Site.
#include "conf/load.h"

#include <regex>

#include "conf/paste.h"
#include "conf/site_builder.h"
#include "conf/tls_check.h"
#include "conf/yaml_loader.h"

namespace pasture::conf {

namespace {

// paster serve prepends "config:" unless the argument already has a scheme
// (two or more letters, so a drive letter "C:" is not one).
std::string config_uri(const std::string& arg) {
  static const std::regex scheme("^[a-zA-Z][a-zA-Z]+:");
  return std::regex_search(arg, scheme) ? arg : "config:" + arg;
}

void validate(Site& site) {
  if (site.server.listen.empty()) throw ConfigError(site.config_file, 0, "no address to listen on");
  if (site.root < 0 || site.handlers.empty()) throw ConfigError(site.config_file, 0, "no application to serve");
  for (Pool& p : site.pools)
    if (p.any_tls()) check_upstream_tls(p.tls, &site.notices);
}

}  // namespace

Site load_site(const LoadOptions& opts) {
  std::string uri = config_uri(opts.config), fragment;
  if (size_t hash = uri.find('#'); hash != std::string::npos) {
    fragment = uri.substr(hash + 1);
    uri = uri.substr(0, hash);
  }
  if (!py::starts_with(uri, "config:")) {
    throw ConfigError("", 0, "not supported yet: " + opts.config + " (only config files can be served)");
  }
  Site site;
  site.app_name = !opts.app_name.empty() ? opts.app_name : !fragment.empty() ? fragment : "main";
  site.server_name = !opts.server_name.empty() ? opts.server_name : !fragment.empty() ? fragment : "main";
  std::string relative_to = opts.relative_to.empty() ? py::abspath(".") : opts.relative_to;
  std::string path = uri.substr(7);
  site.config_file = py::abspath(py::isabs(path) ? path : relative_to + "/" + path);
  if (is_yaml_path(site.config_file)) {
    site = load_yaml_site(site.config_file, !opts.app_name.empty() ? opts.app_name : fragment, opts.server_name,
                          opts.vars);
    validate(site);
    return site;
  }

  auto vars = std::make_shared<py::Dict>();
  for (const auto& [k, v] : opts.vars) vars->set(k, v);
  paste::Resolver resolver(paste::Resolver::Options{true});
  // paster serve loads the server first, then the app; each gets its own
  // copy of the command-line vars as global_conf.
  auto server = resolver.loadcontext(paste::ObjectType::Server, uri, site.server_name, relative_to,
                                     std::make_shared<py::Dict>(*vars));
  auto app = resolver.loadcontext(paste::ObjectType::App, uri, site.app_name, relative_to,
                                  std::make_shared<py::Dict>(*vars));
  build_server(site, server);
  build_app(site, resolver, app);
  validate(site);
  return site;
}

}  // namespace pasture::conf
