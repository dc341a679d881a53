#include "master/etcd_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include <openssl/evp.h>

#include "conf/json.h"
#include "master/fd_wait.h"
#include "master/master.h"

namespace pasture::master::etcd {
namespace {

constexpr size_t kMaxHead = 16384;
constexpr size_t kMaxAnswer = 64u << 20;  // a range of many thousand keys still fits

std::string endpoint_text(const Endpoint& ep) {
  return (ep.first.find(':') != std::string::npos ? "[" + ep.first + "]" : ep.first) + ":" + std::to_string(ep.second);
}

// etcd's error answer: {"error": "...", "code": N, "message": "..."}.
std::string error_message(const std::string& body) {
  try {
    conf::json::Value v = conf::json::parse(body);
    if (const conf::json::Value* m = v.find("message"); m && m->type() == conf::json::Value::Type::String)
      return m->as_string();
  } catch (const std::exception&) {
  }
  return body.substr(0, 200);
}

}  // namespace

// OpenSSL's codec (already linked for TLS), not one of our own.
std::string base64(std::string_view in) {
  std::string out((in.size() + 2) / 3 * 4 + 1, '\0');  // + the NUL EVP_EncodeBlock writes
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          (int)in.size());
  out.resize((size_t)n);
  return out;
}

bool unbase64(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 4 != 0) return false;
  // EVP_DecodeBlock takes some broken input ("====", "QQ=A") without an
  // error (found by review 23): the alphabet, and '=' only as the last one
  // or two characters, checked first.
  size_t pad = 0;
  while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') pad++;
  for (size_t i = 0; i + pad < in.size(); i++) {
    char c = in[i];
    if (!std::isalnum((unsigned char)c) && c != '+' && c != '/') return false;
  }
  if (pad == in.size() && pad > 0) return false;
  out->resize(in.size() / 4 * 3);
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out->data()), reinterpret_cast<const unsigned char*>(in.data()),
                          (int)in.size());
  if (n < 0) {
    out->clear();
    return false;
  }
  out->resize((size_t)n - pad);  // EVP_DecodeBlock counts the padding's zero bytes
  return true;
}

std::string prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty() && (uint8_t)end.back() == 0xff) end.pop_back();
  if (end.empty()) return std::string(1, '\0');  // every key
  end.back() = (char)((uint8_t)end.back() + 1);
  return end;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if ((uint8_t)c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", (unsigned)(uint8_t)c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

int connect_to(const Endpoint& ep, uint32_t timeout_ms, std::string* err) {
  uint64_t deadline = monotonic_ms() + timeout_ms;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep.second);
  if (int rc = getaddrinfo(ep.first.c_str(), port.c_str(), &hints, &res); rc != 0) {
    *err = "getaddrinfo(" + ep.first + ") failed: " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      *err = std::string("socket() failed: ") + strerror(errno);
      continue;
    }
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
      if (!wait_fd(fd, POLLOUT, deadline)) {
        *err = "connect(" + endpoint_text(ep) + ") timed out";
        close(fd);
        fd = -1;
        continue;
      }
      int so = 0;
      socklen_t len = sizeof so;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
      rc = so ? -1 : 0;
      errno = so;
    }
    if (rc < 0) {
      *err = "connect(" + endpoint_text(ep) + ") failed: " + strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool send_all(int fd, std::string_view data, uint32_t timeout_ms, std::string* err) {
  uint64_t deadline = monotonic_ms() + timeout_ms;
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix((size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline)) continue;
    *err = n < 0 && errno != EAGAIN ? std::string("send() failed: ") + strerror(errno) : "send() timed out";
    return false;
  }
  return true;
}

std::string post_request(const Endpoint& ep, const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: " + endpoint_text(ep) +
         "\r\nContent-Type: application/json\r\nAccept: application/json\r\nGrpc-Metadata-hasleader: true"
         "\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

bool ResponseReader::head(std::string* body) {
  size_t end = buf_.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (buf_.size() > kMaxHead) error_ = "response head too long";
    return buf_.size() <= kMaxHead;
  }
  std::string h = buf_.substr(0, end + 2);
  buf_.erase(0, end + 4);
  if (h.compare(0, 7, "HTTP/1.") != 0 || h.size() < 12) {
    error_ = "not an HTTP/1.x response";
    return false;
  }
  status_ = atoi(h.c_str() + 9);
  bool chunked = false;
  int64_t length = -1;
  for (size_t at = h.find("\r\n") + 2; at < h.size();) {
    size_t eol = h.find("\r\n", at);
    std::string line = h.substr(at, eol - at);
    at = eol + 2;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon), value = line.substr(colon + 1);
    for (char& c : name) c = (char)tolower((unsigned char)c);
    for (char& c : value) c = (char)tolower((unsigned char)c);
    if (name == "transfer-encoding" && value.find("chunked") != std::string::npos) chunked = true;
    if (name == "content-length") length = strtoll(value.c_str(), nullptr, 10);
  }
  if (chunked)
    state_ = State::ChunkSize;
  else if (length >= 0)
    state_ = length ? State::Length : State::Done, left_ = (uint64_t)length;
  else
    state_ = State::UntilClose;
  return feed("", body);
}

