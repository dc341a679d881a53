// One connection to an upstream server: connect, send a request head and a
// streamed body, parse the response with llhttp and hand it to the client
// side; afterwards wait in the per-worker keep-alive pool of its Target.
//
// States:
//   kConnecting  TCP connect in progress           (connect_timeout; a unix
//                socket connects at once and starts kActive; a plain TCP
//                one sends the first head while connecting: connect_plain)
//   kHandshake   an https:// server: the TLS handshake after the connect
//                (upstream_tls.cc); the rest of connect_timeout runs, and
//                the request waits in `pending_` as while connecting
//   kActive      attached to an Exchange: sending and/or reading a response
//                                                  (read_timeout once the request is sent)
//   kIdle        in the keep-alive pool; any byte or EOF closes it
//   kTunnel      it answered 101: bytes both ways unparsed (tunnel_timeout,
//                re-armed by every byte either way); closes once both
//                halves are shut, or on an error
//   kClosed      the socket closed; freed at the end of the loop turn
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <memory>
#include <string>

#include "worker/edge_socket.h"
#include "worker/http_head.h"
#include "worker/runtime.h"
#include "worker/stream_io.h"
#include "worker/timers.h"
#include "worker/tls_session.h"

namespace pasture::worker {

class Exchange;

// Why an exchange failed before a response head reached the client; decides
// whether it may be retried and whether it counts against the server.
enum class FailKind : uint8_t {
  kConnect,         // connect() failed: nothing was sent
  kConnectTimeout,  // connect() timed out: nothing was sent
  kStale,           // a reused idle connection closed before any response byte
  kReset,           // closed or reset after the request was sent, before answering
  kTimeout,         // no response head within read_timeout
  kInvalid,         // unparsable or unsupported response head
};

class UpstreamConn final : public SocketOwner, public TurnSender, private TlsSession::Sink {
 public:
  // An idle pooled connection to `server` of `pool`, or a new one (connecting).
  // `fresh` forbids reuse (retry after a stale pooled connection).
  // nullptr if a new connection failed at once; *err is then its libuv error.
  static UpstreamConn* acquire(Worker* w, PoolRt* pool, int server, bool fresh, int* err);

  // Attach to an exchange and send `head` (owned by the exchange, must stay valid
  // until the response head arrives or the exchange ends).
  void start(Exchange* c, const std::string* head, bool head_request);
  void send_body(const char* p, size_t n);
  void request_done();  // the whole request is queued; start the read timeout
  void flush();         // send the head if it is still held back
  // Detach and close without reuse (client went away or the exchange failed).
  void abort();
  void pause_read();
  void resume_read();
  size_t queued() const { return sock_.queued() + (pending_ ? pending_->size() : 0); }

  // kTunnel (upstream_tunnel.cc): the client's bytes, written as they are;
  // the client's EOF, passed on once they are written (half-close); and the
  // exchange gone after its client half-closed: what is queued is written,
  // then the connection waits for its server's EOF (tunnel_timeout) alone.
  void tunnel_send(const char* p, size_t n);
  void tunnel_shutdown();
  void tunnel_detach();
  bool reused() const { return reused_; }
  bool body_sent() const { return body_sent_; }

  // SocketOwner (worker/edge_socket.h)
  void on_sock_read(const char* p, size_t n) override { on_read((ssize_t)n, p); }
  void on_sock_end(int err) override { on_read(err, ""); }  // (err < 0: no bytes)
  void on_write_done(int status) override;
  void on_sock_shut(int status) override;  // upstream_tunnel.cc
  void on_sock_connected(int status) override { on_connected(status); }
  void send_deferred() override;  // the worker's end-of-turn send (request_done, send_first_head)

 private:
  enum class State : uint8_t { kConnecting, kHandshake, kActive, kIdle, kTunnel, kClosed };

  UpstreamConn(Worker* w, PoolRt* pool, int server);
  ~UpstreamConn() = default;

  static void finish_close(void* conn);  // the end of the loop turn it closed in
  static void on_timer(TimerNode* t);
  static void on_send_timer(TimerNode* t);
  void watch_send();
  static const llhttp_settings_t* settings();
  friend struct UpstreamCallbacks;

