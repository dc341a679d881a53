// Writing to libuv streams without per-write allocation in the common case.
//
// send() first tries a direct write (uv_try_write: one writev(2), no copy);
// only bytes the kernel did not take are copied into one heap block and
// queued with uv_write. The stream's `data` must point to a StreamOwner,
// which is told when a queued write finishes.
#pragma once

#include <uv.h>

#include <cstddef>

namespace pasture::worker {

class StreamOwner {
 public:
  virtual ~StreamOwner() = default;
  // A queued write finished (status < 0: failed or cancelled by close).
  virtual void on_write_done(int status) = 0;
};

// Returns 0 or a negative libuv error. Bytes are either written or queued.
int stream_send(uv_stream_t* s, const uv_buf_t* bufs, unsigned nbufs);
inline int stream_send(uv_stream_t* s, const char* p, size_t n) {
  uv_buf_t b = uv_buf_init(const_cast<char*>(p), (unsigned)n);
  return stream_send(s, &b, 1);
}
// Queues the bytes after the first `skip` with uv_write, without trying a
// direct write first (the caller just tried one). A write error is then
// reported to the owner's on_write_done, not returned.
int stream_queue(uv_stream_t* s, const uv_buf_t* bufs, unsigned nbufs, size_t skip);

// Output gathered over a loop turn: everything that became ready in one poll
// leaves together after the poll's callbacks (Worker::defer_send) - HTTP/2
// frames of several streams in one TLS record and one write; upstream
// request heads in one burst, so that the upstream, woken once, finds them
// all (its wake-ups, not ours, were the cost: bench --shapes headers).
class TurnSender {
 public:
  virtual void send_deferred() = 0;

 protected:
  ~TurnSender() = default;
};

// Queue high/low water marks for back-pressure between the two sides.
inline constexpr size_t kHighWater = 256 * 1024;
inline constexpr size_t kLowWater = 64 * 1024;

}  // namespace pasture::worker
