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
#include <variant>
#include <vector>

#include "common/log.h"
#include "conf/inspect.h"
#include "conf/load.h"
#include "master/cli.h"
#include "master/commands.h"
#include "master/master.h"

namespace {

using pasture::conf::LoadOptions;

using Args = pasture::master::CommandLine;

// master/cli.cc parses (paster serve's optparse rules); only its verdict is
// printed here.
Args parse_args(int argc, char** argv) {
  auto r = pasture::master::parse_command_line(std::vector<std::string>(argv + 1, argv + argc),
                                               pasture::master::cli_env_from_process());
  if (auto* e = std::get_if<pasture::master::CliExit>(&r)) {
    fputs(e->out.c_str(), stdout);
    fputs(e->err.c_str(), stderr);
    exit(e->code);
  }
  return std::get<Args>(std::move(r));
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (a.cmd == "serve" && !a.check_only) {
    std::string pending = pasture::master::pending_options(a.serve);
    if (!pending.empty()) {
      fprintf(stderr, "pasture serve: not implemented yet: %s\n", pending.c_str());
      return 2;
    }
  }
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
  if (a.cmd == "check" || a.check_only) return pasture::master::cmd_check(site, a.serve.workers);
  if (a.serve.verbosity >= 2) pasture::log::set_level(pasture::log::Level::Debug);
  if (a.serve.verbosity <= 0) pasture::log::set_level(pasture::log::Level::Warn);
  for (const auto& n : site.notices) PLOG_NOTICE("%s", n.c_str());
  if (a.serve.verbosity > 0) {
    printf("Starting server in PID %d.\n", (int)getpid());
    fflush(stdout);
  }
  std::vector<std::string> argv_copy(argv, argv + argc);
  pasture::master::Master m(a.load, std::move(site), a.serve, argv_copy);
  return m.run();
}
