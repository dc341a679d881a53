#include "worker/filter_sink.h"

#include <strings.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/log.h"
#include "worker/runtime.h"

namespace pasture::worker {
namespace filters {
namespace {

bool ieq(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); i++)
    if (ieq(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Each field line of a head text: [start, end) of "Name: value\r\n".
template <typename F>
void each_field(std::string_view text, F&& f) {
  size_t pos = text.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < text.size()) {
    size_t start = pos + 2, end = text.find("\r\n", start);
    if (end == std::string_view::npos) return;
    std::string_view line = text.substr(start, end - start);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && f(start, end + 2, line.substr(0, colon), trim(line.substr(colon + 1))))
      return;
    pos = end;
  }
}

}  // namespace

bool accepts_gzip(std::string_view ae) {
  while (!ae.empty()) {
    size_t comma = ae.find(',');
    std::string_view item = ae.substr(0, comma);
    ae = comma == std::string_view::npos ? std::string_view() : ae.substr(comma + 1);
    size_t semi = item.find(';');
    std::string_view coding = trim(item.substr(0, semi));
    if (!ieq(coding, "gzip") && !ieq(coding, "x-gzip")) continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = item.substr(semi + 1);
    size_t q = params.find_first_of("qQ");
    if (q == std::string_view::npos) return true;
    std::string_view v = trim(params.substr(q + 1));
    if (v.empty() || v[0] != '=') return true;
    v = trim(v.substr(1));
    bool zero = !v.empty() && v[0] == '0';
    for (size_t i = 1; zero && i < v.size(); i++) zero = v[i] == '.' || v[i] == '0';
    return !zero;
  }
  return false;
}

bool find_field(std::string_view text, std::string_view name, std::string_view* value) {
  bool found = false;
  each_field(text, [&](size_t, size_t, std::string_view n, std::string_view v) {
    if (!ieq(n, name)) return false;
    *value = v;
    found = true;
    return true;
  });
  return found;
}

void remove_field(std::string& text, std::string_view name) {
  for (;;) {
    size_t s = 0, e = 0;
    each_field(text, [&](size_t start, size_t end, std::string_view n, std::string_view) {
      if (!ieq(n, name)) return false;
      s = start;
      e = end;
      return true;
    });
    if (e == 0) return;
    text.erase(s, e - s);
  }
}

void append_quoted(std::string& o, std::string_view s) {
  static const char hex[] = "0123456789ABCDEF";
  auto pct = [&](unsigned char c) {
    o.push_back('%');
    o.push_back(hex[c >> 4]);
    o.push_back(hex[c & 15]);
  };
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
        c == '-' || c == '~' || c == '/') {
      o.push_back((char)c);
    } else if (c < 0x80) {
      pct(c);
    } else {
      // PATH_INFO is latin-1 text in Python 3: quote() encodes that
      // character as UTF-8, two bytes.
      pct((unsigned char)(0xC0 | (c >> 6)));
      pct((unsigned char)(0x80 | (c & 0x3F)));
    }
  }
}

std::string translogger_time(time_t t) {
  // Python's time.timezone / altzone / daylight, computed once as the time
  // module does at import: from January's and July's offsets.
  static const int offset = [] {
    time_t now = time(nullptr);
    struct tm tm;
    localtime_r(&now, &tm);
    struct tm jan = {}, jul = {};
    jan.tm_year = jul.tm_year = tm.tm_year;
    jan.tm_mday = jul.tm_mday = 1;
    jul.tm_mon = 6;
    jan.tm_isdst = jul.tm_isdst = -1;
    time_t tj = mktime(&jan), tl = mktime(&jul);
    localtime_r(&tj, &jan);
    localtime_r(&tl, &jul);
    long janzone = -jan.tm_gmtoff, julzone = -jul.tm_gmtoff;
    long timezone_ = janzone < julzone ? julzone : janzone;
    long altzone = janzone < julzone ? janzone : julzone;
    bool daylight = janzone != julzone;
    double hours = (double)(daylight ? altzone : timezone_) / 60 / 60 * -100;
    return (int)hours;  // "%d" % float truncates
  }();
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%d/%b/%Y:%H:%M:%S ", &tm);
  char off[16];
  snprintf(off, sizeof off, offset >= 0 ? "+%04d" : "-%04d", offset >= 0 ? offset : -offset);
  return std::string(buf, n) + off;
}

