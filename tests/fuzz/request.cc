// Request path: raw client bytes -> what pasture forwards upstream.
//
// The client's bytes go through llhttp with ClientConn's callbacks (pause at
// the end of a head and of a message, chunked data decoded and chunked
// again, trailer bytes counted), in reads of sizes the input chooses, the
// head kept across reads as ClientConn::retain keeps it; each head through
// check_request_head (ClientConn::on_head's checks) and build_proxy_head;
// pipelined requests one after the other, as long as keep-alive allows.
//
// Oracle: the bytes forwarded, read by a second, strict parser
// (strict_http.h), are exactly the requests pasture accepted: the same
// count, method and body (llhttp's decoded body), one Host, one framing
// field, an origin-form target; after them nothing but the unfinished
// prefix of the request in progress when the client's bytes ended or went
// bad. No request the client did not send, none merged or split.
//
// Input: byte 0 selects read sizes, byte 1 the proxy policy, then the
// client's bytes.
#include <llhttp.h>

#include <string>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/strict_http.h"
#include "worker/head_check.h"
#include "worker/proxy_head.h"

namespace {

using namespace pasture;
using namespace pasture::worker;

struct Accepted {
  std::string method;
  std::string body;  // as llhttp decoded it
  bool complete = false;
};

class Client {
 public:
  Client(const conf::ServerSettings& srv, const ProxyHeadPolicy& pol, bool trusted)
      : srv_(srv), pol_(pol), trusted_(trusted) {
    llhttp_settings_init(&st_);
    st_.on_url = [](llhttp_t* p, const char* at, size_t n) {
      self(p)->head_.on_url(at, n);
      return 0;
    };
    st_.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      Client* c = self(p);
      if (c->in_body_) return c->count_trailer(n);
      c->head_.on_field(at, n);
      return 0;
    };
    st_.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      Client* c = self(p);
      if (c->in_body_) return c->count_trailer(n);
      c->head_.on_value(at, n);
      return 0;
    };
    st_.on_body = [](llhttp_t* p, const char* at, size_t n) {
      Client* c = self(p);
      c->accepted_.back().body.append(at, n);
      if (!c->chunked_) return 0;
      if (n) {  // Exchange::add_chunk
        ChunkLine line(n);
        c->chunk_out_.append(line.text);
        c->chunk_out_.append(at, n);
        c->chunk_out_.append("\r\n");
      }
      if (p->content_length == 0) {  // ClientConn's on_body: the CRLF after the data
        c->crlf_due_ = 2;
        if (!c->check_chunk_crlf(at + n, c->parse_end_)) return (int)HPE_USER;
      }
      return 0;
    };
    st_.on_headers_complete = [](llhttp_t*) { return (int)HPE_PAUSED; };
    st_.on_message_complete = [](llhttp_t* p) {
      if (self(p)->keep_alive_) p->flags &= ~F_CONNECTION_CLOSE;
      return (int)HPE_PAUSED;
    };
    llhttp_init(&parser_, HTTP_REQUEST, &st_);
    parser_.data = this;
    head_.headers = &spans_;
  }

  // One read of the client's (ClientConn::on_read, with inbuf_).
  void read(std::string_view data) {
    if (done_) return;
    buf_.append(data);
    const char* base = buf_.data();
    const char* rest = parse(base, base + parsed_, base + buf_.size());
    if (done_) return;
    // ClientConn::retain, from_inbuf.
    if (!in_body_ && head_started_) {
      buf_.erase(0, msg_start_);
      head_.rebase(msg_start_);
      msg_start_ = 0;
      parsed_ = buf_.size();
    } else {
      buf_.erase(0, (size_t)(rest - base));
      parsed_ = 0;
    }
  }

  const std::string& upstream() const { return upstream_; }
  const std::vector<Accepted>& accepted() const { return accepted_; }

 private:
  static Client* self(llhttp_t* p) { return static_cast<Client*>(p->data); }

  bool check_chunk_crlf(const char* q, const char* end) {  // as ClientConn's
    for (; crlf_due_ > 0 && q < end; crlf_due_--, q++)
      if (*q != "\r\n"[2 - crlf_due_]) return false;
    return true;
  }

  int count_trailer(size_t n) {
    trailer_bytes_ += n;
    return trailer_bytes_ > srv_.max_header_bytes ? HPE_USER : 0;
  }

  // ClientConn::parse for a site whose every request is proxied.
  const char* parse(const char* base, const char* p, const char* end) {
    while (!done_) {
      if (!in_body_) {
        if (p == end) break;
        if (!head_started_) {
          head_started_ = true;
          msg_start_ = (uint32_t)(p - base);
          head_.reset();
        }
        head_.base = base;
        llhttp_errno_t err = llhttp_execute(&parser_, p, (size_t)(end - p));
        if (err == HPE_OK) {
          if ((parser_.http_major == 0 && parser_.http_minor == 9) ||
              request_line_lacks_version(base + msg_start_, end) ||
              (size_t)(end - (base + msg_start_)) > srv_.max_header_bytes)
            done_ = true;  // 400, 414 or 431, then close
          return end;
        }
        if (err != HPE_PAUSED) {
          done_ = true;  // 400 or 501, then close
          return end;
        }
        const char* pos = llhttp_get_error_pos(&parser_);
        llhttp_resume(&parser_);
        if ((size_t)(pos - (base + msg_start_)) > srv_.max_header_bytes) {
          done_ = true;
          return end;
        }
        p = pos;
        on_head(base);
        continue;
      }
      parse_end_ = end;
      llhttp_errno_t err = check_chunk_crlf(p, end) ? llhttp_execute(&parser_, p, (size_t)(end - p)) : HPE_USER;
      if (err == HPE_OK) {
        if (chunked_)
          flush_chunks();
        else
          forward(p, (size_t)(end - p));
        return end;
      }
      if (err != HPE_PAUSED) {  // 400 (or a cut connection): the upstream's is aborted
        chunk_out_.clear();
        done_ = true;
        return end;
      }
      const char* pos = llhttp_get_error_pos(&parser_);
      llhttp_resume(&parser_);
      if (chunked_) {
        if (forwarding_) chunk_out_.append("0\r\n\r\n");
        flush_chunks();
      } else {
        forward(p, (size_t)(pos - p));
      }
      p = pos;
      accepted_.back().complete = true;
      // The response comes, then the next request (or the close).
      in_body_ = head_started_ = false;
      if (!keep_alive_) done_ = true;
    }
    return p;
  }

  void on_head(const char* base) {
    keep_alive_ = llhttp_should_keep_alive(&parser_) && !parser_.upgrade;
    chunked_ = false;
    crlf_due_ = 0;
    trailer_bytes_ = 0;
    RequestHead rh;
    std::string scratch;
    const char* why = nullptr;
    int bad = check_request_head(parser_, base, head_, srv_, scratch, &rh, &why);
    if (bad) {  // answered, then closed: the body is unread
      FUZZ_CHECK(bad >= 400 && bad <= 505 && why, "check_request_head: a status without a reason", "");
      done_ = true;
      return;
    }
    chunked_ = rh.chunked;
    in_body_ = true;
    Accepted a;
    a.method = llhttp_method_name((llhttp_method_t)parser_.method);
    accepted_.push_back(a);
    // Exchange::answer_here: answered locally, the body read and dropped.
    forwarding_ = !((parser_.method == HTTP_TRACE && !srv_.trace) ||
                    ((parser_.method == HTTP_OPTIONS || parser_.method == HTTP_TRACE) &&
                     !rh.max_forwards.empty() && max_forwards_value(rh.max_forwards) == 0));
    if (!forwarding_) {
      accepted_.back().method.clear();  // not for the upstream
      return;
    }
    // Exchange::build_upstream_head.
    ProxyHeadInput in;
    in.method = accepted_.back().method;
    in.url = span_view(base, head_.url);
    in.base = base;
    in.headers = head_.headers;
    in.peer = "192.0.2.7";
    in.trusted_peer = trusted_;
    in.http10 = parser_.http_major == 1 && parser_.http_minor == 0;
    in.target = &rh.target;
    in.path = &rh.path;
    if (chunked_) {
      in.body = ProxyHeadInput::Body::kChunked;
    } else if (parser_.flags & F_CONTENT_LENGTH) {
      in.body = ProxyHeadInput::Body::kLength;
      in.content_length = parser_.content_length;
    }
    FUZZ_CHECK(build_proxy_head(upstream_, in, pol_), "build_proxy_head refused a head on_head accepted", "");
  }

  void forward(const char* p, size_t n) {
    if (forwarding_ && n) upstream_.append(p, n);
  }
  void flush_chunks() {
    forward(chunk_out_.data(), chunk_out_.size());
    chunk_out_.clear();
  }

 private:
  const conf::ServerSettings& srv_;
  const ProxyHeadPolicy& pol_;
  bool trusted_;  // the peer is a trusted proxy
  llhttp_settings_t st_;
  llhttp_t parser_;
  HeadCollector head_;
  std::vector<HeaderSpan> spans_;
  std::string buf_;
  uint32_t parsed_ = 0, msg_start_ = 0;
  bool head_started_ = false, in_body_ = false, done_ = false;
  bool keep_alive_ = false, chunked_ = false, forwarding_ = false;
  size_t trailer_bytes_ = 0;
  uint8_t crlf_due_ = 0;
  const char* parse_end_ = nullptr;
  std::string chunk_out_;
  std::string upstream_;
  std::vector<Accepted> accepted_;
};

