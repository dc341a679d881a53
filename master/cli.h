// The command line, parsed the way `paster serve` (optparse) parses it:
// long options abbreviable and given as --opt=V or --opt V, short options
// clustered (-vq, -nNAME), options anywhere among the arguments, `--` ends
// them; the same error texts and exit codes (pastedeploy.md §8).
//
//   pasture serve [options] CONFIG[#name] [start|stop|restart|status] [var=value ...]
//   pasture check [options] CONFIG[#name] [var=value ...]
//   pasture inspect [--json] [--show-secrets] CONFIG [var=value ...]
//   pasture convert [options] CONFIG[#name] [var=value ...]
//
// Pure: nothing is printed and nothing exits here, so unit tests can drive it.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "conf/model.h"
#include "master/master.h"

namespace pasture::master {

struct CommandLine {
  std::string cmd;  // serve, check, inspect, convert, ctl, status
  conf::LoadOptions load;
  ServeOptions serve;
  bool json = false;        // inspect --json
  bool show_secrets = false;  // inspect --show-secrets
  bool check_only = false;  // serve --check
  std::vector<std::string> ctl_words;  // ctl: the command's words
};

// Parsing ended the run: print `out` on stdout, `err` on stderr, exit `code`
// (0 for --help/--version, 2 for bad input as paster does).
struct CliExit {
  int code = 0;
  std::string out;
  std::string err;
};

struct CliEnv {
  std::string config_file;  // $PASTE_CONFIG_FILE: inserted as the first argument
  bool default_quiet = false;  // $PASTE_DEFAULT_QUIET non-empty: verbosity 0
};

// `args` is argv without argv[0].
std::variant<CommandLine, CliExit> parse_command_line(const std::vector<std::string>& args, const CliEnv& env);

// The serve options given whose behaviour master/ does not implement yet
// ("--daemon, --pid-file"), or "" when there are none.
std::string pending_options(const ServeOptions& s);

// The environment variables parse_command_line reads, from the process.
CliEnv cli_env_from_process();

}  // namespace pasture::master
