// A small client of etcd's v3 JSON gateway (grpc-gateway over HTTP/1.1),
// for the resolver's etcd sources (master/etcd_watch.h) and `pasture ctl
// ... --publish`.
//
// Why the gateway and not gRPC: it is plain HTTP/1.1 and JSON, which
// pasture already speaks, so no gRPC/protobuf dependency. Keys and values
// travel base64-encoded, int64s as JSON strings; etcd 3.4 (Debian 12)
// serves the paths under /v3/ (and /v3beta/); 3.5 keeps /v3/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pasture::master::etcd {

using Endpoint = std::pair<std::string, uint16_t>;  // host (name or IP literal), port

std::string base64(std::string_view in);
// False on a character outside the standard alphabet.
bool unbase64(std::string_view in, std::string* out);
// The range_end that covers every key starting with `prefix`: its last byte
// plus one (etcd's "prefix" option).
std::string prefix_end(const std::string& prefix);
// `s` as a JSON string literal.
std::string json_string(std::string_view s);

// A connected TCP socket (non-blocking) to `ep` within timeout_ms, or -1
// with *err set. Resolves a host name (blocking, getaddrinfo).
int connect_to(const Endpoint& ep, uint32_t timeout_ms, std::string* err);
// Sends all of `data` on the non-blocking `fd` within timeout_ms.
bool send_all(int fd, std::string_view data, uint32_t timeout_ms, std::string* err);
// "POST PATH HTTP/1.1" with a JSON body, and Grpc-Metadata-hasleader: true
// (the gateway passes it to etcd as gRPC metadata, as clientv3's
// WithRequireLeader does: a member that lost its leader refuses at once
// rather than hang or answer stale).
std::string post_request(const Endpoint& ep, const std::string& path, const std::string& body);

// An HTTP/1.1 response read as it arrives: the head, then the body
// (Content-Length, chunked or until the close) handed out as it is decoded.
class ResponseReader {
 public:
  // Feeds what was read; appends decoded body bytes to *body. False on a
  // malformed response (error() says why).
  bool feed(std::string_view data, std::string* body);
  bool head_done() const { return state_ != State::Head; }
  int status() const { return status_; }
  // The body is complete (not for a body that ends at the close).
  bool done() const { return state_ == State::Done; }
  const std::string& error() const { return error_; }
  // The peer closed: true (and done()) if that ends the body.
  bool closed() {
    if (state_ == State::UntilClose) state_ = State::Done;
    return state_ == State::Done;
  }

 private:
  enum class State { Head, Length, ChunkSize, ChunkData, ChunkDataEnd, Trailer, UntilClose, Done };
  bool head(std::string* body);
  State state_ = State::Head;
  std::string buf_;
  int status_ = 0;
  uint64_t left_ = 0;  // Length / ChunkData: bytes of the body still to come
  std::string error_;
};

// One POST on a new connection: the answer's body when the status is 200,
// else false with *err (the status and etcd's message, or the socket
// error). Blocking, timeout_ms in all.
bool post(const Endpoint& ep, const std::string& path, const std::string& body, uint32_t timeout_ms,
          std::string* answer, std::string* err);

// Tries `endpoints` in turn: the first that answers.
bool post_any(const std::vector<Endpoint>& endpoints, const std::string& path, const std::string& body,
              uint32_t timeout_ms, std::string* answer, std::string* err);

// `key`'s value (false with *err empty when there is no such key).
bool get(const std::vector<Endpoint>& endpoints, const std::string& key, uint32_t timeout_ms, std::string* value,
         std::string* err);
// Every key under `prefix` (without it) and its value.
bool range(const std::vector<Endpoint>& endpoints, const std::string& prefix, uint32_t timeout_ms,
           std::vector<std::pair<std::string, std::string>>* kvs, std::string* err);
bool put(const std::vector<Endpoint>& endpoints, const std::string& key, const std::string& value,
         uint32_t timeout_ms, std::string* err);

}  // namespace pasture::master::etcd
