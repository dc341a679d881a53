#include "master/cli.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>

#include "conf/pyutil.h"

namespace pasture::master {

namespace {

enum class Id {
  Help, Verbose, Quiet, AppName, Server, ServerName, Daemon, PidFile, LogFile, Reload, ReloadInterval,
  MonitorRestart, Status, User, Group, StopDaemon, Workers, AppWorkers, Python, Check, Json, ShowSecrets
};

struct Opt {
  char short_name;  // 0 = none
  const char* long_name;
  const char* metavar;  // nullptr = a flag
  Id id;
};

// paster serve's options in its --help order, then pasture's own.
const Opt kOptions[] = {
    {'h', "--help", nullptr, Id::Help},
    {'v', "--verbose", nullptr, Id::Verbose},
    {'q', "--quiet", nullptr, Id::Quiet},
    {'n', "--app-name", "NAME", Id::AppName},
    {'s', "--server", "SERVER_TYPE", Id::Server},
    {0, "--server-name", "SECTION_NAME", Id::ServerName},
    {0, "--daemon", nullptr, Id::Daemon},
    {0, "--pid-file", "FILENAME", Id::PidFile},
    {0, "--log-file", "LOG_FILE", Id::LogFile},
    {0, "--reload", nullptr, Id::Reload},
    {0, "--reload-interval", "RELOAD_INTERVAL", Id::ReloadInterval},
    {0, "--monitor-restart", nullptr, Id::MonitorRestart},
    {0, "--status", nullptr, Id::Status},
    {0, "--user", "USERNAME", Id::User},
    {0, "--group", "GROUP", Id::Group},
    {0, "--stop-daemon", nullptr, Id::StopDaemon},
    {0, "--workers", "N", Id::Workers},
    {0, "--app-workers", "N", Id::AppWorkers},
    {0, "--python", "PATH", Id::Python},
    {0, "--check", nullptr, Id::Check},
    {0, "--json", nullptr, Id::Json},
    {0, "--show-secrets", nullptr, Id::ShowSecrets},
};

const char* kGeneralUsage =
    "Usage: pasture serve [options] CONFIG_FILE[#name] [start|stop|restart|status] [var=value ...]\n"
    "       pasture check [options] CONFIG_FILE[#name] [var=value ...]\n"
    "       pasture inspect [--json] [--show-secrets] CONFIG_FILE [var=value ...]\n"
    "       pasture convert [options] CONFIG_FILE[#name] [var=value ...]\n"
    "       pasture ctl CONFIG_FILE COMMAND...\n"
    "       pasture status CONFIG_FILE\n"
    "\n"
    "Serve the application described by a paste.deploy config file (or its YAML\n"
    "form) with a pre-forked master/worker HTTP server and load balancer.\n"
    "\n"
    "Commands:\n"
    "  serve     serve it, as `paster serve` does (`pasture serve --help`)\n"
    "  check     validate the config and print what would be served\n"
    "  inspect   how paste.deploy resolves the file (--json: pastedeploy-dump/1);\n"
    "            secrets (cookie_secret, *password*, *_key, ...) show as *** unless\n"
    "            --show-secrets\n"
    "  convert   print the YAML form of what `serve` would load\n"
    "  ctl       send COMMAND to the running server through the config's\n"
    "            admin_socket and print the answer (`pasture ctl CONFIG help`):\n"
    "            show info|pools|servers|stat, set server POOL/SERVER state\n"
    "            ready|drain|maint, set weight POOL/SERVER N|N%, set health\n"
    "            POOL/SERVER up|down|auto, enable|disable health POOL/SERVER,\n"
    "            clear counters, drain [SECONDS]; exit 1 on an error. With\n"
    "            --publish, set server ... state and set weight are written to the\n"
    "            pool's etcd prefix (_admin/SERVER) for every node watching it\n"
    "  status    the running server's servers as a table (= ctl CONFIG show servers):\n"
    "            state, weight, counts, the last health check with its rise/fall\n"
    "            progress, down transitions, downtime, seconds since the last change\n";

const char* kServeHelp =
    "\n"
    "This command serves a web application that uses a paste.deploy configuration\n"
    "file for the server and application.  If start/stop/restart is given, then\n"
    "--daemon is implied, and it will start (normal operation), stop (--stop-\n"
    "daemon), or do both.  You can also include variable assignments like\n"
    "'http_port=8080' and then use %(http_port)s in your config files.\n"
    "\n"
    "Options:\n"
    "  -h, --help            show this help message and exit\n"
    "  -v, --verbose         \n"
    "  -q, --quiet           \n"
    "  -n NAME, --app-name=NAME\n"
    "                        Load the named application (default main)\n"
    "  -s SERVER_TYPE, --server=SERVER_TYPE\n"
    "                        Use the named server.\n"
    "  --server-name=SECTION_NAME\n"
    "                        Use the named server as defined in the configuration\n"
    "                        file (default: main)\n"
    "  --daemon              Run in daemon (background) mode\n"
    "  --pid-file=FILENAME   Save PID to file (default to paster.pid if running in\n"
    "                        daemon mode)\n"
    "  --log-file=LOG_FILE   Save output to the given log file (redirects stdout)\n"
    "  --reload              Use auto-restart file monitor\n"
    "  --reload-interval=RELOAD_INTERVAL\n"
    "                        Seconds between checking files (low number can cause\n"
    "                        significant CPU usage)\n"
    "  --monitor-restart     Auto-restart server if it dies\n"
    "  --status              Show the status of the (presumably daemonized) server\n"
    "  --user=USERNAME       Set the user (usually only possible when run as root)\n"
    "  --group=GROUP         Set the group (usually only possible when run as root)\n"
    "  --stop-daemon         Stop a daemonized server (given a PID file, or default\n"
    "                        paster.pid file)\n"
    "\n"
    "  pasture's own options:\n"
    "  --workers=N           Worker processes (default: the server section's\n"
    "                        workers, else one per CPU)\n"
    "                        Python WSGI apps run inside the workers (embedded\n"
    "                        CPython; app_mode, threads, preload in the server\n"
    "                        section) unless app_mode = process or --python:\n"
    "  --app-workers=N       app_mode = process: processes hosting each Python app\n"
    "                        (default: the server section's app_workers, else one\n"
    "                        per CPU)\n"
    "  --python=PATH         Run Python apps in processes of this interpreter\n"
    "                        (implies app_mode = process; default: the server\n"
    "                        section's python, else python3)\n"
    "  --check               Validate the config, print what would be served, exit\n"
    "\n"
    "--user/--group switch once the listen sockets are bound (unlike paster, so a\n"
    "port below 1024 works), before any worker, app process or health checker\n"
    "starts; they replace the server section's user/group keys, which do the same.\n"
    "CONFIG_FILE may also be a .yaml/.yml file (see `pasture convert`).\n";

std::string usage_line(const std::string& cmd) {
  if (cmd == "serve") {
    return "Usage: pasture serve [options] CONFIG_FILE[#name] [start|stop|restart|status] [var=value ...]\n"
           "Serve the described application\n";
  }
  if (cmd == "inspect") {
    return "Usage: pasture inspect [options] [--json] [--show-secrets] CONFIG_FILE [var=value ...]\n"
           "Show how paste.deploy resolves the config file\n";
  }
  if (cmd == "convert") {
    return "Usage: pasture convert [options] CONFIG_FILE[#name] [var=value ...]\n"
           "Print the YAML form of what `pasture serve` would load\n";
  }
  return "Usage: pasture check [options] CONFIG_FILE[#name] [var=value ...]\n"
         "Validate the config and print what would be served\n";
}

// optparse's OptionParser.error: usage, blank line, "prog: error: msg", exit 2.
CliExit opt_error(const std::string& cmd, const std::string& msg) {
  return {2, "", usage_line(cmd) + "\npasture " + cmd + ": error: " + msg + "\n"};
}

// paster's BadCommand: the message on stdout, exit 2.
CliExit bad_command(const std::string& msg) { return {2, msg + "\n", ""}; }

bool is_pasture_own(Id id) { return id >= Id::Workers; }

// optparse's _match_abbrev over the long option names. An abbreviation that
// paster accepts keeps meaning what it did there (--app is --app-name, not
// ambiguous with --app-workers): paster's options are tried first.
const Opt* match_long(const std::string& cmd, const std::string& name, std::string* err) {
  std::vector<const Opt*> hits, own;
  for (const auto& o : kOptions) {
    if ((o.id == Id::Json || o.id == Id::ShowSecrets) && cmd != "inspect") continue;
    if (name == o.long_name) return &o;
    if (std::string(o.long_name).rfind(name, 0) == 0) (is_pasture_own(o.id) ? own : hits).push_back(&o);
  }
  if (hits.empty()) hits = own;
  if (hits.size() == 1) return hits[0];
  if (hits.empty()) {
    *err = "no such option: " + name;
  } else {
    std::vector<std::string> names;
    for (const auto* o : hits) names.push_back(o->long_name);
    std::sort(names.begin(), names.end());
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    *err = "ambiguous option: " + name + " (" + list + "?)";
  }
  return nullptr;
}

const Opt* match_short(char c) {
  for (const auto& o : kOptions) {
    if (o.short_name == c) return &o;
  }
  return nullptr;
}

bool parse_int(const std::string& v, int* out) {
  char* end = nullptr;
  long n = strtol(v.c_str(), &end, 0);
  if (v.empty() || *end || n < 0 || n > 100000) return false;
  *out = static_cast<int>(n);
  return true;
}

class Parser {
 public:
  Parser(std::string cmd, const CliEnv& env) : env_(env) { cl_.cmd = std::move(cmd); }
  std::variant<CommandLine, CliExit> run(const std::vector<std::string>& args);

