// master/cli: paster serve's command line (optparse rules, messages, exit codes).
#include <gtest/gtest.h>

#include "master/cli.h"

namespace pasture::master {
namespace {

std::variant<CommandLine, CliExit> parse(std::vector<std::string> args, CliEnv env = {}) {
  return parse_command_line(args, env);
}

CommandLine ok(std::vector<std::string> args, CliEnv env = {}) {
  auto r = parse(std::move(args), env);
  if (auto* e = std::get_if<CliExit>(&r)) {
    ADD_FAILURE() << "exit " << e->code << ": " << e->out << e->err;
    return {};
  }
  return std::get<CommandLine>(r);
}

CliExit fails(std::vector<std::string> args, CliEnv env = {}) {
  auto r = parse(std::move(args), env);
  if (auto* e = std::get_if<CliExit>(&r)) return *e;
  ADD_FAILURE() << "parsed";
  return {};
}

// The last line optparse writes: "pasture serve: error: ...".
std::string opt_error(std::vector<std::string> args) {
  CliExit e = fails(std::move(args));
  EXPECT_EQ(e.code, 2);
  EXPECT_EQ(e.err.rfind("Usage: pasture serve [options] CONFIG_FILE[#name] [start|stop|restart|status]", 0), 0u)
      << e.err;
  size_t nl = e.err.rfind('\n', e.err.size() - 2);
  return e.err.substr(nl + 1, e.err.size() - nl - 2);
}

// paster's BadCommand: the message alone on stdout, exit 2.
std::string bad_command(std::vector<std::string> args, CliEnv env = {}) {
  CliExit e = fails(std::move(args), env);
  EXPECT_EQ(e.code, 2);
  EXPECT_EQ(e.err, "");
  return e.out;
}

TEST(CliArgs, EveryPasterOptionIsAccepted) {
  CommandLine c = ok({"serve", "-v", "-v", "-q", "-n", "app", "--server-name=srv", "--pid-file", "p.pid",
                      "--log-file=l.log", "--reload", "--reload-interval=2.5", "--monitor-restart", "--user=root",
                      "--group=0", "--workers", "4", "--app-workers=2", "--python=/usr/bin/python3", "site.ini#x",
                      "a=b", "c=d=e"});
  EXPECT_EQ(c.cmd, "serve");
  EXPECT_EQ(c.serve.verbosity, 2);
  EXPECT_EQ(c.load.app_name, "app");
  EXPECT_EQ(c.load.server_name, "srv");
  EXPECT_EQ(c.serve.pid_file, "p.pid");
  EXPECT_EQ(c.serve.log_file, "l.log");
  EXPECT_TRUE(c.serve.reload);
  EXPECT_DOUBLE_EQ(c.serve.reload_interval, 2.5);
  EXPECT_TRUE(c.serve.monitor_restart);
  EXPECT_EQ(c.serve.user, "root");
  EXPECT_EQ(c.serve.group, "0");
  EXPECT_EQ(c.serve.workers, 4);
  EXPECT_EQ(c.serve.app_workers, 2);
  EXPECT_EQ(c.serve.python, "/usr/bin/python3");
  EXPECT_EQ(c.load.config, "site.ini#x");
  EXPECT_EQ(c.load.vars, (std::vector<std::pair<std::string, std::string>>{{"a", "b"}, {"c", "d=e"}}));
  EXPECT_EQ(pending_options(c.serve), "");  // all served (master/daemon, master/reloader)

  c = ok({"serve", "--daemon", "-s", "cgi", "--status", "--check", "site.ini"});
  EXPECT_TRUE(c.serve.daemon);
  EXPECT_EQ(c.serve.server_type, "cgi");
  EXPECT_EQ(c.serve.command, "status");
  EXPECT_TRUE(c.check_only);
}

TEST(CliArgs, OptparseSpellings) {
  CommandLine c = ok({"serve", "-vvq", "-nNAME", "--app=x", "--work", "3", "site.ini", "--daemon=no", "--reload=yes"});
  EXPECT_EQ(c.serve.verbosity, 2);
  EXPECT_EQ(c.load.app_name, "x");  // the later -n/--app-name wins
  EXPECT_EQ(c.serve.workers, 3);
  EXPECT_FALSE(c.serve.daemon);
  EXPECT_TRUE(c.serve.reload);
  c = ok({"serve", "--", "-odd.ini", "-x=1"});
  EXPECT_EQ(c.load.config, "-odd.ini");
  EXPECT_EQ(c.load.vars.at(0).first, "-x");
  EXPECT_EQ(ok({"serve", "-q", "-q", "s.ini"}).serve.verbosity, -1);
  EXPECT_EQ(ok({"serve", "-v", "s.ini"}, {"", true}).serve.verbosity, 0);  // PASTE_DEFAULT_QUIET
}

TEST(CliArgs, OptparseErrors) {
  EXPECT_EQ(opt_error({"serve", "--bogus", "s.ini"}), "pasture serve: error: no such option: --bogus");
  EXPECT_EQ(opt_error({"serve", "-vx"}), "pasture serve: error: no such option: -x");
  EXPECT_EQ(opt_error({"serve", "--re", "s.ini"}),
            "pasture serve: error: ambiguous option: --re (--reload, --reload-interval?)");
  EXPECT_EQ(opt_error({"serve", "-n"}), "pasture serve: error: -n option requires 1 argument");
  EXPECT_EQ(opt_error({"serve", "--app-name"}), "pasture serve: error: --app-name option requires an argument");
  EXPECT_EQ(opt_error({"serve", "--daemon=maybe", "s.ini"}),
            "pasture serve: error: --daemon option takes a boolean value only (true/false)");
  EXPECT_EQ(opt_error({"serve", "--workers=lots", "s.ini"}),
            "pasture serve: error: option --workers: invalid integer value: 'lots'");
  EXPECT_EQ(opt_error({"serve", "--json", "s.ini"}), "pasture serve: error: no such option: --json");
  EXPECT_EQ(opt_error({"serve", "-s", "cgi", "--server-name=x", "s.ini"}),
            "pasture serve: error: -s/--server and --server-name cannot be used together");
}

TEST(CliArgs, BadCommandMessages) {
  EXPECT_EQ(bad_command({"serve"}), "You must give a config file\n");
  EXPECT_EQ(bad_command({"serve", "--status"}), "You must give a config file\n");
  EXPECT_EQ(bad_command({"serve", "s.ini", "bogus"}), "Variable assignment 'bogus' invalid (no \"=\")\n");
  EXPECT_EQ(bad_command({"serve", "s.ini", "a=1", "start"}), "Variable assignment 'start' invalid (no \"=\")\n");
  EXPECT_EQ(bad_command({"serve", "s.ini", "it's"}), "Variable assignment \"it's\" invalid (no \"=\")\n");
  EXPECT_EQ(bad_command({"serve", "--daemon", "--reload", "s.ini"}),
            "The --daemon and --reload options may not be used together\n");
  EXPECT_EQ(bad_command({"serve", "--user=no-such-user-here", "s.ini"}),
            "Bad username: 'no-such-user-here'; no such user exists\n");
  EXPECT_EQ(bad_command({"serve", "--user=no-such-user-here", "--group=no-such-group-here"}),
            "Bad group: 'no-such-group-here'; no such group exists\n");
  EXPECT_EQ(bad_command({"check"}), "You must give a config file\n");
  EXPECT_EQ(bad_command({"check", "s.ini", "start"}), "Variable assignment 'start' invalid (no \"=\")\n");
}

TEST(CliArgs, SubcommandOnlyRightAfterConfig) {
  for (const char* word : {"start", "stop", "restart", "status"}) {
    CommandLine c = ok({"serve", "s.ini", word, "x=1"});
    EXPECT_EQ(c.serve.command, word);
    EXPECT_EQ(c.serve.daemon, std::string(word) == "start" || std::string(word) == "restart");
    EXPECT_EQ(c.load.vars.size(), 1u);
  }
  CommandLine c = ok({"serve", "--stop-daemon"});  // needs no config file
  EXPECT_TRUE(c.serve.stop_daemon);
  EXPECT_EQ(pending_options(c.serve), "");
}

TEST(CliArgs, PasteConfigFileIsInsertedFirst) {
  CommandLine c = ok({"serve", "a=b"}, {"/etc/site.ini", false});
  EXPECT_EQ(c.load.config, "/etc/site.ini");
  EXPECT_EQ(c.load.vars.size(), 1u);
  EXPECT_EQ(bad_command({"serve", "other.ini"}, {"/etc/site.ini", false}),
            "Variable assignment 'other.ini' invalid (no \"=\")\n");
}

TEST(CliArgs, HelpVersionAndCommands) {
  CliExit h = fails({"serve", "s.ini", "--help", "--bogus"});
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("  --stop-daemon         Stop a daemonized server (given a PID file, or default\n"
                       "                        paster.pid file)\n"),
            std::string::npos);
  EXPECT_NE(h.out.find("--workers=N"), std::string::npos);
  EXPECT_EQ(fails({"serve", "--he"}).code, 0);
  EXPECT_EQ(fails({"--help"}).code, 0);
  EXPECT_EQ(fails({"--version"}).out, "pasture 0.1\n");
  CliExit e = fails({});
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.err.find("pasture: error: no command given"), std::string::npos);
  e = fails({"server", "s.ini"});
  EXPECT_NE(e.err.find("pasture: error: unknown command 'server'"), std::string::npos);
  CommandLine c = ok({"inspect", "--json", "s.ini"});
  EXPECT_TRUE(c.json);
  EXPECT_FALSE(c.show_secrets);
  EXPECT_TRUE(ok({"inspect", "--show", "s.ini"}).show_secrets);  // abbreviable, as every long option
  EXPECT_EQ(fails({"check", "--show-secrets", "s.ini"}).code, 2);  // inspect's only: check never shows them
  EXPECT_EQ(ok({"convert", "s.ini#x", "a=1"}).load.config, "s.ini#x");
}

}  // namespace
}  // namespace pasture::master