bool ResponseReader::feed(std::string_view data, std::string* body) {
  buf_.append(data);
  for (;;) {
    switch (state_) {
      case State::Head:
        return head(body);  // once the head is in, head() feeds the rest
      case State::Length:
      case State::ChunkData: {
        size_t n = (size_t)std::min<uint64_t>(left_, buf_.size());
        body->append(buf_, 0, n);
        buf_.erase(0, n);
        left_ -= n;
        if (left_) return true;
        state_ = state_ == State::Length ? State::Done : State::ChunkDataEnd;
        break;
      }
      case State::ChunkSize: {
        size_t eol = buf_.find("\r\n");
        if (eol == std::string::npos) {
          if (buf_.size() > 1024) error_ = "chunk size line too long";
          return buf_.size() <= 1024;
        }
        char* end = nullptr;
        left_ = strtoull(buf_.c_str(), &end, 16);
        if (end == buf_.c_str()) {
          error_ = "bad chunk size";
          return false;
        }
        buf_.erase(0, eol + 2);
        state_ = left_ ? State::ChunkData : State::Trailer;
        break;
      }
      case State::ChunkDataEnd:
        if (buf_.size() < 2) return true;
        if (buf_.compare(0, 2, "\r\n") != 0) {
          error_ = "chunk not followed by CRLF";
          return false;
        }
        buf_.erase(0, 2);
        state_ = State::ChunkSize;
        break;
      case State::Trailer: {
        size_t eol = buf_.find("\r\n");
        if (eol == std::string::npos) return true;
        buf_.erase(0, eol + 2);
        if (eol == 0) state_ = State::Done;
        break;
      }
      case State::UntilClose:
        body->append(buf_);
        buf_.clear();
        return true;
      case State::Done:
        return true;
    }
  }
}

bool post(const Endpoint& ep, const std::string& path, const std::string& body, uint32_t timeout_ms,
          std::string* answer, std::string* err) {
  uint64_t deadline = monotonic_ms() + timeout_ms;
  int fd = connect_to(ep, timeout_ms, err);
  if (fd < 0) return false;
  bool ok = send_all(fd, post_request(ep, path, body), timeout_ms, err);
  ResponseReader r;
  answer->clear();
  char buf[16384];
  while (ok && !r.done()) {
    if (!wait_fd(fd, POLLIN, deadline)) {
      *err = "no answer from " + endpoint_text(ep) + " within " + std::to_string(timeout_ms) + "ms";
      ok = false;
      break;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n == 0 && r.closed()) break;  // a body that ends at the close
    if (n <= 0) {
      *err = n < 0 ? std::string("recv() failed: ") + strerror(errno) : endpoint_text(ep) + " closed the connection";
      ok = false;
      break;
    }
    if (!r.feed(std::string_view(buf, (size_t)n), answer) || answer->size() > kMaxAnswer) {
      *err = endpoint_text(ep) + ": " + (r.error().empty() ? "answer too long" : r.error());
      ok = false;
    }
  }
  close(fd);
  if (ok && r.status() != 200) {
    *err = endpoint_text(ep) + " " + path + ": status " + std::to_string(r.status()) + ": " + error_message(*answer);
    ok = false;
  }
  return ok;
}

bool post_any(const std::vector<Endpoint>& endpoints, const std::string& path, const std::string& body,
              uint32_t timeout_ms, std::string* answer, std::string* err) {
  std::string errs;
  for (const Endpoint& ep : endpoints) {
    if (post(ep, path, body, timeout_ms, answer, err)) return true;
    errs += (errs.empty() ? "" : "; ") + *err;
  }
  *err = errs;
  return false;
}

bool get(const std::vector<Endpoint>& endpoints, const std::string& key, uint32_t timeout_ms, std::string* value,
         std::string* err) {
  std::string answer;
  err->clear();
  if (!post_any(endpoints, "/v3/kv/range", "{\"key\":" + json_string(base64(key)) + "}", timeout_ms, &answer, err))
    return false;
  try {
    conf::json::Value v = conf::json::parse(answer);
    const conf::json::Value* kvs = v.find("kvs");
    if (!kvs || kvs->items().empty()) return false;
    const conf::json::Value* b64 = kvs->items()[0].find("value");
    value->clear();
    if (b64 && !unbase64(b64->as_string(), value)) {
      *err = "bad base64 in etcd's answer";
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    *err = std::string("etcd's answer: ") + e.what();
    return false;
  }
}

bool range(const std::vector<Endpoint>& endpoints, const std::string& prefix, uint32_t timeout_ms,
           std::vector<std::pair<std::string, std::string>>* kvs, std::string* err) {
  std::string answer;
  err->clear();
  std::string body = "{\"key\":" + json_string(base64(prefix)) + ",\"range_end\":" + json_string(base64(prefix_end(prefix))) + "}";
  if (!post_any(endpoints, "/v3/kv/range", body, timeout_ms, &answer, err)) return false;
  kvs->clear();
  try {
    conf::json::Value v = conf::json::parse(answer);
    if (const conf::json::Value* items = v.find("kvs"))
      for (const conf::json::Value& kv : items->items()) {
        std::string k, val;
        const conf::json::Value* kb = kv.find("key");
        const conf::json::Value* vb = kv.find("value");
        if (!kb || !unbase64(kb->as_string(), &k) || k.compare(0, prefix.size(), prefix) != 0 ||
            (vb && !unbase64(vb->as_string(), &val))) {
          *err = "bad base64 in etcd's answer";
          return false;
        }
        kvs->emplace_back(k.substr(prefix.size()), val);
      }
    return true;
  } catch (const std::exception& e) {
    *err = std::string("etcd's answer: ") + e.what();
    return false;
  }
}

bool put(const std::vector<Endpoint>& endpoints, const std::string& key, const std::string& value,
         uint32_t timeout_ms, std::string* err) {
  std::string answer;
  return post_any(endpoints, "/v3/kv/put",
                  "{\"key\":" + json_string(base64(key)) + ",\"value\":" + json_string(base64(value)) + "}", timeout_ms,
                  &answer, err);
}

}  // namespace pasture::master::etcd
