// A second, independent HTTP/1.1 parser for the fuzz targets' oracles:
// strict RFC 9112 (CRLF only, tchar names, no obs-fold, one framing), written
// from the RFC's grammar rather than from llhttp. What pasture sends a peer
// must parse here exactly as pasture framed it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pasture::fuzz::strict {

enum class Result { kComplete, kIncomplete, kError };

struct Message {
  std::string method, target;  // request
  int status = 0;              // response
  std::vector<std::pair<std::string, std::string>> fields;  // value without surrounding OWS
  std::string body;
  bool chunked = false, has_length = false, until_eof = false;
  std::string error;  // with kError: what was wrong

  size_t count(std::string_view name) const {
    size_t n = 0;
    for (const auto& f : fields) n += lower(f.first) == name;
    return n;
  }
  std::string get(std::string_view name) const {
    for (const auto& f : fields)
      if (lower(f.first) == name) return f.second;
    return {};
  }
  static std::string lower(std::string_view s) {
    std::string o(s);
    for (char& c : o)
      if (c >= 'A' && c <= 'Z') c = char(c + 32);
    return o;
  }
};

inline bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find((char)c) != std::string_view::npos;
}
inline bool is_vchar_or_obs(unsigned char c) { return (c >= 0x21 && c <= 0x7e) || c >= 0x80; }
inline bool is_field_char(unsigned char c) { return is_vchar_or_obs(c) || c == ' ' || c == '\t'; }

class Parser {
 public:
  // `s`: the whole byte stream one peer received; `eof`: the stream ended
  // there (a body delimited by the connection's end is then complete).
  Parser(std::string_view s, bool eof) : s_(s), eof_(eof) {}
  size_t pos() const { return pos_; }
  bool at_end() const { return pos_ == s_.size(); }

  Result request(Message* m) {
    size_t start = pos_;
    Result r = request_inner(m);
    if (r != Result::kComplete) pos_ = start;
    return r;
  }
  // A response to a request of method HEAD when `head_request`.
  Result response(Message* m, bool head_request) {
    size_t start = pos_;
    Result r = response_inner(m, head_request);
    if (r != Result::kComplete) pos_ = start;
    return r;
  }

 private:
  Result error(Message* m, std::string what) {
    m->error = std::move(what) + " at byte " + std::to_string(pos_);
    return Result::kError;
  }

  // One CRLF-terminated line (CRLF not included).
  Result line(Message* m, std::string_view* out) {
    size_t i = pos_;
    for (; i < s_.size(); i++) {
      if (s_[i] == '\n') return error(m, "bare LF");
      if (s_[i] == '\r') {
        if (i + 1 == s_.size()) return Result::kIncomplete;
        if (s_[i + 1] != '\n') return error(m, "bare CR");
        *out = s_.substr(pos_, i - pos_);
        pos_ = i + 2;
        return Result::kComplete;
      }
    }
    return Result::kIncomplete;
  }

  Result fields(Message* m, std::vector<std::pair<std::string, std::string>>* out) {
    for (;;) {
      std::string_view l;
      Result r = line(m, &l);
      if (r != Result::kComplete) return r;
      if (l.empty()) return Result::kComplete;
      size_t colon = l.find(':');
      if (colon == std::string_view::npos || colon == 0) return error(m, "field line without a name");
      for (size_t i = 0; i < colon; i++)
        if (!is_tchar((unsigned char)l[i])) return error(m, "field name byte not a tchar");
      std::string_view v = l.substr(colon + 1);
      for (char c : v)
        if (!is_field_char((unsigned char)c)) return error(m, "field value byte not allowed");
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      out->emplace_back(std::string(l.substr(0, colon)), std::string(v));
    }
  }

