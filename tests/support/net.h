// Socket plumbing shared by the test-support classes: an owning fd, loopback
// connect/listen, and timed send/recv. Every blocking call takes a timeout.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pasture::test {

using Millis = std::chrono::milliseconds;

// Upper bound for any single wait in the support library, so a broken proxy
// fails a test instead of hanging it.
inline constexpr Millis kDefaultTimeout{10000};

// Header fields in wire order; names keep their original case.
using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive lookup of the first field named `name`; "" if absent.
std::string find_header(const Headers& headers, std::string_view name);
// Number of fields named `name` (case-insensitive).
size_t count_header(const Headers& headers, std::string_view name);
bool iequals(std::string_view a, std::string_view b);

// Owning file descriptor; closes on destruction. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1);
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// Listening TCP socket on 127.0.0.1:port (0 = any free port), SO_REUSEADDR,
// close-on-exec. Returns an invalid Fd and sets `err` on failure.
Fd listen_loopback(uint16_t port, std::string* err = nullptr);
// The same on another local address: "127.0.0.2" (any of 127/8) or "::1".
Fd listen_on(const std::string& ip, uint16_t port, std::string* err = nullptr);
// Local port a socket is bound to, 0 on failure.
uint16_t local_port(int fd);
// Connect to 127.0.0.1:port within `timeout`. Invalid Fd (and `err`) on
// failure, e.g. ECONNREFUSED.
Fd connect_loopback(uint16_t port, Millis timeout = kDefaultTimeout, std::string* err = nullptr);

// A blocking loopback connection with a 4 KiB receive buffer: the client
// side of a slow reader, so that most of an answer waits in the server's
// queue. Invalid if the connect fails.
Fd connect_slow_reader(uint16_t port);

// What a blocking socket reads until its end (each read bounded by
// `timeout`): the bytes, and how it ended: 0 a clean end (FIN), else the
// errno (ECONNRESET: a reset; EAGAIN: the timeout).
struct ReadToEnd {
  std::string got;
  int end = -1;
  std::string how() const;  // for assertion messages
};
ReadToEnd read_to_end(int fd, Millis timeout = Millis(10000));

enum class IoResult { kOk, kTimeout, kClosed, kError, kWoken };

// poll() one fd for `events`, also watching `wake_fd` (if >= 0) for POLLIN.
// kOk: ready; kWoken: wake_fd fired; kTimeout; kError: poll failed.
IoResult wait_fd(int fd, short events, Millis timeout, int wake_fd = -1);

// Write all of `data` (MSG_NOSIGNAL). Each wait for writability is bounded by
// `timeout`. kClosed on EPIPE/ECONNRESET.
IoResult send_all(int fd, std::string_view data, Millis timeout = kDefaultTimeout,
                  int wake_fd = -1);

// Read what is available (at most `max` bytes) and append it to `out`, waiting
// up to `timeout` for the first byte. kClosed on orderly EOF or reset.
IoResult recv_some(int fd, std::string& out, Millis timeout = kDefaultTimeout, int wake_fd = -1,
                   size_t max = 64 * 1024);

// Read everything until the peer ends the connection, appending to `out`:
// kClosed on its FIN (an orderly close), kError on a reset (or another
// failure), kTimeout when `timeout` passes without a byte.
IoResult recv_to_fin(int fd, std::string& out, Millis timeout = kDefaultTimeout);

// Human-readable name, for test messages.
const char* to_string(IoResult r);

}  // namespace pasture::test
