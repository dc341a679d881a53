// Exchange, access log: the combined-format line of each exchange.
#include <algorithm>

#include "worker/exchange.h"

namespace pasture::worker {

namespace {

// nginx's escaping for log fields: '"', '\\' and non-printable bytes as \xHH.
void append_escaped(std::string& o, std::string_view s) {
  static const char hex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      o.append("\\x");
      o.push_back(hex[c >> 4]);
      o.push_back(hex[c & 15]);
    } else {
      o.push_back((char)c);
    }
  }
}

}  // namespace

// The parts of a combined-format line only the request head knows.
void Exchange::begin_log(const char* base, const HeadCollector& head) {
  if (!log_) log_ = w_->take_buf();
  std::string& o = *log_;
  o.clear();
  o.push_back('"');
  o.append(llhttp_method_name((llhttp_method_t)method_)).push_back(' ');
  append_escaped(o, span_view(base, head.url));
  o.append(http2_ ? " HTTP/2.0\" " : http10_ ? " HTTP/1.0\" " : " HTTP/1.1\" ");
  log_tail_ = (uint32_t)o.size();
  std::string_view referer = "-", agent = "-";
  for (const HeaderSpan& h : *head.headers) {
    std::string_view name = span_view(base, h.name);
    if (iequals(name, "referer")) referer = span_view(base, h.value);
    else if (iequals(name, "user-agent")) agent = span_view(base, h.value);
  }
  o.append(" \"");
  append_escaped(o, referer);
  o.append("\" \"");
  append_escaped(o, agent);
  o.append("\"\n");
}

// An error before a complete head (400, 408, 414, 431): nginx logs the
// request line as far as it came ("-" if empty) and no headers.
void Exchange::begin_raw_log(const char* p, const char* end) {
  if (!w_->access_log().enabled() || log_) return;
  while (p < end && (*p == '\r' || *p == '\n')) p++;  // empty lines before a request
  const char* eol = p;
  while (eol < end && *eol != '\r' && *eol != '\n') eol++;
  constexpr size_t kMaxLogged = 8192;
  log_ = w_->take_buf();
  std::string& o = *log_;
  o.clear();
  o.push_back('"');
  if (eol == p)
    o.push_back('-');
  else
    append_escaped(o, std::string_view(p, std::min<size_t>(eol - p, kMaxLogged)));
  o.append("\" ");
  log_tail_ = (uint32_t)o.size();
  o.append(" \"-\" \"-\"\n");
}

// host - - [time] "request" status bytes "referer" "user-agent"
void Exchange::end_log() {
  AccessLog& al = w_->access_log();
  std::string& out = al.buffer();
  std::string_view line(*log_);
  out.append(peer_text()).append(" - - ");
  out.append(al.timestamp()).push_back(' ');
  out.append(line.substr(0, log_tail_));
  append_uint(out, status_ ? status_ : 499);
  out.push_back(' ');
  append_uint(out, resp_bytes_);
  out.append(line.substr(log_tail_));
  w_->give_buf(log_);
  log_ = nullptr;
  al.maybe_flush();
}
}  // namespace pasture::worker