std::string translogger_line(const std::string& format, const TransLogEntry& e, std::string_view status,
                             std::string_view bytes) {
  static const std::string kDefault =
      "%(REMOTE_ADDR)s - %(REMOTE_USER)s [%(time)s] \"%(REQUEST_METHOD)s %(REQUEST_URI)s %(HTTP_VERSION)s\" "
      "%(status)s %(bytes)s \"%(HTTP_REFERER)s\" \"%(HTTP_USER_AGENT)s\"";
  const std::string& fmt = format.empty() ? kDefault : format;
  std::string o;
  for (size_t i = 0; i < fmt.size(); i++) {
    if (fmt[i] != '%') {
      o.push_back(fmt[i]);
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '%') {
      o.push_back('%');
      i++;
      continue;
    }
    size_t close = fmt.find(')', i);
    if (i + 1 >= fmt.size() || fmt[i + 1] != '(' || close == std::string::npos) break;  // conf checked it
    std::string_view key(fmt.data() + i + 2, close - i - 2);
    size_t j = close + 1;
    bool left = j < fmt.size() && fmt[j] == '-';
    if (left) j++;
    size_t width = 0;
    while (j < fmt.size() && fmt[j] >= '0' && fmt[j] <= '9') width = width * 10 + (size_t)(fmt[j++] - '0');
    std::string_view v = key == "REMOTE_ADDR"       ? std::string_view(e.remote_addr)
                         : key == "REMOTE_USER"     ? std::string_view("-")
                         : key == "REQUEST_METHOD"  ? std::string_view(e.method)
                         : key == "REQUEST_URI"     ? std::string_view(e.request_uri)
                         : key == "HTTP_VERSION"    ? std::string_view(e.http_version)
                         : key == "time"            ? std::string_view(e.time)
                         : key == "status"          ? status
                         : key == "bytes"           ? bytes
                         : key == "HTTP_REFERER"    ? std::string_view(e.referer)
                                                    : std::string_view(e.user_agent);
    if (!left && v.size() < width) o.append(width - v.size(), ' ');
    o.append(v.data(), v.size());
    if (left && v.size() < width) o.append(width - v.size(), ' ');
    i = j;  // at the 's'
  }
  return o;
}

}  // namespace filters

