// The response side of the native filters (conf::Filter) of an exchange's
// route: a ResponseSink in front of the connection's, that the exchange
// writes to instead (Exchange::attach_filters, worker/exchange_filters.cc).
//  - gzip (paste/gzipper.py's choice, with what nginx's gzip adds): a body
//    whose Content-Type is text/* or application/* without "zip", that has
//    no Content-Encoding, to a client whose Accept-Encoding has gzip (not
//    q=0), not for HEAD, 204, 304, 206/Content-Range, Cache-Control
//    no-transform or a known length under min_length, is deflated (gzip
//    wrapper) as it passes: no Content-Length (chunked on HTTP/1.1, DATA
//    frames on HTTP/2), Content-Encoding gzip, a strong ETag made weak,
//    Accept-Ranges dropped. Vary: Accept-Encoding on every response of a
//    compressible type. Each flush() of the producer (an upstream read, an
//    app's chunk) is a Z_SYNC_FLUSH: what came in goes out compressed at
//    once, never a whole body held. sendfile_fd() is -1 while compressing:
//    a producer that would sendfile reads and calls body() instead.
//  - translogger: its line, written when the head passes (as Paste writes
//    it in start_response), with the status and Content-Length as they are
//    at that filter's place in the chain.
// Filters act on the head innermost first (the response travels outward).
#pragma once

#include <zlib.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "conf/model.h"
#include "worker/response_sink.h"

namespace pasture::worker {

class Worker;

// What a translogger filter logs of the request, fixed when the route is
// known (paste/translogger.py's dict, but status and bytes).
struct TransLogEntry {
  const conf::Filter* filter = nullptr;
  std::string remote_addr, method, request_uri, http_version, time, referer, user_agent;
};

class FilterSink final : public ResponseSink {
 public:
  explicit FilterSink(Worker* w) : w_(w) {}
  ~FilterSink();
  FilterSink(const FilterSink&) = delete;
  FilterSink& operator=(const FilterSink&) = delete;

  // The route's filters (outermost first) in front of `inner`. `logs`: one
  // entry per translogger filter, filled by the caller after attach().
  void attach(ResponseSink* inner, const conf::Filter* const* filters, int n, bool accepts_gzip,
              bool head_request);
  std::vector<TransLogEntry>& logs() { return logs_; }
  ResponseSink* inner() const { return inner_; }
  // The exchange is done with it (reset): frees the compressor.
  void detach();

  int interim(std::string_view text) override { return inner_->interim(text); }
  void head(const ResponseHead& h) override;
  bool body(const char* p, size_t n, bool batch) override;
  bool flush() override;
  void end() override;
  void abort() override;
  bool retract_head() override;
  void await_drain() override { inner_->await_drain(); }
  size_t queued() const override { return inner_->queued(); }
  int sendfile_fd() override { return z_ ? -1 : inner_->sendfile_fd(); }
  bool cork(bool on) override { return z_ ? false : inner_->cork(on); }
  void want_body(bool on) override { inner_->want_body(on); }
  bool peer_address(sockaddr_storage* out) override { return inner_->peer_address(out); }
  std::string_view tls_subject() const override { return inner_->tls_subject(); }
  bool tunnel(std::string* head) override { return inner_->tunnel(head); }
  void tunnel_close_write() override { inner_->tunnel_close_write(); }

 private:
  // Deflate `n` bytes with `mode` into zout_ and pass it on. False as body().
  bool deflate_out(const char* p, size_t n, int mode, bool batch);
  bool start_gzip(ResponseHead& h, const conf::Filter& f);
  void write_log(const TransLogEntry& e, const ResponseHead& h);
  void end_gzip();

  Worker* w_;
  ResponseSink* inner_ = nullptr;
  std::array<const conf::Filter*, 16> filters_{};
  int n_ = 0;
  bool accepts_gzip_ = false;
  bool head_request_ = false;
  z_stream* z_ = nullptr;  // compressing: deflate's state (allocated per response)
  std::string zout_;
  std::vector<TransLogEntry> logs_;
};

// Pure helpers, exposed for unit tests.
namespace filters {
// Accept-Encoding names gzip (or *) with a q-value above 0.
bool accepts_gzip(std::string_view accept_encoding);
// The value of the first field `name` in a head text (ResponseHead::text), or nullopt.
bool find_field(std::string_view text, std::string_view name, std::string_view* value);
// Removes every field `name` from the head text.
void remove_field(std::string& text, std::string_view name);
// Python's urllib.parse.quote(s) (safe '/'), as TransLogger quotes REQUEST_URI.
void append_quoted(std::string& o, std::string_view s);
// TransLogger's time: "%d/%b/%Y:%H:%M:%S " and Paste's offset arithmetic
// (time.altzone when the zone has DST at all, hours * -100).
std::string translogger_time(time_t t);
// `format` (Python %-format, checked by conf) over the entry, status and bytes.
std::string translogger_line(const std::string& format, const TransLogEntry& e, std::string_view status,
                             std::string_view bytes);
}  // namespace filters

}  // namespace pasture::worker
