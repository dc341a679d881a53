// One client connection: the server side of HTTP/1.1 (keep-alive,
// pipelining, Content-Length and chunked bodies) and the client half of a
// proxied exchange.
//
// States (one request at a time; pipelined bytes wait in inbuf_):
//   kIdle     keep-alive, no byte of the next request yet   (keepalive_timeout,
//             drain_idle_grace once the worker drains; send_timeout while
//             answers the client does not read hold further requests
//             back: out_full_)
//   kHead     reading a request head                       (client_header_timeout)
//   kBody     head handled; the body streams to its handler  (client_body_timeout,
//             re-armed by every read that brings body bytes)
//   kWaiting  request complete; its response is in progress (send_timeout while
//             the client's unread answer holds the upstream paused)
//   kLinger   last response queued; once it is written the write side is
//             shut, then input is drained until EOF         (send_timeout, then 2 s)
//
// llhttp callbacks only record; parse() acts on what they recorded.
#pragma once

#include <llhttp.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <string>

#include "worker/http_head.h"
#include "worker/runtime.h"
#include "worker/stream_io.h"
#include "worker/timers.h"
#include "worker/upstream_conn.h"
#include "worker/wsgi/wsgi.h"

namespace pasture::worker {

class UpstreamConn;

class ClientConn final : public StreamOwner, public wsgi::Sink {
 public:
  // Take ownership of an accepted, non-blocking socket.
  static void accept_fd(Worker* w, int fd, const sockaddr* peer);

  // --- called by UpstreamConn -------------------------------------------
  // The upstream's response head is complete. `p` is its parser. Returns
  // true if the body must be de-chunked for this client (HTTP/1.0).
  bool on_response_head(const char* base, const HeadCollector& h, const llhttp_t* p);
  void on_response_body(const char* p, size_t n);
  void on_response_done(bool upstream_keepalive);
  // The exchange failed before a response head arrived. `status` is 502 or
  // `unsent`: request bytes that never reached the upstream, handed back for
  // a retry (may be null; the client takes ownership).
  void on_upstream_error(int status, FailKind kind, const char* why, std::string* unsent);
  // The upstream failed after the response started: the client connection
  // can only be closed.
  void on_upstream_abort();
  void on_upstream_drained();  // the upstream's send queue fell below kLowWater
  void flush();                // write a response head and chunks still held back
  bool is_head_request() const { return method_ == HTTP_HEAD; }

  void on_write_done(int status) override;
  void on_drain();  // the worker started draining (Worker::start_drain)

  // --- wsgi::Sink: a Python app served in-process (client_app.cc) ----------
  void app_head(int status, std::string_view status_line, std::string_view fields, int64_t content_length,
                bool close_after) override;
  bool app_body(const char* p, size_t n) override;
  int64_t app_sendfile(int fd, uint64_t off, size_t n, bool* more) override;
  void app_end(bool ok) override;

  uint32_t registry_index = 0;

 private:
  enum class State : uint8_t { kIdle, kHead, kBody, kWaiting, kLinger, kClosed };
  // kStatusCmd: a POST to the status app; its body (the command) is
  // collected into cmd_, then run by run_status_command().
  enum class Mode : uint8_t { kNone, kProxy, kLocal, kApp, kStatusCmd };

  explicit ClientConn(Worker* w);
  ~ClientConn() override = default;

  static void on_read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_close_cb(uv_handle_t* h);
  static void on_timer(TimerNode* t);
  static const llhttp_settings_t* settings();

