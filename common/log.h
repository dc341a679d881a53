// Process-wide logging to stderr (or a file, once reopened).
//
// One line per event: "2026-11-25T17:55:09Z pasture[1234] LEVEL: message".
// Safe to call from any process after fork; never allocates on the fast path
// beyond the formatting buffer on the stack.
#pragma once

#include <cstdarg>
#include <string>

namespace pasture::log {

enum class Level { Debug = 0, Info = 1, Notice = 2, Warn = 3, Error = 4 };

void set_level(Level l);
Level level();
// Process role shown in each line ("master", "worker 2").
void set_role(const char* role);

// open(2) for a log or pid file that pasture (often root) creates in a
// directory the service user may write: O_NOFOLLOW | O_CLOEXEC, so a symbolic
// link planted there cannot steer the open to another file. Paths under
// /dev/ and /proc/ (/dev/stdout, /dev/fd/N, /proc/self/fd/N) are the system's
// links, not the user's, and are followed. Returns the fd or -1 (errno).
int open_no_follow(const char* path, int flags, unsigned mode = 0);

// A secret value (cookie_secret, ...) that no log line may show: each line
// has it replaced by "***". Values shorter than 4 characters are ignored
// (masking them would garble every line, and they protect nothing). Call
// from one thread only (the master's, before forking).
void add_secret(const std::string& value);

void logf(Level l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void vlogf(Level l, const char* fmt, va_list ap);

#define PLOG_DEBUG(...)                                                     \
  do {                                                                      \
    if (::pasture::log::level() <= ::pasture::log::Level::Debug)            \
      ::pasture::log::logf(::pasture::log::Level::Debug, __VA_ARGS__);     \
  } while (0)
#define PLOG_INFO(...) ::pasture::log::logf(::pasture::log::Level::Info, __VA_ARGS__)
#define PLOG_NOTICE(...) ::pasture::log::logf(::pasture::log::Level::Notice, __VA_ARGS__)
#define PLOG_WARN(...) ::pasture::log::logf(::pasture::log::Level::Warn, __VA_ARGS__)
#define PLOG_ERROR(...) ::pasture::log::logf(::pasture::log::Level::Error, __VA_ARGS__)

}  // namespace pasture::log
