// The open-file cache (worker/static_cache.h).
#include "worker/static_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "worker/static_fs.h"
#include "worker/static_http.h"

namespace pasture::worker::files {
namespace {

int64_t mtime_ns_of(const struct stat& st) { return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec; }

// A regular file's OpenFile from its descriptor (taken over).
std::shared_ptr<OpenFile> make_file(int fd, const struct stat& st, bool paste) {
  auto f = std::make_shared<OpenFile>();
  f->fd = fd;
  f->size = (uint64_t)st.st_size;
  f->mtime_ns = mtime_ns_of(st);
  f->mtime_s = st.st_mtim.tv_sec;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->etag = paste ? paste_etag(f->mtime_ns, f->size) : nginx_etag(f->mtime_s, f->size);
  f->last_modified = http_date(f->mtime_s);
  if (f->size <= kSmallFile) {
    f->content.resize(f->size);
    size_t got = 0;
    while (got < f->size) {
      ssize_t r = pread(fd, f->content.data() + got, f->size - got, (off_t)got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += (size_t)r;
    }
    if (got == f->size) {
      f->small = true;
      close(fd);
      f->fd = -1;
    } else {
      f->content.clear();  // shrank meanwhile: served from the descriptor, which sees it
    }
  }
  return f;
}

bool same(const OpenFile& f, const struct stat& st) {
  return f.dev == st.st_dev && f.ino == st.st_ino && f.size == (uint64_t)st.st_size && f.mtime_ns == mtime_ns_of(st);
}

Found found_of(int err) {
  return err == -EACCES || err == -EPERM ? Found::kForbidden : Found::kMissing;
}

}  // namespace

OpenFile::~OpenFile() {
  if (fd >= 0) close(fd);
}

Cache& cache() {
  static Cache* c = new Cache;  // lives as long as the worker process
  return *c;
}

int Cache::root_fd(const conf::Handler& hd, int hi, uint64_t now_ms) {
  Root& r = roots_[hi];
  if (r.fd >= 0 && now_ms - r.checked_ms < kValidMs) return r.fd;
  struct stat st;
  if (r.fd >= 0 && stat(hd.files.root.c_str(), &st) == 0 && st.st_dev == r.dev && st.st_ino == r.ino) {
    r.checked_ms = now_ms;
    return r.fd;
  }
  if (r.fd >= 0) close(r.fd);
  r.fd = ::open(hd.files.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (r.fd < 0) {
    PLOG_WARN("static [%s]: open(%s): %s", hd.name.c_str(), hd.files.root.c_str(), strerror(errno));
    return -1;
  }
  fstat(r.fd, &st);
  r.dev = st.st_dev;
  r.ino = st.st_ino;
  r.checked_ms = now_ms;
  // Entries under the old root describe another tree.
  std::string prefix = std::to_string(hi) + '\0';
  for (auto it = map_.begin(); it != map_.end();)
    it = it->first.compare(0, prefix.size(), prefix) == 0 ? map_.erase(it) : std::next(it);
  return r.fd;
}

void Cache::evict() {
  auto victim = map_.begin();
  for (auto it = map_.begin(); it != map_.end(); ++it)
    if (it->second.used < victim->second.used) victim = it;
  if (victim != map_.end()) map_.erase(victim);
}

int Cache::open_dir(const conf::Handler& hd, int hi, std::string_view rel, uint64_t now_ms) {
  int root = root_fd(hd, hi, now_ms);
  if (root < 0) return -ENOENT;
  while (!rel.empty() && rel.back() == '/') rel.remove_suffix(1);
  if (rel.empty()) {  // a description of its own: readdir's position is not the root's
    int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
  }
  struct stat st;
  int fd = open_beneath(root, rel, hd.files.symlinks, &st);
  if (fd < 0) return fd;
  if (!S_ISDIR(st.st_mode)) {
    close(fd);
    return -ENOTDIR;
  }
  return fd;
}

Found Cache::open(const conf::Handler& hd, int hi, std::string_view rel, uint64_t now_ms, FilePtr* out) {
  int root = root_fd(hd, hi, now_ms);
  if (root < 0) return Found::kMissing;
  std::string key = std::to_string(hi);
  key += '\0';
  key.append(rel.data(), rel.size());
  auto it = map_.find(key);
  if (it != map_.end() && now_ms - it->second.validated_ms < kValidMs) {
    it->second.used = ++tick_;
    *out = it->second.file;
    return Found::kFile;
  }
  struct stat st;
  int fd = open_beneath(root, rel, hd.files.symlinks, &st);
  if (fd < 0) {
    if (it != map_.end()) map_.erase(it);
    return found_of(fd);
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    if (it != map_.end()) map_.erase(it);
    return Found::kDirectory;
  }
  if (!S_ISREG(st.st_mode)) {  // a FIFO, socket or device: never served
    close(fd);
    if (it != map_.end()) map_.erase(it);
    return Found::kMissing;
  }
  if (it != map_.end() && same(*it->second.file, st)) {
    close(fd);
    it->second.validated_ms = now_ms;
    it->second.used = ++tick_;
    *out = it->second.file;
    return Found::kFile;
  }
  FilePtr f = make_file(fd, st, hd.files.paste);
  if (it == map_.end()) {
    if (map_.size() >= kEntries) evict();
    it = map_.emplace(std::move(key), Entry{}).first;
  }
  it->second = Entry{f, now_ms, ++tick_};
  *out = std::move(f);
  return Found::kFile;
}

}  // namespace pasture::worker::files
