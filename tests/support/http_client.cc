#include "tests/support/http_client.h"

#include <llhttp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace pasture::test {

namespace {

constexpr size_t kChunkSize = 16 * 1024;

std::string hex(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

void append_chunk(std::string& out, std::string_view data) {
  out += hex(data.size());
  out += "\r\n";
  out += data;
  out += "\r\n";
}

}  // namespace

// Response parser kept for the whole connection so pipelined responses and
// bytes that arrive early carry over between read_response() calls.
// on_message_complete pauses llhttp so each call consumes exactly one message.
struct HttpConn::Parser {
  llhttp_t p;
  Response* r = nullptr;
  std::string field, value;
  bool head = false;
  bool started = false;
  bool done = false;

  Parser() {
    llhttp_init(&p, HTTP_RESPONSE, &settings());
    p.data = this;
  }

  static Parser& self(llhttp_t* p) { return *static_cast<Parser*>(p->data); }

  // llhttp keeps a pointer to its settings: one static table for all.
  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t table = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = [](llhttp_t* p) {
        self(p).started = true;
        return 0;
      };
      s.on_status = [](llhttp_t* p, const char* at, size_t n) {
        self(p).r->reason.append(at, n);
        return 0;
      };
      s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
        self(p).field.append(at, n);
        return 0;
      };
      s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
        self(p).value.append(at, n);
        return 0;
      };
      s.on_header_value_complete = [](llhttp_t* p) {
        Parser& ps = self(p);
        ps.r->headers.emplace_back(std::move(ps.field), std::move(ps.value));
        ps.field.clear();
        ps.value.clear();
        return 0;
      };
      s.on_headers_complete = [](llhttp_t* p) {
        Parser& ps = self(p);
        ps.r->status = llhttp_get_status_code(p);
        ps.r->http_major = llhttp_get_http_major(p);
        ps.r->http_minor = llhttp_get_http_minor(p);
        ps.r->chunked = (p->flags & F_CHUNKED) != 0;
        return ps.head ? 1 : 0;  // 1: no body follows
      };
      s.on_body = [](llhttp_t* p, const char* at, size_t n) {
        self(p).r->body.append(at, n);
        return 0;
      };
      s.on_message_complete = [](llhttp_t* p) {
        Parser& ps = self(p);
        ps.r->keep_alive = llhttp_should_keep_alive(p) != 0;
        ps.done = true;
        return static_cast<int>(HPE_PAUSED);  // one message per read_response()
      };
      return s;
    }();
    return table;
  }

  void begin(Response* resp, bool is_head) {
    r = resp;
    head = is_head;
    started = done = false;
    field.clear();
    value.clear();
  }

  // Parses from `data`; returns bytes consumed, or sets r->error.
  size_t execute(std::string_view data) {
    llhttp_errno_t e = llhttp_execute(&p, data.data(), data.size());
    if (e == HPE_OK) return data.size();
    if (e == HPE_PAUSED) {
      size_t used = static_cast<size_t>(llhttp_get_error_pos(&p) - data.data());
      llhttp_resume(&p);
      return used;
    }
    r->error =
        std::string("bad response: ") + llhttp_errno_name(e) + ": " + llhttp_get_error_reason(&p);
    return data.size();
  }
};

HttpConn::HttpConn(uint16_t port, Millis timeout)
    : port_(port), timeout_(timeout), parser_(std::make_unique<Parser>()) {
  fd_ = connect_loopback(port, timeout, &error_);
  eof_ = !fd_.valid();
}

HttpConn::~HttpConn() = default;
HttpConn::HttpConn(HttpConn&&) noexcept = default;
HttpConn& HttpConn::operator=(HttpConn&&) noexcept = default;

uint16_t HttpConn::local_port() const { return pasture::test::local_port(fd_.get()); }

