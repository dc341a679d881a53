// H2Stream: an HTTP/2 request written as an HTTP/1.1 head for its
// Exchange, and the exchange's response as HEADERS and DATA.
#include "worker/h2_stream.h"

#include <sys/random.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "worker/h2_conn.h"
#include "worker/head_check.h"
#include "worker/runtime.h"

namespace pasture::worker {
namespace {

// The llhttp pass over a head this file wrote: spans only.
const llhttp_settings_t* head_settings() {
  static llhttp_settings_t s = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_url = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<HeadCollector*>(p->data)->on_url(at, n);
      return 0;
    };
    st.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<HeadCollector*>(p->data)->on_field(at, n);
      return 0;
    };
    st.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<HeadCollector*>(p->data)->on_value(at, n);
      return 0;
    };
    st.on_headers_complete = [](llhttp_t*) { return (int)HPE_PAUSED; };
    return st;
  }();
  return &s;
}

// A pseudo-field's value that must not change the request line's shape.
bool clean_token(std::string_view v) {
  for (char c : v)
    if ((unsigned char)c <= 0x20 || c == 0x7f) return false;
  return true;
}

// RFC 9113 8.2.2: fields that are about one HTTP/1.1 connection.
bool connection_specific(std::string_view name, std::string_view value) {
  if (name == "te") return value != "trailers";
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade";
}

// RFC 6455 4.1: 16 random bytes, base64 (24 characters).
std::string websocket_key() {
  unsigned char r[16] = {};
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
    for (unsigned char& b : r) b = (unsigned char)rand();
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < sizeof r; i += 3) {
    uint32_t v = (uint32_t)r[i] << 16 | (i + 1 < sizeof r ? (uint32_t)r[i + 1] << 8 : 0) |
                 (i + 2 < sizeof r ? r[i + 2] : 0);
    out.push_back(b64[v >> 18 & 63]);
    out.push_back(b64[v >> 12 & 63]);
    out.push_back(i + 1 < sizeof r ? b64[v >> 6 & 63] : '=');
    out.push_back(i + 2 < sizeof r ? b64[v & 63] : '=');
  }
  return out;
}

ssize_t read_cb(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags, nghttp2_data_source* src,
                void*) {
  return static_cast<H2Stream*>(src->ptr)->read_data(buf, len, flags);
}

}  // namespace

H2Stream::H2Stream(H2Conn* c, int32_t id) : c_(c), id_(id), ex_(c->worker(), this, c->peer()) {
  body_timer_.owner = send_timer_.owner = this;
  body_timer_.fire = on_body_timeout;
  send_timer_.fire = on_send_timeout;
  Worker* w = c->worker();
  w->timers().arm(&body_timer_, w->site().server.client_header_timeout_ms, w->now());  // the header block
}

H2Stream::~H2Stream() {
  timer_disarm(&body_timer_);
  timer_disarm(&send_timer_);
  Worker* w = c_->worker();
  for (std::string* b : {fields_, resp_store_, out_, early_})
    if (b) w->give_buf(b);
}