  int connect();  // 0, or a libuv error (the connection is closed)
  int connect_unix(const ResolvedServer& a);
  int open_socket(const ResolvedServer& a, bool in_progress_ok);  // 0, or the error (closed)
  int connect_plain(const ResolvedServer& a);
  void send_first_head();
  void connected_plain();
  void connect_failed(int err);  // a 502 FailKind::kConnect
  void set_nodelay();
  void on_connected(int status);
  void on_ready();  // connected (and the TLS handshake done): the request goes out
  void on_read(ssize_t nread, const char* data);
  void on_stream(ssize_t nread, const char* data);  // bytes (plaintext) or an EOF/error
  int send_bufs(const uv_buf_t* bufs, unsigned n);  // to the socket, through TLS if any
  const char* parse(const char* base, const char* p, const char* end);
  void on_message_complete(const char* end, const char* pos);
  void keep_partial_head(const char* base, const char* end);
  int count_trailer(size_t n);
  void abort_client();
  void fail(int status, FailKind kind, const char* why);
  void release_to_pool();
  void drop_older_idle();
  void close();
  void write_head_with(const char* body, size_t n);
  void arm_read_timer();
  // upstream_tls.cc: TLS to an https:// server, a TlsSession over sock_
  void tls_begin();
  void tls_read(ssize_t nread, const char* data);  // ciphertext, or the TCP EOF / a read error
  void tls_opened();
  void tls_handshake_failed(const char* why);
  int tls_send(const uv_buf_t* bufs, unsigned n);
  void tls_close_notify();
  void on_plaintext(const char* data, size_t len) override;
  void on_ciphertext(const char* data, size_t len) override;
  // upstream_tunnel.cc
  const char* start_tunnel(const char* base, const char* p, const char* end);
  void tunnel_read(ssize_t nread, const char* data);
  void tunnel_end(bool clean);
  void arm_tunnel_timer();

  EdgeSocket sock_;
  Worker* w_;
  PoolRt* pool_;
  int server_;
  uint32_t member_generation_;  // the discovered member it was opened to (Target::member_generation)
  llhttp_t parser_;
  HeadCollector head_;
  TimerNode timer_;       // connect, read, idle
  TimerNode send_timer_;  // send_timeout: armed while request bytes wait in the queue
  Exchange* client_ = nullptr;  // the exchange it serves
  const std::string* head_out_ = nullptr;  // request head not yet written
  std::string* pending_ = nullptr;  // bytes to send once connected
  std::string* inbuf_ = nullptr;    // partial response head
  uint32_t msg_start_ = 0;
  uint64_t idle_since_ = 0;      // when it last entered the keep-alive pool (loop time)
  State state_ = State::kConnecting;
  bool plain_connecting_ = false;  // kConnecting by connect_plain: a write or read will tell
  bool nodelay_ = false;           // TCP_NODELAY is set
  bool send_queued_ = false;       // in the worker's end-of-turn list (Worker::defer_send)
  int connect_error_ = 0;          // the first head's write failed: the connect's error (connect_failed)
  bool reused_ = false;
  uint64_t connect_ns_ = 0;  // stats_clock_ns() when connect() began (the connect histogram)
  bool head_request_ = false;
  bool head_done_ = false;       // response head handed to the client
  bool got_bytes_ = false;       // any response byte arrived
  bool body_sent_ = false;       // request body bytes reached the socket or queue
  bool request_done_ = false;
  bool early_answer_ = false;    // the response head came before the request was all written
  bool decode_ = false;          // forward on_body data instead of raw bytes
  bool head_started_ = false;
  bool msg_done_ = false;        // llhttp reported the end of the message
  bool in_trailer_ = false;      // past the last chunk: bytes are not forwarded
  uint32_t trailer_bytes_ = 0;
  bool reading_ = false;
  bool paused_ = false;
  bool read_eof_ = false;    // kTunnel: the server's EOF came
  bool shut_asked_ = false;  // kTunnel: the client's EOF is being passed on (uv_shutdown)
  bool shut_done_ = false;   // ...and was
  std::unique_ptr<TlsSession> tls_;  // an https:// server: the TLS session, else null
  int tls_write_error_ = 0;          // a libuv error writing ciphertext (on_ciphertext)
  bool tls_eof_ = false;             // the server's close_notify was passed on as EOF
};

}  // namespace pasture::worker
