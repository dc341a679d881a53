// The server side of one HTTP/2 connection (RFC 9113) through nghttp2:
// streams, each one Exchange (worker/h2_stream.h), multiplexed onto the
// worker's upstream pools as HTTP/1.1 requests are (each stream one pick).
//
// Bytes in, bytes out: the connection reads and writes through an
// H2Transport (ClientConn: the plain socket for h2c, later TLS after ALPN
// "h2"), never a socket, so a transport below it changes nothing here.
// nghttp2 runs in memory (mem_recv / mem_send); its callbacks only record
// and start exchanges, output leaves from send_pending() outside them.
//
// Limits: SETTINGS_MAX_CONCURRENT_STREAMS (http2_max_concurrent_streams),
// SETTINGS_MAX_HEADER_LIST_SIZE (max_header_bytes, counted by the streams:
// an HPACK bomb meets it), HPACK table 4096, CONTINUATION frames per header
// block (nghttp2's limit), RST_STREAM per second (http2_max_resets, rapid
// reset, CVE-2023-44487: GOAWAY ENHANCE_YOUR_CALM), queued SETTINGS/PING
// acks (nghttp2's flood limit). Reading stops while the output queue is over
// kHighWater (a client that does not read cannot make pasture buffer).
//
// Ends: idle (no stream) for keepalive_timeout, GOAWAY NO_ERROR; drain or
// reload: GOAWAY (2^31-1) at once, the final GOAWAY (the last stream taken)
// kGoawayDelayMs later, streams in flight finish, then the close; output
// stalled for send_timeout: closed.
#pragma once

#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "worker/response_sink.h"
#include "worker/stream_io.h"
#include "worker/timers.h"

namespace pasture::worker {

class Worker;
class H2Stream;

// What an H2Conn needs from the connection below it.
class H2Transport {
 public:
  // 0 or a libuv error; bytes not written at once are queued.
  virtual int h2_send(const uv_buf_t* bufs, unsigned n) = 0;
  virtual size_t h2_queued() const = 0;  // bytes written but not taken by the kernel
  virtual void h2_read(bool on) = 0;     // read from the client, or not for now
  // End the connection: `graceful` after every queued byte is written. The
  // transport then calls H2Conn::on_close() (at once when not graceful).
  virtual void h2_close(bool graceful) = 0;
  virtual bool h2_peer(sockaddr_storage* out) = 0;
  virtual std::string_view h2_tls_subject() const = 0;  // ResponseSink::tls_subject

 protected:
  ~H2Transport() = default;
};

class H2Conn : public TurnSender {
 public:
  static constexpr uint32_t kGoawayDelayMs = 1000;  // between the two GOAWAYs of a drain

  H2Conn(Worker* w, H2Transport* t, const ClientPeer* peer);
  ~H2Conn();
  // The worker's end-of-turn send (Worker::on_turn_check).
  void send_deferred() override {
    send_queued_ = false;
    send_pending();
  }
  H2Conn(const H2Conn&) = delete;
  H2Conn& operator=(const H2Conn&) = delete;

  // --- from the transport -------------------------------------------------
  // The server's SETTINGS. False: nghttp2 could not start (the caller closes).
  bool start();
  void on_bytes(const char* p, size_t n);  // the client's bytes, the preface first
  void on_eof();
  void on_write_done();  // a queued write finished
  void on_drain();       // the worker drains (reload, stop, max_requests)
  void on_close();       // the transport ended: every exchange in flight ends

  // --- from the streams ---------------------------------------------------
  Worker* worker() const { return w_; }
  const ClientPeer* peer() const { return peer_; }
  H2Transport* transport() const { return t_; }
  nghttp2_session* session() const { return s_; }
  // A stream has output (or a submit): it leaves now unless nghttp2 is
  // running (then when it returns).
  void want_send();
  // A stream's read_data found it under kStreamLowWater while its producer waited.
  void note_drained(H2Stream* s) { drained_.push_back(s); }
  // Decoded header bytes a client sent for one stream past every limit:
  // an HPACK bomb. The connection ends with ENHANCE_YOUR_CALM.
  void calm_down(const char* why);
  // Response bytes held for the client: every stream's and the transport's.
  size_t backlog() const;
  // The connection cannot go on (an error, a header block left open): closed now.
  void fail(const char* what, int rv);
  // A stream reset for a field the client should not have sent: counted
  // with the client's own resets (count_reset).
  void note_refused_field() { count_reset(); }

 private:
  static nghttp2_session_callbacks* callbacks();
  static void on_timer(TimerNode* t);
  static void on_goaway_timer(TimerNode* t);

  void send_pending();
  bool send_queued_ = false;  // in the worker's end-of-turn list (Worker::defer_send)
  bool write_out();     // the gathered frames to the transport; false: failed, closed
  void reap();          // delete streams nghttp2 closed
  void update_timers();
  void check_done();    // nothing to read or write any more: close
  // After the client's EOF no WINDOW_UPDATE can come: streams whose answer
  // waits for a window are reset now rather than at send_timeout.
  void cancel_window_stalled();
  // An RST_STREAM from the client, or one its protocol error made us send.
  void count_reset();

  // nghttp2 callbacks (h2_conn.cc).
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* ud);
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t flags, void* ud);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* ud);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* f, void* ud);
  static int on_data_chunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data, size_t len,
                           void* ud);
  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* ud);

  Worker* w_;
  H2Transport* t_;
  const ClientPeer* peer_;
  nghttp2_session* s_ = nullptr;
  H2Stream* streams_ = nullptr;      // live streams (a list through prev/next)
  std::vector<H2Stream*> dead_;      // closed by nghttp2, deleted by reap()
  std::vector<H2Stream*> drained_;   // to resume after a send (note_drained)
  std::string* out_ = nullptr;       // frames gathered for one write
  TimerNode timer_;                  // idle (keepalive_timeout) or output stalled (send_timeout)
  TimerNode goaway_timer_;           // the drain's final GOAWAY
  TimerNode reap_timer_;             // streams closed outside a transport callback
  uint32_t live_ = 0;                // streams not closed yet
  uint64_t reset_window_ms_ = 0;     // start of the current second of RST_STREAM counting
  uint32_t resets_ = 0;              // RST_STREAM from the client in that second
  int depth_ = 0;                    // inside nghttp2 (mem_recv/mem_send) or send_pending
  bool resend_ = false;              // want_send() came while depth_ > 0
  bool reading_ = true;
  bool draining_ = false;
  bool eof_ = false;        // the client's EOF
  bool calm_ = false;       // GOAWAY ENHANCE_YOUR_CALM submitted
  bool finished_ = false;   // h2_close(true) asked: nothing more is read or sent
  bool closed_ = false;     // on_close(): the transport is gone
};

}  // namespace pasture::worker
