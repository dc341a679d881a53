// Exchange, an app served in-process (worker/wsgi/): the request copied for
// the call, its body buffered, and the call's response (wsgi::Sink) handed
// to the connection's sink.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/sendfile.h>

#include "common/log.h"
#include "worker/exchange.h"
#include "worker/proxy_head.h"

namespace pasture::worker {
namespace {

void append(std::string& o, std::string_view s) { o.append(s.data(), s.size()); }

// What an inline app's write() may queue ahead of a slow client.
constexpr size_t kAppQueueCap = 16 << 20;

bool iequals_ascii(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

void Exchange::start_app(const char* base, int app, const RequestTarget& t, const NormalPath& np) {
  mode_ = Mode::kApp;
  call_ = wsgi::Call::create(this, app);
  wsgi::Request& r = call_->request();
  r.clear();
  r.method = r.add(llhttp_method_name((llhttp_method_t)method_));
  r.path = r.add(np.decoded);
  r.script_len = script_len_;
  r.query = r.add(t.query);
  r.protocol = r.add(http2_ ? "HTTP/2.0" : http10_ ? "HTTP/1.0" : "HTTP/1.1");
  r.remote_addr = r.add(peer_text());
  bool underscores = w_->site().server.underscores_in_headers;
  // Over TLS the scheme is https (HTTPS=on), unless a trusted proxy says otherwise below.
  if (peer_->tls) r.url_scheme = r.add("https");
  // mTLS: the verified subject in the operator's header, never the client's own.
  std::string_view subject_header = w_->site().server.tls.client_subject_header;
  std::string_view subject = subject_header.empty() ? std::string_view() : sink_->tls_subject();
  if (!subject.empty()) r.headers.emplace_back(r.add(subject_header), r.add(subject));
  // An absolute-form target's authority is the Host (RFC 9112 3.2.2).
  if (!t.authority.empty()) r.headers.emplace_back(r.add("Host"), r.add(t.authority));
  for (const HeaderSpan& h : *head_->headers) {
    std::string_view name = span_view(base, h.name);
    if (!t.authority.empty() && iequals_ascii(name, "host")) continue;
    // As waitress and nginx: a name with '_' would share an environ key
    // with its '-' spelling (X_Forwarded_For and X-Forwarded-For).
    if (!underscores && name.find('_') != std::string_view::npos) continue;
    if (!subject_header.empty() && same_field_folded(name, subject_header)) continue;
    std::string_view value = trim_ows(span_view(base, h.value));
    if (peer_->trusted && iequals_ascii(name, "x-forwarded-proto")) {
      std::string_view v = value.substr(value.rfind(',') == std::string_view::npos ? 0 : value.rfind(',') + 1);
      v = trim_ows(v);
      if (iequals_ascii(v, "https") || iequals_ascii(v, "http")) r.url_scheme = r.add(iequals_ascii(v, "https") ? "https" : "http");
    }
    wsgi::Request::Span n = r.add(name);
    r.headers.emplace_back(n, r.add(value));
  }
  prefix_environ(r);
  // The body is read before the app runs (as waitress does): a client that
  // waits for 100 Continue gets it now.
  send_continue();
}

void Exchange::app_body_in(const char* p, size_t n) {
  if (!call_ || n == 0) return;
  if (!call_->add_body(p, n)) {
    if (call_->body_size() + n > wsgi::kMaxBody)
      respond_error(413, "request body too large for the app");
    else
      respond_error(500, "cannot spool the request body");  // logged by the spool
  }
}

void Exchange::cancel_app() {
  if (!call_) return;
  wsgi::Call* c = call_;
  call_ = nullptr;
  c->cancel();
}

void Exchange::app_head(int status, std::string_view status_line, std::string_view fields,
                        int64_t content_length, bool close_after) {
  if (closed_) return;
  resp_started_ = true;
  status_ = (uint16_t)status;
  app_no_body_ = method_ == HTTP_HEAD || status == 204 || status == 304;
  ResponseHead h;
  h.status = status;
  h.text = w_->take_buf();
  std::string& o = *h.text;
  o.clear();
  o.append("HTTP/1.1 ");
  append(o, status_line);
  o.append("\r\n");
  append(o, fields);
  if (content_length >= 0) {
    h.framing = ResponseHead::Length::kKnown;
    h.length = (uint64_t)content_length;
  } else {
    h.framing = app_no_body_ ? ResponseHead::Length::kNone : ResponseHead::Length::kChunked;
  }
  h.no_body = app_no_body_;
  h.close = close_after;
  sink_->head(h);  // held back: it leaves with the first body bytes or the end
}

bool Exchange::app_body(const char* p, size_t n) {
  if (closed_) return false;
  if (app_no_body_) return true;
  resp_bytes_ += n;
  if (sink_->body(p, n, false)) return true;
  if (closed_) return false;
  if (sink_->backlog() > kAppQueueCap) {
    // Only write() with threads = 1 gets here (it cannot wait on the loop):
    // a client this far behind is dropped rather than buffered for. All of
    // its connection counts: HTTP/2 streams share the cap (found by review:
    // per stream, one connection held 100 x 16 MiB).
    PLOG_WARN("%s: the app wrote %zu bytes ahead of its client; closing the connection", peer_text(),
              sink_->backlog());
    sink_->abort();
  }
  return false;  // the client is behind: the app waits (on_sink_drained resumes it)
}

// sendfile(2) straight to the socket while the sink allows it (nothing
// queued, plain transport, no framing per write); else, or when the socket
// is full, one block is read and queued the usual way, so the sink reports
// the drain (on_sink_drained resumes the call).
int64_t Exchange::app_sendfile(int fd, uint64_t off, size_t n, bool* more) {
  *more = true;
  if (closed_) return -1;
  if (app_no_body_) return (int64_t)n;
  // Corked as static files are (the head leaves with the file's first
  // bytes, in full segments); released at app_end.
  if (!app_corked_) app_corked_ = sink_->cork(true);
  if (!sink_->flush() && closed_) return -1;  // a head still held back
  size_t done = 0;
  int sock = sink_->sendfile_fd();
  if (sock >= 0) {
    while (done < n) {
      off_t o = (off_t)(off + done);
      ssize_t w = ::sendfile(sock, fd, &o, n - done);
      if (w > 0) {
        done += (size_t)w;
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else if (w == 0 || errno == EAGAIN) {
        break;  // the socket is full (or the file shrank: the read below sees it)
      } else {
        sink_->abort();
        return -1;
      }
    }
  }
  if (done < n) {
    char buf[64 * 1024];
    size_t want = std::min(n - done, sizeof buf);
    ssize_t r = pread(fd, buf, want, (off_t)(off + done));
    if (r <= 0) {  // the file is shorter than it was: the response cannot complete
      sink_->abort();
      return -1;
    }
    sink_->body(buf, (size_t)r, false);
    if (closed_) return -1;
    done += (size_t)r;
    if (sink_->queued() > 0) {
      sink_->await_drain();
      *more = false;
    }
  }
  resp_bytes_ += done;
  return (int64_t)done;
}

void Exchange::app_end(bool ok) {
  call_ = nullptr;  // the call frees itself after this returns
  if (closed_) return;
  if (!ok) {
    // Broken after its head: the client can only learn by the close.
    sink_->retract_head();
    sink_->abort();
    return;
  }
  resp_done_ = true;
  count_response();
  ResponseSink* sink = sink_;
  bool corked = app_corked_;
  app_corked_ = false;
  sink->end();  // a head still held back, the last chunk (may reset this exchange)
  if (corked) sink->cork(false);  // the last partial segment goes now
}

}  // namespace pasture::worker
