// One request and its response, whatever carries them: routing, the
// handler (a balancer pool, Paste#proxy, echo, the status app, an
// in-process Python app), upstream picks, retries, passive health, traffic
// counters and the access log line. The connection that carries it (today
// ClientConn, HTTP/1.1) parses the request, hands over its head and body,
// and takes the response through a ResponseSink (worker/response_sink.h).
//
// Order of the connection's calls for one request:
//   open -> [begin_log] -> start -> request_body* / flush_body* ->
//   request_end -> (the sink's end()) -> complete -> reset
// respond_error may come at any point (before open too: a head that never
// parsed). on_close when the connection ends, whatever the state.
//
// The request head is HTTP/1.1 text and llhttp's spans over it (a
// HeadCollector and check_request_head's RequestHead): an HTTP/2 stream
// would write its HEADERS in that form and run the same checks.
//
// Files: exchange.cc (routing, local answers, the request body),
// exchange_upstream.cc (a proxied exchange), exchange_app.cc (an
// in-process app: wsgi::Sink), exchange_status.cc (the status app),
// exchange_log.cc (the access log line), exchange_static.cc (a file).
#pragma once

#include <llhttp.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "worker/filter_sink.h"
#include "worker/head_check.h"
#include "worker/http_head.h"
#include "worker/response_sink.h"
#include "worker/router.h"
#include "worker/runtime.h"
#include "worker/wsgi/wsgi.h"

namespace pasture::worker {

class UpstreamConn;
struct StaticReply;
enum class FailKind : uint8_t;

// A request head that passed check_request_head, as start() takes it.
struct ExchangeRequest {
  const char* base = nullptr;           // the head's buffer (valid during start() only)
  const HeadCollector* head = nullptr;  // spans into `base`
  const RequestHead* checked = nullptr;
  int64_t content_length = -1;          // the declared length, -1 when none
  // The client asks to switch protocols (HTTP/1.1, Upgrade with Connection:
  // upgrade, not CONNECT): a proxied route whose pool allows one of its
  // tokens forwards it (exchange_tunnel.cc).
  bool upgrade = false;
};

class Exchange final : public wsgi::Sink {
 public:
  Exchange(Worker* w, ResponseSink* sink, const ClientPeer* peer) : w_(w), sink_(sink), peer_(peer) {}
  ~Exchange() override;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // --- from the connection ---------------------------------------------
  // A request head arrived: counted. `http2`: an HTTP/2 stream (logged and
  // given to apps as HTTP/2.0, as nginx does).
  void open(uint8_t method, bool http10, bool http2 = false);
  void begin_log(const char* base, const HeadCollector& h);
  // An error before a complete head: the request line as far as it came.
  void begin_raw_log(const char* p, const char* end);
  void start(const ExchangeRequest& rq);  // route and begin the handler
  // Request body bytes: the payload (a chunked body decoded). For a
  // chunked body flush_body() follows each batch.
  void request_body(const char* p, size_t n);
  void flush_body();
  void discard_body();  // the rest of the body is malformed: nothing more goes upstream
  void request_end();   // the whole request is in
  void flush_upstream();  // after a read: send the upstream head if it waits
  // An answer of pasture's own (400, 408, 413, 502...): ends the response
  // (or the connection, once the response has begun).
  void respond_error(int status, const char* why);
  void complete();  // the sink's end() went through: counted and logged
  void reset();     // before the connection's next request
  void on_close();  // the connection ended: whatever is in flight is dropped
  // The connection is going away gently (linger): the upstream goes now.
  void drop_upstream();
  void on_sink_drained();  // the sink fell under its low-water mark

  bool req_done() const { return req_done_; }
  bool response_started() const { return resp_started_; }
  // While its answer is awaited from an upstream server: how long an idle
  // worker may wait for it, answers before it held (Target::hold_wait_us);
  // else 0.
  uint32_t hold_wait_us() const;

  // --- from UpstreamConn (exchange_upstream.cc) ------------------------
  // The upstream's response head is complete. `p` is its parser. Returns
  // true when UpstreamConn must hand over llhttp's decoded body (chunked).
  bool on_response_head(const char* base, const HeadCollector& h, const llhttp_t* p);
  void on_response_body(const char* p, size_t n);
  void on_response_done(bool upstream_keepalive);
  // The exchange failed before a response head arrived. `status` is 502 or
  // 504; `unsent`: request bytes that never reached the upstream, handed
  // back for a retry (may be null; the exchange takes ownership).
  void on_upstream_error(int status, FailKind kind, const char* why, std::string* unsent);
  // The upstream failed after the response started.
  void on_upstream_abort();
  void on_upstream_drained();  // the upstream's send queue fell below kLowWater
  void flush();                // end of an upstream read: what the sink holds goes

