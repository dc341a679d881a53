// ClientConn, app half: a request for a Python app served in-process
// (worker/wsgi/): the request copied for the call, its body buffered, and
// the call's response (wsgi::Sink) framed for this client.
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "worker/client_conn.h"

namespace pasture::worker {
namespace {

void append(std::string& o, std::string_view s) { o.append(s.data(), s.size()); }

// What an inline app's write() may queue ahead of a slow client.
constexpr size_t kAppQueueCap = 16 << 20;

bool iequals_ascii(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

void ClientConn::start_app(const char* base, int app, const RequestTarget& t, const NormalPath& np) {
  mode_ = Mode::kApp;
  call_ = wsgi::Call::create(this, app);
  wsgi::Request& r = call_->request();
  r.clear();
  r.method = r.add(llhttp_method_name((llhttp_method_t)method_));
  r.path = r.add(np.decoded);
  r.script_len = script_len_;
  r.query = r.add(t.query);
  r.protocol = r.add(http10_ ? "HTTP/1.0" : "HTTP/1.1");
  r.remote_addr = r.add(peer_);
  bool underscores = w_->site().server.underscores_in_headers;
  // An absolute-form target's authority is the Host (RFC 9112 3.2.2).
  if (!t.authority.empty()) r.headers.emplace_back(r.add("Host"), r.add(t.authority));
  for (const HeaderSpan& h : *head_.headers) {
    std::string_view name = span_view(base, h.name);
    if (!t.authority.empty() && iequals_ascii(name, "host")) continue;
    // As waitress and nginx: a name with '_' would share an environ key
    // with its '-' spelling (X_Forwarded_For and X-Forwarded-For).
    if (!underscores && name.find('_') != std::string_view::npos) continue;
    std::string_view value = trim_ows(span_view(base, h.value));
    if (trusted_peer_ && iequals_ascii(name, "x-forwarded-proto")) {
      std::string_view v = value.substr(value.rfind(',') == std::string_view::npos ? 0 : value.rfind(',') + 1);
      v = trim_ows(v);
      if (iequals_ascii(v, "https") || iequals_ascii(v, "http")) r.url_scheme = r.add(iequals_ascii(v, "https") ? "https" : "http");
    }
    wsgi::Request::Span n = r.add(name);
    r.headers.emplace_back(n, r.add(value));
  }
  // The body is read before the app runs (as waitress does): a client that
  // waits for 100 Continue gets it now.
  if (expect_continue_ && !http10_ && !req_done_) {
    send_out("HTTP/1.1 100 Continue\r\n\r\n", 25);
    expect_continue_ = false;
  }
}

void ClientConn::app_body_in(const char* p, size_t n) {
  if (!call_ || n == 0) return;
  if (!call_->add_body(p, n)) {
    if (call_->body_size() + n > wsgi::kMaxBody)
      respond_error(413, "request body too large for the app");
    else
      respond_error(500, "cannot spool the request body");  // logged by the spool
  }
}

void ClientConn::cancel_app() {
  if (!call_) return;
  wsgi::Call* c = call_;
  call_ = nullptr;
  c->cancel();
}

void ClientConn::app_head(int status, std::string_view status_line, std::string_view fields,
                          int64_t content_length, bool close_after) {
  if (state_ == State::kClosed) return;
  resp_started_ = true;
  status_ = (uint16_t)status;
  if (close_after || !req_done_ || w_->closing_soon()) keep_alive_ = false;
  app_no_body_ = method_ == HTTP_HEAD || status == 204 || status == 304;
  app_chunked_ = false;
  if (!resp_head_) resp_head_ = w_->take_buf();
  std::string& o = *resp_head_;
  o.clear();
  o.append("HTTP/1.1 ");
  append(o, status_line);
  o.append("\r\n");
  append(o, fields);
  if (status != 204) {
    if (content_length >= 0) {
      o.append("Content-Length: ");
      append_uint(o, (uint64_t)content_length);
      o.append("\r\n");
    } else if (!app_no_body_) {
      if (http10_)
        keep_alive_ = false;  // the body ends with the connection
      else {
        o.append("Transfer-Encoding: chunked\r\n");
        app_chunked_ = true;
      }
    }
  }
  if (!keep_alive_)
    o.append("Connection: close\r\n");
  else if (http10_)
    o.append("Connection: keep-alive\r\n");
  o.append("\r\n");
  // Held back: it leaves with the first body bytes or the end (one write).
}

// The head still held back, a chunk's framing, the bytes: one writev.
int ClientConn::send_app_bytes(const char* p, size_t n) {
  uv_buf_t bufs[4];
  unsigned k = 0;
  if (resp_head_) bufs[k++] = uv_buf_init(resp_head_->data(), (unsigned)resp_head_->size());
  ChunkLine line(n);
  if (app_chunked_ && n > 0) bufs[k++] = uv_buf_init(const_cast<char*>(line.text.data()), (unsigned)line.text.size());
  if (n > 0) bufs[k++] = uv_buf_init(const_cast<char*>(p), (unsigned)n);
  if (app_chunked_ && n > 0) bufs[k++] = uv_buf_init(const_cast<char*>("\r\n"), 2);
  int r = k ? send_out(bufs, k) : 0;
  if (resp_head_) {
    w_->give_buf(resp_head_);
    resp_head_ = nullptr;
  }
  return r;
}

bool ClientConn::app_body(const char* p, size_t n) {
  if (state_ == State::kClosed) return false;
  if (app_no_body_) return true;
  resp_bytes_ += n;
  if (send_app_bytes(p, n) < 0) {
    close();
    return false;
  }
  if (queued() <= kHighWater) return true;
  if (queued() > kAppQueueCap) {
    // Only write() with threads = 1 gets here (it cannot wait on the loop):
    // a client this far behind is dropped rather than buffered for.
    PLOG_WARN("%s: the app wrote %zu bytes ahead of its client; closing the connection", peer_,
              (size_t)queued());
    close();
    return false;
  }
  // The client is behind: the app waits; send_timeout governs meanwhile.
  app_paused_ = true;
  arm_send_timer();
  return false;
}

// sendfile(2) straight to the socket while nothing waits in libuv's queue
// (which keeps the order of bytes); when the socket is full, one block is
// read and queued the usual way, so libuv reports the drain (on_write_done
// resumes the call).
int64_t ClientConn::app_sendfile(int fd, uint64_t off, size_t n, bool* more) {
  *more = true;
  if (state_ == State::kClosed) return -1;
  if (app_no_body_) return (int64_t)n;
  if (resp_head_ && send_app_bytes(nullptr, 0) < 0) {
    close();
    return -1;
  }
  size_t done = 0;
  int sock = app_chunked_ ? -1 : sendfile_fd();
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
        close();
        return -1;
      }
    }
  }
  if (done < n) {
    char buf[64 * 1024];
    size_t want = std::min(n - done, sizeof buf);
    ssize_t r = pread(fd, buf, want, (off_t)(off + done));
    if (r <= 0) {  // the file is shorter than it was: the response cannot complete
      close();
      return -1;
    }
    if (send_app_bytes(buf, (size_t)r) < 0) {
      close();
      return -1;
    }
    done += (size_t)r;
    if (queued() > 0) {
      app_paused_ = true;
      arm_send_timer();
      *more = false;
    }
  }
  resp_bytes_ += done;
  return (int64_t)done;
}

void ClientConn::app_end(bool ok) {
  call_ = nullptr;  // the call frees itself after this returns
  if (state_ == State::kClosed) return;
  if (!ok) {
    // Broken after its head: the client can only learn by the close.
    if (resp_head_) {
      w_->give_buf(resp_head_);
      resp_head_ = nullptr;
    }
    close();
    return;
  }
  int r = send_app_bytes(nullptr, 0);  // a head still held back
  if (r == 0 && app_chunked_) r = send_out("0\r\n\r\n", 5);
  if (r < 0) {
    close();
    return;
  }
  resp_done_ = true;
  count_response();
  app_paused_ = false;
  if (state_ == State::kWaiting && !out_full_) timer_disarm(&timer_);
  finish_exchange();
}

}  // namespace pasture::worker
