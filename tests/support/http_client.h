// Blocking HTTP/1.1 client for integration tests: one TCP connection to
// 127.0.0.1, responses parsed with llhttp. Nothing throws; failures come back
// in Response::error / HttpConn::error() so tests can assert on them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tests/support/net.h"
#include "tests/support/pattern.h"

namespace pasture::test {

struct Response {
  int status = 0;  // 0 when no status line arrived
  std::string reason;
  int http_major = 0;
  int http_minor = 0;
  Headers headers;          // wire order, original case
  std::string body;         // de-chunked
  bool keep_alive = false;  // llhttp_should_keep_alive() for this message
  bool chunked = false;     // the body came chunked
  std::string error;        // "" when a complete response was read

  bool ok() const { return error.empty(); }
  // First field named `name`, case-insensitive; "" if absent.
  std::string header(std::string_view name) const { return find_header(headers, name); }
  size_t header_count(std::string_view name) const { return count_header(headers, name); }
};

// Produces the next piece of a streamed request body: called with the offset
// already sent and the most bytes wanted; must return 1..max bytes.
using BodySource = std::function<std::string(size_t offset, size_t max)>;

class HttpConn {
 public:
  // Connects at once; check connected()/error(). `timeout` bounds every wait.
  explicit HttpConn(uint16_t port, Millis timeout = kDefaultTimeout);
  ~HttpConn();
  HttpConn(HttpConn&&) noexcept;
  HttpConn& operator=(HttpConn&&) noexcept;
  HttpConn(const HttpConn&) = delete;
  HttpConn& operator=(const HttpConn&) = delete;

  bool connected() const { return fd_.valid(); }
  // Last connect/send/receive problem, "" if none.
  const std::string& error() const { return error_; }
  uint16_t port() const { return port_; }
  // Our ephemeral port: identifies this connection in proxy logs.
  uint16_t local_port() const;
  int fd() const { return fd_.get(); }
  void set_timeout(Millis t) { timeout_ = t; }

  // Writes bytes verbatim. While the peer does not read, incoming bytes are
  // buffered for read_response(), so an early answer never deadlocks us.
  bool send_raw(std::string_view data);

  // Writes one request. Adds Host (127.0.0.1:port) unless given; adds
  // Content-Length (non-empty body, or POST/PUT/PATCH), or, when `chunked`,
  // Transfer-Encoding: chunked and sends the body as 16 KiB chunks; a header
  // the caller gave wins.
  bool send_request(std::string_view method, std::string_view target, const Headers& headers = {},
                    std::string_view body = {}, bool chunked = false);

  // Reads the next response, including 1xx ones. Set `head_request` when it
  // answers a HEAD, so no body is expected.
  Response read_response(bool head_request = false);

  // send_request() + read_response(), skipping 1xx interim responses.
  Response request(std::string_view method, std::string_view target, const Headers& headers = {},
                   std::string_view body = {}, bool chunked = false);

  // Like request(), with a `length`-byte body pulled from `source` in pieces
  // and never held whole.
  Response request_stream(std::string_view method, std::string_view target, const Headers& headers,
                          size_t length, const BodySource& source, bool chunked = false);
  // request_stream() with pattern_bytes() content.
  Response request_pattern(std::string_view method, std::string_view target, size_t length,
                           bool chunked = false, const Headers& headers = {});

  // True once the peer has closed (EOF or reset). Waits up to `wait` for it;
  // bytes arriving meanwhile are kept for read_response().
  bool closed(Millis wait = Millis{0});

  void shutdown_write();
  void close();

 private:
  struct Parser;
  bool write(std::string_view data);
  std::string head(std::string_view method, std::string_view target, const Headers& headers,
                   size_t body_length, bool chunked) const;
  Response read_final_response(std::string_view method);

  uint16_t port_ = 0;
  Millis timeout_;
  Fd fd_;
  bool eof_ = false;
  std::string buf_;  // received, not yet parsed
  std::string error_;
  std::unique_ptr<Parser> parser_;
};

// One-shot GET on a fresh connection with "Connection: close".
Response http_get(uint16_t port, std::string_view target, const Headers& headers = {},
                  Millis timeout = kDefaultTimeout);
// One-shot request of any method on a fresh connection with "Connection: close".
Response http_request(uint16_t port, std::string_view method, std::string_view target,
                      const Headers& headers = {}, std::string_view body = {},
                      Millis timeout = kDefaultTimeout);

}  // namespace pasture::test
