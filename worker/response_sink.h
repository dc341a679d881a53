// What an exchange (worker/exchange.h) needs from the connection that
// carries it: a place to put the response and the flow control both ways.
// ClientConn (HTTP/1.1) implements it; an HTTP/2 stream would too. Types
// only: no libuv, no llhttp.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pasture::worker {

// The client's address as the exchange sees it: fixed for a connection.
// Binary, 19 bytes, since every idle keep-alive connection holds one (the
// text form was 48 bytes, with the client certificate's subject a
// std::string; that is ResponseSink::tls_subject() now): the text is made
// when a request needs it (Exchange::peer_text, PeerText).
struct ClientPeer {
  static constexpr size_t kTextLen = 48;  // INET6_ADDRSTRLEN and then some
  uint8_t addr[16] = {0};  // AF_INET: the first 4 bytes; AF_INET6: all 16
  uint8_t family = 0;      // AF_INET, AF_INET6, AF_UNIX, or 0 (unknown)
  bool trusted = false;    // in trusted_proxies: its X-Forwarded-* pass on
  // The connection is TLS: upstreams get X-Forwarded-Proto https (unless a
  // trusted proxy said otherwise), an app wsgi.url_scheme https.
  bool tls = false;

  void set(const sockaddr* sa);  // an IPv4-mapped IPv6 address is kept as IPv4
  // The address as text into `out` (kTextLen bytes): "10.1.2.3", "::1",
  // "unix:" (what nginx's $remote_addr says), "" when unknown. No port.
  void format(char* out) const;
};

// A peer's text for a log line: PeerText(peer).s
struct PeerText {
  explicit PeerText(const ClientPeer& p) { p.format(s); }
  char s[ClientPeer::kTextLen];
};

// A final response's head.
struct ResponseHead {
  int status = 0;
  // "HTTP/1.1 200 OK\r\n", then the end-to-end fields, each "Name: value\r\n":
  // no framing field, no Connection, no blank line (HTTP/1.1 text, as the
  // request head is: an HTTP/2 sink reads the fields from it). A buffer of
  // Worker::take_buf() whose ownership passes to the sink.
  std::string* text = nullptr;
  // How the body's end is known where it comes from.
  enum class Length : uint8_t {
    kKnown,    // `length` bytes
    kChunked,  // not known; the body ends with end() (a chunked upstream, an app)
    kNone,     // neither: the upstream's close ends it (HTTP/1.1: close after it)
  } framing = Length::kNone;
  uint64_t length = 0;
  bool no_body = false;  // HEAD, 204, 304: no body byte follows, whatever the framing says
  bool close = false;    // the exchange wants the connection closed after this answer
};

// Calls go from the exchange to its connection, on the loop thread. A call
// may end the connection (a write failed): the connection then calls
// Exchange::on_close() before the call returns, and the exchange takes no
// further step on it.
class ResponseSink {
 public:
  // An interim (1xx) response: text as ResponseHead::text. 0 or a libuv error.
  virtual int interim(std::string_view text) = 0;
  // The final head. It may be held back to leave with the first body bytes.
  virtual void head(const ResponseHead& h) = 0;
  // Body bytes (the payload: the sink frames them). `batch`: more follow
  // before flush(), so they may be copied and sent together; else they are
  // sent now (zero copy). False: over the high-water mark (or closed): the
  // producer waits for Exchange::on_sink_drained().
  virtual bool body(const char* p, size_t n, bool batch) = 0;
  // Send what is held back (the head, batched bytes). False as body().
  virtual bool flush() = 0;
  // The response is complete. The connection may reset the exchange and
  // start its next request before this returns: the caller touches nothing
  // of the exchange after it.
  virtual void end() = 0;
  // The response broke after its head was sent: the connection ends.
  virtual void abort() = 0;
  // Drop a head still held back (and batched bytes): true when nothing of
  // the response reached the client, which may then get another answer.
  virtual bool retract_head() = 0;
  // The producer waits for on_sink_drained() although under the high-water
  // mark (bytes it could not write directly are queued: sendfile).
  virtual void await_drain() = 0;
  // Bytes the client has not taken yet.
  virtual size_t queued() const = 0;
  // Everything the client's connection holds for it: queued() for an
  // HTTP/1.1 connection, all its streams' bytes for an HTTP/2 stream (what
  // a write-ahead limit must count, or it is multiplied by the streams).
  virtual size_t backlog() const { return queued(); }
  // A socket that sendfile(2) may write to now (plain transport, nothing
  // queued, no framing added per write), else -1: read and use body().
  virtual int sendfile_fd() = 0;
  // Hold partial segments back (TCP_CORK) while a head and a sendfile body
  // go out, so that they leave in full segments (nginx's tcp_nopush: found
  // worth ~1.6x req/s for 1 MiB files on loopback); false when the
  // transport has no such switch. cork(false) sends what was held.
  virtual bool cork(bool on) {
    (void)on;
    return false;
  }
  // The exchange can take no more request body for now (false), or can
  // again (true): the connection stops or resumes reading.
  virtual void want_body(bool on) = 0;
  // The peer's socket address (the status app's allow list).
  virtual bool peer_address(sockaddr_storage* out) = 0;
  // The verified client certificate's subject (RFC 2253), "" = none; known
  // from the TLS handshake's end, before the first request.
  virtual std::string_view tls_subject() const = 0;

  // --- an upgraded connection (RFC 9110 7.8, RFC 6455): a byte tunnel ---
  // Send the switch's head (`head`: "HTTP/1.1 101 ...\r\n" and its fields,
  // Upgrade and Connection included, ending in the blank line; ownership
  // passes) and from then on carry bytes both ways unparsed:
  //  - to the client: body(p, n, false) sends them as they are (false: over
  //    the high-water mark; the producer waits for on_sink_drained());
  //  - from the client: Exchange::tunnel_in() (first the bytes that came
  //    after the request, RFC 6455 4.1's early frames), then
  //    Exchange::tunnel_in_eof() at its EOF; want_body() holds them back;
  //  - tunnel_close_write(): the other side's EOF, passed on (half-close);
  //    abort(): both ways end now. The sink calls Exchange::on_close() when
  //    it ends (both halves closed, or an error).
  // False: this connection cannot switch (the exchange answers 502).
  // Below the sink, a transport (TLS) sees ordinary reads and writes, so a
  // tunnel through a TLS listener (wss) needs nothing more. An HTTP/2
  // stream (RFC 8441 extended CONNECT, :protocol = websocket; H2Stream)
  // implements these as: the head as HEADERS :status 200 (no Upgrade or
  // Connection fields), body() as DATA frames, want_body() by withholding
  // WINDOW_UPDATE, tunnel_close_write() as END_STREAM, abort() as
  // RST_STREAM; the exchange and the upstream side stay as they are.
  virtual bool tunnel(std::string* head) = 0;
  virtual void tunnel_close_write() = 0;

 protected:
  ~ResponseSink() = default;
};

}  // namespace pasture::worker