  // --- the transport -----------------------------------------------------
  // Every byte for the client leaves through send_out() and every byte from
  // it arrives through on_bytes() (then on_eof() or close() on an error), so
  // a transport that is not the plain socket (TLS over memory BIOs) fits
  // between tcp_ and these with a change here only. send_out returns 0 or a
  // libuv error; bytes not written at once are queued (queued(): how many).
  int send_out(const uv_buf_t* bufs, unsigned n) { return stream_send(stream(), bufs, n); }
  int send_out(const char* p, size_t n) { return stream_send(stream(), p, n); }
  size_t queued() const { return tcp_.write_queue_size; }
  // The socket, when bytes may go to it with sendfile(2) now: the transport
  // is the plain socket and nothing waits in its queue. Else -1 (the caller
  // reads the file and uses send_out).
  int sendfile_fd();
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  void on_bytes(const char* data, size_t n);
  void run_inbuf();
  const char* parse(const char* base, const char* p, const char* end);
  void retain(const char* base, const char* rest, const char* end, bool from_inbuf);
  bool on_head(const char* base, const char* head_end);
  // `t` and `np`: the request target as on_head parsed and normalized it.
  void start_proxy(const char* base, int pool_index, const RequestTarget& t, const NormalPath& np);
  lb::RequestView request_view(const char* base, const PoolRt& pool, const RequestTarget& t,
                               const NormalPath& np, std::string& scratch);
  void take_server(PoolRt& pool, int s, std::string_view request_cookie);
  // What a retry counts against (client_upstream.cc, on_upstream_error).
  enum class Retry : uint8_t {
    kStale,       // a pooled connection found closed: neither `retries` nor the budget
    kConnection,  // refused, reset or closed unanswered: `retries`, not the budget
    kBudgeted,    // timeout, invalid answer, retry_on status: `retries` and the budget
  };
  bool may_retry(const PoolRt& pool, bool sent, uint32_t condition, int status);
  int pick_retry(PoolRt& pool, const char* why, Retry r = Retry::kBudgeted);
  bool budget_allows(PoolRt& pool, const char* why);
  void start_retry(PoolRt& pool, int s, const char* why, std::string* unsent, Retry r);
  void note_health(PoolRt& pool, bool failed, const char* why);
  void end_flight();
  void build_upstream_head(const char* base, const PoolRt& pool, int server,
                           const RequestTarget& t, const NormalPath& np);
  void connect_upstream();
  // An in-process Python app (client_app.cc).
  void start_app(const char* base, int app, const RequestTarget& t, const NormalPath& np);
  // The status app (client_status.cc).
  void respond_status(const char* base, const conf::Handler& hd, const RequestTarget& t, const NormalPath& np);
  bool status_client(const char* base, sockaddr_storage* who);
  void collect_status_command(const char* p, size_t n);
  void run_status_command();
  void app_body_in(const char* p, size_t n);
  void cancel_app();
  int send_app_bytes(const char* p, size_t n);
  void forward_body(const char* p, size_t n);
  void add_chunk(const char* p, size_t n);
  void flush_chunks();
  int head_error_status(const char* base, llhttp_errno_t err) const;
  void on_request_complete();
  void finish_local();
  void finish_exchange();
  void next_request();
  void update_reading();
  void on_eof();
  void reset_request();

  // Responses pasture makes itself. `fields`: extra header lines, each
  // ending in CRLF; `type`: the Content-Type, "" for none.
  void respond_local(int status, std::string_view body, bool close, std::string_view fields = {},
                     std::string_view type = "text/plain; charset=utf-8");
  bool answer_here(const char* base, std::string_view max_forwards);
  int count_trailer(size_t n);
  bool check_chunk_crlf(const char* q, const char* end);
  int send_interim(const char* base, const HeadCollector& h, const llhttp_t* p);
  std::string_view via_name() const;
  void respond_error(int status, const char* why);
  void hold_upstream_if_behind();
  void release_server(bool failed);
  // Traffic counters (common/stats.h): the current server's, and the
  // client-side answer once it is complete (or aborted, in close()).
  shm::ServerStats& server_stats() {
    return w_->server_stats(w_->pools()[pool_].targets[server_].shm_index);
  }
  uint64_t since_taken_us() const { return (uv_hrtime() - taken_ns_) / 1000; }
  void count_response();
  void count_request() {
    if (!req_counted_) w_->stats().requests.add();
    req_counted_ = true;
  }
  void begin_log(const char* base);
  void begin_raw_log(const char* p, const char* end);
  void end_log();
  void stop_reading();
  void start_reading();

  uint32_t idle_timeout_ms() const;  // keepalive_timeout, or the drain grace
  void end_drain_grace();
  void shutdown_and_linger();
  void on_shutdown(int status);
  void close();
  void arm_timer(uint32_t ms);
  void rearm_timer(uint32_t ms);
  void arm_send_timer() { rearm_timer(w_->site().server.send_timeout_ms); }

