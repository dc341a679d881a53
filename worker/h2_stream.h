// One HTTP/2 stream of an H2Conn (worker/h2_conn.h): one Exchange, as one
// HTTP/1.1 request is. The request's HEADERS are written as an HTTP/1.1
// head (method, :path, Host from :authority, the fields; a body of unknown
// length framed chunked) and parsed by llhttp, so the exchange gets the same
// HeadCollector and runs the same checks (check_request_head) as a request
// from an HTTP/1.1 client. The stream is the exchange's ResponseSink: its
// head becomes HEADERS (hop-by-hop fields dropped), its body DATA frames
// through an nghttp2 data provider that defers while nothing is buffered.
//
// Flow control both ways:
//   request body   the stream's receive window is reopened (consumed) only
//                  for bytes the exchange took while it wanted body: bytes
//                  that came while it did not (want_body(false): the
//                  upstream is not taking them) are consumed when it wants
//                  body again, so a slow upstream holds the client at one
//                  window per stream.
//   response body  bytes wait in the stream's buffer until nghttp2 frames
//                  them (the client's window) and the connection writes
//                  them; past kStreamHighWater the producer waits
//                  (body() false) until under kStreamLowWater
//                  (Exchange::on_sink_drained).
//
// WebSocket over HTTP/2 (RFC 8441): the connection advertises
// SETTINGS_ENABLE_CONNECT_PROTOCOL; an extended CONNECT (`:method CONNECT`,
// `:protocol websocket`) is written as the HTTP/1.1 Upgrade request an
// upstream expects (GET, `Upgrade: websocket`, a fresh Sec-WebSocket-Key),
// and the upstream's 101 becomes `:status 200`; then DATA frames carry the
// tunnel's bytes both ways (flow control as for a body), END_STREAM each
// way is that side's EOF. DATA before the 200 waits (unconsumed, so the
// stream window bounds it). A 2xx that is not a switch would read as one to
// the client: it becomes 502.
//
// client_body_timeout, as on an HTTP/1.1 connection: between two DATA
// frames of a request body the exchange is taking (not while it holds the
// body back); then 408 if no answer began, else RST_STREAM. Without it a
// stream that never ends its body would hold its exchange (and an upstream
// connection) for as long as the connection lives. client_header_timeout
// from a stream's first HEADERS frame to its header block's end: a block
// left open (no CONTINUATION) blocks the whole connection (RFC 9113 6.10),
// so the connection closes. send_timeout, as nginx's for a stream its
// client's flow-control window blocks: response bytes waiting in the
// stream that no DATA frame takes for that long reset it (its upstream and
// server are freed; found by review: a client that never opened its window
// held them for good).
#pragma once

#include <llhttp.h>
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "worker/exchange.h"
#include "worker/http_head.h"
#include "worker/response_sink.h"
#include "worker/timers.h"

namespace pasture::worker {

class H2Conn;

inline constexpr size_t kStreamHighWater = 128 * 1024;
inline constexpr size_t kStreamLowWater = 32 * 1024;

class H2Stream final : public ResponseSink {
 public:
  H2Stream(H2Conn* c, int32_t id);
  ~H2Stream();
  H2Stream(const H2Stream&) = delete;
  H2Stream& operator=(const H2Stream&) = delete;

  int32_t id() const { return id_; }
  // END_STREAM came from the client (or the answer ended what it sends).
  bool request_ended() const { return req_done_; }
  // After a read: an upstream request head held back for the body's first
  // bytes leaves now (as ClientConn does after each read).
  void flush_upstream() {
    if (started_ && !completed_ && !ex_closed_) ex_.flush_upstream();
  }

  // --- the request, from H2Conn's nghttp2 callbacks -----------------------
  // One field of the request's HEADERS (nghttp2 validated the block's
  // pseudo-fields and refused connection-specific fields, TE other than
  // "trailers" and upper-case names). 0, or NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
  // to reset the stream (a field RFC 9113 8.2 forbids that came through).
  int on_field(std::string_view name, std::string_view value);
  // The request's HEADERS are complete: the exchange starts.
  void on_headers_done(bool end_stream);
  void on_data(const char* p, size_t n);
  void on_request_end();
  // nghttp2 closed the stream (or the connection ended): the exchange ends
  // if it has not, and the stream waits for H2Conn to delete it.
  void on_closed();
  // An END_STREAM left for the response: a request body not read yet is
  // not wanted any more (RST_STREAM NO_ERROR, RFC 9113 8.1).
  void on_response_sent();
  // The data provider (read by nghttp2_session_mem_send).
  ssize_t read_data(uint8_t* buf, size_t len, uint32_t* flags);
  // The connection wrote what read_data gave: the producer resumes if it
  // waited and the buffer fell under kStreamLowWater.
  void after_send();
  // Answer bytes wait here and the client's window (this stream's, or the
  // connection's when `conn_blocked`) is closed.
  bool stalled_by_window(bool conn_blocked) const;
  // Response bytes, or the END_STREAM of a body that has ended, have not
  // left yet (the client's window holds them).
  bool send_pending() const { return queued() > 0 || (eof_ && head_submitted_ && !no_body_ && !end_sent_); }

