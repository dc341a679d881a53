// Media types by file name, from /etc/mime.types (Debian's media-types,
// the file Python's mimetypes and so Paste read too), loaded once per
// process on first use.
#pragma once

#include <string>
#include <string_view>

namespace pasture::worker::files {

struct MediaType {
  std::string_view type;      // "" when the name says nothing
  std::string_view encoding;  // Paste only: "gzip" for x.txt.gz, ...; else ""
};

// What Python's mimetypes.guess_type(name) answers (Paste's FileApp): the
// suffix map (.tgz = .tar.gz, .svgz = .svg.gz), then a case-sensitive
// encoding suffix (.gz .Z .bz2 .xz .br), then the type of the extension
// before it, case-insensitive.
MediaType guess_paste(std::string_view name);
// nginx's way: the type of the last extension, case-insensitive; no encoding.
std::string_view guess_plain(std::string_view name);

// Where the table is read from (tests); the next lookup reloads it.
void set_mime_file(const std::string& path);

}  // namespace pasture::worker::files
