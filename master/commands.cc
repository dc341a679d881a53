#include "master/commands.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>

#include "conf/describe.h"
#include "conf/inspect.h"
#include "conf/load.h"
#include "conf/yaml_loader.h"
#include "conf/yaml_writer.h"

namespace pasture::master {

namespace {

using conf::json::Value;

std::string str(const Value* v) { return v && v->type() == Value::Type::String ? v->as_string() : ""; }

std::string factory_text(const Value* f) {
  if (!f) return "";
  std::string type = str(f->find("type"));
  if (type == "egg") {
    const Value* known = f->find("dist_known");
    return "egg:" + str(f->find("dist")) + "#" + str(f->find("entry_point")) +
           (known && !known->as_bool() ? " (not a known egg)" : "");
  }
  if (type == "call") return "call:" + str(f->find("spec"));
  if (type == "explicit") return str(f->find("key")) + " = " + str(f->find("spec"));
  return "(no factory)";
}

std::string sections_text(const Value* sections) {
  std::string out;
  if (!sections) return out;
  for (const auto& s : sections->items()) out += (out.empty() ? "[" : " -> [") + str(s.find("section")) + "]";
  return out;
}

// One value per line; multi-line INI values folded onto one line.
std::string fold(const std::string& v) {
  std::string out;
  size_t start = 0;
  while (start <= v.size()) {
    size_t nl = v.find('\n', start);
    std::string line = conf::py::strip(v.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (!line.empty()) out += (out.empty() ? "" : " ") + line;
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

// "composite egg:Paste#urlmap", "pipeline: a b app", ...
std::string node_text(const Value& n) {
  std::string kind = str(n.find("kind"));
  if (kind == "pipeline") {
    std::string names;
    if (const Value* v = n.find("names")) {
      for (const auto& x : v->items()) names += " " + x.as_string();
    }
    return "pipeline:" + names;
  }
  if (kind == "filter_app") {
    const Value* f = n.find("filter");
    return "filter-app " + (f ? factory_text(f->find("factory")) : "") + ", then app " + str(n.find("next_name"));
  }
  if (kind == "filter_with") return "filter-with " + str(n.find("filter_name")) + " around the app";
  std::string f = factory_text(n.find("factory"));
  return kind == "composite" ? "composite " + f : f;
}

void objects_text(std::string& out, const char* title, const Value* objs) {
  out += title;
  if (!objs || objs->members().empty()) {
    out += " none\n";
    return;
  }
  out += "\n";
  size_t name_w = 0, text_w = 0;
  for (const auto& [name, n] : objs->members()) {
    name_w = std::max(name_w, name.size());
    if (!n.find("error")) text_w = std::max(text_w, node_text(n).size());
  }
  for (const auto& [name, n] : objs->members()) {
    std::string line = "  " + name + std::string(name_w - name.size(), ' ') + "  ";
    if (const Value* e = n.find("error")) {
      out += line + "ERROR: " + str(e) + "\n";
      continue;
    }
    std::string text = node_text(n), secs = sections_text(n.find("sections"));
    out += line + text + (secs.empty() ? "" : std::string(text_w - text.size(), ' ') + "  " + secs) + "\n";
    if (const Value* lc = n.find("local_conf")) {
      for (const auto& [k, v] : lc->members()) {
        out += "  " + std::string(name_w, ' ') + "    " + k + " = " + fold(str(&v)) + "\n";
      }
    }
  }
}

std::string inspect_text(const Value& d) {
  std::string out = "paste.deploy view of " + str(d.find("file")) + "\n";
  if (const Value* defs = d.find("defaults")) {
    std::string lines;
    for (const auto& [k, v] : defs->members()) {
      if (k != "here" && k != "__file__") lines += "  " + k + " = " + fold(str(&v)) + "\n";
    }
    if (!lines.empty()) out += "\n[DEFAULT]\n" + lines;
  }
  if (const Value* vars = d.find("vars"); vars && !vars->members().empty()) {
    out += "\nCommand-line variables (global_conf):\n";
    for (const auto& [k, v] : vars->members()) out += "  " + k + " = " + str(&v) + "\n";
  }
  const Value* objs = d.find("objects");
  out += "\n";
  objects_text(out, "Applications:", objs ? objs->find("application") : nullptr);
  objects_text(out, "Filters:", objs ? objs->find("filter") : nullptr);
  objects_text(out, "Servers:", objs ? objs->find("server") : nullptr);
  if (const Value* serve = d.find("serve")) {
    out += "\n`paster serve` loads:\n";
    for (const char* what : {"server", "application"}) {
      const Value* n = serve->find(what);
      if (!n) continue;
      const Value* e = n->find("error");
      out += std::string("  ") + what + ": " + (e ? "ERROR: " + str(e) : node_text(*n) + "  " + sections_text(n->find("sections"))) +
             "\n";
    }
  }
  return out;
}

}  // namespace

int cmd_check(const conf::Site& site, int workers) {
  fputs(conf::describe_site(site, workers).c_str(), stdout);
  return 0;
}

int cmd_inspect(const conf::LoadOptions& opts, bool json, bool show_secrets) {
  std::string path = opts.config;
  if (size_t hash = path.find('#'); hash != std::string::npos) path.resize(hash);
  static const std::regex scheme("^[a-zA-Z][a-zA-Z]+:");
  if (conf::py::starts_with(path, "config:")) {
    path = path.substr(7);
  } else if (std::regex_search(path, scheme)) {
    fprintf(stderr, "pasture inspect: %s: only config files can be inspected\n", opts.config.c_str());
    return 2;
  }
  std::string base = opts.relative_to.empty() ? conf::py::abspath(".") : opts.relative_to;
  path = conf::py::abspath(conf::py::isabs(path) ? path : base + "/" + path);
  if (access(path.c_str(), R_OK) != 0) {
    fprintf(stderr, "pasture inspect: cannot read %s: %s\n", path.c_str(), strerror(errno));
    return 2;
  }
  if (conf::is_yaml_path(path)) {
    fprintf(stderr, "pasture inspect: %s is a YAML config; inspect shows paste.deploy's view of an INI file "
                    "(try pasture check)\n", path.c_str());
    return 2;
  }
  conf::json::Value dump = conf::inspect(path, opts.vars);
  if (!show_secrets) conf::hide_secrets(dump);
  if (json) {
    fputs(conf::json::dump(dump).c_str(), stdout);
    return 0;
  }
  fputs(inspect_text(dump).c_str(), stdout);
  if (const Value* e = dump.find("parse_error"); e && !e->is_null()) {
    fprintf(stderr, "pasture inspect: %s\n", e->as_string().c_str());
    return 2;
  }
  return 0;
}

int cmd_convert(const conf::LoadOptions& opts) {
  conf::Site site;
  std::string yaml;
  try {
    site = conf::load_site(opts);
    yaml = conf::site_to_yaml(site);  // refuses Python apps: YAML cannot name them yet
  } catch (const std::exception& e) {
    fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  // Load the YAML back: what convert prints must serve the same way.
  char tmpl[] = "/tmp/pasture-convert-XXXXXX.yaml";
  int fd = mkstemps(tmpl, 5);
  if (fd >= 0) {
    bool ok = write(fd, yaml.data(), yaml.size()) == static_cast<ssize_t>(yaml.size());
    close(fd);
    std::string problem;
    try {
      conf::LoadOptions back;
      back.config = tmpl;
      if (ok && !conf::same_site(site, conf::load_site(back))) problem = "loads back as a different site";
    } catch (const std::exception& e) {
      problem = std::string("does not load back: ") + e.what();
    }
    unlink(tmpl);
    if (!problem.empty()) {
      fprintf(stderr, "pasture convert: internal error: the YAML %s\n", problem.c_str());
      return 1;
    }
  }
  // A config to use, so its secrets are in it (unlike check and inspect).
  if (!conf::site_secrets(site).empty()) fputs("# holds secrets (cookie_secret): keep this file private\n", stdout);
  fputs(yaml.c_str(), stdout);
  return 0;
}

}  // namespace pasture::master
