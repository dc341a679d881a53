// What the hash balancer hashes (`hash_key =`), and pure helpers that pull it
// out of a request. The worker extracts the key once per request and hands it
// to the balancer in RequestView::hash_key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pasture::lb {

enum class HashKeyKind : uint8_t {
  RemoteAddr,  // remote_addr: the client address, text
  Uri,         // uri: the request target as received, path and query
  Path,        // path: the target without the query
  Header,      // header:NAME (case-insensitive name)
  Cookie,      // cookie:NAME
  Arg,         // arg:NAME, raw (not percent-decoded), like nginx's $arg_NAME
};

struct HashKeySpec {
  HashKeyKind kind = HashKeyKind::RemoteAddr;
  std::string name;  // Header/Cookie/Arg; empty otherwise
};

// Parses `remote_addr`, `uri`, `path`, `header:NAME`, `cookie:NAME`,
// `arg:NAME` (surrounding spaces ignored). Returns false, leaving *out
// untouched, for anything else, including an empty NAME.
bool parse_hash_key(std::string_view text, HashKeySpec* out);

// A non-owning reference to a callable `std::string_view(std::string_view
// name)` that returns a request header's value (empty if absent). Valid only
// while the referenced callable lives; pass a lambda straight in.
class HeaderLookup {
 public:
  template <class F>
  HeaderLookup(const F& f)  // NOLINT: implicit on purpose, like std::function_ref
      : obj_(&f), call_([](const void* o, std::string_view n) {
          return std::string_view((*static_cast<const F*>(o))(n));
        }) {}
  std::string_view operator()(std::string_view name) const { return call_(obj_, name); }

 private:
  const void* obj_;
  std::string_view (*call_)(const void*, std::string_view);
};

// The pieces of a request a key may come from.
struct KeySources {
  std::string_view remote_addr;    // client address, text, no port
  std::string_view uri;            // request target as forwarded (origin form, normalized path)
  std::string_view path;           // its path (worker: NormalPath::wire)
  std::string_view query;          // after '?', without it; empty if none
  std::string_view cookie_header;  // Cookie header value (several joined with "; ")
};

// The key `spec` selects. Empty when the request lacks it (no such header,
// cookie or argument); the balancer then falls back to round robin, as
// HAProxy's `balance hdr()`/`url_param` do. The result points into the
// sources or into the header value.
std::string_view extract_hash_key(const HashKeySpec& spec, const KeySources& src,
                                  HeaderLookup header);

// The value of cookie `name` in a Cookie header ("a=1; b=2"), surrounding
// double quotes removed; the first match wins. Empty if absent.
std::string_view find_cookie(std::string_view cookie_header, std::string_view name);

// The raw value of query argument `name` ("a=1&b=2"); the first match wins;
// `name` alone or `name=` give an empty value. Empty if absent.
std::string_view find_arg(std::string_view query, std::string_view name);

}  // namespace pasture::lb
