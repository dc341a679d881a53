// One client connection: the server side of HTTP/1.1 (reading, llhttp,
// keep-alive, pipelining, Content-Length and chunked bodies, 100-continue,
// the response's head and framing on the wire, timeouts, linger). What a
// request does (routing, the handler, upstreams, the log) is its
// Exchange (worker/exchange.h), to which this connection is the ResponseSink.
// The parser, the head's spans and the Exchange (Request, ~470 bytes) exist
// from a request's first byte until the connection is idle again with
// nothing buffered: an idle keep-alive connection keeps none of them
// (release_request, at the end of the loop turn).
//
// States (one request at a time; pipelined bytes wait in inbuf_):
//   kIdle     keep-alive, no byte of the next request yet, or a TLS
//             handshake not finished (client_header_timeout)  (keepalive_timeout,
//             drain_idle_grace once the worker drains; send_timeout while
//             answers the client does not read hold further requests
//             back: out_full_)
//   kHead     reading a request head                       (client_header_timeout;
//             send_timeout until an earlier answer's queued tail is written)
//   kBody     head handled; the body streams to its handler  (client_body_timeout,
//             re-armed by every read that brings body bytes)
//   kWaiting  request complete; its response is in progress (send_timeout while
//             the client's unread answer holds the upstream paused)
//   kLinger   last response queued; once it is written the write side is
//             shut, then input is drained until EOF         (send_timeout, then 2 s)
//   kTunnel   the upstream switched protocols (101): bytes both ways,
//             unparsed (client_tunnel.cc; the upstream side keeps
//             tunnel_timeout); closes once both halves are shut
//
// llhttp callbacks only record; parse() acts on what they recorded.
#pragma once

#include <llhttp.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>

#include "worker/http_head.h"
#include "worker/runtime.h"
#include "worker/edge_socket.h"
#include "worker/stream_io.h"
#include "worker/timers.h"
#include "worker/exchange.h"
#include "worker/free_list.h"
#include "worker/h2_conn.h"
#include "worker/response_sink.h"
#include "worker/tls_session.h"

namespace pasture::worker {

class H2Conn;

class ClientConn final : public SocketOwner, public ResponseSink, public TurnSender {
 public:
  static void* operator new(size_t) { return FreeList<sizeof(ClientConn)>::take(); }
  static void operator delete(void* p) { FreeList<sizeof(ClientConn)>::give(p); }

  // Take ownership of an accepted, non-blocking socket; `tls` (the
  // listener's context) makes it a TLS connection; `h2c`: the listener
  // serves HTTP/2 by prior knowledge (worker/client_h2.cc).
  static void accept_fd(Worker* w, int fd, const sockaddr* peer, const TlsContext* tls = nullptr,
                        bool h2c = false);

  // --- SocketOwner: the client socket (worker/edge_socket.h) ----------
  void on_sock_read(const char* p, size_t n) override;
  void on_sock_end(int err) override;
  void on_write_done(int status) override;
  void on_sock_shut(int status) override;
  HoldWait hold_wait() const override;
  // The end of the loop turn in which it closed (Worker::defer_close).
  static void finish_close(void* conn);

  void on_drain();  // the worker started draining (Worker::start_drain)
  void on_exit();   // the worker exits with this connection open (Worker::finish): may close it
  // The end of the loop turn in which the connection went idle: the
  // Request goes, unless a request began meanwhile.
  void send_deferred() override;

  // --- ResponseSink: the current exchange's response (client_response.cc) --
  int interim(std::string_view text) override;
  void head(const ResponseHead& h) override;
  bool body(const char* p, size_t n, bool batch) override;
  bool flush() override;
  void end() override;
  // The response broke after its head went out: the connection ends
  // without close_notify over TLS, and with RST when a plain answer is
  // framed by the connection's end, so that a cut body is never taken for
  // complete (found by review: a cut upstream body reached the client as
  // whole).
  void abort() override;
  bool retract_head() override;
  void await_drain() override;
  // Under TLS too: what is queued is ciphertext (TlsSession keeps none).
  size_t queued() const override { return sock_.queued(); }
  int sendfile_fd() override;
  bool cork(bool on) override;  // -1 under TLS: the app's files are read and sent
  void want_body(bool on) override;
  bool peer_address(sockaddr_storage* out) override;
  std::string_view tls_subject() const override { return tls_ ? tls_->kept_subject() : std::string_view(); }
  bool tunnel(std::string* head) override;  // client_tunnel.cc
  void tunnel_close_write() override;

  uint32_t registry_index = 0;

  // --- HTTP/2 (client_h2.cc) ---------------------------------------------
  // From now on the connection is HTTP/2: its bytes go to an H2Conn, which
  // writes through this connection's transport (H2Transport below). Called
  // on the h2c preface, and by the TLS glue when ALPN chose "h2".
  void start_h2();

 private:
  void h2_read(bool on);         // for H2 (below): the transport's read switch
  void h2_close(bool graceful);  // and its end
  // kH2: an HTTP/2 connection (h2_): this object is its transport only.
  enum class State : uint8_t { kIdle, kHead, kBody, kWaiting, kLinger, kTunnel, kClosed, kH2 };