  // --- an upgraded connection (exchange_tunnel.cc) ----------------------
  // The upstream was asked to switch protocols: a 101 may come.
  bool upgrading() const { return upgrading_; }
  // The upstream answered 101 (`p` its parser): true when the tunnel is
  // open; false when the exchange failed instead (the upstream connection
  // was dropped, the client answered 502 or gone).
  bool on_upgrade(const char* base, const HeadCollector& h, const llhttp_t* p);
  void on_tunnel_bytes(const char* p, size_t n);  // from the upstream
  void on_tunnel_eof();                           // the upstream's EOF
  // The upstream connection closed: `clean` after both EOFs, else an
  // error or tunnel_timeout (the client connection is closed too).
  void on_tunnel_end(bool clean);
  // From the connection, after ResponseSink::tunnel(): the client's bytes and EOF.
  void tunnel_in(const char* p, size_t n);
  void tunnel_in_eof();

  // --- wsgi::Sink (exchange_app.cc) -------------------------------------
  void app_head(int status, std::string_view status_line, std::string_view fields, int64_t content_length,
                bool close_after) override;
  bool app_body(const char* p, size_t n) override;
  int64_t app_sendfile(int fd, uint64_t off, size_t n, bool* more) override;
  void app_end(bool ok) override;

 private:
  // kStatusCmd: a POST to the status app; its body (the command) is
  // collected into cmd_, then run by run_status_command().
  // kStatic: a file (exchange_static.cc), its answer sent once the request is in.
  enum class Mode : uint8_t { kNone, kProxy, kLocal, kApp, kStatusCmd, kStatic };
  // What a retry counts against (exchange_upstream.cc, on_upstream_error).
  enum class Retry : uint8_t {
    kStale,       // a pooled connection found closed: neither `retries` nor the budget
    kConnection,  // refused, reset or closed unanswered: `retries`, not the budget
    kBudgeted,    // timeout, invalid answer, retry_on status: `retries` and the budget
  };

  // Routing and pasture's own answers (exchange.cc).
  void run_handler(const char* base, const RequestHead& rh);  // handler_, routed
  bool answer_here(const char* base, std::string_view max_forwards);
  // `fields`: extra header lines, each ending in CRLF; `type`: the
  // Content-Type, "" for none. Sent once the request is in (finish_local).
  void respond_local(int status, std::string_view body, bool close, std::string_view fields = {},
                     std::string_view type = "text/plain; charset=utf-8");
  void finish_local();
  void send_continue();  // 100 Continue, when the client waits for it
  void forward_body(const char* p, size_t n);
  void add_chunk(const char* p, size_t n);
  void flush_chunks();
  void count_request() {
    if (!req_counted_) w_->stats().requests.add();
    req_counted_ = true;
  }
  void count_response();

  // A proxied exchange (exchange_upstream.cc).
  void start_proxy(const char* base, int pool_index, const RequestTarget& t, const NormalPath& np);
  lb::RequestView request_view(const char* base, const PoolRt& pool, const RequestTarget& t,
                               const NormalPath& np, std::string& scratch);
  void take_server(PoolRt& pool, int s, std::string_view request_cookie);
  bool may_retry(const PoolRt& pool, bool sent, uint32_t condition, int status);
  int pick_retry(PoolRt& pool, const char* why, Retry r = Retry::kBudgeted);
  bool budget_allows(PoolRt& pool, const char* why);
  void start_retry(PoolRt& pool, int s, const char* why, std::string* unsent, Retry r);
  void note_health(PoolRt& pool, bool failed, const char* why);
  void end_flight();
  void build_upstream_head(const char* base, const PoolRt& pool, int server, const RequestTarget& t,
                           const NormalPath& np, std::string_view upgrade);
  void connect_upstream();
  int send_interim(const char* base, const HeadCollector& h, const llhttp_t* p);
  std::string_view via_name() const;
  void release_server(bool failed);
  bool same_member(const PoolRt& pool) const;
  shm::ServerStats& server_stats() { return w_->server_stats(w_->pools()[pool_].targets[server_].shm_index); }
  // (Read without counters too: the hold's wait follows it, Target::note_answer.)
  uint64_t since_taken_us() const { return (uv_hrtime() - taken_ns_) / 1000; }

  // An in-process Python app (exchange_app.cc).
  void start_app(const char* base, int app, const RequestTarget& t, const NormalPath& np);
  void app_body_in(const char* p, size_t n);
  void cancel_app();

  // The status app (exchange_status.cc).
  void respond_status(const char* base, const conf::Handler& hd, const RequestTarget& t, const NormalPath& np);
  bool status_client(const char* base, sockaddr_storage* who);
  void collect_status_command(const char* p, size_t n);
  void run_status_command();

  // A static-files app (exchange_static.cc).
  void start_static(const char* base, const RequestHead& rh);
  int static_listing(std::string_view path, std::string_view rel);
  void static_send();
  void static_pump();
  void static_done();
  void free_static();
  std::string_view request_field(const char* base, std::string_view name) const;  // during start() only

  void end_log();  // exchange_log.cc

