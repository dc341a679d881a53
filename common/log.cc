#include "common/log.h"

#include <fcntl.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <ctime>
#include <vector>
#include <unistd.h>

namespace pasture::log {
namespace {

Level g_level = Level::Info;
char g_role[32] = "master";
std::vector<std::string> g_secrets;  // add_secret()
constexpr size_t kMinSecret = 4;

// `line` with every secret replaced by "***".
std::string scrub(std::string line) {
  for (const std::string& s : g_secrets)
    for (size_t at = line.find(s); at != std::string::npos; at = line.find(s, at + 3)) line.replace(at, s.size(), "***");
  return line;
}

const char* level_name(Level l) {
  switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Notice: return "notice";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "?";
}

}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }
void set_role(const char* role) { snprintf(g_role, sizeof g_role, "%s", role); }

void add_secret(const std::string& value) {
  if (value.size() < kMinSecret) return;
  for (const std::string& s : g_secrets)
    if (s == value) return;
  g_secrets.push_back(value);
}

void vlogf(Level l, const char* fmt, va_list ap) {
  if (l < g_level) return;
  char buf[2048];
  time_t now = time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  int n = (int)strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  n += snprintf(buf + n, sizeof buf - n, " pasture[%d] %s %s: ", (int)getpid(), g_role,
                level_name(l));
  char* out = buf;
  std::string big;  // a message longer than buf (a Python traceback): whole, in one write
  if (n < (int)sizeof buf) {
    va_list again;
    va_copy(again, ap);
    int m = vsnprintf(buf + n, sizeof buf - n, fmt, ap);
    if (m >= 0 && n + m > (int)sizeof buf - 2) {
      big.assign(buf, (size_t)n);
      big.resize((size_t)n + (size_t)m + 1);
      vsnprintf(big.data() + n, (size_t)m + 1, fmt, again);
      big.resize((size_t)n + (size_t)m);
      big.push_back('\n');
      out = big.data();
    }
    va_end(again);
    n = m < 0 ? n : n + m;
  }
  if (out == buf) {
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
  } else {
    n = (int)big.size();
  }
  if (!g_secrets.empty()) {
    big = scrub(std::string(out, (size_t)n));
    out = big.data();
    n = (int)big.size();
  }
  // One write(2) per line so lines from several processes never interleave.
  ssize_t r = write(STDERR_FILENO, out, n);
  (void)r;
}

void logf(Level l, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlogf(l, fmt, ap);
  va_end(ap);
}

int open_no_follow(const char* path, int flags, unsigned mode) {
  bool system_link = (strncmp(path, "/dev/", 5) == 0 || strncmp(path, "/proc/", 6) == 0) &&
                     strstr(path, "/..") == nullptr;  // not /dev/../var/...
  return ::open(path, flags | O_CLOEXEC | (system_link ? 0 : O_NOFOLLOW), (mode_t)mode);
}

}  // namespace pasture::log
