// Resolution beneath a root (worker/static_fs.h).
#include "worker/static_fs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace pasture::worker::files {
namespace {

using Symlinks = conf::StaticFiles::Symlinks;

// -1 unknown, 0 no (ENOSYS, or forced off), 1 yes.
int g_openat2 = -1;

constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
constexpr int kMaxLinks = 40;  // as the kernel's MAXSYMLINKS

int finish(int fd, struct stat* st) {
  if (fd < 0) return -errno;
  if (fstat(fd, st) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int via_openat2(int root_fd, const std::string& rel, Symlinks policy, struct stat* st) {
  open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = kOpenFlags;
  how.resolve = RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;
  if (policy == Symlinks::Off) how.resolve |= RESOLVE_NO_SYMLINKS;
  for (int tries = 0;; tries++) {
    long fd = syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how);
    // EAGAIN: a rename raced with the resolution (RESOLVE_BENEATH); retry.
    if (fd < 0 && errno == EAGAIN && tries < 8) continue;
    if (fd < 0 && errno == EINTR) continue;
    return finish((int)fd, st);
  }
}

// Splits `path` on '/', dropping empty and "." segments, onto the front of
// `todo` (which is consumed from the back).
void push_front(std::vector<std::string>& todo, std::string_view path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    if (!seg.empty() && seg != ".") parts.emplace_back(seg);
    i = j + 1;
  }
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_back(std::move(*it));
}

// Without openat2: one component at a time, each opened O_PATH|O_NOFOLLOW
// relative to its parent's descriptor, so a rename elsewhere cannot move
// the walk out of the root. A link is read and its target walked the same
// way from the link's directory; ".." pops a level and never above the root.
int walk(int root_fd, const std::string& rel, Symlinks policy, struct stat* st) {
  std::vector<int> dirs;  // open directories below the root, deepest last
  auto cur = [&] { return dirs.empty() ? root_fd : dirs.back(); };
  auto done = [&](int r) {
    for (int d : dirs) close(d);
    return r;
  };
  std::vector<std::string> todo;
  push_front(todo, rel);
  int links = 0;
  while (!todo.empty()) {
    std::string name = std::move(todo.back());
    todo.pop_back();
    if (name == "..") {
      if (dirs.empty()) return done(-EXDEV);  // above the root
      close(dirs.back());
      dirs.pop_back();
      continue;
    }
    int fd = openat(cur(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return done(-errno);
    struct stat s;
    if (fstat(fd, &s) != 0) {
      int e = errno;
      close(fd);
      return done(-e);
    }
    if (S_ISLNK(s.st_mode)) {
      char target[4096];
      ssize_t n = readlinkat(fd, "", target, sizeof target);
      close(fd);
      if (policy == Symlinks::Off) return done(-ELOOP);
      if (n <= 0 || n >= (ssize_t)sizeof target || ++links > kMaxLinks) return done(-ELOOP);
      std::string_view t(target, (size_t)n);
      if (t.front() == '/') return done(-EXDEV);  // absolute: out of the root (RESOLVE_BENEATH too)
      push_front(todo, t);
      continue;
    }
    if (todo.empty()) {
      close(fd);
      if (!S_ISREG(s.st_mode) && !S_ISDIR(s.st_mode)) return done(-ENOENT);
      // The last component for reading, still without following a link
      // (one that appeared since the O_PATH open is refused).
      int r = openat(cur(), name.c_str(), kOpenFlags | O_NOFOLLOW);
      r = finish(r, st);
      if (r >= 0 && (st->st_ino != s.st_ino || st->st_dev != s.st_dev)) {
        close(r);
        r = -EAGAIN;
      }
      return done(r);
    }
    if (!S_ISDIR(s.st_mode)) {
      close(fd);
      return done(-ENOTDIR);
    }
    dirs.push_back(fd);
  }
  // An empty path: the root itself.
  int r = openat(cur(), ".", kOpenFlags | O_DIRECTORY);
  return done(finish(r, st));
}

}  // namespace

void use_openat2(bool on) { g_openat2 = on ? -1 : 0; }

int open_beneath(int root_fd, std::string_view rel_view, Symlinks policy, struct stat* st) {
  std::string rel(rel_view);
  if (rel.empty()) rel = ".";
  // Anywhere: the kernel's own resolution (rel holds no "..": only links lead out).
  if (policy == Symlinks::On) return finish(openat(root_fd, rel.c_str(), kOpenFlags), st);
  if (g_openat2 < 0) {
    const char* no = getenv("PASTURE_NO_OPENAT2");
    if (no && *no && *no != '0') g_openat2 = 0;
  }
  if (g_openat2 != 0) {
    int r = via_openat2(root_fd, rel, policy, st);
    if (r != -ENOSYS) {
      g_openat2 = 1;
      return r;
    }
    g_openat2 = 0;
  }
  return walk(root_fd, rel, policy, st);
}

}  // namespace pasture::worker::files
