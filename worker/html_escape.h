// HTML text and attribute escaping for the pages pasture writes itself (the
// status page, directory listings).
#pragma once

#include <string>
#include <string_view>

namespace pasture::worker {

inline void append_html_escaped(std::string& o, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
}

}  // namespace pasture::worker
