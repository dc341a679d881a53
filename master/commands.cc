#include "master/commands.h"

#include <cstdio>

#include "conf/inspect.h"
#include "conf/load.h"

namespace pasture::master {

int cmd_check(const conf::Site& site) {
  printf("config: %s (app %s, server %s)\n", site.config_file.c_str(), site.app_name.c_str(),
         site.server_name.c_str());
  for (const auto& l : site.server.listen) printf("listen: %s\n", l.url().c_str());
  printf("workers: %d\n", site.server.workers);
  for (const auto& p : site.pools) {
    printf("pool %s:", p.name.c_str());
    for (const auto& s : p.servers) printf(" %s weight=%u", s.label().c_str(), s.weight);
    printf("\n");
  }
  for (const auto& n : site.notices) printf("notice: %s\n", n.c_str());
  return 0;
}

int cmd_inspect(const conf::LoadOptions& opts, bool json) {
  (void)json;
  std::string path = opts.config;
  if (path.rfind("config:", 0) == 0) path = path.substr(7);
  fputs(conf::inspect_json(path, opts.vars).c_str(), stdout);
  fputc('\n', stdout);
  return 0;
}

int cmd_convert(const conf::LoadOptions& opts) {
  (void)opts;
  fprintf(stderr, "pasture convert: not implemented yet\n");
  return 2;
}

}  // namespace pasture::master