  uv_tcp_t tcp_;
  Worker* w_;
  llhttp_t parser_;
  HeadCollector head_;
  TimerNode timer_;
  UpstreamConn* up_ = nullptr;
  wsgi::Call* call_ = nullptr;     // kApp: the app call in progress
  bool app_chunked_ = false;       // kApp: the response is chunked here
  bool app_paused_ = false;        // kApp: the client is behind; the app waits (resume on drain)
  bool app_no_body_ = false;       // kApp: HEAD, 204, 304: body bytes are dropped
  std::string* inbuf_ = nullptr;   // unparsed bytes: a partial head or pipelined requests
  uint32_t inbuf_parsed_ = 0;      // bytes of inbuf_ llhttp has consumed
  uint32_t msg_start_ = 0;         // offset of the current head in its buffer
  std::string* uphead_ = nullptr;  // request head sent upstream (kept for a retry)
  std::string* resp_head_ = nullptr;  // response head held back to share a writev with body
  std::string* chunk_out_ = nullptr;  // re-chunked request body not yet forwarded
  std::string* cmd_ = nullptr;        // kStatusCmd: the body so far (a take_buf() buffer)
  std::string* resp_out_ = nullptr;   // re-chunked response body not yet sent (flush)

  State state_ = State::kIdle;
  Mode mode_ = Mode::kNone;
  uint8_t method_ = 0;
  bool head_started_ = false;
  bool keep_alive_ = false;   // client wants (and may have) keep-alive
  bool http10_ = false;
  bool req_done_ = false;
  bool resp_done_ = false;
  bool resp_started_ = false;
  bool client_eof_ = false;
  bool out_full_ = false;     // answers over kHighWater wait in our queue: no new request, no reading
  bool shut_done_ = false;    // kLinger: every byte written and the write side shut
  bool expect_continue_ = false;
  bool chunked_ = false;      // chunked request body: decoded, then chunked again
  bool rechunk_ = false;      // chunked response body: decoded, then chunked again
  uint8_t crlf_due_ = 0;      // bytes of a request chunk's CRLF not checked yet (check_chunk_crlf)
  const char* parse_end_ = nullptr;  // end of the bytes parse() is running llhttp on
  uint32_t trailer_bytes_ = 0;  // of the chunked body's trailer section, never forwarded
  bool up_paused_ = false;    // we paused upstream reads: our write queue is full
  bool reading_ = false;
  bool in_parse_ = false;
  bool served_ = false;         // at least one response was completed
  bool client_paused_ = false;  // we stopped reading the client: upstream is backed up
  bool trusted_peer_ = false;   // the peer is in trusted_proxies (its X-Forwarded-* pass on)
  uint8_t tries_ = 0;          // retries made for this request (against `retries`)
  uint8_t stale_tries_ = 0;    // retries after a stale keep-alive connection
  bool fresh_ = false;         // the next upstream connection must be a new one
  bool stale_same_ = false;    // this attempt retries a stale connection on its own server
  bool in_flight_ = false;      // counted in the pool's in_flight
  bool retry_flight_ = false;   // counted in the pool's retries_in_flight
  uint64_t tried_ = 0;          // servers tried (bit i = server i < 64)
  int pool_ = -1;
  int server_ = -1;
  int handler_ = -1;
  uint32_t local_head_len_ = 0;
  uint32_t script_len_ = 0;      // bytes of the path a urlmap matched (SCRIPT_NAME)  // resp_head_ bytes before a local response's body
  uint64_t body_bytes_ = 0;   // request body bytes seen (forwarded or consumed)
  uint64_t taken_ns_ = 0;     // uv_hrtime() when the current server was taken (latency histograms)
  uint64_t chunked_in_ = 0;   // decoded bytes of a chunked request body (client_max_body_size)
  bool too_large_ = false;    // the chunked body passed client_max_body_size: 413
  bool req_counted_ = false;  // this request is in the worker's `requests` count
  std::string* log_ = nullptr;   // access log line under construction
  uint32_t log_tail_ = 0;        // where its referer/user-agent part starts
  uint16_t status_ = 0;          // response status, for the log
  uint64_t resp_bytes_ = 0;      // response body bytes sent, for the log
  std::string_view set_cookie_;  // sticky cookie: the server id to send back (pool table)
  char peer_[48] = {0};       // client address, text
};

}  // namespace pasture::worker
