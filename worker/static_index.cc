// Directory listings (worker/static_index.h).
#include "worker/static_index.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

#include "worker/html_escape.h"

namespace pasture::worker::files {
namespace {

struct Entry {
  std::string name;
  bool dir = false;
  uint64_t size = 0;
  time_t mtime = 0;
};

// A name as one path segment of an href: everything but unreserved
// characters percent-encoded (so '?', '#', ':' and '%' in names stay names).
void href_escape(std::string& o, std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '.' || c == '_' || c == '~';
    if (plain) {
      o += (char)c;
    } else {
      o += '%';
      o += kHex[c >> 4];
      o += kHex[c & 15];
    }
  }
}

// Characters of a UTF-8 string (continuation bytes not counted), for the
// column nginx pads names to.
size_t width(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

bool autoindex_page(int dir_fd, std::string_view url_path, bool dotfiles, std::string* page) {
  DIR* d = fdopendir(dir_fd);
  if (!d) {
    close(dir_fd);
    return false;
  }
  std::vector<Entry> entries;
  bool cut = false;
  size_t read = 0;
  while (dirent* e = readdir(d)) {
    if (++read > kMaxRead) {
      cut = true;
      break;
    }
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    if (name[0] == '.' && !dotfiles) continue;
    if (entries.size() >= kMaxListed) {
      cut = true;  // the rest is not read
      break;
    }
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
    entries.push_back({std::string(name), S_ISDIR(st.st_mode), (uint64_t)st.st_size, st.st_mtime});
  }
  closedir(d);
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.dir != b.dir) return a.dir;
    return a.name < b.name;
  });
  std::string& o = *page;
  o.clear();
  o += "<html>\r\n<head><title>Index of ";
  append_html_escaped(o, url_path);
  o += "</title></head>\r\n<body>\r\n<h1>Index of ";
  append_html_escaped(o, url_path);
  o += "</h1><hr><pre><a href=\"../\">../</a>\r\n";
  constexpr size_t kNameColumn = 50;  // nginx's: longer names are cut, "..>"
  for (const Entry& e : entries) {
    if (o.size() >= kMaxPage) {
      cut = true;
      break;
    }
    std::string shown = e.name;
    if (e.dir) shown += '/';
    size_t w = width(shown);
    if (w > kNameColumn) {
      // Cut at a character boundary, kNameColumn - 3 characters kept.
      size_t keep = 0, chars = 0;
      while (keep < shown.size() && chars < kNameColumn - 3) {
        keep++;
        while (keep < shown.size() && ((unsigned char)shown[keep] & 0xC0) == 0x80) keep++;
        chars++;
      }
      shown.resize(keep);
      shown += "..>";
      w = kNameColumn;
    }
    o += "<a href=\"";
    href_escape(o, e.name);
    if (e.dir) o += '/';
    o += "\">";
    append_html_escaped(o, shown);
    o += "</a>";
    o.append(kNameColumn + 1 - w, ' ');
    char when[32];
    struct tm tm;
    gmtime_r(&e.mtime, &tm);
    strftime(when, sizeof when, "%d-%b-%Y %H:%M", &tm);
    o += when;
    char size[32];
    if (e.dir)
      snprintf(size, sizeof size, "%20s", "-");
    else
      snprintf(size, sizeof size, "%20llu", (unsigned long long)e.size);
    o += ' ';
    o += size;
    o += "\r\n";
  }
  if (cut)
    o += "(the listing is cut: at most " + std::to_string(kMaxListed) + " entries, " + std::to_string(kMaxPage / 1024) +
         " KiB)\r\n";
  o += "</pre><hr></body>\r\n</html>\r\n";
  return true;
}

ListingCache::Page ListingCache::find(const std::string& key, uint64_t now_ms) {
  for (size_t i = 0; i < entries_.size(); i++) {
    if (entries_[i].key != key) continue;
    if (now_ms - entries_[i].made_ms >= kValidMs) {
      entries_.erase(entries_.begin() + (long)i);
      return nullptr;
    }
    Page p = entries_[i].page;
    if (i + 1 != entries_.size()) {  // most recently used last
      Entry e = std::move(entries_[i]);
      entries_.erase(entries_.begin() + (long)i);
      entries_.push_back(std::move(e));
    }
    return p;
  }
  return nullptr;
}

void ListingCache::put(const std::string& key, Page page, uint64_t now_ms) {
  for (size_t i = 0; i < entries_.size(); i++) {
    if (entries_[i].key == key) {
      entries_.erase(entries_.begin() + (long)i);
      break;
    }
  }
  if (entries_.size() >= kEntries) entries_.erase(entries_.begin());  // the least recently used
  entries_.push_back({key, std::move(page), now_ms});
}

ListingCache& listing_cache() {
  static ListingCache c;  // one per worker process (single-threaded loop)
  return c;
}

}  // namespace pasture::worker::files
