// Per-worker open-file cache of the static-files apps. One Cache per
// process (a worker has one loop; nothing here is shared across processes).
//
// An entry holds an opened file (descriptor, or the whole content when it
// is at most kSmallFile bytes, its descriptor then closed) with its
// validators, keyed by (handler, path under the root). It is trusted for
// kValidMs; a lookup after that opens the path again (the same resolution
// rules) and keeps the entry only if device, inode, size and mtime (ns)
// are unchanged, so a replaced or rewritten file is seen within a second
// (nginx's open_file_cache_valid, at 1 s). At most kEntries entries (the
// least recently used goes); a response in progress holds its OpenFile by
// shared_ptr, so eviction never closes a descriptor under it. Misses and
// directories are not cached. The document root itself is held open and
// re-checked (stat of its path) at the same interval, so a deploy that
// swaps a symlinked root (`current -> releases/N`) is followed.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "conf/model.h"

namespace pasture::worker::files {

struct OpenFile {
  OpenFile() = default;
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  ~OpenFile();
  int fd = -1;           // -1 when `content` holds the whole file
  bool small = false;    // content holds it
  std::string content;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  time_t mtime_s = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string etag;           // quoted
  std::string last_modified;  // IMF-fixdate
};
using FilePtr = std::shared_ptr<const OpenFile>;

constexpr size_t kEntries = 256;
constexpr uint64_t kSmallFile = 16 * 1024;
constexpr uint64_t kValidMs = 1000;

// What open() found.
enum class Found : uint8_t { kFile, kDirectory, kMissing, kForbidden };

class Cache {
 public:
  // `rel` beneath `hd`'s document root (handler index `hi`), under its
  // symlink policy; `now_ms` the loop's clock. kFile sets `*out`.
  Found open(const conf::Handler& hd, int hi, std::string_view rel, uint64_t now_ms, FilePtr* out);
  // The directory `rel` ("" = the root; a trailing '/' ignored) opened for
  // reading under the same rules (autoindex): its descriptor, or -errno
  // (-ENOTDIR for a file). Not cached.
  int open_dir(const conf::Handler& hd, int hi, std::string_view rel, uint64_t now_ms);
  size_t size() const { return map_.size(); }

 private:
  struct Entry {
    FilePtr file;
    uint64_t validated_ms = 0;
    uint64_t used = 0;
  };
  struct Root {
    int fd = -1;
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t checked_ms = 0;
  };
  int root_fd(const conf::Handler& hd, int hi, uint64_t now_ms);
  void evict();
  std::unordered_map<std::string, Entry> map_;
  std::unordered_map<int, Root> roots_;
  uint64_t tick_ = 0;
};

Cache& cache();

}  // namespace pasture::worker::files