  explicit ClientConn(Worker* w);
  ~ClientConn() = default;

  static void on_timer(TimerNode* t);
  static const llhttp_settings_t* settings();

  // --- the transport -----------------------------------------------------
  // Every byte for the client leaves through send_out() and every byte from
  // it arrives through on_bytes() (then on_eof(), or close() on an error),
  // so a transport that is not the plain socket (TLS over memory BIOs) fits
  // between sock_ and these with a change here only: send_out,
  // on_sock_read, queued(), sendfile_fd() (-1 for such a transport: the
  // app's files are read and sent), shutdown_and_linger's shutdown (after a
  // close_notify) and end_drain_grace's peek. send_out returns 0 or a
  // negative errno; bytes not written at once are queued. The TLS transport
  // is worker/client_tls.cc.
  int send_out(const uv_buf_t* bufs, unsigned n) { return tls_ ? tls_send(bufs, n) : sock_.send(bufs, n); }
  int send_raw(const char* p, size_t n) {  // to the socket itself (TLS: ciphertext)
    uv_buf_t b = uv_buf_init(const_cast<char*>(p), (unsigned)n);
    return sock_.send(&b, 1);
  }
  int send_out(const char* p, size_t n) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(p), (unsigned)n);
    return send_out(&b, 1);
  }
  void on_bytes(const char* data, size_t n);
  bool h2_probe(const char* data, size_t n);  // h2c: true when the bytes were taken

  // --- TLS (client_tls.cc) -------------------------------------------------
  void tls_start(const TlsContext& ctx);
  void tls_feed(const char* data, size_t n);  // ciphertext read from the socket
  int tls_send(const uv_buf_t* bufs, unsigned n);
  void tls_close_notify();                    // before the write side is shut
  void tls_check_open();                      // the handshake just ended: count it, note the subject
  void tls_handshake_failed(const char* why);
  void on_plaintext(const char* data, size_t len);
  void on_ciphertext(const char* data, size_t len);
  // The TLS session with its callbacks to this connection, and the HTTP/2
  // connection with its transport (this connection), each in one
  // allocation: their vtables are not in every plain connection.
  struct Tls final : TlsSession::Sink, TlsSession {
    Tls(const TlsContext& ctx, ClientConn* conn) : TlsSession(ctx, *this), c(conn) {}
    void on_plaintext(const char* data, size_t len) override { c->on_plaintext(data, len); }
    void on_ciphertext(const char* data, size_t len) override { c->on_ciphertext(data, len); }
    ClientConn* c;
    int write_error = 0;  // a libuv error from writing ciphertext (on_ciphertext)
  };
  struct H2 final : H2Transport, H2Conn {
    H2(ClientConn* conn) : H2Conn(conn->w_, this, &conn->peer_), c(conn) {}
    int h2_send(const uv_buf_t* bufs, unsigned n) override { return c->send_out(bufs, n); }
    size_t h2_queued() const override { return c->queued(); }
    void h2_read(bool on) override { c->h2_read(on); }
    void h2_close(bool graceful) override { c->h2_close(graceful); }
    bool h2_peer(sockaddr_storage* out) override { return c->peer_address(out); }
    std::string_view h2_tls_subject() const override { return c->tls_subject(); }
    ClientConn* c;
  };

  void run_inbuf();
  const char* parse(const char* base, const char* p, const char* end);
  void retain(const char* base, const char* rest, const char* end, bool from_inbuf);
  bool on_head(const char* base, const char* head_end);
  int count_trailer(size_t n);
  bool check_chunk_crlf(const char* q, const char* end);
  bool trailer_ok(const char* p, const char* end);  // no bare CR in [p, end) of a trailer section
  int head_error_status(const char* base, llhttp_errno_t err) const;
  void on_request_complete();
  void finish_exchange();
  void next_request();
  void update_reading();
  void on_eof();
  void on_tunnel_shut(int status);  // client_tunnel.cc
  void reset_request();
  bool behind();  // over kHighWater: the producer waits (on_write_done resumes it)
  int send_held(const uv_buf_t* extra, unsigned n);
  static constexpr size_t kCoalesceMax = 2048;  // body bytes send_held copies into the head's buffer
  void stop_reading();
  void start_reading();

  uint32_t idle_timeout_ms() const;  // keepalive_timeout, or the drain grace
  void arm_idle_timer();             // ...once the last answer is out; send_timeout before
  void arm_head_timer();             // kHead: client_header_timeout, send_timeout before
  void end_drain_grace();
  void shutdown_and_linger();
  void reset_when_sent();
  void cut_now();
  bool all_sent_or_lost();
  void on_shutdown(int status);
  void close(bool rst = false);  // rst: the client sees a reset (abort)
  void arm_timer(uint32_t ms);
  void rearm_timer(uint32_t ms);
  void arm_send_timer() { rearm_timer(w_->site().server.send_timeout_ms); }

  // What a request needs and an idle connection does not.
  struct Request {
    Request(Worker* w, ClientConn* c);
    static void* operator new(size_t) { return FreeList<sizeof(Request)>::take(); }
    static void operator delete(void* p) { FreeList<sizeof(Request)>::give(p); }
    llhttp_t parser;
    HeadCollector head;
    Exchange ex;  // the request in progress (reset between pipelined requests)
    std::string* resp_head = nullptr;  // response head held back to share a writev with body
    std::string* resp_out = nullptr;   // batched response chunks not yet sent (flush)
    const char* parse_end = nullptr;   // end of the bytes parse() is running llhttp on
    uint64_t chunked_in = 0;           // decoded bytes of a chunked request body (client_max_body_size)
    uint32_t inbuf_parsed = 0;   // bytes of the connection's inbuf_ llhttp has consumed
    uint32_t msg_start = 0;      // offset of the current head in its buffer
    uint32_t trailer_bytes = 0;  // of the chunked body's trailer section, never forwarded
    uint32_t answers = 0;        // answers completed (hold_wait)
    uint8_t crlf_due = 0;        // bytes of a request chunk's CRLF not checked yet (check_chunk_crlf)
  };
  Request& request() {
    if (!rq_) rq_ = std::make_unique<Request>(w_, this);
    return *rq_;
  }
  llhttp_t& parser() { return request().parser; }
  HeadCollector& head() { return request().head; }
  const HeadCollector& head() const { return rq_->head; }  // while parsing: there is one
  Exchange& ex() { return request().ex; }
  void release_request();  // idle with nothing buffered: queue the Request's release
  void give_request_bufs();

  // Every idle keep-alive connection holds all of this (bench --shapes
  // memory): what only a request needs lives in Request, the flags are
  // bits, and the members are ordered so that there are no holes.
  // The process's one Worker (set by accept_fd), shared rather than a
  // pointer in each connection.
  static inline Worker* w_ = nullptr;
  // After registry_index (public, above), before the 8-byte aligned ones:
  // 24 bytes of vtables + 4 + these 27 fit in 56 (1 byte of padding).
  ClientPeer peer_;
  State state_ = State::kIdle;
  uint8_t probe_len_ = 0;  // bytes of the preface matched so far (held back)
  uint16_t reset_polls_ = 0;  // reset_when_sent: looks left before the reset anyway
  bool tls_open_ : 1 = false;      // the handshake completed (tls_check_open ran)
  bool tls_bytes_in_ : 1 = false;  // the client sent something (an EOF before it is no handshake error)
  bool head_started_ : 1 = false;
  bool head_on_send_ : 1 = false;  // kHead's timer is send_timeout: an earlier answer's tail is queued
  bool keep_alive_ : 1 = false;     // client wants (and may have) keep-alive
  bool client_closes_ : 1 = false;  // the request itself asked for the close (Connection: close, HTTP/1.0)
  bool http10_ : 1 = false;
  bool client_eof_ : 1 = false;
  bool out_full_ : 1 = false;   // answers over kHighWater wait in our queue: no new request, no reading
  bool shut_done_ : 1 = false;  // kLinger: every byte written and the write side shut
  bool chunked_ : 1 = false;    // chunked request body: decoded for the exchange
  bool rechunk_ : 1 = false;    // the response body goes out in chunks of ours
  bool in_trailer_ : 1 = false;      // parse(): past the last chunk's line (trailer_ok() checks)
  bool trailer_cr_ : 1 = false;      // the trailer bytes so far end in a CR
  bool chunk_line_end_ : 1 = false;  // parse(): llhttp paused at the end of a chunk-size line
  bool producer_paused_ : 1 = false;  // our write queue is full: the upstream or app waits
  bool in_parse_ : 1 = false;
  bool served_ : 1 = false;         // at least one response was completed
  bool client_paused_ : 1 = false;  // we stopped reading the client: the exchange takes no body now
  bool too_large_ : 1 = false;      // the chunked body passed client_max_body_size: 413
  bool h2c_ : 1 = false;            // the first bytes may be the HTTP/2 preface (h2c listener)
  bool tunnel_shut_ : 1 = false;    // kTunnel: the upstream's EOF is being passed on (shutdown)
  bool aborted_ : 1 = false;        // abort(): no close_notify
  bool until_eof_ : 1 = false;      // the answer being sent ends with the connection (abort() resets)
  bool reset_due_ : 1 = false;      // kLinger: reset once every byte is sent (reset_when_sent)
  bool tunnel_shut_done_ : 1 = false;
  bool release_queued_ : 1 = false;  // in the worker's end-of-turn list (release_request)
  EdgeSocket sock_;
  std::unique_ptr<Request> rq_;
  TimerNode timer_;
  std::unique_ptr<Tls> tls_;      // the TLS transport, or null (the plain socket)
  H2* h2_ = nullptr;              // kH2: the HTTP/2 connection this one carries
  std::string* inbuf_ = nullptr;  // unparsed bytes: a partial head or pipelined requests
};

}  // namespace pasture::worker
