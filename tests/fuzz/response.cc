// Response path: raw upstream bytes -> what pasture sends the client.
//
// The upstream's bytes go through llhttp with UpstreamConn's callbacks (no
// body for HEAD, 1xx, 204, 304; a pause at the last chunk so its trailer
// section is dropped; a pause at the end of a message), in reads of sizes
// the input chooses, a partial head kept as UpstreamConn keeps it; each head
// through valid_response_head, append_response_head and
// append_response_framing (append_framing, which ClientConn::head uses for every response); the
// body forwarded as UpstreamConn::parse and ClientConn forward it (raw
// when delimited by its length or EOF; a chunked one decoded, then chunked
// again, or sent as it is to an HTTP/1.0 client); then the upstream's EOF.
//
// Oracle: the client's bytes, read by a second, strict parser
// (strict_http.h), are the interim responses pasture forwards, then one
// final response whose body is exactly the one llhttp decoded from the
// upstream, and nothing after it. A response pasture had to cut short (the
// upstream's framing broke, or it closed early) must never look complete.
//
// Input: byte 0 selects read sizes, byte 1 the request (HEAD, HTTP/1.0,
// Expect: 100-continue) and Via, then the upstream's bytes.
#include <llhttp.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/strict_http.h"
#include "worker/head_check.h"

