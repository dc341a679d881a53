// pasture command line. Kept thin: parse arguments, load the config, hand
// over to Master.
//
//   pasture serve [options] CONFIG[#name] [var=value ...]
//   pasture check CONFIG[#name] [var=value ...]
//   pasture inspect [--json] CONFIG [var=value ...]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/log.h"
#include "conf/inspect.h"
#include "conf/load.h"
#include "master/commands.h"
#include "master/master.h"

namespace {

using pasture::conf::LoadOptions;

const char* kUsage =
    "Usage: pasture serve [options] CONFIG_FILE[#name] [var=value ...]\n"
    "       pasture check CONFIG_FILE[#name] [var=value ...]\n"
    "       pasture inspect [--json] CONFIG_FILE [var=value ...]\n"
    "       pasture convert CONFIG_FILE[#name] [var=value ...]\n"
    "\n"
    "Serve the application described by a paste.deploy config file with a\n"
    "pre-forked master/worker HTTP server and load balancer.\n"
    "\n"
    "Options (serve):\n"
    "  -h, --help               show this help message and exit\n"
    "  -v, --verbose            more output\n"
    "  -q, --quiet              less output\n"
    "  -n NAME, --app-name=NAME load the named application (default main)\n"
    "  --server-name=SECTION_NAME\n"
    "                           use the named server section (default: main)\n"
    "  --workers=N              worker processes (default: config, else CPUs)\n"
    "  --check                  validate the config and exit\n";

struct Args {
  std::string cmd;
  LoadOptions load;
  pasture::master::ServeOptions serve;
  bool json = false;
  bool check_only = false;
};

[[noreturn]] void usage_error(const std::string& msg) {
  fprintf(stderr, "%spasture: error: %s\n", kUsage, msg.c_str());
  exit(2);
}

// Accept both "--opt=value" and "--opt value".
bool take_value(const std::string& a, const char* name, int& i, int argc, char** argv,
                std::string* out) {
  size_t n = strlen(name);
  if (a.compare(0, n, name) != 0) return false;
  if (a.size() > n && a[n] == '=') {
    *out = a.substr(n + 1);
    return true;
  }
  if (a.size() != n) return false;
  if (i + 1 >= argc) usage_error(std::string(name) + " option requires an argument");
  *out = argv[++i];
  return true;
}

int parse_int(const std::string& v, const char* what) {
  char* end = nullptr;
  long n = strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || n < 0 || n > 1024)
    usage_error(std::string("invalid ") + what + ": '" + v + "'");
  return (int)n;
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc < 2) usage_error("no command given");
  a.cmd = argv[1];
  if (a.cmd == "-h" || a.cmd == "--help") {
    fputs(kUsage, stdout);
    exit(0);
  }
  if (a.cmd == "--version") {
    puts("pasture 0.1");
    exit(0);
  }
  if (a.cmd != "serve" && a.cmd != "check" && a.cmd != "inspect" && a.cmd != "convert")
    usage_error("unknown command '" + a.cmd + "'");
  std::vector<std::string> positional;
  for (int i = 2; i < argc; i++) {
    std::string s = argv[i], v;
    if (s == "-h" || s == "--help") {
      fputs(kUsage, stdout);
      exit(0);
    } else if (s == "-v" || s == "--verbose") {
      a.serve.verbosity++;
    } else if (s == "-q" || s == "--quiet") {
      a.serve.verbosity = 0;
    } else if (s == "--json") {
      a.json = true;
    } else if (s == "--check") {
      a.check_only = true;
    } else if (s == "-n" && i + 1 < argc) {
      a.load.app_name = argv[++i];
    } else if (take_value(s, "--app-name", i, argc, argv, &v)) {
      a.load.app_name = v;
    } else if (take_value(s, "--server-name", i, argc, argv, &v)) {
      a.load.server_name = v;
    } else if (take_value(s, "--workers", i, argc, argv, &v)) {
      a.serve.workers = parse_int(v, "--workers");
    } else if (s.size() > 1 && s[0] == '-') {
      usage_error("no such option: " + s);
    } else {
      positional.push_back(s);
    }
  }
  if (positional.empty()) {
    fprintf(stderr, "You must give a config file\n");
    exit(2);
  }
  a.load.config = positional[0];
  for (size_t i = 1; i < positional.size(); i++) {
    const std::string& p = positional[i];
    size_t eq = p.find('=');
    if (eq == std::string::npos) {
      fprintf(stderr, "Variable assignment '%s' invalid (no \"=\")\n", p.c_str());
      exit(2);
    }
    a.load.vars.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (a.cmd == "inspect") return pasture::master::cmd_inspect(a.load, a.json);
  if (a.cmd == "convert") return pasture::master::cmd_convert(a.load);
  pasture::conf::Site site;
  try {
    site = pasture::conf::load_site(a.load);
  } catch (const pasture::conf::ConfigError& e) {
    fprintf(stderr, "%s\n", e.what());
    return a.cmd == "check" || a.check_only ? 2 : 1;
  } catch (const std::exception& e) {
    fprintf(stderr, "pasture: %s\n", e.what());
    return a.cmd == "check" || a.check_only ? 2 : 1;
  }
  if (a.cmd == "check" || a.check_only) return pasture::master::cmd_check(site);
  if (a.serve.verbosity >= 2) pasture::log::set_level(pasture::log::Level::Debug);
  if (a.serve.verbosity == 0) pasture::log::set_level(pasture::log::Level::Warn);
  for (const auto& n : site.notices) PLOG_NOTICE("%s", n.c_str());
  if (a.serve.verbosity > 0) {
    printf("Starting server in PID %d.\n", (int)getpid());
    fflush(stdout);
  }
  pasture::master::Master m(std::move(site), a.serve);
  return m.run();
}