int H2Stream::on_field(std::string_view name, std::string_view value) {
  const conf::ServerSettings& srv = c_->worker()->site().server;
  head_bytes_ += (uint32_t)(name.size() + value.size() + 32);
  // A header block decoded far past the list size the client was told:
  // an HPACK bomb (small references to a large table entry), whoever sends it.
  if (head_bytes_ > 4u * srv.max_header_bytes + 65536u) {
    c_->calm_down("header list far over max_header_bytes (HPACK bomb)");
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  if (started_ || bad_) return 0;  // trailers, or a head already refused: counted only
  if (head_bytes_ > srv.max_header_bytes) {
    bad_ = "request head too large";
    bad_status_ = 431;
    return 0;
  }
  if (!name.empty() && name[0] == ':') {
    if (name == ":method") method_.assign(value);
    else if (name == ":path") path_.assign(value);
    else if (name == ":authority") authority_.assign(value);
    else if (name == ":protocol") protocol_.assign(value);  // RFC 8441 (nghttp2 checked its place)
    return 0;  // :scheme: the listener's; nghttp2 refuses other pseudo-fields
  }
  // nghttp2 refused these already; checked again so that no HTTP/1.1 head
  // written here ever carries them (a reset of the stream, RFC 9113 8.1.1).
  bool refused = connection_specific(name, value);
  for (char ch : name) refused |= ch >= 'A' && ch <= 'Z';
  for (char ch : value) refused |= ch == '\r' || ch == '\n' || ch == '\0';
  if (refused) {
    c_->note_refused_field();  // a reset the client caused counts as its own
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  if (name == "te") return 0;  // "trailers": hop-by-hop
  if (name == "host") {
    host_.assign(value);
    return 0;
  }
  if (name == "cookie") {  // RFC 9113 8.2.3: one field again for HTTP/1.1
    if (!cookie_.empty()) cookie_.append("; ");
    cookie_.append(value);
    return 0;
  }
  if (name == "content-length") has_length_ = true;
  if (!fields_) {
    fields_ = c_->worker()->take_buf();
    fields_->clear();
  }
  fields_->append(name).append(": ").append(value).append("\r\n");
  field_count_++;
  return 0;
}

void H2Stream::on_headers_done(bool end_stream) {
  started_ = true;
  Worker* w = c_->worker();
  const conf::ServerSettings& srv = w->site().server;
  // :authority is the Host (RFC 9113 8.3.1); Host only when it is absent.
  // Both, naming different hosts: malformed (8.3.1's SHOULD), not one
  // silently preferred, which a front end that routed on the other would not
  // expect (found by review).
  const std::string& authority = authority_.empty() ? host_ : authority_;
  if (!bad_ && !authority_.empty() && !host_.empty() && !iequals(authority_, host_)) {
    bad_ = "Host differs from :authority";
    bad_status_ = 400;
  }
  if (!bad_ && (!clean_token(method_) || !clean_token(path_) || !clean_token(authority))) {
    bad_ = "bad pseudo-header field";
    bad_status_ = 400;
  }
  // :path is origin-form (RFC 9113 8.3.1), or `*` for OPTIONS. nghttp2
  // checks that only for :scheme http/https; an absolute-form :path would
  // become an HTTP/1.1 absolute-form target whose host overrides
  // :authority (found by review: `:scheme foo`, `:path http://evil/`).
  // An extended CONNECT (RFC 8441) has an origin-form :path too.
  connect_ = method_ == "CONNECT" && !protocol_.empty();
  if (!bad_ && (method_ != "CONNECT" || connect_) && !(path_.size() && path_[0] == '/') &&
      !(path_ == "*" && method_ == "OPTIONS")) {
    bad_ = "the :path pseudo-header is not origin-form";
    bad_status_ = 400;
  }
  if (!bad_ && connect_ && (!clean_token(protocol_) || end_stream)) {
    bad_ = "bad extended CONNECT";
    bad_status_ = 400;
  }
  std::string* head = w->take_buf();
  std::string& o = *head;
  o.clear();
  if (connect_) {
    // The HTTP/1.1 request that asks an upstream for the same switch.
    o.append("GET ").append(path_).append(" HTTP/1.1\r\n");
  } else {
    o.append(method_).append(" ").append(method_ == "CONNECT" ? authority : path_).append(" HTTP/1.1\r\n");
  }
  if (!authority.empty()) o.append("Host: ").append(authority).append("\r\n");
  if (!cookie_.empty()) o.append("Cookie: ").append(cookie_).append("\r\n");
  if (fields_) o.append(*fields_);
  if (connect_) {
    o.append("Upgrade: ").append(protocol_).append("\r\nConnection: Upgrade\r\n");
    if (protocol_ == "websocket") o.append("Sec-WebSocket-Key: ").append(websocket_key()).append("\r\n");
  } else if (!end_stream && !has_length_) {
    // A body of no declared length: chunked for the exchange (and upstream).
    o.append("Transfer-Encoding: chunked\r\n");
  }
  o.append("\r\n");

  HeadCollector hc;
  hc.headers = w->take_spans();
  hc.reset();
  hc.base = o.data();
  llhttp_t p;
  llhttp_init(&p, HTTP_REQUEST, head_settings());
  p.data = &hc;
  llhttp_errno_t err = llhttp_execute(&p, o.data(), o.size());
  if (err != HPE_PAUSED) {
    PLOG_DEBUG("bad HTTP/2 request from %s: %s (%s)", PeerText(*c_->peer()).s, llhttp_errno_name(err),
               llhttp_get_error_reason(&p));
    ex_.respond_error(400, "malformed request");
  } else {
    ex_.open(p.method, false, true);
    if (w->access_log().enabled()) ex_.begin_log(o.data(), hc);
    RequestHead rh;
    std::string scratch;
    const char* why = nullptr;
    int bad = bad_ ? bad_status_ : check_request_head(p, o.data(), hc, srv, scratch, &rh, &why);
    if (bad) {
      ex_.respond_error(bad, bad_ ? bad_ : why);
    } else {
      ExchangeRequest rq;
      rq.base = o.data();
      rq.head = &hc;
      rq.checked = &rh;
      if (!rh.chunked && (p.flags & F_CONTENT_LENGTH)) rq.content_length = (int64_t)p.content_length;
      rq.upgrade = connect_;
      ex_.start(rq);
      // The switch's request has no body: what DATA brings is the tunnel's.
      if (connect_ && !completed_ && !ex_closed_) ex_.request_end();
    }
  }
  w->give_spans(hc.headers);
  w->give_buf(head);
  for (std::string* s : {&method_, &path_, &authority_, &host_, &cookie_}) std::string().swap(*s);
  if (fields_) {
    w->give_buf(fields_);
    fields_ = nullptr;
  }
  if (end_stream) on_request_end();
  else arm_body_timer();
}

// --- an extended CONNECT's tunnel (RFC 8441) ------------------------------

bool H2Stream::tunnel(std::string* head) {
  Worker* w = c_->worker();
  if (!connect_ || closed_ || ex_closed_ || head_submitted_) {
    w->give_buf(head);
    return false;
  }
  // :status 200 and the 101's fields but its hop-by-hop ones (Upgrade,
  // Connection) and Sec-WebSocket-Accept, which answers a key of pasture's.
  if (!resp_store_) resp_store_ = w->take_buf();
  std::string& st = *resp_store_;
  st.clear();
  st.reserve(head->size() + 16);
  st.append("200");
  nva_.clear();
  nva_.push_back({(uint8_t*)":status", reinterpret_cast<uint8_t*>(st.data()), 7, 3,
                  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE});
  parse_fields(*head, st, nva_, 1);
  w->give_buf(head);
  nva_.erase(std::remove_if(nva_.begin() + 1, nva_.end(),
                            [](const nghttp2_nv& nv) {
                              return std::string_view((const char*)nv.name, nv.namelen) == "sec-websocket-accept";
                            }),
             nva_.end());
  tunnel_ = true;
  no_body_ = false;
  submit_head();
  c_->want_send();
  // DATA that came before the switch, then the client's END_STREAM if it came.
  if (early_) {
    std::string* b = early_;
    early_ = nullptr;
    size_t n = b->size();
    ex_.tunnel_in(b->data(), n);
    w->give_buf(b);
    if (closed_ || ex_closed_) return false;
    if (body_paused_) unconsumed_ += n;
    else consume(n);
  }
  if (req_done_ && !ex_closed_) ex_.tunnel_in_eof();
  return !closed_ && !ex_closed_;
}

// The upstream's EOF: END_STREAM once the bytes before it are framed.
void H2Stream::tunnel_close_write() {
  if (!tunnel_ || closed_ || ex_closed_ || eof_) return;
  eof_ = true;
  resume();
  watch_send();
  c_->want_send();
}

// Armed while a request body is due and the exchange takes it.
void H2Stream::arm_body_timer() {
  if (connect_ || !started_ || req_done_ || completed_ || ex_closed_ || closed_ || body_paused_) {
    timer_disarm(&body_timer_);
    return;
  }
  Worker* w = c_->worker();
  w->timers().arm(&body_timer_, w->site().server.client_body_timeout_ms, w->now());
}

void H2Stream::on_body_timeout(TimerNode* t) {
  auto* s = static_cast<H2Stream*>(t->owner);
  if (!s->started_ && !s->closed_) {  // its header block never ended: the connection is stuck
    PLOG_DEBUG("HTTP/2 stream %d from %s: client header timeout", s->id_, PeerText(*s->c_->peer()).s);
    s->c_->fail("client header timeout", 0);  // s may be gone
    return;
  }
  if (!s->started_ || s->req_done_ || s->completed_ || s->ex_closed_ || s->closed_) return;
  PLOG_DEBUG("HTTP/2 stream %d from %s: client body timeout", s->id_, PeerText(*s->c_->peer()).s);
  if (!s->ex_.response_started()) {
    s->ex_.respond_error(408, "client body timeout");
    s->c_->want_send();
  } else {
    s->abort();  // RST_STREAM; the exchange ends
  }
}

void H2Stream::consume(size_t n) {
  if (n == 0 || closed_) return;
  nghttp2_session_consume_stream(c_->session(), id_, n);
  c_->want_send();
}

void H2Stream::on_data(const char* p, size_t n) {
  if (!started_ || completed_ || ex_closed_ || req_done_) {  // answered already: dropped
    consume(n);
    return;
  }
  if (connect_) {
    if (!tunnel_) {  // before the switch: kept, and the window stays shut
      if (!early_) {
        early_ = c_->worker()->take_buf();
        early_->clear();
      }
      early_->append(p, n);
      return;
    }
    ex_.tunnel_in(p, n);
    if (closed_ || ex_closed_) return;
    if (body_paused_) unconsumed_ += n;
    else consume(n);
    return;
  }
  // client_max_body_size for a body of no declared length (nghttp2 holds a
  // declared one to its content-length, and head_check refused one over the
  // limit): no byte past it goes on (found by review: any size did).
  uint64_t limit = c_->worker()->site().server.max_body_bytes;
  body_in_ += n;
  if (limit && body_in_ > limit) {
    consume(n);
    ex_.discard_body();  // nothing more, and no framing end, goes upstream
    timer_disarm(&body_timer_);  // the answer (or the reset) ends the stream: later DATA is dropped above
    if (!ex_.response_started()) {
      ex_.respond_error(413, "request body larger than client_max_body_size");
      c_->want_send();
    } else {
      abort();
    }
    return;
  }
  ex_.request_body(p, n);
  ex_.flush_body();  // a chunked body: this batch goes now
  arm_body_timer();  // progress
  if (body_paused_)
    unconsumed_ += n;  // the window reopens when the exchange wants body again
  else
    consume(n);
}

void H2Stream::want_body(bool on) {
  body_paused_ = !on;
  arm_body_timer();  // waits while the exchange holds the body back
  if (on && unconsumed_) {
    size_t n = unconsumed_;
    unconsumed_ = 0;
    consume(n);
  }
}

void H2Stream::on_request_end() {
  if (req_done_) return;
  req_done_ = true;
  timer_disarm(&body_timer_);
  if (connect_) {  // the client's half of the tunnel ends (before the switch: tunnel() passes it)
    if (tunnel_ && !ex_closed_) ex_.tunnel_in_eof();
    return;
  }
  if (started_ && !completed_ && !ex_closed_) ex_.request_end();
}

void H2Stream::on_closed() {
  if (closed_) return;
  closed_ = true;
  timer_disarm(&body_timer_);
  timer_disarm(&send_timer_);
  if (completed_) {
    ex_.reset();  // its pool's in-flight count, its buffers
  } else if (started_ && !ex_closed_) {
    ex_closed_ = true;
    ex_.on_close();  // reset by the client, or the connection ended
  }
}

void H2Stream::on_response_sent() {
  if (tunnel_) return;  // the upstream's EOF: the client's half goes on
  if (!req_done_ && !closed_) {
    req_done_ = true;  // whatever else comes is dropped (on_data)
    nghttp2_submit_rst_stream(c_->session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
  }
}

// --- the response ---------------------------------------------------------

// The "Name: value\r\n" lines of `text` after its first line, as nghttp2
// name/value pairs: names lower-case, hop-by-hop and framing fields left out
// (RFC 9113 8.2.2). `store` receives the bytes nva points into and must
// have room reserved for all of them (no reallocation).
void H2Stream::parse_fields(std::string_view text, std::string& store, std::vector<nghttp2_nv>& nva,
                            size_t skip_first_line) {
  size_t pos = 0;
  if (skip_first_line) {
    pos = text.find("\r\n");
    pos = pos == std::string_view::npos ? text.size() : pos + 2;
  }
  while (pos < text.size()) {
    size_t eol = text.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 2;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (is_hop_by_hop(name) || is_framing(name)) continue;
    size_t n_off = store.size();
    for (char ch : name) store.push_back(ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch);
    size_t v_off = store.size();
    store.append(value);
    nghttp2_nv nv;
    nv.name = reinterpret_cast<uint8_t*>(store.data() + n_off);
    nv.namelen = name.size();
    nv.value = reinterpret_cast<uint8_t*>(store.data() + v_off);
    nv.valuelen = value.size();
    nv.flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
    nva.push_back(nv);
  }
}

int H2Stream::interim(std::string_view text) {
  if (closed_ || text.size() < 12) return UV_EPIPE;
  int status = atoi(std::string(text.substr(9, 3)).c_str());
  if (status < 100 || status > 199 || status == 101) return UV_EPROTO;  // no Upgrade in HTTP/2
  std::string store;
  store.reserve(text.size() + 16);
  store.append(text.substr(9, 3));
  std::vector<nghttp2_nv> nva;
  nva.push_back({(uint8_t*)":status", reinterpret_cast<uint8_t*>(store.data()), 7, 3,
                 NGHTTP2_NV_FLAG_NO_COPY_NAME});
  parse_fields(text, store, nva, 1);
  // `store` dies with this call and the frame may leave later (the client
  // not reading): nghttp2 must copy every name and value (found by review:
  // NO_COPY here sent freed heap, other clients' requests, as the 1xx's fields).
  for (nghttp2_nv& nv : nva) nv.flags = NGHTTP2_NV_FLAG_NONE;
  int rv = nghttp2_submit_headers(c_->session(), NGHTTP2_FLAG_NONE, id_, nullptr, nva.data(), nva.size(), nullptr);
  if (rv != 0) return UV_EPROTO;
  c_->want_send();
  return 0;
}

void H2Stream::head(const ResponseHead& h) {
  Worker* w = c_->worker();
  if (!resp_store_) resp_store_ = w->take_buf();
  std::string& st = *resp_store_;
  st.clear();
  std::string_view text = h.text ? std::string_view(*h.text) : std::string_view();
  st.reserve(text.size() + 64);  // every byte nva points to: no reallocation below
  nva_.clear();
  int code = h.status >= 100 && h.status <= 999 ? h.status : 502;
  char num[3] = {(char)('0' + code / 100), (char)('0' + code / 10 % 10), (char)('0' + code % 10)};
  st.append(num, 3);
  nva_.push_back({(uint8_t*)":status", reinterpret_cast<uint8_t*>(st.data()), 7, 3,
                  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE});
  parse_fields(text, st, nva_, 1);
  bool bodiless_status = h.status == 204 || h.status == 304;
  // An extended CONNECT answered without a switch: a 2xx would tell the
  // client its tunnel is open (RFC 8441 5).
  if (connect_ && h.status >= 200 && h.status < 300) {
    st.replace(0, 3, "502");
    PLOG_DEBUG("HTTP/2 stream %d: extended CONNECT answered %d without a switch: 502", id_, h.status);
  }
  if (h.framing == ResponseHead::Length::kKnown && !bodiless_status) {
    size_t off = st.size();
    append_uint(st, h.length);  // (st has room reserved: no reallocation)
    nva_.push_back({(uint8_t*)"content-length", reinterpret_cast<uint8_t*>(st.data() + off), 14, st.size() - off,
                    NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE});
  }
  if (h.text) w->give_buf(h.text);
  no_body_ = h.no_body || bodiless_status || (h.framing == ResponseHead::Length::kKnown && h.length == 0);
  head_pending_ = true;
}

void H2Stream::submit_head() {
  head_pending_ = false;
  if (closed_) return;
  head_submitted_ = true;
  nghttp2_data_provider prd;
  prd.source.ptr = this;
  prd.read_callback = read_cb;
  int rv = nghttp2_submit_response(c_->session(), id_, nva_.data(), nva_.size(), no_body_ ? nullptr : &prd);
  if (rv != 0) PLOG_DEBUG("nghttp2_submit_response(%d) failed: %s", id_, nghttp2_strerror(rv));
}

void H2Stream::resume() {
  if (!deferred_ || closed_) return;
  deferred_ = false;
  nghttp2_session_resume_data(c_->session(), id_);
}

bool H2Stream::body(const char* p, size_t n, bool batch) {
  if (closed_ || ex_closed_) return false;
  if (no_body_ || n == 0) return true;
  if (!out_) {
    out_ = c_->worker()->take_buf();
    out_->clear();
    out_off_ = 0;
  }
  if (out_off_ == out_->size()) {
    out_->clear();
    out_off_ = 0;
  } else if (out_off_ >= 64 * 1024) {
    out_->erase(0, out_off_);
    out_off_ = 0;
  }
  out_->append(p, n);
  watch_send();
  if (head_pending_)
    submit_head();
  else
    resume();
  if (!batch) c_->want_send();
  if (queued() <= kStreamHighWater) return !closed_;
  producer_waiting_ = true;
  return false;
}

bool H2Stream::flush() {
  if (closed_ || ex_closed_) return false;
  if (head_pending_) submit_head();
  c_->want_send();
  if (closed_) return false;
  if (queued() <= kStreamHighWater) return true;
  producer_waiting_ = true;
  return false;
}

void H2Stream::end() {
  if (closed_ || ex_closed_) return;
  eof_ = true;
  if (head_pending_) {
    // Nothing was queued: HEADERS with END_STREAM, which no flow-control
    // window holds back (found by review: an empty DATA frame waited for a
    // window the client never opened, and nothing timed the stream out).
    if (queued() == 0) no_body_ = true;
    submit_head();
  } else {
    resume();
  }
  watch_send();  // an END_STREAM that waits for the window is watched too
  // Answered before the request's end: the rest of its body goes nowhere
  // (the client gets RST_STREAM NO_ERROR after the response, on_response_sent).
  // The stream's own END_STREAM decides: respond_error() marks the exchange's
  // request done before it answers, and an upstream still sending the body
  // must go (found by review: kept, it later read into a freed exchange).
  if (!req_done_ || !ex_.req_done()) ex_.drop_upstream();
  completed_ = true;
  ex_.complete();
  c_->want_send();
}

void H2Stream::abort() {
  if (closed_ || ex_closed_) return;
  nghttp2_submit_rst_stream(c_->session(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
  ex_closed_ = true;
  ex_.on_close();
  c_->want_send();
}

bool H2Stream::retract_head() {
  if (!head_pending_) return false;
  head_pending_ = false;
  nva_.clear();
  if (out_) {
    out_->clear();
    out_off_ = 0;
  }
  return true;
}

size_t H2Stream::backlog() const { return c_->backlog(); }

// Armed while response bytes wait here, from the last DATA frame that took
// some (read_data disarms it): the client's window held them that long.
void H2Stream::watch_send() {
  // Tunnels too (found by review: after the upstream's close a tunnel's last
  // bytes and END_STREAM waited for a window with nothing to end them): bytes
  // the client's window holds for send_timeout end the stream, whatever it carries.
  if (!send_pending() || closed_ || ex_closed_) {
    timer_disarm(&send_timer_);
    return;
  }
  if (send_timer_.armed()) return;
  Worker* w = c_->worker();
  w->timers().arm(&send_timer_, w->site().server.send_timeout_ms, w->now());
}

bool H2Stream::stalled_by_window(bool conn_blocked) const {
  if (!send_pending() || closed_ || ex_closed_) return false;
  return conn_blocked || nghttp2_session_get_stream_remote_window_size(c_->session(), id_) <= 0;
}

void H2Stream::on_send_timeout(TimerNode* t) {
  auto* s = static_cast<H2Stream*>(t->owner);
  if (!s->send_pending() || s->closed_ || s->ex_closed_) return;
  PLOG_DEBUG("HTTP/2 stream %d from %s: send timeout (%zu bytes wait for the client's window)", s->id_,
             PeerText(*s->c_->peer()).s, s->queued());
  s->abort();  // RST_STREAM; the exchange ends, its upstream and server are freed
}

bool H2Stream::peer_address(sockaddr_storage* out) { return c_->transport()->h2_peer(out); }
std::string_view H2Stream::tls_subject() const { return c_->transport()->h2_tls_subject(); }

ssize_t H2Stream::read_data(uint8_t* buf, size_t len, uint32_t* flags) {
  size_t avail = queued();
  if (avail == 0) {
    if (eof_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      end_sent_ = true;
      timer_disarm(&send_timer_);
      return 0;
    }
    deferred_ = true;  // body() or end() resumes it
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = std::min(len, avail);
  memcpy(buf, out_->data() + out_off_, n);
  out_off_ += n;
  timer_disarm(&send_timer_);  // progress: watched again below if bytes remain
  if (out_off_ == out_->size()) {
    out_->clear();
    out_off_ = 0;
    if (eof_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      end_sent_ = true;
    }
  }
  if (producer_waiting_ && queued() < kStreamLowWater) c_->note_drained(this);
  watch_send();
  return (ssize_t)n;
}

void H2Stream::after_send() {
  if (!producer_waiting_ || closed_ || ex_closed_ || queued() >= kStreamLowWater) return;
  producer_waiting_ = false;
  ex_.on_sink_drained();  // an inline app produces more right here
}

}  // namespace pasture::worker
