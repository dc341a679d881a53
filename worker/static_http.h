// The HTTP of a static file, without I/O: validators (ETag, Last-Modified),
// the conditional request fields (RFC 9110 13), byte ranges (RFC 9110 14)
// and Accept-Encoding. Pure functions over strings and numbers, unit-tested.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace pasture::worker::files {

// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
std::string http_date(time_t t);
// IMF-fixdate, RFC 850 or asctime form (RFC 9110 5.6.7); -1 if none.
time_t parse_http_date(std::string_view s);

// Paste's FileApp ETag: '"%s-%s"' % (st_mtime, size), st_mtime as Python
// prints a float ("1733000000.1234567", "1733000000.0").
std::string paste_etag(int64_t mtime_ns, uint64_t size);
// nginx's: "<mtime seconds in hex>-<size in hex>".
std::string nginx_etag(int64_t mtime_s, uint64_t size);

// If-None-Match (a list of entity tags, or "*") against `etag`, weak
// comparison (RFC 9110 13.1.2).
bool none_match(std::string_view if_none_match, std::string_view etag);
// If-Match (a list of entity tags, or "*") against `etag`, strong
// comparison: a weak tag never matches (RFC 9110 13.1.1).
bool strong_match(std::string_view if_match, std::string_view etag);

struct ByteRange {
  uint64_t first = 0, last = 0;  // inclusive
  uint64_t size() const { return last - first + 1; }
};
enum class RangeResult : uint8_t {
  kIgnore,         // no Range, another unit, a syntax error, too many ranges: the whole file (200)
  kSatisfiable,    // `out` holds one or more ranges (206)
  kUnsatisfiable,  // none of them overlaps the file (416)
};
// `Range: bytes=0-99,200-,-50` over a file of `size` bytes. Ranges are kept
// in the order asked, clipped to the file; unsatisfiable ones (and those
// whose last is before their first) dropped.
// More than `max_ranges` (or a list whose ranges add up to more than twice
// the file, a waste-of-bandwidth attack) is kIgnore.
RangeResult parse_range(std::string_view range, uint64_t size, std::vector<ByteRange>* out, size_t max_ranges = 16);

// If-Range (RFC 9110 13.1.5): the range applies when it names this
// representation: a strong ETag equal to `etag`, or a date equal to
// `last_modified` (to the second).
bool if_range_holds(std::string_view if_range, std::string_view etag, time_t last_modified);

// Accept-Encoding allows `coding` ("gzip", "br"): listed (or "*") with q > 0.
bool accepts_encoding(std::string_view accept_encoding, std::string_view coding);

}  // namespace pasture::worker::files