  // Native filters (exchange_filters.cc): the FilterSink in front of the
  // connection's sink, TransLogger's request fields, and what prefix
  // filters make of an app's environ and of the upstream's path.
  void attach_filters(const char* base, const RequestTarget& t);
  void prefix_environ(wsgi::Request& r);
  // A prefix filter's SCRIPT_NAME and PATH_INFO (rf_->prefixed).
  std::string prefix_script() const;
  void prefix_origin(const char* base, std::string* scheme, std::string* host) const;
  std::string_view prefix_path_info() const;
  // The handler's PATH_INFO: a prefix filter's when one applied, else what
  // the urlmaps left of the path (static and status apps read it).
  std::string_view path_info(const NormalPath& np) const;
  void detach_filters();

  // Upgrade (exchange_tunnel.cc): the client's Upgrade tokens `pool` allows,
  // joined with ", " ("" = none: the request goes without Upgrade).
  std::string allowed_upgrade(const char* base, const PoolRt& pool) const;
  void end_tunnel();  // the tunnel's gauges and its server taken back

  // The client's address as text, made at a request's first need of it
  // (the connection keeps it in binary) and kept for the exchange's life.
  const char* peer_text() const {
    if (!peer_text_[0]) peer_->format(peer_text_);
    return peer_text_;
  }

  Worker* w_;
  ResponseSink* sink_;
  const ClientPeer* peer_;
  mutable char peer_text_[ClientPeer::kTextLen] = {0};  // peer_text()
  const HeadCollector* head_ = nullptr;  // during start() only
  const RouteFilters* rf_ = nullptr;     // during start() only
  FilterSink* fsink_ = nullptr;          // made at the first filtered route, kept for the next ones
  int64_t content_length_ = -1;          // the request's, during start() only
  UpstreamConn* up_ = nullptr;
  wsgi::Call* call_ = nullptr;        // kApp: the app call in progress
  StaticReply* static_ = nullptr;     // kStatic: the file and what of it is sent
  std::string* uphead_ = nullptr;     // request head sent upstream (kept for a retry)
  std::string* chunk_out_ = nullptr;  // re-chunked request body not yet forwarded
  std::string* cmd_ = nullptr;        // kStatusCmd: the body so far
  std::string* local_head_ = nullptr;  // kLocal: the answer's head text, sent by finish_local
  std::string* local_body_ = nullptr;  // ...and its body
  std::string* log_ = nullptr;        // access log line under construction
  uint32_t log_tail_ = 0;             // where its referer/user-agent part starts
  Mode mode_ = Mode::kNone;
  uint8_t method_ = 0;
  bool http10_ = false;
  bool http2_ = false;
  bool closed_ = false;          // the connection ended (on_close)
  bool local_close_ = false;     // kLocal: close after the answer
  bool req_done_ = false;        // the whole request is in (or will never be read)
  bool resp_done_ = false;
  bool resp_started_ = false;    // a final head went to the sink
  bool expect_continue_ = false;
  bool chunked_ = false;         // chunked request body: decoded, then chunked again upstream
  bool body_held_ = false;       // want_body(false) was asked; on_upstream_drained undoes it
  bool app_corked_ = false;      // kApp: app_sendfile corked the socket (released at app_end)
  bool app_no_body_ = false;     // kApp: HEAD, 204, 304: body bytes are dropped
  bool upgrade_asked_ = false;   // the client asked to switch protocols (ExchangeRequest::upgrade)
  bool upgrading_ = false;       // ...and the upstream was asked to
  bool tunnel_ = false;          // a 101 passed: bytes flow both ways (counted in the gauges)
  bool tunnel_in_eof_ = false;   // the client's EOF came and went on to the upstream
  bool req_counted_ = false;     // this request is in the worker's `requests` count
  uint8_t tries_ = 0;            // retries made for this request (against `retries`)
  uint8_t stale_tries_ = 0;      // retries after a stale keep-alive connection
  bool fresh_ = false;           // the next upstream connection must be a new one
  bool stale_same_ = false;      // this attempt retries a stale connection on its own server
  bool in_flight_ = false;       // counted in the pool's in_flight
  bool retry_flight_ = false;    // counted in the pool's retries_in_flight
  uint16_t status_ = 0;          // response status, for the log
  uint64_t tried_ = 0;           // servers tried (bit i = server i < 64)
  int pool_ = -1;
  int server_ = -1;
  uint32_t server_generation_ = 0;  // the discovered member server_ named at the pick (Target::member_generation)
  int handler_ = -1;
  uint32_t script_len_ = 0;      // bytes of the path a urlmap matched (SCRIPT_NAME)
  uint64_t body_bytes_ = 0;      // request body bytes seen (forwarded or consumed)
  uint64_t taken_ns_ = 0;        // uv_hrtime() when the current server was taken
  uint64_t resp_bytes_ = 0;      // response body bytes sent, for the log
  std::string_view set_cookie_;  // sticky cookie: the server id to send back (pool table)
};

}  // namespace pasture::worker
