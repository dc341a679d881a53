// pasture command line. Kept thin: parse arguments, run paster serve's
// start sequence (master/daemon, master/reloader), load the config, hand
// over to Master.
//
//   pasture serve [options] CONFIG[#name] [start|stop|restart|status] [var=value ...]
//   pasture check CONFIG[#name] [var=value ...]
//   pasture inspect [--json] CONFIG [var=value ...]
//   pasture ctl CONFIG COMMAND...   pasture status CONFIG
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "common/log.h"
#include "conf/describe.h"
#include "conf/inspect.h"
#include "conf/load.h"
#include "master/cli.h"
#include "master/commands.h"
#include "master/daemon.h"
#include "master/master.h"
#include "master/notify.h"
#include "master/privileges.h"
#include "master/reloader.h"

namespace {

using pasture::conf::LoadOptions;
namespace pm = pasture::master;

using Args = pm::CommandLine;

// master/cli.cc parses (paster serve's optparse rules); only its verdict is
// printed here.
Args parse_args(int argc, char** argv) {
  auto r = pm::parse_command_line(std::vector<std::string>(argv + 1, argv + argc), pm::cli_env_from_process());
  if (auto* e = std::get_if<pm::CliExit>(&r)) {
    fputs(e->out.c_str(), stdout);
    fputs(e->err.c_str(), stderr);
    exit(e->code);
  }
  return std::get<Args>(std::move(r));
}

// paster's BadCommand: message on stdout, exit 2.
int bad_command(const std::string& msg) {
  printf("%s\n", msg.c_str());
  return 2;
}

// The file CONFIG names: without a "config:" prefix or "#name".
std::string config_path(std::string config) {
  if (config.rfind("config:", 0) == 0) config = config.substr(7);
  return config.substr(0, config.find('#'));
}

// Loads the config and serves until stopped: the foreground server, a
// daemon, or the child of a --reload/--monitor-restart parent.
int serve_site(const Args& a, const pm::ServeOptions& opts, const std::vector<std::string>& argv) {
  pasture::conf::Site site;
  try {
    site = pasture::conf::load_site(a.load);
  } catch (const pasture::conf::ConfigError& e) {
    fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fprintf(stderr, "pasture: %s\n", e.what());
    return 1;
  }
  // From here on a log line never shows a secret of the site (a Python
  // traceback quoting one included).
  for (const std::string& secret : pasture::conf::site_secrets(site)) pasture::log::add_secret(secret);
  if (opts.verbosity >= 2) pasture::log::set_level(pasture::log::Level::Debug);
  if (opts.verbosity <= 0) pasture::log::set_level(pasture::log::Level::Warn);
  for (const auto& n : site.notices) PLOG_NOTICE("%s", n.c_str());
  if (opts.verbosity > 0) {
    printf("Starting server in PID %d.\n", (int)getpid());
    fflush(stdout);
  }
  pm::Master m(a.load, std::move(site), opts, argv);
  return m.run();
}

// ServeCommand.command, in paster's order (pastedeploy.md §8).
int serve(const Args& a, const std::vector<std::string>& argv) {
  pm::ServeOptions opts = a.serve;
  if (opts.stop_daemon) return pm::stop_daemon(opts.pid_file.empty() ? pm::kDefaultPidFile : opts.pid_file);
  std::string err;
  // Started by a --reload/--monitor-restart parent, or by a master's
  // SIGUSR2 upgrade: the same arguments, but the parent did the daemon work.
  bool monitored = (opts.reload && getenv(pm::kReloaderEnv)) || (opts.monitor_restart && getenv(pm::kMonitorEnv));
  bool upgraded = getenv(pm::kInheritEnv) != nullptr;
  bool spawned = monitored || upgraded;
  // --user/--group: paster switches here, first, so it cannot bind a port
  // below 1024 as the user. pasture switches once the master has bound its
  // sockets (master/privileges.h) but says so here, as paster does. A
  // --reload/--monitor-restart parent stays root: its child binds.
  if (!opts.user.empty() || !opts.group.empty()) {
    pm::RunAs as;
    if (!pm::resolve_run_as(opts.user, opts.group, &as, &err)) return bad_command(err);
    if (!spawned && opts.verbosity > 0 && !pm::runs_as(as)) {
      printf("%s\n", pm::changing_message(as).c_str());
      fflush(stdout);
    }
  }
  const std::string status_pid_file = opts.pid_file.empty() ? pm::kDefaultPidFile : opts.pid_file;
  if (!spawned && opts.command == "status") return pm::show_status(status_pid_file);
  if (!spawned && (opts.command == "stop" || opts.command == "restart")) {
    int rc = pm::stop_daemon(status_pid_file);
    if (rc) {
      printf("%s\n", opts.command == "restart" ? "Could not stop daemon; aborting" : "Could not stop daemon");
      return rc;
    }
    if (opts.command == "stop") return 0;
  }
  if (opts.daemon) {
    if (opts.pid_file.empty()) opts.pid_file = pm::kDefaultPidFile;
    if (opts.log_file.empty()) opts.log_file = pm::kDefaultLogFile;
  }
  if (!opts.log_file.empty() && !pm::touch_file(opts.log_file, &err))
    return bad_command("Error: Unable to write to log file: " + err);
  if (!opts.pid_file.empty() && !pm::touch_file(opts.pid_file, &err))
    return bad_command("Error: Unable to write to pid file: " + err);
  if (opts.daemon && !spawned) {
    if (pid_t pid = pm::live_pid_file(opts.pid_file)) {
      if (opts.verbosity > 0)
        printf("Daemon is already running (PID: %d from PID file %s)\n", (int)pid, opts.pid_file.c_str());
      return 0;
    }
    if (opts.verbosity > 0) printf("Entering daemon mode\n");
    pm::daemonize();
  }
  // The top process owns the pid file, so `stop` reaches a monitor parent
  // (which stops its child) rather than a child it would restart.
  pm::PidFile pid_file;
  if (!opts.pid_file.empty() && !monitored && !pid_file.write(opts.pid_file, opts.verbosity, &err))
    return bad_command(err);
  opts.owns_pid_file = !opts.pid_file.empty() && !monitored;
  if (!opts.log_file.empty() && !pm::redirect_output(opts.log_file, &err)) {
    fprintf(stderr, "pasture: %s\n", err.c_str());
    return 1;
  }
  if ((opts.reload || opts.monitor_restart) && !monitored) {
    pm::MonitorOptions mo;
    mo.reload = opts.reload;
    mo.interval = opts.reload_interval;
    mo.config_file = config_path(a.load.config);
    mo.log_file = opts.log_file;
    mo.verbosity = opts.verbosity;
    return pm::run_monitor(mo, argv);
  }
  return serve_site(a, opts, argv);
}

}  // namespace

int main(int argc, char** argv) {
  // Every command reads the config, secrets included: no core file (nor
  // ptrace by the same user) shows them. `core_dumps = true` in the server
  // section turns it back on for serve (Master::run).
  pm::set_dumpable(false);
  Args a = parse_args(argc, argv);
  if (a.cmd == "serve" && !a.check_only) {
    std::string pending = pm::pending_options(a.serve);
    if (!pending.empty()) {
      fprintf(stderr, "pasture serve: not implemented yet: %s\n", pending.c_str());
      return 2;
    }
    return serve(a, std::vector<std::string>(argv, argv + argc));
  }
  if (a.cmd == "inspect") return pm::cmd_inspect(a.load, a.json, a.show_secrets);
  if (a.cmd == "convert") return pm::cmd_convert(a.load);
  if (a.cmd == "ctl" || a.cmd == "status") return pm::cmd_ctl(a.load, a.ctl_words);
  pasture::conf::Site site;
  try {
    site = pasture::conf::load_site(a.load);
  } catch (const pasture::conf::ConfigError& e) {
    fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fprintf(stderr, "pasture: %s\n", e.what());
    return 2;
  }
  return pm::cmd_check(site, a.serve.workers);
}