  // Content-Length / Transfer-Encoding of a message that has a body.
  Result framing(Message* m, bool* chunked, bool* has_len, uint64_t* len) {
    size_t te = m->count("transfer-encoding"), cl = m->count("content-length");
    *chunked = *has_len = false;
    if (te) {
      if (te > 1 || cl) return error(m, "Transfer-Encoding with another framing field");
      if (Message::lower(m->get("transfer-encoding")) != "chunked") return error(m, "a coding other than chunked");
      *chunked = true;
      return Result::kComplete;
    }
    if (cl) {
      if (cl > 1) return error(m, "several Content-Length fields");
      std::string v = m->get("content-length");
      if (v.empty() || v.size() > 20) return error(m, "bad Content-Length");
      uint64_t n = 0;
      for (char c : v) {
        if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10) return error(m, "bad Content-Length");
        n = n * 10 + uint64_t(c - '0');
      }
      *has_len = true;
      *len = n;
    }
    return Result::kComplete;
  }

  Result chunked_body(Message* m) {
    for (;;) {
      std::string_view l;
      Result r = line(m, &l);
      if (r != Result::kComplete) return r;
      size_t i = 0;
      uint64_t size = 0;
      for (; i < l.size(); i++) {
        char c = l[i];
        int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
        if (d < 0) break;
        if (i >= 15) return error(m, "chunk size too long");
        size = size * 16 + uint64_t(d);
      }
      if (i == 0) return error(m, "no chunk size");
      if (!chunk_ext(l.substr(i))) return error(m, "bad chunk extension");
      if (size == 0) {
        std::vector<std::pair<std::string, std::string>> trailer;
        return fields(m, &trailer);
      }
      if (s_.size() - pos_ < size) return Result::kIncomplete;
      m->body.append(s_.substr(pos_, size));
      pos_ += size;
      if (s_.size() - pos_ < 2) return Result::kIncomplete;
      if (s_.compare(pos_, 2, "\r\n") != 0) return error(m, "chunk data not followed by CRLF");
      pos_ += 2;
    }
  }

  // *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )
  static bool chunk_ext(std::string_view e) {
    size_t i = 0;
    auto ws = [&] {
      while (i < e.size() && (e[i] == ' ' || e[i] == '\t')) i++;
    };
    auto token = [&] {
      size_t b = i;
      while (i < e.size() && is_tchar((unsigned char)e[i])) i++;
      return i > b;
    };
    for (;;) {
      ws();
      if (i == e.size()) return true;
      if (e[i] != ';') return false;
      i++;
      ws();
      if (!token()) return false;
      ws();
      if (i < e.size() && e[i] == '=') {
        i++;
        ws();
        if (i < e.size() && e[i] == '"') {
          for (i++;; i++) {
            if (i >= e.size()) return false;
            if (e[i] == '"') break;
            if (e[i] == '\\') {
              if (++i >= e.size() || !is_field_char((unsigned char)e[i])) return false;
            } else if (!is_field_char((unsigned char)e[i])) {
              return false;
            }
          }
          i++;
        } else if (!token()) {
          return false;
        }
      }
    }
  }

  Result body(Message* m, bool chunked, bool has_len, uint64_t len) {
    m->chunked = chunked;
    m->has_length = has_len;
    if (chunked) return chunked_body(m);
    if (s_.size() - pos_ < len) return Result::kIncomplete;
    m->body.assign(s_.substr(pos_, len));
    pos_ += len;
    return Result::kComplete;
  }

  Result request_inner(Message* m) {
    *m = Message{};
    std::string_view l;
    Result r = line(m, &l);
    if (r != Result::kComplete) return r;
    size_t sp1 = l.find(' '), sp2 = sp1 == std::string_view::npos ? sp1 : l.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return error(m, "request line without two spaces");
    m->method = std::string(l.substr(0, sp1));
    m->target = std::string(l.substr(sp1 + 1, sp2 - sp1 - 1));
    if (m->method.empty() || m->target.empty()) return error(m, "empty method or target");
    for (char c : m->method)
      if (!is_tchar((unsigned char)c)) return error(m, "method byte not a tchar");
    for (char c : m->target)
      if (!is_vchar_or_obs((unsigned char)c)) return error(m, "request target byte not allowed");
    if (l.substr(sp2 + 1) != "HTTP/1.1") return error(m, "version is not HTTP/1.1");
    r = fields(m, &m->fields);
    if (r != Result::kComplete) return r;
    bool chunked, has_len;
    uint64_t len = 0;
    r = framing(m, &chunked, &has_len, &len);
    if (r != Result::kComplete) return r;
    return body(m, chunked, has_len, len);
  }

  Result response_inner(Message* m, bool head_request) {
    *m = Message{};
    std::string_view l;
    Result r = line(m, &l);
    if (r != Result::kComplete) return r;
    if (l.size() < 13 || l.substr(0, 9) != "HTTP/1.1 " || l[12] != ' ') return error(m, "bad status line");
    for (int i = 9; i < 12; i++)
      if (l[i] < '0' || l[i] > '9') return error(m, "bad status code");
    m->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    for (char c : l.substr(13))
      if (!is_field_char((unsigned char)c)) return error(m, "reason phrase byte not allowed");
    r = fields(m, &m->fields);
    if (r != Result::kComplete) return r;
    if (head_request || m->status < 200 || m->status == 204 || m->status == 304) return Result::kComplete;
    bool chunked, has_len;
    uint64_t len = 0;
    r = framing(m, &chunked, &has_len, &len);
    if (r != Result::kComplete) return r;
    if (!chunked && !has_len) {  // until the connection ends
      m->until_eof = true;
      m->body.assign(s_.substr(pos_));
      pos_ = s_.size();
      return eof_ ? Result::kComplete : Result::kIncomplete;
    }
    return body(m, chunked, has_len, len);
  }

  std::string_view s_;
  bool eof_;
  size_t pos_ = 0;
};

}  // namespace pasture::fuzz::strict