namespace {

using namespace pasture;
using namespace pasture::worker;

constexpr size_t kMaxResponseHead = 64 * 1024;  // as UpstreamConn's

class Upstream {
 public:
  Upstream(bool head_request, bool http10, bool expect, std::string_view via)
      : head_request_(head_request), http10_(http10), expect_(expect), via_(via) {
    llhttp_settings_init(&st_);
    st_.on_status = [](llhttp_t* p, const char* at, size_t n) {
      self(p)->head_.on_status(at, n);
      return 0;
    };
    st_.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      Upstream* u = self(p);
      if (u->head_done_) return u->count_trailer(n);
      u->head_.on_field(at, n);
      return 0;
    };
    st_.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      Upstream* u = self(p);
      if (u->head_done_) return u->count_trailer(n);
      u->head_.on_value(at, n);
      return 0;
    };
    st_.on_headers_complete = [](llhttp_t* p) {
      int s = p->status_code;
      return self(p)->head_request_ || s < 200 || s == 204 || s == 304 ? 1 : (int)HPE_PAUSED;
    };
    st_.on_chunk_header = [](llhttp_t* p) {
      return p->content_length == 0 && !self(p)->decode_ ? (int)HPE_PAUSED : 0;
    };
    st_.on_body = [](llhttp_t* p, const char* at, size_t n) {
      Upstream* u = self(p);
      u->decoded_.append(at, n);
      if (u->decode_) u->body_to_client(at, n);
      return 0;
    };
    st_.on_message_complete = [](llhttp_t* p) {
      self(p)->msg_done_ = true;
      if (p->status_code < 200) p->flags &= ~F_CONNECTION_CLOSE;
      return (int)HPE_PAUSED;
    };
    llhttp_init(&parser_, HTTP_RESPONSE, &st_);
    parser_.data = this;
    head_.headers = &spans_;
  }

  // UpstreamConn::on_read.
  void read(std::string_view data) {
    if (ended_) return;
    // The kept partial head and this read, in a buffer of exactly their
    // size, so that a read past its end is one the sanitizer sees (review
    // 43; a std::string's spare capacity would hide it).
    size_t old = inbuf_.size(), n = old + data.size();
    std::unique_ptr<char[]> buf(new char[n ? n : 1]);
    memcpy(buf.get(), inbuf_.data(), old);
    if (!data.empty()) memcpy(buf.get() + old, data.data(), data.size());
    parse(buf.get(), buf.get() + old, buf.get() + n);
    if (keep_) inbuf_.assign(kept_);
    if (!(head_started_ && !head_done_)) inbuf_.clear();
  }

  // The upstream's EOF.
  void eof() {
    if (ended_) return;
    ended_ = true;
    if (head_done_) {
      llhttp_errno_t err = llhttp_finish(&parser_);
      if (err == HPE_OK || err == HPE_PAUSED) {
        complete_ = true;  // a body delimited by EOF ends here
        return;
      }
      cut_ = true;  // any other framing is truncated: the client connection closes
      return;
    }
    bad_gateway_ = true;
  }

  void check() const {
    fuzz::strict::Parser sp(client_, true);
    for (;;) {
      if (sp.at_end()) {  // no final response: pasture's own 502, or the connection cut
        FUZZ_CHECK(!complete_, "the upstream's response completed but the client got none", client_);
        return;
      }
      fuzz::strict::Message m;
      fuzz::strict::Result r = sp.response(&m, head_request_);
      if (r == fuzz::strict::Result::kIncomplete) {
        FUZZ_CHECK(!complete_, "a complete response does not parse whole", client_);
        return;
      }
      FUZZ_CHECK(r == fuzz::strict::Result::kComplete, "the client's bytes do not parse: " + m.error, client_);
      if (m.status < 200) continue;
      // A de-chunked body to an HTTP/1.0 client ends with the connection:
      // cut short, it cannot look otherwise (nginx's too).
      FUZZ_CHECK(complete_ || (m.until_eof && decode_),
                 "a response pasture cut short looks complete to the client", client_);
      FUZZ_CHECK(m.body == decoded_, "the body changed on its way to the client", client_);
      FUZZ_CHECK(sp.at_end(), "bytes after the final response", client_.substr(sp.pos()));
      return;
    }
  }

 private:
  static Upstream* self(llhttp_t* p) { return static_cast<Upstream*>(p->data); }

  int count_trailer(size_t n) {
    trailer_bytes_ += n;
    return trailer_bytes_ > kMaxResponseHead ? HPE_USER : 0;
  }
  void to_client(const char* p, size_t n) { client_.append(p, n); }
  // ClientConn::body (the sink): decoded bytes, in pasture's own chunks
  // unless the client is HTTP/1.0.
  void body_to_client(const char* p, size_t n) {
    if (!rechunk_) return to_client(p, n);
    if (n == 0) return;
    ChunkLine line(n);
    client_.append(line.text);
    client_.append(p, n);
    client_.append("\r\n");
  }

  // UpstreamConn::parse, request_done and the client's keep-alive given.
  void parse(const char* base, const char* p, const char* end) {
    keep_ = false;
    while (!ended_) {
      if (!head_done_) {
        if (!head_started_) {
          head_started_ = true;
          msg_start_ = (uint32_t)(p - base);
          head_.reset();
        }
        head_.base = base;
        llhttp_errno_t err = llhttp_execute(&parser_, p, (size_t)(end - p));
        if (err == HPE_OK) {  // UpstreamConn::keep_partial_head
          if ((size_t)(end - (base + msg_start_)) > kMaxResponseHead) {
            fail_502();
            return;
          }
          kept_.assign(base + msg_start_, end);
          keep_ = true;
          head_.rebase(msg_start_);
          msg_start_ = 0;
          return;
        }
        if (err != HPE_PAUSED) {
          fail_502();
          return;
        }
        p = llhttp_get_error_pos(&parser_);
        llhttp_resume(&parser_);
        if (has_bare_cr(base + msg_start_, p)) {  // as UpstreamConn::parse
          fail_502();
          return;
        }
        int status = parser_.status_code;
        if (status == 101) {
          fail_502();
          return;
        }
        if (!on_response_head(base)) return;
        if (status < 200) {
          if (!msg_done_ && llhttp_execute(&parser_, p, (size_t)(end - p)) == HPE_PAUSED) {
            p = llhttp_get_error_pos(&parser_);
            llhttp_resume(&parser_);
          }
          msg_done_ = false;
          head_started_ = false;
          continue;
        }
        head_done_ = true;
        if (msg_done_) {
          message_complete();
          return;
        }
        continue;
      }
      bool raw = !decode_ && !in_trailer_;
      llhttp_errno_t err = llhttp_execute(&parser_, p, (size_t)(end - p));
      if (err == HPE_OK) {
        if (raw && p < end) to_client(p, (size_t)(end - p));
        return;
      }
      if (err != HPE_PAUSED) {  // invalid body: the client connection is closed
        ended_ = cut_ = true;
        return;
      }
      const char* pos = llhttp_get_error_pos(&parser_);
      llhttp_resume(&parser_);
      if (raw && pos > p) to_client(p, (size_t)(pos - p));
      if (!msg_done_) {  // paused at the last chunk
        in_trailer_ = true;
        p = pos;
        continue;
      }
      if (in_trailer_) to_client("\r\n", 2);
      message_complete();
      return;
    }
  }

  void fail_502() { ended_ = bad_gateway_ = true; }
  void message_complete() {  // Exchange::on_response_done, ClientConn::end
    if (rechunk_) client_.append("0\r\n\r\n");
    ended_ = complete_ = true;
  }

  // Exchange::on_response_head, for a request that was sent whole.
  bool on_response_head(const char* base) {
    if (!valid_response_head(base, head_, parser_)) {
      fail_502();
      return false;
    }
    int status = parser_.status_code;
    if (status < 200) {
      if (http10_ || (status == 100 && !expect_)) return true;
      if (status == 100) {
        client_.append("HTTP/1.1 100 Continue\r\n\r\n");
      } else {
        append_response_head(client_, base, head_, parser_, via_);
        client_.append("\r\n");
      }
      return true;
    }
    append_response_head(client_, base, head_, parser_, via_);
    ResponseFraming f = append_response_framing(client_, parser_, head_request_, http10_);
    rechunk_ = f.rechunk;
    decode_ = f.decode || f.rechunk;
    client_.append(f.until_eof || f.decode ? "Connection: close\r\n" : "");
    client_.append("\r\n");
    return true;
  }

  bool head_request_, http10_, expect_;
  std::string_view via_;
  llhttp_settings_t st_;
  llhttp_t parser_;
  HeadCollector head_;
  std::vector<HeaderSpan> spans_;
  std::string inbuf_, kept_;
  bool keep_ = false;
  uint32_t msg_start_ = 0;
  bool head_started_ = false, head_done_ = false, msg_done_ = false, in_trailer_ = false, decode_ = false;
  bool rechunk_ = false;
  size_t trailer_bytes_ = 0;
  bool ended_ = false, complete_ = false, cut_ = false, bad_gateway_ = false;
  std::string decoded_;  // the body as llhttp decoded it
  std::string client_;   // every byte the client gets
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  uint8_t split = in.byte();
  uint8_t flags = in.byte();
  Upstream u(flags & 1, flags & 2, flags & 4, flags & 8 ? "pasture" : "");
  std::string_view bytes = in.rest();
  static const size_t kSizes[] = {1, 2, 3, 5, 7, 11, 64, 4096};
  size_t k = split % 9;
  for (size_t i = 0, j = 0; i < bytes.size(); j++) {
    size_t n = k == 0 ? bytes.size() : kSizes[(k + j) % 8];
    if (n > bytes.size() - i) n = bytes.size() - i;
    u.read(bytes.substr(i, n));
    i += n;
  }
  u.eof();
  u.check();
  return 0;
}