void check_upstream(const Client& c) {
  const std::string& up = c.upstream();
  fuzz::strict::Parser sp(up, false);
  const std::vector<Accepted>& acc = c.accepted();
  for (size_t i = 0; i < acc.size(); i++) {
    if (acc[i].method.empty()) continue;  // answered by pasture itself
    fuzz::strict::Message m;
    fuzz::strict::Result r = sp.request(&m);
    if (!acc[i].complete) {
      // The last request, cut short: its prefix went upstream (then that
      // connection is aborted). Never a whole request.
      FUZZ_CHECK(i + 1 == acc.size(), "an unfinished request is not the last", up);
      FUZZ_CHECK(r != fuzz::strict::Result::kComplete,
                 "an unfinished client request reached the upstream whole", up);
      FUZZ_CHECK(r == fuzz::strict::Result::kIncomplete, "upstream bytes do not parse: " + m.error, up);
      return;
    }
    FUZZ_CHECK(r == fuzz::strict::Result::kComplete,
               "request " + std::to_string(i) + " does not parse upstream: " +
                   (r == fuzz::strict::Result::kError ? m.error : std::string("incomplete")),
               up);
    FUZZ_CHECK(m.method == acc[i].method, "method changed: " + acc[i].method + " -> " + m.method, up);
    FUZZ_CHECK(m.body == acc[i].body, "body of request " + std::to_string(i) + " changed", up);
    FUZZ_CHECK(m.count("host") == 1, "not exactly one Host upstream", up);
    FUZZ_CHECK(m.target[0] == '/' || m.target == "*", "upstream target not in origin form: " + m.target, up);
  }
  FUZZ_CHECK(sp.at_end(), "bytes after the last request pasture accepted (smuggled)", up.substr(sp.pos()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  uint8_t split = in.byte();
  uint8_t flags = in.byte();
  conf::ServerSettings srv;
  srv.max_header_bytes = 2048;  // reachable limits (the defaults' logic, smaller numbers)
  srv.max_url_bytes = 512;
  srv.max_header_fields = 20;
  srv.trace = flags & 1;
  ProxyHeadPolicy pol;
  pol.via = flags & 2 ? "pasture" : "";
  pol.underscores = flags & 4;
  pol.preserve_host = !(flags & 8);
  pol.hosted = flags & 16;
  pol.base_path = flags & 32 ? "/base/" : "";
  pol.upstream_host = "10.0.0.1:8000";
  pol.fallback_host = "10.0.0.1:8000";
  Client c(srv, pol, flags & 64);
  std::string_view bytes = in.rest();
  // Read sizes: 0 = everything at once; else cycling through small sizes.
  static const size_t kSizes[] = {1, 2, 3, 5, 7, 11, 64, 4096};
  size_t k = split % 9;
  for (size_t i = 0, j = 0; i < bytes.size(); j++) {
    size_t n = k == 0 ? bytes.size() : kSizes[(k + j) % 8];
    if (n > bytes.size() - i) n = bytes.size() - i;
    c.read(bytes.substr(i, n));
    i += n;
  }
  check_upstream(c);
  return 0;
}
