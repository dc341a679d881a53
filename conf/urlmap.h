// paste.urlmap's key handling: parse_path_expression, URLMap.normalize_url
// and the entry order of URLMap (dedup + sort_apps). Shared by inspect (dump)
// and site_builder (Handler::entries).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pasture::conf::urlmap {

// "domain example.com port 8080 /api" -> "http://example.com:8080/api";
// "/api" -> "/api". Throws py::Error ValueError with paste.urlmap's message.
std::string parse_path_expression(const std::string& key);

struct Normalized {
  std::optional<std::string> domain;  // with ":port" if given; nullopt = any
  std::string path;                   // "//" collapsed, trailing "/" stripped ("" for "/")
  bool operator==(const Normalized& o) const { return domain == o.domain && path == o.path; }
};

// URLMap.normalize_url. Throws py::Error AssertionError for a key that is
// neither "/..." nor "http(s)://...".
Normalized normalize_url(const std::string& url);

// Feeds `entries` (in config order) through URLMap.__setitem__: a later equal
// (domain, path) replaces the earlier one, then sort_apps order (domain
// entries by domain string, longer path first; domain-less last, longer path
// first). Returns indices into `entries`.
std::vector<size_t> dispatch_order(const std::vector<Normalized>& entries);

}  // namespace pasture::conf::urlmap