 private:
  // Applies one option; returns false (and sets exit_) to stop.
  bool apply(const Opt& o, const std::string& opt, const std::string* value);
  std::optional<CliExit> after_options();
  std::optional<CliExit> check_user_group();

  const CliEnv& env_;
  CommandLine cl_;
  std::vector<std::string> positional_;
  int verbose_ = 0, quiet_ = 0;
  bool status_flag_ = false;
  bool server_name_given_ = false;
  std::optional<CliExit> exit_;
};

bool Parser::apply(const Opt& o, const std::string& opt, const std::string* value) {
  ServeOptions& s = cl_.serve;
  const std::string v = value ? *value : "";
  auto number = [&](int* out) {
    if (parse_int(v, out)) return true;
    exit_ = opt_error(cl_.cmd, "option " + opt + ": invalid integer value: " + conf::py::repr(v));
    return false;
  };
  switch (o.id) {
    case Id::Help:
      exit_ = CliExit{0, cl_.cmd == "serve" ? usage_line("serve") + kServeHelp : usage_line(cl_.cmd), ""};
      return false;
    case Id::Verbose: verbose_++; break;
    case Id::Quiet: quiet_++; break;
    case Id::AppName: cl_.load.app_name = v; break;
    case Id::Server: s.server_type = v; break;
    case Id::ServerName: cl_.load.server_name = v, server_name_given_ = true; break;
    case Id::Daemon: s.daemon = true; break;
    case Id::PidFile: s.pid_file = v; break;
    case Id::LogFile: s.log_file = v; break;
    case Id::Reload: s.reload = true; break;
    case Id::ReloadInterval: {
      char* end = nullptr;
      double d = strtod(v.c_str(), &end);
      if (v.empty() || *end || d <= 0) {
        exit_ = opt_error(cl_.cmd, "option " + opt + ": invalid number of seconds: " + conf::py::repr(v));
        return false;
      }
      s.reload_interval = d;
      break;
    }
    case Id::MonitorRestart: s.monitor_restart = true; break;
    case Id::Status: status_flag_ = true; break;
    case Id::User: s.user = v; break;
    case Id::Group: s.group = v; break;
    case Id::StopDaemon: s.stop_daemon = true; break;
    case Id::Workers: return number(&s.workers);
    case Id::AppWorkers: return number(&s.app_workers);
    case Id::Python: s.python = v; break;
    case Id::Check: cl_.check_only = true; break;
    case Id::Json: cl_.json = true; break;
    case Id::ShowSecrets: cl_.show_secrets = true; break;
  }
  return true;
}

std::variant<CommandLine, CliExit> Parser::run(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a == "--") {
      positional_.insert(positional_.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (a.rfind("--", 0) == 0) {
      size_t eq = a.find('=');
      std::string name = a.substr(0, eq), err;
      const Opt* o = match_long(cl_.cmd, name, &err);
      if (!o) return opt_error(cl_.cmd, err);
      std::string opt = o->long_name;
      if (o->metavar) {
        std::string value;
        if (eq != std::string::npos) {
          value = a.substr(eq + 1);
        } else if (i + 1 < args.size()) {
          value = args[++i];
        } else {
          return opt_error(cl_.cmd, opt + " option requires an argument");
        }
        if (!apply(*o, opt, &value)) return *exit_;
      } else if (eq != std::string::npos) {
        // BoolOptionParser: --flag=true / --flag=false.
        std::string b = conf::py::strip(a.substr(eq + 1));
        for (auto& c : b) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        static const std::set<std::string> yes = {"true", "yes", "on", "1", "y", "t"};
        static const std::set<std::string> no = {"false", "no", "off", "0", "n", "f"};
        if (no.count(b)) continue;
        if (!yes.count(b)) return opt_error(cl_.cmd, opt + " option takes a boolean value only (true/false)");
        if (!apply(*o, opt, nullptr)) return *exit_;
      } else if (!apply(*o, opt, nullptr)) {
        return *exit_;
      }
    } else if (a.size() > 1 && a[0] == '-') {
      for (size_t j = 1; j < a.size(); j++) {
        const Opt* o = match_short(a[j]);
        std::string opt = std::string("-") + a[j];
        if (!o) return opt_error(cl_.cmd, "no such option: " + opt);
        if (!o->metavar) {
          if (!apply(*o, opt, nullptr)) return *exit_;
          continue;
        }
        std::string value;
        if (j + 1 < a.size()) {
          value = a.substr(j + 1);
        } else if (i + 1 < args.size()) {
          value = args[++i];
        } else {
          return opt_error(cl_.cmd, opt + " option requires 1 argument");
        }
        if (!apply(*o, opt, &value)) return *exit_;
        break;
      }
    } else {
      positional_.push_back(a);
    }
  }
  if (auto e = after_options()) return *e;
  return cl_;
}

// Command.run and ServeCommand.command, in their order.
std::optional<CliExit> Parser::after_options() {
  ServeOptions& s = cl_.serve;
  s.verbosity = 1 + verbose_ - quiet_;
  if (!env_.config_file.empty()) positional_.insert(positional_.begin(), env_.config_file);
  if (env_.default_quiet) s.verbosity = 0;
  if (s.stop_daemon && cl_.cmd == "serve" && !cl_.check_only) return std::nullopt;  // needs no CONFIG_FILE
  if (auto e = check_user_group()) return e;
  if (positional_.empty()) return bad_command("You must give a config file");
  cl_.load.config = positional_[0];
  size_t rest = 1;
  static const std::set<std::string> subcommands = {"start", "stop", "restart", "status"};
  if (cl_.cmd == "serve" && positional_.size() > 1 && subcommands.count(positional_[1])) {
    s.command = positional_[1];
    rest = 2;
  }
  if (s.daemon && s.reload) return bad_command("The --daemon and --reload options may not be used together");
  if (status_flag_ && s.command.empty()) s.command = "status";
  if (s.command == "start" || s.command == "restart") s.daemon = true;
  for (size_t i = rest; i < positional_.size(); i++) {
    const std::string& p = positional_[i];
    size_t eq = p.find('=');
    if (eq == std::string::npos) return bad_command("Variable assignment " + conf::py::repr(p) + " invalid (no \"=\")");
    cl_.load.vars.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  if (!s.server_type.empty() && server_name_given_) {
    return opt_error(cl_.cmd, "-s/--server and --server-name cannot be used together");
  }
  return std::nullopt;
}

// ServeCommand.change_user_group's checks (the switch itself is master's).
std::optional<CliExit> Parser::check_user_group() {
  const ServeOptions& s = cl_.serve;
  int id = 0;
  if (!s.group.empty()) {
    bool numeric = parse_int(s.group, &id);
    if (numeric ? !getgrgid(static_cast<gid_t>(id)) : !getgrnam(s.group.c_str())) {
      return bad_command("Bad group: " + conf::py::repr(s.group) + "; no such group exists");
    }
  }
  if (!s.user.empty()) {
    bool numeric = parse_int(s.user, &id);
    if (numeric ? !getpwuid(static_cast<uid_t>(id)) : !getpwnam(s.user.c_str())) {
      return bad_command("Bad username: " + conf::py::repr(s.user) + "; no such user exists");
    }
  }
  return std::nullopt;
}

}  // namespace

std::variant<CommandLine, CliExit> parse_command_line(const std::vector<std::string>& args, const CliEnv& env) {
  if (args.empty()) return CliExit{2, "", std::string(kGeneralUsage) + "\npasture: error: no command given\n"};
  const std::string& cmd = args[0];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") return CliExit{0, kGeneralUsage, ""};
  if (cmd == "--version") return CliExit{0, "pasture 0.1\n", ""};
  if (cmd == "ctl" || cmd == "status") {
    bool ctl = cmd == "ctl";
    if (args.size() < 2 || (ctl && args.size() < 3) || (!ctl && args.size() > 2) || args[1].rfind("-", 0) == 0)
      return CliExit{2, "",
                     std::string(ctl ? "Usage: pasture ctl CONFIG_FILE COMMAND...\n"
                                     : "Usage: pasture status CONFIG_FILE\n") +
                         "\npasture " + cmd + ": error: " + (ctl ? "CONFIG_FILE and COMMAND needed" : "one CONFIG_FILE needed") +
                         "\n"};
    CommandLine cl;
    cl.cmd = cmd;
    cl.load.config = args[1];
    if (ctl)
      cl.ctl_words.assign(args.begin() + 2, args.end());
    else
      cl.ctl_words = {"show", "servers"};
    return cl;
  }
  if (cmd != "serve" && cmd != "check" && cmd != "inspect" && cmd != "convert") {
    return CliExit{2, "", std::string(kGeneralUsage) + "\npasture: error: unknown command '" + cmd + "'\n"};
  }
  return Parser(cmd, env).run(std::vector<std::string>(args.begin() + 1, args.end()));
}

std::string pending_options(const ServeOptions& s) {
  std::vector<std::string> names;
  if (!s.server_type.empty()) names.push_back("-s " + s.server_type + " (egg:PasteScript#" + s.server_type + ")");
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

CliEnv cli_env_from_process() {
  CliEnv env;
  if (const char* f = getenv("PASTE_CONFIG_FILE")) env.config_file = f;
  const char* q = getenv("PASTE_DEFAULT_QUIET");
  env.default_quiet = q && *q;
  return env;
}

}  // namespace pasture::master