bool HttpConn::write(std::string_view data) {
  if (!fd_.valid()) {
    if (error_.empty()) error_ = "not connected";
    return false;
  }
  while (!data.empty()) {
    ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Peer is not reading: drain what it sends meanwhile (an early error
      // response, or a streamed echo) so neither side blocks forever.
      short ev = POLLOUT | (eof_ ? 0 : POLLIN);
      pollfd pfd{fd_.get(), ev, 0};
      int r = ::poll(&pfd, 1, static_cast<int>(timeout_.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        error_ = r == 0 ? "send: timed out" : std::string("poll: ") + std::strerror(errno);
        return false;
      }
      if (!eof_ && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
        IoResult io = recv_some(fd_.get(), buf_, Millis{0});
        if (io == IoResult::kClosed || io == IoResult::kError) eof_ = true;
      }
      continue;
    }
    error_ = std::string("send: ") + std::strerror(errno);
    return false;
  }
  return true;
}

bool HttpConn::send_raw(std::string_view data) { return write(data); }

std::string HttpConn::head(std::string_view method, std::string_view target, const Headers& headers,
                           size_t body_length, bool chunked) const {
  std::string h;
  h.reserve(256);
  h.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (count_header(headers, "Host") == 0) h += "Host: 127.0.0.1:" + std::to_string(port_) + "\r\n";
  for (const auto& [k, v] : headers) h.append(k).append(": ").append(v).append("\r\n");
  const bool framed =
      count_header(headers, "Content-Length") > 0 || count_header(headers, "Transfer-Encoding") > 0;
  if (chunked && count_header(headers, "Transfer-Encoding") == 0) {
    h += "Transfer-Encoding: chunked\r\n";
  } else if (!chunked && !framed &&
             (body_length > 0 || method == "POST" || method == "PUT" || method == "PATCH")) {
    h += "Content-Length: " + std::to_string(body_length) + "\r\n";
  }
  h += "\r\n";
  return h;
}

bool HttpConn::send_request(std::string_view method, std::string_view target,
                            const Headers& headers, std::string_view body, bool chunked) {
  std::string out = head(method, target, headers, body.size(), chunked);
  if (!chunked) {
    out += body;
    return write(out);
  }
  for (size_t off = 0; off < body.size(); off += kChunkSize)
    append_chunk(out, body.substr(off, kChunkSize));
  out += "0\r\n\r\n";
  return write(out);
}

Response HttpConn::read_response(bool head_request) {
  Response r;
  Parser& ps = *parser_;
  ps.begin(&r, head_request);
  for (;;) {
    if (!buf_.empty()) {
      size_t used = ps.execute(buf_);
      buf_.erase(0, used);
      if (!r.error.empty() || ps.done) break;
    }
    if (eof_) {
      // A close-delimited body ends here; llhttp_finish() completes it.
      if (ps.started && llhttp_finish(&ps.p) == HPE_PAUSED && ps.done) break;
      r.error = ps.started ? "connection closed mid-response" : "connection closed before response";
      if (!error_.empty()) r.error += " (" + error_ + ")";
      break;
    }
    IoResult io = recv_some(fd_.get(), buf_, timeout_);
    if (io == IoResult::kClosed) {
      eof_ = true;
    } else if (io != IoResult::kOk) {
      r.error = std::string("reading response: ") + to_string(io);
      break;
    }
  }
  ps.r = nullptr;
  return r;
}

Response HttpConn::read_final_response(std::string_view method) {
  for (;;) {
    Response r = read_response(method == "HEAD");
    if (!r.ok() || r.status < 100 || r.status >= 200 || r.status == 101) return r;
  }
}

Response HttpConn::request(std::string_view method, std::string_view target, const Headers& headers,
                           std::string_view body, bool chunked) {
  send_request(method, target, headers, body, chunked);
  // Even if sending failed the peer may have answered (e.g. 413 and close).
  return read_final_response(method);
}

Response HttpConn::request_stream(std::string_view method, std::string_view target,
                                  const Headers& headers, size_t length, const BodySource& source,
                                  bool chunked) {
  bool sent = write(head(method, target, headers, length, chunked));
  for (size_t off = 0; sent && off < length;) {
    std::string piece = source(off, std::min<size_t>(64 * 1024, length - off));
    if (piece.empty()) break;
    off += piece.size();
    if (chunked) {
      std::string c;
      append_chunk(c, piece);
      sent = write(c);
    } else {
      sent = write(piece);
    }
  }
  if (sent && chunked) write("0\r\n\r\n");
  return read_final_response(method);
}

Response HttpConn::request_pattern(std::string_view method, std::string_view target, size_t length,
                                   bool chunked, const Headers& headers) {
  return request_stream(
      method, target, headers, length,
      [](size_t off, size_t max) { return pattern_bytes(max, off); }, chunked);
}

bool HttpConn::closed(Millis wait) {
  if (eof_ || !fd_.valid()) return true;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    IoResult io = recv_some(fd_.get(), buf_, std::max(left, Millis{0}));
    if (io == IoResult::kClosed || io == IoResult::kError) return eof_ = true;
    if (io != IoResult::kOk || left <= Millis{0}) return false;
  }
}

void HttpConn::shutdown_write() {
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_WR);
}

void HttpConn::close() {
  fd_.reset();
  eof_ = true;
}

Response http_request(uint16_t port, std::string_view method, std::string_view target,
                      const Headers& headers, std::string_view body, Millis timeout) {
  HttpConn c(port, timeout);
  if (!c.connected()) {
    Response r;
    r.error = c.error();
    return r;
  }
  Headers h = headers;
  if (count_header(h, "Connection") == 0) h.emplace_back("Connection", "close");
  return c.request(method, target, h, body);
}

Response http_get(uint16_t port, std::string_view target, const Headers& headers, Millis timeout) {
  return http_request(port, "GET", target, headers, {}, timeout);
}

}  // namespace pasture::test