namespace {

// Deflate states kept for the next response (deflateReset): a state is
// about 260 KiB, and allocating it per response costs mmap/munmap. One
// worker is one thread; at most kKeep idle ones are kept.
constexpr size_t kKeep = 8;
std::vector<z_stream*>& idle_streams() {
  static std::vector<z_stream*> v;
  return v;
}

z_stream* take_stream(int level) {
  auto& idle = idle_streams();
  if (!idle.empty()) {
    z_stream* z = idle.back();
    idle.pop_back();
    if (deflateReset(z) == Z_OK && deflateParams(z, level, Z_DEFAULT_STRATEGY) == Z_OK) return z;
    deflateEnd(z);
    delete z;
  }
  auto* z = new z_stream{};
  // 31: a 32 KiB window with the gzip wrapper (header and CRC trailer).
  if (deflateInit2(z, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    delete z;
    return nullptr;
  }
  return z;
}

void give_stream(z_stream* z) {
  auto& idle = idle_streams();
  if (idle.size() < kKeep) {
    idle.push_back(z);
    return;
  }
  deflateEnd(z);
  delete z;
}

constexpr size_t kOutStep = 16 * 1024;

}  // namespace

FilterSink::~FilterSink() { detach(); }

void FilterSink::attach(ResponseSink* inner, const conf::Filter* const* filters, int n, bool accepts_gzip,
                        bool head_request) {
  inner_ = inner;
  n_ = std::min<int>(n, (int)filters_.size());
  for (int i = 0; i < n_; i++) filters_[i] = filters[i];
  accepts_gzip_ = accepts_gzip;
  head_request_ = head_request;
  logs_.clear();
}

void FilterSink::detach() {
  end_gzip();
  zout_.clear();
  logs_.clear();
  n_ = 0;
}

void FilterSink::end_gzip() {
  if (!z_) return;
  give_stream(z_);
  z_ = nullptr;
}

void FilterSink::head(const ResponseHead& in) {
  ResponseHead h = in;
  for (int i = n_ - 1; i >= 0; i--) {
    const conf::Filter& f = *filters_[i];
    if (f.kind == conf::FilterKind::Gzip && !z_) {
      start_gzip(h, f);
    } else if (f.kind == conf::FilterKind::TransLogger) {
      for (const TransLogEntry& e : logs_)
        if (e.filter == &f) write_log(e, h);
    }
  }
  inner_->head(h);
}

bool FilterSink::start_gzip(ResponseHead& h, const conf::Filter& f) {
  std::string& t = *h.text;
  std::string_view ct, v;
  // paste/gzipper.py: text/* or application/*, no "zip" in the type, no Content-Encoding.
  if (!filters::find_field(t, "content-type", &ct)) return false;
  if (!(strncasecmp(ct.data(), "text/", 5) == 0 || strncasecmp(ct.data(), "application/", 12) == 0) ||
      filters::icontains(ct, "zip"))
    return false;
  if (filters::find_field(t, "content-encoding", &v) && !v.empty()) return false;
  // A compressible type: caches must key on Accept-Encoding (nginx's gzip_vary).
  if (!filters::find_field(t, "vary", &v) || !(filters::icontains(v, "accept-encoding") || v == "*"))
    t.append("Vary: Accept-Encoding\r\n");
  if (!accepts_gzip_ || head_request_ || h.no_body || h.status < 200 || h.status == 206) return false;
  if (filters::find_field(t, "content-range", &v)) return false;
  if (filters::find_field(t, "cache-control", &v) && filters::icontains(v, "no-transform")) return false;
  if (h.framing == ResponseHead::Length::kKnown && h.length < f.min_length) return false;
  z_ = take_stream(f.compress_level);
  if (!z_) return false;
  t.append("Content-Encoding: gzip\r\n");
  filters::remove_field(t, "accept-ranges");  // the compressed body has no byte ranges
  if (filters::find_field(t, "etag", &v) && !v.empty() && v[0] == '"') {
    // The representation changed: a strong validator is no longer true (nginx weakens it).
    std::string etag = "W/" + std::string(v);
    filters::remove_field(t, "etag");
    t.append("ETag: ").append(etag).append("\r\n");
  }
  h.framing = ResponseHead::Length::kChunked;
  h.length = 0;
  return true;
}

void FilterSink::write_log(const TransLogEntry& e, const ResponseHead& h) {
  const conf::Filter& f = *e.filter;
  if (f.logging_level < f.set_logger_level) return;
  char status[8], bytes[24];
  snprintf(status, sizeof status, "%d", h.status);
  if (h.framing == ResponseHead::Length::kKnown)
    snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)h.length);
  else
    snprintf(bytes, sizeof bytes, "-");
  AccessLog& log = f.setup_console_handler ? w_->console_log() : w_->access_log();
  if (!log.enabled()) return;
  std::string& out = log.buffer();
  out.append(filters::translogger_line(f.format, e, status, bytes)).push_back('\n');
  log.maybe_flush();
}

bool FilterSink::deflate_out(const char* p, size_t n, int mode, bool batch) {
  z_->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(p));
  z_->avail_in = (uInt)n;
  do {
    size_t old = zout_.size();
    zout_.resize(old + kOutStep);
    z_->next_out = reinterpret_cast<Bytef*>(zout_.data() + old);
    z_->avail_out = (uInt)kOutStep;
    int r = deflate(z_, mode);
    zout_.resize(old + kOutStep - z_->avail_out);
    if (r == Z_STREAM_ERROR) {
      PLOG_ERROR("gzip: deflate() failed");
      zout_.clear();
      inner_->abort();
      return false;
    }
  } while (z_->avail_out == 0);
  if (zout_.empty()) return true;
  bool ok = inner_->body(zout_.data(), zout_.size(), batch);
  zout_.clear();
  return ok;
}

bool FilterSink::body(const char* p, size_t n, bool batch) {
  if (!z_) return inner_->body(p, n, batch);
  if (n == 0) return true;
  // Unbatched bytes go now: compressed and flushed to a byte boundary.
  return deflate_out(p, n, batch ? Z_NO_FLUSH : Z_SYNC_FLUSH, batch);
}

bool FilterSink::flush() {
  if (z_ && !deflate_out(nullptr, 0, Z_SYNC_FLUSH, true)) return false;
  return inner_->flush();
}

void FilterSink::end() {
  if (z_) {
    deflate_out(nullptr, 0, Z_FINISH, true);
    end_gzip();
  }
  ResponseSink* in = inner_;
  in->end();  // may reset the exchange, which detaches this sink: nothing after it
}

void FilterSink::abort() {
  end_gzip();
  zout_.clear();
  inner_->abort();
}

bool FilterSink::retract_head() {
  if (!inner_->retract_head()) return false;
  end_gzip();
  zout_.clear();
  return true;
}

}  // namespace pasture::worker
