// Directory listings of egg:pasture#static (`autoindex = on`): nginx's
// autoindex page (HTML, directories first, then files, by name; modification
// time in UTC and exact size). No libuv, no HTTP: a directory in, a page out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pasture::worker::files {

// A listing is read on the worker's loop and held whole by its answer (an
// HTTP/2 stream whose window is shut keeps it): at most kMaxListed entries
// are read (readdir stops there) and at most kMaxPage bytes written; a line
// says the listing is cut. Found by review: a 400,000-entry directory read
// whole per request, 100 at a time over one HTTP/2 connection, stalled the
// loop past worker_timeout.
constexpr size_t kMaxListed = 2000;
constexpr size_t kMaxRead = 10000;  // entries read, hidden ones too
constexpr size_t kMaxPage = 256 * 1024;
// Loop time a worker spends making listings, per second: past it, a listing
// not in the cache is a 503 with Retry-After (found by review: 17 or more
// large directories asked in turn defeated the cache and froze the loop).
constexpr uint64_t kListingBudgetUs = 200 * 1000;

// The page for the directory open as `dir_fd` (consumed: closed here),
// titled with the request's decoded path `url_path` (ending in '/').
// Entries whose names begin with '.' are left out unless `dotfiles`.
// Entries are not followed: a symbolic link is listed with its own size and
// time (what it names is judged when it is asked for). False when the
// directory cannot be read (`*page` untouched).
bool autoindex_page(int dir_fd, std::string_view url_path, bool dotfiles, std::string* page);

// The pages last used, per worker, each trusted for kValidMs as the
// open-file cache's entries are: the same listing asked again and again
// (100 streams of one connection) is read once a second. The least recently
// used goes first.
class ListingCache {
 public:
  using Page = std::shared_ptr<const std::string>;
  Page find(const std::string& key, uint64_t now_ms);
  void put(const std::string& key, Page page, uint64_t now_ms);

 private:
  struct Entry {
    std::string key;
    Page page;
    uint64_t made_ms = 0;
  };
  static constexpr size_t kEntries = 64;
  static constexpr uint64_t kValidMs = 1000;
  std::vector<Entry> entries_;  // most recently used last
};
ListingCache& listing_cache();

}  // namespace pasture::worker::files