  H2Stream* prev = nullptr;  // H2Conn's list of live streams
  H2Stream* next = nullptr;

  // --- ResponseSink ------------------------------------------------------
  int interim(std::string_view text) override;
  void head(const ResponseHead& h) override;
  bool body(const char* p, size_t n, bool batch) override;
  bool flush() override;
  void end() override;
  void abort() override;
  bool retract_head() override;
  void await_drain() override { producer_waiting_ = true; }
  size_t queued() const override { return out_ ? out_->size() - out_off_ : 0; }
  size_t backlog() const override;
  int sendfile_fd() override { return -1; }
  void want_body(bool on) override;
  bool peer_address(sockaddr_storage* out) override;
  std::string_view tls_subject() const override;
  // Only an extended CONNECT stream switches (RFC 8441); RFC 9113 8.2.2
  // forbids Upgrade on any other (the request head refuses it).
  bool tunnel(std::string* head) override;
  void tunnel_close_write() override;

 private:
  void refuse(int status, const char* why);  // before start: pasture's own answer
  void submit_head();
  void resume();  // new output for nghttp2: a deferred provider resumes
  void consume(size_t n);
  void arm_body_timer();
  static void on_body_timeout(TimerNode* t);
  void watch_send();  // send_timeout while response bytes wait for the client's window
  static void on_send_timeout(TimerNode* t);
  static void parse_fields(std::string_view text, std::string& store, std::vector<nghttp2_nv>& nva,
                           size_t skip_first_line);

  H2Conn* c_;
  int32_t id_;
  Exchange ex_;
  // The request head under construction: pseudo-fields apart, the regular
  // fields already in HTTP/1.1 form.
  std::string method_, path_, authority_, host_, cookie_, protocol_;
  std::string* fields_ = nullptr;     // "Name: value\r\n"... (a Worker buffer)
  uint32_t field_count_ = 0;
  uint32_t head_bytes_ = 0;           // decoded bytes (RFC 9113 accounting: name + value + 32)
  bool has_length_ = false;           // content-length among them
  const char* bad_ = nullptr;         // why the head is refused (400), or null
  int bad_status_ = 0;
  // The response.
  std::string* resp_store_ = nullptr;  // lower-case names and values nva points into
  std::vector<nghttp2_nv> nva_;
  std::string* out_ = nullptr;         // body bytes nghttp2 has not framed yet, from out_off_
  size_t out_off_ = 0;
  TimerNode body_timer_;               // client_body_timeout
  TimerNode send_timer_;               // send_timeout: response bytes that do not move
  std::string* early_ = nullptr;       // extended CONNECT: DATA before the switch (not consumed yet)
  size_t unconsumed_ = 0;              // request bytes received while the exchange wanted none
  uint64_t body_in_ = 0;               // request body bytes so far (client_max_body_size)
  bool started_ = false;               // the exchange started (or refused the head)
  bool req_done_ = false;              // END_STREAM from the client
  bool head_pending_ = false;          // nva_ built, not submitted
  bool head_submitted_ = false;
  bool no_body_ = false;
  bool eof_ = false;                   // end(): no more body
  bool end_sent_ = false;              // read_data gave nghttp2 the END_STREAM
  bool deferred_ = false;              // read_data returned NGHTTP2_ERR_DEFERRED
  bool producer_waiting_ = false;
  bool body_paused_ = false;           // want_body(false)
  bool completed_ = false;             // Exchange::complete() ran
  bool ex_closed_ = false;             // Exchange::on_close() ran
  bool closed_ = false;                // nghttp2 closed the stream
  bool connect_ = false;               // an extended CONNECT (RFC 8441)
  bool tunnel_ = false;                // ...that switched: DATA is tunnel bytes
};

}  // namespace pasture::worker
