// What both sides of a connection share about output: the end-of-turn
// sender, and the back-pressure marks. (The sockets are worker/edge_socket.h.)
#pragma once

#include <cstddef>

namespace pasture::worker {

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
