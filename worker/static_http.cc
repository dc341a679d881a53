// Validators, conditionals and ranges of a static file (worker/static_http.h).
#include "worker/static_http.h"

#include <charconv>
#include <cstdio>
#include <cstring>

namespace pasture::worker::files {
namespace {

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ieq(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Calls f(item) for each comma-separated, trimmed, non-empty item.
template <class F>
void each_item(std::string_view list, F f) {
  while (!list.empty()) {
    size_t c = list.find(',');
    std::string_view item = trim(list.substr(0, c));
    if (!item.empty() && !f(item)) return;
    if (c == std::string_view::npos) break;
    list.remove_prefix(c + 1);
  }
}

bool parse_u64(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 19) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return std::from_chars(s.data(), s.data() + s.size(), *v).ec == std::errc();
}

int month_of(const char* m) {
  for (int i = 0; i < 12; i++)
    if (strncmp(m, kMonths[i], 3) == 0) return i;
  return -1;
}

}  // namespace

std::string http_date(time_t t) {
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
           kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

time_t parse_http_date(std::string_view s) {
  std::string v(trim(s));
  struct tm tm;
  std::memset(&tm, 0, sizeof tm);
  char wd[16], mon[4];
  int day, year, h, m, sec;
  char tail[8] = {0};
  if (sscanf(v.c_str(), "%3s, %2d %3s %4d %2d:%2d:%2d %5s", wd, &day, mon, &year, &h, &m, &sec, tail) == 8) {
    // IMF-fixdate
  } else if (sscanf(v.c_str(), "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d %3s", wd, &day, mon, &year, &h, &m, &sec,
                    tail) == 8) {
    year += year < 70 ? 2000 : 1900;  // RFC 850: two digits (RFC 9110 5.6.7's 50-year rule, roughly)
  } else if (sscanf(v.c_str(), "%3s %3s %2d %2d:%2d:%2d %4d", wd, mon, &day, &h, &m, &sec, &year) == 7) {
    std::strcpy(tail, "GMT");  // asctime
  } else {
    return -1;
  }
  int mo = month_of(mon);
  // Paste's own Last-Modified says "-0000" (email.utils.formatdate): a
  // client may send it back; the same instant as GMT.
  if (strcmp(tail, "-0000") == 0 || strcmp(tail, "+0000") == 0) std::strcpy(tail, "GMT");
  if (mo < 0 || strcmp(tail, "GMT") != 0 || day < 1 || day > 31 || h > 23 || m > 59 || sec > 60) return -1;
  tm.tm_year = year - 1900;
  tm.tm_mon = mo;
  tm.tm_mday = day;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  return timegm(&tm);
}

std::string paste_etag(int64_t mtime_ns, uint64_t size) {
  // Python's repr of the float st_mtime: the shortest digits that read back
  // as the same double, in fixed notation for these magnitudes, ".0" when
  // integral.
  double t = (double)(mtime_ns / 1000000000) + (double)(mtime_ns % 1000000000) * 1e-9;
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, t, std::chars_format::fixed);
  std::string f(buf, r.ptr);
  if (f.find('.') == std::string::npos) f += ".0";
  return "\"" + f + "-" + std::to_string(size) + "\"";
}

std::string nginx_etag(int64_t mtime_s, uint64_t size) {
  char buf[64];
  snprintf(buf, sizeof buf, "\"%llx-%llx\"", (unsigned long long)mtime_s, (unsigned long long)size);
  return buf;
}

bool none_match(std::string_view inm, std::string_view etag) {
  auto opaque = [](std::string_view t) {
    if (t.size() > 2 && (t[0] == 'W' || t[0] == 'w') && t[1] == '/') t.remove_prefix(2);
    return t;
  };
  bool hit = false;
  each_item(inm, [&](std::string_view item) {
    if (item == "*" || opaque(item) == opaque(etag)) hit = true;
    return !hit;
  });
  return hit;
}

bool strong_match(std::string_view im, std::string_view etag) {
  bool weak = etag.size() > 2 && (etag[0] == 'W' || etag[0] == 'w') && etag[1] == '/';
  bool hit = false;
  each_item(im, [&](std::string_view item) {
    if (item == "*" || (!weak && item == etag)) hit = true;
    return !hit;
  });
  return hit;
}

RangeResult parse_range(std::string_view range, uint64_t size, std::vector<ByteRange>* out, size_t max_ranges) {
  out->clear();
  range = trim(range);
  size_t eq = range.find('=');
  if (eq == std::string_view::npos || !ieq(trim(range.substr(0, eq)), "bytes")) return RangeResult::kIgnore;
  bool syntax_ok = true;
  size_t count = 0;
  uint64_t total = 0;
  each_item(range.substr(eq + 1), [&](std::string_view spec) {
    if (++count > max_ranges) {
      syntax_ok = false;
      return false;
    }
    size_t dash = spec.find('-');
    if (dash == std::string_view::npos) {
      syntax_ok = false;
      return false;
    }
    std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
    uint64_t first = 0, last = 0;
    if (a.empty()) {  // suffix: the last b bytes
      if (!parse_u64(b, &last)) {
        syntax_ok = false;
        return false;
      }
      if (last == 0 || size == 0) return true;  // unsatisfiable
      out->push_back({last >= size ? 0 : size - last, size - 1});
    } else {
      if (!parse_u64(a, &first) || (!b.empty() && !parse_u64(b, &last))) {
        syntax_ok = false;
        return false;
      }
      // last < first is an invalid range-spec (RFC 9110 14.1.1): counted as
      // one that cannot be satisfied, as Paste and nginx do (416 when alone).
      if (first >= size || (!b.empty() && last < first)) return true;
      out->push_back({first, b.empty() || last >= size ? size - 1 : last});
    }
    total += out->back().size();
    return true;
  });
  if (!syntax_ok || count == 0 || total > 2 * size + 1024) {
    out->clear();
    return RangeResult::kIgnore;
  }
  return out->empty() ? RangeResult::kUnsatisfiable : RangeResult::kSatisfiable;
}

bool if_range_holds(std::string_view if_range, std::string_view etag, time_t last_modified) {
  std::string_view v = trim(if_range);
  if (v.empty()) return true;
  if (v.front() == '"') return v == etag && etag.substr(0, 2) != "W/";
  if (v.substr(0, 2) == "W/") return false;  // a weak tag never matches (strong comparison)
  time_t t = parse_http_date(v);
  return t >= 0 && t == last_modified;
}

bool accepts_encoding(std::string_view ae, std::string_view coding) {
  bool ok = false, named = false, star = false;
  each_item(ae, [&](std::string_view item) {
    size_t semi = item.find(';');
    std::string_view name = trim(item.substr(0, semi));
    bool zero = false;
    if (semi != std::string_view::npos) {
      std::string_view p = trim(item.substr(semi + 1));
      if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
        p = trim(p.substr(2));
        zero = true;
        for (char c : p)
          if (c != '0' && c != '.') zero = false;
      }
    }
    if (ieq(name, coding)) {
      named = true;
      ok = !zero;
    } else if (name == "*" && !named) {
      star = !zero;
    }
    return true;
  });
  return named ? ok : star;
}

}  // namespace pasture::worker::files
