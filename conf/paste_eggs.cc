#include "conf/paste_eggs.h"

#include <cctype>

namespace pasture::conf::paste {

namespace {

using Groups = std::map<std::string, std::vector<std::string>>;  // group -> names

EntryPoints invert(const Groups& groups) {
  EntryPoints out;
  for (const auto& [group, names] : groups) {
    for (const auto& n : names) out[n].push_back(group);
  }
  return out;
}

const Groups kPaste = {
    {"paste.app_factory",
     {"cgi", "pkg_resources", "proxy", "static", "test", "test_slow", "transparent_proxy", "urlparser",
      "watch_threads"}},
    {"paste.composite_factory", {"cascade", "urlmap"}},
    {"paste.filter_app_factory",
     {"auth_basic", "auth_cookie", "auth_digest", "auth_form", "auth_tkt", "cgitb", "config", "cowbell",
      "error_catcher", "errordocument", "evalerror", "flup_session", "grantip", "gzip", "httpexceptions", "lint",
      "openid", "paste_session", "pony", "printdebug", "profile", "recursive", "registry", "translogger",
      "wdg_validate"}},
    {"paste.server_runner", {"http"}},
};

const Groups kPasteScript = {
    {"paste.app_factory", {"test"}},
    {"paste.server_runner",
     {"cgi", "cherrypy", "flup_ajp_fork", "flup_ajp_thread", "flup_fcgi_fork", "flup_fcgi_thread", "flup_scgi_fork",
      "flup_scgi_thread", "twisted", "wsgiutils"}},
};

const Groups kPasteDeploy = {{"paste.filter_app_factory", {"config", "prefix"}}};

const Groups kPasture = {
    {"paste.app_factory", {"balancer", "echo", "static", "status"}},
    {"paste.filter_app_factory", {"balancer"}},
    {"paste.server_runner", {"main"}},
};

const std::map<std::string, EntryPoints>& table(bool aliases) {
  static const std::map<std::string, EntryPoints> strict = {
      {"paste", invert(kPaste)},
      {"pastescript", invert(kPasteScript)},
      {"pastedeploy", invert(kPasteDeploy)},
      {"waitress", {{"main", {"paste.server_runner"}}}},
      {"gunicorn", {{"main", {"paste.server_runner"}}}},
      {"pasture", invert(kPasture)},
  };
  static const std::map<std::string, EntryPoints> lenient = [] {
    auto t = strict;
    t["paste"]["balancer"] = {"paste.filter_app_factory"};
    return t;
  }();
  return aliases ? lenient : strict;
}

}  // namespace

std::string norm_dist(const std::string& name) {
  auto sep = [](char c) { return c == '-' || c == '_' || c == '.'; };
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!sep(name[i])) {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
    } else if (i == 0 || !sep(name[i - 1])) {
      out += '_';
    }
  }
  return out;
}

const EntryPoints* known_egg(const std::string& dist, bool pasture_aliases) {
  const auto& t = table(pasture_aliases);
  auto it = t.find(norm_dist(dist));
  return it == t.end() ? nullptr : &it->second;
}

}  // namespace pasture::conf::paste
