// Directory listings of egg:pasture#static (`autoindex = on`): nginx's
// autoindex page (HTML, directories first, then files, by name; modification
// time in UTC and exact size). No libuv, no HTTP: a directory in, a page out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pasture::worker::files {

// At most this many entries are listed (a line says how many were left
// out): the listing is read on the worker's loop.
constexpr size_t kMaxListed = 10000;

// The page for the directory open as `dir_fd` (consumed: closed here),
// titled with the request's decoded path `url_path` (ending in '/').
// Entries whose names begin with '.' are left out unless `dotfiles`.
// Entries are not followed: a symbolic link is listed with its own size and
// time (what it names is judged when it is asked for). False when the
// directory cannot be read (`*page` untouched).
bool autoindex_page(int dir_fd, std::string_view url_path, bool dotfiles, std::string* page);

}  // namespace pasture::worker::files
