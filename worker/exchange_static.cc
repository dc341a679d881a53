// Exchange, a static-files app (egg:Paste#static, egg:pasture#static):
// the path resolved beneath the document root (worker/static_cache.h,
// worker/static_fs.h), the answer decided (worker/static_http.h), and the
// body sent: sendfile(2) straight to a plain HTTP/1.1 socket, else (TLS,
// HTTP/2: they need the bytes) read in blocks through the sink, with the
// sink's back-pressure either way; a small file leaves from memory in the
// head's write.
#include <sys/random.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "worker/exchange.h"
#include "worker/static_cache.h"
#include "worker/static_http.h"
#include "worker/static_index.h"
#include "worker/static_mime.h"

namespace pasture::worker {

// The body of a static answer in progress.
struct StaticReply {
  files::FilePtr file;
  std::vector<files::ByteRange> parts;  // what is sent, in order (one: the whole file or one range)
  std::vector<std::string> part_heads;  // multipart: each part's boundary and fields; then the closing one
  size_t part = 0;                      // the part being sent
  uint64_t done = 0;                    // bytes of it sent
  bool head_sent = false;               // multipart: part_heads[part] went out
  bool corked = false;                  // the sink's cork(true) held (sendfile bodies)
  bool no_body = false;
  ResponseHead head;
};

namespace {

constexpr size_t kBlock = 64 * 1024;
constexpr size_t kDrainBlock = 4096;

// A multipart/byteranges boundary new for each response: 24 hex digits from
// the kernel's CSPRNG, so that a file's content (an upload served back) cannot
// carry the boundary and forge parts (RFC 2046 5.1.1: the boundary must not
// occur in the parts). Multipart answers are rare; one getrandom() each.
std::string new_boundary() {
  unsigned char b[12];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += (size_t)n;
    else if (n < 0 && errno != EINTR) break;
  }
  if (got < sizeof b) {  // no getrandom (seccomp, old kernel): the clock and a counter, still never constant
    static uint64_t counter = 0;
    uint64_t v = (uint64_t)uv_hrtime() ^ (++counter * 0x9E3779B97F4A7C15ull);
    memcpy(b, &v, 8);
    memcpy(b + 8, &counter, 4);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

void append(std::string& o, std::string_view s) { o.append(s.data(), s.size()); }

// The Date field, made once a second.
std::string_view date_now() {
  static time_t last = 0;
  static std::string text;
  time_t now = time(nullptr);
  if (now != last) {
    last = now;
    text = files::http_date(now);
  }
  return text;
}

bool text_type(std::string_view t) {
  return t.substr(0, 5) == "text/" || t == "application/javascript" || t == "application/json" ||
         t == "application/xml" || (t.size() > 4 && (t.substr(t.size() - 4) == "+xml" || t.substr(t.size() - 5) == "+json"));
}

// A segment of `rel` begins with '.'.
bool has_dot_segment(std::string_view rel) {
  for (size_t i = 0; i < rel.size(); i++)
    if (rel[i] == '.' && (i == 0 || rel[i - 1] == '/')) return true;
  return false;
}

}  // namespace

void Exchange::free_static() {
  if (!static_) return;
  if (static_->head.text) w_->give_buf(static_->head.text);  // never handed to the sink
  delete static_;
  static_ = nullptr;
}

// The request's field `name` ("" when absent; the first one).
std::string_view Exchange::request_field(const char* base, std::string_view name) const {
  for (const HeaderSpan& h : *head_->headers)
    if (iequals(span_view(base, h.name), name)) return trim_ows(span_view(base, h.value));
  return {};
}

// autoindex = on: a directory URL without an index file lists the
// directory (nginx's page). 0 = answered; else the status the caller
// answers (a missing directory is a miss like any other: the fallback).
int Exchange::static_listing(std::string_view path, std::string_view rel) {
  const conf::Handler& hd = w_->site().handlers[handler_];
  std::string key = std::to_string(handler_);
  key.append(1, '\0').append(path).append(1, '\0').append(rel);
  files::ListingCache::Page page = files::listing_cache().find(key, w_->now());
  if (!page) {
    // The loop time listings may take: kListingBudgetUs a second per worker.
    static uint64_t budget_since_ms = 0, spent_us = 0;
    if (w_->now() - budget_since_ms >= 1000) {
      budget_since_ms = w_->now();
      spent_us = 0;
    }
    if (spent_us >= files::kListingBudgetUs) {
      PLOG_WARN("static [%s]: directory listings took %llu ms of this second: 503 for %.*s", hd.name.c_str(),
                (unsigned long long)(spent_us / 1000), (int)path.size(), path.data());
      respond_local(503, "503 Service Unavailable (directory listings are busy)\n", false);
      return 0;
    }
    uint64_t t0 = uv_hrtime();
    int fd = files::cache().open_dir(hd, handler_, rel, w_->now());
    if (fd == -EACCES) return 403;
    if (fd < 0) return 404;
    auto made = std::make_shared<std::string>();
    bool ok = files::autoindex_page(fd, path, hd.files.dotfiles, made.get());
    spent_us += (uv_hrtime() - t0) / 1000;
    if (!ok) return 403;  // opened, cannot be read
    page = made;
    files::listing_cache().put(key, page, w_->now());
  }
  if (method_ != HTTP_GET && method_ != HTTP_HEAD) {
    respond_local(405, "405 Method Not Allowed\n", false, "Allow: GET, HEAD\r\n");
    return 0;
  }
  std::string fields = "Date: ";
  append(fields, date_now());
  fields += "\r\n";
  respond_local(200, *page, false, fields, hd.files.charset.empty() ? "text/html" : "text/html; charset=" + hd.files.charset);
  return 0;
}

void Exchange::start_static(const char* base, const RequestHead& rh) {
  const conf::Handler& hd = w_->site().handlers[handler_];
  const conf::StaticFiles& f = hd.files;
  std::string_view path = rh.path.decoded;
  // PATH_INFO: after a prefix filter, the one it made (found by review: the
  // request path cut at the urlmaps' offset named another file).
  std::string_view rest = path_info(rh.path);
  auto miss = [&](int status, const char* why) {
    PLOG_DEBUG("static [%s]: %d for %.*s: %s", hd.name.c_str(), status, (int)path.size(), path.data(), why);
    if (f.fallback >= 0 && status == 404) {
      handler_ = f.fallback;
      run_handler(base, rh);
      return;
    }
    std::string body = std::to_string(status) + " " + reason_phrase(status) + "\n";
    respond_local(status, body, false);
  };
  auto redirect_slash = [&] {
    // Paste (add_slash) and nginx: 301 to the absolute URL with a '/', the query kept.
    // Behind a prefix filter, the URL its app sees: the prefix's SCRIPT_NAME and
    // the translated host and scheme (found by review: the internal path and host).
    std::string scheme = peer_->tls ? "https" : "http";
    std::string host(rh.host.empty() ? std::string_view("localhost") : rh.host);
    if (rf_ && rf_->prefixed) prefix_origin(base, &scheme, &host);
    std::string loc = "Location: ";
    loc.append(scheme).append("://").append(host);
    if (rf_ && rf_->prefixed) {
      append_path_encoded(loc, prefix_script());
      append_path_encoded(loc, prefix_path_info());
    } else {
      append_path_encoded(loc, path);
    }
    if (loc.back() != '/') loc += '/';
    if (rh.target.has_query) loc.append("?").append(rh.target.query);
    loc += "\r\n";
    respond_local(301, "301 Moved Permanently\n", false, loc);
  };
  // paste.urlparser: an empty PATH_INFO (the mount point itself) is a redirect.
  if (rest.empty()) return redirect_slash();
  // egg:pasture#static: a prefix filter's mount point ('' made '/') answers
  // under a URL without its slash, where relative links would leave the
  // mount: the slash first, as nginx (Paste's flavour answers, as Paste).
  if (!f.paste && rest == "/" && (path.empty() || path.back() != '/')) return redirect_slash();
  if (rest[0] != '/') return miss(404, "a PATH_INFO without its leading '/'");
  std::string_view rel = rest.substr(1);  // without the leading '/'
  // Never an absolute name: openat() would ignore the root (follow_symlinks = on).
  if (!rel.empty() && rel[0] == '/') return miss(404, "an absolute path");
  if (rel.find('\\') != std::string_view::npos || rel.find('\0') != std::string_view::npos)
    return miss(404, "a backslash or NUL in the path");
  if (!f.dotfiles && has_dot_segment(rel)) return miss(404, "a dotfile");
  files::Cache& cache = files::cache();
  files::FilePtr file;
  std::string tried;
  bool dir_url = rel.empty() || rel.back() == '/';
  files::Found found = files::Found::kMissing;
  if (dir_url && f.paste && !rel.empty()) {
    // StaticURLParser pops segments: `/a.txt/` serves a.txt (PATH_INFO '/').
    found = cache.open(hd, handler_, rel.substr(0, rel.size() - 1), w_->now(), &file);
    if (found == files::Found::kDirectory) found = files::Found::kMissing;  // then the index below
  }
  if (dir_url && found != files::Found::kFile) {
    for (const std::string& index : f.index) {
      tried.assign(rel.data(), rel.size());
      tried += index;
      found = cache.open(hd, handler_, tried, w_->now(), &file);
      if (found == files::Found::kFile || found == files::Found::kForbidden) break;
    }
    if (found == files::Found::kDirectory) found = files::Found::kMissing;
    if (found == files::Found::kMissing && f.autoindex) {
      int status = static_listing(path, rel);
      if (status == 0) return;
      if (status == 403) return miss(403, "permission denied (listing)");
    }
  } else if (!dir_url) {
    found = cache.open(hd, handler_, rel, w_->now(), &file);
    if (found == files::Found::kDirectory) return redirect_slash();
  }
  if (found == files::Found::kForbidden) return miss(403, "permission denied");
  if (found != files::Found::kFile) return miss(404, "no such file");
  if (method_ != HTTP_GET && method_ != HTTP_HEAD) {
    respond_local(405, "405 Method Not Allowed\n", false, "Allow: GET, HEAD\r\n");
    return;
  }
  // The media type is the name's (the index file's for a directory URL).
  std::string_view name = tried.empty() ? rel : std::string_view(tried);
  if (!name.empty() && name.back() == '/') name.remove_suffix(1);
  files::MediaType mt;
  if (f.paste)
    mt = files::guess_paste(name);
  else
    mt.type = files::guess_plain(name);
  if (mt.type.empty()) mt.type = "application/octet-stream";
  // Precompressed siblings (egg:pasture#static): br, then gzip.
  std::string_view coding = mt.encoding;
  if ((f.br_static || f.gzip_static) && coding.empty()) {
    std::string_view ae = request_field(base, "accept-encoding");
    for (std::string_view c : {std::string_view("br"), std::string_view("gzip")}) {
      if ((c == "br" ? !f.br_static : !f.gzip_static) || !files::accepts_encoding(ae, c)) continue;
      std::string sib(name);
      sib += c == "br" ? ".br" : ".gz";
      files::FilePtr z;
      if (cache.open(hd, handler_, sib, w_->now(), &z) == files::Found::kFile) {
        file = std::move(z);
        coding = c;
        break;
      }
    }
  }
  const files::OpenFile& of = *file;

  // The fields every answer about this file carries.
  std::string common;
  common.append("Date: ");
  append(common, date_now());
  common.append("\r\nETag: ").append(of.etag).append("\r\n");
  if (f.cache_max_age >= 0) {
    // Paste's CACHE_CONTROL.apply(max_age=N) says public; nginx's `expires` does not.
    common.append(f.paste ? "Cache-Control: public, max-age=" : "Cache-Control: max-age=")
        .append(std::to_string(f.cache_max_age))
        .append("\r\n");
    common.append("Expires: ").append(files::http_date(time(nullptr) + f.cache_max_age)).append("\r\n");
  }
  if (f.br_static || f.gzip_static) common.append("Vary: Accept-Encoding\r\n");
  common.append("Accept-Ranges: bytes\r\n");

  // Conditionals (RFC 9110 13.2.2): If-Match, else If-Unmodified-Since
  // (egg:pasture#static, as nginx: 412; Paste ignores both), then
  // If-None-Match, else If-Modified-Since.
  if (!f.paste) {
    std::string_view im = request_field(base, "if-match");
    bool failed;
    if (!im.empty()) {
      failed = !files::strong_match(im, of.etag);
    } else {
      std::string_view ius = request_field(base, "if-unmodified-since");
      time_t t = ius.empty() ? -1 : files::parse_http_date(ius);
      failed = t >= 0 && of.mtime_s > t;
    }
    if (failed) {
      respond_local(412, "412 Precondition Failed\n", false, common);
      return;
    }
  }
  std::string_view inm = request_field(base, "if-none-match");
  bool not_modified = false;
  if (!inm.empty()) {
    not_modified = files::none_match(inm, of.etag);
  } else {
    std::string_view ims = request_field(base, "if-modified-since");
    time_t t = ims.empty() ? -1 : files::parse_http_date(ims);
    // A date in the future is not a valid one (RFC 9110 13.1.3): ignored.
    not_modified = t >= 0 && t <= time(nullptr) && t >= of.mtime_s;
  }
  if (not_modified) {
    std::string* h = w_->take_buf();
    h->assign("HTTP/1.1 304 Not Modified\r\nServer: pasture\r\n");
    h->append(common);
    if (!f.paste) h->append("Last-Modified: ").append(of.last_modified).append("\r\n");
    static_ = new StaticReply;
    static_->head.status = 304;
    static_->head.text = h;
    static_->head.framing = ResponseHead::Length::kNone;
    static_->head.no_body = true;
    static_->no_body = true;
    mode_ = Mode::kStatic;
    status_ = 304;
    return;
  }

  std::string type(mt.type);
  if (!f.charset.empty() && text_type(type)) type += "; charset=" + f.charset;

  // Ranges, unless If-Range names another representation.
  static_ = new StaticReply;
  static_->file = file;
  std::vector<files::ByteRange>& parts = static_->parts;
  files::RangeResult rr = files::RangeResult::kIgnore;
  std::string_view range = request_field(base, "range");
  if (!range.empty() && (method_ == HTTP_GET || method_ == HTTP_HEAD) &&
      files::if_range_holds(request_field(base, "if-range"), of.etag, of.mtime_s))
    rr = files::parse_range(range, of.size, &parts);
  if (rr == files::RangeResult::kUnsatisfiable) {
    free_static();
    std::string fields = common + "Content-Range: bytes */" + std::to_string(of.size) + "\r\n";
    respond_local(416, "416 Range Not Satisfiable\n", false, fields);
    return;
  }
  std::string* h = w_->take_buf();
  std::string& o = *h;
  int status = rr == files::RangeResult::kSatisfiable ? 206 : 200;
  o.assign(status == 206 ? "HTTP/1.1 206 Partial Content\r\nServer: pasture\r\n" : "HTTP/1.1 200 OK\r\nServer: pasture\r\n");
  o.append(common);
  o.append("Last-Modified: ").append(of.last_modified).append("\r\n");
  if (!coding.empty()) o.append("Content-Encoding: ").append(coding).append("\r\n");
  uint64_t length = 0;
  if (status == 200) {
    parts.push_back({0, of.size ? of.size - 1 : 0});
    length = of.size;
    if (of.size == 0) parts.clear();
    o.append("Content-Type: ").append(type).append("\r\n");
  } else if (parts.size() == 1) {
    o.append("Content-Type: ").append(type).append("\r\n");
    o.append("Content-Range: bytes ")
        .append(std::to_string(parts[0].first))
        .append("-")
        .append(std::to_string(parts[0].last))
        .append("/")
        .append(std::to_string(of.size))
        .append("\r\n");
    length = parts[0].size();
  } else {
    // multipart/byteranges (RFC 9110 14.6): each part with its own type and range.
    const std::string boundary = new_boundary();
    o.append("Content-Type: multipart/byteranges; boundary=").append(boundary).append("\r\n");
    for (const files::ByteRange& p : parts) {
      std::string ph = "\r\n--";
      ph.append(boundary).append("\r\nContent-Type: ").append(type).append("\r\nContent-Range: bytes ");
      ph.append(std::to_string(p.first)).append("-").append(std::to_string(p.last)).append("/");
      ph.append(std::to_string(of.size)).append("\r\n\r\n");
      length += ph.size() + p.size();
      static_->part_heads.push_back(std::move(ph));
    }
    std::string end = "\r\n--";
    end.append(boundary).append("--\r\n");
    length += end.size();
    static_->part_heads.push_back(std::move(end));
  }
  static_->head.status = status;
  static_->head.text = h;
  static_->head.framing = ResponseHead::Length::kKnown;
  static_->head.length = length;
  static_->no_body = static_->head.no_body = method_ == HTTP_HEAD;
  mode_ = Mode::kStatic;
  status_ = (uint16_t)status;
}

// The request is in: the head goes (held back until the first body bytes).
void Exchange::static_send() {
  if (!static_) return;
  ResponseHead h = static_->head;
  static_->head.text = nullptr;
  resp_started_ = true;
  sink_->head(h);
  if (closed_) return;
  static_pump();
}

void Exchange::static_done() {
  if (static_ && static_->corked) sink_->cork(false);  // the last partial segment goes now
  free_static();
  resp_done_ = true;
  count_response();
  sink_->end();  // the held head if nothing else went; may reset this exchange
}

// Sends body bytes until the sink is behind (on_sink_drained comes back
// here) or the body is done.
void Exchange::static_pump() {
  StaticReply* s = static_;
  if (!s || closed_) return;
  if (s->no_body) return static_done();
  const files::OpenFile& f = *s->file;
  for (;;) {
    if (s->part == s->parts.size()) {
      if (!s->part_heads.empty()) {
        const std::string& end = s->part_heads.back();
        resp_bytes_ += end.size();
        if (!sink_->body(end.data(), end.size(), false) && closed_) return;
      }
      return static_done();
    }
    const files::ByteRange& p = s->parts[s->part];
    if (!s->part_heads.empty() && !s->head_sent) {
      const std::string& ph = s->part_heads[s->part];
      s->head_sent = true;
      resp_bytes_ += ph.size();
      if (!sink_->body(ph.data(), ph.size(), false)) return;  // closed, or behind: resumed by on_sink_drained
    }
    uint64_t left = p.size() - s->done;
    uint64_t off = p.first + s->done;
    if (left == 0) {
      s->part++;
      s->done = 0;
      s->head_sent = false;
      continue;
    }
    if (f.small) {
      s->done += left;
      resp_bytes_ += left;
      if (!sink_->body(f.content.data() + off, (size_t)left, false)) return;
      continue;
    }
    // sendfile(2) when the sink allows it (plain socket, nothing queued,
    // no framing per write), until the socket is full; the held head first,
    // corked so that it leaves with the body's first bytes.
    if (!s->corked && !f.small) s->corked = sink_->cork(true);
    if (!sink_->flush()) return;  // closed, or behind: on_sink_drained resumes
    int sock = sink_->sendfile_fd();
    if (sock >= 0) {
      off_t o = (off_t)off;
      ssize_t w = ::sendfile(sock, f.fd, &o, (size_t)std::min<uint64_t>(left, 1u << 30));
      if (w > 0) {
        s->done += (uint64_t)w;
        resp_bytes_ += (uint64_t)w;
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno != EAGAIN) {
        PLOG_DEBUG("static: sendfile to %s: %s", peer_text(), strerror(errno));
        sink_->abort();
        return;
      }
      // EAGAIN (the socket is full), or 0 (the file shrank: the read below sees it).
    }
    // A block read and sent through the sink: always under TLS and HTTP/2;
    // after sendfile filled the socket, so that the sink queues it and
    // reports the drain.
    // After sendfile, one page is enough: it only has to wait in the queue
    // for the socket to take bytes again (then sendfile goes on); copying
    // more costs CPU for nothing.
    char buf[kBlock];
    size_t want = (size_t)std::min<uint64_t>(left, sock >= 0 ? kDrainBlock : sizeof buf);
    ssize_t r = pread(f.fd, buf, want, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {  // shorter than its Content-Length said: only the close can tell
      PLOG_WARN("static: a file shrank while being sent to %s", peer_text());
      sink_->abort();
      return;
    }
    s->done += (uint64_t)r;
    resp_bytes_ += (uint64_t)r;
    if (!sink_->body(buf, (size_t)r, false)) return;  // closed, or behind
    if (sock >= 0 && sink_->queued() > 0) {
      sink_->await_drain();
      return;
    }
  }
}

}  // namespace pasture::worker
