// FakeUpstream: a scriptable HTTP/1.1 origin server on 127.0.0.1 for
// integration tests. One accept thread plus one thread per connection, with
// blocking I/O bounded by poll(); requests are parsed with llhttp
// (keep-alive, pipelining, Content-Length and chunked bodies) and recorded.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/net.h"
#include "tests/support/pattern.h"

namespace pasture::test {

// One request as the upstream received it.
struct RecordedRequest {
  std::string method;
  std::string target;  // request-target as sent, e.g. "/a?b=1"
  int http_major = 1;
  int http_minor = 1;
  Headers headers;         // wire order, original case
  std::string body;        // de-chunked
  bool chunked = false;    // the body came chunked
  bool keep_alive = true;  // llhttp_should_keep_alive()
  uint64_t conn_id = 0;    // 1-based, in accept order; equal ids = same connection
  uint16_t peer_port = 0;  // the client's (proxy's) source port

  std::string header(std::string_view name) const { return find_header(headers, name); }
  size_t header_count(std::string_view name) const { return count_header(headers, name); }
};

// What to do with one request.
struct Reply {
  enum class Kind {
    kRespond,  // format status/headers/body below
    kRaw,      // write `raw` verbatim
    kClose,    // close the connection without answering
  };
  Kind kind = Kind::kRespond;
  int status = 200;
  std::string reason{};  // "" = standard phrase
  // Sent as given. Added unless present: X-Upstream, Content-Length or
  // Transfer-Encoding (none for 1xx/204/304), and "Connection: close" when
  // the connection is closed after this reply.
  Headers headers{};
  std::string body{};  // not sent for HEAD, 1xx, 204, 304
  bool chunked = false;
  size_t chunk_size = 16 * 1024;
  Millis delay{0};           // wait before answering
  bool close_after = false;  // close once written (also after kRaw)
  std::string raw{};

  // Braced defaults above keep designated initializers -Wextra clean.
  static Reply close_connection() { return Reply{.kind = Kind::kClose}; }
  static Reply raw_bytes(std::string bytes, bool close_after = false) {
    return Reply{.kind = Kind::kRaw, .close_after = close_after, .raw = std::move(bytes)};
  }
};

// Called on the connection's thread, once per complete request, in order.
using Handler = std::function<Reply(const RecordedRequest&)>;

class FakeUpstream {
 public:
  // Listens at once on 127.0.0.1:port (0 = pick a free one). Throws
  // std::runtime_error if it cannot bind.
  explicit FakeUpstream(std::string name = "upstream", uint16_t port = 0);
  // On another local address: "127.0.0.2" (several upstreams on one port,
  // as DNS A records name them) or "::1".
  FakeUpstream(std::string name, uint16_t port, std::string ip);
  ~FakeUpstream();  // stop()
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  const std::string& name() const { return name_; }
  uint16_t port() const { return port_; }
  std::string address() const {
    return (ip_.find(':') != std::string::npos ? "[" + ip_ + "]" : ip_) + ":" + std::to_string(port_);
  }
  const std::string& ip() const { return ip_; }

  // --- Behaviour. Thread-safe; applies to requests completed afterwards.
  // Default: 200, X-Upstream: <name>, body "<name> <METHOD> <target>\n".
  void set_handler(Handler h);
  void reset_handler();
  void echo_body(bool chunked = false);                  // 200 with the request body
  void respond_pattern(size_t n, bool chunked = false);  // 200 with pattern_bytes(n)
  void respond_raw(std::string bytes, bool close_after = false);
  void answer_then_close();     // default reply + "Connection: close", then close
  void close_without_answer();  // read the request, then close
  // Extra wait before every answer, on top of Reply::delay.
  void set_delay(Millis d) { delay_ms_ = d.count(); }
  // Answer "Expect: 100-continue" with an interim 100 (default on).
  void set_auto_continue(bool on) { auto_continue_ = on; }
  // The default reply for `req`; handlers may start from it.
  Reply default_reply(const RecordedRequest& req) const;

  // --- Log.
  std::vector<RecordedRequest> requests() const;
  size_t request_count() const;
  // Waits until at least `n` requests were recorded.
  bool wait_for_requests(size_t n, Millis timeout = kDefaultTimeout) const;
  // Forgets recorded requests and errors (connection counters stay).
  void clear();
  // Malformed requests seen (llhttp error names and reasons).
  std::vector<std::string> errors() const;
  size_t connections_accepted() const { return accepted_; }
  size_t open_connections() const { return open_; }

  // --- Lifetime.
  // Closes the listener and every connection and joins all threads; the port
  // then refuses connections. Idempotent.
  void stop();
  // Listens again on the same port after stop(); false if it cannot.
  bool restart();
  bool running() const { return listener_.valid(); }

 private:
  struct Conn {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  class Session;

  bool start(std::string* err);
  void accept_loop();
  void reap_finished_locked();
  void record(const RecordedRequest& req);
  void record_error(std::string e);
  Handler handler() const;

  const std::string name_;
  uint16_t port_ = 0;
  std::string ip_ = "127.0.0.1";
  Fd listener_;
  Fd wake_r_, wake_w_;  // stop() writes a byte; every poll() watches wake_r_
  std::thread acceptor_;

  std::mutex conns_mu_;
  std::list<std::unique_ptr<Conn>> conns_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<RecordedRequest> log_;
  std::vector<std::string> errors_;
  Handler handler_;

  std::atomic<int64_t> delay_ms_{0};
  std::atomic<bool> auto_continue_{true};
  std::atomic<size_t> accepted_{0};
  std::atomic<size_t> open_{0};
};

}  // namespace pasture::test
